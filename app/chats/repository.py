import json
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import (
    Boolean,
    ColumnElement,
    Integer,
    Select,
    Uuid,
    bindparam,
    column,
    delete,
    func,
    insert,
    literal,
    literal_column,
    or_,
    select,
    text,
    tuple_,
    update,
)
from sqlalchemy.orm import aliased

from app.chats.models import Chat, ChatTag, Message
from app.chats.search import DENSE_MATCHES, SearchTerms
from app.core.db import UTCDateTime
from app.core.repository import Repository


@dataclass(frozen=True)
class ChatKey:
    """A chat's place in the listing order: pinned first, then most recently active."""

    pinned: bool
    last_message_at: datetime
    id: uuid.UUID


def _simple(value: Any) -> Any:
    """to_tsvector / to_tsquery with the 'simple' configuration, as in the migration's index."""
    return literal_column("'simple'"), value


class ChatRepository(Repository[Chat]):
    model = Chat

    async def get_for_user(self, user_id: uuid.UUID, chat_id: uuid.UUID) -> Chat | None:
        """The user's chat, unless it is in the trash."""
        return await self.session.scalar(_OWNED_CHAT, {"chat_id": chat_id, "user_id": user_id})

    async def get_for_user_with_trash(
        self, user_id: uuid.UUID, chat_id: uuid.UUID, *, trashed_since: datetime
    ) -> Chat | None:
        """The user's chat, also from the trash if it went there after `trashed_since`."""
        return await self.session.scalar(
            select(Chat).where(
                Chat.id == chat_id,
                Chat.user_id == user_id,
                or_(Chat.deleted_at.is_(None), Chat.deleted_at >= trashed_since),
            )
        )

    async def delete_by_id(self, chat_id: uuid.UUID) -> None:
        """Deletes the chat (its messages go by ON DELETE CASCADE), if it still exists."""
        await self.session.execute(delete(Chat).where(Chat.id == chat_id))

    async def purge_trashed(self, *, before: datetime, limit: int) -> int:
        """Deletes up to `limit` chats that went to the trash before `before` (their messages go
        by ON DELETE CASCADE); returns how many."""
        ids = list(
            await self.session.scalars(
                select(Chat.id).where(Chat.deleted_at < before).order_by(Chat.id).limit(limit)
            )
        )
        if ids:
            await self.session.execute(delete(Chat).where(Chat.id.in_(ids)))
        return len(ids)

    async def list_page(
        self,
        user_id: uuid.UUID,
        *,
        limit: int,
        after: ChatKey | None = None,
        pinned: bool | None = None,
        archived: bool = False,
        trashed_since: datetime | None = None,
        search: SearchTerms | None = None,
        project_id: uuid.UUID | None = None,
        tag: str | None = None,
    ) -> list[Chat]:
        """Up to `limit` chats in listing order, strictly after `after` (keyset pagination).

        With `trashed_since`, the chats in the trash that went there after it (archived or not);
        without, the chats out of the trash, archived or not as asked.
        """
        statement = select(Chat).where(Chat.user_id == user_id)
        if trashed_since is None:
            statement = statement.where(Chat.deleted_at.is_(None), Chat.archived == archived)
        else:
            statement = statement.where(Chat.deleted_at >= trashed_since)
        if pinned is not None:
            statement = statement.where(Chat.pinned == pinned)
        if project_id is not None:
            statement = statement.where(Chat.project_id == project_id)
        if tag is not None:
            statement = statement.where(
                Chat.id.in_(
                    select(ChatTag.chat_id).where(ChatTag.user_id == user_id, ChatTag.tag == tag)
                )
            )
        if after is not None:
            statement = statement.where(
                tuple_(Chat.pinned, Chat.last_message_at, Chat.id)
                < tuple_(
                    literal(after.pinned, Boolean()),
                    literal(after.last_message_at, UTCDateTime()),
                    literal(after.id, Uuid()),
                )
            )
        if search is not None:
            statement = statement.where(await self._matches(search))
        statement = statement.order_by(
            Chat.pinned.desc(), Chat.last_message_at.desc(), Chat.id.desc()
        ).limit(limit)
        return list(await self.session.scalars(statement))

    async def set_tags(self, chat: Chat, tags: list[str]) -> None:
        """Replaces the chat's tags (its `tags` column and its chat_tag rows together)."""
        await self.session.execute(delete(ChatTag).where(ChatTag.chat_id == chat.id))
        if tags:
            await self.session.execute(
                insert(ChatTag),
                [{"chat_id": chat.id, "tag": tag, "user_id": chat.user_id} for tag in tags],
            )
        chat.tags = sorted(tags) or None

    async def tag_counts(self, user_id: uuid.UUID) -> list[tuple[str, int]]:
        """The user's tags with how many of their chats (out of the trash) carry each, by tag."""
        count = func.count()
        rows = await self.session.execute(
            select(ChatTag.tag, count)
            .join(Chat, Chat.id == ChatTag.chat_id)
            .where(ChatTag.user_id == user_id, Chat.deleted_at.is_(None))
            .group_by(ChatTag.tag)
            .order_by(ChatTag.tag)
        )
        return [(tag, number) for tag, number in rows]

    async def project_chat_counts(
        self, user_id: uuid.UUID, project_ids: list[uuid.UUID]
    ) -> dict[uuid.UUID, int]:
        """How many chats (out of the trash) each project holds."""
        if not project_ids:
            return {}
        rows = await self.session.execute(
            select(Chat.project_id, func.count())
            .where(
                Chat.user_id == user_id,
                Chat.project_id.in_(project_ids),
                Chat.deleted_at.is_(None),
            )
            .group_by(Chat.project_id)
        )
        return {project_id: number for project_id, number in rows if project_id}

    async def release_project(
        self, project_id: uuid.UUID, *, trash_at: datetime | None = None
    ) -> None:
        """Takes every chat out of the project (its trashed ones too), before the project is
        deleted; with `trash_at`, also moves those not yet in the trash there."""
        if trash_at is not None:
            await self.session.execute(
                update(Chat)
                .where(Chat.project_id == project_id, Chat.deleted_at.is_(None))
                .values(deleted_at=trash_at)
                .execution_options(synchronize_session=False)
            )
        await self.session.execute(
            update(Chat)
            .where(Chat.project_id == project_id)
            .values(project_id=None)
            .execution_options(synchronize_session=False)
        )

    async def _matches(self, search: SearchTerms) -> ColumnElement[bool]:
        if self.session.get_bind().dialect.name == "postgresql":
            return await self._matches_postgres(search)
        return await self._matches_sqlite(search)

    async def _matches_sqlite(self, search: SearchTerms) -> ColumnElement[bool]:
        query = search.fts5()
        title_hits = text("SELECT rowid FROM chat_search WHERE chat_search MATCH :title_q")
        in_title = literal_column("chat.rowid").in_(
            title_hits.bindparams(title_q=query).columns(column("rowid", Integer))
        )
        message_hits = text(
            "SELECT rowid FROM message_search WHERE message_search MATCH :text_q"
        ).bindparams(text_q=query)
        hits = message_hits.columns(column("rowid", Integer))
        # Counting matches up to the threshold is cheap (FTS5 streams them); it picks the plan.
        counted = await self.session.scalar(
            text(
                "SELECT count(*) FROM (SELECT 1 FROM message_search "
                "WHERE message_search MATCH :text_q LIMIT :cap)"
            ).bindparams(text_q=query, cap=DENSE_MATCHES)
        )
        if (counted or 0) < DENSE_MATCHES:
            # Rare words: look up each matching message's chat (~1 µs a match).
            in_text = Chat.id.in_(
                select(Message.chat_id).where(literal_column("message.rowid").in_(hits))
            )
            return or_(in_title, in_text)
        # Common words: keep the matches' rowids in a temporary index (one pass over FTS5),
        # walk the chats in list order and check each through a covering index on its
        # messages' rowids, stopping at a page: most chats match, so few are checked.
        # The unary + keeps SQLite from driving the lookup by rowid (once per chat!).
        per_chat = (
            select(literal(1))
            .select_from(Message)
            .where(Message.chat_id == Chat.id, literal_column("+message.rowid").in_(hits))
            .exists()
        )
        return or_(in_title, per_chat)

    async def _matches_postgres(self, search: SearchTerms) -> ColumnElement[bool]:
        query = func.to_tsquery(*_simple(literal(search.tsquery())))
        # Through the title's GIN index once, not to_tsvector() on every chat walked past.
        titled = aliased(Chat)
        in_title = Chat.id.in_(
            select(titled.id).where(func.to_tsvector(*_simple(titled.title)).op("@@")(query))
        )
        content_matches = func.to_tsvector(*_simple(Message.content)).op("@@")(query)
        if await self._estimated_matches(content_matches) < DENSE_MATCHES:
            # Rare words: the GIN index finds every matching message, then their chats (a few
            # µs a match: each is a heap fetch).
            in_text = Chat.id.in_(select(Message.chat_id).where(content_matches))
            return or_(in_title, in_text)
        # Common words: most chats match, so check the user's chats in list order and stop at
        # a page. coalesce() keeps the planner from probing the GIN index once per chat (it
        # would read the word's whole posting list each time); a chat's own messages are few.
        per_chat = (
            select(literal(True))
            .where(
                Message.chat_id == Chat.id,
                func.to_tsvector(*_simple(func.coalesce(Message.content, ""))).op("@@")(query),
            )
            .limit(1)
            .scalar_subquery()
        )
        return or_(in_title, per_chat)

    async def _estimated_matches(self, condition: ColumnElement[bool]) -> float:
        """The planner's row estimate (from ANALYZE statistics); costs well under a millisecond.

        The query is rendered with literal values: a prepared statement with parameters may get
        a generic plan, whose estimate ignores the words searched for.
        """
        dialect = self.session.get_bind().dialect
        probe = select(literal(1)).select_from(Message).where(condition)
        sql = str(probe.compile(dialect=dialect, compile_kwargs={"literal_binds": True}))
        # Colons escaped so that text() sees no bind parameters (the tsquery has `:*`).
        plan = await self.session.scalar(text("EXPLAIN (FORMAT JSON) " + sql.replace(":", r"\:")))
        if isinstance(plan, str):
            plan = json.loads(plan)
        return float(plan[0]["Plan"]["Plan Rows"])


