"""CPU time Parley spends per request, by kind: what a reply's start and each relayed token cost.

    .venv/bin/python bench/request_cost.py [--requests 500] [--concurrency 10] [--tokens 64]
                                           [--db sqlite|postgres] [--sign-in-only]

Starts the fake upstream and Parley (one worker) as bench/relay.py does, then sends each kind of
request `--requests` times, `--concurrency` at a time, and divides the CPU time Parley's process
used (user + system, all its threads) by the number of requests. Replies go to a fresh chat each,
so no thread grows; a reply's CPU covers everything it causes: the request, the start, the
upstream call, the SSE response and the final save. Prints a markdown table.

Sign-ins: a password sign-in now writes an audit event. The script runs two more Parleys side
by side, one as it is and one that records no audit events (bench/_no_audit.py), and signs in on
each in alternating rounds (`--rounds`), so that whatever else the machine does weighs on both
alike; the difference is what the event costs, plus noise. Both hash with BCRYPT_ROUNDS=4, the
same work on both sides, which cancels out of the difference. On a loaded machine the noise is as
large as the event, so the last row measures the event's own work in one process
(bench/_audit_cost.py). `--sign-in-only` skips the other kinds.

Why: at 100 streams started at once, time to first token is set by how much CPU each start costs
one event loop, and relaying is set by the cost per token; this says how much each is.
"""

import argparse
import asyncio
import contextlib
import os
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

import _audit_cost
import _common
import httpx
import relay
from _processes import cpu_seconds, tree_pids
from _relay_env import Environment, start_servers

SIGN_IN = "POST /api/auth/login (with its audit event)"
SIGN_IN_BEFORE = "POST /api/auth/login, no audit event (as before)"
EVENT_IN_PROCESS = "an audit event's own work, measured in one process (median round)"
# Both Parleys hash with the cheapest bcrypt cost, so that its CPU does not drown the difference.
SIGN_IN_ENV = {"BCRYPT_ROUNDS": "4", "LOCKOUT_MAX_ATTEMPTS": "1000000"}
NO_AUDIT_APP = "_no_audit:create_app"


async def measure(env: Environment, args: argparse.Namespace) -> list[tuple[str, float]]:
    http = httpx.AsyncClient(
        base_url=env.parley_url,
        limits=httpx.Limits(max_connections=args.concurrency * 2),
        timeout=120,
    )
    try:
        user = _common.BenchUser("cost@example.com", "request-cost-bench-password-42")
        await _common.register(http, user, 0)
        auth = {"Authorization": f"Bearer {user.token}"}
        # Warm-up and measured requests of each reply kind get a chat of their own.
        per_kind = args.requests + args.concurrency

        async def chats(max_tokens: int) -> list[str]:
            async def one() -> str:
                response = await http.post(
                    "/api/chats", json={"max_tokens": max_tokens}, headers=auth
                )
                response.raise_for_status()
                return str(response.json()["id"])

            return await _common.gather_limited([one] * per_kind, 16)

        short, full = await chats(1), await chats(args.tokens)
        expected_full = "".join(f"tok{i} " for i in range(args.tokens))

        async def get(path: str, headers: dict[str, str]) -> None:
            (await http.get(path, headers=headers)).raise_for_status()

        def reply(pool: list[str], expected: str) -> Callable[[int], Awaitable[None]]:
            async def send(i: int) -> None:
                result = await _common.parley_stream(http, pool[i], user.token, "Hello", expected)
                if result.error:
                    raise RuntimeError(f"reply failed: {result.error}")

            return send

        kinds: list[tuple[str, Callable[[int], Awaitable[None]]]] = [
            ("GET /health", lambda _i: get("/health", {})),
            ("GET /api/auth/me", lambda _i: get("/api/auth/me", auth)),
            ("GET /api/chats/{id}", lambda i: get(f"/api/chats/{short[i]}", auth)),
            ("reply of 1 token (SSE)", reply(short, "tok0 ")),
            (f"reply of {args.tokens} tokens (SSE)", reply(full, expected_full)),
        ]
        pid = env.parley.root
        costs = []
        for name, call in kinds:
            semaphore = asyncio.Semaphore(args.concurrency)

            async def limited(
                i: int,
                call: Callable[[int], Awaitable[None]] = call,
                semaphore: asyncio.Semaphore = semaphore,
            ) -> None:
                async with semaphore:
                    await call(i)

            warm = range(args.requests, per_kind)
            await asyncio.gather(*(limited(i) for i in warm))
            await asyncio.sleep(0.5)  # the last replies' saves
            before = cpu_seconds(tree_pids(pid))
            await asyncio.gather(*(limited(i) for i in range(args.requests)))
            await asyncio.sleep(0.5)
            used = cpu_seconds(tree_pids(pid)) - before
            costs.append((name, used / args.requests))
            _common.log(f"{name}: {used / args.requests * 1000:.2f} ms CPU each")
        return costs
    finally:
        await http.aclose()


