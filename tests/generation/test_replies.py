"""Sending messages and streaming replies through Parley from the fake upstream, over real HTTP."""

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import text

from tests.support.api import assert_error, register
from tests.support.sse import collect_sse, iter_sse, names, text_of
from tests.support.upstream_fixtures import new_chat, parley_settings, running_parley
from tests.support.wait import wait_until

SSE = {"Accept": "text/event-stream"}


async def send(parley, user, chat, content="Hi there", **body):
    return await parley.http.post(
        f"/api/chats/{chat['id']}/messages", json={"content": content, **body}, headers=user.headers
    )


async def stream(parley, user, chat, content="Hi there", **body):
    async with parley.http.stream(
        "POST",
        f"/api/chats/{chat['id']}/messages",
        json={"content": content, **body},
        headers={**user.headers, **SSE},
    ) as response:
        return response, await collect_sse(response)


async def thread(parley, user, chat):
    response = await parley.http.get(f"/api/chats/{chat['id']}/messages", headers=user.headers)
    assert response.status_code == 200, response.text
    return response.json()["items"]


class TestSendMessageSSE:
    async def test_streams_start_deltas_usage_done(self, parley, author, chat, fake_upstream):
        response, events = await stream(parley, author, chat)
        assert names(events)[0] == "start" and names(events)[-2:] == ["usage", "done"]
        assert set(names(events)[1:-2]) == {"delta"}
        assert text_of(events) == "Hello, world!"
        start, usage, done = events[0].data, events[-2].data, events[-1].data
        assert start["chat_id"] == chat["id"] and start["model"] == "fake-model"
        assert start["user_message"]["content"] == "Hi there"
        assert done["id"] == start["assistant_message_id"]
        assert done["status"] == "complete" and done["content"] == "Hello, world!"
        assert usage["completion_tokens"] == 4 and usage["prompt_tokens"] > 0
        assert usage["estimated"] is False
        assert response.headers["x-accel-buffering"] == "no"
        assert "no-cache" in response.headers["cache-control"]

    async def test_the_exchange_is_saved(self, parley, author, chat):
        await stream(parley, author, chat)
        saved = await thread(parley, author, chat)
        assert [(m["role"], m["content"], m["status"]) for m in saved] == [
            ("user", "Hi there", "complete"),
            ("assistant", "Hello, world!", "complete"),
        ]
        reply = saved[1]
        assert reply["model"] == "fake-model" and reply["completion_tokens"] == 4
        assert reply["time_to_first_token_ms"] is not None and reply["duration_ms"] is not None

    async def test_stream_flag_without_accept_header(self, parley, author, chat):
        async with parley.http.stream(
            "POST",
            f"/api/chats/{chat['id']}/messages",
            json={"content": "Hi", "stream": True},
            headers=author.headers,
        ) as response:
            events = await collect_sse(response)
        assert names(events)[-1] == "done"

    async def test_upstream_gets_the_openai_request(self, parley, author, fake_upstream):
        chat = await new_chat(
            parley.http, author, system_prompt="Be brief.", temperature=0.5, max_tokens=100
        )
        await stream(parley, author, chat, content="First")
        await stream(parley, author, chat, content="Second")
        body = fake_upstream.state.requests[-1]
        assert body["model"] == "fake-model" and body["stream"] is True
        assert body["stream_options"] == {"include_usage": True}
        assert body["temperature"] == 0.5 and body["max_tokens"] == 100
        assert [(m["role"], m["content"]) for m in body["messages"]] == [
            ("system", "Be brief."),
            ("user", "First"),
            ("assistant", "Hello, world!"),
            ("user", "Second"),
        ]

    async def test_missing_usage_is_estimated_and_flagged(
        self, parley, author, chat, fake_upstream
    ):
        fake_upstream.state.send_usage = False
        _, events = await stream(parley, author, chat)
        usage = next(e.data for e in events if e.event == "usage")
        assert usage["estimated"] is True and usage["completion_tokens"] > 0
        assert events[-1].data["usage_estimated"] is True