class ThreadRow(NamedTuple):
    """One message of a thread, as a prompt (and a message added below it) needs it."""

    id: uuid.UUID
    parent_id: uuid.UUID | None
    depth: int
    role: str
    content: str
    # Replies: who answered ({"model", "deployment"}), so the chat's next turn stays there.
    served_by: dict[str, str] | None = None
    # Replies that called tools: their steps (app/generation/pipeline/stages/tools.py).
    tool_steps: list[dict[str, Any]] | None = None


class MessageRepository(Repository[Message]):
    model = Message

    def stage(self, message: Message) -> None:
        """Adds a message to be written with the unit's next flush (so a user message and its
        reply go in one statement)."""
        self.session.add(message)

    async def get_many_in_chat(
        self, chat_id: uuid.UUID, message_ids: set[uuid.UUID]
    ) -> dict[uuid.UUID, Message]:
        result = await self.session.scalars(
            select(Message).where(Message.id.in_(message_ids), Message.chat_id == chat_id)
        )
        return {message.id: message for message in result}

    async def get_in_chat(self, chat_id: uuid.UUID, message_id: uuid.UUID) -> Message | None:
        return await self.session.scalar(
            select(Message).where(Message.id == message_id, Message.chat_id == chat_id)
        )

    async def newest(self, chat_id: uuid.UUID) -> Message | None:
        """The most recently created message: always a leaf, the tip of the current thread."""
        return await self.session.scalar(
            select(Message)
            .where(Message.chat_id == chat_id)
            .order_by(Message.created_at.desc(), Message.id.desc())
            .limit(1)
        )

    async def newest_descendant(self, message: Message) -> Message:
        """The newest message in `message`'s subtree (itself when it is a leaf)."""
        # Usually the newest message at or below its depth descends from it: it does when the
        # message has no siblings, and otherwise when its ancestor at that depth is `message`.
        newest = await self.session.scalar(
            select(Message)
            .where(Message.chat_id == message.chat_id, Message.depth >= message.depth)
            .order_by(Message.created_at.desc(), Message.id.desc())
            .limit(1)
        )
        if newest is None or newest.id == message.id:
            return message
        [ancestor] = await self.path_segment(newest, message.depth, message.depth)
        if ancestor.id == message.id:
            return newest
        # An older branch: walk its subtree (abandoned branches are usually short).
        subtree = (
            select(Message.id, Message.created_at)
            .where(Message.id == message.id)
            .cte("subtree", recursive=True)
        )
        subtree = subtree.union_all(
            select(Message.id, Message.created_at).join(subtree, Message.parent_id == subtree.c.id)
        )
        newest_id = await self.session.scalar(
            select(subtree.c.id).order_by(subtree.c.created_at.desc(), subtree.c.id.desc()).limit(1)
        )
        found = await self.get(newest_id) if newest_id is not None else None
        return found or message

    async def path_segment(self, anchor: Message, low: int, high: int) -> list[Message]:
        """The ancestors of `anchor` (itself included) with depth in [low, high], root first.

        Each ancestor is one level above the next, so at a depth holding a single message of
        the chat that message is the ancestor: a page of a long thread is one range scan over
        (chat_id, depth). Only depths with siblings (edits, regenerated replies) need the parent
        links, followed from the nearest deeper ancestor: never a walk up the whole thread.
        """
        high = min(high, anchor.depth)
        if low > high:
            return []
        in_chat = Message.chat_id == anchor.chat_id
        rows = list(
            await self.session.scalars(
                select(Message).where(in_chat, Message.depth.between(low, high))
            )
        )
        per_depth = Counter(row.depth for row in rows)
        branched = {depth for depth, count in per_depth.items() if count > 1}
        if not branched:
            return sorted(rows, key=lambda m: m.depth)
        if high < anchor.depth - 1:
            # Siblings in range, and the anchor further down (a newer page): the chain to
            # resolve them starts below, so find the sibling depths there too. (At the
            # anchor's own depth the anchor is the answer, so it needs no check.)
            branched |= set(
                await self.session.scalars(
                    select(Message.depth)
                    .where(in_chat, Message.depth.between(high + 1, anchor.depth - 1))
                    .group_by(Message.depth)
                    .having(func.count() > 1)
                )
            )
        # (id, parent_id) of the messages at each depth needed to resolve the branched ones.
        links: dict[int, list[tuple[uuid.UUID, uuid.UUID | None]]] = {}
        for row in rows:
            links.setdefault(row.depth, []).append((row.id, row.parent_id))
        needed = {d for b in branched for d in (b, b + 1) if d <= anchor.depth} - set(links)
        if needed:
            extra = await self.session.execute(
                select(Message.id, Message.parent_id, Message.depth).where(
                    in_chat, Message.depth.in_(needed)
                )
            )
            for message_id, parent_id, depth in extra:
                links.setdefault(depth, []).append((message_id, parent_id))
        chosen: dict[int, uuid.UUID] = {anchor.depth: anchor.id}
        for depth in sorted(branched, reverse=True):
            if depth == anchor.depth:
                continue
            # The ancestor one level deeper: resolved already, or alone at its depth.
            below = chosen.get(depth + 1) or links[depth + 1][0][0]
            parent = next(p for i, p in links[depth + 1] if i == below)
            if parent is None:  # pragma: no cover - only roots lack a parent
                raise LookupError("message tree is inconsistent")
            chosen[depth] = parent
        path = [r for r in rows if r.depth not in branched or chosen.get(r.depth) == r.id]
        return sorted(path, key=lambda m: m.depth)

    async def thread_rows(
        self, chat_id: uuid.UUID, leaf_id: uuid.UUID | None = None
    ) -> list[ThreadRow]:
        """The thread from the root to `leaf_id` (default: the newest message) as plain rows,
        root first; empty when the chat has no messages or `leaf_id` is not one of them.

        What a reply's prompt is built from, read in one statement: a walk up the parent links
        from the leaf (one index lookup per message), and rows rather than loaded messages, as
        building an ORM object per message of a long chat would cost more than the query.
        """
        if leaf_id is None:
            rows = await self.session.execute(_THREAD_TO_NEWEST, {"chat_id": chat_id})
        else:
            rows = await self.session.execute(
                _THREAD_TO_LEAF, {"chat_id": chat_id, "leaf_id": leaf_id}
            )
        return [ThreadRow(*row) for row in rows]

    async def thread(self, chat_id: uuid.UUID, leaf_id: uuid.UUID | None = None) -> list[Message]:
        """The path from the root to `leaf_id` (default: the newest message), root first."""
        leaf = (
            await self.get_in_chat(chat_id, leaf_id)
            if leaf_id is not None
            else await self.newest(chat_id)
        )
        if leaf is None:
            return []
        return await self.path_segment(leaf, 0, leaf.depth)

    async def siblings(
        self, chat_id: uuid.UUID, messages: list[Message]
    ) -> dict[uuid.UUID | None, list[uuid.UUID]]:
        """For each parent of the given messages (None for roots): its children, oldest first."""
        parents = {m.parent_id for m in messages if m.parent_id is not None}
        found: list[tuple[uuid.UUID, uuid.UUID | None, datetime]] = []
        columns = (Message.id, Message.parent_id, Message.created_at)
        if parents:
            # By parent only: children share their parent's chat, and a chat_id condition
            # tempts SQLite into scanning the whole chat (its statistics assume small chats).
            rows = await self.session.execute(
                select(*columns).where(Message.parent_id.in_(parents))
            )
            found += [(row[0], row[1], row[2]) for row in rows]
        if any(m.parent_id is None for m in messages):
            rows = await self.session.execute(
                select(*columns).where(Message.chat_id == chat_id, Message.depth == 0)
            )
            found += [(row[0], row[1], row[2]) for row in rows]
        children: dict[uuid.UUID | None, list[uuid.UUID]] = {}
        for message_id, parent_id, _created_at in sorted(found, key=lambda r: (r[2], r[0])):
            children.setdefault(parent_id, []).append(message_id)
        return children

    async def all_in_chat(self, chat_id: uuid.UUID) -> list[Message]:
        """Every message of every branch, oldest first."""
        result = await self.session.scalars(
            select(Message)
            .where(Message.chat_id == chat_id)
            .order_by(Message.created_at, Message.id)
        )
        return list(result)


