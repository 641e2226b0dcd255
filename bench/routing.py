"""Routing across deployments: a deployment killed under load, the time a failover adds to the
first token, two deployments against one when the upstream is the bottleneck, the router's CPU.

    .venv/bin/python bench/routing.py [--seconds 20] [--samples 30] [--iterations 100000]
    .venv/bin/python bench/routing.py --seconds 5 --samples 10 --iterations 20000   # short

Fake upstreams (bench/_fake_upstream_server.py) each run in a process of their own, Parley as
bench/relay.py starts it (one worker, rate limits out of reach) with LLM_MODELS listing each
model's deployments. Replies go through `POST /api/chats/{id}/messages` (SSE), every event parsed,
the `done` event's text checked and its `served_by` deployment counted. Four parts, four tables:

1. One model on three upstreams, `--concurrency` clients back to back (a chat each) for
   `--seconds` after `--warmup`; a third of the way in one upstream gets SIGKILL. Replies that
   failed before their first token (failover should leave none), replies cut mid-stream (those
   may fail: nothing is sent twice), replies per second before and after the kill, and Parley's
   count of the failed attempts on the killed one. A chat keeps to its deployment, so only new
   chats probe the killed one after its cooldown (`--cooldown`): `--fresh-chats` sends each reply
   in a new chat.
2. LLM_ROUTING=usage (no limits set: the least busy, ties in listed order) and LLM_ALLOWED_FAILS
   out of reach, so every reply first tries a failing deployment (a port nothing listens on, or
   a path that answers 404), taking turns with a model of the healthy deployment alone, each
   reply in a new chat (a chat keeps to its last deployment). TTFT p50, the difference, and the
   failing attempt's own time (the same request sent to it from here).
3. Upstreams that stream at most `--max-streams` replies at once and queue the rest (a model
   server's batch): streams per second on a model of one, then of two, and two ÷ one.
4. In this process: `Router.choose` + `begin` + `first_token` + `release` on three deployments,
   `--iterations` times per strategy, with Parley's metrics and without; `RoutedProvider.stream`
   around an in-memory provider minus that provider alone. CPU time (process_time) per reply.
"""

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import _common as common
import httpx
from _common import ROOT
from _processes import Child, free_port, wait_for_http
from _relay_env import start_servers
from throughput import chat_request, expected_text


@dataclass
class Reply:
    started: float  # perf_counter() when sent
    first: float | None = None  # ... at the first text
    ended: float = 0.0
    error: str | None = None
    served: str | None = None  # the deployment `done` names

    @property
    def ttft(self) -> float | None:
        return None if self.first is None else self.first - self.started


@dataclass
class Session:
    """A client of Parley, signed in as a user of its own, with chats of one model."""

    http: httpx.AsyncClient
    token: str
    chats: list[str]

    async def new_chat(self, model: str) -> str:
        auth = {"Authorization": f"Bearer {self.token}"}
        answer = await self.http.post("/api/chats", json={"model": model}, headers=auth)
        if answer.status_code != 201:
            raise RuntimeError(f"create chat failed: {answer.status_code} {answer.text[:300]}")
        return str(answer.json()["id"])

    async def reply(self, chat: str, expected: str) -> Reply:
        """One message, its SSE answer parsed."""
        result, done = Reply(time.perf_counter()), False
        headers = {"Authorization": f"Bearer {self.token}", "Accept": "text/event-stream"}
        request = self.http.stream(
            "POST", f"/api/chats/{chat}/messages", json={"content": "Hello"}, headers=headers
        )
        try:
            async with request as answer:
                if answer.status_code != 200:
                    text = (await answer.aread())[:200].decode(errors="replace")
                    result.error = f"HTTP {answer.status_code}: {text}"
                    return result
                async for name, data in common.iter_sse(answer):
                    if name == "delta" and result.first is None and json.loads(data)["content"]:
                        result.first = time.perf_counter()
                    elif name == "done":
                        done, payload = True, json.loads(data)
                        result.served = (payload.get("served_by") or {}).get("deployment")
                        if payload.get("status") != "complete":
                            result.error = f"done with status {payload.get('status')!r}"
                        elif payload.get("content") != expected:
                            result.error = "done with other text"
                    elif name == "error":
                        result.error = f"error event: {json.loads(data).get('code')}"
        except (httpx.HTTPError, ValueError) as exc:
            result.error = f"{type(exc).__name__}: {exc!r}"[:200]
        finally:
            result.ended = time.perf_counter()
        if result.error is None and not done:
            result.error = "no done event"
        return result

    async def back_to_back(
        self, expected: str, deadline: float, spread: float = 0, fresh: str | None = None
    ) -> list[Reply]:
        """A client per chat sending replies back to back until `deadline` (perf_counter), their
        first replies spread over `spread` seconds so that they do not all end together; with
        `fresh` (a model), each reply in a new chat of it instead."""
        replies: list[Reply] = []

        async def client(number: int, chat: str) -> None:
            await asyncio.sleep(spread * number / len(self.chats))
            while time.perf_counter() < deadline:
                replies.append(
                    await self.reply(await self.new_chat(fresh) if fresh else chat, expected)
                )

        await asyncio.gather(*(client(number, chat) for number, chat in enumerate(self.chats)))
        return replies


