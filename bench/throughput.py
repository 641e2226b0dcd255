"""Streams per second at a given concurrency: Parley against a bare FastAPI + httpx relay and the
upstream itself, on the same stub, in one run (paired), and the time to first token each adds.

    .venv/bin/python bench/throughput.py [--concurrency 100] [--seconds 20] [--tokens 64]
                                         [--token-delay 0.005] [--db sqlite|postgres]

Starts the fake upstream and Parley as bench/relay.py does (one worker), and the bare relay
(bench/_bare_relay.py: one route, one shared httpx client, no accounts, no database). For each
target in turn, `--concurrency` clients send replies back to back for `--seconds` (after a
warm-up), then the time to first token is sampled one at a time and ten at a time.

The load client must not be what is measured: it reads each answer as raw bytes and looks only
for the first token (TTFT) and the end marker (Parley's `done` with status complete, the
upstream's `[DONE]`); every tenth answer is parsed in full and its text compared with the
reply's. Prints a markdown table and the ratio Parley ÷ bare relay.
"""

import argparse
import asyncio
import contextlib
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import _common as common
import _relay_env
import httpx
from _processes import Child, free_port, wait_for_http
from _relay_env import start_servers

FIRST_TOKEN = b"tok0"
CHECK_EVERY = 10  # one answer in this many is parsed in full and its text checked


@dataclass
class Answer:
    ttft: float | None = None
    error: str | None = None


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


def sse_texts(body: bytes) -> list[tuple[str, str]]:
    """(event name, data) of every event in an SSE body."""
    events = []
    for block in body.decode().replace("\r\n", "\n").split("\n\n"):
        name, data = "message", []
        for line in block.split("\n"):
            key, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if key == "event":
                name = value
            elif key == "data":
                data.append(value)
        if data:
            events.append((name, "\n".join(data)))
    return events


def parley_text(body: bytes) -> str:
    return "".join(json.loads(data)["content"] for name, data in sse_texts(body) if name == "delta")


def openai_text(body: bytes) -> str:
    parts = []
    for _name, data in sse_texts(body):
        if data != "[DONE]":
            choices = json.loads(data).get("choices") or [{}]
            parts.append((choices[0].get("delta") or {}).get("content") or "")
    return "".join(parts)


class Target:
    """One way to get a reply: where to send it, how its end reads, how its text is parsed."""

    def __init__(
        self,
        name: str,
        http: httpx.AsyncClient,
        request: Callable[[int], dict[str, Any]],
        done: Callable[[bytes], bool],
        text: Callable[[bytes], str],
        expected: str,
    ) -> None:
        self.name, self.http, self.request = name, http, request
        self.done, self.text, self.expected = done, text, expected
        self.count = 0

    async def answer(self, slot: int) -> Answer:
        result = Answer()
        self.count += 1
        check = self.count % CHECK_EVERY == 0
        body = bytearray()
        started = time.perf_counter()
        try:
            async with self.http.stream(**self.request(slot)) as response:
                async for chunk in response.aiter_raw():
                    if result.ttft is None and FIRST_TOKEN in chunk:
                        result.ttft = time.perf_counter() - started
                    body += chunk
                status = response.status_code
        except httpx.HTTPError as exc:
            result.error = f"{type(exc).__name__}: {exc}"[:200]
            return result
        tail = bytes(body[-2048:])
        if status != 200 or not self.done(tail):
            result.error = f"HTTP {status}, or no end: {tail[-200:]!r}"
        elif check and self.text(bytes(body)) != self.expected:
            result.error = "other text"
        return result


async def closed_loop(target: Target, concurrency: int, seconds: float) -> tuple[int, int, float]:
    """`concurrency` clients, each sending replies back to back until the time is up."""
    deadline = time.perf_counter() + seconds
    counts = [0, 0]

    async def client(slot: int) -> None:
        while time.perf_counter() < deadline:
            answer = await target.answer(slot)
            counts[1 if answer.error else 0] += 1
            if answer.error and counts[1] <= 3:
                common.log(f"{target.name}: {answer.error}")

    started = time.perf_counter()
    await asyncio.gather(*(client(slot) for slot in range(concurrency)))
    return counts[0], counts[1], time.perf_counter() - started


async def ttft(target: Target, at_once: int, rounds: int) -> float | None:
    samples: list[float] = []
    for _ in range(rounds):
        answers = await asyncio.gather(*(target.answer(slot) for slot in range(at_once)))
        samples += [a.ttft for a in answers if a.ttft is not None and not a.error]
    return common.percentile(samples, 0.5)


def chat_request(body_content: str) -> dict[str, Any]:
    return {
        "model": common.MODEL,
        "messages": [
            {"role": "system", "content": "You are a helpful assistant."},
            {"role": "user", "content": body_content},
        ],
        "stream": True,
        "stream_options": {"include_usage": True},
    }


