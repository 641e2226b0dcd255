"""Uploads through Parley: throughput, upload time, memory, and what they do to streaming replies.

    .venv/bin/python bench/files.py [--seconds 30] [--concurrency 10] [--size-mb 5]
                                    [--streams 20] [--db sqlite|postgres]

Starts the fake upstream and Parley as bench/relay.py does (own processes, a fresh database,
FILE_STORAGE=local in a temporary directory). Then `--streams` replies stream back to back,
first alone (the baseline window), then while a separate uploader process (so its work cannot
delay this process's reading of deltas) sends `--concurrency` uploads of `--size-mb` MB at a
time for `--seconds` s: PNG and JPEG photos of noise and CSV text, in turn. Prints a table:
MB/s, upload time p50/p99, Parley's RSS idle and at peak, and the delta gaps in both windows.
"""

import argparse
import asyncio
import contextlib
import io
import json
import os
import secrets
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
from _common import (
    BenchUser,
    StallWatch,
    StreamResult,
    collector_paused,
    create_chat,
    ms,
    parley_stream,
    percentile,
    register,
    run_async,
    sigterm_as_interrupt,
)
from _relay_env import Environment, cpu_use, start_servers
from relay import parse_args as relay_args

RSS_BUDGET_MB = 60.0  # peak over idle
GAP_GROWTH_MS = 20.0
BASELINE_SECONDS = 10.0


