"""Replies that survive a dropped connection, on one worker with the in-process buffer: event
ids, rejoining with Last-Event-ID, the disconnect grace, several viewers, Idempotency-Key."""

import asyncio
import json
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
import websockets
from sqlalchemy import text

from tests.support.api import assert_error, register
from tests.support.sse import collect_sse, iter_sse, names, text_of
from tests.support.upstream_fixtures import new_chat
from tests.support.wait import wait_until

SSE = {"Accept": "text/event-stream"}
# No automatic titles: the fake upstream then counts only the replies' requests.
NO_TITLES = {"auto_title": False}


@pytest.fixture
def parley_overrides():
    return NO_TITLES


def rejoin_url(chat, message_id):
    return f"/api/chats/{chat['id']}/messages/{message_id}/stream"


async def dropped_after(parley, user, chat, deltas, *, headers=None, content="Long one"):
    """Sends a message over SSE and drops the connection after `deltas` deltas; the events
    received."""
    received = []
    async with parley.http.stream(
        "POST",
        f"/api/chats/{chat['id']}/messages",
        json={"content": content},
        headers={**user.headers, **SSE, **(headers or {})},
    ) as response:
        assert response.status_code == 200, (await response.aread()).decode()
        async for event in iter_sse(response):
            received.append(event)
            if len([e for e in received if e.event == "delta"]) == deltas:
                break
    assert received[-1].event == "delta", "the reply ended before the connection was dropped"
    return received


async def rejoin(parley, user, chat, message_id, last_event_id=None, **params):
    headers = {**user.headers}
    if last_event_id is not None:
        headers["Last-Event-ID"] = str(last_event_id)
    async with parley.http.stream(
        "GET", rejoin_url(chat, message_id), headers=headers, params=params
    ) as response:
        return await collect_sse(response)


def assert_numbered(events):
    """Ids from 1, increasing: deltas a slow reader got joined carry the last part's id."""
    ids = [int(event.id) for event in events]
    assert ids[0] == 1 and ids == sorted(set(ids)), ids


async def saved_reply(parley, user, chat):
    async def settled():
        response = await parley.http.get(f"/api/chats/{chat['id']}/messages", headers=user.headers)
        reply = response.json()["items"][-1]
        return reply if reply["status"] != "streaming" else None

    return await wait_until(settled, timeout=10)


class TestEventIds:
    async def test_every_event_is_numbered_from_one(self, parley, author, chat):
        async with parley.http.stream(
            "POST",
            f"/api/chats/{chat['id']}/messages",
            json={"content": "Hi"},
            headers={**author.headers, **SSE},
        ) as response:
            events = await collect_sse(response)
        assert_numbered(events)

    async def test_stateless_generation_events_are_numbered(self, parley, author):
        async with parley.http.stream(
            "POST",
            "/api/generate",
            json={"mode": "chat", "prompt": "Hi"},
            headers={**author.headers, **SSE},
        ) as response:
            events = await collect_sse(response)
        assert events[-1].event == "done"
        assert_numbered(events)


