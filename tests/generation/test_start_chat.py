"""POST /api/chats/start: a new chat and its first message in one call, against the fake upstream
over real HTTP; a refused send leaves no chat behind, a failed first reply keeps the chat and the
message (to retry)."""

import pytest

from tests.support.api import assert_error, register
from tests.support.sse import collect_sse, names, text_of
from tests.support.upstream_fixtures import parley_settings, running_parley

SSE = {"Accept": "text/event-stream"}


async def start(parley, user, **body):
    return await parley.http.post("/api/chats/start", json=body, headers=user.headers)


async def start_streaming(parley, user, *, accept=SSE, **body):
    async with parley.http.stream(
        "POST", "/api/chats/start", json=body, headers={**user.headers, **accept}
    ) as response:
        return response, await collect_sse(response)


async def chats_of(parley, user) -> list[dict]:
    response = await parley.http.get("/api/chats", headers=user.headers)
    assert response.status_code == 200, response.text
    return response.json()["items"]


async def thread(parley, user, chat_id):
    response = await parley.http.get(f"/api/chats/{chat_id}/messages", headers=user.headers)
    assert response.status_code == 200, response.text
    return [(m["role"], m["content"], m["status"]) for m in response.json()["items"]]


class TestStartChat:
    async def test_json_answer_is_the_reply_in_the_new_chat(self, parley, author, fake_upstream):
        response = await start(parley, author, title="Lisbon", content="Two days in Lisbon?")

        assert response.status_code == 200, response.text
        reply = response.json()
        assert reply["content"] == "Hello, world!" and reply["status"] == "complete"
        [chat] = await chats_of(parley, author)
        assert chat["id"] == reply["chat_id"]
        assert chat["title"] == "Lisbon"
        assert await thread(parley, author, chat["id"]) == [
            ("user", "Two days in Lisbon?", "complete"),
            ("assistant", "Hello, world!", "complete"),
        ]
        # The first request is the reply; the automatic title follows it.
        assert fake_upstream.state.requests[0]["messages"][-1] == {
            "role": "user",
            "content": "Two days in Lisbon?",
        }

    async def test_streams_like_a_normal_send(self, parley, author):
        response, events = await start_streaming(parley, author, content="Hi there")

        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        assert names(events)[0] == "start" and names(events)[-1] == "done"
        assert "delta" in names(events) and "usage" in names(events)
        assert text_of(events) == "Hello, world!"
        chat_id = events[0].data["chat_id"]
        assert events[0].data["user_message"]["content"] == "Hi there"
        assert events[-1].data["chat_id"] == chat_id
        assert [c["id"] for c in await chats_of(parley, author)] == [chat_id]

    async def test_stream_flag_in_the_body(self, parley, author):
        response, events = await start_streaming(
            parley, author, accept={}, content="Hi there", stream=True
        )
        assert response.headers["content-type"].startswith("text/event-stream")
        assert names(events)[-1] == "done"

    async def test_chat_settings_and_mode_are_kept(self, parley, author, fake_upstream):
        response = await start(
            parley,
            author,
            mode="email",
            mode_params={"purpose": "Ask for one more week", "tone": "formal"},
            temperature=0.3,
            content="To my manager, Sam.",
        )
        assert response.status_code == 200, response.text
        chat = (
            await parley.http.get(
                f"/api/chats/{response.json()['chat_id']}", headers=author.headers
            )
        ).json()
        assert chat["mode"] == "email" and chat["mode_params"]["tone"] == "formal"
        sent = fake_upstream.state.requests[0]
        assert sent["temperature"] == 0.3
        assert "formal" in sent["messages"][0]["content"]

    async def test_another_user_does_not_see_it(self, parley, author):
        response = await start(parley, author, content="Mine")
        stranger = await register(parley.http)
        assert await chats_of(parley, stranger) == []
        other = await parley.http.get(
            f"/api/chats/{response.json()['chat_id']}", headers=stranger.headers
        )
        assert_error(other, 404, "chat_not_found")


