"""How much time and memory Parley adds when it relays streamed replies, and whether logins hurt.

    .venv/bin/python bench/relay.py [--streams 1,100,500] [--tokens 64] [--token-delay 0.02]
                                    [--workers 1] [--db sqlite|postgres] [--redis-url URL]
    .venv/bin/python bench/relay.py --resume --redis-url URL [--resume-streams 100] [--workers 2]

With --resume it measures resumable replies instead (bench/README.md): Parley's CPU per relayed
token with Redis publishing on against off (two Parleys side by side, alternating rounds), and
the rejoin latency at `--resume-streams` concurrent streams (request to the first replayed event,
on each Parley), checking that every rejoined reply's text is exactly the reply.

Starts, each in its own process: the tests' fake OpenAI-compatible upstream (paced like a model:
`--tokens` tokens `--token-delay` s apart) and Parley (`uvicorn --factory app.main:create_app`,
`--workers` workers, a fresh migrated SQLite file or Postgres database, bcrypt cost 12). Then, from
this process, for each number of concurrent streams: the same streams straight to the upstream and
through Parley (`POST /api/chats/{id}/messages`, SSE parsed event by event), timing the first
delta and the end. Last, 20 logins while streams run, watching the gaps between deltas. Prints
markdown tables; every process and database it made is removed at the end, Ctrl-C included.
"""

import argparse
import asyncio
import contextlib
import gc
import importlib
import json
import math
import os
import random
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
from _processes import (
    Child,
    TreeSampler,
    free_port,
    machine_busy_seconds,
    tree_pids,
    wait_for_http,
)

ROOT = Path(__file__).resolve().parent.parent
MODEL = "fake-model"
STREAMS_PER_USER = 50
RESUME_STREAMS_PER_USER = 5
CLIENT_SHARD = 25
QUIET_CORES = 0.25  # --quiet-wait: what "the rest of the machine is quiet" means
# Small rounds (one stream) are repeated until there are this many samples, so p50/p99 mean
# something; big rounds run once.
MIN_SAMPLES = 20
POSTGRES_ADMIN_DSN = os.environ.get(
    "BENCH_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/postgres"
)
# "10/minute", "5 per 15 minutes", "10/minute;100/hour": the limits syntax slowapi settings use.
LIMIT_SYNTAX = re.compile(r"^\s*\d+\s*(/|per\b)", re.IGNORECASE)
TARGETS = {
    "ttft_p50_1": 10.0,  # ms of added time to first token, p50, at 1 stream
    "ttft_p50_100": 30.0,  # ... at 100 streams
    "rss_500": 300.0,  # MB, peak RSS of the Parley process tree at 500 streams
    "gap_growth": 20.0,  # ms, largest delta gap during logins minus without
}