async def measure_sign_ins(
    with_audit: Environment, without: Environment, args: argparse.Namespace
) -> list[tuple[str, float]]:
    """The same password sign-in on both Parleys, in alternating rounds (ABBA), so that what
    else the machine does weighs on both alike: CPU per sign-in on each."""
    envs = {SIGN_IN: with_audit, SIGN_IN_BEFORE: without}
    clients = {
        name: httpx.AsyncClient(
            base_url=env.parley_url,
            limits=httpx.Limits(max_connections=args.concurrency * 2),
            timeout=120,
        )
        for name, env in envs.items()
    }
    user = _common.BenchUser("sign-in@example.com", "request-cost-bench-password-42")
    try:
        for http in clients.values():
            await _common.register(http, user, 0)

        async def batch(name: str, count: int) -> float:
            http = clients[name]
            semaphore = asyncio.Semaphore(args.concurrency)

            async def one() -> None:
                async with semaphore:
                    response = await http.post(
                        "/api/auth/login", json={"email": user.email, "password": user.password}
                    )
                    response.raise_for_status()

            pids = tree_pids(envs[name].parley.root)
            await asyncio.sleep(0.2)
            before = cpu_seconds(pids)
            await asyncio.gather(*(one() for _ in range(count)))
            await asyncio.sleep(0.2)
            return cpu_seconds(pids) - before

        for name in envs:  # warm-up
            await batch(name, args.concurrency * 5)
        used = dict.fromkeys(envs, 0.0)
        per_round = max(1, args.requests // args.rounds)
        for round_ in range(args.rounds):
            order = list(envs) if round_ % 2 == 0 else list(reversed(envs))
            for name in order:
                used[name] += await batch(name, per_round)
        total = per_round * args.rounds
        for name, seconds in used.items():
            _common.log(f"{name}: {seconds / total * 1000:.2f} ms CPU each")
        return [(name, seconds / total) for name, seconds in used.items()]
    finally:
        for http in clients.values():
            await http.aclose()


def report(args: argparse.Namespace, costs: list[tuple[str, float]]) -> str:
    out = [
        f"### Parley's CPU time per request: 1 worker, {args.db}",
        "",
        f"{args.requests} requests of each kind, {args.concurrency} at a time; CPU time of "
        "Parley's process (all threads, user + system) divided by the requests, so the sampling "
        "pause after each kind (0.5 s of idle loop) is included.",
        "",
        "| request | CPU ms each |",
        "|---|---|",
        *(f"| {name} | {cost * 1000:.2f} |" for name, cost in costs if name != EVENT_IN_PROCESS),
    ]
    named = dict(costs)
    if len(costs) > 3:
        one, many = costs[-2][1], costs[-1][1]
        if args.tokens > 1:
            per_token = (many - one) / (args.tokens - 1)
            out.append(f"| each further token relayed | {per_token * 1000:.3f} |")
    if SIGN_IN in named and SIGN_IN_BEFORE in named:
        extra = named[SIGN_IN] - named[SIGN_IN_BEFORE]
        out.append(f"| the difference (the event, and the noise) | {extra * 1000:.2f} |")
    if EVENT_IN_PROCESS in named:
        out.append(f"| {EVENT_IN_PROCESS} | {named[EVENT_IN_PROCESS] * 1000:.3f} |")
    return "\n".join(out)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="CPU time Parley spends per request, by kind.")
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument(
        "--sign-in-only", action="store_true", help="measure only the sign-ins (both Parleys)"
    )
    parser.add_argument(
        "--rounds", type=int, default=10, help="alternating rounds of the sign-in comparison"
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    relay_args = relay.parse_args(["--tokens", str(args.tokens), "--db", args.db, "--logins", "0"])
    started = time.monotonic()
    costs: list[tuple[str, float]] = []
    if not args.sign_in_only:
        with _common.sigterm_as_interrupt(), contextlib.ExitStack() as stack:
            env = start_servers(relay_args, stack)
            costs += _common.run_async(measure(env, args))
    # A sign-in with its audit event, against the same sign-in on a Parley that records no
    # audit events (bench/_no_audit.py), both running, in alternating rounds.
    os.environ["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(Path(__file__).parent), os.environ.get("PYTHONPATH")])
    )
    before_args = relay.parse_args(
        ["--tokens", str(args.tokens), "--db", args.db, "--logins", "0", "--app", NO_AUDIT_APP]
    )
    with _common.sigterm_as_interrupt(), contextlib.ExitStack() as stack:
        with_audit = start_servers(relay_args, stack, SIGN_IN_ENV)
        without = start_servers(before_args, stack, SIGN_IN_ENV)
        costs += _common.run_async(measure_sign_ins(with_audit, without, args))
    costs.append((EVENT_IN_PROCESS, _audit_cost.audit_event_cpu()))
    _common.log(f"measured in {time.monotonic() - started:.0f} s")
    print(report(args, costs))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        _common.log("interrupted; everything started was stopped")
        sys.exit(130)
