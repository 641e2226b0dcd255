import uuid
from collections.abc import Sequence

from sqlalchemy import func, select

from app.core.repository import Repository
from app.guardrails.models import ModerationEvent


class ModerationRepository(Repository[ModerationEvent]):
    model = ModerationEvent

    async def add_all(self, events: Sequence[ModerationEvent]) -> None:
        self.session.add_all(events)
        await self.session.flush()

    async def page(
        self,
        *,
        limit: int,
        offset: int,
        user_id: uuid.UUID | None = None,
        chat_id: uuid.UUID | None = None,
        point: str | None = None,
        check: str | None = None,
        action: str | None = None,
    ) -> tuple[list[ModerationEvent], int]:
        """Newest first, with the number of events matching the filters."""
        conditions = [
            column == value
            for column, value in (
                (ModerationEvent.user_id, user_id),
                (ModerationEvent.chat_id, chat_id),
                (ModerationEvent.point, point),
                (ModerationEvent.check, check),
                (ModerationEvent.action, action),
            )
            if value is not None
        ]
        rows = await self.session.scalars(
            select(ModerationEvent)
            .where(*conditions)
            .order_by(ModerationEvent.created_at.desc(), ModerationEvent.id.desc())
            .limit(limit)
            .offset(offset)
        )
        total = await self.session.scalar(
            select(func.count()).select_from(ModerationEvent).where(*conditions)
        )
        return list(rows), int(total or 0)
