"""The router's state shared by every worker through Redis (REDIS_URL).

- A cooldown is written at once (`<prefix>:cool:<model>/<deployment>`, expiring when it ends).
- Each worker writes its requests in flight and this minute's requests and tokens per
  deployment into a hash of its own (`<prefix>:worker:<id>`, expiring 5 s after its last write)
  and lists itself in `<prefix>:workers`.
- Twice a second (`sync`, a loop under the supervisor) each worker writes its hash and reads the
  cooldowns and the other workers' hashes in two pipelined round trips, and the router chooses
  from that view: a deployment cooled on one worker is cooled on all within a second, and
  max_parallel, rpm and tpm count every worker's requests (each may overshoot by what the
  others sent in the last half second).

The choice itself never waits on Redis. When Redis is unreachable each worker goes on with its
own view, and the loop (restarted by the supervisor) catches up once it is back.
"""

import asyncio
import logging
import time
import uuid
from typing import Any

import redis.asyncio as redis

from app.generation.upstream.routing import DeploymentState, Router

logger = logging.getLogger("parley.routing")

PREFIX = "parley:routing"
SYNC_SECONDS = 0.5
# A worker that has not written for this long is gone: its requests no longer count.
WORKER_TTL_SECONDS = 5


class SharedRouting:
    def __init__(
        self,
        client: redis.Redis,
        router: Router,
        *,
        prefix: str = PREFIX,
        interval: float = SYNC_SECONDS,
    ) -> None:
        self.client = client
        self.router = router
        self.prefix = prefix
        self.interval = interval
        self.worker = uuid.uuid4().hex
        self._writes: set[asyncio.Task[None]] = set()
        router.shared = self

    def _states(self) -> list[DeploymentState]:
        return [state for states in self.router.states.values() for state in states]

    def cooled(self, state: DeploymentState, until: float) -> None:
        """Tells the other workers at once (in a task: routing never waits on Redis)."""
        task = asyncio.get_running_loop().create_task(self._cool(state.key, until))
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)

    async def _cool(self, key: str, until: float) -> None:
        milliseconds = int((until - time.time()) * 1000)
        if milliseconds <= 0:
            return
        try:
            await self.client.set(f"{self.prefix}:cool:{key}", repr(until), px=milliseconds)
        except redis.RedisError:
            logger.warning("could not share a cooldown", extra={"deployment": key})

    async def sync_forever(self) -> None:
        while True:
            try:
                await self.sync()
            except redis.RedisError:
                logger.warning("routing state not shared this time (Redis)", exc_info=True)
            await asyncio.sleep(self.interval)

    async def sync(self) -> None:
        """Writes this worker's counts; reads the cooldowns and the other workers' counts."""
        states = self._states()
        if not states:
            return
        now = time.time()
        minute = int(now // 60)
        own: dict[Any, Any] = {"minute": minute}  # redis-py's Mapping type is invariant
        for state in states:
            state.roll_minute(now)
            own[f"{state.key}|f"] = state.in_flight
            own[f"{state.key}|r"] = state.requests_this_minute
            own[f"{state.key}|t"] = state.tokens_this_minute
        workers_key = f"{self.prefix}:workers"
        mine = f"{self.prefix}:worker:{self.worker}"
        async with self.client.pipeline(transaction=False) as pipe:
            pipe.hset(mine, mapping=own)
            pipe.expire(mine, WORKER_TTL_SECONDS)
            pipe.zadd(workers_key, {self.worker: now})
            pipe.zremrangebyscore(workers_key, "-inf", now - WORKER_TTL_SECONDS)
            pipe.zrange(workers_key, 0, -1)
            pipe.mget([f"{self.prefix}:cool:{state.key}" for state in states])
            *_, workers, cools = await pipe.execute()
        others = [w.decode() if isinstance(w, bytes) else w for w in workers]
        others = [w for w in others if w != self.worker]
        hashes: list[dict[bytes, bytes]] = []
        if others:
            async with self.client.pipeline(transaction=False) as pipe:
                for worker in others:
                    pipe.hgetall(f"{self.prefix}:worker:{worker}")
                hashes = await pipe.execute()
        self._apply(states, cools, hashes, now, minute)

    def _apply(
        self,
        states: list[DeploymentState],
        cools: list[bytes | None],
        hashes: list[dict[bytes, bytes]],
        now: float,
        minute: int,
    ) -> None:
        others = [{k.decode(): v.decode() for k, v in found.items()} for found in hashes if found]
        current = [found for found in others if found.get("minute") == str(minute)]
        for state, cool in zip(states, cools, strict=True):
            until = float(cool) if cool else 0.0
            if until > now and until > state.cooling_until():
                state.half_open = True  # once it ends, a probe decides here too
            state.cooled_elsewhere_until = until
            state.in_flight_elsewhere = sum(int(found.get(f"{state.key}|f", 0)) for found in others)
            state.requests_elsewhere = sum(int(found.get(f"{state.key}|r", 0)) for found in current)
            state.tokens_elsewhere = sum(int(found.get(f"{state.key}|t", 0)) for found in current)
        self.router.shared_changed()
