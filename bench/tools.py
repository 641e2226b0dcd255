"""Tools benchmark: Parley's own CPU per tool step, and many chats calling a tool at once.

    .venv/bin/python bench/tools.py                      # 2,000 steps, 50 chats
    .venv/bin/python bench/tools.py --steps 500 --chats 20

1. CPU per tool step, in this process: the tools stage (app/generation/pipeline/stages/tools.py)
   runs replies whose model asks for one tool call and then answers, with an in-memory model and
   an in-memory MCP server standing in for the network (so neither the model nor the MCP round
   trip is counted): the call gathered from its streamed pieces, the `tool_call` event, the
   arguments checked against the tool's JSON Schema, the result through the guardrails'
   untrusted-text checks and quoted, the `tool_result` event, the step's messages, the model
   called again. CPU time (process_time) per reply with the step, minus per reply without
   tools (the same model's text alone). Target: ≤ 3 ms.
2. `--chats` chats at once, each sending a message whose model calls a real MCP tool (FastMCP
   over Streamable HTTP on loopback) and then answers: Parley on a real uvicorn (one worker,
   SQLite), the fake upstream answering each tool result with text. Errors (anything but `done`
   with the tool's result and the final text), the MCP calls counted at the server, and the
   replies' time p50/p99. Target: 0 errors.
"""

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncGenerator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app.chats.models import Chat  # noqa: E402
from app.core.config import McpServer, Settings  # noqa: E402
from app.core.db import Database  # noqa: E402
from app.core.invalidation import Invalidations  # noqa: E402
from app.core.uow import unit_of_work  # noqa: E402
from app.generation.pipeline.stage import ReplyPlan  # noqa: E402
from app.generation.pipeline.stages.tools import Tools, UsageStepQuota  # noqa: E402
from app.generation.tool_approvals import PendingApprovals  # noqa: E402
from app.generation.upstream.types import (  # noqa: E402
    ChatMessage,
    Finish,
    ModelConfig,
    SamplingParams,
    TextDelta,
    ToolCallDelta,
    UpstreamCall,
    UpstreamEvent,
    Usage,
)
from app.guardrails.pipeline import GuardrailPipeline  # noqa: E402
from app.guardrails.recorder import ModerationRecorder  # noqa: E402
from app.tools.catalog import ToolCatalog  # noqa: E402
from app.tools.mcp import ListedTool, ToolOutput  # noqa: E402
from app.tools.runner import ToolRunner  # noqa: E402
from app.users.models import User  # noqa: E402
from app.users.repository import UserRepository  # noqa: E402
from tests.support.api import register  # noqa: E402
from tests.support.database import migrate  # noqa: E402
from tests.support.fake_upstream import run_fake_upstream  # noqa: E402
from tests.support.mcp_server import running_mcp_server  # noqa: E402
from tests.support.upstream_fixtures import running_parley  # noqa: E402

ADD_SCHEMA = {
    "type": "object",
    "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
    "required": ["a", "b"],
}


class MemoryMcpServer:
    """An MCP server's client as the catalog uses it, answering in memory."""

    def __init__(self, config: McpServer) -> None:
        self.config = config

    async def list_tools(self) -> list[ListedTool]:
        return [ListedTool("add", "Add two integers.", ADD_SCHEMA)]

    async def call(self, tool: str, arguments: dict[str, Any]) -> ToolOutput:
        return ToolOutput(str(arguments["a"] + arguments["b"]), False)

    async def close(self) -> None:
        return None


class MemoryModel:
    """A model that asks for one tool call (in pieces, as upstreams stream it), then answers."""

    def __init__(self, *, calls_tool: bool) -> None:
        self.calls_tool = calls_tool

    async def stream(
        self, model: ModelConfig, messages: list[ChatMessage], params: SamplingParams
    ) -> AsyncGenerator[UpstreamEvent, None]:
        if self.calls_tool and messages[-1]["role"] != "tool":
            yield ToolCallDelta(0, "call_1", "add", "")
            for piece in ('{"a": ', "2, ", '"b": 3}'):
                yield ToolCallDelta(0, arguments=piece)
            yield Usage(20, 10)
            yield Finish("tool_calls")
            return
        for word in ("The ", "sum ", "is ", "5."):
            yield TextDelta(word)
        yield Usage(40, 4)
        yield Finish("stop")

    async def list_models(self, model: ModelConfig) -> list[str]:
        return [model.upstream_model]


