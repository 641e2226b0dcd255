"""bench/relay.py's default run: each stream count straight to the upstream and through Parley,
then logins while streams run.
"""

import asyncio
import math
import random
import secrets
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import httpx
from _common import (
    BenchUser,
    StallWatch,
    StreamResult,
    collector_paused,
    create_chat,
    direct_stream,
    gather_limited,
    log,
    login,
    ms,
    parley_stream,
    percentile,
    register,
)
from _relay_env import Clients, CpuUse, Environment, cpu_use, wait_for_quiet

STREAMS_PER_USER = 50


# Small rounds (one stream) are repeated until there are this many samples, so p50/p99 mean
# something; big rounds run once.
MIN_SAMPLES = 20


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
