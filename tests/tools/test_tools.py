"""Tools in chats: a real MCP server (FastMCP over Streamable HTTP, tests/support/mcp_server.py)
and the fake upstream scripted to call tools, split over chunks and several at once."""

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import websockets

from tests.support.api import SignedInUser, assert_error, register
from tests.support.fake_upstream import FakeUpstream
from tests.support.mcp_server import McpServerState
from tests.support.sse import SSEEvent, collect_sse, iter_sse, names, text_of
from tests.support.upstream_fixtures import Parley, new_chat
from tests.support.wait import wait_until

SSE = {"Accept": "text/event-stream"}


def call(call_id: str, name: str, *fragments: str) -> dict[str, Any]:
    """A tool call as the fake upstream streams it: its arguments in these fragments."""
    return {"id": call_id, "name": name, "arguments": list(fragments)}


def data(events: list[SSEEvent], name: str) -> list[dict[str, Any]]:
    return [event.data for event in events if event.event == name]


async def send(
    parley: Parley, user: SignedInUser, chat: dict[str, Any], content: str = "Go", **body: Any
) -> list[SSEEvent]:
    async with parley.http.stream(
        "POST",
        f"/api/chats/{chat['id']}/messages",
        json={"content": content, **body},
        headers={**user.headers, **SSE},
    ) as response:
        return await collect_sse(response)


async def messages(parley: Parley, user: SignedInUser, chat: dict[str, Any]) -> list[Any]:
    response = await parley.http.get(f"/api/chats/{chat['id']}/messages", headers=user.headers)
    assert response.status_code == 200, response.text
    return list(response.json()["items"])


def offered(request: dict[str, Any]) -> list[str]:
    return [tool["function"]["name"] for tool in request.get("tools", [])]


LOOKUP_TURNS: list[dict[str, Any]] = [
    {"tokens": [], "tool_calls": [call("a", "other__lookup", '{"key": "tea"}')]},
    {"tokens": ["Ok."]},
]


@dataclass
class Streamed:
    events: list[SSEEvent]
    reply_id: str


async def stream_reply(
    parley: Parley,
    user: SignedInUser,
    chat: dict[str, Any],
    on: Callable[[SSEEvent, str], Awaitable[bool | None]] | None = None,
    content: str = "Look it up",
) -> Streamed:
    """Sends a message and reads its reply's events; `on(event, reply_id)` runs on each, and
    the connection drops when it returns True."""
    events: list[SSEEvent] = []
    reply_id = ""
    async with parley.http.stream(
        "POST",
        f"/api/chats/{chat['id']}/messages",
        json={"content": content},
        headers={**user.headers, **SSE},
    ) as response:
        async for event in iter_sse(response):
            events.append(event)
            if event.event == "start":
                reply_id = event.data["assistant_message_id"]
            if on is not None and await on(event, reply_id):
                break
    return Streamed(events, reply_id)


async def answer(
    parley: Parley,
    user: SignedInUser,
    chat_id: str,
    reply_id: str,
    approve: bool = True,
    call_id: str = "a",
) -> httpx.Response:
    return await parley.http.post(
        f"/api/chats/{chat_id}/messages/{reply_id}/tool-approvals",
        json={"call_id": call_id, "approve": approve},
        headers=user.headers,
    )


