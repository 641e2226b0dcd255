"""WebSocket chat with a real client (websockets) against Parley on a real uvicorn."""

import asyncio
import json
from typing import Any

import pytest
import websockets
from websockets.typing import Origin

from tests.support.api import register
from tests.support.upstream_fixtures import new_chat
from tests.support.wait import wait_until


def ws_url(parley, chat) -> str:
    return parley.base_url.replace("http://", "ws://") + f"/api/chats/{chat['id']}/ws"


async def next_event(socket) -> dict:
    return json.loads(await asyncio.wait_for(socket.recv(), timeout=5))


async def events_until_end(socket) -> list[dict]:
    events = []
    while True:
        event = await next_event(socket)
        events.append(event)
        if event["event"] in ("done", "error"):
            return events


class TestChatSocket:
    async def test_token_in_first_message_then_the_sse_events(self, parley, author, chat):
        async with websockets.connect(ws_url(parley, chat)) as socket:
            await socket.send(json.dumps({"type": "auth", "token": author.access_token}))
            await socket.send(json.dumps({"type": "message", "content": "Hi"}))
            events = await events_until_end(socket)
        kinds = [e["event"] for e in events]
        assert kinds[0] == "start" and kinds[-2:] == ["usage", "done"]
        assert "".join(e["data"]["content"] for e in events if e["event"] == "delta") == (
            "Hello, world!"
        )
        assert events[-1]["data"]["status"] == "complete"

    async def test_cookie_authenticates(self, parley, author, chat):
        headers = {"Cookie": f"parley_access={author.access_token}"}
        async with websockets.connect(ws_url(parley, chat), additional_headers=headers) as socket:
            await socket.send(json.dumps({"type": "message", "content": "Hi"}))
            events = await events_until_end(socket)
        assert events[-1]["event"] == "done"

    async def test_cookie_from_a_foreign_origin_is_refused(self, parley, author, chat):
        headers = {"Cookie": f"parley_access={author.access_token}"}
        async with websockets.connect(
            ws_url(parley, chat), additional_headers=headers, origin=Origin("https://evil.example")
        ) as socket:
            await asyncio.wait_for(socket.wait_closed(), timeout=5)
            assert socket.close_code == 1008

    async def test_stop_message_cancels_the_reply(self, parley, author, chat, fake_upstream):
        fake_upstream.state.tokens = 300
        fake_upstream.state.token_delay = 0.02
        async with websockets.connect(ws_url(parley, chat)) as socket:
            await socket.send(json.dumps({"type": "auth", "token": author.access_token}))
            await socket.send(json.dumps({"type": "message", "content": "Long"}))
            deltas = 0
            while deltas < 3:
                deltas += (await next_event(socket))["event"] == "delta"
            await socket.send(json.dumps({"type": "stop"}))
            events = await events_until_end(socket)
        assert events[-1]["event"] == "done" and events[-1]["data"]["status"] == "cancelled"
        await wait_until(fake_upstream.state.disconnected.is_set)

    async def test_bad_token_is_refused(self, parley, chat):
        async with websockets.connect(ws_url(parley, chat)) as socket:
            await socket.send(json.dumps({"type": "auth", "token": "garbage"}))
            event = await next_event(socket)
            assert event["event"] == "error" and event["data"]["code"] == "invalid_token"
            await asyncio.wait_for(socket.wait_closed(), timeout=5)

    async def test_another_users_chat_is_not_found(self, parley, author):
        stranger = await register(parley.http)
        chat = await new_chat(parley.http, author)
        async with websockets.connect(ws_url(parley, chat)) as socket:
            await socket.send(json.dumps({"type": "auth", "token": stranger.access_token}))
            event = await next_event(socket)
            assert event["data"]["code"] == "chat_not_found"

    @pytest.mark.parametrize("parley_overrides", [{"reply_resume_grace_seconds": 0}])
    async def test_disconnect_cancels_the_reply(self, parley, author, chat, fake_upstream):
        fake_upstream.state.tokens = 300
        fake_upstream.state.token_delay = 0.02
        async with websockets.connect(ws_url(parley, chat)) as socket:
            await socket.send(json.dumps({"type": "auth", "token": author.access_token}))
            await socket.send(json.dumps({"type": "message", "content": "Long"}))
            while (await next_event(socket))["event"] != "delta":
                pass
        await wait_until(fake_upstream.state.disconnected.is_set)

        async def settled_reply() -> dict[str, Any] | None:
            response = await parley.http.get(
                f"/api/chats/{chat['id']}/messages", headers=author.headers
            )
            reply = response.json()["items"][-1]
            return reply if reply["status"] != "streaming" else None

        reply = await wait_until(settled_reply)
        assert reply["role"] == "assistant" and reply["status"] == "cancelled"
        assert reply["content"].startswith("tok0 ")
        assert len(fake_upstream.state.requests) == 1

    async def test_invalid_frames_get_an_error_and_the_socket_stays_open(
        self, parley, author, chat
    ):
        async with websockets.connect(ws_url(parley, chat)) as socket:
            await socket.send(json.dumps({"type": "auth", "token": author.access_token}))
            await socket.send("not json")
            assert (await next_event(socket))["data"]["code"] == "invalid_message"
            await socket.send(json.dumps({"type": "message", "content": "Hi"}))
            assert (await events_until_end(socket))[-1]["event"] == "done"


# No chat titles: their requests to the upstream would count with the replies'.
@pytest.mark.parametrize("parley_overrides", [{"auto_title": False}])
class TestIdempotentSocketSends:
    async def test_a_resent_message_with_its_key_gets_the_same_reply(
        self, parley, author, chat, fake_upstream
    ):
        frame = {"type": "message", "content": "Hi", "idempotency_key": "send-1"}
        async with websockets.connect(ws_url(parley, chat)) as socket:
            await socket.send(json.dumps({"type": "auth", "token": author.access_token}))
            await socket.send(json.dumps(frame))
            first = await events_until_end(socket)
        async with websockets.connect(ws_url(parley, chat)) as socket:
            await socket.send(json.dumps({"type": "auth", "token": author.access_token}))
            await socket.send(json.dumps(frame))
            again = await events_until_end(socket)
        assert first[-1]["event"] == again[-1]["event"] == "done"
        assert again[-1]["data"]["id"] == first[-1]["data"]["id"]
        assert len(fake_upstream.state.requests) == 1
        messages = await parley.http.get(
            f"/api/chats/{chat['id']}/messages", headers=author.headers
        )
        assert len(messages.json()["items"]) == 2

    async def test_the_same_key_with_another_message_is_refused(self, parley, author, chat):
        async with websockets.connect(ws_url(parley, chat)) as socket:
            await socket.send(json.dumps({"type": "auth", "token": author.access_token}))
            for content in ("A", "B"):
                frame = {"type": "message", "content": content, "idempotency_key": "k"}
                await socket.send(json.dumps(frame))
                events = await events_until_end(socket)
            assert events[-1]["event"] == "error"
            assert events[-1]["data"]["code"] == "idempotency_key_reused"
