"""bench/relay.py --resume: CPU per relayed token with Redis publishing on and off, and the
latency of rejoining replies.
"""

import asyncio
import json
import math
import os
import random
import secrets
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import httpx
from _common import (
    BenchUser,
    collector_paused,
    create_chat,
    gather_limited,
    log,
    ms,
    parley_stream,
    percentile,
    register,
)
from _relay_env import CLIENT_SHARD, Clients, CpuUse, Environment, cpu_use, wait_for_quiet

RESUME_STREAMS_PER_USER = 5


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