class TestDiscovery:
    async def test_tools_are_listed_with_clashing_names_prefixed(
        self, parley: Parley, author: SignedInUser
    ) -> None:
        response = await parley.http.get("/api/tools", headers=author.headers)
        assert response.status_code == 200, response.text
        tools = {tool["id"]: tool for tool in response.json()["tools"]}
        assert tools["calc.add"]["model_name"] == "add"
        assert tools["calc.add"]["input_schema"]["required"] == ["a", "b"]
        assert tools["calc.add"]["reachable"] and not tools["calc.add"]["needs_approval"]
        assert tools["calc.lookup"]["model_name"] == "calc__lookup"
        assert tools["other.lookup"]["model_name"] == "other__lookup"
        assert tools["other.lookup"]["needs_approval"]
        assert tools["parley.knowledge_search"]["server"] == "parley"

    async def test_headers_reach_the_server_with_secrets_from_the_environment(
        self, parley: Parley, calc: McpServerState
    ) -> None:
        assert calc.headers  # the discovery at start
        assert {"authorization": "Bearer s3cret", "x-team": "tests"} in calc.headers

    @pytest.mark.parametrize(
        "mcp_config", [{"down": {"url": "http://127.0.0.1:9/mcp", "timeout_seconds": 2}}]
    )
    async def test_a_server_that_is_down_is_reported_not_fatal(
        self, parley: Parley, author: SignedInUser
    ) -> None:
        admin_view = await parley.http.get("/api/tools", headers=author.headers)
        servers = {server["name"]: server for server in admin_view.json()["servers"]}
        assert servers["down"]["reachable"] is False
        assert servers["down"]["tools"] == 0
        health = await parley.http.get("/health")
        assert health.status_code == 200

    async def test_a_chat_names_only_tools_that_exist(
        self, parley: Parley, author: SignedInUser
    ) -> None:
        response = await parley.http.post(
            "/api/chats", json={"tool_ids": ["calc.nope"]}, headers=author.headers
        )
        assert_error(response, 422, "unknown_tool")