@contextlib.asynccontextmanager
async def session(url: str, model: str, chats: int) -> AsyncIterator[Session]:
    limits = httpx.Limits(max_connections=max(10, chats * 2), keepalive_expiry=3)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=120) as http:
        user = common.BenchUser(f"routing-{time.monotonic_ns()}@example.com", "routing-bench-42!")
        await common.register(http, user, 0)
        client = Session(http, user.token, [])
        client.chats = await common.gather_limited([lambda: client.new_chat(model)] * chats, 8)
        yield client


# --- the processes --------------------------------------------------------------------------------


class Lab:
    """Fake upstreams and Parleys for the parts, all stopped when the stack closes."""

    def __init__(self, args: argparse.Namespace, stack: contextlib.ExitStack) -> None:
        self.args, self.stack = args, stack
        self.workdir = Path(tempfile.mkdtemp(prefix="parley-routing-"))
        stack.callback(shutil.rmtree, self.workdir, True)
        self.stubs: dict[str, Child] = {}

    def stub(self, name: str, tokens: int, token_delay: float, max_streams: int = 0) -> str:
        """A fake upstream (`self.stubs[name]`); its base URL."""
        port = free_port()
        argv = [sys.executable, str(ROOT / "bench" / "_fake_upstream_server.py"), f"--port={port}"]
        argv += [
            f"--tokens={tokens}",
            f"--token-delay={token_delay}",
            f"--max-streams={max_streams}",
        ]
        child = Child(
            f"fake upstream {name}",
            argv,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            cwd=self.workdir,
            log_path=self.workdir / f"upstream-{name}.log",
        )
        self.stack.callback(child.stop)
        self.stubs[name] = child
        url = f"http://127.0.0.1:{port}/v1"
        wait_for_http(f"{url}/models", child)
        return url

    def parley(self, models: dict[str, list[tuple[str, str]]], **settings: str) -> str:
        """Parley serving `models` ({name: [(deployment, base_url), ...]}); its URL. (It also
        gets bench/relay.py's own fake upstream as LLM_BASE_URL, which nothing here asks for.)"""
        spec = {
            name: {
                "deployments": [{"name": n, "base_url": u, "model": common.MODEL} for n, u in ds]
            }
            for name, ds in models.items()
        }
        env = {"LLM_MODELS": json.dumps(spec), **{k.upper(): v for k, v in settings.items()}}
        return start_servers(self.args, self.stack, extra_env=env).parley_url


# --- 1. a deployment killed under load -----------------------------------------------------------