# Statements on every reply's path, built once with bind parameters: constructing a statement
# costs SQLAlchemy as much as running a simple one, and several times more for a recursive one.
_OWNED_CHAT = select(Chat).where(
    Chat.id == bindparam("chat_id", type_=Uuid),
    Chat.user_id == bindparam("user_id", type_=Uuid),
    Chat.deleted_at.is_(None),
)


def _thread_query(leaf: ColumnElement[bool]) -> Select[Any]:
    """Root-first path to the message matching `leaf` in chat :chat_id, as ThreadRow columns."""
    columns = (
        Message.id,
        Message.parent_id,
        Message.depth,
        Message.role,
        Message.content,
        Message.served_by,
        Message.tool_steps,
    )
    path = (
        select(*columns)
        .where(Message.chat_id == bindparam("chat_id", type_=Uuid), leaf)
        .cte("path", recursive=True)
    )
    above = aliased(Message)
    path = path.union_all(
        select(
            above.id,
            above.parent_id,
            above.depth,
            above.role,
            above.content,
            above.served_by,
            above.tool_steps,
        ).join(path, above.id == path.c.parent_id)
    )
    return select(path).order_by(path.c.depth)


_THREAD_TO_LEAF = _thread_query(Message.id == bindparam("leaf_id", type_=Uuid))
_THREAD_TO_NEWEST = _thread_query(
    Message.id
    == select(Message.id)
    .where(Message.chat_id == bindparam("chat_id", type_=Uuid))
    .order_by(Message.created_at.desc(), Message.id.desc())
    .limit(1)
    .scalar_subquery()
)
