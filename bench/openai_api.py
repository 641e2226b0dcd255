"""Streams per second at 100 concurrent through Parley's OpenAI-compatible
/v1/chat/completions, against Parley's own chat path and the LiteLLM proxy, on the same stub.

    .venv/bin/python bench/openai_api.py [--concurrency 100] [--seconds 20] [--tokens 64]
        [--token-delay 0.005] [--db sqlite|postgres] [--litellm .bench-venv/bin/litellm]

Starts the fake upstream and Parley (one worker) as bench/throughput.py does, and, given
`--litellm` (the `litellm` command of a separate venv: `python3 -m venv .bench-venv &&
.bench-venv/bin/pip install 'litellm[proxy]'`), a LiteLLM proxy (one worker) whose one model
points at the same stub. For each target in turn `--concurrency` clients send streamed replies
back to back for `--seconds` after a warm-up, then the time to first token is sampled one at a
time and ten at a time. Every tenth answer's text is parsed and checked.

Targets: the upstream directly; Parley's chat path (`POST /api/chats/{id}/messages`, SSE);
Parley's `/v1/chat/completions` (`stream: true`, `stream_options.include_usage`, a JWT); the
LiteLLM proxy's `/v1/chat/completions` (the same body, its master key). Prints a markdown table
and the ratios: /v1 ÷ chat path (target ≥ 0.95), Parley /v1 ÷ LiteLLM (target ≥ 9).
"""

import argparse
import contextlib
import os
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import _common as common
import httpx
from _processes import Child, free_port, wait_for_http
from _relay_env import start_servers
from throughput import (
    Round,
    Target,
    chat_request,
    closed_loop,
    expected_text,
    openai_text,
    parley_text,
    ttft,
)

LITELLM_KEY = "sk-bench-litellm-master"


def litellm_config(upstream_url: str) -> str:
    return (
        "model_list:\n"
        f"  - model_name: {common.MODEL}\n"
        "    litellm_params:\n"
        f"      model: openai/{common.MODEL}\n"
        f"      api_base: {upstream_url}/v1\n"
        "      api_key: sk-stub\n"
        "general_settings:\n"
        f"  master_key: {LITELLM_KEY}\n"
        "litellm_settings:\n"
        "  telemetry: false\n"
    )


def start_litellm(
    command: Path, upstream_url: str, stack: contextlib.ExitStack, workdir: Path
) -> str:
    config = workdir / "litellm.yaml"
    config.write_text(litellm_config(upstream_url))
    port = free_port()
    proxy = Child(
        "litellm",
        [str(command.absolute()), "--config", str(config), "--host", "127.0.0.1", f"--port={port}"],
        env={**os.environ, "LITELLM_LOG": "ERROR", "LITELLM_TELEMETRY": "False"},
        cwd=workdir,
        log_path=workdir / "litellm.log",
    )
    stack.callback(proxy.stop)
    url = f"http://127.0.0.1:{port}"
    wait_for_http(f"{url}/health/liveliness", proxy, timeout=120)
    return url


async def measure(
    args: argparse.Namespace, parley_url: str, upstream_url: str, litellm_url: str | None
) -> list[Round]:
    limits = httpx.Limits(max_connections=args.concurrency * 2, keepalive_expiry=3)
    expected = expected_text(args.tokens)
    openai_done: Callable[[bytes], bool] = lambda tail: b"data: [DONE]" in tail  # noqa: E731
    async with contextlib.AsyncExitStack() as stack:

        async def client(base_url: str) -> httpx.AsyncClient:
            http = httpx.AsyncClient(base_url=base_url, limits=limits, timeout=120)
            return await stack.enter_async_context(http)

        parley, direct = await client(parley_url), await client(upstream_url)
        user = common.BenchUser("openai-bench@example.com", "openai-bench-password-42")
        await common.register(parley, user, 0)
        chats = await common.gather_limited(
            [lambda: common.create_chat(parley, user)] * max(args.concurrency, 10), 16
        )
        bearer = {"Authorization": f"Bearer {user.token}"}

        def openai_call(headers: dict[str, str]) -> Callable[[int], dict[str, Any]]:
            return lambda _slot: {
                "method": "POST",
                "url": "/v1/chat/completions",
                "json": chat_request("Hello"),
                "headers": headers,
            }

        targets = [
            Target(
                "upstream directly", direct, openai_call({}), openai_done, openai_text, expected
            ),
            Target(
                "Parley chat path (/api/chats/{id}/messages)",
                parley,
                lambda s: {
                    "method": "POST",
                    "url": f"/api/chats/{chats[s]}/messages",
                    "json": {"content": "Hello"},
                    "headers": {**bearer, "Accept": "text/event-stream"},
                },
                lambda tail: b"event: done" in tail and b'"status":"complete"' in tail,
                parley_text,
                expected,
            ),
            Target(
                "Parley /v1/chat/completions",
                parley,
                openai_call(bearer),
                openai_done,
                openai_text,
                expected,
            ),
        ]
        if litellm_url is not None:
            proxy = await client(litellm_url)
            targets.append(
                Target(
                    "LiteLLM proxy /v1/chat/completions",
                    proxy,
                    openai_call({"Authorization": f"Bearer {LITELLM_KEY}"}),
                    openai_done,
                    openai_text,
                    expected,
                )
            )
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
    direct, chat_path, v1 = rounds[:3]
    out = [
        f"### /v1 streams per second at {args.concurrency} concurrent: {args.db}, one worker",
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
    out += ["", f"/v1 ÷ chat path: **{v1.per_second / chat_path.per_second:.2f}** (target ≥ 0.95)"]
    if len(rounds) > 3:
        litellm = rounds[3]
        ratio = v1.per_second / litellm.per_second if litellm.per_second else float("inf")
        out.append(f"Parley /v1 ÷ LiteLLM proxy: **{ratio:.1f}** (target ≥ 9)")
    else:
        out.append("LiteLLM proxy: not run (no --litellm)")
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
        "--litellm", type=Path, help="the `litellm` command of a venv with litellm[proxy]"
    )
    args = parser.parse_args(argv)
    # What start_servers reads.
    args.app, args.workers, args.redis_url = "app.main:create_app", 1, None
    args.guard_delay, args.resume, args.py_spy = 0.0, False, None
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    with contextlib.ExitStack() as stack:
        env = start_servers(args, stack)
        litellm_url = None
        if args.litellm is not None:
            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="litellm-")))
            litellm_url = start_litellm(args.litellm, env.upstream_url, stack, workdir)
        rounds = common.run_async(measure(args, env.parley_url, env.upstream_url, litellm_url))
        print(report(args, rounds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
