"""Replies' events in Redis streams, so a client can rejoin a reply on any worker.

The worker streaming a reply publishes its events (ReplyLog.emit -> publish, which never
waits): one background task flushes whatever accumulated, for every reply of the process, in one
pipelined round trip. Each flush appends one entry per reply to the stream `parley:reply:<id>`:
its id is `<number of the last event>-0` and it holds the events in order, so a reader after
event n asks for the entries from `<n + 1>-0` on and skips what it saw. The stream is capped
(XADD MAXLEN ~) and expires REPLY_BUFFER_SECONDS after its last entry.

A worker following a reply for its clients (one reader per reply, shared: reply_follow.py) is
counted in the sorted set `parley:reply:<id>:viewers` (member: a random token per worker, score:
when it lapses), which the streaming worker reads before it stops a reply whose own clients went
away.
"""

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import suppress

import redis.asyncio as redis

from app.generation.reply_events import ReplyEvent
from app.generation.reply_follow import ReplyFollowers, ReplyGap

__all__ = ["RedisReplyBuffer", "ReplyGap"]

logger = logging.getLogger("parley.generation")

KEY_PREFIX = "parley:reply:"
# Blocked XREADs at once: one per reply followed from this worker (not one per client).
FOLLOW_MAX_CONNECTIONS = 1000
_COMPACT_JSON = json.JSONEncoder(separators=(",", ":"))


def _stream_key(reply_id: str) -> str:
    return f"{KEY_PREFIX}{reply_id}"


class RedisReplyBuffer:
    """Publishes replies' events to Redis streams and reads them back for rejoining clients."""

    def __init__(self, client: redis.Redis, *, keep_seconds: float, max_entries: int) -> None:
        # The runtime's one Redis client (app/runtime.py), which closes it: the short commands
        # (publishing, viewers) and the followers' blocking XREADs share its pool, sized for
        # one blocked read per followed reply (FOLLOW_MAX_CONNECTIONS) and the commands besides.
        self.client = client
        self.keep_ms = max(1000, int(keep_seconds * 1000))
        self.followers = ReplyFollowers(commands=client, reads=client, keep_ms=self.keep_ms)
        self.max_entries = max_entries
        self._pending: dict[str, list[ReplyEvent]] = {}
        self._ready = asyncio.Event()

    # --- publishing (the streaming worker) ------------------------------------------------------

    def publish(self, reply_id: str, event: ReplyEvent) -> None:
        """Queues the event for the next flush; never waits on Redis."""
        batch = self._pending.get(reply_id)
        if batch is None:
            self._pending[reply_id] = [event]
            self._ready.set()
        else:
            batch.append(event)

    async def flush_forever(self) -> None:
        """The flushing loop, run by the supervisor (app/generation/parts.py)."""
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

    def follow(
        self, reply_id: str, after: int, alive: Callable[[], Awaitable[bool]]
    ) -> AsyncIterator[ReplyEvent]:
        """The reply's events after number `after`, live until its last (`done` or `error`).
        Ends early when the stream is gone or `alive()` says the reply no longer runs anywhere;
        raises ReplyGap when events after `after` are missing. Every client following a reply
        here shares one reader, and this worker counts as one viewer (reply_follow.py)."""
        return self.followers.follow(_stream_key(reply_id), after, alive)

    async def close(self) -> None:
        """Writes what is pending (the last events of replies stopped at shutdown) and ends
        the followers; the flushing loop has stopped and the client stays open."""
        with suppress(Exception):
            await self.flush()
        self.followers.close()
