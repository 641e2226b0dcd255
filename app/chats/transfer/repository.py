"""The SQL of imports and bulk exports: chats and messages written many rows a statement, and
read a page of chats at a time."""

import uuid
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import insert, select, tuple_

from app.chats.models import Chat, ChatTag, Message
from app.core.repository import Repository

# Rows per INSERT statement (SQLAlchemy splits larger lists itself; this bounds one statement's
# parameters on both databases).
_ROWS_PER_STATEMENT = 1000
# Core INSERTs on the tables, not the ORM's bulk insert: the ORM sends the message table's rows
# one statement each (it does for a self-referencing table), Core as one executemany.
_INSERT_CHAT = insert(Chat.metadata.tables[Chat.__tablename__])
_INSERT_MESSAGE = insert(Message.metadata.tables[Message.__tablename__])
# Keys per IN (...) lookup.
_KEYS_PER_QUERY = 500


class TransferRepository(Repository[Chat]):
    model = Chat

    async def imported(
        self, user_id: uuid.UUID, keys: Iterable[tuple[str, str]]
    ) -> set[tuple[str, str]]:
        """Which of these (source, source id) pairs the user already imported."""
        wanted = list(set(keys))
        found: set[tuple[str, str]] = set()
        for start in range(0, len(wanted), _KEYS_PER_QUERY):
            part = wanted[start : start + _KEYS_PER_QUERY]
            rows = await self.session.execute(
                select(Chat.import_source, Chat.import_id).where(
                    Chat.user_id == user_id,
                    tuple_(Chat.import_source, Chat.import_id).in_(part),
                )
            )
            found.update((str(source), str(import_id)) for source, import_id in rows)
        return found

    async def existing_ids(self, user_id: uuid.UUID, ids: Iterable[uuid.UUID]) -> set[uuid.UUID]:
        """Which of these chat ids are the user's own chats (trashed ones included)."""
        wanted = list(set(ids))
        found: set[uuid.UUID] = set()
        for start in range(0, len(wanted), _KEYS_PER_QUERY):
            part = wanted[start : start + _KEYS_PER_QUERY]
            found.update(
                await self.session.scalars(
                    select(Chat.id).where(Chat.user_id == user_id, Chat.id.in_(part))
                )
            )
        return found

    async def insert_chats(self, rows: Sequence[dict[str, Any]]) -> None:
        """Writes chats, many a statement (SQLAlchemy Core executemany)."""
        for start in range(0, len(rows), _ROWS_PER_STATEMENT):
            await self.session.execute(_INSERT_CHAT, rows[start : start + _ROWS_PER_STATEMENT])

    async def insert_messages(self, rows: Sequence[dict[str, Any]]) -> None:
        """Writes messages, parents before children, many a statement."""
        for start in range(0, len(rows), _ROWS_PER_STATEMENT):
            await self.session.execute(_INSERT_MESSAGE, rows[start : start + _ROWS_PER_STATEMENT])

    async def chat_page(
        self,
        user_id: uuid.UUID,
        *,
        after: uuid.UUID | None,
        limit: int,
        archived: bool,
        trashed: bool,
        project_id: uuid.UUID | None = None,
        tag: str | None = None,
    ) -> list[Chat]:
        """Up to `limit` of the user's chats in id order after `after`: those out of the trash
        and not archived, plus the archived and the trashed ones if asked; only one project's
        or those with one tag, if asked."""
        statement = select(Chat).where(Chat.user_id == user_id)
        if project_id is not None:
            statement = statement.where(Chat.project_id == project_id)
        if tag is not None:
            statement = statement.where(
                Chat.id.in_(
                    select(ChatTag.chat_id).where(ChatTag.user_id == user_id, ChatTag.tag == tag)
                )
            )
        if not archived:
            statement = statement.where(Chat.archived.is_(False))
        if not trashed:
            statement = statement.where(Chat.deleted_at.is_(None))
        if after is not None:
            statement = statement.where(Chat.id > after)
        return list(await self.session.scalars(statement.order_by(Chat.id).limit(limit)))

    async def messages_of(self, chat_ids: Sequence[uuid.UUID]) -> list[Message]:
        """Every message of these chats, each chat's oldest first."""
        if not chat_ids:
            return []
        return list(
            await self.session.scalars(
                select(Message)
                .where(Message.chat_id.in_(chat_ids))
                .order_by(Message.chat_id, Message.created_at, Message.id)
            )
        )
