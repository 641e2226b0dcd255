import uuid
from datetime import datetime

from sqlalchemy import Uuid, and_, bindparam, exists, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.chats.models import Chat, Message, MessageStatus
from app.core.db import UTCDateTime
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


async def reply_streaming_in_chat(
    session: AsyncSession, chat_id: uuid.UUID, *, fresh_after: datetime, lock: bool = False
) -> bool:
    """Whether a live reply streams in the chat, on any worker (the database is the judge).

    With `lock`, the chat row is locked first (Postgres), so two workers cannot both find the
    chat idle and start a reply; SQLite's BEGIN IMMEDIATE already serializes writers.
    """
    if lock and session.get_bind().dialect.name == "postgresql":
        await session.execute(select(Chat.id).where(Chat.id == chat_id).with_for_update())
    return bool(
        await session.scalar(_STREAMING_IN_CHAT, {"chat_id": chat_id, "fresh_after": fresh_after})
    )


# Built once (it runs before every reply): constructing it costs as much as running it.
_STREAMING_IN_CHAT = select(
    exists().where(
        Message.chat_id == bindparam("chat_id", type_=Uuid),
        Message.status == MessageStatus.STREAMING,
        Message.updated_at > bindparam("fresh_after", type_=UTCDateTime),
    )
)