async def cpu_per_step(steps: int, workdir: Path) -> dict[str, float]:
    database_url = f"sqlite+aiosqlite:///{workdir / 'bench.db'}"
    migrate(database_url)
    settings = Settings(
        database_url=database_url,
        environment="test",
        mcp_servers={"bench": {"url": "http://127.0.0.1:9/mcp"}},
    )
    db = Database(settings)
    invalidations = Invalidations(None)
    catalog = ToolCatalog(settings, db, invalidations, knowledge_search=False)
    catalog.clients["bench"] = MemoryMcpServer(catalog.clients["bench"].config)  # type: ignore[assignment]
    await catalog.refresh()
    guardrails = GuardrailPipeline(settings, ModerationRecorder(db, None), None)
    stage = Tools(
        catalog=catalog,
        runner=ToolRunner(catalog, settings, lambda: None),
        approvals=PendingApprovals(invalidations),
        settings=settings,
        guardrails=guardrails,
        quota=UsageStepQuota(db, settings),
    )
    user = User(
        id=uuid.uuid4(),
        email="bench@example.com",
        display_name="Bench",
        password_hash="-",
        role="user",
    )
    async with unit_of_work(db) as uow:  # the quota check before each step reads the user
        await uow.get(UserRepository).add(user)
    chat = Chat(id=uuid.uuid4(), user_id=user.id, mode="chat", tool_ids=["bench.add"])
    model = ModelConfig(
        name="m",
        base_url=None,
        api_key=None,
        upstream_model="m",
        context_length=8192,
        provider="openai",
    )

    async def reply(provider: MemoryModel, tools: bool) -> int:
        plan = ReplyPlan(
            user=user, mode="chat", model=model, content="2 + 3?", scope=None, chat=chat
        )  # type: ignore[arg-type]
        plan.reply_id = uuid.uuid4()
        call = UpstreamCall(
            provider=provider,
            model=model,
            messages=[{"role": "user", "content": "What is 2 + 3?"}],
            params=SamplingParams(),
        )
        events = provider.stream(model, call.messages, call.params)
        if tools:
            await stage.compose(plan)
            await stage.before_upstream(plan, call, lambda _event: None)
            events = stage.filter(plan, events)
        count = 0
        async for _event in events:
            count += 1
        return count

    async def measure(provider: MemoryModel, tools: bool) -> float:
        for _ in range(min(200, steps)):  # warm-up
            await reply(provider, tools)
        started = time.process_time()
        for _ in range(steps):
            await reply(provider, tools)
        return (time.process_time() - started) / steps

    plain = await measure(MemoryModel(calls_tool=False), tools=False)
    with_step = await measure(MemoryModel(calls_tool=True), tools=True)
    await catalog.close()
    await db.dispose()
    return {"plain": plain, "with_step": with_step, "step": with_step - plain}


async def concurrent_chats(chats: int, workdir: Path) -> dict[str, Any]:
    database_url = f"sqlite+aiosqlite:///{workdir / 'chats.db'}"
    migrate(database_url)
    with running_mcp_server("calc") as calc:
        async with run_fake_upstream() as fake:
            fake.state.tokens = ["The ", "sum ", "is ", "5."]
            fake.state.tool_calls = [
                {"id": "call_1", "name": "add", "arguments": ['{"a": 2,', ' "b": 3}']}
            ]
            fake.state.answer_tool_results = True
            settings = Settings(
                database_url=database_url,
                environment="test",
                secret_key="x" * 40,
                bcrypt_rounds=4,
                llm_base_url=fake.base_url,
                llm_model="fake-model",
                auto_title=False,
                rate_limit_enabled=False,
                mcp_servers={"calc": {"url": calc.url}},
                file_storage_dir=str(workdir / "files"),
            )
            async with running_parley(settings) as parley:
                http = parley.http
                tokens = [(await register(http)).access_token for _ in range(chats)]

                async def one(token: str) -> tuple[float, str | None]:
                    auth = {"Authorization": f"Bearer {token}"}
                    created = await http.post(
                        "/api/chats", json={"tool_ids": ["calc.add"]}, headers=auth
                    )
                    chat_id = created.json()["id"]
                    started = time.perf_counter()
                    body = await http.post(
                        f"/api/chats/{chat_id}/messages", json={"content": "2 + 3?"}, headers=auth
                    )
                    took = time.perf_counter() - started
                    if body.status_code != 200:
                        return took, f"{body.status_code} {body.text[:200]}"
                    saved = body.json()
                    steps = saved.get("tool_steps") or []
                    # The fake says its words before its call and again after the result.
                    expected = "The sum is 5." * 2
                    if saved.get("content") != expected or [s["result"] for s in steps] != ["5"]:
                        return took, f"unexpected reply {saved.get('content')!r} {steps}"
                    return took, None

                results = await asyncio.gather(*(one(token) for token in tokens))
            times = sorted(took for took, _ in results)
            errors = [error for _, error in results if error]
            return {
                "chats": chats,
                "errors": len(errors),
                "first_error": errors[0] if errors else "",
                "mcp_calls": len(calc.calls),
                "model_calls": len(fake.state.requests),
                "p50": statistics.median(times),
                "p99": times[min(len(times) - 1, round(0.99 * (len(times) - 1)))],
            }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--chats", type=int, default=50)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        cpu = asyncio.run(cpu_per_step(args.steps, workdir))
        load = asyncio.run(concurrent_chats(args.chats, workdir))
    print()
    print("CPU per reply (process_time), in-memory model and MCP server")
    print("| replies | without tools | with one tool step | one tool step | target |")
    print("| ---: | ---: | ---: | ---: | ---: |")
    print(
        f"| {args.steps} | {cpu['plain'] * 1000:.3f} ms | {cpu['with_step'] * 1000:.3f} ms "
        f"| **{cpu['step'] * 1000:.3f} ms** | ≤ 3 ms |"
    )
    print()
    print("Chats at once, each calling a real MCP tool (FastMCP, loopback) then answering")
    print("| chats | errors | MCP calls | model calls | reply p50 | reply p99 | target |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    print(
        f"| {load['chats']} | **{load['errors']}** | {load['mcp_calls']} | {load['model_calls']} "
        f"| {load['p50'] * 1000:.0f} ms | {load['p99'] * 1000:.0f} ms | 0 errors |"
    )
    if load["first_error"]:
        print(f"first error: {load['first_error']}")


if __name__ == "__main__":
    main()
