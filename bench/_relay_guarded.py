"""bench/relay.py --guarded: what the guardrails cost (plain, an input guard model, output
checks).
"""

import argparse
import asyncio
import json
import math
import os
import secrets
import time
import uuid
from collections.abc import Awaitable
from dataclasses import dataclass, field

import httpx
from _common import (
    BenchUser,
    StreamResult,
    collector_paused,
    difference,
    gather_limited,
    log,
    ms,
    parley_stream,
    percentile,
    register,
    signed_ms,
)
from _relay_env import Clients, Environment, cpu_use, wait_for_quiet
from _relay_run import STREAMS_PER_USER

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
