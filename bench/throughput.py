"""Streams per second at a given concurrency: Parley against a bare FastAPI + httpx relay and the
upstream itself, on the same stub, in one run (the issue's "paired" figure), and the time to
first token each adds.

    .venv/bin/python bench/throughput.py [--concurrency 100] [--seconds 20] [--tokens 64]
                                         [--token-delay 0.005] [--db sqlite|postgres]

Starts the fake upstream and Parley as bench/relay.py does (one worker), and the bare relay
(bench/_bare_relay.py: one route, one shared httpx client, no accounts, no database). For each
target in turn, `--concurrency` clients send replies back to back for `--seconds` (after a
warm-up of a few seconds), each checking every reply's text; then, one at a time and ten at a
time, the time to first token. Prints a markdown table and the ratio Parley ÷ bare relay.
"""

import argparse
import asyncio
import contextlib
import json
import os
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import httpx
import relay
from _processes import Child, free_port, wait_for_http

ROOT = relay.ROOT


@dataclass
class Round:
    target: str
    completed: int
    errors: int
    seconds: float
    ttft_1: float | None
    ttft_10: float | None

    @property
    def per_second(self) -> float:
        return self.completed / self.seconds


def expected_text(tokens: int) -> str:
    return "".join(f"tok{i} " for i in range(tokens))


async def bare_stream(http: httpx.AsyncClient, expected: str) -> relay.StreamResult:
    """One reply through the bare relay (the upstream's own SSE, passed through)."""
    result = relay.StreamResult()
    body = {
        "model": relay.MODEL,
        "messages": [{"role": "user", "content": "Hello"}],
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    started = result.started_at = time.perf_counter()
    text: list[str] = []
    try:
        async with http.stream("POST", "/relay", json=body) as response:
            async for _name, data in relay.iter_sse(response):
                now = time.perf_counter()
                if data == "[DONE]":
                    result.total = now - started
                    continue
                choices = json.loads(data).get("choices") or [{}]
                piece = (choices[0].get("delta") or {}).get("content")
                if piece:
                    result.ttft = result.ttft if result.ttft is not None else now - started
                    text.append(piece)
    except (httpx.HTTPError, ValueError) as exc:
        result.error = f"{type(exc).__name__}: {exc}"[:200]
    if result.error is None and ("".join(text) != expected or result.total is None):
        result.error = "other text, or no [DONE]"
    return result


async def closed_loop(
    one: Callable[[int], Awaitable[relay.StreamResult]], concurrency: int, seconds: float
) -> tuple[int, int, float]:
    """`concurrency` clients, each sending replies back to back until the time is up."""
    deadline = time.perf_counter() + seconds
    counts = [0, 0]

    async def client(slot: int) -> None:
        while time.perf_counter() < deadline:
            result = await one(slot)
            counts[1 if result.error else 0] += 1
            if result.error and counts[1] <= 3:
                relay.log(f"error: {result.error}")

    started = time.perf_counter()
    await asyncio.gather(*(client(slot) for slot in range(concurrency)))
    return counts[0], counts[1], time.perf_counter() - started


async def ttft(
    one: Callable[[int], Awaitable[relay.StreamResult]], at_once: int, rounds: int
) -> float | None:
    samples: list[float] = []
    for _ in range(rounds):
        results = await asyncio.gather(*(one(slot) for slot in range(at_once)))
        samples += [r.ttft for r in results if r.ttft is not None and not r.error]
    return relay.percentile(samples, 0.5)


async def measure(args: argparse.Namespace, parley_url: str, upstream_url: str, bare_url: str):
    limits = httpx.Limits(max_connections=args.concurrency * 2, keepalive_expiry=3)

    def client(base_url: str) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=base_url, limits=limits, timeout=120)

    expected = expected_text(args.tokens)
    async with (
        client(parley_url) as parley,
        client(upstream_url) as direct,
        client(bare_url) as bare,
    ):
        user = relay.BenchUser("throughput@example.com", "throughput-bench-password-42")
        await relay.register(parley, user, 0)
        chats = await relay.gather_limited(
            [lambda: relay.create_chat(parley, user)] * args.concurrency, 16
        )

        def via_parley(slot: int) -> Awaitable[relay.StreamResult]:
            return relay.parley_stream(parley, chats[slot], user.token, "Hello", expected)

        targets: Sequence[tuple[str, Callable[[int], Awaitable[relay.StreamResult]]]] = [
            ("upstream directly", lambda _slot: relay.direct_stream(direct, "Hello", expected)),
            ("bare FastAPI + httpx relay", lambda _slot: bare_stream(bare, expected)),
            ("Parley", via_parley),
        ]
        rounds = []
        for name, one in targets:
            await closed_loop(one, args.concurrency, args.warmup)
            with relay.collector_paused():
                done, errors, took = await closed_loop(one, args.concurrency, args.seconds)
                first_1 = await ttft(one, 1, 20)
                first_10 = await ttft(one, 10, 5)
            rounds.append(Round(name, done, errors, took, first_1, first_10))
            relay.log(f"{name}: {done / took:.1f} streams/s, {errors} errors")
        return rounds


def report(args: argparse.Namespace, rounds: list[Round]) -> str:
    direct, bare, parley = rounds
    out = [
        f"### Streams per second at {args.concurrency} concurrent: {args.db}, one worker",
        "",
        f"{args.tokens} tokens, {args.token_delay * 1000:g} ms apart; {args.seconds:g} s per "
        "target after a warm-up; time to first token p50 of 20 single and 5 rounds of 10 "
        "concurrent replies; added = over the upstream directly.",
        "",
        "| target | streams/s | errors | TTFT p50, 1 | added | TTFT p50, 10 | added |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rounds:
        out.append(
            f"| {r.target} | {r.per_second:.1f} | {r.errors} | {relay.ms(r.ttft_1)} | "
            f"{relay.signed_ms(relay.difference(direct.ttft_1, r.ttft_1))} | "
            f"{relay.ms(r.ttft_10)} | "
            f"{relay.signed_ms(relay.difference(direct.ttft_10, r.ttft_10))} |"
        )
    out += [
        "",
        f"Parley ÷ bare relay: **{parley.per_second / bare.per_second:.2f}** (target ≥ 0.8)",
    ]
    return "\n".join(out)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--token-delay", type=float, default=0.005)
    parser.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    args = parser.parse_args(argv)
    # What relay.start_servers reads.
    args.app, args.workers, args.redis_url = "app.main:create_app", 1, None
    args.guard_delay, args.resume, args.py_spy = 0.0, False, None
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    with contextlib.ExitStack() as stack:
        env = relay.start_servers(args, stack)
        port = free_port()
        workdir = env.profiler.workdir
        bare = Child(
            "bare relay",
            [
                sys.executable,
                "-m",
                "uvicorn",
                "--factory",
                "_bare_relay:create_app",
                "--host=127.0.0.1",
                f"--port={port}",
                "--log-level=warning",
            ],
            env={
                **os.environ,
                "PYTHONPATH": str(ROOT / "bench"),
                "PARLEY_BARE_UPSTREAM": f"{env.upstream_url}/v1",
            },
            cwd=workdir,
            log_path=workdir / "bare.log",
        )
        stack.callback(bare.stop)
        bare_url = f"http://127.0.0.1:{port}"
        wait_for_http(f"{bare_url}/docs", bare)
        rounds = relay.run_async(measure(args, env.parley_url, env.upstream_url, bare_url))
        print(report(args, rounds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