def killed(args: argparse.Namespace) -> str:
    with contextlib.ExitStack() as stack:
        lab = Lab(args, stack)
        three = [(name, lab.stub(name, args.tokens, args.token_delay)) for name in "abc"]
        url = lab.parley(
            {"three": three}, llm_routing=args.routing, llm_cooldown_seconds=str(args.cooldown)
        )
        return common.run_async(_killed(args, url, lab.stubs["c"]))


async def _killed(args: argparse.Namespace, url: str, victim: Child) -> str:
    expected = expected_text(args.tokens)
    async with session(url, "three", args.concurrency) as client:
        spread = args.tokens * args.token_delay  # about one reply's time
        fresh = "three" if args.fresh_chats else None
        measured = time.perf_counter() + spread + args.warmup  # one run: warm-up, then window
        deadline = measured + args.seconds

        async def kill() -> float:
            await asyncio.sleep(measured + args.seconds / 3 - time.perf_counter())
            victim.stop(grace=0, signum=signal.SIGKILL)
            common.log("killed fake upstream c")
            return time.perf_counter()

        with common.collector_paused():
            replies, killed_at = await asyncio.gather(
                client.back_to_back(expected, deadline, spread, fresh), kill()
            )
        metrics = (await client.http.get("/metrics")).text
    # Parley's own count of c's failed attempts: "unavailable" (refused) ones were failed over.
    kinds = {
        line.split('kind="')[1].split('"')[0]: int(float(line.rsplit(" ", 1)[1]))
        for line in metrics.splitlines()
        if line.startswith("parley_deployment_failures_total{") and 'deployment="c"' in line
    }
    out = [
        "### 1. A deployment killed under load",
        "",
        f"One model on three fake upstreams a, b, c ({args.tokens} tokens, "
        f"{args.token_delay * 1000:g} ms apart); LLM_ROUTING={args.routing}, allowed fails 3, "
        f"cooldown {args.cooldown:g} s; {args.concurrency} clients back to back "
        f"({'each reply in a new chat' if fresh else 'a chat each'}, their first replies spread "
        f"over {spread:g} s), {args.warmup:g} s of warm-up "
        f"then {args.seconds:g} s measured; c killed (SIGKILL) {killed_at - measured:.1f} s in. "
        "Load average at the end: "
        f"{os.getloadavg()[0]:.1f}.",
        "",
        "| replies ended | s | complete | replies/s | failed before first token | cut mid-stream | "
        "served by a / b / c |",
        "|---|---|---|---|---|---|---|",
    ]

    rows = [
        ("warm-up", 0.0, measured),
        ("before the kill", measured, killed_at),
        ("after the kill", killed_at, deadline),
        ("ended after the window", deadline, float("inf")),
        ("window (before + after)", measured, deadline),
    ]
    for label, since, until in rows:
        group = [r for r in replies if since <= r.ended < until]
        ok = [r for r in group if r.error is None]
        before = sum(1 for r in group if r.error and r.first is None)
        served = Counter(r.served for r in ok)
        timed = since > 0 and until < float("inf")
        out.append(
            f"| {label} | {f'{until - since:.1f}' if timed else ''} | {len(ok)} | "
            f"{f'{len(ok) / (until - since):.1f}' if timed else ''} | {before} | "
            f"{len(group) - len(ok) - before} | {served['a']} / {served['b']} / {served['c']} |"
        )
    out += [
        "",
        "Parley's failed attempts on c (parley_deployment_failures_total) by kind: "
        + (", ".join(f"{k} {v}" for k, v in sorted(kinds.items())) or "none")
        + "; `unavailable` ones (refused) were failed over to a or b, before any token.",
    ]
    failed = [r for r in replies if r.error and r.first is None]
    for r in [*failed[:5], *[r for r in replies if r.error and r.first is not None][:2]]:
        common.log(f"{'failed before its first token' if r.first is None else 'cut'}: {r.error}")
    verdict = "met" if not failed else "**missed**"
    out.append(
        f"Failed before the first token, all replies: **{len(failed)}** (target 0: {verdict})."
    )
    return "\n".join(out)


# --- 2. the time to first token of a failover; 3. two deployments against one --------------------


