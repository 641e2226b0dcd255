"""Replies' events in Redis streams, so a client can rejoin a reply on any worker.

The worker streaming a reply publishes its events (ReplyStream._emit -> publish, which never
waits): one background task flushes whatever accumulated, for every reply of the process, in one
pipelined round trip. Each flush appends one entry per reply to the stream `parley:reply:<id>`:
its id is `<number of the last event>-0` and it holds the events in order, so a reader after
event n asks for the entries from `<n + 1>-0` on and skips what it saw. The stream is capped
(XADD MAXLEN ~) and expires REPLY_BUFFER_SECONDS after its last entry.

A client following a reply through another worker is counted in the sorted set
`parley:reply:<id>:viewers` (member: a random token, score: when it lapses), which the streaming
worker reads before it stops a reply whose own clients went away.
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

from app.generation.reply_events import ReplyEvent

logger = logging.getLogger("parley.generation")

KEY_PREFIX = "parley:reply:"
# A following client's place in the viewers set is renewed this often, and lapses after twice it.
VIEWER_RENEW_SECONDS = 2.0
# A follower blocked this long on a silent stream asks whether the reply is still alive.
FOLLOW_BLOCK_MS = 2000
_COMPACT_JSON = json.JSONEncoder(separators=(",", ":"))


class ReplyGap(Exception):
    """The shared buffer lacks events the client missed (trimmed, or lost while Redis was down):
    the reply cannot be replayed exactly from there."""


def _stream_key(reply_id: str) -> str:
    return f"{KEY_PREFIX}{reply_id}"


def _decode(entry_fields: dict[bytes, bytes]) -> list[ReplyEvent]:
    return [ReplyEvent(name, data, number) for number, name, data in json.loads(entry_fields[b"e"])]


class RedisReplyBuffer:
    """Publishes replies' events to Redis streams and reads them back for rejoining clients."""

    def __init__(
        self, url: str, *, keep_seconds: float, max_entries: int, name: str = "parley-replies"
    ) -> None:
        # Named, so that CLIENT LIST tells these connections (some blocked in XREAD) apart.
        self.client = redis.from_url(
            url, socket_timeout=10, socket_connect_timeout=5, client_name=name
        )
        self.keep_ms = max(1000, int(keep_seconds * 1000))
        self.max_entries = max_entries
        self._pending: dict[str, list[ReplyEvent]] = {}
        self._ready = asyncio.Event()
        self._flusher: asyncio.Task[None] | None = None

    # --- publishing (the streaming worker) ------------------------------------------------------

    def publish(self, reply_id: str, event: ReplyEvent) -> None:
        """Queues the event for the next flush; never waits on Redis."""
        batch = self._pending.get(reply_id)
        if batch is None:
            self._pending[reply_id] = [event]
            self._ready.set()
        else:
            batch.append(event)

    async def start(self) -> None:
        self._flusher = asyncio.create_task(self._flush_forever(), name="reply-buffer")

    async def _flush_forever(self) -> None:
        while True:
            await self._ready.wait()
            self._ready.clear()
            await self.flush()

    async def flush(self) -> None:
        """Writes what accumulated, every reply's in one pipelined round trip. Tokens arriving
        meanwhile wait for the next: the busier the server, the bigger (and fewer) the writes."""
        if not self._pending:
            return
        pending, self._pending = self._pending, {}
        try:
            async with self.client.pipeline(transaction=False) as pipe:
                for reply_id, events in pending.items():
                    key = _stream_key(reply_id)
                    payload = _COMPACT_JSON.encode([[e.id, e.name, e.data] for e in events])
                    pipe.xadd(
                        key,
                        {"e": payload},
                        id=f"{events[-1].id}-0",
                        maxlen=self.max_entries,
                        approximate=True,
                    )
                    pipe.pexpire(key, self.keep_ms)
                await pipe.execute()
        except Exception:
            # Local readers are not affected; a client rejoining elsewhere gets the saved state.
            logger.warning("could not publish reply events to Redis", exc_info=True)

    async def viewers_elsewhere(self, reply_id: str) -> bool:
        key = f"{_stream_key(reply_id)}:viewers"
        async with self.client.pipeline(transaction=False) as pipe:
            pipe.zremrangebyscore(key, "-inf", time.time())
            pipe.zcard(key)
            _removed, count = await pipe.execute()
        return bool(count)

    # --- following (any worker) -----------------------------------------------------------------

    async def known(self, reply_id: str) -> bool:
        return bool(await self.client.exists(_stream_key(reply_id)))

    async def follow(
        self, reply_id: str, after: int, alive: Callable[[], Awaitable[bool]]
    ) -> AsyncIterator[ReplyEvent]:
        """The reply's events after number `after`, live until its last (`done` or `error`).
        Ends early when the stream is gone or `alive()` says the reply no longer runs anywhere;
        raises ReplyGap when events after `after` are missing. The caller counts as a viewer."""
        key = _stream_key(reply_id)
        expected = after + 1
        # Entry ids are `<last event in it>-0`: the entries still wanted are those from
        # `<after + 1>-0` on (XRANGE is inclusive), which XREAD, exclusive, gets after `<after>-0`.
        cursor = f"{after}-0"
        viewers, member = f"{key}:viewers", secrets.token_hex(8)
        await self._add_viewer(viewers, member)  # before anything else: the reply must not stop
        viewer = asyncio.create_task(self._view(viewers, member))
        try:
            found: Any = await self.client.xrange(key, min=f"{after + 1}-0", max="+")
            entries: list[Any] = list(found or [])
            if not entries and not await self.client.exists(key):
                return
            while True:
                for entry_id, fields in entries:
                    cursor = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
                    for event in _decode(fields):
                        if event.id < expected:
                            continue
                        if event.id != expected:
                            raise ReplyGap()
                        expected += 1
                        yield event
                        if event.final:
                            return
                # RESP2 (redis-py's default): [[key, [(entry id, fields), ...]]], or None.
                answer: Any = await self.client.xread({key: cursor}, block=FOLLOW_BLOCK_MS)
                entries = list(answer[0][1]) if answer else []
                if not entries and (not await self.client.exists(key) or not await alive()):
                    return
        finally:
            viewer.cancel()
            with suppress(asyncio.CancelledError, Exception):
                await viewer

    async def _add_viewer(self, key: str, member: str) -> None:
        try:
            async with self.client.pipeline(transaction=False) as pipe:
                pipe.zadd(key, {member: time.time() + 2 * VIEWER_RENEW_SECONDS})
                pipe.pexpire(key, self.keep_ms)
                await pipe.execute()
        except redis.RedisError:
            logger.warning("could not register a viewer", exc_info=True)

    async def _view(self, key: str, member: str) -> None:
        """Keeps a follower counted in the viewers set while it follows."""
        try:
            while True:
                await asyncio.sleep(VIEWER_RENEW_SECONDS)
                await self._add_viewer(key, member)
        finally:
            with suppress(Exception):
                await asyncio.shield(self.client.zrem(key, member))

    async def close(self) -> None:
        if self._flusher is not None:
            self._flusher.cancel()
            with suppress(asyncio.CancelledError, Exception):
                await self._flusher
        with suppress(Exception):
            await self.flush()  # the last events of replies stopped at shutdown
        await self.client.aclose()