class TestLoop:
    async def test_the_model_calls_a_tool_then_answers(
        self,
        parley: Parley,
        author: SignedInUser,
        fake_upstream: FakeUpstream,
        calc: McpServerState,
    ) -> None:
        chat = await new_chat(parley.http, author, tool_ids=["calc.add"])
        fake_upstream.state.turns = [
            {"tokens": ["Let me add. "], "tool_calls": [call("c1", "add", '{"a": 2,', ' "b": 3}')]},
            {"tokens": ["The sum is ", "5."]},
        ]
        events = await send(parley, author, chat, "What is 2 + 3?")
        assert names(events)[-1] == "done"
        assert data(events, "tool_call") == [
            {"id": "c1", "name": "add", "arguments": '{"a": 2, "b": 3}'}
        ]
        (result,) = data(events, "tool_result")
        assert result["content"] == "5" and result["is_error"] is False
        assert text_of(events) == "Let me add. The sum is 5."
        assert calc.calls == ["add(2, 3)"]
        first, second = fake_upstream.state.requests
        assert offered(first) == ["add"]
        assistant, tool = second["messages"][-2:]
        assert assistant["tool_calls"][0]["function"] == {
            "name": "add",
            "arguments": '{"a": 2, "b": 3}',
        }
        assert tool["role"] == "tool" and tool["tool_call_id"] == "c1"
        assert "<tool_result" in tool["content"] and "\n5\n" in tool["content"]

        reply = (await messages(parley, author, chat))[-1]
        assert reply["content"] == "Let me add. The sum is 5."
        (step,) = reply["tool_steps"]
        assert step["tool_id"] == "calc.add" and step["result"] == "5"
        assert step["approval"] == "not_needed"
        # Both model calls count: the fake reports each one's usage.
        assert reply["completion_tokens"] == 1 + 2 and reply["usage_estimated"] is False
        (usage,) = data(events, "usage")
        assert usage["completion_tokens"] == 3

        # The next turn sends the calls back in OpenAI's shape; regenerate runs the loop again.
        fake_upstream.state.turns = [{"tokens": ["Yes."]}]
        await send(parley, author, chat, "Sure?")
        history = fake_upstream.state.requests[-1]["messages"]
        roles = [message["role"] for message in history]
        assert roles[-5:] == ["user", "assistant", "tool", "assistant", "user"]
        fake_upstream.state.turns = [
            {"tokens": [], "tool_calls": [call("c2", "add", '{"a": 1, "b": 1}')]},
            {"tokens": ["Two."]},
        ]
        async with parley.http.stream(
            "POST",
            f"/api/chats/{chat['id']}/messages/{reply['id']}/regenerate",
            json={},
            headers={**author.headers, **SSE},
        ) as response:
            again = await collect_sse(response)
        assert data(again, "tool_result")[0]["content"] == "2"
        assert text_of(again) == "Two."

    async def test_several_calls_run_at_once(
        self, parley: Parley, author: SignedInUser, fake_upstream: FakeUpstream
    ) -> None:
        chat = await new_chat(parley.http, author, tool_ids=["calc.meet"])
        fake_upstream.state.turns = [
            {
                "tokens": [],
                "tool_calls": [
                    call("m1", "meet", '{"who": ', '"ann"}'),
                    call("m2", "meet", '{"who": "bob"}'),
                ],
            },
            {"tokens": ["They met."]},
        ]
        events = await send(parley, author, chat)
        results = {result["id"]: result["content"] for result in data(events, "tool_result")}
        assert results == {"m1": "ann met someone", "m2": "bob met someone"}
        tool_messages = [
            m for m in fake_upstream.state.requests[1]["messages"] if m["role"] == "tool"
        ]
        assert [m["tool_call_id"] for m in tool_messages] == ["m1", "m2"]

    @pytest.mark.parametrize("parley_overrides", [{"tool_timeout_seconds": 0.5}])
    async def test_every_failure_is_a_result_the_model_reads(
        self, parley: Parley, author: SignedInUser, fake_upstream: FakeUpstream
    ) -> None:
        chat = await new_chat(
            parley.http, author, tool_ids=["calc.add", "calc.fail", "calc.echo_slowly"]
        )
        fake_upstream.state.turns = [
            {
                "tokens": [],
                "tool_calls": [
                    call("u", "nope", "{}"),
                    call("i", "add", '{"a": "two", "b": 3}'),
                    call("j", "add", '{"a": 2'),
                    call("f", "fail", "{}"),
                    call("t", "echo_slowly", '{"text": "hi", "seconds": 5}'),
                ],
            },
            {"tokens": ["Sorry."]},
        ]
        events = await send(parley, author, chat)
        assert names(events)[-1] == "done"
        results = {result["id"]: result for result in data(events, "tool_result")}
        assert all(result["is_error"] for result in results.values())
        assert "no tool named 'nope'" in results["u"]["content"]
        assert "do not match the tool's schema" in results["i"]["content"]
        assert "not valid JSON" in results["j"]["content"]
        assert "failed on purpose" in results["f"]["content"]
        assert "did not answer within 0.5 seconds" in results["t"]["content"]
        assert text_of(events) == "Sorry."

    async def test_a_server_gone_down_is_a_result(
        self,
        parley: Parley,
        author: SignedInUser,
        fake_upstream: FakeUpstream,
        other: McpServerState,
    ) -> None:
        chat = await new_chat(parley.http, author, tool_ids=["calc.add"])
        parley.app.state.tools.clients["calc"].config = parley.app.state.tools.clients[
            "calc"
        ].config.model_copy(update={"url": "http://127.0.0.1:9/mcp"})
        fake_upstream.state.turns = [
            {"tokens": [], "tool_calls": [call("c", "add", '{"a": 1, "b": 2}')]},
            {"tokens": ["It is down."]},
        ]
        events = await send(parley, author, chat)
        (result,) = data(events, "tool_result")
        assert result["is_error"] and "could not be reached" in result["content"]
        assert names(events)[-1] == "done"

    async def test_long_results_are_cut_and_say_so(
        self, parley: Parley, author: SignedInUser, fake_upstream: FakeUpstream
    ) -> None:
        chat = await new_chat(parley.http, author, tool_ids=["calc.big"])
        fake_upstream.state.turns = [
            {"tokens": [], "tool_calls": [call("b", "big", '{"size": 50000}')]},
            {"tokens": ["Long."]},
        ]
        events = await send(parley, author, chat)
        (result,) = data(events, "tool_result")
        assert result["content"].startswith("x" * 20_000)
        assert "The result was cut: it had 50,000 characters" in result["content"]

    @pytest.mark.parametrize("parley_overrides", [{"tool_max_steps": 2}])
    async def test_the_step_limit_ends_the_reply_keeping_what_was_said(
        self, parley: Parley, author: SignedInUser, fake_upstream: FakeUpstream
    ) -> None:
        chat = await new_chat(parley.http, author, tool_ids=["calc.add"])
        again = {"tokens": ["More. "], "tool_calls": [call("x", "add", '{"a": 1, "b": 1}')]}
        fake_upstream.state.turns = [again, again, again, {"tokens": ["never"]}]
        events = await send(parley, author, chat)
        assert events[-1].event == "error"
        assert events[-1].data["code"] == "tool_steps_exceeded"
        assert len(fake_upstream.state.requests) == 3
        reply = (await messages(parley, author, chat))[-1]
        assert reply["content"] == "More. More. More. "
        assert [step["step"] for step in reply["tool_steps"]] == [0, 1]

    async def test_a_chat_without_tools_offers_none(
        self, parley: Parley, author: SignedInUser, fake_upstream: FakeUpstream
    ) -> None:
        chat = await new_chat(parley.http, author)
        fake_upstream.state.turns = [{"tokens": ["Hi."]}]
        await send(parley, author, chat)
        assert "tools" not in fake_upstream.state.requests[0]
        # A message may bring its own; the chat's stay as they were.
        fake_upstream.state.turns = [{"tokens": ["Hi."]}]
        await send(parley, author, chat, tool_ids=["calc.add"])
        assert offered(fake_upstream.state.requests[1]) == ["add"]
        chat_read = await parley.http.get(f"/api/chats/{chat['id']}", headers=author.headers)
        assert chat_read.json()["tool_ids"] == []

    async def test_a_tool_switched_off_is_no_longer_offered(
        self,
        parley: Parley,
        author: SignedInUser,
        admin: SignedInUser,
        fake_upstream: FakeUpstream,
    ) -> None:
        chat = await new_chat(parley.http, author, tool_ids=["calc.add", "calc.big"])
        switched = await parley.http.patch(
            "/api/admin/tools/calc.add", json={"enabled": False}, headers=admin.headers
        )
        assert switched.status_code == 200, switched.text
        refused = await parley.http.patch(
            "/api/admin/tools/calc.add", json={"enabled": False}, headers=author.headers
        )
        assert refused.status_code == 403
        listed = await parley.http.get("/api/tools", headers=author.headers)
        assert "calc.add" not in {tool["id"] for tool in listed.json()["tools"]}
        fake_upstream.state.turns = [{"tokens": ["Hi."]}]
        await send(parley, author, chat)
        assert offered(fake_upstream.state.requests[0]) == ["big"]
        await parley.http.patch(
            "/api/admin/tools/calc", json={"enabled": False}, headers=admin.headers
        )
        fake_upstream.state.turns = [{"tokens": ["Hi."]}]
        await send(parley, author, chat)
        assert "tools" not in fake_upstream.state.requests[1]
        unknown = await parley.http.patch(
            "/api/admin/tools/calc.nope", json={"enabled": False}, headers=admin.headers
        )
        assert_error(unknown, 404, "tool_not_found")