def failover_and_scale(args: argparse.Namespace, parts: set[str]) -> list[str]:
    """Parts 2 and 3 (those in `parts`), on one Parley."""
    with contextlib.ExitStack() as stack:
        lab = Lab(args, stack)
        healthy = lab.stub("healthy", 4, 0.005)
        capped = [
            lab.stub(f"capped-{n}", args.capped_tokens, args.token_delay, args.max_streams)
            for n in (1, 2)
        ]
        dead = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there
        wrong_path = healthy.removesuffix("/v1") + "/missing/v1"  # the stub answers 404
        url = lab.parley(
            {
                "single": [("healthy", healthy)],
                "via-refused": [("refused", dead), ("healthy", healthy)],
                "via-404": [("http-404", wrong_path), ("healthy", healthy)],
                "one": [("capped-1", capped[0])],
                "two": [("capped-1", capped[0]), ("capped-2", capped[1])],
            },
            llm_routing="usage",
            llm_allowed_fails=str(10**9),
        )
        tables = []
        if "2" in parts:
            tables.append(common.run_async(_failover_ttft(args, url, dead, wrong_path)))
        if "3" in parts:
            tables.append(common.run_async(_scale(args, url)))
        return tables


async def _failing_attempt(http: httpx.AsyncClient, base_url: str) -> float:
    """The failing deployment's own time for the request Parley sends it, seen from here."""
    started = time.perf_counter()
    with contextlib.suppress(httpx.ConnectError):
        (await http.post(f"{base_url}/chat/completions", json=chat_request("Hello"))).read()
    return time.perf_counter() - started


async def _failover_ttft(args: argparse.Namespace, url: str, dead: str, wrong_path: str) -> str:
    variants = {"single": None, "via-refused": dead, "via-404": wrong_path}
    warm = 3
    rounds = args.samples + warm
    ttft: dict[str, list[float]] = {name: [] for name in variants}
    own: dict[str, list[float]] = {name: [] for name in variants}
    served, errors = Counter[str](), 0
    async with contextlib.AsyncExitStack() as stack:
        client = await stack.enter_async_context(session(url, "single", 0))
        direct = await stack.enter_async_context(httpx.AsyncClient(timeout=10))
        chats = {n: [await client.new_chat(n) for _ in range(rounds)] for n in variants}
        with common.collector_paused():
            for number in range(rounds):
                turn = number % len(variants)  # take turns, each first in its turn
                for name in [*variants][turn:] + [*variants][:turn]:
                    r = await client.reply(chats[name][number], expected_text(4))
                    failing = variants[name]
                    spent = await _failing_attempt(direct, failing) if failing else 0.0
                    if number < warm:
                        continue
                    if r.error is not None or r.ttft is None:
                        errors += 1
                        common.log(f"{name}: {r.error}")
                        continue
                    served[r.served or "?"] += 1
                    ttft[name].append(r.ttft)
                    own[name].append(spent)
    base = common.percentile(ttft["single"], 0.5)
    out = [
        "### 2. The time to first token of a failover",
        "",
        f"{args.samples} single replies per row, taking turns; LLM_ROUTING=usage, the failing "
        "deployment listed first and never cooled down (LLM_ALLOWED_FAILS out of reach), so "
        "every reply tries it first. Times in ms, p50. The failing attempt alone: the same "
        "request sent to it straight from the benchmark. Served by: "
        + ", ".join(f"{k} {v}" for k, v in sorted(served.items()))
        + f"; errors {errors}. Load average at the end: {os.getloadavg()[0]:.1f}.",
        "",
        "| first deployment | TTFT p50 | TTFT p90 | added | failing attempt alone | "
        "added - failing attempt | target ≤ 10 ms |",
        "|---|---|---|---|---|---|---|",
    ]
    p90 = {name: common.percentile(times, 0.9) for name, times in ttft.items()}
    out.append(
        f"| none (one healthy deployment) | {common.ms(base)} | {common.ms(p90['single'])} |||||"
    )
    for name, label in (("via-refused", "refuses connections"), ("via-404", "answers 404")):
        added = common.difference(base, common.percentile(ttft[name], 0.5))
        alone = common.percentile(own[name], 0.5)
        rest = common.difference(alone, added)
        verdict = "met" if rest is not None and rest <= 0.010 else "**missed**"
        out.append(
            f"| {label} | {common.ms(common.percentile(ttft[name], 0.5))} | {common.ms(p90[name])} "
            f"| {common.signed_ms(added)} | {common.ms(alone)} | {common.signed_ms(rest)} "
            f"| {verdict} |"
        )
    return "\n".join(out)


