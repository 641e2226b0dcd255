"""Parley end to end on each upstream network backend (UPSTREAM_TRANSPORT=fast|httpx): the
stock httpx transport is the way back from the fast one, so both must carry every reply."""

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

from app.generation.upstream.transport import UpstreamTransportName
from tests.support.api import SignedInUser, register
from tests.support.database import TestDatabase
from tests.support.fake_upstream import FakeUpstream
from tests.support.sse import collect_sse, iter_sse, names, text_of
from tests.support.upstream_fixtures import Parley, new_chat, parley_settings, running_parley

SSE = {"Accept": "text/event-stream"}


@pytest.fixture
async def parley_on(
    database: TestDatabase,
    clean_db: object,
    fake_upstream: FakeUpstream,
    upstream_transport: UpstreamTransportName,
) -> AsyncIterator[Parley]:
    # No grace for rejoining: a client going away stops its reply at once.
    settings = parley_settings(
        database,
        fake_upstream,
        upstream_transport=upstream_transport,
        reply_resume_grace_seconds=0,
    )
    async with running_parley(settings) as running:
        yield running


@asynccontextmanager
async def reply_stream(parley: Parley, content: str) -> AsyncIterator[tuple[Any, Any]]:
    """A new user's new chat, and the SSE response to `content` sent in it."""
    user = await register(parley.http)
    chat = await new_chat(parley.http, user)
    async with parley.http.stream(
        "POST",
        f"/api/chats/{chat['id']}/messages",
        json={"content": content},
        headers={**user.headers, **SSE},
    ) as response:
        yield response, (user, chat)


async def test_a_reply_streams_and_is_saved(parley_on: Parley, fake_upstream: FakeUpstream) -> None:
    async with reply_stream(parley_on, "Hi there") as (response, _):
        events = await collect_sse(response)
    assert names(events)[0] == "start" and names(events)[-2:] == ["usage", "done"]
    assert text_of(events) == "Hello, world!"
    assert events[-1].data["status"] == "complete"
    assert events[-2].data["estimated"] is False
    ready = await parley_on.http.get("/health/ready")
    assert ready.status_code == 200, ready.text


async def test_a_client_going_away_closes_the_upstream(
    parley_on: Parley, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.state.tokens = 200
    fake_upstream.state.token_delay = 0.02
    async with reply_stream(parley_on, "Long one") as (response, (user, chat)):
        async for event in iter_sse(response):
            if event.event == "delta":
                break
    await asyncio.wait_for(fake_upstream.state.disconnected.wait(), timeout=2)
    await _reply_settled(parley_on, user, chat["id"])


async def test_upstream_errors_keep_their_codes(
    parley_on: Parley, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.state.error_status = 400
    fake_upstream.state.error_body = '{"error": {"message": "max_tokens is too large"}}'
    async with reply_stream(parley_on, "Hi") as (response, _):
        events = await collect_sse(response)
    assert names(events) == ["start", "usage", "error"]
    assert events[-1].data["code"] == "upstream_http_error"
    assert "max_tokens is too large" in events[-1].data["message"]


async def _reply_settled(parley: Parley, user: SignedInUser, chat_id: str) -> None:
    """Waits until the chat's reply is no longer streaming; it must end `cancelled`."""
    for _ in range(100):
        response = await parley.http.get(f"/api/chats/{chat_id}/messages", headers=user.headers)
        reply = response.json()["items"][-1]
        if reply["status"] != "streaming":
            assert reply["status"] == "cancelled"
            return
        await asyncio.sleep(0.02)
    raise AssertionError("the reply never left `streaming`")
