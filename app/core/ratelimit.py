"""Rate limits: the `limits` library's strategies behind small FastAPI dependencies, counted in
memory or, with REDIS_URL, in Redis through the runtime's one client (app/core/shared_redis.py).

Why not slowapi's `@limiter.limit("5/minute")` decorator: it binds a route to one module-level
Limiter when the module is imported, so limits could not come from each app's settings (tests
run many apps with different limits side by side), and it needs a `request` parameter on every
route. Here each app builds one `RateLimiter` from its settings; routes declare
`dependencies=[limit_by_ip("login")]`, or depend on a per-user limit, and the limit string comes
from the setting `RATE_LIMIT_<NAME>` at request time.
"""

import asyncio
import logging
import math
import time
from collections.abc import Callable
from typing import Any

import redis.asyncio as redis
from fastapi import Depends, Request
from limits import RateLimitItem, parse_many
from limits.aio.storage import MemoryStorage as AsyncMemoryStorage
from limits.aio.storage import RedisStorage as AsyncRedisStorage
from limits.aio.storage import Storage as AsyncStorage
from limits.aio.strategies import STRATEGIES as ASYNC_STRATEGIES
from limits.aio.strategies import RateLimiter as AsyncStrategy

from app.core.clientip import ClientIPResolver, rate_limit_key
from app.core.config import Settings
from app.core.errors import AppError

logger = logging.getLogger("parley.ratelimit")

# After a storage error, limits are counted in this worker only for this long before Redis is
# tried again: a Redis that hangs must not add its timeout to every request.
_STORAGE_RETRY_INTERVAL = 15.0
# Seconds to wait for Redis to connect and answer one hit.
_STORAGE_TIMEOUT = 1.0


class RateLimited(AppError):
    status_code = 429
    code = "rate_limited"
    message = "Too many requests; try again later."

    def __init__(self, retry_after: int) -> None:
        super().__init__(
            f"Too many requests; try again in {retry_after} seconds.",
            headers={"Retry-After": str(retry_after)},
        )
        self.retry_after = retry_after


class RateLimiter:
    """One app's limits, counted in memory or, with REDIS_URL, in Redis shared by every worker."""

    def __init__(
        self,
        settings: Settings,
        *,
        client_ips: ClientIPResolver,
        shared: redis.Redis | None = None,
    ) -> None:
        self.settings = settings
        self.enabled = settings.rate_limit_enabled
        self.client_ips = client_ips
        self._prefix = settings.rate_limit_key_prefix
        strategy: Callable[[AsyncStorage], AsyncStrategy] = ASYNC_STRATEGIES[
            settings.rate_limit_strategy
        ]
        # With REDIS_URL, limits are shared by every worker: counted in Redis through the
        # runtime's client (its connection pool), under the keys slowapi's storage used
        # (LIMITS:LIMITER/<prefix>/<name>/<key>/...), so workers of both versions agree.
        self._shared: AsyncStrategy | None = (
            strategy(
                AsyncRedisStorage(
                    "async+" + settings.redis_url,
                    implementation="redispy",
                    # typed as str in limits' stubs; documented to take the pool
                    connection_pool=shared.connection_pool,  # type: ignore[arg-type]
                )
            )
            if shared is not None and settings.redis_url
            else None
        )
        # Counts kept in this process: the storage without REDIS_URL, and with it the fallback
        # while Redis is down, so limits still hold per worker rather than not at all (failing
        # closed would turn a Redis outage into a full outage of sign-in). limits' asyncio
        # memory storage expires entries with a task; its threaded twin starts a timer thread
        # whenever a hit follows a quiet 10 ms, a third of a millisecond on every request.
        self._local = strategy(AsyncMemoryStorage())
        self._storage_down_until = -math.inf
        self._items: dict[str, list[RateLimitItem]] = {}

    def items(self, name: str) -> list[RateLimitItem]:
        if name not in self._items:
            self._items[name] = parse_many(getattr(self.settings, f"rate_limit_{name}"))
        return self._items[name]

    async def hit(
        self, name: str, key: str, *, items: list[RateLimitItem] | None = None
    ) -> int | None:
        """Counts one request against limit `name` for `key`: None if allowed, else the seconds
        until it would be. `items`: limits of this key's own (an API key's rpm) instead of the
        setting's."""
        if not self.enabled:
            return None
        identifiers = (self._prefix, name, key)
        items = items if items is not None else self.items(name)
        if self._shared is not None and time.monotonic() >= self._storage_down_until:
            try:
                async with asyncio.timeout(_STORAGE_TIMEOUT):
                    return await _hit(self._shared, items, identifiers)
            except Exception as exc:
                self._storage_down_until = time.monotonic() + _STORAGE_RETRY_INTERVAL
                logger.error(
                    "rate-limit storage unreachable, counting in this worker only for %ss: %r",
                    _STORAGE_RETRY_INTERVAL,
                    exc,
                )
        return await _hit(self._local, items, identifiers)

    async def allow(self, name: str, key: str) -> bool:
        return await self.hit(name, key) is None

    async def enforce(self, name: str, key: str) -> None:
        """Raises RateLimited (429 with Retry-After) when `key` is over limit `name`."""
        retry_after = await self.hit(name, key)
        if retry_after is not None:
            logger.warning("rate limit hit", extra={"limit": name, "limit_key": key})
            raise RateLimited(retry_after)


async def _hit(
    strategy: AsyncStrategy, items: list[RateLimitItem], identifiers: tuple[str, ...]
) -> int | None:
    for item in items:
        if not await strategy.hit(item, *identifiers):
            stats = await strategy.get_window_stats(item, *identifiers)
            return _retry_after(stats.reset_time)
    return None


def _retry_after(reset_at: float) -> int:
    return max(1, math.ceil(reset_at - time.time()))


def _runtime(request: Request) -> Any:
    return request.app.state.runtime


def limit_by_ip(name: str) -> Any:
    """A route dependency applying limit `name` (setting RATE_LIMIT_<NAME>) per client IP."""

    async def dependency(request: Request) -> None:
        runtime = _runtime(request)
        ip = runtime.client_ips.client_ip(request)
        await runtime.limiter.enforce(name, f"ip:{rate_limit_key(ip)}")

    dependency.__name__ = f"rate_limit_{name}_per_ip"
    return Depends(dependency)