async def _scale(args: argparse.Namespace, url: str) -> str:
    expected = expected_text(args.capped_tokens)
    concurrency = args.capped_concurrency
    rows = []
    for deployments, model in ((1, "one"), (2, "two")):
        async with session(url, model, concurrency) as client:
            await client.back_to_back(expected, time.perf_counter() + args.warmup)
            with common.collector_paused():
                start = time.perf_counter()
                replies = await client.back_to_back(expected, start + args.seconds)
                took = time.perf_counter() - start
        ok = [r for r in replies if r.error is None]
        for r in [r for r in replies if r.error][:3]:
            common.log(f"{model}: {r.error}")
        served = Counter(r.served for r in ok)
        rows.append((model, deployments, len(ok) / took, len(replies) - len(ok), served))
        common.log(f"{model}: {len(ok) / took:.1f} streams/s")
    ratio = rows[1][2] / rows[0][2]
    per_stream = args.capped_tokens * args.token_delay
    out = [
        "### 3. Two deployments against one, the upstream the bottleneck",
        "",
        f"Fake upstreams streaming at most {args.max_streams} replies at once (the rest queue), "
        f"{args.capped_tokens} tokens {args.token_delay * 1000:g} ms apart (about "
        f"{per_stream:.2f} s a reply, so at most {args.max_streams / per_stream:.1f} streams/s "
        f"each); {concurrency} clients back to back for {args.seconds:g} s per model; "
        f"LLM_ROUTING=usage. Load average at the end: {os.getloadavg()[0]:.1f}.",
        "",
        "| model | deployments | streams/s | errors | served by capped-1 / capped-2 |",
        "|---|---|---|---|---|",
    ]
    for model, deployments, rate, errors, served in rows:
        out.append(
            f"| {model} | {deployments} | {rate:.1f} | {errors} | "
            f"{served['capped-1']} / {served['capped-2']} |"
        )
    verdict = "met" if ratio >= 1.8 else "**missed**"
    out += ["", f"Two ÷ one: **{ratio:.2f}x** (target ≥ 1.8x: {verdict})."]
    return "\n".join(out)


# --- 4. the router's CPU per reply --------------------------------------------------------------