class TestRefusedFirstSendLeavesNoChat:
    @pytest.mark.parametrize(
        ("body", "status", "code"),
        [
            ({"content": ""}, 422, "validation_error"),
            ({}, 422, "validation_error"),
            ({"content": "Hi", "mode": "nope"}, 422, "unknown_mode"),
            ({"content": "Hi", "mode": "email", "mode_params": {"tone": "x"}}, 422, None),
            ({"content": "Hi", "model": "no-such-model"}, 404, "unknown_model"),
            ({"content": "x" * 50}, 413, "input_too_large"),
        ],
    )
    async def test_invalid_request(self, database, clean_db, fake_upstream, body, status, code):
        settings = parley_settings(database, fake_upstream, max_input_chars=40)
        async with running_parley(settings) as parley:
            user = await register(parley.http)
            response = await start(parley, user, **body)
            assert_error(response, status, code)
            assert await chats_of(parley, user) == []
        assert fake_upstream.state.requests == []

    async def test_over_quota(self, database, clean_db, fake_upstream):
        settings = parley_settings(database, fake_upstream, daily_token_quota=10)
        async with running_parley(settings) as parley:
            user = await register(parley.http)
            response = await start(parley, user, title="Too much", content="Hi there")
            assert_error(response, 429, "quota_exceeded")
            assert await chats_of(parley, user) == []
        assert fake_upstream.state.requests == []


class TestFailedFirstReplyKeepsTheChat:
    async def test_unreachable_upstream(self, database, clean_db, fake_upstream, caplog):
        settings = parley_settings(database, fake_upstream, llm_base_url="http://127.0.0.1:9/v1")
        async with running_parley(settings) as parley:
            user = await register(parley.http)
            response = await start(parley, user, content="Anyone there?")
            assert_error(response, 502, "upstream_unavailable")
            # Plain words for the person; the socket's own ("[Errno 111] ...") only in the log.
            message = response.json()["error"]["message"]
            assert message.startswith("The model server cannot be reached")
            assert "Errno" not in message and "refused" not in message.lower()
            [chat] = await chats_of(parley, user)
            assert await thread(parley, user, chat["id"]) == [
                ("user", "Anyone there?", "complete"),
                ("assistant", "", "failed"),
            ]

    async def test_upstream_error_before_the_first_token_as_sse(
        self, parley, author, fake_upstream
    ):
        fake_upstream.state.error_status = 500
        _, events = await start_streaming(parley, author, content="Hi there")

        assert names(events) == ["start", "usage", "error"]
        chat_id = events[0].data["chat_id"]
        error = events[-1].data
        assert error["chat_id"] == chat_id
        assert error["request_id"]
        assert error["saved"]["status"] == "failed"
        assert await thread(parley, author, chat_id) == [
            ("user", "Hi there", "complete"),
            ("assistant", "", "failed"),
        ]
        usage = (await parley.http.get("/api/usage", headers=author.headers)).json()
        assert usage["totals"]["prompt_tokens"] == 0

        # Retry: regenerating the failed reply answers the same message in the same chat.
        fake_upstream.state.error_status = None
        reply_id = events[0].data["assistant_message_id"]
        async with parley.http.stream(
            "POST",
            f"/api/chats/{chat_id}/messages/{reply_id}/regenerate",
            json={},
            headers={**author.headers, **SSE},
        ) as response:
            retried = await collect_sse(response)
        assert names(retried)[-1] == "done"
        assert await thread(parley, author, chat_id) == [
            ("user", "Hi there", "complete"),
            ("assistant", "Hello, world!", "complete"),
        ]

    async def test_a_reply_cut_short_after_its_first_token_keeps_the_chat(
        self, parley, author, fake_upstream
    ):
        fake_upstream.state.error_chunk_after = 2
        _, events = await start_streaming(parley, author, content="Hi there")

        assert names(events)[-1] == "error"
        chat_id = events[0].data["chat_id"]
        assert await thread(parley, author, chat_id) == [
            ("user", "Hi there", "complete"),
            ("assistant", "Hello,", "failed"),
        ]
