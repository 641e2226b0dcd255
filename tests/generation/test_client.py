"""The upstream client against a fake OpenAI-compatible server over real HTTP."""

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import aclosing
from dataclasses import dataclass

import httpx
import pytest
import uvicorn

from app.core.config import Settings
from app.generation.errors import (
    UpstreamError,
    UpstreamHTTPError,
    UpstreamIncomplete,
    UpstreamProtocolError,
    UpstreamStreamError,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from app.generation.prompt import estimate_tokens
from app.generation.upstream.echo import EchoProvider
from app.generation.upstream.errors import sanitise_upstream_message, upstream_message
from app.generation.upstream.openai import OpenAIProvider
from app.generation.upstream.sse import sse_lines as _lines
from app.generation.upstream.transport import build_http_client
from app.generation.upstream.types import Finish, ModelConfig, TextDelta, Usage
from app.generation.upstream.types import SamplingParams as GenerationParams
from app.generation.upstream.types import UpstreamEvent as StreamEvent
from tests.support.fake_upstream import FakeUpstream
from tests.support.wait import wait_until

MESSAGES = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Say hello"}]
FULL_TEXT = "Hello, world!"
TRACEBACK_BODY = (
    "Traceback (most recent call last):\n"
    '  File "/opt/venv/lib/python3.12/site-packages/vllm/entrypoints/api_server.py", line 42\n'
    "    raise RuntimeError('CUDA out of memory')\n"
    "RuntimeError: CUDA out of memory (see /opt/venv/lib/python3.12/site-packages/vllm/worker.py)\n"
)


@dataclass
class Outcome:
    events: list[StreamEvent]
    error: UpstreamError | None

    @property
    def text(self) -> str:
        return "".join(e.text for e in self.events if isinstance(e, TextDelta))


async def run(
    provider: OpenAIProvider | EchoProvider,
    model: ModelConfig,
    params: GenerationParams | None = None,
    messages: list[dict[str, str]] = MESSAGES,
) -> Outcome:
    """Consume a whole stream, keeping what arrived before an error like the real caller does."""
    events: list[StreamEvent] = []
    try:
        async for event in provider.stream(model, messages, params or GenerationParams()):
            events.append(event)
    except UpstreamError as exc:
        return Outcome(events, exc)
    return Outcome(events, None)


def with_timeouts(
    http_client: httpx.AsyncClient, *, first: float = 2.0, idle: float = 2.0
) -> OpenAIProvider:
    return OpenAIProvider(
        http_client, first_token_timeout=first, idle_timeout=idle, retry_backoff=0.01
    )


class TestHappyPath:
    async def test_text_then_usage_then_finish(
        self, provider: OpenAIProvider, model: ModelConfig
    ) -> None:
        outcome = await run(provider, model)
        assert outcome.error is None
        assert outcome.events == [
            TextDelta("Hello"),
            TextDelta(","),
            TextDelta(" world"),
            TextDelta("!"),
            Usage(prompt_tokens=4, completion_tokens=4),
            Finish("stop"),
        ]

    async def test_request_is_openai_streaming_with_usage(
        self, provider: OpenAIProvider, model: ModelConfig, fake_upstream: FakeUpstream
    ) -> None:
        await run(provider, model, GenerationParams(temperature=0.5, max_tokens=100))
        [body] = fake_upstream.state.requests
        assert body == {
            "model": "fake-model",
            "messages": MESSAGES,
            "stream": True,
            "stream_options": {"include_usage": True},
            "temperature": 0.5,
            "max_tokens": 100,
        }
        assert fake_upstream.state.headers[0]["authorization"] == "Bearer sk-test"

    async def test_no_authorization_without_api_key(
        self, provider: OpenAIProvider, model: ModelConfig, fake_upstream: FakeUpstream
    ) -> None:
        keyless = ModelConfig(**{**model.__dict__, "api_key": None})
        assert (await run(provider, keyless)).error is None
        assert "authorization" not in fake_upstream.state.headers[0]

    async def test_max_tokens_finishes_with_length(
        self, provider: OpenAIProvider, model: ModelConfig
    ) -> None:
        outcome = await run(provider, model, GenerationParams(max_tokens=2))
        assert outcome.text == "Hello,"
        assert outcome.events[-1] == Finish("length")

    async def test_reasoning_is_not_reply_text(
        self, provider: OpenAIProvider, model: ModelConfig, fake_upstream: FakeUpstream
    ) -> None:
        fake_upstream.state.reasoning = ["Let me think", " about it."]
        outcome = await run(provider, model)
        assert outcome.error is None
        assert outcome.text == FULL_TEXT

    async def test_pings_crlf_and_other_sse_fields_are_skipped(
        self, provider: OpenAIProvider, model: ModelConfig, fake_upstream: FakeUpstream
    ) -> None:
        state = fake_upstream.state
        state.crlf = True
        state.sse_fields = True
        state.ping_interval = 0.01
        state.first_token_delay = 0.05
        state.token_delay = 0.03
        outcome = await run(provider, model)
        assert outcome.error is None
        assert outcome.text == FULL_TEXT
        assert outcome.events[-2:] == [Usage(4, 4), Finish("stop")]

    async def test_slow_steady_stream_is_not_idle(
        self, http_client: httpx.AsyncClient, model: ModelConfig, fake_upstream: FakeUpstream
    ) -> None:
        # Five tokens 0.25 s apart: the reply lasts over a second, longer than the idle timeout,
        # though no gap between two tokens comes near it (a wide margin for a loaded machine).
        fake_upstream.state.tokens = 5
        fake_upstream.state.token_delay = 0.25
        outcome = await run(with_timeouts(http_client, first=0.8, idle=0.8), model)
        assert outcome.error is None
        assert outcome.text == "tok0 tok1 tok2 tok3 tok4 "
        assert outcome.events[-1] == Finish("stop")

    async def test_connection_is_reused(
        self, provider: OpenAIProvider, model: ModelConfig, fake_upstream: FakeUpstream
    ) -> None:
        for _ in range(3):
            assert (await run(provider, model)).error is None
        assert len(set(fake_upstream.state.client_ports)) == 1

    async def test_an_idle_connection_is_dropped_after_the_keepalive_expiry(
        self, model: ModelConfig, fake_upstream: FakeUpstream
    ) -> None:
        async with build_http_client(connect_timeout=2.0, keepalive_expiry=0.2) as client:
            provider = OpenAIProvider(client, first_token_timeout=2.0, idle_timeout=2.0)
            for pause in (0.0, 0.0, 0.4):
                await asyncio.sleep(pause)  # the idle time is what is tested: longer than 0.2 s
                assert (await run(provider, model)).error is None
        first, second, after_pause = fake_upstream.state.client_ports
        assert first == second != after_pause

    def test_idle_connections_are_dropped_before_a_uvicorn_upstream_drops_them(self) -> None:
        # vLLM serves with uvicorn: a connection it is closing must never be picked for a request.
        uvicorn_idle_timeout = uvicorn.Config(app="unused:app").timeout_keep_alive
        assert Settings.model_fields["llm_keepalive_seconds"].default < uvicorn_idle_timeout

    async def test_more_concurrent_streams_than_httpx_default_pool(
        self, http_client: httpx.AsyncClient, model: ModelConfig, fake_upstream: FakeUpstream
    ) -> None:
        fake_upstream.state.first_token_delay = 0.5
        # Generous timeouts: what is tested is the pool size, not the speed of a loaded machine.
        provider = OpenAIProvider(http_client, first_token_timeout=20, idle_timeout=20)
        outcomes = await asyncio.gather(*(run(provider, model) for _ in range(150)))
        assert all(o.error is None and o.text == FULL_TEXT for o in outcomes)
        assert fake_upstream.state.max_active_streams == 150


class TestUsage:
    async def test_no_usage_like_llama_cpp(
        self, provider: OpenAIProvider, model: ModelConfig, fake_upstream: FakeUpstream
    ) -> None:
        fake_upstream.state.send_usage = False
        outcome = await run(provider, model)
        assert outcome.error is None
        assert not any(isinstance(e, Usage) for e in outcome.events)
        assert outcome.events[-1] == Finish("stop")

    async def test_usage_alongside_choices_like_litellm(
        self, provider: OpenAIProvider, model: ModelConfig, fake_upstream: FakeUpstream
    ) -> None:
        fake_upstream.state.usage_with_choices = True
        outcome = await run(provider, model)
        assert outcome.events[-2:] == [Usage(4, 4), Finish("stop")]


class TestErrorFrames:
    @pytest.mark.parametrize("style", ["vllm", "flat", "litellm"])
    async def test_error_frame_ends_the_stream_after_partial_text(
        self, provider: OpenAIProvider, model: ModelConfig, fake_upstream: FakeUpstream, style: str
    ) -> None:
        fake_upstream.state.error_chunk_after = 2
        fake_upstream.state.error_chunk_style = style  # type: ignore[assignment]
        outcome = await run(provider, model)
        assert isinstance(outcome.error, UpstreamStreamError)
        assert outcome.error.code == "upstream_stream_error"
        assert outcome.error.status_code == 502
        assert "The engine failed" in outcome.error.message
        assert outcome.text == "Hello,"
        assert len(fake_upstream.state.requests) == 1

    async def test_error_frame_message_is_sanitised(
        self, provider: OpenAIProvider, model: ModelConfig, fake_upstream: FakeUpstream
    ) -> None:
        fake_upstream.state.error_chunk_after = 0
        fake_upstream.state.error_chunk_message = TRACEBACK_BODY
        outcome = await run(provider, model)
        assert isinstance(outcome.error, UpstreamStreamError)
        assert "CUDA out of memory" in outcome.error.message
        assert "Traceback" not in outcome.error.message
        assert "/opt/" not in outcome.error.message

    async def test_malformed_chunk_is_a_protocol_error(
        self, provider: OpenAIProvider, model: ModelConfig, fake_upstream: FakeUpstream
    ) -> None:
        fake_upstream.state.malformed_after = 1
        outcome = await run(provider, model)
        assert isinstance(outcome.error, UpstreamProtocolError)
        assert outcome.error.code == "upstream_protocol_error"
        assert outcome.text == "Hello"


class TestHTTPErrors:
    async def test_500_with_json_error_after_one_retry(
        self, provider: OpenAIProvider, model: ModelConfig, fake_upstream: FakeUpstream
    ) -> None:
        fake_upstream.state.error_status = 500
        outcome = await run(provider, model)
        assert isinstance(outcome.error, UpstreamHTTPError)
        assert outcome.error.code == "upstream_http_error"
        assert outcome.error.status_code == 502
        assert outcome.error.upstream_status == 500
        assert outcome.error.message == "The model server answered 500: Internal server error"
        assert outcome.events == []
        assert len(fake_upstream.state.requests) == 2

    async def test_500_plain_text_stack_trace_is_not_shown(
        self, provider: OpenAIProvider, model: ModelConfig, fake_upstream: FakeUpstream
    ) -> None:
        state = fake_upstream.state
        state.error_status = 500
        state.error_body = TRACEBACK_BODY
        state.error_content_type = "text/plain"
        outcome = await run(provider, model)
        assert isinstance(outcome.error, UpstreamHTTPError)
        message = outcome.error.message
        assert "RuntimeError: CUDA out of memory" in message
        for leak in ("Traceback", 'File "', "/opt/", "site-packages", "raise RuntimeError"):
            assert leak not in message

    async def test_401_is_not_retried(
        self, provider: OpenAIProvider, model: ModelConfig, fake_upstream: FakeUpstream
    ) -> None:
        fake_upstream.state.api_key = "sk-other"
        outcome = await run(provider, model)
        assert isinstance(outcome.error, UpstreamHTTPError)
        assert outcome.error.upstream_status == 401
        assert outcome.error.message == "The model server answered 401: Unauthorized"
        assert len(fake_upstream.state.requests) == 1

    async def test_400_detail_and_long_message_is_truncated(
        self, provider: OpenAIProvider, model: ModelConfig, fake_upstream: FakeUpstream
    ) -> None:
        fake_upstream.state.error_status = 400
        fake_upstream.state.error_body = '{"detail": "' + "too long " * 200 + '"}'
        outcome = await run(provider, model)
        assert isinstance(outcome.error, UpstreamHTTPError)
        assert "too long too long" in outcome.error.message
        assert len(outcome.error.message) < 560
        assert len(fake_upstream.state.requests) == 1

    async def test_connection_refused_is_unavailable(
        self, provider: OpenAIProvider, model: ModelConfig
    ) -> None:
        # A port held bound but not listening: connections are refused, and no other process
        # can start listening on it while the test runs.
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
            nowhere = ModelConfig(**{**model.__dict__, "base_url": f"http://127.0.0.1:{port}/v1"})
            outcome = await run(provider, nowhere)
            assert isinstance(outcome.error, UpstreamUnavailable)
            assert outcome.error.code == "upstream_unavailable"
            assert outcome.error.status_code == 502
            with pytest.raises(UpstreamUnavailable):
                await provider.list_models(nowhere)


class TestRetry:
    @pytest.mark.parametrize("status", [429, 503])
    async def test_retry_after_failed_first_attempt(
        self, provider: OpenAIProvider, model: ModelConfig, fake_upstream: FakeUpstream, status: int
    ) -> None:
        fake_upstream.state.error_status = status
        fake_upstream.state.faulty_requests = 1
        outcome = await run(provider, model)
        assert outcome.error is None
        assert outcome.text == FULL_TEXT
        assert len(fake_upstream.state.requests) == 2

    async def test_retry_after_drop_before_first_token(
        self, provider: OpenAIProvider, model: ModelConfig, fake_upstream: FakeUpstream
    ) -> None:
        fake_upstream.state.drop_after = 0
        fake_upstream.state.faulty_requests = 1
        outcome = await run(provider, model)
        assert outcome.error is None
        assert outcome.text == FULL_TEXT
        assert len(fake_upstream.state.requests) == 2

    async def test_no_retry_after_text(
        self, provider: OpenAIProvider, model: ModelConfig, fake_upstream: FakeUpstream
    ) -> None:
        fake_upstream.state.drop_after = 2
        fake_upstream.state.faulty_requests = 1  # a retry would succeed, and repeat the text
        outcome = await run(provider, model)
        assert isinstance(outcome.error, UpstreamIncomplete)
        assert outcome.text == "Hello,"
        assert len(fake_upstream.state.requests) == 1


class TestTimeouts:
    async def test_first_token_timeout_despite_pings(
        self, http_client: httpx.AsyncClient, model: ModelConfig, fake_upstream: FakeUpstream
    ) -> None:
        # Pings every 0.05 s, the first token after 5 s: were pings counted as activity, the
        # reply would succeed.
        fake_upstream.state.first_token_delay = 5
        fake_upstream.state.ping_interval = 0.05
        outcome = await run(with_timeouts(http_client, first=0.3), model)
        assert isinstance(outcome.error, UpstreamTimeout)
        assert outcome.error.status_code == 504
        assert outcome.error.code == "upstream_timeout"
        assert "0.3 s" in outcome.error.message
        assert outcome.text == ""
        assert len(fake_upstream.state.requests) == 1
        await wait_until(fake_upstream.state.disconnected.is_set)

    async def test_first_token_timeout_waiting_for_headers(
        self, http_client: httpx.AsyncClient, model: ModelConfig, fake_upstream: FakeUpstream
    ) -> None:
        fake_upstream.state.hang_before_headers = True
        outcome = await run(with_timeouts(http_client, first=0.3), model)
        assert isinstance(outcome.error, UpstreamTimeout)
        await wait_until(fake_upstream.state.disconnected.is_set)

    async def test_idle_timeout_mid_stream_despite_pings(
        self, http_client: httpx.AsyncClient, model: ModelConfig, fake_upstream: FakeUpstream
    ) -> None:
        fake_upstream.state.hang_after = 2
        fake_upstream.state.ping_interval = 0.05
        outcome = await run(with_timeouts(http_client, idle=0.3), model)
        assert isinstance(outcome.error, UpstreamTimeout)
        assert "mid-reply" in outcome.error.message
        assert outcome.text == "Hello,"
        await wait_until(fake_upstream.state.disconnected.is_set)

    async def test_idle_timeout_shorter_than_the_first_token_wait(
        self, http_client: httpx.AsyncClient, model: ModelConfig, fake_upstream: FakeUpstream
    ) -> None:
        fake_upstream.state.hang_after = 2
        outcome = await run(with_timeouts(http_client, first=5.0, idle=0.3), model)
        assert isinstance(outcome.error, UpstreamTimeout)
        # The idle deadline ended it, not the first-token one.
        assert "stopped sending for 0.3 s" in outcome.error.message
        assert outcome.text == "Hello,"

    async def test_a_slow_consumer_is_not_the_upstream_going_quiet(
        self, http_client: httpx.AsyncClient, model: ModelConfig, fake_upstream: FakeUpstream
    ) -> None:
        provider = with_timeouts(http_client, first=0.3, idle=0.3)
        events: list[StreamEvent] = []
        async for event in provider.stream(model, MESSAGES, GenerationParams()):
            events.append(event)
            await asyncio.sleep(0.4)  # longer than both timeouts, after every event
        assert "".join(e.text for e in events if isinstance(e, TextDelta)) == FULL_TEXT


class TestIncomplete:
    async def test_connection_dropped_mid_stream(
        self, provider: OpenAIProvider, model: ModelConfig, fake_upstream: FakeUpstream
    ) -> None:
        fake_upstream.state.drop_after = 3
        outcome = await run(provider, model)
        assert isinstance(outcome.error, UpstreamIncomplete)
        assert outcome.error.code == "upstream_incomplete"
        assert outcome.error.status_code == 502
        assert outcome.text == "Hello, world"

    async def test_done_without_finish_reason(
        self, provider: OpenAIProvider, model: ModelConfig, fake_upstream: FakeUpstream
    ) -> None:
        fake_upstream.state.send_finish = False
        outcome = await run(provider, model)
        assert isinstance(outcome.error, UpstreamIncomplete)
        assert outcome.text == FULL_TEXT

    async def test_empty_200(
        self, provider: OpenAIProvider, model: ModelConfig, fake_upstream: FakeUpstream
    ) -> None:
        fake_upstream.state.empty_body = True
        outcome = await run(provider, model)
        assert isinstance(outcome.error, UpstreamIncomplete)
        assert "empty" in outcome.error.message
        assert outcome.events == []
        assert len(fake_upstream.state.requests) == 1


class TestCancellation:
    async def test_closing_the_stream_disconnects_the_upstream(
        self, provider: OpenAIProvider, model: ModelConfig, fake_upstream: FakeUpstream
    ) -> None:
        fake_upstream.state.tokens = 100
        fake_upstream.state.token_delay = 0.02
        stream = provider.stream(model, MESSAGES, GenerationParams())
        assert isinstance(await anext(stream), TextDelta)
        assert isinstance(await anext(stream), TextDelta)
        await stream.aclose()
        await wait_until(fake_upstream.state.disconnected.is_set)
        assert fake_upstream.state.active_streams == 0
        assert fake_upstream.state.disconnects == 1

    async def test_breaking_out_of_aclosing_disconnects_the_upstream(
        self, provider: OpenAIProvider, model: ModelConfig, fake_upstream: FakeUpstream
    ) -> None:
        fake_upstream.state.hang_after = 1
        async with aclosing(provider.stream(model, MESSAGES, GenerationParams())) as stream:
            async for _ in stream:
                break
        await wait_until(fake_upstream.state.disconnected.is_set)
        assert fake_upstream.state.active_streams == 0

    async def test_cancelling_the_consumer_disconnects_the_upstream(
        self, provider: OpenAIProvider, model: ModelConfig, fake_upstream: FakeUpstream
    ) -> None:
        fake_upstream.state.hang_after = 1
        first = asyncio.Event()

        async def consume() -> None:
            async for _ in provider.stream(model, MESSAGES, GenerationParams()):
                first.set()

        task = asyncio.create_task(consume())
        await wait_until(first.is_set)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await wait_until(fake_upstream.state.disconnected.is_set)


class TestListModels:
    async def test_lists_upstream_models(
        self, provider: OpenAIProvider, model: ModelConfig, fake_upstream: FakeUpstream
    ) -> None:
        fake_upstream.state.models = ["llama-3", "qwen-2"]
        assert await provider.list_models(model) == ["llama-3", "qwen-2"]


ECHO = ModelConfig(
    name="echo",
    base_url=None,
    api_key=None,
    upstream_model="echo",
    context_length=8192,
    provider="echo",
)


class TestEchoProvider:
    async def test_deterministic_word_stream(self) -> None:
        echo = EchoProvider(delay=0)
        messages = [
            {"role": "user", "content": "first"},
            {"role": "assistant", "content": "Echo: first"},
            {"role": "user", "content": " hello  there\nworld "},
        ]
        first, second = (
            await run(echo, ECHO, messages=messages),
            await run(echo, ECHO, messages=messages),
        )
        assert first == second
        assert first.events == [
            TextDelta("Echo: "),
            TextDelta("hello  "),
            TextDelta("there\n"),
            TextDelta("world"),
            Finish("stop"),
        ]

    async def test_max_tokens_and_pace(self) -> None:
        """Two tokens 0.02 s apart: a timer due 0.03 s from now fires before the second one,
        however busy the machine (asyncio runs timers in the order they fall due), and after the
        reply would have ended had it not been paced."""
        events: list[StreamEvent] = []
        tokens_when_the_timer_fired: list[int] = []
        asyncio.get_running_loop().call_later(
            0.03, lambda: tokens_when_the_timer_fired.append(len(events))
        )
        messages = [{"role": "user", "content": "one two three"}]
        async for event in EchoProvider(delay=0.02).stream(
            ECHO, messages, GenerationParams(max_tokens=2)
        ):
            events.append(event)
        assert events == [TextDelta("Echo: "), TextDelta("one "), Finish("length")]
        [tokens_seen] = tokens_when_the_timer_fired
        assert tokens_seen < 2

    async def test_lists_itself(self) -> None:
        assert await EchoProvider().list_models(ECHO) == ["echo"]


class TestUpstreamMessages:
    @pytest.mark.parametrize(
        "body",
        [
            '{"error": {"message": "model not found", "type": "NotFoundError"}}',
            '{"error": "model not found"}',
            '{"detail": "model not found"}',
            '{"message": "model not found"}',
            "model not found",
        ],
    )
    def test_extracts_the_message_from_every_shape(self, body: str) -> None:
        assert upstream_message(body) == "model not found"

    def test_structured_detail_is_kept(self) -> None:
        message = upstream_message('{"detail": [{"loc": ["body"], "msg": "field required"}]}')
        assert "field required" in message

    def test_paths_go_but_urls_stay(self) -> None:
        message = sanitise_upstream_message(
            "cannot open /var/lib/models/llama.gguf, see https://example.com/docs/errors or "
            r"C:\models\llama.gguf"
        )
        assert "/var/lib" not in message
        assert "C:\\models" not in message
        assert "https://example.com/docs/errors" in message

    def test_html_error_page(self) -> None:
        page = "<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>"
        assert upstream_message(page) == "502 Bad Gateway nginx"

    def test_empty_body(self) -> None:
        assert upstream_message("") == "no details given"


def test_estimate_tokens() -> None:
    assert estimate_tokens("") == 0
    assert estimate_tokens("a") == 1
    assert estimate_tokens("a" * 40) == 10


class TestLineSplitting:
    """The SSE body arrives in chunks cut anywhere; lines must come out whole."""

    @staticmethod
    async def lines_of(*chunks: bytes) -> list[str]:
        async def body() -> AsyncIterator[bytes]:
            for chunk in chunks:
                yield chunk

        response = httpx.Response(200, content=body())
        return [line async for line in _lines(response)]

    async def test_chunks_cut_mid_line_join_up(self) -> None:
        assert await self.lines_of(b'data: {"a"', b":1}\n\nda", b"ta: [DONE]\n\n") == [
            'data: {"a":1}',
            "",
            "data: [DONE]",
            "",
        ]

    async def test_crlf_and_lone_cr_end_lines(self) -> None:
        lines = await self.lines_of(b"data: 1\r\n\r\ndata: 2\r\rdata: 3\n")
        assert [line for line in lines if line] == ["data: 1", "data: 2", "data: 3"]

    async def test_crlf_split_between_chunks_adds_only_a_blank_line(self) -> None:
        lines = await self.lines_of(b"data: 1\r", b"\ndata: 2\r\n")
        assert [line for line in lines if line] == ["data: 1", "data: 2"]

    async def test_a_character_split_between_chunks_survives(self) -> None:
        encoded = "data: héllo ✓\n".encode()
        cut = encoded.index("✓".encode()) + 1
        assert await self.lines_of(encoded[:cut], encoded[cut:]) == ["data: héllo ✓"]

    async def test_last_line_without_a_break_is_kept(self) -> None:
        assert await self.lines_of(b"data: 1\ndata: [DO", b"NE]") == ["data: 1", "data: [DONE]"]