def log(message: str) -> None:
    print(f"[files {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --- the uploader (a process of its own) ---------------------------------------------------------


def payloads(size: int) -> list[tuple[str, bytes]]:
    """Files of about `size` bytes: photos of noise (incompressible) and CSV text."""
    from PIL import Image

    side = int((size / 3) ** 0.5)
    picture = Image.frombytes("RGB", (side, side), os.urandom(side * side * 3))
    png, jpeg = io.BytesIO(), io.BytesIO()
    picture.save(png, "PNG", compress_level=1)
    big = picture.resize((int(side * 1.45), int(side * 1.45)))
    big.save(jpeg, "JPEG", quality=98)
    row = b"2026-11-29,parley,upload benchmark,12345.678,some text in a cell\n"
    csv = (row * (size // len(row) + 1))[:size]
    return [("noise.png", png.getvalue()), ("noise.jpg", jpeg.getvalue()), ("table.csv", csv)]


async def upload_loop(args: argparse.Namespace) -> None:
    files = payloads(int(args.size_mb * 1_000_000))
    results: list[dict[str, Any]] = []
    limits = httpx.Limits(max_connections=args.concurrency * 2)
    async with httpx.AsyncClient(base_url=args.url, timeout=120, limits=limits) as http:
        headers = {"Authorization": f"Bearer {args.token}"}
        print("started", flush=True)
        deadline = time.perf_counter() + args.seconds

        async def worker(number: int) -> None:
            turn = number
            while time.perf_counter() < deadline:
                name, content = files[turn % len(files)]
                turn += 1
                started = time.perf_counter()
                try:
                    response = await http.post(
                        "/api/files", files={"file": (name, content)}, headers=headers
                    )
                    status, error = response.status_code, response.text[:200]
                except httpx.HTTPError as exc:
                    status, error = 0, repr(exc)[:200]
                results.append(
                    {
                        "name": name,
                        "bytes": len(content),
                        "seconds": time.perf_counter() - started,
                        "status": status,
                        "error": None if status == 201 else error,
                    }
                )

        await asyncio.gather(*(worker(n) for n in range(args.concurrency)))
    print(json.dumps(results), flush=True)


# --- the measurement ------------------------------------------------------------------------------


@dataclass
class Window:
    name: str
    start: float = 0.0
    end: float = 0.0
    gaps: list[float] = field(default_factory=list)
    client_stalls: list[float] = field(default_factory=list)
    parley_cpu: float = 0.0


@dataclass
class Outcome:
    idle_rss: int
    peak_rss: int
    uploads: list[dict[str, Any]]
    windows: list[Window]
    replies: int
    stream_errors: list[str]
    sizes: dict[str, int]


async def measure(env: Environment, args: argparse.Namespace) -> Outcome:
    timeout = httpx.Timeout(connect=30.0, read=120.0, write=30.0, pool=60.0)
    async with httpx.AsyncClient(base_url=env.parley_url, timeout=timeout) as http:
        run_id = uuid.uuid4().hex[:8]
        streamer = BenchUser(f"streams-{run_id}@example.com", f"files-{secrets.token_hex(12)}")
        uploader = BenchUser(f"uploads-{run_id}@example.com", f"files-{secrets.token_hex(12)}")
        await register(http, streamer, 1)
        await register(http, uploader, 2)
        chats = [await create_chat(http, streamer) for _ in range(args.streams)]
        expected = "".join(f"tok{i} " for i in range(args.tokens))  # the fake's reply

        # Warm-up: every code path once (uploads of each kind, replies), then idle RSS.
        for name, content in payloads(200_000):
            response = await http.post(
                "/api/files",
                files={"file": (name, content)},
                headers={"Authorization": f"Bearer {uploader.token}"},
            )
            if response.status_code != 201:
                raise RuntimeError(f"warm-up upload failed: {response.text[:300]}")
        await asyncio.gather(
            *(parley_stream(http, chat, streamer.token, "hi", expected) for chat in chats)
        )
        await asyncio.sleep(2.0)
        idle_rss = env.parley.current

        results: list[StreamResult] = []
        stop = asyncio.Event()

        async def stream_loop(chat: str, offset: float) -> None:
            await asyncio.sleep(offset)
            while not stop.is_set():
                results.append(await parley_stream(http, chat, streamer.token, "hi", expected))

        baseline, during = Window("replies alone"), Window("replies during uploads")
        watch = StallWatch().start()
        reply_seconds = args.tokens * args.token_delay
        loops = [
            asyncio.create_task(stream_loop(chat, reply_seconds * n / len(chats)))
            for n, chat in enumerate(chats)
        ]
        try:
            with collector_paused():
                await asyncio.sleep(reply_seconds)  # every stream running
                with cpu_use(env) as cpu:
                    baseline.start = time.perf_counter()
                    await asyncio.sleep(BASELINE_SECONDS)
                    baseline.end = time.perf_counter()
                baseline.parley_cpu = cpu.parley

                process = await asyncio.create_subprocess_exec(
                    sys.executable,
                    __file__,
                    "--uploader",
                    f"--url={env.parley_url}",
                    f"--token={uploader.token}",
                    f"--seconds={args.seconds}",
                    f"--concurrency={args.concurrency}",
                    f"--size-mb={args.size_mb}",
                    stdout=asyncio.subprocess.PIPE,
                    limit=1 << 26,  # the report is one JSON line
                )
                assert process.stdout is not None
                started = await process.stdout.readline()
                if started.strip() != b"started":
                    raise RuntimeError(f"the uploader did not start: {started!r}")
                env.parley.reset_peak()
                with cpu_use(env) as cpu:
                    during.start = time.perf_counter()
                    report_line = await process.stdout.readline()
                    during.end = time.perf_counter()
                during.parley_cpu = cpu.parley
                peak_rss = env.parley.peak
                await process.wait()
        finally:
            stop.set()
            watch.stop()
            await asyncio.gather(*loops, return_exceptions=True)

    uploads = json.loads(report_line)
    windows = [baseline, during]
    for ended, late in watch.stalls:
        for window in windows:
            if window.start <= ended <= window.end:
                window.client_stalls.append(late)
    for result in results:
        for previous, current in zip(result.deltas, result.deltas[1:], strict=False):
            for window in windows:
                if window.start <= current <= window.end:
                    window.gaps.append(current - previous)
    sizes = {name: len(content) for name, content in payloads(int(args.size_mb * 1_000_000))}
    return Outcome(
        idle_rss=idle_rss,
        peak_rss=peak_rss,
        uploads=uploads,
        windows=windows,
        replies=len(results),
        stream_errors=[r.error for r in results if r.error],
        sizes=sizes,
    )


def report(args: argparse.Namespace, outcome: Outcome) -> str:
    during = outcome.windows[1]
    seconds = during.end - during.start
    done = [u for u in outcome.uploads if u["status"] == 201]
    failed = [u for u in outcome.uploads if u["status"] != 201]
    times = [u["seconds"] for u in done]
    megabytes = sum(u["bytes"] for u in done) / 1e6
    idle_mb, peak_mb = outcome.idle_rss / 2**20, outcome.peak_rss / 2**20
    out = [
        f"## Uploads: {args.concurrency} at a time, {args.size_mb:g} MB files, "
        f"{seconds:.1f} s, {args.db}, {args.streams} replies streaming meanwhile",
        "",
        "| uploads | failed | MB/s | upload p50 ms | upload p99 ms | Parley RSS idle MB "
        "| peak MB | peak - idle MB |",
        "|---|---|---|---|---|---|---|---|",
        f"| {len(done)} | {len(failed)} | {megabytes / seconds:.1f} | "
        f"{ms(percentile(times, 0.5))} | {ms(percentile(times, 0.99))} | {idle_mb:.0f} | "
        f"{peak_mb:.0f} | {peak_mb - idle_mb:.0f} |",
        "",
        "| by file | uploads | p50 ms | p99 ms |",
        "|---|---|---|---|",
    ]
    for name, size in outcome.sizes.items():
        mine = [u["seconds"] for u in done if u["name"] == name]
        out.append(
            f"| {name} ({size / 1e6:.1f} MB) | {len(mine)} | {ms(percentile(mine, 0.5))} | "
            f"{ms(percentile(mine, 0.99))} |"
        )
    out += [
        "",
        "| window | s | delta gaps | gap p50 ms | gap p99 ms | largest gap ms "
        "| load client's longest stall ms | Parley CPU s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for window in outcome.windows:
        gaps = window.gaps
        out.append(
            f"| {window.name} | {window.end - window.start:.1f} | {len(gaps)} | "
            f"{ms(percentile(gaps, 0.5))} | {ms(percentile(gaps, 0.99))} | "
            f"{ms(max(gaps, default=None))} | {ms(max(window.client_stalls, default=None))} | "
            f"{window.parley_cpu:.1f} |"
        )
    baseline = outcome.windows[0]
    growth = (
        (max(during.gaps) - max(baseline.gaps)) * 1000 if during.gaps and baseline.gaps else None
    )
    rss_growth = peak_mb - idle_mb
    out += [
        "",
        "| target | measured | |",
        "|---|---|---|",
        f"| peak RSS within idle + {RSS_BUDGET_MB:g} MB | +{rss_growth:.1f} MB | "
        f"{'met' if rss_growth <= RSS_BUDGET_MB else '**missed**'} |",
        f"| largest delta gap grows ≤ {GAP_GROWTH_MS:g} ms during uploads | "
        + (
            f"{growth:+.1f} ms | {'met' if growth <= GAP_GROWTH_MS else '**missed**'} |"
            if growth is not None
            else "not measured | |"
        ),
        f"| no failed uploads | {len(failed)} | {'met' if not failed else '**missed**'} |",
    ]
    if failed:
        out.append("")
        out.append("Failed uploads: " + "; ".join(sorted({str(u["error"]) for u in failed})[:5]))
    if outcome.stream_errors:
        out.append("")
        out.append(
            f"Reply errors ({len(outcome.stream_errors)} of {outcome.replies}): "
            + "; ".join(sorted(set(outcome.stream_errors))[:5])
        )
    return "\n".join(out)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--size-mb", type=float, default=5.0)
    parser.add_argument("--streams", type=int, default=20)
    parser.add_argument("--tokens", type=int, default=100)
    parser.add_argument("--token-delay", type=float, default=0.02)
    parser.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    # Internal: the uploader process.
    parser.add_argument("--uploader", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--token", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.uploader:
        run_async(upload_loop(args))
        return 0
    servers = relay_args(
        [f"--tokens={args.tokens}", f"--token-delay={args.token_delay}", f"--db={args.db}"]
    )
    with sigterm_as_interrupt(), contextlib.ExitStack() as stack:
        env = start_servers(servers, stack)
        log(f"Parley on {env.parley_url}; measuring")
        outcome = run_async(measure(env, args))
    print(report(args, outcome))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        log("interrupted; everything started was stopped")
        sys.exit(130)