class TestSendMessageJSON:
    async def test_returns_the_saved_reply(self, parley, author, chat):
        response = await send(parley, author, chat)
        assert response.status_code == 200, response.text
        assert response.json()["content"] == "Hello, world!"
        assert response.json()["status"] == "complete"

    async def test_upstream_error_is_a_502_and_the_user_message_is_kept(
        self, parley, author, chat, fake_upstream
    ):
        fake_upstream.state.error_status = 400
        fake_upstream.state.error_body = '{"error": {"message": "max_tokens is too large"}}'
        response = await send(parley, author, chat)
        error = assert_error(response, 502, "upstream_http_error")
        assert "max_tokens is too large" in error["message"]
        saved = await thread(parley, author, chat)
        assert [(m["role"], m["status"]) for m in saved] == [
            ("user", "complete"),
            ("assistant", "failed"),
        ]

    async def test_unreachable_upstream(self, database, clean_db, fake_upstream):
        settings = parley_settings(database, fake_upstream, llm_base_url="http://127.0.0.1:9/v1")
        async with running_parley(settings) as parley:
            user = await register(parley.http)
            chat = await new_chat(parley.http, user)
            assert_error(await send(parley, user, chat), 502, "upstream_unavailable")

    async def test_first_token_timeout_is_504(self, database, clean_db, fake_upstream):
        fake_upstream.state.hang_before_headers = True
        settings = parley_settings(database, fake_upstream, llm_first_token_timeout=0.3)
        async with running_parley(settings) as parley:
            user = await register(parley.http)
            chat = await new_chat(parley.http, user)
            assert_error(await send(parley, user, chat), 504, "upstream_timeout")


class TestStreamFailures:
    @pytest.mark.parametrize(
        ("knob", "code"),
        [
            ("error_chunk_after", "upstream_stream_error"),
            ("drop_after", "upstream_incomplete"),
            ("malformed_after", "upstream_protocol_error"),
        ],
    )
    async def test_partial_text_is_saved_as_failed(
        self, parley, author, chat, fake_upstream, knob, code
    ):
        setattr(fake_upstream.state, knob, 2)
        _, events = await stream(parley, author, chat)
        assert names(events)[0] == "start" and names(events)[-1] == "error"
        assert events[-1].data["code"] == code
        assert text_of(events) == "Hello,"
        reply = (await thread(parley, author, chat))[-1]
        assert reply["status"] == "failed" and reply["content"] == "Hello,"
        assert reply["error_code"] == code

    async def test_done_without_finish_reason_is_cut_short(
        self, parley, author, chat, fake_upstream
    ):
        fake_upstream.state.send_finish = False
        _, events = await stream(parley, author, chat)
        assert events[-1].event == "error" and events[-1].data["code"] == "upstream_incomplete"

    async def test_error_before_the_first_token_is_an_error_event(
        self, parley, author, chat, fake_upstream
    ):
        fake_upstream.state.error_status = 500
        fake_upstream.state.error_body = 'Traceback (most recent call last):\n  File "/srv/x.py"'
        _, events = await stream(parley, author, chat)
        assert names(events) == ["start", "usage", "error"]
        assert "/srv" not in events[-1].data["message"]


class TestClientDisconnect:
    # With no grace for rejoining, a client going away stops its reply at once.
    @pytest.mark.parametrize("parley_overrides", [{"reply_resume_grace_seconds": 0}])
    async def test_upstream_is_closed_and_partial_reply_cancelled(
        self, parley, author, chat, fake_upstream
    ):
        fake_upstream.state.tokens = 200
        fake_upstream.state.token_delay = 0.02
        async with parley.http.stream(
            "POST",
            f"/api/chats/{chat['id']}/messages",
            json={"content": "Long one"},
            headers={**author.headers, **SSE},
        ) as response:
            seen = 0
            async for event in iter_sse(response):
                seen += event.event == "delta"
                if seen == 5:
                    break
        await wait_until(fake_upstream.state.disconnected.is_set)

        async def settled_reply() -> dict[str, Any] | None:
            reply = (await thread(parley, author, chat))[-1]
            return reply if reply["status"] != "streaming" else None

        reply = await wait_until(settled_reply)
        assert reply["status"] == "cancelled"
        assert reply["content"].startswith("tok0 tok1 tok2 tok3 tok4")


