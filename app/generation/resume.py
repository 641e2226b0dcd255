"""Rejoining a reply: the events a client missed, then the rest live, on any worker.

Where a reply's events are found, in order:
1. this worker streams it (or ended it a short while ago): its own log (ReplyStream.events);
2. with Redis, another worker published them (reply_buffer.py), followed live until the end;
3. neither (the buffer expired, or no Redis and another worker): the saved reply, as the one
   event that ends a reply (`done`, or `error` with the saved row), at once. A rejoin never
   starts a generation and never waits on a reply nobody can see.
"""

import logging
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import redis.asyncio as redis
from sqlalchemy import Row

from app.chats.errors import ChatNotFound, MessageNotFound
from app.chats.models import Message, MessageStatus
from app.chats.repository import ChatRepository
from app.chats.schemas import MessageRead
from app.core.config import Settings
from app.core.db import Database, utcnow
from app.core.uow import UnitOfWork, unit_of_work
from app.generation import reply_events
from app.generation.errors import ReplyFailed, ReplyNotResumable
from app.generation.models import Generation
from app.generation.parts import GenerationParts
from app.generation.reply_buffer import ReplyGap
from app.generation.reply_events import ReplyEvent
from app.generation.repository import ReplyRepository, ReplyTable
from app.generation.schemas import GenerationRead
from app.generation.stale_replies import stale_after

logger = logging.getLogger("parley.generation")


@dataclass(frozen=True)
class SavedReply:
    """Where a reply is saved: its table, row and how the row reads in a `done` event."""

    table: ReplyTable
    row_id: uuid.UUID
    serialize: Callable[[Any], dict[str, Any]]


def chat_reply(message_id: uuid.UUID) -> SavedReply:
    return SavedReply(Message, message_id, _message_json)


def generation_reply(generation_id: uuid.UUID) -> SavedReply:
    return SavedReply(Generation, generation_id, _generation_json)


def _message_json(row: Row[Any]) -> dict[str, Any]:
    return MessageRead.model_validate(row).model_dump(mode="json")


def _generation_json(row: Row[Any]) -> dict[str, Any]:
    return GenerationRead.model_validate(row).model_dump(mode="json")


class ReplyResumer:
    def __init__(
        self,
        db: Database,
        settings: Settings,
        runtime: GenerationParts,
        uow: UnitOfWork | None = None,
    ) -> None:
        self.db = db
        self.settings = settings
        self.runtime = runtime
        self.uow = uow  # the request's, for looking the reply up

    async def chat_reply(
        self, user_id: uuid.UUID, chat_id: uuid.UUID, message_id: uuid.UUID
    ) -> SavedReply:
        """The assistant reply `message_id` of the user's chat `chat_id`: ChatNotFound or
        MessageNotFound (404) otherwise. A reply streaming here is checked in memory, so a
        crowd of clients rejoining at once (a network blip) costs the database nothing more."""
        local = self.runtime.replies.find(message_id)
        # Chat replies stream under their chat's key (GenerationService._chat_key).
        if local is not None and local.owner_id == user_id and local.key == f"chat:{chat_id}":
            return chat_reply(message_id)
        assert self.uow is not None
        if await self.uow.get(ReplyRepository).is_reply_in_owned_chat(user_id, chat_id, message_id):
            return chat_reply(message_id)
        if await self.uow.get(ChatRepository).get_for_user(user_id, chat_id) is None:
            raise ChatNotFound()
        raise MessageNotFound()

    async def events(self, reply: SavedReply, after: int = 0) -> AsyncIterator[ReplyEvent]:
        """The reply's events after number `after`, live until it ends; the caller has checked
        that the reply is the user's."""
        local = self.runtime.replies.find(reply.row_id)
        if local is not None:
            async for event in local.events(after):
                yield event
            return
        last = after
        buffer = self.runtime.buffer
        if buffer is not None:

            async def alive() -> bool:
                return await self._streaming(reply)

            try:
                async for event in buffer.follow(str(reply.row_id), after, alive):
                    last = event.id
                    yield event
                    if event.final:
                        return
            except ReplyGap:
                logger.warning("a rejoined reply has a gap in Redis", extra={"reply": reply.row_id})
            except redis.RedisError:
                logger.warning("could not read a reply's events from Redis", exc_info=True)
        yield await self.saved_state(reply, last + 1)

    async def saved_state(self, reply: SavedReply, number: int) -> ReplyEvent:
        """The saved reply as the event that ends it, numbered `number`."""
        async with unit_of_work(self.db) as uow:
            row = await uow.get(ReplyRepository).saved(reply.table, reply.row_id)
        if row is None:
            saved: dict[str, Any] = {"id": str(reply.row_id), "deleted": True}
            return reply_events.error("reply_deleted", "The reply was deleted.", saved=saved)
        data = reply.serialize(row)
        status, code = row.status, row.error_code
        stopped = status == MessageStatus.CANCELLED and code == "stopped"
        if status == MessageStatus.COMPLETE or stopped:
            return ReplyEvent("done", data, number)
        if status == MessageStatus.STREAMING:
            event = reply_events.error(
                ReplyNotResumable.code, ReplyNotResumable.message, saved=data
            )
        else:
            event = reply_events.error(
                code or status, row.error_message or "The reply did not complete.", saved=data
            )
        return event.numbered(number)

    async def outcome(self, reply: SavedReply) -> dict[str, Any]:
        """The saved reply once it has ended, for a JSON answer: waits for a running one;
        ReplyFailed when it failed, ReplyNotResumable when it cannot be seen from here."""
        local = self.runtime.replies.find(reply.row_id)
        if local is not None:
            return await local.saved_reply()
        last: ReplyEvent | None = None
        async for event in self.events(reply):
            last = event
        assert last is not None and last.final
        if last.name == "done":
            return last.data
        if last.data["code"] == ReplyNotResumable.code:
            raise ReplyNotResumable()
        raise ReplyFailed(last.data["message"], status_code=502, code=last.data["code"])

    async def _streaming(self, reply: SavedReply) -> bool:
        """Whether the reply still streams somewhere: saved as `streaming`, checkpointed lately."""
        async with unit_of_work(self.db) as uow:
            row = await uow.get(ReplyRepository).saved(reply.table, reply.row_id)
        fresh_after = utcnow() - stale_after(self.settings)
        return bool(
            row is not None
            and row.status == MessageStatus.STREAMING
            and row.updated_at > fresh_after
        )
