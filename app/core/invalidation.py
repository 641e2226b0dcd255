"""Invalidations: telling every worker to drop what it cached about something that changed.

A worker may cache what is expensive to look up and rarely changes (an API key's grant), with no
expiry, as long as every change that matters reaches it at once. A change is published on a
*topic* with a *value* (`publish("api-key", key_id)`): the handlers subscribed in this process run
at once; with REDIS_URL the message also goes out on one Redis pub/sub channel, and each worker's
reader loop (run under the app's Supervisor) hands it to its own handlers, within milliseconds.

Pub/sub does not keep messages for a reader that is away: while a worker's reader is not
subscribed, `live` is False and caches must not be trusted (read the database instead), and each
time the reader (re)subscribes the reset handlers run, dropping everything cached before.
"""

import asyncio
import logging
from collections.abc import Callable
from contextlib import suppress

import redis.asyncio as redis

logger = logging.getLogger("parley.invalidation")

CHANNEL = "parley:invalidate"
SEPARATOR = "\x1f"

# Published when a user's standing changes (disabled, deleted, signed out everywhere by a password
# reset): whatever a worker cached about what the user may do is dropped. Value: the user id.
USER_ACCESS = "user-access"

Handler = Callable[[str], None]


class Invalidations:
    """Topics of invalidation messages, in process or through Redis pub/sub."""

    def __init__(self, client: redis.Redis | None, *, channel: str = CHANNEL) -> None:
        """`client`: the runtime's one Redis client (REDIS_URL), which its owner closes; None:
        this process alone."""
        self.channel = channel
        self._handlers: dict[str, list[Handler]] = {}
        self._resets: list[Callable[[], None]] = []
        self.client = client
        # Without Redis this process is the only one to tell: always live.
        self._subscribed = self.client is None
        self._publishing: set[asyncio.Task[None]] = set()
        self._live_event: asyncio.Event | None = None

    @property
    def shared(self) -> bool:
        """Whether messages go to other workers (REDIS_URL is set)."""
        return self.client is not None

    @property
    def live(self) -> bool:
        """Whether every message published from now on reaches this worker's handlers."""
        return self._subscribed

    def subscribe(self, topic: str, handler: Handler) -> None:
        """`handler(value)` runs for each message on `topic` (from this worker or another)."""
        self._handlers.setdefault(topic, []).append(handler)

    def on_reset(self, handler: Callable[[], None]) -> None:
        """`handler()` runs when messages may have been missed (the reader (re)subscribed)."""
        self._resets.append(handler)

    def _deliver(self, topic: str, value: str) -> None:
        for handler in self._handlers.get(topic, ()):
            try:
                handler(value)
            except Exception:
                logger.exception("invalidation handler failed", extra={"topic": topic})

    def _reset(self) -> None:
        for handler in self._resets:
            handler()

    async def publish(self, topic: str, value: str) -> None:
        """Delivers the message here at once, then to every other worker."""
        self._deliver(topic, value)
        if self.client is None:
            return
        try:
            await self.client.publish(self.channel, f"{topic}{SEPARATOR}{value}")
        except redis.RedisError:
            # The other workers' readers lost Redis as well: they reset when they resubscribe.
            logger.error("could not publish an invalidation", extra={"topic": topic})

    def publish_soon(self, topic: str, value: str) -> None:
        """publish() from synchronous code (an after-commit callback): this worker's handlers
        run now, the Redis message is sent by a task."""
        self._deliver(topic, value)
        if self.client is None:
            return
        task = asyncio.get_running_loop().create_task(self._send(topic, value))
        self._publishing.add(task)
        task.add_done_callback(self._publishing.discard)

    async def _send(self, topic: str, value: str) -> None:
        assert self.client is not None
        try:
            await self.client.publish(self.channel, f"{topic}{SEPARATOR}{value}")
        except redis.RedisError:
            logger.error("could not publish an invalidation", extra={"topic": topic})

    async def run(self) -> None:
        """The reader loop (with REDIS_URL): subscribes, then hands each message to this worker's
        handlers. Run it under the Supervisor, which starts it again when it fails."""
        if self.client is None:
            return
        try:
            async with self.client.pubsub() as pubsub:
                await pubsub.subscribe(self.channel)
                # Whatever was cached while not subscribed may have missed a message.
                self._reset()
                self._subscribed = True
                if self._live_event is not None:
                    self._live_event.set()
                async for message in pubsub.listen():
                    if message.get("type") != "message":
                        continue
                    topic, _, value = message["data"].decode().partition(SEPARATOR)
                    self._deliver(topic, value)
        finally:
            self._subscribed = False
            self._reset()

    async def wait_live(self, timeout: float = 5.0) -> bool:  # noqa: ASYNC109
        """Waits (a little) for the reader to subscribe; at start-up, so the first requests
        can use the cache."""
        if self._subscribed:
            return True
        self._live_event = asyncio.Event()
        with suppress(TimeoutError):
            await asyncio.wait_for(self._live_event.wait(), timeout)
        return self._subscribed

    async def close(self) -> None:
        """Waits for the messages being sent (the client stays open: its owner closes it)."""
        for task in list(self._publishing):
            with suppress(Exception):
                await task
