"""POST /v1/chat/completions through the openai SDK: plain and streamed, usage, tool calls,
pass-through fields, content parts, the guardrails, and the generation history."""

import asyncio
import json
from typing import Any

import openai
import pytest

from tests.support.api import SignedInUser
from tests.support.fake_upstream import FakeUpstream
from tests.support.upstream_fixtures import Parley

HELLO: list[Any] = [{"role": "user", "content": "Say hello"}]
WEATHER_TOOL: Any = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}


class TestPlainCompletion:
    async def test_answer_and_usage(self, client: openai.AsyncOpenAI) -> None:
        answer = await client.chat.completions.create(model="fake-model", messages=HELLO)
        assert answer.object == "chat.completion" and answer.model == "fake-model"
        assert answer.choices[0].message.content == "Hello, world!"
        assert answer.choices[0].finish_reason == "stop"
        assert answer.usage is not None and answer.usage.completion_tokens == 4
        assert answer.usage.total_tokens == answer.usage.prompt_tokens + 4

    async def test_sync_client(self, sync_client: openai.OpenAI) -> None:
        answer = await asyncio.to_thread(
            sync_client.chat.completions.create, model="fake-model", messages=HELLO
        )
        assert answer.choices[0].message.content == "Hello, world!"

    async def test_the_clients_messages_go_upstream_as_sent(
        self, client: openai.AsyncOpenAI, fake_upstream: FakeUpstream
    ) -> None:
        messages: list[Any] = [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello."},
            {"role": "user", "content": "And now?"},
        ]
        await client.chat.completions.create(
            model="fake-model", messages=messages, temperature=0.3, max_tokens=50
        )
        sent = fake_upstream.state.requests[-1]
        assert sent["messages"] == messages
        assert sent["temperature"] == 0.3 and sent["max_tokens"] == 50

    async def test_appears_in_the_generation_history(
        self, client: openai.AsyncOpenAI, parley: Parley, author: SignedInUser
    ) -> None:
        await client.chat.completions.create(model="fake-model", messages=HELLO)
        history = await parley.http.get("/api/generations", headers=author.headers)
        items = history.json()["items"]
        assert len(items) == 1 and items[0]["prompt"] == "Say hello"
        assert items[0]["status"] == "complete" and items[0]["output"] == "Hello, world!"


class TestStreaming:
    async def test_chunks_end_with_usage_then_done(
        self, client: openai.AsyncOpenAI, fake_upstream: FakeUpstream
    ) -> None:
        stream = await client.chat.completions.create(
            model="fake-model",
            messages=HELLO,
            stream=True,
            stream_options={"include_usage": True},
        )
        chunks = [chunk async for chunk in stream]
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert text == "Hello, world!"
        assert chunks[0].choices[0].delta.role == "assistant"
        assert all(c.usage is None for c in chunks[:-1])
        last = chunks[-1]
        assert last.choices == [] and last.usage is not None
        assert last.usage.completion_tokens == 4
        assert [c.choices[0].finish_reason for c in chunks[:-1]][-1] == "stop"
        assert len({c.id for c in chunks}) == 1

    async def test_raw_stream_ends_with_done(self, parley: Parley, author: SignedInUser) -> None:
        body = {"model": "fake-model", "messages": HELLO, "stream": True}
        async with parley.http.stream(
            "POST", "/v1/chat/completions", json=body, headers=author.headers
        ) as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            assert response.headers["x-request-id"]
            lines = [line async for line in response.aiter_lines() if line.startswith("data:")]
        assert lines[-1] == "data: [DONE]"
        chunks = [json.loads(line[5:]) for line in lines[:-1]]
        assert all(chunk["usage"] is None for chunk in chunks)  # no include_usage: no usage
        assert all(chunk["choices"] for chunk in chunks)

    async def test_error_after_the_stream_started_raises_api_error(
        self, client: openai.AsyncOpenAI, fake_upstream: FakeUpstream
    ) -> None:
        fake_upstream.state.error_chunk_after = 2
        stream = await client.chat.completions.create(
            model="fake-model", messages=HELLO, stream=True
        )
        received: list[str] = []
        with pytest.raises(openai.APIError) as caught:
            async for chunk in stream:
                received.append(chunk.choices[0].delta.content or "")
        assert "The engine failed" in str(caught.value.message)
        assert "".join(received) == "Hello,"

    async def test_client_going_away_cancels_the_upstream_at_once(
        self, client: openai.AsyncOpenAI, fake_upstream: FakeUpstream
    ) -> None:
        fake_upstream.state.tokens = 200
        fake_upstream.state.token_delay = 0.05
        stream = await client.chat.completions.create(
            model="fake-model", messages=HELLO, stream=True
        )
        async for _chunk in stream:
            break
        await stream.close()
        await asyncio.wait_for(fake_upstream.state.disconnected.wait(), timeout=5)
        assert fake_upstream.state.disconnects == 1


