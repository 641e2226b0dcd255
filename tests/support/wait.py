"""The one way tests wait for something to happen: poll a condition until it holds.

Never a fixed sleep: a sleep long enough for a loaded machine slows every run, and one short
enough to be fast fails on a loaded machine. A condition returns as soon as it holds.
"""

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any, Literal, TypeVar, overload

T = TypeVar("T")

# What a condition returns while it does not hold yet.
NotYet = None | Literal[False]

TIMEOUT = 5.0  # seconds: generous, only a failing test ever waits this long
INTERVAL = 0.01


@overload
async def wait_until(
    condition: Callable[[], Awaitable[T | NotYet]],
    *,
    timeout: float = ...,
    interval: float = ...,
    message: str | Callable[[], str] = ...,
) -> T: ...


@overload
async def wait_until(
    condition: Callable[[], T | NotYet],
    *,
    timeout: float = ...,
    interval: float = ...,
    message: str | Callable[[], str] = ...,
) -> T: ...


async def wait_until(
    condition: Callable[[], Any],
    *,
    timeout: float = TIMEOUT,
    interval: float = INTERVAL,
    message: str | Callable[[], str] = "",
) -> Any:
    """Calls `condition` (a function or a coroutine function) until it returns something true,
    and returns that; fails the test after `timeout` seconds, with `message` if given."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        result = condition()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return result
        if loop.time() >= deadline:
            raise AssertionError(_failure(condition, timeout, message))
        await asyncio.sleep(interval)


def wait_until_blocking(
    condition: Callable[[], T],
    *,
    timeout: float = TIMEOUT,
    interval: float = INTERVAL,
    message: str | Callable[[], str] = "",
) -> T:
    """`wait_until` for code with no event loop of its own to yield to (a server started in a
    thread from a synchronous fixture)."""
    deadline = time.monotonic() + timeout
    while not (result := condition()):
        if time.monotonic() >= deadline:
            raise AssertionError(_failure(condition, timeout, message))
        time.sleep(interval)
    return result


def _failure(
    condition: Callable[..., object], timeout: float, message: str | Callable[[], str]
) -> str:
    detail = message() if callable(message) else message
    name = getattr(condition, "__qualname__", repr(condition))
    return f"{name} did not hold within {timeout} s" + (f": {detail}" if detail else "")
