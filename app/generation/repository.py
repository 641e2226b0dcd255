import uuid
from datetime import datetime

from sqlalchemy import and_, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.chats.models import Message, MessageStatus
from app.core.repository import Repository
from app.generation.models import Generation


class GenerationRepository(Repository[Generation]):
    model = Generation

    async def page(
        self, user_id: uuid.UUID, *, limit: int, after: tuple[datetime, uuid.UUID] | None
    ) -> list[Generation]:
        """Newest first; `after` is the (created_at, id) of the last row already seen."""
        statement = select(Generation).where(Generation.user_id == user_id)
        if after is not None:
            created_at, row_id = after
            statement = statement.where(
                or_(
                    Generation.created_at < created_at,
                    and_(Generation.created_at == created_at, Generation.id < row_id),
                )
            )
        statement = statement.order_by(Generation.created_at.desc(), Generation.id.desc())
        return list(await self.session.scalars(statement.limit(limit)))


async def mark_stale_streams_interrupted(session: AsyncSession, *, older_than: datetime) -> int:
    """Replies still `streaming` but not checkpointed since `older_than` lost their process."""
    total = 0
    for table in (Message, Generation):
        result = await session.execute(
            update(table)
            .where(table.status == MessageStatus.STREAMING, table.updated_at < older_than)
            .values(
                status=MessageStatus.INTERRUPTED,
                error_code="interrupted",
                error_message="The server stopped before the reply was finished.",
            )
        )
        total += int(getattr(result, "rowcount", 0) or 0)
    return total