class TestStop:
    async def test_stop_ends_the_stream_and_keeps_the_text(
        self, parley, author, chat, fake_upstream
    ):
        fake_upstream.state.tokens = 500
        fake_upstream.state.token_delay = 0.02
        async with parley.http.stream(
            "POST",
            f"/api/chats/{chat['id']}/messages",
            json={"content": "Go"},
            headers={**author.headers, **SSE},
        ) as response:
            events = []
            async for event in iter_sse(response):
                events.append(event)
                if len(events) == 4:
                    stop = await parley.http.post(
                        f"/api/chats/{chat['id']}/stop", headers=author.headers
                    )
                    assert stop.json() == {"stopped": True}
        assert events[-1].event == "done"
        assert events[-1].data["status"] == "cancelled"
        assert events[-1].data["content"] == text_of(events)
        await wait_until(fake_upstream.state.disconnected.is_set)

    async def test_stop_with_nothing_running(self, parley, author, chat):
        response = await parley.http.post(f"/api/chats/{chat['id']}/stop", headers=author.headers)
        assert response.status_code == 200 and response.json() == {"stopped": False}

    async def test_a_chat_runs_one_reply_at_a_time(self, parley, author, chat, fake_upstream):
        fake_upstream.state.tokens = 100
        fake_upstream.state.token_delay = 0.02
        async with parley.http.stream(
            "POST",
            f"/api/chats/{chat['id']}/messages",
            json={"content": "One"},
            headers={**author.headers, **SSE},
        ) as response:
            async for event in iter_sse(response):
                if event.event == "delta":
                    second = await send(parley, author, chat, content="Two")
                    assert_error(second, 409, "generation_in_progress")
                    await parley.http.post(f"/api/chats/{chat['id']}/stop", headers=author.headers)
                    break
        messages = await thread(parley, author, chat)
        assert [m["content"] for m in messages if m["role"] == "user"] == ["One"]


class TestRegenerateAndEdit:
    async def test_regenerate_adds_a_sibling_reply(self, parley, author, chat, fake_upstream):
        await send(parley, author, chat)
        first = await thread(parley, author, chat)
        fake_upstream.state.tokens = ["Another", " answer"]
        response = await parley.http.post(
            f"/api/chats/{chat['id']}/messages/{first[1]['id']}/regenerate",
            headers=author.headers,
        )
        assert response.status_code == 200, response.text
        assert response.json()["content"] == "Another answer"
        assert response.json()["parent_id"] == first[0]["id"]
        current = await thread(parley, author, chat)
        assert [m["content"] for m in current] == ["Hi there", "Another answer"]
        # The upstream saw the question again, not the old answer.
        asked = [
            r["messages"]
            for r in fake_upstream.state.requests
            if r["messages"][-1]["content"] == "Hi there"
        ]
        assert len(asked) == 2 and asked[0] == asked[1]
        assert all(m["role"] != "assistant" for m in asked[1])

    async def test_edit_keeps_the_original_and_answers_the_new_text(self, parley, author, chat):
        await send(parley, author, chat, content="Original")
        original = await thread(parley, author, chat)
        response = await parley.http.patch(
            f"/api/chats/{chat['id']}/messages/{original[0]['id']}",
            json={"content": "Edited"},
            headers=author.headers,
        )
        assert response.status_code == 200, response.text
        current = await thread(parley, author, chat)
        assert [m["content"] for m in current] == ["Edited", "Hello, world!"]
        assert current[0]["id"] != original[0]["id"]
        old_branch = await parley.http.get(
            f"/api/chats/{chat['id']}/messages",
            params={"leaf_id": original[1]["id"]},
            headers=author.headers,
        )
        assert [m["content"] for m in old_branch.json()["items"]] == ["Original", "Hello, world!"]


class TestValidation:
    async def test_unknown_model(self, parley, author, chat):
        assert_error(await send(parley, author, chat, model="nope"), 404, "unknown_model")

    async def test_too_long_input_is_413(self, database, clean_db, fake_upstream):
        settings = parley_settings(database, fake_upstream, max_input_chars=10)
        async with running_parley(settings) as parley:
            user = await register(parley.http)
            chat = await new_chat(parley.http, user)
            response = await send(parley, user, chat, content="x" * 11)
            assert_error(response, 413, "input_too_large")
            assert fake_upstream.state.requests == []

    async def test_blocked_pattern(self, database, clean_db, fake_upstream):
        settings = parley_settings(database, fake_upstream, blocked_patterns=[r"secret\s+plan"])
        async with running_parley(settings) as parley:
            user = await register(parley.http)
            chat = await new_chat(parley.http, user)
            response = await send(parley, user, chat, content="the SECRET  plan")
            assert_error(response, 422, "input_blocked")

    async def test_history_is_trimmed_to_the_context_window(
        self, database, clean_db, fake_upstream
    ):
        settings = parley_settings(database, fake_upstream, llm_context_length=256)
        async with running_parley(settings) as parley:
            user = await register(parley.http)
            chat = await new_chat(parley.http, user, system_prompt="System rules.")
            for i in range(6):
                await send(parley, user, chat, content=f"message {i} " + "word " * 40)
            sent = fake_upstream.state.requests[-1]["messages"]
            assert sent[0] == {"role": "system", "content": "System rules."}
            assert sent[-1]["content"].startswith("message 5")
            assert not any(m["content"].startswith("message 0") for m in sent)

    async def test_other_users_chat_is_404_everywhere(self, parley, author, chat):
        stranger = await register(parley.http)
        await send(parley, author, chat)
        message_id = (await thread(parley, author, chat))[0]["id"]
        base = f"/api/chats/{chat['id']}"
        for method, path, body in [
            ("POST", f"{base}/messages", {"content": "x"}),
            ("PATCH", f"{base}/messages/{message_id}", {"content": "x"}),
            ("POST", f"{base}/messages/{message_id}/regenerate", None),
            ("POST", f"{base}/stop", None),
            ("POST", f"{base}/summarize", None),
        ]:
            response = await parley.http.request(method, path, json=body, headers=stranger.headers)
            assert response.status_code == 404, (method, path, response.text)


