"""The reply pipeline's extension point: a stage added to the composer's list takes part in
every reply (HTTP, the WebSocket and /api/generate), with no change to the service."""

import json
from typing import Any

import pytest
import websockets

from app.chats.errors import ChatNotFound
from app.generation.pipeline.composer import ReplyComposer
from app.generation.pipeline.stage import EmitEvent, ReplyPlan, Stage
from app.generation.reply_events import ReplyEvent
from app.generation.upstream.types import UpstreamCall
from tests.generation.test_websocket import events_until_end, ws_url
from tests.support.sse import collect_sse
from tests.support.upstream_fixtures import Parley

SSE = {"Accept": "text/event-stream"}


class HouseRules(Stage):
    """What a project's instructions or a routing stage will do: add system text first, pick
    the upstream's sampling, and tell the client before the first delta."""

    name = "house_rules"

    async def compose(self, plan: ReplyPlan) -> None:
        plan.system_parts.insert(0, "House rules: answer in French.")

    def wants_upstream_hook(self, plan: ReplyPlan) -> bool:
        return True

    async def before_upstream(self, plan: ReplyPlan, call: UpstreamCall, emit: EmitEvent) -> None:
        call.params.temperature = 0.125
        emit(ReplyEvent("sources", {"sources": [], "query": None, "retrieval": "house"}))


class RefuseSecrets(Stage):
    name = "refuse_secrets"

    async def check(self, plan: ReplyPlan) -> None:
        if "classified" in plan.content:
            raise ChatNotFound()


def composer(parley: Parley) -> ReplyComposer:
    found: ReplyComposer = parley.app.state.generation.composer
    return found


def system_text(body: dict[str, Any]) -> str:
    return str(body["messages"][0]["content"])


# No chat titles: their requests to the upstream would count with the replies'.
@pytest.mark.parametrize("parley_overrides", [{"auto_title": False}])
class TestAddedStages:
    async def test_a_stage_added_to_the_list_shapes_every_reply(
        self, parley, author, chat, fake_upstream
    ):
        composer(parley).stages.append(HouseRules())
        async with parley.http.stream(
            "POST",
            f"/api/chats/{chat['id']}/messages",
            json={"content": "Hi"},
            headers={**author.headers, **SSE},
        ) as response:
            events = await collect_sse(response)
        names = [event.event for event in events]
        assert names.index("sources") < names.index("delta")
        async with websockets.connect(ws_url(parley, chat)) as socket:
            await socket.send(json.dumps({"type": "auth", "token": author.access_token}))
            await socket.send(json.dumps({"type": "message", "content": "Again"}))
            assert (await events_until_end(socket))[-1]["event"] == "done"
        generated = await parley.http.post(
            "/api/generate",
            json={"mode": "email", "prompt": "Hi", "params": {"purpose": "Ask for a day off"}},
            headers=author.headers,
        )
        assert generated.status_code == 200, generated.text
        assert len(fake_upstream.state.requests) == 3
        for body in fake_upstream.state.requests:
            assert system_text(body).startswith("House rules: answer in French.\n\n")
            assert body["temperature"] == 0.125
        # The chat's own prompt (here the default assistant one) still follows.
        assert len(system_text(fake_upstream.state.requests[0])) > len("House rules: ") + 30

    async def test_a_check_stage_refuses_before_anything_is_stored(
        self, parley, author, chat, fake_upstream
    ):
        composer(parley).stages.insert(0, RefuseSecrets())
        url = f"/api/chats/{chat['id']}/messages"
        refused = await parley.http.post(
            url, json={"content": "classified"}, headers=author.headers
        )
        assert refused.status_code == 404
        messages = await parley.http.get(url, headers=author.headers)
        assert messages.json()["items"] == []
        assert fake_upstream.state.requests == []
        sent = await parley.http.post(url, json={"content": "public"}, headers=author.headers)
        assert sent.status_code == 200, sent.text