class TestRejoin:
    async def test_rejoining_sends_exactly_the_missed_events(
        self, parley, author, chat, fake_upstream
    ):
        fake_upstream.state.tokens = 60
        fake_upstream.state.token_delay = 0.01
        first = await dropped_after(parley, author, chat, 5)
        message_id = first[0].data["assistant_message_id"]
        rest = await rejoin(parley, author, chat, message_id, last_event_id=first[-1].id)
        assert int(rest[0].id) > int(first[-1].id)
        assert names(rest)[-2:] == ["usage", "done"]
        done = rest[-1].data
        assert done["status"] == "complete"
        assert text_of(first) + text_of(rest) == done["content"]
        assert done["content"] == "".join(f"tok{i} " for i in range(60))
        assert len(fake_upstream.state.requests) == 1

    async def test_the_query_parameter_and_a_finished_reply(
        self, parley, author, chat, fake_upstream
    ):
        fake_upstream.state.tokens = 30
        fake_upstream.state.token_delay = 0.005
        first = await dropped_after(parley, author, chat, 3)
        message_id = first[0].data["assistant_message_id"]
        await saved_reply(parley, author, chat)
        rest = await rejoin(parley, author, chat, message_id, last_event_id=first[-1].id)
        assert text_of(first) + text_of(rest) == rest[-1].data["content"]
        again = await rejoin(parley, author, chat, message_id, last_event_id=first[-1].id)
        assert [(e.id, e.event, e.data) for e in again] == [(e.id, e.event, e.data) for e in rest]
        from_the_start = await rejoin(parley, author, chat, message_id, last_event_id=0)
        assert from_the_start[0].event == "start"
        assert text_of(from_the_start) == rest[-1].data["content"]

    async def test_a_delta_joined_for_a_slow_reader_carries_its_last_id(
        self, parley, author, chat, fake_upstream
    ):
        fake_upstream.state.tokens = 40
        fake_upstream.state.token_delay = 0.005
        first = await dropped_after(parley, author, chat, 1)
        await saved_reply(parley, author, chat)
        message_id = first[0].data["assistant_message_id"]
        # Everything is in the buffer: the missed deltas come joined, numbered as their last.
        rest = await rejoin(parley, author, chat, message_id, last_event_id=first[-1].id)
        deltas = [e for e in rest if e.event == "delta"]
        assert len(deltas) == 1
        assert int(rest[-2].id) == int(deltas[-1].id) + 1  # usage follows the last delta
        # Rejoining from that id sends nothing of the text again.
        after = await rejoin(parley, author, chat, message_id, last_event_id=deltas[-1].id)
        assert names(after) == ["usage", "done"]

    @pytest.mark.parametrize("parley_overrides", [{**NO_TITLES, "reply_buffer_seconds": 0.05}])
    async def test_after_the_buffer_expired_the_saved_reply_comes_at_once(
        self, parley, author, chat, fake_upstream
    ):
        first = await dropped_after(parley, author, chat, 1)
        message_id = first[0].data["assistant_message_id"]
        saved = await saved_reply(parley, author, chat)
        await wait_until(lambda: parley.runs.find(uuid.UUID(message_id)) is None)
        rest = await rejoin(parley, author, chat, message_id, last_event_id=first[-1].id)
        assert names(rest) == ["done"]
        assert rest[0].data["content"] == saved["content"] == "Hello, world!"
        assert int(rest[0].id) > int(first[-1].id)
        assert len(fake_upstream.state.requests) == 1

    async def test_a_reply_nobody_streams_gets_its_saved_state(self, parley, author, chat):
        # A reply left `streaming` by a worker that is gone: nothing to follow, nothing waits.
        await dropped_after(parley, author, chat, 1)
        saved = await saved_reply(parley, author, chat)
        parley.runs._by_id.clear()  # as on a worker that never streamed it
        rest = await rejoin(parley, author, chat, saved["id"])
        assert names(rest) == ["done"] and rest[0].data["content"] == saved["content"]

    async def test_another_users_reply_is_404(self, parley, author, chat):
        events = await dropped_after(parley, author, chat, 1)
        stranger = await register(parley.http)
        response = await parley.http.get(
            rejoin_url(chat, events[0].data["assistant_message_id"]), headers=stranger.headers
        )
        assert_error(response, 404, "chat_not_found")
        their_chat = await new_chat(parley.http, stranger)
        response = await parley.http.get(
            rejoin_url(their_chat, events[0].data["assistant_message_id"]),
            headers=stranger.headers,
        )
        assert_error(response, 404, "message_not_found")

    async def test_a_user_message_or_a_bad_id_is_refused(self, parley, author, chat):
        events = await dropped_after(parley, author, chat, 1)
        user_message = events[0].data["user_message"]["id"]
        response = await parley.http.get(rejoin_url(chat, user_message), headers=author.headers)
        assert_error(response, 404, "message_not_found")
        response = await parley.http.get(
            rejoin_url(chat, events[0].data["assistant_message_id"]),
            headers={**author.headers, "Last-Event-ID": "seven"},
        )
        assert_error(response, 400, "invalid_last_event_id")