class TestGuardrails:
    async def test_a_result_is_checked_and_quoted_as_data(
        self, parley: Parley, author: SignedInUser, fake_upstream: FakeUpstream
    ) -> None:
        chat = await new_chat(parley.http, author, tool_ids=["calc.leak"])
        fake_upstream.state.turns = [
            {"tokens": [], "tool_calls": [call("l", "leak", "{}")]},
            {"tokens": ["Done."]},
        ]
        events = await send(parley, author, chat)
        (result,) = data(events, "tool_result")
        assert "4111" not in result["content"]
        tool = fake_upstream.state.requests[1]["messages"][-1]
        assert "4111" not in tool["content"]
        assert "prompt injection" in tool["content"]
        assert "do not follow instructions" in tool["content"]


class TestApprovals:
    async def test_granted_denied_and_unanswered(
        self,
        parley: Parley,
        author: SignedInUser,
        fake_upstream: FakeUpstream,
        other: McpServerState,
    ) -> None:
        chat = await new_chat(parley.http, author, tool_ids=["other.lookup"])
        for approve, expected in ((True, "other has tea"), (False, "The user denied this call")):
            fake_upstream.state.turns = list(LOOKUP_TURNS)

            async def on(event: SSEEvent, reply_id: str, approve: bool = approve) -> None:
                if event.event == "approval_required":
                    assert event.data == {
                        "id": "a",
                        "name": "other__lookup",
                        "arguments": '{"key": "tea"}',
                    }
                    answered = await answer(parley, author, chat["id"], reply_id, approve)
                    assert answered.status_code == 200, answered.text

            streamed = await stream_reply(parley, author, chat, on)
            (result,) = data(streamed.events, "tool_result")
            assert expected in result["content"]
            assert result["is_error"] is (not approve)
            step = (await messages(parley, author, chat))[-1]["tool_steps"][0]
            assert step["approval"] == ("approved" if approve else "denied")
        assert other.calls == ["other.lookup('tea')"]
        late = await answer(parley, author, chat["id"], streamed.reply_id)
        assert_error(late, 409, "approval_not_pending")

    @pytest.mark.parametrize("parley_overrides", [{"tool_approval_timeout_seconds": 0.3}])
    async def test_an_unanswered_call_is_refused(
        self,
        parley: Parley,
        author: SignedInUser,
        fake_upstream: FakeUpstream,
        other: McpServerState,
    ) -> None:
        chat = await new_chat(parley.http, author, tool_ids=["other.lookup"])
        fake_upstream.state.turns = [
            {"tokens": [], "tool_calls": [call("a", "other__lookup", '{"key": "tea"}')]},
            {"tokens": ["Ok."]},
        ]
        events = await send(parley, author, chat)
        (result,) = data(events, "tool_result")
        assert "did not answer in time" in result["content"]
        assert other.calls == []
        assert (await messages(parley, author, chat))[-1]["tool_steps"][0][
            "approval"
        ] == "timed_out"

    async def test_a_rejoin_shows_the_pending_approval_again(
        self, parley: Parley, author: SignedInUser, fake_upstream: FakeUpstream
    ) -> None:
        chat = await new_chat(parley.http, author, tool_ids=["other.lookup"])
        fake_upstream.state.turns = list(LOOKUP_TURNS)

        async def drop(event: SSEEvent, reply_id: str) -> bool:
            return event.event == "approval_required"  # the connection drops while it waits

        reply_id = (await stream_reply(parley, author, chat, drop)).reply_id
        async with parley.http.stream(
            "GET",
            f"/api/chats/{chat['id']}/messages/{reply_id}/stream",
            headers={**author.headers, "Last-Event-ID": "1"},
        ) as rejoined:
            events: list[SSEEvent] = []
            async for event in iter_sse(rejoined):
                events.append(event)
                if event.event == "approval_required":
                    answered = await answer(parley, author, chat["id"], reply_id)
                    assert answered.status_code == 200
        assert names(events)[:2] == ["tool_call", "approval_required"]
        assert data(events, "tool_result")[0]["content"] == "other has tea"
        assert names(events)[-1] == "done"

    async def test_the_quota_is_checked_before_each_step(
        self,
        parley: Parley,
        author: SignedInUser,
        admin: SignedInUser,
        fake_upstream: FakeUpstream,
    ) -> None:
        chat = await new_chat(parley.http, author, tool_ids=["other.lookup"])
        fake_upstream.state.turns = list(LOOKUP_TURNS)

        async def on(event: SSEEvent, reply_id: str) -> None:
            if event.event == "approval_required":
                # While the call waits, an admin cuts the user's quota to nothing.
                cut = await parley.http.patch(
                    f"/api/admin/users/{author.user_id}",
                    json={"daily_token_quota": 1},
                    headers=admin.headers,
                )
                assert cut.status_code == 200, cut.text
                await answer(parley, author, chat["id"], reply_id)

        events = (await stream_reply(parley, author, chat, on)).events
        assert events[-1].event == "error" and events[-1].data["code"] == "quota_exceeded"
        assert len(fake_upstream.state.requests) == 1
        assert data(events, "tool_result")[0]["content"] == "other has tea"

    async def test_another_users_reply_is_never_approvable(
        self, parley: Parley, author: SignedInUser, fake_upstream: FakeUpstream
    ) -> None:
        chat = await new_chat(parley.http, author, tool_ids=["other.lookup"])
        fake_upstream.state.turns = list(LOOKUP_TURNS)
        stranger = await register(parley.http)
        strangers_chat = await new_chat(parley.http, stranger)

        async def on(event: SSEEvent, reply_id: str) -> None:
            if event.event == "approval_required":
                for chat_id in (chat["id"], strangers_chat["id"]):
                    tried = await answer(parley, stranger, chat_id, reply_id)
                    assert tried.status_code == 404, tried.text
                await parley.http.post(f"/api/chats/{chat['id']}/stop", headers=author.headers)

        events = (await stream_reply(parley, author, chat, on)).events
        assert events[-1].data["status"] == "cancelled"


