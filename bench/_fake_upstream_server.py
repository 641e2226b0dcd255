"""Serves the tests' fake OpenAI-compatible upstream in a process of its own, for bench/relay.py.

    python bench/_fake_upstream_server.py --port 9100 --tokens 64 --token-delay 0.02

The repository root must be importable (bench/_relay_env.py sets PYTHONPATH). The fake keeps
what it saw (request bodies, headers) in lists; a benchmark's few thousand requests make that a
few MB.

`--max-streams N` (bench/routing.py) streams at most N chat completions at once and queues the
rest, as a model server with a fixed batch size does: one such stub caps a benchmark's throughput.
"""

import argparse
import asyncio
import gc
from typing import Any

import uvicorn

from tests.support.fake_upstream import FakeUpstream


class StreamCap:
    """At most `limit` chat completions at once; the others wait (before any answer) in order."""

    def __init__(self, app: FakeUpstream, limit: int) -> None:
        self.app = app
        self.slots = asyncio.Semaphore(limit)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"] == "/v1/chat/completions":
            async with self.slots:
                await self.app(scope, receive, send)
        else:
            await self.app(scope, receive, send)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--token-delay", type=float, default=0.02)
    parser.add_argument("--first-token-delay", type=float, default=0.0)
    # The fake also answers as a guard model ("guard-model"): "safe", after this many seconds.
    parser.add_argument("--guard-delay", type=float, default=0.0)
    parser.add_argument("--max-streams", type=int, default=0, help="0: no cap")
    args = parser.parse_args()

    fake = FakeUpstream()
    fake.state.tokens = args.tokens
    fake.state.token_delay = args.token_delay
    fake.state.first_token_delay = args.first_token_delay
    fake.state.guard_delay = args.guard_delay
    fake.base_url = f"http://{args.host}:{args.port}/v1"
    config = uvicorn.Config(
        StreamCap(fake, args.max_streams) if args.max_streams > 0 else fake,
        host=args.host,
        port=args.port,
        lifespan="off",
        access_log=False,
        log_level="warning",
        backlog=4096,
        timeout_graceful_shutdown=2,
    )
    # A test double's own collector pauses would reach Parley's clients as late tokens and count
    # as Parley's gaps; tune it as Parley tunes itself (app/main.py).
    gc.collect()
    gc.freeze()
    gc.set_threshold(700, 10, 100)
    uvicorn.Server(config).run()  # uvloop and httptools when installed, as Parley gets


if __name__ == "__main__":
    main()
