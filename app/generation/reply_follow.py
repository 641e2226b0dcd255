"""Following replies that stream on another worker: one Redis reader per reply per worker,
fanned out in this process to every client that follows it here.

A crowd rejoining one reply (a network blip, a popular shared screen) costs one blocked XREAD
connection and one viewer registration on each worker, not one per client: a connection per
client exhausted redis-py's pool (100), and the viewer renewals that share it failed, so the
streaming worker cancelled a reply that hundreds still followed.

The reader keeps the reply's events (as the streaming worker's own log does) while anyone here
follows it; each client reads them at its own place, and one that fell behind gets the waiting
text joined into one delta, numbered as its last part (ids may skip, nothing is lost).
"""

import asyncio
import json
import logging
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import suppress
from typing import Any

import redis.asyncio as redis

from app.generation.reply_events import ReplyEvent, next_event

logger = logging.getLogger("parley.generation")

# This worker's place in a followed reply's viewers set is renewed this often, and lapses when
# not renewed for VIEWER_LAPSE_SECONDS: long enough that a worker busy serving a crowd (whose
# renewals run late) is not taken for gone. A worker that stops following removes itself at once.
VIEWER_RENEW_SECONDS = 2.0
VIEWER_LAPSE_SECONDS = 10.0
# A reader blocked this long on a silent stream asks whether the reply is still alive.
FOLLOW_BLOCK_MS = 2000

Alive = Callable[[], Awaitable[bool]]


class ReplyGap(Exception):
    """The shared buffer lacks events the client missed (trimmed, or lost while Redis was down):
    the reply cannot be replayed exactly from there."""


def _decode(entry_fields: dict[bytes, bytes]) -> list[ReplyEvent]:
    return [ReplyEvent(name, data, number) for number, name, data in json.loads(entry_fields[b"e"])]


def _entry_id(entry_id: bytes | str) -> str:
    return entry_id.decode() if isinstance(entry_id, bytes) else entry_id


class FollowedReply:
    """One reply followed from this worker: a reader task and the events it has read so far."""

    def __init__(
        self,
        key: str,
        *,
        commands: redis.Redis,
        reads: redis.Redis,
        keep_ms: int,
        alive: Alive,
    ) -> None:
        self.key = key
        self.commands = commands  # short commands; never blocks for long
        self.reads = reads  # the blocking XREADs, on their own pool
        # This worker's member in the reply's viewers set, its own so that a reader ending as
        # another starts (a client leaving as one arrives) never removes the newer one's.
        self.viewer = secrets.token_hex(8)
        self.keep_ms = keep_ms
        self.alive = alive
        self.log: list[ReplyEvent] = []
        self.base: int | None = None  # the number of the event before log[0], once read
        self.ended = False
        self.failure: Exception | None = None
        self.followers = 0
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._read(), name=f"follow:{self.key}")

    def stop(self) -> None:
        """Stops reading; the reader's last act is to leave the viewers set."""
        if self._task is not None:
            self._task.cancel()

    async def events(self, after: int) -> AsyncIterator[ReplyEvent]:
        """The events after number `after`, live until the reply's last; raises ReplyGap when
        some are missing, or the reader's Redis error."""
        while self.base is None and not self.ended:
            await self._wait()
        if self.base is not None and after < self.base:
            raise ReplyGap()
        cursor = max(0, after - (self.base or 0))
        log = self.log
        while True:
            if cursor >= len(log):
                if self.ended:
                    if self.failure is not None:
                        raise self.failure
                    return
                await self._wait()
                continue
            event, cursor = next_event(log, cursor)
            yield event
            if event.final:
                return

    async def _wait(self) -> None:
        wake = self._wake
        await wake.wait()

    def _wake_followers(self) -> None:
        wake, self._wake = self._wake, asyncio.Event()
        wake.set()

    async def _read(self) -> None:
        viewing = asyncio.create_task(self._view())
        try:
            await self._add_viewer()  # before anything else: the reply must not stop
            found: Any = await self.commands.xrange(self.key, min="-", max="+")
            entries: list[Any] = list(found or [])
            if not entries and not await self.commands.exists(self.key):
                return
            while True:
                cursor = self._append(entries)
                if self.log and self.log[-1].final:
                    return
                # RESP2 (redis-py's default): [[key, [(entry id, fields), ...]]], or None.
                answer: Any = await self.reads.xread({self.key: cursor}, block=FOLLOW_BLOCK_MS)
                entries = list(answer[0][1]) if answer else []
                if not entries and (
                    not await self.commands.exists(self.key) or not await self.alive()
                ):
                    return
        except Exception as exc:
            self.failure = exc
        finally:
            self.ended = True
            self._wake_followers()
            viewing.cancel()
            with suppress(asyncio.CancelledError, Exception):
                await viewing
            with suppress(Exception):
                await asyncio.shield(self.commands.zrem(self._viewers_key, self.viewer))

    def _append(self, entries: list[Any]) -> str:
        """Adds the entries' events to the log, in order; returns the last entry's id.
        ReplyGap when an event is missing between them."""
        cursor = "0-0"
        for entry_id, fields in entries:
            cursor = _entry_id(entry_id)
            for event in _decode(fields):
                if self.base is None:
                    self.base = event.id - 1
                expected = self.base + len(self.log) + 1
                if event.id < expected:
                    continue
                if event.id != expected:
                    raise ReplyGap()
                self.log.append(event)
        self._wake_followers()
        return cursor

    @property
    def _viewers_key(self) -> str:
        return f"{self.key}:viewers"

    async def _add_viewer(self) -> None:
        try:
            async with self.commands.pipeline(transaction=False) as pipe:
                pipe.zadd(self._viewers_key, {self.viewer: time.time() + VIEWER_LAPSE_SECONDS})
                pipe.pexpire(self._viewers_key, self.keep_ms)
                await pipe.execute()
        except redis.RedisError:
            logger.warning("could not register a viewer", exc_info=True)

    async def _view(self) -> None:
        """Keeps this worker counted in the viewers set while the reply is followed here."""
        while True:
            await asyncio.sleep(VIEWER_RENEW_SECONDS)
            await self._add_viewer()


class ReplyFollowers:
    """The replies this worker follows through Redis, one FollowedReply each, shared by every
    client following it here."""

    def __init__(self, *, commands: redis.Redis, reads: redis.Redis, keep_ms: int) -> None:
        self.commands = commands
        self.reads = reads
        self.keep_ms = keep_ms
        self._followed: dict[str, FollowedReply] = {}

    async def follow(self, key: str, after: int, alive: Alive) -> AsyncIterator[ReplyEvent]:
        """The events of the reply streamed to `key` after number `after`, live until its last.
        Ends early when the stream is gone or `alive()` says the reply no longer runs anywhere;
        raises ReplyGap when events after `after` are missing."""
        followed = self._followed.get(key)
        if followed is None or followed.ended:
            followed = FollowedReply(
                key,
                commands=self.commands,
                reads=self.reads,
                keep_ms=self.keep_ms,
                alive=alive,
            )
            self._followed[key] = followed
            followed.start()
        followed.followers += 1
        try:
            async for event in followed.events(after):
                yield event
        finally:
            followed.followers -= 1
            if followed.followers == 0:
                if self._followed.get(key) is followed:
                    del self._followed[key]
                followed.stop()

    def close(self) -> None:
        followed, self._followed = list(self._followed.values()), {}
        for reply in followed:
            reply.stop()
