"""Stop signals for replies, across worker processes.

A stop request may reach any worker while the reply streams on another. Without Redis the
signal stays in the process (one worker); with REDIS_URL every worker subscribes to one channel
and stops the reply it holds.
"""

import asyncio
import logging
from typing import Protocol

import redis.asyncio as redis

from app.core.errors import ServiceUnavailable
from app.generation.reply_stream import STOPPED, ActiveReplies

logger = logging.getLogger("parley.generation")

STOP_CHANNEL = "parley:stop"


class StopBus(Protocol):
    async def stop(self, key: str) -> bool:
        """Stops the reply under `key` on whichever worker streams it; True when this one did."""
        ...

    async def close(self) -> None: ...


class LocalStopBus:
    def __init__(self, replies: ActiveReplies) -> None:
        self.replies = replies

    async def stop(self, key: str) -> bool:
        return self.replies.stop(key, STOPPED)

    async def close(self) -> None:
        return None


class RedisStopBus:
    def __init__(self, replies: ActiveReplies, client: redis.Redis) -> None:
        self.replies = replies
        # The runtime's one Redis client (app/runtime.py), which closes it.
        self.client = client
        self._subscribed = asyncio.Event()

    async def subscribed(self) -> None:
        """Waits until the listener has subscribed (the caller bounds the wait)."""
        await self._subscribed.wait()

    async def listen(self) -> None:
        """The listening loop, run by the supervisor (app/generation/parts.py)."""
        while True:
            try:
                async with self.client.pubsub() as pubsub:
                    await pubsub.subscribe(STOP_CHANNEL)
                    self._subscribed.set()
                    async for message in pubsub.listen():
                        if message.get("type") == "message":
                            key = message["data"].decode()
                            self.replies.stop(key, STOPPED)
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.warning("stop channel lost; reconnecting", exc_info=True)
                await asyncio.sleep(1)

    async def stop(self, key: str) -> bool:
        local = self.replies.stop(key, STOPPED)
        if not local:
            try:
                await self.client.publish(STOP_CHANNEL, key)
            except redis.RedisError as exc:
                # Redis is down: the reply may stream on another worker, which cannot be told.
                logger.warning("could not publish a stop signal", exc_info=True)
                raise ServiceUnavailable(
                    "The stop signal cannot reach the other workers right now; try again."
                ) from exc
        return local

    async def close(self) -> None:
        return None
