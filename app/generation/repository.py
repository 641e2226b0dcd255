"""All the package's SQL: replies in their rows (chat messages and stateless generations alike),
and the history of stateless generations."""

import functools
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Integer,
    Row,
    String,
    Text,
    Uuid,
    and_,
    bindparam,
    delete,
    exists,
    or_,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession

from app.chats.models import Chat, Message, MessageStatus
from app.core.db import UTCDateTime, utcnow
from app.core.repository import Repository
from app.generation.models import Generation, IdempotencyKey
from app.generation.reply_stream import ReplyResult

# The two tables a reply is saved in; they share the reply's columns.
ReplyTable = type[Message] | type[Generation]


class ReplyRepository:
    """The rows of replies: saved as they stream, finished, and found streaming or stale."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def checkpoint(self, table: ReplyTable, row_id: uuid.UUID, text: str) -> None:
        """Saves a streaming reply's text so far, and marks it alive."""
        await self.session.execute(
            _checkpoint_statement(table), {"row_id": row_id, "text": text, "now": utcnow()}
        )

    async def finish(
        self, table: ReplyTable, row_id: uuid.UUID, result: ReplyResult
    ) -> Row[Any] | None:
        """Saves how a reply ended; the saved row, or None when it was deleted meanwhile."""
        # One statement saves the outcome and returns the saved row for the `done` event.
        chat_reply = "sources" in table.__table__.c
        saved = await self.session.execute(
            _finish_statement(table),
            (
                {"new_sources": result.sources or None, "new_tool_steps": result.tool_steps}
                if chat_reply
                else {}
            )
            | {
                "row_id": row_id,
                "new_text": result.text,
                "new_status": result.status,
                "new_prompt_tokens": result.prompt_tokens,
                "new_completion_tokens": result.completion_tokens,
                "new_estimated": result.usage_estimated,
                "new_ttft": result.time_to_first_token_ms,
                "new_duration": result.duration_ms,
                "new_error_code": result.error_code,
                "new_error_message": result.error_message,
                "new_served_by": result.served_by,
            },
        )
        return saved.first()

    async def saved(self, table: ReplyTable, row_id: uuid.UUID) -> Row[Any] | None:
        """A reply's row as saved now (its columns), or None when it is gone."""
        columns = table.__table__.c
        found = await self.session.execute(select(*columns).where(columns.id == row_id))
        return found.first()

    async def is_reply_in_owned_chat(
        self, user_id: uuid.UUID, chat_id: uuid.UUID, message_id: uuid.UUID
    ) -> bool:
        """Whether `message_id` is an assistant reply of the user's chat `chat_id` (not in the
        trash), in one query."""
        return bool(
            await self.session.scalar(
                _REPLY_IN_OWNED_CHAT,
                {"user_id": user_id, "chat_id": chat_id, "message_id": message_id},
            )
        )

    async def chat_activity(self, chat_id: uuid.UUID) -> datetime | None:
        """The chat's last_message_at as stored now; None when the chat is gone."""
        return await self.session.scalar(select(Chat.last_message_at).where(Chat.id == chat_id))

    async def streaming_in_chat(
        self, chat_id: uuid.UUID, *, fresh_after: datetime, lock: bool = False
    ) -> bool:
        """Whether a live reply streams in the chat, on any worker (the database is the judge).

        With `lock`, the chat row is locked first (Postgres), so two workers cannot both find the
        chat idle and start a reply; SQLite's BEGIN IMMEDIATE already serializes writers.
        """
        if lock and self.session.get_bind().dialect.name == "postgresql":
            await self.session.execute(select(Chat.id).where(Chat.id == chat_id).with_for_update())
        return bool(
            await self.session.scalar(
                _STREAMING_IN_CHAT, {"chat_id": chat_id, "fresh_after": fresh_after}
            )
        )

    async def mark_stale_interrupted(self, *, older_than: datetime) -> int:
        """Replies still `streaming` but not checkpointed since `older_than` lost their process:
        they become `interrupted`. Returns how many."""
        total = 0
        for table in (Message, Generation):
            result = await self.session.execute(
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


# The statements below are built once (per table) rather than per call: constructing one costs
# as much as running it. The reply statements are built on the table rather than the ORM class:
# an ORM-enabled UPDATE goes through the ORM's bulk-update machinery each time it runs (0.1 ms of
# CPU more than the same UPDATE on the table, here), and these run for every reply and every
# checkpoint.

_STREAMING_IN_CHAT = select(
    exists().where(
        Message.chat_id == bindparam("chat_id", type_=Uuid),
        Message.status == MessageStatus.STREAMING,
        Message.updated_at > bindparam("fresh_after", type_=UTCDateTime),
    )
)


_REPLY_IN_OWNED_CHAT = select(
    exists().where(
        Message.id == bindparam("message_id", type_=Uuid),
        Message.chat_id == bindparam("chat_id", type_=Uuid),
        Message.role == "assistant",
        Chat.id == Message.chat_id,
        Chat.user_id == bindparam("user_id", type_=Uuid),
        Chat.deleted_at.is_(None),
    )
)


@functools.cache
def _checkpoint_statement(model: Any) -> Any:
    """Saves a streaming row's text."""
    table = model.__table__
    return (
        update(table)
        .where(table.c.id == bindparam("row_id", type_=Uuid), table.c.status == "streaming")
        .values(
            content=bindparam("text", type_=Text), updated_at=bindparam("now", type_=UTCDateTime)
        )
    )


@functools.cache
def _finish_statement(model: Any) -> Any:
    """Saves a reply's outcome (and, for a chat reply, its sources and tool steps) and
    returns the row."""
    table = model.__table__
    chat_reply = (
        {
            "sources": bindparam("new_sources", type_=JSON(none_as_null=True)),
            "tool_steps": bindparam("new_tool_steps", type_=JSON(none_as_null=True)),
        }
        if "sources" in table.c
        else {}
    )
    return (
        update(table)
        .where(table.c.id == bindparam("row_id", type_=Uuid))
        .values(
            content=bindparam("new_text", type_=Text),
            status=bindparam("new_status", type_=String),
            prompt_tokens=bindparam("new_prompt_tokens", type_=Integer),
            completion_tokens=bindparam("new_completion_tokens", type_=Integer),
            usage_estimated=bindparam("new_estimated", type_=Boolean),
            time_to_first_token_ms=bindparam("new_ttft", type_=Integer),
            duration_ms=bindparam("new_duration", type_=Integer),
            error_code=bindparam("new_error_code", type_=String),
            error_message=bindparam("new_error_message", type_=Text),
            served_by=bindparam("new_served_by", type_=JSON(none_as_null=True)),
            **chat_reply,
        )
        .returning(*table.c)
    )


class IdempotencyRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, record: IdempotencyKey) -> None:
        self.session.add(record)
        await self.session.flush()

    async def find(self, user_id: uuid.UUID, key: str) -> IdempotencyKey | None:
        found = await self.session.scalars(
            select(IdempotencyKey).where(
                IdempotencyKey.user_id == user_id, IdempotencyKey.key == key
            )
        )
        return found.first()

    async def delete_expired(self) -> None:
        await self.session.execute(
            delete(IdempotencyKey).where(IdempotencyKey.expires_at <= utcnow())
        )

    async def delete(self, record_id: uuid.UUID) -> None:
        await self.session.execute(delete(IdempotencyKey).where(IdempotencyKey.id == record_id))

    async def set_reply(self, record_id: uuid.UUID, kind: str, reply_id: uuid.UUID) -> None:
        await self.session.execute(
            update(IdempotencyKey)
            .where(IdempotencyKey.id == record_id)
            .values(reply_kind=kind, reply_id=reply_id)
        )
