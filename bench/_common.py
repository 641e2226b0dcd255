"""What the benchmarks' load clients share: one streamed reply through Parley or straight to
the upstream (SSE read as a browser reads it), statistics, accounts and chats, the event loop.
"""

import asyncio
import contextlib
import gc
import json
import math
import signal
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent


MODEL = "fake-model"


def log(message: str) -> None:
    print(f"[relay {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


async def iter_sse(response: httpx.Response) -> AsyncIterator[tuple[str, str]]:
    """(event name, data) as a browser's EventSource sees them: comments skipped, an event ends
    at a blank line, and an unterminated event at the end of the body is dropped."""
    name, data = "message", []
    async for line in response.aiter_lines():  # \n, \r\n (sse-starlette) and \r alike
        if not line:
            if data:
                yield name, "\n".join(data)
            name, data = "message", []
        elif line.startswith(":"):
            continue
        else:
            key, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if key == "event":
                name = value
            elif key == "data":
                data.append(value)


@dataclass
class StreamResult:
    started_at: float = 0.0  # perf_counter() when the request was sent
    ttft: float | None = None  # seconds from sending the request to the first text
    total: float | None = None  # ... to `done` (Parley) or `[DONE]` (upstream)
    deltas: list[float] = field(default_factory=list)  # perf_counter() at each text event
    error: str | None = None


async def parley_stream(
    http: httpx.AsyncClient, chat_id: str, token: str, content: str, expected: str
) -> StreamResult:
    """One message through Parley, answered over SSE."""
    result = StreamResult()
    started = result.started_at = time.perf_counter()
    try:
        async with http.stream(
            "POST",
            f"/api/chats/{chat_id}/messages",
            json={"content": content},
            headers={"Authorization": f"Bearer {token}", "Accept": "text/event-stream"},
        ) as response:
            if response.status_code != 200:
                body = (await response.aread())[:200].decode(errors="replace")
                result.error = f"HTTP {response.status_code}: {body}"
                return result
            async for name, data in iter_sse(response):
                now = time.perf_counter()
                payload = json.loads(data)
                if name == "delta" and payload.get("content"):
                    if result.ttft is None:
                        result.ttft = now - started
                    result.deltas.append(now)
                elif name == "done":
                    result.total = now - started
                    if payload.get("status") != "complete" or payload.get("content") != expected:
                        result.error = f"done with status {payload.get('status')!r} or other text"
                elif name == "error":
                    result.error = f"error event: {payload.get('code')}"
    except (httpx.HTTPError, ValueError) as exc:
        cause = exc.__cause__ or exc.__context__
        where = "mid-stream" if result.ttft is not None else "before the first token"
        result.error = f"{type(exc).__name__} {where}: {exc or cause!r}"[:200]
    if result.error is None and result.total is None:
        result.error = "no done event"
    return result


async def direct_stream(http: httpx.AsyncClient, content: str, expected: str) -> StreamResult:
    """The same reply straight from the upstream, asked for as Parley asks for it."""
    result = StreamResult()
    body = {
        "model": MODEL,
        "messages": [
            {"role": "system", "content": "You are a helpful assistant."},
            {"role": "user", "content": content},
        ],
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    text: list[str] = []
    started = result.started_at = time.perf_counter()
    try:
        async with http.stream(
            "POST", "/v1/chat/completions", json=body, headers={"Accept": "text/event-stream"}
        ) as response:
            if response.status_code != 200:
                result.error = f"HTTP {response.status_code}"
                return result
            async for _name, data in iter_sse(response):
                now = time.perf_counter()
                if data == "[DONE]":
                    result.total = now - started
                    continue
                chunk = json.loads(data)
                choices = chunk.get("choices") or [{}]
                piece = (choices[0].get("delta") or {}).get("content")
                if piece:
                    if result.ttft is None:
                        result.ttft = now - started
                    result.deltas.append(now)
                    text.append(piece)
    except (httpx.HTTPError, ValueError) as exc:
        result.error = f"{type(exc).__name__}: {exc}"[:200]
    if result.error is None and result.total is None:
        result.error = "no [DONE]"
    elif result.error is None and "".join(text) != expected:
        result.error = "other text"
    return result


def percentile(values: Sequence[float], q: float) -> float | None:
    """Linear interpolation between closest ranks (numpy's default)."""
    if not values:
        return None
    ordered = sorted(values)
    position = (len(ordered) - 1) * q
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def ms(seconds: float | None) -> str:
    return "n/a" if seconds is None else f"{seconds * 1000:.1f}"


def signed_ms(seconds: float | None) -> str:
    return "n/a" if seconds is None else f"{seconds * 1000:+.1f}"


def difference(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else b - a


@dataclass
class BenchUser:
    email: str
    password: str
    token: str = ""


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """No garbage collection in this load client while it measures: a full one here stops its
    event loop for tens of ms, and the deltas it then reads late would count as Parley's gaps."""
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
        gc.collect()


async def gather_limited(calls: Sequence[Callable[[], Awaitable[Any]]], limit: int) -> list[Any]:
    semaphore = asyncio.Semaphore(limit)

    async def one(call: Callable[[], Awaitable[Any]]) -> Any:
        async with semaphore:
            return await call()

    return await asyncio.gather(*(one(call) for call in calls))


async def register(http: httpx.AsyncClient, user: BenchUser, number: int) -> None:
    response = await http.post(
        "/api/auth/register",
        json={"email": user.email, "display_name": f"Bench {number}", "password": user.password},
    )
    if response.status_code != 201:
        raise RuntimeError(f"register failed: {response.status_code} {response.text[:300]}")
    user.token = response.json()["access_token"]


async def create_chat(http: httpx.AsyncClient, user: BenchUser) -> str:
    response = await http.post(
        "/api/chats", json={}, headers={"Authorization": f"Bearer {user.token}"}
    )
    if response.status_code != 201:
        raise RuntimeError(f"create chat failed: {response.status_code} {response.text[:300]}")
    return str(response.json()["id"])


async def login(http: httpx.AsyncClient, user: BenchUser) -> tuple[float, str | None]:
    started = time.perf_counter()
    try:
        response = await http.post(
            "/api/auth/login", json={"email": user.email, "password": user.password}
        )
    except httpx.HTTPError as exc:
        return time.perf_counter() - started, f"{type(exc).__name__}: {exc}"
    elapsed = time.perf_counter() - started
    return elapsed, None if response.status_code == 200 else f"HTTP {response.status_code}"


class StallWatch:
    """Records how late this process's event loop wakes from 5 ms sleeps, with the time."""

    TICK = 0.005

    def __init__(self) -> None:
        self.stalls: list[tuple[float, float]] = []  # (perf_counter at the end, seconds late)
        self._task: asyncio.Task[None] | None = None

    async def _watch(self) -> None:
        while True:
            before = time.perf_counter()
            await asyncio.sleep(self.TICK)
            now = time.perf_counter()
            self.stalls.append((now, max(0.0, now - before - self.TICK)))

    def start(self) -> "StallWatch":
        self._task = asyncio.create_task(self._watch())
        return self

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM unwinds like Ctrl-C, so the clean-up below runs either way."""

    def handler(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run_async(coroutine: Awaitable[Any]) -> Any:
    try:
        import uvloop  # installed with uvicorn[standard]; a faster client disturbs less
    except ImportError:
        factory = None
    else:
        factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(coroutine)  # type: ignore[arg-type]