class TestStopAndRejoin:
    async def test_stop_cancels_a_running_tool(
        self,
        parley: Parley,
        author: SignedInUser,
        fake_upstream: FakeUpstream,
        calc: McpServerState,
    ) -> None:
        chat = await new_chat(parley.http, author, tool_ids=["calc.echo_slowly"])
        fake_upstream.state.turns = [
            {
                "tokens": ["Wait. "],
                "tool_calls": [call("s", "echo_slowly", '{"text": "hi", "seconds": 60}')],
            },
            {"tokens": ["never"]},
        ]

        async def on(event: SSEEvent, reply_id: str) -> None:
            if event.event == "tool_call":
                await asyncio.to_thread(calc.slow_started.wait, 10)
                stopped = await parley.http.post(
                    f"/api/chats/{chat['id']}/stop", headers=author.headers
                )
                assert stopped.json() == {"stopped": True}

        events = (await stream_reply(parley, author, chat, on, "Go")).events
        assert events[-1].event == "done" and events[-1].data["status"] == "cancelled"
        assert "tool_result" not in names(events)
        assert len(fake_upstream.state.requests) == 1
        reply = (await messages(parley, author, chat))[-1]
        assert reply["content"] == "Wait. "
        assert reply["tool_steps"][0]["result"] is None

    async def test_a_rejoin_during_a_tool_call_gets_the_rest(
        self,
        parley: Parley,
        author: SignedInUser,
        fake_upstream: FakeUpstream,
        calc: McpServerState,
    ) -> None:
        chat = await new_chat(parley.http, author, tool_ids=["calc.echo_slowly"])
        fake_upstream.state.turns = [
            {
                "tokens": [],
                "tool_calls": [call("s", "echo_slowly", '{"text": "hi", "seconds": 1}')],
            },
            {"tokens": ["Echoed."]},
        ]

        async def drop(event: SSEEvent, reply_id: str) -> bool:
            return event.event == "tool_call"

        streamed = await stream_reply(parley, author, chat, drop, "Go")
        seen = streamed.events[-1].id
        async with parley.http.stream(
            "GET",
            f"/api/chats/{chat['id']}/messages/{streamed.reply_id}/stream",
            headers={**author.headers, "Last-Event-ID": str(seen)},
        ) as rejoined:
            events = await collect_sse(rejoined)
        assert names(events)[0] == "tool_result" and events[0].data["content"] == "hi"
        assert text_of(events) == "Echoed." and names(events)[-1] == "done"


