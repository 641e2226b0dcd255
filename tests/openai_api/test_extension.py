"""The `parley` body extension, for chat completions and for Responses: `chat_id` saves the
exchange into the caller's chat (another user's is 404), `collection_ids` adds retrieval and
answers with `parley.sources`. Also Idempotency-Key on /v1."""

from typing import Any

import openai
import pytest

from tests.knowledge.test_knowledge import WARRANTY, add, collection, settled, upload
from tests.openai_api.conftest import v1_url
from tests.support.api import SignedInUser, register
from tests.support.fake_upstream import FakeUpstream
from tests.support.upstream_fixtures import Parley, new_chat

QUESTION: list[Any] = [{"role": "user", "content": "Does the warranty cover water damage?"}]


async def messages_of(parley: Parley, user: SignedInUser, chat_id: str) -> list[dict[str, Any]]:
    response = await parley.http.get(f"/api/chats/{chat_id}/messages", headers=user.headers)
    assert response.status_code == 200, response.text
    return list(response.json()["items"])


async def manuals(parley: Parley, user: SignedInUser) -> tuple[dict[str, Any], dict[str, Any]]:
    coll = await collection(parley, user)
    file = await upload(parley, user, "manual.md", WARRANTY.encode())
    await add(parley, user, coll, file)
    [status] = await settled(parley, user, coll)
    assert status["status"] == "ready", status
    return coll, file


class TestChatId:
    async def test_chat_completion_is_saved_into_the_chat(
        self, client: openai.AsyncOpenAI, parley: Parley, author: SignedInUser
    ) -> None:
        chat = await new_chat(parley.http, author)
        answer = await client.chat.completions.create(
            model="fake-model",
            messages=[{"role": "user", "content": "Hello there"}],
            extra_body={"parley": {"chat_id": chat["id"]}},
        )
        extension: Any = answer.model_extra["parley"]  # type: ignore[index]
        assert extension["chat_id"] == chat["id"]
        saved = await messages_of(parley, author, chat["id"])
        assert [(m["role"], m["content"]) for m in saved] == [
            ("user", "Hello there"),
            ("assistant", "Hello, world!"),
        ]
        assert saved[-1]["id"] == extension["message_id"]

    async def test_streamed_response_is_saved_into_the_chat(
        self, client: openai.AsyncOpenAI, parley: Parley, author: SignedInUser
    ) -> None:
        chat = await new_chat(parley.http, author)
        stream = await client.responses.create(
            model="fake-model",
            input="Hello there",
            stream=True,
            extra_body={"parley": {"chat_id": chat["id"]}},
        )
        events = [event async for event in stream]
        assert events[-1].type == "response.completed"
        saved = await messages_of(parley, author, chat["id"])
        assert [m["content"] for m in saved] == ["Hello there", "Hello, world!"]

    async def test_another_users_chat_is_404(
        self, client: openai.AsyncOpenAI, parley: Parley, fake_upstream: FakeUpstream
    ) -> None:
        stranger = await register(parley.http)
        theirs = await new_chat(parley.http, stranger)
        with pytest.raises(openai.NotFoundError):
            await client.chat.completions.create(
                model="fake-model",
                messages=QUESTION,
                extra_body={"parley": {"chat_id": theirs["id"]}},
            )
        with pytest.raises(openai.NotFoundError):
            await client.responses.create(
                model="fake-model", input="hi", extra_body={"parley": {"chat_id": theirs["id"]}}
            )
        assert fake_upstream.state.requests == []
        assert await messages_of(parley, stranger, theirs["id"]) == []


class TestCollectionIds:
    async def test_chat_completion_retrieves_and_answers_sources(
        self,
        client: openai.AsyncOpenAI,
        parley: Parley,
        author: SignedInUser,
        fake_upstream: FakeUpstream,
    ) -> None:
        coll, file = await manuals(parley, author)
        answer = await client.chat.completions.create(
            model="fake-model",
            messages=QUESTION,
            extra_body={"parley": {"collection_ids": [coll["id"]]}},
        )
        extension: Any = answer.model_extra["parley"]  # type: ignore[index]
        assert extension["sources"][0]["file_id"] == file["id"]
        prompt = fake_upstream.state.requests[-1]["messages"][-1]["content"]
        assert "covers water damage for two years" in prompt

    async def test_streamed_chunks_carry_the_sources_first(
        self, client: openai.AsyncOpenAI, parley: Parley, author: SignedInUser
    ) -> None:
        coll, file = await manuals(parley, author)
        stream = await client.chat.completions.create(
            model="fake-model",
            messages=QUESTION,
            stream=True,
            extra_body={"parley": {"collection_ids": [coll["id"]]}},
        )
        chunks = [chunk async for chunk in stream]
        first: Any = chunks[0].model_extra
        assert first["parley"]["sources"][0]["file_id"] == file["id"]

    async def test_response_retrieves_and_answers_sources(
        self,
        client: openai.AsyncOpenAI,
        parley: Parley,
        author: SignedInUser,
        fake_upstream: FakeUpstream,
    ) -> None:
        coll, file = await manuals(parley, author)
        response = await client.responses.create(
            model="fake-model",
            input=QUESTION[0]["content"],
            extra_body={"parley": {"collection_ids": [coll["id"]]}},
        )
        extension: Any = response.model_extra["parley"]  # type: ignore[index]
        assert extension["sources"][0]["file_id"] == file["id"]
        prompt = fake_upstream.state.requests[-1]["messages"][-1]["content"]
        assert "covers water damage for two years" in prompt

    async def test_another_users_collection_is_404(
        self, client: openai.AsyncOpenAI, parley: Parley, fake_upstream: FakeUpstream
    ) -> None:
        stranger = await register(parley.http)
        theirs = await collection(parley, stranger)
        with pytest.raises(openai.NotFoundError):
            await client.chat.completions.create(
                model="fake-model",
                messages=QUESTION,
                extra_body={"parley": {"collection_ids": [theirs["id"]]}},
            )
        assert fake_upstream.state.requests == []


class TestIdempotencyKey:
    async def test_a_retried_request_starts_no_second_reply(
        self, parley: Parley, author: SignedInUser, fake_upstream: FakeUpstream
    ) -> None:
        async with openai.AsyncOpenAI(
            base_url=v1_url(parley),
            api_key=author.access_token,
            max_retries=0,
            default_headers={"Idempotency-Key": "retry-me-1"},
        ) as sdk:
            first = await sdk.chat.completions.create(model="fake-model", messages=QUESTION)
            again = await sdk.chat.completions.create(model="fake-model", messages=QUESTION)
        assert again.choices[0].message.content == first.choices[0].message.content
        assert again.id == first.id
        assert len(fake_upstream.state.requests) == 1