class TestTitleAndSummary:
    async def test_a_new_chat_gets_a_title_after_the_first_exchange(
        self, parley, author, chat, fake_upstream
    ):
        fake_upstream.state.tokens = ["Greeting", " exchange"]
        await send(parley, author, chat)

        async def title():
            got = await parley.http.get(f"/api/chats/{chat['id']}", headers=author.headers)
            return got.json()["title"]

        assert await wait_until(title) == "Greeting exchange"

    async def test_summarize_stores_the_summary(self, parley, author, chat, fake_upstream):
        await send(parley, author, chat)
        fake_upstream.state.tokens = ["A short", " summary."]
        response = await parley.http.post(
            f"/api/chats/{chat['id']}/summarize", headers=author.headers
        )
        assert response.status_code == 200, response.text
        assert response.json()["summary"] == "A short summary."
        got = await parley.http.get(f"/api/chats/{chat['id']}", headers=author.headers)
        assert got.json()["summary"] == "A short summary."


class TestPersistence:
    async def test_partial_text_is_checkpointed_while_streaming(
        self, parley, author, chat, fake_upstream, admin_engine
    ):
        fake_upstream.state.tokens = 100
        fake_upstream.state.token_delay = 0.02
        async with parley.http.stream(
            "POST",
            f"/api/chats/{chat['id']}/messages",
            json={"content": "Slow"},
            headers={**author.headers, **SSE},
        ) as response:
            deltas = 0
            async for event in iter_sse(response):
                deltas += event.event == "delta"
                if deltas == 40:  # ~0.8 s in, several 0.2 s checkpoints later
                    async with admin_engine.connect() as connection:
                        row = (
                            await connection.execute(
                                text(
                                    "SELECT status, content, error_code FROM message"
                                    " WHERE role='assistant'"
                                )
                            )
                        ).one()
                    assert row[0] == "streaming", row
                    assert row[1].startswith("tok0 tok1")
                    await parley.http.post(f"/api/chats/{chat['id']}/stop", headers=author.headers)
                    break

    async def test_replies_left_streaming_by_a_crash_become_interrupted(
        self, database, clean_db, fake_upstream, admin_engine
    ):
        settings = parley_settings(database, fake_upstream)
        async with running_parley(settings) as parley:
            user = await register(parley.http)
            chat = await new_chat(parley.http, user)
            await send(parley, user, chat)
        async with admin_engine.begin() as connection:
            await connection.execute(
                text(
                    "UPDATE message SET status='streaming', updated_at=:old WHERE role='assistant'"
                ),
                {"old": datetime(2020, 1, 1, tzinfo=UTC)},
            )
        async with running_parley(settings) as parley:
            reply = (await thread(parley, user, chat))[-1]
        assert reply["status"] == "interrupted" and reply["content"] == "Hello, world!"

    async def test_two_hundred_concurrent_streams_on_a_pool_of_five(
        self, database, clean_db, fake_upstream
    ):
        fake_upstream.state.tokens = 20
        fake_upstream.state.token_delay = 0.15
        settings = parley_settings(
            database,
            fake_upstream,
            db_pool_size=5,
            db_max_overflow=0,
            stream_checkpoint_seconds=2.0,  # the default: one write per stream every 2 s
        )
        async with running_parley(settings) as parley:
            user = await register(parley.http)
            chats = [await new_chat(parley.http, user) for _ in range(200)]
            results = await asyncio.gather(*(stream(parley, user, c) for c in chats))
        assert all(names(events)[-1] == "done" for _, events in results)
        # Most of them streamed at the same time (the rest were still queueing for the pool).
        assert fake_upstream.state.max_active_streams > 50