class TestSeveralViewers:
    async def test_each_viewer_gets_every_event(self, parley, author, chat, fake_upstream):
        fake_upstream.state.tokens = 50
        fake_upstream.state.token_delay = 0.01
        async with parley.http.stream(
            "POST",
            f"/api/chats/{chat['id']}/messages",
            json={"content": "Long one"},
            headers={**author.headers, **SSE},
        ) as response:
            events = iter_sse(response)
            start = await anext(events)
            message_id = start.data["assistant_message_id"]
            tabs = [
                asyncio.create_task(rejoin(parley, author, chat, message_id, last_event_id=0))
                for _ in range(2)
            ]
            own = [start] + [event async for event in events]
        expected = "".join(f"tok{i} " for i in range(50))
        assert text_of(own) == expected
        for tab in await asyncio.gather(*tabs):
            assert tab[0].event == "start" and text_of(tab) == expected
            assert tab[-1].data["status"] == "complete"
        assert len(fake_upstream.state.requests) == 1


class TestDisconnectGrace:
    @pytest.mark.parametrize("parley_overrides", [{**NO_TITLES, "reply_resume_grace_seconds": 0.5}])
    async def test_without_a_rejoin_the_reply_is_cancelled_after_the_grace(
        self, parley, author, chat, fake_upstream
    ):
        fake_upstream.state.tokens = 1000
        fake_upstream.state.token_delay = 0.01
        await dropped_after(parley, author, chat, 2)
        await wait_until(fake_upstream.state.disconnected.is_set, timeout=10)
        reply = await saved_reply(parley, author, chat)
        assert reply["status"] == "cancelled" and reply["error_code"] == "client_disconnected"

    @pytest.mark.parametrize("parley_overrides", [{**NO_TITLES, "reply_resume_grace_seconds": 30}])
    async def test_a_rejoin_within_the_grace_keeps_the_reply_going(
        self, parley, author, chat, fake_upstream
    ):
        fake_upstream.state.tokens = 100
        fake_upstream.state.token_delay = 0.01
        first = await dropped_after(parley, author, chat, 2)
        rest = await rejoin(
            parley, author, chat, first[0].data["assistant_message_id"], first[-1].id
        )
        assert rest[-1].data["status"] == "complete"
        assert text_of(first) + text_of(rest) == "".join(f"tok{i} " for i in range(100))
        assert fake_upstream.state.disconnects == 0

    @pytest.mark.parametrize(
        "parley_overrides",
        [{**NO_TITLES, "reply_on_disconnect": "finish", "reply_resume_grace_seconds": 0}],
    )
    async def test_finish_completes_the_reply_with_nobody_watching(
        self, parley, author, chat, fake_upstream
    ):
        fake_upstream.state.tokens = 60
        fake_upstream.state.token_delay = 0.005
        await dropped_after(parley, author, chat, 2)
        reply = await saved_reply(parley, author, chat)
        assert reply["status"] == "complete"
        assert reply["content"] == "".join(f"tok{i} " for i in range(60))
        assert fake_upstream.state.disconnects == 0

    @pytest.mark.parametrize("parley_overrides", [{**NO_TITLES, "reply_on_disconnect": "finish"}])
    async def test_an_explicit_stop_still_stops_at_once(self, parley, author, chat, fake_upstream):
        fake_upstream.state.tokens = 1000
        fake_upstream.state.token_delay = 0.01
        await dropped_after(parley, author, chat, 2)
        stop = await parley.http.post(f"/api/chats/{chat['id']}/stop", headers=author.headers)
        assert stop.json() == {"stopped": True}
        await wait_until(fake_upstream.state.disconnected.is_set)
        assert (await saved_reply(parley, author, chat))["status"] == "cancelled"


def ws_url(parley, chat) -> str:
    return parley.base_url.replace("http://", "ws://") + f"/api/chats/{chat['id']}/ws"


async def next_frame(socket) -> dict:
    return json.loads(await asyncio.wait_for(socket.recv(), timeout=5))