async def measure(
    args: argparse.Namespace, parley_url: str, upstream_url: str, bare_url: str
) -> list[Round]:
    limits = httpx.Limits(max_connections=args.concurrency * 2, keepalive_expiry=3)
    expected = expected_text(args.tokens)
    async with contextlib.AsyncExitStack() as stack:

        async def client(base_url: str) -> httpx.AsyncClient:
            http = httpx.AsyncClient(base_url=base_url, limits=limits, timeout=120)
            return await stack.enter_async_context(http)

        parley, direct, bare = [await client(u) for u in (parley_url, upstream_url, bare_url)]
        user = common.BenchUser("throughput@example.com", "throughput-bench-password-42")
        await common.register(parley, user, 0)
        chats = await common.gather_limited(
            [lambda: common.create_chat(parley, user)] * max(args.concurrency, 10), 16
        )
        auth = {"Authorization": f"Bearer {user.token}", "Accept": "text/event-stream"}
        openai_done: Callable[[bytes], bool] = lambda tail: b"data: [DONE]" in tail  # noqa: E731
        targets = [
            Target(
                "upstream directly",
                direct,
                lambda _s: {
                    "method": "POST",
                    "url": "/v1/chat/completions",
                    "json": chat_request("Hello"),
                },
                openai_done,
                openai_text,
                expected,
            ),
            Target(
                "bare FastAPI + httpx relay",
                bare,
                lambda _s: {"method": "POST", "url": "/relay", "json": chat_request("Hello")},
                openai_done,
                openai_text,
                expected,
            ),
            Target(
                "Parley",
                parley,
                lambda s: {
                    "method": "POST",
                    "url": f"/api/chats/{chats[s]}/messages",
                    "json": {"content": "Hello"},
                    "headers": auth,
                },
                lambda tail: b"event: done" in tail and b'"status":"complete"' in tail,
                parley_text,
                expected,
            ),
        ]
        rounds = []
        for target in targets:
            await closed_loop(target, args.concurrency, args.warmup)
            with common.collector_paused():
                done, errors, took = await closed_loop(target, args.concurrency, args.seconds)
                first_1 = await ttft(target, 1, 20)
                first_10 = await ttft(target, 10, 5)
            rounds.append(Round(target.name, done, errors, took, first_1, first_10))
            common.log(f"{target.name}: {done / took:.1f} streams/s, {errors} errors")
        return rounds


def report(args: argparse.Namespace, rounds: list[Round]) -> str:
    direct, bare, parley = rounds
    out = [
        f"### Streams per second at {args.concurrency} concurrent: {args.db}, one worker",
        "",
        f"{args.tokens} tokens, {args.token_delay * 1000:g} ms apart; {args.seconds:g} s per "
        "target after a warm-up; time to first token p50 (ms) of 20 single and 5 rounds of 10 "
        "concurrent replies; added = over the upstream directly.",
        "",
        "| target | streams/s | errors | TTFT p50, 1 | added | TTFT p50, 10 | added |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rounds:
        out.append(
            f"| {r.target} | {r.per_second:.1f} | {r.errors} | {common.ms(r.ttft_1)} | "
            f"{common.signed_ms(common.difference(direct.ttft_1, r.ttft_1))} | "
            f"{common.ms(r.ttft_10)} | "
            f"{common.signed_ms(common.difference(direct.ttft_10, r.ttft_10))} |"
        )
    ratio = parley.per_second / bare.per_second
    out += ["", f"Parley ÷ bare relay: **{ratio:.2f}** (target ≥ 0.8)"]
    return "\n".join(out)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--token-delay", type=float, default=0.005)
    parser.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument(
        "--code",
        type=Path,
        help="serve the Parley of another checkout (run with that checkout's venv python), "
        "for a paired before/after run",
    )
    args = parser.parse_args(argv)
    # What start_servers reads.
    args.app, args.workers, args.redis_url = "app.main:create_app", 1, None
    args.guard_delay, args.resume, args.py_spy = 0.0, False, None
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.code is not None:
        _relay_env.ROOT = args.code.resolve()
    with contextlib.ExitStack() as stack:
        env = start_servers(args, stack)
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
                "PYTHONPATH": str(common.ROOT / "bench"),
                "PARLEY_BARE_UPSTREAM": f"{env.upstream_url}/v1",
            },
            cwd=workdir,
            log_path=workdir / "bare.log",
        )
        stack.callback(bare.stop)
        bare_url = f"http://127.0.0.1:{port}"
        wait_for_http(f"{bare_url}/docs", bare)
        rounds = common.run_async(measure(args, env.parley_url, env.upstream_url, bare_url))
        print(report(args, rounds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