class TestWebSocketAndKnowledge:
    async def test_knowledge_search_finds_the_chats_documents(
        self, parley: Parley, author: SignedInUser, fake_upstream: FakeUpstream
    ) -> None:
        upload = await parley.http.post(
            "/api/files",
            files={
                "file": (
                    "teas.txt",
                    b"Oolong tea is partly oxidised. Green tea is not.",
                    "text/plain",
                )
            },
            headers=author.headers,
        )
        assert upload.status_code == 201, upload.text
        created = await parley.http.post(
            "/api/collections", json={"name": "Teas"}, headers=author.headers
        )
        collection = created.json()
        added = await parley.http.post(
            f"/api/collections/{collection['id']}/files",
            json={"file_id": upload.json()["id"]},
            headers=author.headers,
        )
        assert added.status_code == 201, added.text

        async def indexed() -> bool:
            listed = await parley.http.get(
                f"/api/collections/{collection['id']}/files", headers=author.headers
            )
            return all(item["status"] == "ready" for item in listed.json())

        await wait_until(indexed, timeout=20)
        chat = await new_chat(
            parley.http,
            author,
            tool_ids=["parley.knowledge_search"],
            collection_ids=[collection["id"]],
        )
        fake_upstream.state.turns = [
            {"tokens": [], "tool_calls": [call("k", "knowledge_search", '{"query": "oolong"}')]},
            {"tokens": ["Oolong is partly oxidised."]},
        ]
        events = await send(parley, author, chat, "Tell me about oolong")
        (result,) = data(events, "tool_result")
        assert "Oolong tea is partly oxidised" in result["content"]
        assert result["sources"][0]["name"] == "teas.txt"
        reply = (await messages(parley, author, chat))[-1]
        assert any(source["name"] == "teas.txt" for source in reply["sources"])

    async def test_the_websocket_sends_the_same_frames(
        self, parley: Parley, author: SignedInUser, fake_upstream: FakeUpstream
    ) -> None:
        chat = await new_chat(parley.http, author, tool_ids=["calc.add"])
        fake_upstream.state.turns = [
            {"tokens": [], "tool_calls": [call("w", "add", '{"a": 4, "b": 4}')]},
            {"tokens": ["Eight."]},
        ]
        url = parley.base_url.replace("http", "ws") + f"/api/chats/{chat['id']}/ws"
        frames: list[dict[str, Any]] = []
        async with websockets.connect(url) as socket:
            await socket.send(json.dumps({"type": "auth", "token": author.access_token}))
            await socket.send(json.dumps({"type": "message", "content": "Add"}))
            while not frames or frames[-1]["event"] not in ("done", "error"):
                frames.append(json.loads(await socket.recv()))
        events = [frame["event"] for frame in frames]
        assert events[:3] == ["start", "tool_call", "tool_result"]
        assert frames[2]["data"]["content"] == "8"


class TestProjects:
    async def test_a_projects_tools_add_to_its_chats(
        self, parley: Parley, author: SignedInUser, fake_upstream: FakeUpstream
    ) -> None:
        created = await parley.http.post(
            "/api/projects",
            json={"name": "Maths", "tool_ids": ["calc.add"]},
            headers=author.headers,
        )
        assert created.status_code == 201, created.text
        chat = await new_chat(
            parley.http, author, project_id=created.json()["id"], tool_ids=["calc.big"]
        )
        fake_upstream.state.turns = [{"tokens": ["Hi."]}]
        await send(parley, author, chat)
        assert offered(fake_upstream.state.requests[0]) == ["big", "add"]