def router_cpu(args: argparse.Namespace) -> str:
    sys.path.insert(0, str(ROOT))
    from app.core.metrics import Metrics
    from app.generation.upstream import types as up
    from app.generation.upstream.routed import RoutedProvider
    from app.generation.upstream.routing import Router

    deployments = tuple(
        up.Deployment(name=n, base_url=f"http://10.0.0.{i}:8000/v1", upstream_model="m")
        for i, n in enumerate("abc", start=1)
    )
    first = deployments[0]
    model = up.ModelConfig("m", first.base_url, None, "m", 8192, "openai", deployments=deployments)

    def router_calls(router: Router, n: int) -> float:
        started = time.process_time()
        for _ in range(n):
            state = router.choose("m", tokens=100)
            assert state is not None
            attempt = router.begin(state, 100)
            router.first_token(attempt)
            router.release(attempt, tokens=50)
        return (time.process_time() - started) / n

    class InMemory:
        async def stream(self, model: Any, messages: Any, params: Any) -> Any:
            yield up.TextDelta("hi")
            yield up.Usage(10, 1)
            yield up.Finish("stop")

    async def streams(provider: Any, target: Any, n: int) -> float:
        messages, params = [{"role": "user", "content": "Hello"}], up.SamplingParams()
        started = time.process_time()
        for _ in range(n):
            async for _event in provider.stream(target, messages, params):
                pass
        return (time.process_time() - started) / n

    rows = []
    with common.collector_paused():
        for strategy in ("weighted", "least-busy", "latency", "usage"):
            with_metrics = router_calls(
                Router([model], strategy=strategy, metrics=Metrics()), args.iterations
            )
            without = router_calls(Router([model], strategy=strategy), args.iterations)
            router = Router([model], strategy=strategy, metrics=Metrics())
            routed = RoutedProvider(InMemory(), router, {"m": model}, first_token_timeout=60)
            n = max(1, args.iterations // 5)
            wrapped = asyncio.run(streams(routed, model, n)) - asyncio.run(
                streams(InMemory(), model.at(first), n)
            )
            rows.append((strategy, with_metrics, without, wrapped))
    worst = max(max(r[1], r[3]) for r in rows)
    out = [
        "### 4. The router's CPU per reply",
        "",
        f"One model of three deployments, in this process; {args.iterations} replies per "
        f"strategy for the router calls, {max(1, args.iterations // 5)} for RoutedProvider. CPU µs "
        "per reply (process_time).",
        "",
        "| LLM_ROUTING | choose + begin + first_token + release, with metrics | without metrics "
        "| RoutedProvider.stream (with metrics) around an in-memory provider, minus the provider "
        "alone |",
        "|---|---|---|---|",
    ]
    for strategy, with_metrics, without, wrapped in rows:
        out.append(
            f"| {strategy} | {with_metrics * 1e6:.1f} | {without * 1e6:.1f} | {wrapped * 1e6:.1f} |"
        )
    verdict = "met" if worst <= 0.0001 else "**missed**"
    out += ["", f"Largest: **{worst * 1000:.3f} ms** per reply (target ≤ 0.1 ms: {verdict})."]
    return "\n".join(out)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="per load phase")
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--concurrency", type=int, default=20, help="part 1")
    parser.add_argument(
        "--routing", default="weighted", choices=["weighted", "least-busy", "latency", "usage"]
    )
    parser.add_argument("--cooldown", type=float, default=10.0, help="part 1's, in seconds")
    parser.add_argument(
        "--fresh-chats",
        action="store_true",
        help="part 1: each reply in a new chat (chats keep to their deployment, so only new "
        "ones probe the killed one once its cooldown ends)",
    )
    parser.add_argument("--tokens", type=int, default=64, help="part 1")
    parser.add_argument("--token-delay", type=float, default=0.02)
    parser.add_argument("--samples", type=int, default=30, help="part 2, per row")
    parser.add_argument("--max-streams", type=int, default=4, help="part 3, per upstream")
    parser.add_argument("--capped-tokens", type=int, default=32, help="part 3")
    parser.add_argument("--capped-concurrency", type=int, default=16, help="part 3")
    parser.add_argument("--iterations", type=int, default=100_000, help="part 4")
    parser.add_argument("--parts", default="1,2,3,4", help="which parts to run, e.g. 2,3")
    parser.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    args = parser.parse_args(argv)
    # What start_servers reads.
    args.app, args.workers, args.redis_url = "app.main:create_app", 1, None
    args.guard_delay, args.resume, args.py_spy = 0.0, False, None
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    parts = {p.strip() for p in args.parts.split(",")}
    print(
        f"Routing across deployments: {os.cpu_count()} CPUs, load average "
        f"{os.getloadavg()[0]:.1f} at the start; {args.db}, one worker.\n"
    )
    if "1" in parts:
        print(killed(args) + "\n", flush=True)
    if parts & {"2", "3"}:
        print("\n\n".join(failover_and_scale(args, parts)) + "\n", flush=True)
    if "4" in parts:
        print(router_cpu(args), flush=True)
    return 0


if __name__ == "__main__":
    with common.sigterm_as_interrupt():
        sys.exit(main())