class TestWebSocketResume:
    async def test_a_resume_frame_sends_the_missed_events(
        self, parley, author, chat, fake_upstream
    ):
        fake_upstream.state.tokens = 80
        fake_upstream.state.token_delay = 0.01
        async with websockets.connect(ws_url(parley, chat)) as socket:
            await socket.send(json.dumps({"type": "auth", "token": author.access_token}))
            await socket.send(json.dumps({"type": "message", "content": "Long"}))
            first = [await next_frame(socket) for _ in range(4)]
        ids = [frame["id"] for frame in first]
        assert ids[0] == 1 and ids == sorted(set(ids)), ids  # joined deltas may skip numbers
        reply_id = first[0]["data"]["assistant_message_id"]
        async with websockets.connect(ws_url(parley, chat)) as socket:
            await socket.send(json.dumps({"type": "auth", "token": author.access_token}))
            await socket.send(
                json.dumps({"type": "resume", "reply_id": reply_id, "last_event_id": ids[-1]})
            )
            rest: list[dict[str, Any]] = []
            while not rest or rest[-1]["event"] not in ("done", "error"):
                rest.append(await next_frame(socket))
        assert rest[0]["id"] > ids[-1]  # missed deltas may come joined, numbered as their last
        received = "".join(f["data"]["content"] for f in first + rest if f["event"] == "delta")
        assert rest[-1]["data"]["status"] == "complete"
        assert received == rest[-1]["data"]["content"]
        assert len(fake_upstream.state.requests) == 1


class TestIdempotencyKey:
    async def test_a_retried_send_gets_the_same_reply_and_no_second_generation(
        self, parley, author, chat, fake_upstream
    ):
        headers = {**author.headers, "Idempotency-Key": "send-1"}
        url = f"/api/chats/{chat['id']}/messages"
        first = await parley.http.post(url, json={"content": "Hi"}, headers=headers)
        again = await parley.http.post(url, json={"content": "Hi"}, headers=headers)
        assert first.status_code == again.status_code == 200, again.text
        assert again.json() == first.json()
        assert again.headers["idempotent-replayed"] == "true"
        assert len(fake_upstream.state.requests) == 1
        history = await parley.http.get(url, headers=author.headers)
        assert len(history.json()["items"]) == 2

    async def test_a_retry_after_a_dropped_stream_rejoins_it(
        self, parley, author, chat, fake_upstream
    ):
        fake_upstream.state.tokens = 60
        fake_upstream.state.token_delay = 0.01
        key = {"Idempotency-Key": f'"{uuid.uuid4()}"'}
        first = await dropped_after(parley, author, chat, 3, headers=key)
        async with parley.http.stream(
            "POST",
            f"/api/chats/{chat['id']}/messages",
            json={"content": "Long one"},
            headers={**author.headers, **SSE, **key, "Last-Event-ID": first[-1].id},
        ) as response:
            rest = await collect_sse(response)
        assert text_of(first) + text_of(rest) == rest[-1].data["content"]
        assert rest[-1].data["id"] == first[0].data["assistant_message_id"]
        assert len(fake_upstream.state.requests) == 1

    async def test_the_same_key_with_another_body_is_422(self, parley, author, chat):
        headers = {**author.headers, "Idempotency-Key": "k"}
        url = f"/api/chats/{chat['id']}/messages"
        assert (await parley.http.post(url, json={"content": "A"}, headers=headers)).is_success
        response = await parley.http.post(url, json={"content": "B"}, headers=headers)
        assert_error(response, 422, "idempotency_key_reused")

    async def test_keys_are_per_user(self, parley, author, chat, fake_upstream):
        other = await register(parley.http)
        their_chat = await new_chat(parley.http, other)
        for user, where in ((author, chat), (other, their_chat)):
            response = await parley.http.post(
                f"/api/chats/{where['id']}/messages",
                json={"content": "Hi"},
                headers={**user.headers, "Idempotency-Key": "same"},
            )
            assert response.status_code == 200, response.text
        assert len(fake_upstream.state.requests) == 2

    async def test_a_key_still_being_processed_is_409(self, parley, author, chat, admin_engine):
        url = f"/api/chats/{chat['id']}/messages"
        headers = {**author.headers, "Idempotency-Key": "busy"}
        assert (await parley.http.post(url, json={"content": "A"}, headers=headers)).is_success
        # As while the first attempt still prepares its reply: claimed, no reply yet.
        async with admin_engine.begin() as connection:
            await connection.execute(
                text("UPDATE idempotency_key SET reply_id = NULL, reply_kind = NULL")
            )
        response = await parley.http.post(url, json={"content": "A"}, headers=headers)
        assert_error(response, 409, "idempotency_key_in_progress")

    async def test_a_refused_attempt_frees_its_key(self, parley, author, chat, fake_upstream):
        url = f"/api/chats/{chat['id']}/messages"
        headers = {**author.headers, "Idempotency-Key": "retry-me"}
        refused = await parley.http.post(
            url, json={"content": "Hi", "model": "no-such-model"}, headers=headers
        )
        assert_error(refused, 404, "unknown_model")

        async def retried():
            response = await parley.http.post(
                url, json={"content": "Hi", "model": "no-such-model"}, headers=headers
            )
            return response if response.status_code != 409 else None

        assert_error(await wait_until(retried), 404, "unknown_model")

    async def test_an_invalid_key_is_400(self, parley, author, chat):
        response = await parley.http.post(
            f"/api/chats/{chat['id']}/messages",
            json={"content": "Hi"},
            headers={**author.headers, "Idempotency-Key": "x" * 256},
        )
        assert_error(response, 400, "invalid_idempotency_key")

    async def test_stateless_generation_and_regenerate(self, parley, author, chat, fake_upstream):
        headers = {**author.headers, "Idempotency-Key": "gen"}
        body = {"mode": "chat", "prompt": "Hi"}
        first = await parley.http.post("/api/generate", json=body, headers=headers)
        again = await parley.http.post("/api/generate", json=body, headers=headers)
        assert first.status_code == again.status_code == 200, again.text
        assert again.json()["id"] == first.json()["id"]
        assert len(fake_upstream.state.requests) == 1

        sent = await parley.http.post(
            f"/api/chats/{chat['id']}/messages", json={"content": "Hi"}, headers=author.headers
        )
        user_message = sent.json()["parent_id"]
        url = f"/api/chats/{chat['id']}/messages/{user_message}/regenerate"
        headers = {**author.headers, "Idempotency-Key": "regen"}
        one = await parley.http.post(url, headers=headers)
        two = await parley.http.post(url, headers=headers)
        assert one.status_code == two.status_code == 200, two.text
        assert one.json()["id"] == two.json()["id"]
        assert len(fake_upstream.state.requests) == 3


