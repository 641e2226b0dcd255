"""POST /v1/responses and GET /v1/responses/{id} through the openai SDK: plain and streamed,
instructions, chaining with previous_response_id, function tools and calls, storage."""

import asyncio
from typing import Any

import openai
import pytest

from tests.openai_api.conftest import v1_url
from tests.support.api import register
from tests.support.fake_upstream import FakeUpstream
from tests.support.upstream_fixtures import Parley

WEATHER: Any = {
    "type": "function",
    "name": "get_weather",
    "description": "The weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
}


class TestCreateResponse:
    async def test_string_input_and_instructions(
        self, client: openai.AsyncOpenAI, fake_upstream: FakeUpstream
    ) -> None:
        response = await client.responses.create(
            model="fake-model", input="Say hello", instructions="Be brief."
        )
        assert response.status == "completed" and response.output_text == "Hello, world!"
        assert response.id.startswith("resp_")
        assert response.usage is not None and response.usage.output_tokens == 4
        sent = fake_upstream.state.requests[-1]["messages"]
        assert sent == [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Say hello"},
        ]

    async def test_sync_client(self, sync_client: openai.OpenAI) -> None:
        response = await asyncio.to_thread(
            sync_client.responses.create, model="fake-model", input="Say hello"
        )
        assert response.output_text == "Hello, world!"

    async def test_message_items(
        self, client: openai.AsyncOpenAI, fake_upstream: FakeUpstream
    ) -> None:
        await client.responses.create(
            model="fake-model",
            input=[
                {"role": "developer", "content": "Answer in French."},
                {"role": "user", "content": [{"type": "input_text", "text": "Hello"}]},
            ],
        )
        sent = fake_upstream.state.requests[-1]["messages"]
        assert sent[0] == {"role": "developer", "content": "Answer in French."}
        assert sent[1] == {"role": "user", "content": [{"type": "text", "text": "Hello"}]}

    async def test_unsupported_tool_is_400(self, client: openai.AsyncOpenAI) -> None:
        with pytest.raises(openai.BadRequestError) as caught:
            await client.responses.create(
                model="fake-model", input="hi", tools=[{"type": "web_search"}]
            )
        assert caught.value.param == "tools[0]"


class TestStreamedResponse:
    async def test_events_in_order(self, client: openai.AsyncOpenAI) -> None:
        stream = await client.responses.create(model="fake-model", input="Say hello", stream=True)
        events = [event async for event in stream]
        kinds = [event.type for event in events]
        assert kinds[0] == "response.created" and kinds[-1] == "response.completed"
        deltas = [e.delta for e in events if e.type == "response.output_text.delta"]
        assert "".join(deltas) == "Hello, world!"
        done = next(e for e in events if e.type == "response.output_text.done")
        assert done.text == "Hello, world!"
        assert kinds.index("response.output_text.done") > kinds.index("response.output_text.delta")
        numbers = [e.sequence_number for e in events]
        assert numbers == sorted(numbers)
        final = events[-1].response  # type: ignore[union-attr]
        assert final.output_text == "Hello, world!"

    async def test_the_sdks_stream_helper(self, client: openai.AsyncOpenAI) -> None:
        async with client.responses.stream(model="fake-model", input="Say hello") as stream:
            async for _event in stream:
                pass
            final = await stream.get_final_response()
        assert final.output_text == "Hello, world!"

    async def test_failure_is_response_failed(
        self, client: openai.AsyncOpenAI, fake_upstream: FakeUpstream
    ) -> None:
        fake_upstream.state.error_chunk_after = 1
        stream = await client.responses.create(model="fake-model", input="hi", stream=True)
        events: list[Any] = [event async for event in stream]
        assert events[-1].type == "response.failed"
        assert events[-1].response.error is not None

    async def test_function_call_items(
        self, client: openai.AsyncOpenAI, fake_upstream: FakeUpstream
    ) -> None:
        fake_upstream.state.tokens = []
        fake_upstream.state.tool_calls = [
            {"id": "call_1", "name": "get_weather", "arguments": ['{"city":', ' "Paris"}']}
        ]
        stream = await client.responses.create(
            model="fake-model", input="Weather in Paris?", tools=[WEATHER], stream=True
        )
        events = [event async for event in stream]
        kinds = [event.type for event in events]
        assert "response.function_call_arguments.delta" in kinds
        done = next(e for e in events if e.type == "response.function_call_arguments.done")
        assert done.arguments == '{"city": "Paris"}'
        final = events[-1].response  # type: ignore[union-attr]
        outputs: list[Any] = list(final.output)
        [call] = outputs
        assert call.type == "function_call" and call.call_id == "call_1"
        assert call.name == "get_weather"
        sent = fake_upstream.state.requests[-1]
        assert sent["tools"] == [
            {
                "type": "function",
                "function": {
                    "name": "get_weather",
                    "description": "The weather in a city",
                    "parameters": WEATHER["parameters"],
                },
            }
        ]


