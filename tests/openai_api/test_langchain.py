"""langchain-openai's ChatOpenAI against Parley's /v1: invoke, stream, and tool calls."""

from typing import Any

import pytest
from langchain_core.messages import AIMessageChunk, HumanMessage
from langchain_openai import ChatOpenAI

from tests.openai_api.conftest import v1_url
from tests.support.api import SignedInUser
from tests.support.fake_upstream import FakeUpstream
from tests.support.upstream_fixtures import Parley


@pytest.fixture
def chat_model(parley: Parley, author: SignedInUser) -> ChatOpenAI:
    return ChatOpenAI(
        model="fake-model",
        base_url=v1_url(parley),
        api_key=author.access_token,
        max_retries=0,
        stream_usage=True,
    )


class TestChatOpenAI:
    async def test_invoke(self, chat_model: ChatOpenAI) -> None:
        answer = await chat_model.ainvoke([HumanMessage("Say hello")])
        assert answer.content == "Hello, world!"
        assert answer.usage_metadata is not None
        assert answer.usage_metadata["output_tokens"] == 4

    async def test_stream_with_usage(self, chat_model: ChatOpenAI) -> None:
        chunks = [chunk async for chunk in chat_model.astream("Say hello")]
        assert "".join(str(c.content) for c in chunks) == "Hello, world!"
        total: Any = chunks[0]
        for chunk in chunks[1:]:
            total = total + chunk
        assert isinstance(total, AIMessageChunk)
        assert total.usage_metadata is not None and total.usage_metadata["output_tokens"] == 4

    async def test_tool_calls(self, chat_model: ChatOpenAI, fake_upstream: FakeUpstream) -> None:
        fake_upstream.state.tokens = []
        fake_upstream.state.tool_calls = [
            {"id": "call_1", "name": "get_weather", "arguments": ['{"city":', ' "Paris"}']}
        ]

        def get_weather(city: str) -> str:
            """The weather in a city."""
            return "sunny"

        bound = chat_model.bind_tools([get_weather])
        answer = await bound.ainvoke("Weather in Paris?")
        assert answer.tool_calls == [
            {"name": "get_weather", "args": {"city": "Paris"}, "id": "call_1", "type": "tool_call"}
        ]
        streamed: Any = None
        async for chunk in bound.astream("Weather in Paris?"):
            streamed = chunk if streamed is None else streamed + chunk
        assert streamed.tool_calls[0]["args"] == {"city": "Paris"}
