"""The app's one Redis client (redis.asyncio), built by the runtime (app/runtime.py) with
REDIS_URL and closed last: the rate limits, the reply fan-out (publishing, followers' blocking
reads, viewers), the stop signals and any other Redis user share its connection pool."""

import redis.asyncio as redis

# One blocked XREAD per reply followed from this worker (reply_follow.py) and the short
# commands besides: the pool grows to this many connections (redis-py's default is 100).
MAX_CONNECTIONS = 1100
# A command waits this long for an answer; the followers block for 2 s at most per read, and
# the rate limits give up sooner on their own (app/core/ratelimit.py).
SOCKET_TIMEOUT_SECONDS = 10
CONNECT_TIMEOUT_SECONDS = 5


def connect_redis(url: str, *, name: str = "parley") -> redis.Redis:
    """The shared client; it connects on first use. Named, so that CLIENT LIST tells Parley's
    connections apart."""
    return redis.from_url(
        url,
        socket_timeout=SOCKET_TIMEOUT_SECONDS,
        socket_connect_timeout=CONNECT_TIMEOUT_SECONDS,
        client_name=name,
        max_connections=MAX_CONNECTIONS,
    )
