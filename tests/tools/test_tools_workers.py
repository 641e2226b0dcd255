"""Approvals across workers: two real server processes sharing Redis and the database; the
reply streams on one, the user's answer reaches the other."""

import json
import uuid
from typing import Any

import httpx

from tests.ops.test_processes import redis_url  # noqa: F401 - the fixture
from tests.support.api import register
from tests.support.database import TestDatabase
from tests.support.fake_upstream import FakeUpstream
from tests.support.mcp_server import McpServerState
from tests.support.processes import server
from tests.support.sse import SSEEvent, iter_sse
from tests.support.upstream_fixtures import new_chat

SSE = {"Accept": "text/event-stream"}


async def test_an_approval_sent_to_another_worker_reaches_the_call(
    database: TestDatabase,
    clean_db: Any,
    fake_upstream: FakeUpstream,
    other: McpServerState,
    redis_url: str,  # noqa: F811
) -> None:
    settings = {
        "database_url": database.url,
        "llm_base_url": fake_upstream.base_url,
        "llm_model": "fake-model",
        "redis_url": redis_url,
        "auto_title": "false",
        "mcp_servers": json.dumps({"other": {"url": other.url, "approve": "always"}}),
        "rate_limit_key_prefix": f"parley-test-{uuid.uuid4().hex}",
    }
    fake_upstream.state.turns = [
        {
            "tokens": [],
            "tool_calls": [{"id": "a", "name": "lookup", "arguments": ['{"key": "tea"}']}],
        },
        {"tokens": ["Found it."]},
    ]
    async with (
        server(settings) as first,
        server(settings) as second,
        httpx.AsyncClient(base_url=first.base_url, timeout=30) as one,
        httpx.AsyncClient(base_url=second.base_url, timeout=30) as two,
    ):
        user = await register(one)
        chat = await new_chat(one, user, tool_ids=["other.lookup"])
        events: list[SSEEvent] = []
        async with one.stream(
            "POST",
            f"/api/chats/{chat['id']}/messages",
            json={"content": "Look it up"},
            headers={**user.headers, **SSE},
        ) as response:
            async for event in iter_sse(response):
                events.append(event)
                if event.event == "start":
                    reply_id = event.data["assistant_message_id"]
                if event.event == "approval_required":
                    answered = await two.post(
                        f"/api/chats/{chat['id']}/messages/{reply_id}/tool-approvals",
                        json={"call_id": "a", "approve": True},
                        headers=user.headers,
                    )
                    assert answered.status_code == 200, answered.text
    results = [event.data for event in events if event.event == "tool_result"]
    assert results[0]["content"] == "other has tea"
    assert events[-1].event == "done"
    assert other.calls == ["other.lookup('tea')"]