class TestToolCalls:
    CALLS: list[dict[str, Any]] = [
        {"id": "call_1", "name": "get_weather", "arguments": ['{"city"', ': "Pa', 'ris"}']},
        {"id": "call_2", "name": "get_weather", "arguments": ['{"city": "Oslo"}']},
    ]

    async def test_deltas_are_relayed_exactly(
        self, client: openai.AsyncOpenAI, fake_upstream: FakeUpstream
    ) -> None:
        fake_upstream.state.tokens = []
        fake_upstream.state.tool_calls = self.CALLS
        stream = await client.chat.completions.create(
            model="fake-model",
            messages=HELLO,
            tools=[WEATHER_TOOL],
            tool_choice="auto",
            parallel_tool_calls=True,
            stream=True,
        )
        deltas = [
            call
            async for chunk in stream
            if chunk.choices
            for call in chunk.choices[0].delta.tool_calls or []
        ]
        seen = [(d.index, d.id, d.function and d.function.name) for d in deltas]
        assert seen == [
            (0, "call_1", "get_weather"),
            (0, None, None),
            (0, None, None),
            (0, None, None),
            (1, "call_2", "get_weather"),
            (1, None, None),
        ]
        fragments = [d.function.arguments for d in deltas if d.function and d.index == 0]
        assert fragments == ["", '{"city"', ': "Pa', 'ris"}']
        sent = fake_upstream.state.requests[-1]
        assert sent["tools"] == [WEATHER_TOOL] and sent["tool_choice"] == "auto"
        assert sent["parallel_tool_calls"] is True

    async def test_plain_answer_gathers_the_calls(
        self, client: openai.AsyncOpenAI, fake_upstream: FakeUpstream
    ) -> None:
        fake_upstream.state.tokens = []
        fake_upstream.state.tool_calls = self.CALLS
        answer = await client.chat.completions.create(
            model="fake-model", messages=HELLO, tools=[WEATHER_TOOL]
        )
        choice = answer.choices[0]
        assert choice.finish_reason == "tool_calls" and choice.message.content is None
        calls = choice.message.tool_calls or []
        assert [(c.id, c.function.name, c.function.arguments) for c in calls] == [  # type: ignore[union-attr]
            ("call_1", "get_weather", '{"city": "Paris"}'),
            ("call_2", "get_weather", '{"city": "Oslo"}'),
        ]

    async def test_tool_results_go_upstream(
        self, client: openai.AsyncOpenAI, fake_upstream: FakeUpstream
    ) -> None:
        messages: list[Any] = [
            {"role": "user", "content": "Weather in Paris?"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": "Sunny, 21 C"},
        ]
        await client.chat.completions.create(
            model="fake-model", messages=messages, tools=[WEATHER_TOOL]
        )
        sent = fake_upstream.state.requests[-1]["messages"]
        assert sent[1]["tool_calls"][0]["id"] == "call_1" and "content" not in sent[1]
        assert sent[2] == {"role": "tool", "tool_call_id": "call_1", "content": "Sunny, 21 C"}


class TestPassThrough:
    async def test_other_upstream_fields_pass_through(
        self, client: openai.AsyncOpenAI, fake_upstream: FakeUpstream
    ) -> None:
        schema: Any = {
            "type": "json_schema",
            "json_schema": {"name": "answer", "schema": {"type": "object"}},
        }
        await client.chat.completions.create(
            model="fake-model",
            messages=HELLO,
            seed=7,
            logprobs=True,
            response_format=schema,
            extra_body={"top_k": 20},
        )
        sent = fake_upstream.state.requests[-1]
        assert sent["seed"] == 7 and sent["logprobs"] is True and sent["top_k"] == 20
        assert sent["response_format"] == schema
        assert sent["stream_options"] == {"include_usage": True}

    async def test_images_reach_vision_models_only(
        self, client: openai.AsyncOpenAI, fake_upstream: FakeUpstream
    ) -> None:
        pixel = (
            "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4"
            "2mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
        )
        content: Any = [
            {"type": "text", "text": "What is this?"},
            {"type": "image_url", "image_url": {"url": pixel}},
        ]
        with pytest.raises(openai.UnprocessableEntityError) as caught:
            await client.chat.completions.create(
                model="fake-model", messages=[{"role": "user", "content": content}]
            )
        assert caught.value.code == "model_not_vision_capable"
        assert fake_upstream.state.requests == []


@pytest.mark.parametrize("parley_overrides", [{"llm_vision": True}])
class TestVision:
    async def test_content_parts_go_upstream(
        self, client: openai.AsyncOpenAI, fake_upstream: FakeUpstream
    ) -> None:
        pixel = (
            "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4"
            "2mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
        )
        content: Any = [
            {"type": "text", "text": "What is this?"},
            {"type": "image_url", "image_url": {"url": pixel}},
        ]
        await client.chat.completions.create(
            model="fake-model", messages=[{"role": "user", "content": content}]
        )
        parts = fake_upstream.state.parts[-1]
        assert [p.type for p in parts] == ["text", "image_url"]
        assert parts[1].media_type == "image/png"


class TestGuardrails:
    @pytest.mark.parametrize("parley_overrides", [{"blocked_patterns": ["forbidden"]}])
    async def test_blocked_input_is_400(
        self, client: openai.AsyncOpenAI, fake_upstream: FakeUpstream
    ) -> None:
        with pytest.raises(openai.APIStatusError) as caught:
            await client.chat.completions.create(
                model="fake-model", messages=[{"role": "user", "content": "a forbidden word"}]
            )
        assert caught.value.status_code in (400, 422)
        assert fake_upstream.state.requests == []

    @pytest.mark.parametrize(
        "parley_overrides",
        [{"blocked_patterns": ["world"], "guardrails_output": ["blocked_patterns"]}],
    )
    async def test_blocked_output_ends_with_content_filter(
        self, client: openai.AsyncOpenAI
    ) -> None:
        stream = await client.chat.completions.create(
            model="fake-model", messages=HELLO, stream=True
        )
        chunks = [chunk async for chunk in stream]
        assert chunks[-1].choices[0].finish_reason == "content_filter"
        text = "".join(c.choices[0].delta.content or "" for c in chunks)
        assert "world" not in text
        answer = await client.chat.completions.create(model="fake-model", messages=HELLO)
        assert answer.choices[0].finish_reason == "content_filter"