def log(message: str) -> None:
    print(f"[relay {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --- SSE -----------------------------------------------------------------------------------------


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


# --- Statistics ----------------------------------------------------------------------------------


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


# --- The run -------------------------------------------------------------------------------------


@dataclass
class BenchUser:
    email: str
    password: str
    token: str = ""


@dataclass
class CpuUse:
    """CPU seconds used during one phase, by whom. `others` is everything else on the machine:
    on a shared machine it competes with Parley and inflates every time measured."""

    wall: float = 0.0
    parley: float = 0.0
    upstream: float = 0.0
    client: float = 0.0
    machine: float = 0.0

    @property
    def others(self) -> float:
        return max(0.0, self.machine - self.parley - self.upstream - self.client)


async def wait_for_quiet(env: "Environment") -> None:
    """With --quiet-wait S: wait (at most S seconds) until the rest of the machine has used less
    than QUIET_CORES for two seconds, so other people's jobs do not skew the next phase."""
    deadline = time.monotonic() + env.args.quiet_wait
    quiet_for = 0
    while time.monotonic() < deadline:
        with cpu_use(env) as use:
            await asyncio.sleep(1.0)
        quiet_for = quiet_for + 1 if use.others / use.wall < QUIET_CORES else 0
        if quiet_for >= 2:
            return
    if env.args.quiet_wait > 0:
        log(f"the machine is still busy after {env.args.quiet_wait:g} s; measuring anyway")


@contextlib.contextmanager
def cpu_use(env: "Environment") -> Iterator[CpuUse]:
    def snapshot() -> CpuUse:
        return CpuUse(
            wall=time.perf_counter(),
            parley=env.parley.cpu_seconds(),
            upstream=env.upstream.cpu_seconds(),
            client=time.process_time(),
            machine=machine_busy_seconds(),
        )

    use = CpuUse()
    before = snapshot()
    try:
        yield use
    finally:
        after = snapshot()
        for name in ("wall", "parley", "upstream", "client", "machine"):
            setattr(use, name, getattr(after, name) - getattr(before, name))


@dataclass
class Level:
    streams: int
    rounds: int
    direct: list[StreamResult]
    parley: list[StreamResult]
    peak_rss: int
    direct_cpu: CpuUse
    parley_cpu: CpuUse

    def stat(self, which: str, metric: str, q: float) -> float | None:
        results = self.direct if which == "direct" else self.parley
        values = [getattr(r, metric) for r in results if getattr(r, metric) is not None]
        return percentile(values, q)

    def errors(self, which: str) -> list[str]:
        results = self.direct if which == "direct" else self.parley
        return [r.error for r in results if r.error]


@dataclass
class Window:
    name: str
    start: float
    end: float
    gaps: list[float] = field(default_factory=list)
    ttfts: list[float] = field(default_factory=list)  # of the streams that started in it
    cpu: CpuUse = field(default_factory=CpuUse)
    # The load client's own event-loop stalls that ended in the window: a delta read late
    # because this process was busy or descheduled makes a gap that is not Parley's.
    client_stalls: list[float] = field(default_factory=list)


@dataclass
class Interference:
    streams: int
    logins: int
    windows: list[Window]
    login_latencies: list[float]
    login_errors: list[str]
    stream_errors: list[str]
    replies: int


@dataclass
class Environment:
    """What the measurements run against."""

    args: argparse.Namespace
    parley_url: str
    upstream_url: str
    parley: TreeSampler
    upstream: TreeSampler
    overrides: dict[str, str]
    notes: list[str]
    profiler: "Profiler"
    idle_rss: int = 0
    load_average: float = field(default_factory=lambda: os.getloadavg()[0])
    # --resume with Redis: a second Parley on the same database and Redis, where replies
    # streaming on the first are rejoined (through the Redis streams).
    other_url: str | None = None


class Profiler:
    """With --py-spy DIR: py-spy samples Parley (every worker) during each measured phase and
    writes collapsed stacks to DIR/<phase>.txt; bench/_profile_top.py summarises them."""

    def __init__(self, directory: str | None, parley_pid: int, workdir: Path) -> None:
        self.directory = Path(directory).resolve() if directory else None
        self.parley_pid = parley_pid
        self.workdir = workdir
        if self.directory is not None:
            self.directory.mkdir(parents=True, exist_ok=True)
        executable = Path(sys.executable).with_name("py-spy")
        self.executable = str(executable) if executable.exists() else shutil.which("py-spy")
        if self.directory is not None and self.executable is None:
            raise SystemExit("--py-spy needs py-spy: .venv/bin/pip install py-spy")

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        if self.directory is None or self.executable is None:
            yield
            return
        output = self.directory / f"{name}.txt"
        recorder = Child(
            f"py-spy {name}",
            [
                self.executable,
                "record",
                f"--pid={self.parley_pid}",
                "--subprocesses",
                "--threads",
                "--nonblocking",  # never pauses Parley, so the timings stay honest
                "--rate=250",
                "--format=raw",
                f"--output={output}",
            ],
            env=os.environ,
            cwd=self.workdir,
            log_path=self.workdir / f"py-spy-{name}.log",
        )
        time.sleep(1.0)  # attaching takes a moment
        try:
            yield
        finally:
            recorder.stop(grace=30, signum=signal.SIGINT)  # SIGINT: py-spy writes and exits
            log(f"py-spy profile of {name}: {output}")


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


class Clients:
    """Pooled clients, one per CLIENT_SHARD streams: httpcore's pool scans all its connections on
    every request and response, so one pool of 500 streams costs O(n^2) and made the load client,
    not the servers, the bottleneck."""

    def __init__(self, env: Environment, streams: int) -> None:
        # Idle connections are dropped before Parley's uvicorn drops them (after 5 s): a request
        # sent on a connection the server is closing fails before any answer, which would count
        # as an error of Parley's. Browsers retry such a request; httpx does not.
        limits = httpx.Limits(
            max_connections=CLIENT_SHARD * 2, max_keepalive_connections=None, keepalive_expiry=3.0
        )
        timeout = httpx.Timeout(connect=30.0, read=120.0, write=30.0, pool=60.0)
        shards = max(1, math.ceil(streams / CLIENT_SHARD))
        self._parley = [
            httpx.AsyncClient(base_url=env.parley_url, limits=limits, timeout=timeout)
            for _ in range(shards)
        ]
        self._upstream = [
            httpx.AsyncClient(base_url=env.upstream_url, limits=limits, timeout=timeout)
            for _ in range(shards)
        ]

    def parley(self, stream: int = 0) -> httpx.AsyncClient:
        return self._parley[stream // CLIENT_SHARD % len(self._parley)]

    def upstream(self, stream: int = 0) -> httpx.AsyncClient:
        return self._upstream[stream // CLIENT_SHARD % len(self._upstream)]

    async def aclose(self) -> None:
        await asyncio.gather(*(c.aclose() for c in [*self._parley, *self._upstream]))


async def measure(env: Environment) -> tuple[list[Level], Interference | None]:
    args = env.args
    expected = "".join(f"tok{i} " for i in range(args.tokens))
    most = max([*args.streams, args.interference_streams])
    clients = Clients(env, most)
    try:
        run_id = uuid.uuid4().hex[:8]
        users = [
            BenchUser(f"bench-{run_id}-{n}@example.com", f"relay-{secrets.token_hex(12)}-bench")
            for n in range(max(1, math.ceil(most / STREAMS_PER_USER)))
        ]
        log(f"registering {len(users)} users (bcrypt cost 12) and creating {most} chats")
        await gather_limited(
            [lambda u=u, n=n: register(clients.parley(), u, n) for n, u in enumerate(users)], 8
        )
        owners = [users[i // STREAMS_PER_USER] for i in range(most)]
        chats = await gather_limited(
            [lambda u=u: create_chat(clients.parley(), u) for u in owners], 16
        )

        def parley(i: int) -> Awaitable[StreamResult]:
            return parley_stream(
                clients.parley(i), chats[i], owners[i].token, f"Hello from stream {i}", expected
            )

        def direct(i: int) -> Awaitable[StreamResult]:
            return direct_stream(clients.upstream(i), f"Hello from stream {i}", expected)

        log("warming up (10 streams each way)")
        warm = min(10, most)
        for results in (
            await asyncio.gather(*(direct(i) for i in range(warm))),
            await asyncio.gather(*(parley(i) for i in range(warm))),
        ):
            if any(r.error for r in results):
                raise RuntimeError(f"warm-up failed: {[r.error for r in results if r.error]}")
        await asyncio.sleep(0.5)
        env.idle_rss = env.parley.current

        levels = []
        for n in args.streams:
            with collector_paused():
                levels.append(await measure_level(env, n, direct, parley))
        interference = None
        if args.logins > 0:
            await wait_for_quiet(env)
            with env.profiler.phase("logins"), collector_paused():
                interference = await measure_interference(env, users, owners, parley)
        return levels, interference
    finally:
        await clients.aclose()


async def measure_level(
    env: Environment,
    n: int,
    direct: Callable[[int], Awaitable[StreamResult]],
    parley: Callable[[int], Awaitable[StreamResult]],
) -> Level:
    rounds = max(1, math.ceil(env.args.min_samples / n))
    await wait_for_quiet(env)
    log(f"{n} concurrent streams x {rounds} round(s): upstream directly")
    direct_results: list[StreamResult] = []
    with cpu_use(env) as direct_cpu:
        for number in range(rounds):
            direct_results += await asyncio.gather(*(direct(i) for i in range(n)))
            if number < rounds - 1:
                await asyncio.sleep(0.2)

    await asyncio.sleep(0.5)
    await wait_for_quiet(env)
    log(f"{n} concurrent streams x {rounds} round(s): through Parley")
    with env.profiler.phase(f"streams-{n}"):
        env.parley.reset_peak()
        parley_results: list[StreamResult] = []
        with cpu_use(env) as parley_cpu:
            for number in range(rounds):
                parley_results += await asyncio.gather(*(parley(i) for i in range(n)))
                if number < rounds - 1:
                    await asyncio.sleep(0.2)
    await asyncio.sleep(0.3)  # the peak may come with the final saves
    level = Level(
        streams=n,
        rounds=rounds,
        direct=direct_results,
        parley=parley_results,
        peak_rss=env.parley.peak,
        direct_cpu=direct_cpu,
        parley_cpu=parley_cpu,
    )
    log(
        f"  TTFT p50 {ms(level.stat('direct', 'ttft', 0.5))} -> "
        f"{ms(level.stat('parley', 'ttft', 0.5))} ms; errors {len(level.errors('parley'))}; "
        f"peak RSS {level.peak_rss / 2**20:.0f} MB"
    )
    return level


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


async def measure_interference(
    env: Environment,
    users: list[BenchUser],
    owners: list[BenchUser],
    parley: Callable[[int], Awaitable[StreamResult]],
) -> Interference:
    """Streams run back to back in each chat (staggered, so starts are spread out) while first
    nothing else happens and then `--logins` logins run at once. Each gap between two deltas of
    one stream is counted in the window in which it ended."""
    args = env.args
    n = args.interference_streams
    log(f"interference: {n} streams back to back, then {args.logins} logins at once")
    reply_seconds = args.tokens * args.token_delay
    stop = asyncio.Event()
    results: list[StreamResult] = []

    async def back_to_back(i: int) -> None:
        await asyncio.sleep(random.uniform(0, reply_seconds))
        while not stop.is_set():
            result = await parley(i)
            results.append(result)
            if result.error:
                await asyncio.sleep(0.1)

    loops = [asyncio.create_task(back_to_back(i)) for i in range(n)]
    watch = StallWatch().start()
    try:
        await asyncio.sleep(reply_seconds * 2 + 0.5)  # every stream started, starts spread out

        # Two windows without logins: one before them, and one after them as long as theirs,
        # which is the baseline the target is checked against.
        with cpu_use(env) as cpu:
            before = Window("no logins (before)", time.perf_counter(), 0.0, cpu=cpu)
            await asyncio.sleep(max(2.0, reply_seconds * 2))
            before.end = time.perf_counter()

        # A client of its own per login, as that many people signing in at once would have. They
        # are made before the window opens: making one loads CA certificates, which blocks this
        # event loop for tens of ms and would show up as gaps that Parley did not cause.
        who = [users[i % len(users)] for i in range(args.logins)]
        login_clients = [httpx.AsyncClient(base_url=env.parley_url, timeout=120.0) for _ in who]
        await asyncio.sleep(1.0)
        try:
            with cpu_use(env) as cpu:
                during = Window(f"{args.logins} logins running", time.perf_counter(), 0.0, cpu=cpu)
                outcomes = await asyncio.gather(*map(login, login_clients, who))
                during.end = time.perf_counter()
        finally:
            await asyncio.gather(*(client.aclose() for client in login_clients))

        await asyncio.sleep(max(0.5, reply_seconds / 2))
        with cpu_use(env) as cpu:
            after = Window("no logins (after)", time.perf_counter(), 0.0, cpu=cpu)
            await asyncio.sleep(during.end - during.start)
            after.end = time.perf_counter()
    finally:
        watch.stop()
        stop.set()
        await asyncio.gather(*loops, return_exceptions=True)

    windows = [before, during, after]
    for ended, late in watch.stalls:
        for window in windows:
            if window.start <= ended <= window.end:
                window.client_stalls.append(late)
    for result in results:
        for window in windows:
            if window.start <= result.started_at <= window.end and result.ttft is not None:
                window.ttfts.append(result.ttft)
        for previous, current in zip(result.deltas, result.deltas[1:], strict=False):
            for window in windows:
                if window.start <= current <= window.end:
                    window.gaps.append(current - previous)
    return Interference(
        streams=n,
        logins=args.logins,
        windows=windows,
        login_latencies=[elapsed for elapsed, _ in outcomes],
        login_errors=[error for _, error in outcomes if error],
        stream_errors=[r.error for r in results if r.error],
        replies=len(results),
    )


# --- Resumable replies (--resume) ----------------------------------------------------------------


async def iter_sse_with_ids(response: httpx.Response) -> AsyncIterator[tuple[str, str, str]]:
    """(id, event name, data), as iter_sse but keeping each event's `id:`."""
    event_id, name, data = "", "message", []
    async for line in response.aiter_lines():
        if not line:
            if data:
                yield event_id, name, "\n".join(data)
            event_id, name, data = "", "message", []
        elif line.startswith(":"):
            continue
        else:
            key, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if key == "event":
                name = value
            elif key == "data":
                data.append(value)
            elif key == "id":
                event_id = value


@dataclass
class RejoinResult:
    latency: float | None = None  # from sending the rejoin to its first event
    error: str | None = None


async def rejoined_stream(
    http: httpx.AsyncClient,
    rejoin_http: httpx.AsyncClient,
    chat_id: str,
    token: str,
    content: str,
    expected: str,
    drop_at: int,
) -> RejoinResult:
    """A reply whose connection is dropped after `drop_at` tokens, then rejoined with
    Last-Event-ID; the text of both parts must be the reply."""
    result = RejoinResult()
    headers = {"Authorization": f"Bearer {token}", "Accept": "text/event-stream"}
    text: list[str] = []
    last_id, message_id, deltas = "", "", 0
    try:
        async with http.stream(
            "POST", f"/api/chats/{chat_id}/messages", json={"content": content}, headers=headers
        ) as response:
            if response.status_code != 200:
                result.error = f"HTTP {response.status_code}"
                return result
            async for event_id, name, data in iter_sse_with_ids(response):
                last_id = event_id
                payload = json.loads(data)
                if name == "start":
                    message_id = payload["assistant_message_id"]
                elif name == "delta":
                    # Counted in tokens: a reader that falls behind gets deltas joined.
                    text.append(payload["content"])
                    deltas += payload["content"].count("tok")
                    if deltas >= drop_at:
                        break
                elif name in ("done", "error"):
                    result.error = "the reply ended before the drop"
                    return result
        started = time.perf_counter()
        async with rejoin_http.stream(
            "GET",
            f"/api/chats/{chat_id}/messages/{message_id}/stream",
            headers={**headers, "Last-Event-ID": last_id},
        ) as response:
            if response.status_code != 200:
                result.error = f"rejoin HTTP {response.status_code}"
                return result
            async for _id, name, data in iter_sse_with_ids(response):
                if result.latency is None:
                    result.latency = time.perf_counter() - started
                payload = json.loads(data)
                if name == "delta":
                    text.append(payload["content"])
                elif name == "done":
                    if "".join(text) != expected or payload.get("content") != expected:
                        result.error = "the rejoined text is not the reply"
                    return result
                elif name == "error":
                    result.error = f"error event: {payload.get('code')}"
                    return result
    except (httpx.HTTPError, ValueError) as exc:
        result.error = f"{type(exc).__name__}: {exc}"[:200]
        return result
    result.error = "no done event"
    return result


@dataclass
class ResumeSide:
    """One Parley of the comparison, with its users and chats."""

    label: str
    env: Environment
    clients: Clients
    chats: list[str]
    owners: list[BenchUser]
    rejoin_clients: list[httpx.AsyncClient] = field(default_factory=list)
    cpu_per_token: list[float] = field(default_factory=list)  # µs, one per round
    errors: list[str] = field(default_factory=list)
    rejoins: list[RejoinResult] = field(default_factory=list)
    rejoin_cpu: CpuUse = field(default_factory=CpuUse)

    def rejoin_client(self, stream: int) -> httpx.AsyncClient:
        return self.rejoin_clients[stream // CLIENT_SHARD % len(self.rejoin_clients)]

    @property
    def rejoined_where(self) -> str:
        return "another process, through Redis" if self.env.other_url else "the same process"


async def prepare_side(label: str, env: Environment, streams: int) -> ResumeSide:
    clients = Clients(env, streams)
    run_id = uuid.uuid4().hex[:8]
    # Fewer streams per user than the relay rounds: every request of a session whose last use
    # is older than a minute updates it, and 50 at once queue on that one row.
    users = [
        BenchUser(f"bench-{run_id}-{n}@example.com", f"relay-{secrets.token_hex(12)}-bench")
        for n in range(max(1, math.ceil(streams / RESUME_STREAMS_PER_USER)))
    ]
    await gather_limited(
        [lambda u=u, n=n: register(clients.parley(), u, n) for n, u in enumerate(users)], 8
    )
    owners = [users[i // RESUME_STREAMS_PER_USER] for i in range(streams)]
    chats = await gather_limited([lambda u=u: create_chat(clients.parley(), u) for u in owners], 16)
    limits = httpx.Limits(
        max_connections=CLIENT_SHARD * 2, max_keepalive_connections=None, keepalive_expiry=3.0
    )
    rejoin_clients = [
        httpx.AsyncClient(base_url=env.other_url or env.parley_url, limits=limits, timeout=120)
        for _ in range(max(1, math.ceil(streams / CLIENT_SHARD)))
    ]
    return ResumeSide(label, env, clients, chats, owners, rejoin_clients)


async def measure_resume(off: Environment, on: Environment) -> list[ResumeSide]:
    args = off.args
    n = args.resume_streams
    expected = "".join(f"tok{i} " for i in range(args.tokens))
    sides = [await prepare_side("Redis off", off, n), await prepare_side("Redis on", on, n)]
    try:
        log("warming up both (replies, and rejoins where they will be measured)")
        for side in sides:
            await asyncio.gather(
                *(
                    parley_stream(
                        side.clients.parley(i),
                        side.chats[i],
                        side.owners[i].token,
                        "warm",
                        expected,
                    )
                    for i in range(min(10, n))
                )
            )
            await asyncio.gather(
                *(
                    rejoined_stream(
                        side.clients.parley(i),
                        side.rejoin_client(i),
                        side.chats[i],
                        side.owners[i].token,
                        "warm rejoin",
                        expected,
                        max(1, args.tokens // 4),
                    )
                    for i in range(min(10, n))
                )
            )
        for pair in range(args.cpu_pairs):
            for side in sides if pair % 2 == 0 else sides[::-1]:
                await wait_for_quiet(side.env)
                log(f"CPU round {pair + 1}: {n} streams through Parley ({side.label})")
                with collector_paused(), cpu_use(side.env) as use:
                    results = await asyncio.gather(
                        *(
                            parley_stream(
                                side.clients.parley(i),
                                side.chats[i],
                                side.owners[i].token,
                                f"cpu {pair} {i}",
                                expected,
                            )
                            for i in range(n)
                        )
                    )
                side.errors += [r.error for r in results if r.error]
                side.cpu_per_token.append(use.parley / (n * args.tokens) * 1e6)
        for side in sides:
            await wait_for_quiet(side.env)
            # Each stream drops at its own point (the same ones on both sides), so the rejoins
            # spread over the replies as they would in use, rather than landing all at once.
            rng = random.Random(7)
            drop_points = [rng.randint(4, max(5, args.tokens * 3 // 4)) for _ in range(n)]
            log(f"rejoin: {n} streams, each dropped once and rejoined ({side.label})")
            with collector_paused(), cpu_use(side.env) as use:
                side.rejoins = await asyncio.gather(
                    *(
                        rejoined_stream(
                            side.clients.parley(i),
                            side.rejoin_client(i),
                            side.chats[i],
                            side.owners[i].token,
                            f"rejoin {i}",
                            expected,
                            drop_points[i],
                        )
                        for i in range(n)
                    )
                )
            side.rejoin_cpu = use
        return sides
    finally:
        for side in sides:
            await side.clients.aclose()
            await asyncio.gather(*(c.aclose() for c in side.rejoin_clients))


def resume_report(sides: list[ResumeSide]) -> str:
    args = sides[0].env.args
    off, on = sides
    out = [
        f"### Resumable replies: {args.workers} worker{'s' * (args.workers > 1)}, {args.db}",
        "",
        f"{args.resume_streams} concurrent streams of {args.tokens} tokens "
        f"{args.token_delay * 1000:g} ms apart; {os.cpu_count()} CPUs; {args.cpu_pairs} rounds "
        "each, alternating. CPU: Parley's process tree (user + system) per relayed token; with "
        "Redis, rate-limit counters and the stop channel also use it.",
        "",
        "| Parley | CPU µs/token (median) | rounds | stream errors | rejoined on | rejoin p50 "
        "| rejoin p99 | rejoin errors | cores busy while rejoining: streaming Parley / rest "
        "of machine |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for side in sides:
        latencies = [r.latency for r in side.rejoins if r.latency is not None]
        rounds = ", ".join(f"{v:.0f}" for v in side.cpu_per_token)
        median = percentile(side.cpu_per_token, 0.5)
        out.append(
            f"| {side.label} | {median or 0:.1f} | {rounds} | {len(side.errors)} | "
            f"{side.rejoined_where} | {ms(percentile(latencies, 0.5))} ms | "
            f"{ms(percentile(latencies, 0.99))} ms | "
            f"{len([r for r in side.rejoins if r.error])} | "
            f"{side.rejoin_cpu.parley / max(side.rejoin_cpu.wall, 1e-9):.2f} / "
            f"{side.rejoin_cpu.others / max(side.rejoin_cpu.wall, 1e-9):.2f} |"
        )
    off_cpu = percentile(off.cpu_per_token, 0.5)
    on_cpu = percentile(on.cpu_per_token, 0.5)
    if off_cpu and on_cpu:
        ratio = on_cpu / off_cpu
        verdict = "met" if ratio <= 1.3 else "**missed**"
        out += ["", f"CPU per token, Redis on / off: **{ratio:.2f}x** (target ≤ 1.3x: {verdict})"]
    failures = sorted({e for s in sides for e in [*s.errors, *(r.error for r in s.rejoins)] if e})
    if failures:
        out += ["", "Errors: " + "; ".join(failures[:5])]
    return "\n".join(out)


# --- Set-up and tear-down ----------------------------------------------------------------------


def settings_overrides(redis_url: str | None) -> tuple[dict[str, str], set[str], list[str]]:
    """Generous values for whatever rate-limit and quota settings Parley has today, read from
    its Settings class at run time (they are being added while this benchmark is written)."""
    sys.path.insert(0, str(ROOT))
    config = importlib.import_module("app.core.config")
    fields: dict[str, Any] = config.Settings.model_fields
    overrides: dict[str, str] = {}
    for name, info in fields.items():
        default = info.default
        if isinstance(default, str) and LIMIT_SYNTAX.match(default):
            overrides[name.upper()] = "1000000/minute"
        elif (
            isinstance(default, int)
            and not isinstance(default, bool)
            and ("rate_limit" in name or "quota" in name)
        ):
            overrides[name.upper()] = str(10**12)
    notes = []
    if redis_url and "redis_url" not in fields:
        notes.append("REDIS_URL is set but this Parley has no redis_url setting: it is ignored")
    return overrides, set(fields), notes


def migrate(database_url: str, cwd: Path, env: dict[str, str]) -> None:
    subprocess.run(
        [sys.executable, "-m", "alembic", "-c", str(ROOT / "alembic.ini"), "upgrade", "head"],
        cwd=cwd,
        env={**env, "DATABASE_URL": database_url},
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


async def _postgres_admin(statement: str) -> None:
    import asyncpg  # Parley's own driver; only needed for --db postgres

    connection = await asyncpg.connect(POSTGRES_ADMIN_DSN, timeout=5)
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


def create_database(args: argparse.Namespace, workdir: Path, stack: contextlib.ExitStack) -> str:
    if args.db == "sqlite":
        return f"sqlite+aiosqlite:///{workdir / 'parley.db'}"
    name = f"parley_bench_{uuid.uuid4().hex[:12]}"
    asyncio.run(_postgres_admin(f'CREATE DATABASE "{name}"'))
    log(f"created Postgres database {name}")

    def drop() -> None:
        asyncio.run(_postgres_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        log(f"dropped Postgres database {name}")

    stack.callback(drop)
    parts = urlsplit(POSTGRES_ADMIN_DSN)
    return urlunsplit(("postgresql+asyncpg", parts.netloc, f"/{name}", "", ""))


def start_servers(
    args: argparse.Namespace,
    stack: contextlib.ExitStack,
    extra_env: dict[str, str] | None = None,
) -> Environment:
    workdir = Path(tempfile.mkdtemp(prefix="parley-bench-"))
    stack.callback(shutil.rmtree, workdir, True)
    overrides, setting_names, notes = settings_overrides(args.redis_url)
    # Nothing from the caller's shell or a .env may change Parley's settings: drop every variable
    # named like a setting, and run from the temporary directory (pydantic-settings reads ./.env).
    base_env = {k: v for k, v in os.environ.items() if k.lower() not in setting_names}
    base_env["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])
    )

    upstream_port = free_port()
    upstream = Child(
        "fake upstream",
        [
            sys.executable,
            str(ROOT / "bench" / "_fake_upstream_server.py"),
            f"--port={upstream_port}",
            f"--tokens={args.tokens}",
            f"--token-delay={args.token_delay}",
            f"--guard-delay={args.guard_delay}",
        ],
        env=base_env,
        cwd=workdir,
        log_path=workdir / "upstream.log",
    )
    stack.callback(upstream.stop)
    upstream_url = f"http://127.0.0.1:{upstream_port}"
    wait_for_http(f"{upstream_url}/v1/models", upstream)

    database_url = create_database(args, workdir, stack)
    migrate(database_url, workdir, base_env)

    parley_env = {
        **base_env,
        "DATABASE_URL": database_url,
        "SECRET_KEY": secrets.token_urlsafe(48),
        "ENVIRONMENT": "development",
        "LLM_BASE_URL": f"{upstream_url}/v1",
        "LLM_MODEL": MODEL,
        "LOG_LEVEL": "WARNING",
        "BCRYPT_ROUNDS": "12",
        "AUTO_TITLE": "false",
        **overrides,
        **(extra_env or {}),
    }
    if args.redis_url:
        parley_env["REDIS_URL"] = args.redis_url

    def parley_command(port: int, workers: int) -> list[str]:
        return [
            sys.executable,
            "-m",
            "uvicorn",
            "--factory",
            args.app,
            f"--workers={workers}",
            "--host=127.0.0.1",
            f"--port={port}",
            "--log-level=warning",
            "--timeout-graceful-shutdown=5",
        ]

    parley_port = free_port()
    parley = Child(
        "Parley",
        parley_command(parley_port, args.workers),
        env=parley_env,
        cwd=workdir,
        log_path=workdir / "parley.log",
    )
    stack.callback(_report_log, parley)
    stack.callback(parley.stop)
    parley_url = f"http://127.0.0.1:{parley_port}"
    wait_for_http(f"{parley_url}/health", parley, successes=5)
    deadline = time.monotonic() + 60
    while args.workers > 1 and len(tree_pids(parley.pid)) < args.workers + 1:
        if time.monotonic() > deadline:
            raise RuntimeError(f"Parley's workers did not start:\n{parley.tail()}")
        time.sleep(0.1)
    wait_for_http(f"{parley_url}/health", parley, successes=20)

    other_url = None
    if args.resume and args.redis_url:
        other_port = free_port()
        other = Child(
            "Parley (second)",
            parley_command(other_port, 1),
            env=parley_env,
            cwd=workdir,
            log_path=workdir / "parley-second.log",
        )
        stack.callback(other.stop)
        other_url = f"http://127.0.0.1:{other_port}"
        wait_for_http(f"{other_url}/health", other, successes=5)

    parley_sampler = TreeSampler(parley.pid).start()
    stack.callback(parley_sampler.stop)
    upstream_sampler = TreeSampler(upstream.pid, interval=1.0).start()
    stack.callback(upstream_sampler.stop)
    log(f"Parley (pid {parley.pid}, {args.workers} worker(s), {args.db}) on {parley_url}")
    return Environment(
        args=args,
        parley_url=parley_url,
        upstream_url=upstream_url,
        parley=parley_sampler,
        upstream=upstream_sampler,
        overrides=overrides,
        notes=notes,
        profiler=Profiler(args.py_spy, parley.pid, workdir),
        other_url=other_url,
    )


def _report_log(parley: Child) -> None:
    """Parley logs warnings and errors only: show them, grouped, as they explain failed streams."""
    seen: dict[str, int] = {}
    for line in parley.tail(100_000).splitlines():
        try:
            entry = json.loads(line)
            summary = f"{entry.get('level')} {entry.get('logger')}: {entry.get('message')}"
            if entry.get("exc_info"):
                summary += " <- " + entry["exc_info"].strip().splitlines()[-1]
        except (ValueError, AttributeError):
            summary = line.strip()
        if summary:
            seen[summary[:400]] = seen.get(summary[:400], 0) + 1
    if seen:
        log(f"Parley logged {sum(seen.values())} line(s):")
        for summary, count in sorted(seen.items(), key=lambda item: -item[1])[:10]:
            print(f"    {count} x {summary}", file=sys.stderr)


# --- Report --------------------------------------------------------------------------------------


def cell(direct: float | None, parley: float | None) -> str:
    return f"{ms(direct)} → {ms(parley)}"


def report(env: Environment, levels: list[Level], interference: Interference | None) -> str:
    args = env.args
    out: list[str] = []
    title = f"{args.workers} worker{'s' if args.workers > 1 else ''}, {args.db}"
    if args.redis_url:
        title += ", Redis"
    if args.app != "app.main:create_app":
        title += f", app {args.app}"
    out.append(f"### Relay benchmark: {title}")
    out.append("")
    out.append(
        f"{args.tokens} tokens per reply, {args.token_delay * 1000:g} ms apart (about "
        f"{args.tokens * args.token_delay:.2f} s per reply upstream); {os.cpu_count()} CPUs; "
        f"load average {env.load_average:.1f} at the start; "
        f"bcrypt cost 12; Parley idle RSS {env.idle_rss / 2**20:.0f} MB. Times in ms, "
        "upstream directly → through Parley; added = Parley - direct. Rounds of one stream "
        f"repeat until {args.min_samples} samples."
    )
    for note in env.notes:
        out.append(f"Note: {note}.")
    if env.overrides:
        out.append("Raised for the run: " + ", ".join(sorted(env.overrides)) + ".")
    out.append("")
    out.append(
        "| streams | samples | TTFT p50 | added p50 | TTFT p99 | added p99 | total p50 | "
        "added p50 | total p99 | added p99 | errors | peak RSS |"
    )
    out.append("|" + "---|" * 12)
    for level in levels:
        row = [str(level.streams), str(len(level.parley))]
        for metric in ("ttft", "total"):
            for q in (0.5, 0.99):
                d, p = level.stat("direct", metric, q), level.stat("parley", metric, q)
                row += [cell(d, p), signed_ms(difference(d, p))]
        errors = len(level.errors("parley"))
        direct_errors = len(level.errors("direct"))
        row.append(f"{errors}" + (f" (direct {direct_errors})" if direct_errors else ""))
        row.append(f"{level.peak_rss / 2**20:.0f} MB")
        out.append("| " + " | ".join(row) + " |")

    out.append("")
    out.append(
        "CPU seconds used while the rounds ran, by process (2 CPUs give 2 s per wall second; "
        "'others' is the rest of the machine, which competes with what is measured):"
    )
    out.append("")
    out.append("| streams | rounds | wall s | Parley | fake upstream | load client | others |")
    out.append("|---|---|---|---|---|---|---|")
    for level in levels:
        for label, use in (("direct", level.direct_cpu), ("Parley", level.parley_cpu)):
            out.append(
                f"| {level.streams} | {label} | {use.wall:.2f} | {use.parley:.2f} | "
                f"{use.upstream:.2f} | {use.client:.2f} | {use.others:.2f} |"
            )

    gap_growth = None
    if interference is not None:
        out.append("")
        lat = interference.login_latencies
        out.append(
            f"Logins during streams: {interference.streams} streams back to back "
            f"({interference.replies} replies, {len(interference.stream_errors)} errors); "
            f"{interference.logins} logins at once, {len(interference.login_errors)} failed, "
            f"login time p50 {ms(percentile(lat, 0.5))} ms, max {ms(max(lat, default=None))} ms."
        )
        out.append("")
        out.append(
            "| window | length s | delta gaps | gap p50 | gap p99 | largest gap "
            "| load client's longest stall | streams started | their TTFT p50 | TTFT max "
            "| Parley CPU s | others CPU s |"
        )
        out.append("|---|---|---|---|---|---|---|---|---|---|---|---|")
        for window in interference.windows:
            gaps, ttfts = window.gaps, window.ttfts
            out.append(
                f"| {window.name} | {window.end - window.start:.2f} | {len(gaps)} | "
                f"{ms(percentile(gaps, 0.5))} | {ms(percentile(gaps, 0.99))} | "
                f"{ms(max(gaps, default=None))} | {ms(max(window.client_stalls, default=None))} | "
                f"{len(ttfts)} | {ms(percentile(ttfts, 0.5))} | "
                f"{ms(max(ttfts, default=None))} | {window.cpu.parley:.2f} | "
                f"{window.cpu.others:.2f} |"
            )
        _before, during, after = interference.windows
        if during.gaps and after.gaps:
            gap_growth = max(during.gaps) - max(after.gaps)

    out.append("")
    out.append("| target | measured | |")
    out.append("|---|---|---|")
    by_n = {level.streams: level for level in levels}

    def check(
        label: str, value: float | None, limit: float, unit: str, *, upto: bool = False
    ) -> None:
        if value is None:
            out.append(f"| {label} | not measured | |")
        else:
            verdict = "met" if value < limit or (upto and value == limit) else "**missed**"
            out.append(f"| {label} | {value:.1f} {unit} | {verdict} |")

    for n, key in ((1, "ttft_p50_1"), (100, "ttft_p50_100")):
        level = by_n.get(n)
        added = (
            difference(level.stat("direct", "ttft", 0.5), level.stat("parley", "ttft", 0.5))
            if level
            else None
        )
        check(
            f"added TTFT p50 at {n} stream{'s' * (n > 1)} < {TARGETS[key]:g} ms",
            None if added is None else added * 1000,
            TARGETS[key],
            "ms",
        )
    top = by_n.get(500)
    if top is None:
        out.append("| zero errors at 500 streams | not measured | |")
    else:
        errors = len(top.errors("parley"))
        out.append(
            f"| zero errors at 500 streams | {errors} | {'met' if errors == 0 else '**missed**'} |"
        )
    check(
        f"peak RSS at 500 streams < {TARGETS['rss_500']:g} MB",
        top.peak_rss / 2**20 if top else None,
        TARGETS["rss_500"],
        "MB",
    )
    check(
        f"largest delta gap grows ≤ {TARGETS['gap_growth']:g} ms during logins",
        None if gap_growth is None else gap_growth * 1000,
        TARGETS["gap_growth"],
        "ms",
        upto=True,
    )
    failures = sorted({e for level in levels for e in level.errors("parley")})
    if interference is not None:
        failures = sorted({*failures, *interference.stream_errors, *interference.login_errors})
    if failures:
        out.append("")
        out.append("Errors seen through Parley: " + "; ".join(failures[:5]))
    return "\n".join(out)


# --- Entry point ---------------------------------------------------------------------------------


# --- The guarded run: what the guardrails cost -----------------------------------------------

# One Parley serves the three runs, told apart by the chat's mode (GUARDRAILS_MODES narrows the
# checks per mode), so that their samples can alternate: on a shared machine, runs minutes apart
# meet different loads, and the differences measured would be the load's. The fake upstream
# answers as the guard model ("guard-model") after --guard-delay seconds.
_BASE_INPUT = ["max_input_chars", "blocked_patterns", "pii"]
GUARDED_RUNS = {"plain": "summarize", "input guard": "similar_questions", "output checks": "chat"}
GUARDED_ENV = {
    "LLM_MODELS": json.dumps({"guard-model": {"model": "guard-model"}}),
    "GUARD_MODEL": "guard-model",
    "GUARD_ON": "input",
    "GUARDRAILS_OUTPUT": "blocked_patterns,pii",
    "BLOCKED_PATTERNS": json.dumps(["forbidden phrase", r"how to build a \w+"]),
    "PII_EMAIL": "redact",
    "PII_PHONE": "redact",
    "GUARDRAILS_MODES": json.dumps(
        {
            "summarize": {"input": _BASE_INPUT, "output": []},
            "similar_questions": {"output": []},
            "chat": {"input": _BASE_INPUT},
        }
    ),
}


@dataclass
class GuardedRun:
    name: str
    ttft: list[StreamResult] = field(default_factory=list)
    batch: list[StreamResult] = field(default_factory=list)
    cpu: float = 0.0  # Parley's CPU seconds during this run's batches
    tokens: int = 0

    @property
    def cpu_per_token_us(self) -> float:
        return self.cpu / max(1, self.tokens) * 1e6

    def errors(self) -> list[str]:
        return [r.error for r in [*self.ttft, *self.batch] if r.error]


async def create_mode_chat(http: httpx.AsyncClient, user: BenchUser, mode: str) -> str:
    response = await http.post(
        "/api/chats", json={"mode": mode}, headers={"Authorization": f"Bearer {user.token}"}
    )
    if response.status_code != 201:
        raise RuntimeError(f"create chat failed: {response.status_code} {response.text[:300]}")
    return str(response.json()["id"])


async def measure_guarded(env: Environment) -> tuple[list[GuardedRun], float | None]:
    """Time to first token over single streams, the runs taking turns; then Parley's CPU per
    relayed token over batches of --guarded-streams concurrent streams, the runs taking turns.
    Also the stub guard's own round trip."""
    args = env.args
    expected = "".join(f"tok{i} " for i in range(args.tokens))
    n = args.guarded_streams
    clients = Clients(env, n)
    runs = {name: GuardedRun(name) for name in GUARDED_RUNS}
    try:
        run_id = uuid.uuid4().hex[:8]
        users = [
            BenchUser(f"guard-{run_id}-{k}@example.com", f"relay-{secrets.token_hex(12)}-bench")
            for k in range(max(1, math.ceil(n / STREAMS_PER_USER)))
        ]
        await gather_limited(
            [lambda u=u, k=k: register(clients.parley(), u, k) for k, u in enumerate(users)], 8
        )
        owners = [users[i // STREAMS_PER_USER] for i in range(n)]
        chats = {
            name: await gather_limited(
                [lambda u=u, m=mode: create_mode_chat(clients.parley(), u, m) for u in owners], 16
            )
            for name, mode in GUARDED_RUNS.items()
        }

        def parley(name: str, i: int) -> Awaitable[StreamResult]:
            return parley_stream(
                clients.parley(i), chats[name][i], owners[i].token, f"Hello {i}", expected
            )

        for name in GUARDED_RUNS:  # warm-up
            await asyncio.gather(*(parley(name, i) for i in range(min(10, n))))
        await wait_for_quiet(env)
        log(f"{args.min_samples} single streams per run, the runs taking turns")
        with collector_paused():
            for _ in range(args.min_samples):
                for name, run in runs.items():
                    run.ttft.append(await parley(name, 0))
        log(f"{args.guarded_rounds} batches of {n} concurrent streams per run, taking turns")
        for _ in range(args.guarded_rounds):
            for name, run in runs.items():
                await wait_for_quiet(env)
                with collector_paused(), cpu_use(env) as cpu:
                    batch = await asyncio.gather(*(parley(name, i) for i in range(n)))
                run.batch += batch
                run.cpu += cpu.parley
                run.tokens += args.tokens * sum(1 for r in batch if not r.error)
                await asyncio.sleep(0.5)  # the batch's final saves
        return list(runs.values()), await guard_round_trip(clients)
    finally:
        await clients.aclose()


async def guard_round_trip(clients: Clients, samples: int = 40) -> float | None:
    """The stub guard's latency as a client sees it: a verdict asked for straight from the fake
    upstream, as Parley asks (its sleep plus the fake's own HTTP and JSON work)."""
    body = {
        "model": "guard-model",
        "messages": [{"role": "user", "content": "Hello 0"}],
        "stream": False,
        "max_tokens": 20,
        "temperature": 0,
    }
    times = []
    for _ in range(samples):
        started = time.perf_counter()
        response = await clients.upstream().post("/v1/chat/completions", json=body)
        if response.status_code == 200:
            times.append(time.perf_counter() - started)
    return percentile(times, 0.5)


def report_guarded(
    args: argparse.Namespace, runs: list[GuardedRun], guard_latency: float | None
) -> str:
    by_name = {run.name: run for run in runs}
    plain = by_name["plain"]

    def p50(run: GuardedRun) -> float | None:
        return percentile([r.ttft for r in run.ttft if r.ttft is not None], 0.5)

    out = [
        f"{args.tokens} tokens per reply, {args.token_delay * 1000:g} ms apart; stub guard "
        f"sleeps {args.guard_delay * 1000:g} ms; {args.min_samples} single streams per run for "
        f"TTFT; {args.guarded_rounds} x {args.guarded_streams} concurrent streams per run for "
        f"CPU; the runs take turns in one Parley; {os.cpu_count()} CPUs.",
        "",
        "| run | TTFT p50 | vs plain | Parley CPU per relayed token | vs plain | errors |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for run in runs:
        ratio = run.cpu_per_token_us / plain.cpu_per_token_us if plain.cpu_per_token_us else 0
        out.append(
            f"| {run.name} | {ms(p50(run))} ms | {signed_ms(difference(p50(plain), p50(run)))} ms "
            f"| {run.cpu_per_token_us:.1f} µs | {ratio:.2f}x | {len(run.errors())} |"
        )
    guard, output = by_name["input guard"], by_name["output checks"]
    out.append("")
    added = difference(p50(plain), p50(guard))
    latency = guard_latency or args.guard_delay
    budget = latency + 0.003
    met = added is not None and added <= budget
    out.append(
        f"- input guard: TTFT added {ms(added)} ms; the stub guard's round trip from a client "
        f"(its sleep plus the fake's HTTP work) p50 {ms(latency)} ms; target ≤ guard latency "
        f"+ 3 ms = {ms(budget)} ms: {'met' if met else 'MISSED'}"
    )
    if plain.cpu_per_token_us:
        ratio = output.cpu_per_token_us / plain.cpu_per_token_us
        out.append(
            f"- output checks (hold-back {GUARD_HOLDBACK} tokens, so TTFT waits for them): CPU "
            f"per relayed token {ratio:.2f}x plain, target ≤ 1.5x: "
            f"{'met' if ratio <= 1.5 else 'MISSED'}"
        )
    for run in runs:
        if run.errors():
            out.append(f"- {run.name} errors: {sorted(set(run.errors()))[:3]}")
    return "\n".join(out)


GUARD_HOLDBACK = 24  # Parley's default GUARD_HOLDBACK_TOKENS


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Time to first token, total time, errors and RSS: upstream vs through Parley."
    )

    def counts(text: str) -> list[int]:
        values = [int(part) for part in text.split(",") if part.strip()]
        if not values or min(values) < 1:
            raise argparse.ArgumentTypeError("a comma-separated list of positive integers")
        return values

    parser.add_argument("--streams", type=counts, default=[1, 100, 500])
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--token-delay", type=float, default=0.02, help="seconds between tokens")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--redis-url", default=None)
    parser.add_argument(
        "--app",
        default="app.main:create_app",
        metavar="MODULE:FACTORY",
        help="the app factory uvicorn serves; another one (on PYTHONPATH) for A/B experiments",
    )
    parser.add_argument("--min-samples", type=int, default=MIN_SAMPLES)
    parser.add_argument(
        "--guarded",
        action="store_true",
        help="instead: compare Parley plain, with an input guard model, and with output checks",
    )
    parser.add_argument("--guard-delay", type=float, default=0.005, help="the stub guard's time")
    parser.add_argument("--guarded-streams", type=int, default=100)
    parser.add_argument("--guarded-rounds", type=int, default=3)
    parser.add_argument("--logins", type=int, default=20, help="0 skips the interference check")
    parser.add_argument("--interference-streams", type=int, default=100)
    parser.add_argument(
        "--quiet-wait",
        type=float,
        default=0.0,
        metavar="S",
        help="before each phase, wait up to S seconds for other processes to go quiet",
    )
    parser.add_argument(
        "--py-spy", metavar="DIR", help="profile Parley with py-spy during each measured phase"
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="measure resumable replies instead (needs --redis-url): CPU per token with Redis "
        "publishing on and off, and rejoin latency",
    )
    parser.add_argument("--resume-streams", type=int, default=100)
    parser.add_argument("--cpu-pairs", type=int, default=3, help="CPU rounds per Parley")
    args = parser.parse_args(argv)
    if args.resume and not args.redis_url:
        parser.error("--resume needs --redis-url")
    return args


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


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.guarded:
        with sigterm_as_interrupt(), contextlib.ExitStack() as stack:
            env = start_servers(args, stack, GUARDED_ENV)
            runs, guard_latency = run_async(measure_guarded(env))
        print(report_guarded(args, runs, guard_latency))
        return 0
    if args.resume:
        with sigterm_as_interrupt(), contextlib.ExitStack() as stack:
            off = start_servers(argparse.Namespace(**{**vars(args), "redis_url": None}), stack)
            on = start_servers(args, stack)
            table = resume_report(run_async(measure_resume(off, on)))
        print(table)
        return 0
    with sigterm_as_interrupt(), contextlib.ExitStack() as stack:
        env = start_servers(args, stack)
        levels, interference = run_async(measure(env))
        table = report(env, levels, interference)
    print(table)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        log("interrupted; everything started was stopped")
        sys.exit(130)
