"""Parley as real processes: a stop crossing workers, SIGTERM and SIGKILL mid-stream."""

import os
import signal
import uuid

import httpx
import pytest
import redis

from tests.support.api import register
from tests.support.database import IN_CI
from tests.support.processes import server
from tests.support.sse import iter_sse
from tests.support.upstream_fixtures import new_chat, parley_settings, running_parley
from tests.support.wait import wait_until

REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
SSE = {"Accept": "text/event-stream"}


@pytest.fixture(scope="session")
def redis_url() -> str:
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
    except redis.RedisError as exc:
        message = f"Redis at {REDIS_URL} is unreachable: {exc!r}"
        if IN_CI:
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return REDIS_URL


def _settings(database, fake, **extra):
    return {
        "database_url": database.url,
        "llm_base_url": fake.base_url,
        "llm_model": "fake-model",
        "stream_checkpoint_seconds": 0.25,
        "stream_stale_seconds": 1,
        # Rate-limit counters in the shared Redis belong to this test alone.
        "rate_limit_key_prefix": f"parley-test-{uuid.uuid4().hex}",
        **extra,
    }


async def _wait_for_status(http, user, chat, wanted, timeout=10.0):
    items = []

    async def last_reply_in_wanted_status():
        nonlocal items
        response = await http.get(f"/api/chats/{chat['id']}/messages", headers=user.headers)
        items = response.json()["items"]
        return items[-1] if items and items[-1]["status"] in wanted else None

    return await wait_until(
        last_reply_in_wanted_status,
        timeout=timeout,
        interval=0.1,
        message=lambda: f"no reply reached {wanted}: {items}",
    )


async def long_reply(http, user, chat):
    """The SSE events of the reply to a new message, as they arrive."""
    async with http.stream(
        "POST",
        f"/api/chats/{chat['id']}/messages",
        json={"content": "Long"},
        headers={**user.headers, **SSE},
    ) as response:
        async for event in iter_sse(response):
            yield event


class TestStopAcrossWorkers:
    async def test_a_stop_sent_to_one_process_stops_the_stream_on_another(
        self, database, clean_db, fake_upstream, redis_url
    ):
        fake_upstream.state.tokens = 400
        fake_upstream.state.token_delay = 0.02
        settings = _settings(database, fake_upstream, redis_url=redis_url)
        async with (
            server(settings) as first,
            server(settings) as second,
            httpx.AsyncClient(base_url=first.base_url, timeout=20) as one,
            httpx.AsyncClient(base_url=second.base_url, timeout=20) as two,
        ):
            user = await register(one)
            chat = await new_chat(one, user)
            events = []
            async for event in long_reply(one, user, chat):
                events.append(event)
                if len(events) == 5:
                    # A second message in the same chat on the other worker is refused.
                    busy = await two.post(
                        f"/api/chats/{chat['id']}/messages",
                        json={"content": "Meanwhile"},
                        headers=user.headers,
                    )
                    assert busy.status_code == 409, busy.text
                    stop = await two.post(f"/api/chats/{chat['id']}/stop", headers=user.headers)
                    assert stop.json() == {"stopped": True}
        assert events[-1].event == "done" and events[-1].data["status"] == "cancelled"
        assert len([e for e in events if e.event == "delta"]) < 200


class TestSignals:
    async def test_sigterm_tells_streams_and_saves_their_partial_replies(
        self, database, clean_db, fake_upstream
    ):
        fake_upstream.state.tokens = 400
        fake_upstream.state.token_delay = 0.02
        async with (
            server(_settings(database, fake_upstream)) as parley,
            httpx.AsyncClient(base_url=parley.base_url, timeout=20) as http,
        ):
            user = await register(http)
            chat = await new_chat(http, user)
            events = []
            async for event in long_reply(http, user, chat):
                events.append(event)
                if len(events) == 10:
                    parley.signal(signal.SIGTERM)
            exit_code = await parley.wait(15)
        # uvicorn re-raises the signal it handled once it has shut down, hence -SIGTERM.
        assert exit_code in (0, -signal.SIGTERM)
        assert events[-1].event == "error"
        assert events[-1].data["code"] == "server_shutdown"
        saved = events[-1].data["saved"]
        received = "".join(e.data["content"] for e in events if e.event == "delta")
        assert saved["status"] == "cancelled" and saved["content"] == received

    async def test_sigkill_mid_stream_loses_at_most_two_seconds(
        self, database, clean_db, fake_upstream
    ):
        fake_upstream.state.tokens = 400
        fake_upstream.state.token_delay = 0.02  # 50 tokens a second
        settings = _settings(database, fake_upstream)
        async with (
            server(settings) as parley,
            httpx.AsyncClient(base_url=parley.base_url, timeout=20) as http,
        ):
            user = await register(http)
            chat = await new_chat(http, user)
            received = []
            with pytest.raises(httpx.HTTPError):
                async for event in long_reply(http, user, chat):
                    if event.event == "delta":
                        received.append(event.data["content"])
                    if len(received) == 100:
                        parley.signal(signal.SIGKILL)
        # The restarted server marks the reply interrupted once its last checkpoint is older than
        # stream_stale_seconds (1 s here), at start-up or in its periodic sweep.
        async with (
            server(settings) as restarted,
            httpx.AsyncClient(base_url=restarted.base_url, timeout=20) as http,
        ):
            reply = await _wait_for_status(http, user, chat, {"interrupted"})
            history = await http.get(f"/api/chats/{chat['id']}/messages", headers=user.headers)
        assert history.json()["items"][0]["content"] == "Long"  # the user's message survived
        saved_tokens = reply["content"].split()
        assert "".join(received).startswith(reply["content"])
        assert len(received) - len(saved_tokens) <= 2 * 50
        assert len(saved_tokens) > 0


class TestStopWithoutRedis:
    async def test_an_undeliverable_stop_is_503_not_a_false_success(
        self, database, clean_db, fake_upstream
    ):
        settings = parley_settings(database, fake_upstream, redis_url="redis://127.0.0.1:1/0")
        async with running_parley(settings) as parley:
            user = await register(parley.http)
            chat = await new_chat(parley.http, user)
            response = await parley.http.post(f"/api/chats/{chat['id']}/stop", headers=user.headers)
        assert response.status_code == 503, response.text
        assert response.json()["error"]["code"] == "service_unavailable"