class TestChaining:
    async def test_previous_response_id_continues_the_conversation(
        self, client: openai.AsyncOpenAI, fake_upstream: FakeUpstream
    ) -> None:
        first = await client.responses.create(
            model="fake-model", input="My name is Ada.", instructions="Be brief."
        )
        fake_upstream.state.tokens = ["Ada", "!"]
        second = await client.responses.create(
            model="fake-model", input="What is my name?", previous_response_id=first.id
        )
        assert second.output_text == "Ada!" and second.previous_response_id == first.id
        sent = fake_upstream.state.requests[-1]["messages"]
        # Instructions are for their own turn only, as OpenAI does it.
        assert sent == [
            {"role": "user", "content": "My name is Ada."},
            {"role": "assistant", "content": "Hello, world!"},
            {"role": "user", "content": "What is my name?"},
        ]

    async def test_function_call_output_continues_a_tool_call(
        self, client: openai.AsyncOpenAI, fake_upstream: FakeUpstream
    ) -> None:
        fake_upstream.state.tokens = []
        fake_upstream.state.tool_calls = [
            {"id": "call_1", "name": "get_weather", "arguments": ['{"city": "Paris"}']}
        ]
        first = await client.responses.create(
            model="fake-model", input="Weather in Paris?", tools=[WEATHER]
        )
        fake_upstream.state.tool_calls = []
        fake_upstream.state.tokens = ["Sunny."]
        second = await client.responses.create(
            model="fake-model",
            previous_response_id=first.id,
            input=[{"type": "function_call_output", "call_id": "call_1", "output": "21 C, sun"}],
            tools=[WEATHER],
        )
        assert second.output_text == "Sunny."
        sent = fake_upstream.state.requests[-1]["messages"]
        assert sent[1]["tool_calls"][0]["id"] == "call_1"
        assert sent[2] == {"role": "tool", "tool_call_id": "call_1", "content": "21 C, sun"}

    async def test_unknown_previous_response_is_404(self, client: openai.AsyncOpenAI) -> None:
        with pytest.raises(openai.NotFoundError) as caught:
            await client.responses.create(
                model="fake-model", input="hi", previous_response_id="resp_nothing"
            )
        assert caught.value.param == "previous_response_id"


class TestStoredResponses:
    async def test_read_back(self, client: openai.AsyncOpenAI) -> None:
        created = await client.responses.create(model="fake-model", input="Say hello")
        read = await client.responses.retrieve(created.id)
        assert read.id == created.id and read.output_text == "Hello, world!"

    async def test_streamed_responses_are_stored_too(self, client: openai.AsyncOpenAI) -> None:
        stream = await client.responses.create(model="fake-model", input="hi", stream=True)
        events = [event async for event in stream]
        created = events[-1].response  # type: ignore[union-attr]
        read = await client.responses.retrieve(created.id)
        assert read.output_text == "Hello, world!"

    async def test_store_false_keeps_nothing(self, client: openai.AsyncOpenAI) -> None:
        created = await client.responses.create(model="fake-model", input="hi", store=False)
        with pytest.raises(openai.NotFoundError):
            await client.responses.retrieve(created.id)

    async def test_another_users_response_is_404(
        self, client: openai.AsyncOpenAI, parley: Parley
    ) -> None:
        created = await client.responses.create(model="fake-model", input="Say hello")
        stranger = await register(parley.http)
        async with openai.AsyncOpenAI(
            base_url=v1_url(parley), api_key=stranger.access_token, max_retries=0
        ) as theirs:
            with pytest.raises(openai.NotFoundError):
                await theirs.responses.retrieve(created.id)
            with pytest.raises(openai.NotFoundError):
                await theirs.responses.create(
                    model="fake-model", input="hi", previous_response_id=created.id
                )