class TestIdempotencyKeyLifetime:
    async def test_an_expired_key_starts_a_new_reply(
        self, parley, author, chat, fake_upstream, admin_engine
    ):
        url = f"/api/chats/{chat['id']}/messages"
        headers = {**author.headers, "Idempotency-Key": "old"}
        first = await parley.http.post(url, json={"content": "Hi"}, headers=headers)
        async with admin_engine.begin() as connection:
            await connection.execute(
                text("UPDATE idempotency_key SET expires_at = :past"),
                {"past": datetime(2020, 1, 1, tzinfo=UTC)},
            )
        again = await parley.http.post(url, json={"content": "Hi"}, headers=headers)
        assert again.status_code == 200, again.text
        assert again.json()["id"] != first.json()["id"]
        assert "idempotent-replayed" not in again.headers
        assert len(fake_upstream.state.requests) == 2

    async def test_an_edit_retried_gets_the_same_reply(self, parley, author, chat, fake_upstream):
        sent = await parley.http.post(
            f"/api/chats/{chat['id']}/messages", json={"content": "Hi"}, headers=author.headers
        )
        url = f"/api/chats/{chat['id']}/messages/{sent.json()['parent_id']}"
        headers = {**author.headers, "Idempotency-Key": "edit"}
        one = await parley.http.patch(url, json={"content": "Hello"}, headers=headers)
        two = await parley.http.patch(url, json={"content": "Hello"}, headers=headers)
        assert one.status_code == two.status_code == 200, two.text
        assert one.json() == two.json()
        assert len(fake_upstream.state.requests) == 2
