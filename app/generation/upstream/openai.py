"""The provider that calls an upstream: OpenAI Chat Completions with `stream: true`.

Speaks to OpenAI, vLLM, llama.cpp's server, LiteLLM and any other OpenAI-compatible server over
the app's one shared HTTP client (transport.py). A failed attempt is retried once, and only
before the first token; every read is bounded by the first-token and idle deadlines.
"""

import asyncio
import math
from collections.abc import AsyncGenerator
from contextlib import AsyncExitStack, aclosing, suppress
from typing import Any

import httpx

from app.generation.errors import (
    UpstreamError,
    UpstreamIncomplete,
    UpstreamProtocolError,
    UpstreamTimeout,
)
from app.generation.upstream.errors import http_error, read_error_body, unavailable
from app.generation.upstream.sse import (
    choice_of,
    parse_chunk,
    raise_if_error_frame,
    sse_lines,
    tool_calls_of,
    usage_of,
)
from app.generation.upstream.types import (
    ChatMessage,
    Finish,
    ModelConfig,
    SamplingParams,
    TextDelta,
    UpstreamEvent,
    Usage,
)

_DRAIN_TIMEOUT = 1.0
# Statuses that say "try again shortly" rather than "this request is wrong".
_RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


class _Retryable(Exception):
    """Carries an error that is worth one more attempt if nothing has been yielded yet."""

    def __init__(self, error: UpstreamError):
        super().__init__(str(error))
        self.error = error


class OpenAIProvider:
    """An upstream speaking the OpenAI Chat Completions API: OpenAI, vLLM, llama.cpp, LiteLLM."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        first_token_timeout: float,
        idle_timeout: float,
        retry_backoff: float = 0.25,
        request_timeout: float = 10.0,
        attempts: int = 2,
    ):
        self._http = http
        self._first_token_timeout = first_token_timeout
        self._idle_timeout = idle_timeout
        self._retry_backoff = retry_backoff
        self._request_timeout = request_timeout
        # Attempts per stream before the first token: 2 on its own, 1 under the router, which
        # tries another deployment instead (routed.py).
        self._attempts = attempts

    async def list_models(self, model: ModelConfig) -> list[str]:
        """GET {base_url}/models and return the ids listed there."""
        url = f"{_base_url(model)}/models"
        try:
            async with asyncio.timeout(self._request_timeout):
                response = await self._http.get(url, headers=_auth_headers(model))
        except TimeoutError as exc:
            raise UpstreamTimeout("The model server did not list its models in time.") from exc
        except httpx.TransportError as exc:
            raise unavailable(exc) from exc
        if not response.is_success:
            raise http_error(response.status_code, response.text)
        try:
            return [str(entry["id"]) for entry in response.json()["data"]]
        except (ValueError, KeyError, TypeError) as exc:
            raise UpstreamProtocolError("The model server's model list has an odd shape.") from exc

    async def complete(
        self,
        model: ModelConfig,
        messages: list[ChatMessage],
        *,
        max_tokens: int,
        extra: dict[str, Any] | None = None,
    ) -> str:
        """POST {base_url}/chat/completions, not streamed: the answer's text (the guard model's
        verdicts). One attempt, bounded by the caller's deadline."""
        body: dict[str, Any] = {
            "model": model.upstream_model,
            "messages": messages,
            "stream": False,
            "max_tokens": max_tokens,
            "temperature": 0,
            **(extra or {}),
        }
        data = await self._post_json(f"{_base_url(model)}/chat/completions", body, model)
        try:
            content = data["choices"][0]["message"]["content"]
        except (KeyError, IndexError, TypeError) as exc:
            raise UpstreamProtocolError("The model server's answer has an odd shape.") from exc
        return str(content or "")

    async def moderate(self, model: ModelConfig, text: str) -> dict[str, Any]:
        """POST {base_url}/moderations (OpenAI's moderation endpoint): its JSON answer."""
        return await self._post_json(
            f"{_base_url(model)}/moderations", {"model": model.upstream_model, "input": text}, model
        )

    async def _post_json(self, url: str, body: dict[str, Any], model: ModelConfig) -> Any:
        try:
            response = await self._http.post(url, json=body, headers=_auth_headers(model))
        except httpx.TransportError as exc:
            raise unavailable(exc) from exc
        if not response.is_success:
            raise http_error(
                response.status_code, response.text, response.headers.get("retry-after")
            )
        try:
            return response.json()
        except ValueError as exc:
            raise UpstreamProtocolError("The model server's answer is not JSON.") from exc

    async def stream(
        self, model: ModelConfig, messages: list[ChatMessage], params: SamplingParams
    ) -> AsyncGenerator[UpstreamEvent, None]:
        """POST {base_url}/chat/completions with stream: true and yield its events."""
        body: dict[str, Any] = {
            "model": model.upstream_model,
            "messages": messages,
            "stream": True,
            # Ignored by servers that never report usage in a stream (llama.cpp); the caller
            # estimates then.
            "stream_options": {"include_usage": True},
            **params.as_body(),
        }
        if "stream_options" in params.extra:  # the caller's, with usage always asked for
            body["stream_options"] = {**params.extra["stream_options"], "include_usage": True}
        url = f"{_base_url(model)}/chat/completions"
        headers = {"Accept": "text/event-stream", **_auth_headers(model)}
        for attempt in range(1, self._attempts + 1):
            yielded = False
            try:
                # aclosing: if our consumer stops, the attempt and its HTTP response close now,
                # which is what makes vLLM abort the generation.
                async with aclosing(self._attempt(url, body, headers)) as events:
                    async for event in events:
                        yielded = True
                        yield event
                return
            except _Retryable as failure:
                # Once anything has reached the consumer a retry would repeat or contradict it.
                if yielded or attempt == self._attempts:
                    raise failure.error from failure.__cause__
            await asyncio.sleep(self._retry_backoff)

    async def _attempt(
        self, url: str, body: dict[str, Any], headers: dict[str, str]
    ) -> AsyncGenerator[UpstreamEvent, None]:
        loop = asyncio.get_running_loop()
        # The first-token deadline covers sending the request and waiting for headers too: some
        # servers only answer once the prompt is processed.
        deadline = loop.time() + self._first_token_timeout
        async with AsyncExitStack() as stack:
            try:
                async with asyncio.timeout_at(deadline):
                    response = await stack.enter_async_context(
                        self._http.stream("POST", url, json=body, headers=headers)
                    )
            except TimeoutError as exc:
                raise self._timeout(first=True) from exc
            except httpx.TransportError as exc:
                raise _Retryable(unavailable(exc)) from exc

            if not response.is_success:
                try:
                    async with asyncio.timeout(self._idle_timeout):
                        text = await read_error_body(response)
                except (TimeoutError, httpx.TransportError):
                    text = ""
                error = http_error(response.status_code, text, response.headers.get("retry-after"))
                if response.status_code in _RETRY_STATUSES:
                    raise _Retryable(error)
                raise error

            async with aclosing(self._read_events(response, deadline)) as events:
                async for event in events:
                    yield event

    async def _read_events(
        self, response: httpx.Response, deadline: float
    ) -> AsyncGenerator[UpstreamEvent, None]:
        loop = asyncio.get_running_loop()
        lines = sse_lines(response)
        usage: Usage | None = None
        finish: Finish | None = None
        saw_data = False
        saw_done = False
        # One deadline for the whole stream, moved on after each data frame. It is held while an
        # event is out with the consumer, so a slow consumer never eats the upstream's time (and
        # is never cancelled by our timer).
        try:
            async with asyncio.timeout(None) as timer, _Deadline(timer, deadline) as progress:
                while not saw_done:
                    try:
                        line = await anext(lines)
                    except StopAsyncIteration:
                        break
                    except httpx.TimeoutException as exc:
                        raise self._timeout(first=not saw_data) from exc
                    except httpx.TransportError as exc:
                        if finish is not None:
                            break  # the reply was complete; at most the usage chunk was lost
                        raise _Retryable(
                            UpstreamIncomplete("The model server closed the connection mid-reply.")
                        ) from exc

                    # SSE: blank lines end events, ":" starts a keep-alive comment, and fields
                    # other than "data" (event, id, retry) carry nothing we use. Each
                    # OpenAI-style event is a single data line, handled on its own.
                    if not line.startswith("data:"):
                        continue
                    data = line[5:].strip()
                    if data == "[DONE]":
                        saw_done = True
                        continue
                    saw_data = True
                    chunk = parse_chunk(data)
                    raise_if_error_frame(chunk)
                    if (chunk_usage := usage_of(chunk)) is not None:
                        usage = chunk_usage
                    text, reason = choice_of(chunk)
                    if reason is not None:
                        finish = Finish(reason)
                    if text:
                        progress.hold()
                        yield TextDelta(text)
                    for call in tool_calls_of(chunk):
                        progress.hold()
                        yield call
                    # Deliberate: only data frames count as progress. Keep-alive comments
                    # (": ping") prove the connection is up, not that the model is generating,
                    # so they reset nothing; a reasoning-only chunk does count, as the model is
                    # working. Measured from here, after the consumer took the text.
                    progress.move(loop.time() + self._idle_timeout)
        except TimeoutError as exc:
            raise self._timeout(first=not saw_data) from exc

        if finish is None:
            if saw_done:
                raise UpstreamIncomplete("The model server ended the reply without finishing it.")
            if not saw_data:
                raise UpstreamIncomplete(
                    "The model server sent an empty reply (the prompt may be too long for the "
                    "model's context)."
                )
            raise UpstreamIncomplete("The model server closed the reply before its end.")
        if usage is not None:
            yield usage
        yield finish
        if saw_done:
            # Read the body to its end so the connection goes back to the pool instead of being
            # closed; nothing after [DONE] matters, so give up quickly.
            with suppress(TimeoutError, httpx.TransportError):
                async with asyncio.timeout(_DRAIN_TIMEOUT):
                    async for _ in lines:
                        pass

    def _timeout(self, *, first: bool) -> UpstreamTimeout:
        if first:
            return UpstreamTimeout(
                f"The model server sent nothing within {self._first_token_timeout:g} s."
            )
        return UpstreamTimeout(
            f"The model server stopped sending for {self._idle_timeout:g} s mid-reply."
        )


def _base_url(model: ModelConfig) -> str:
    if model.base_url is None:
        raise ValueError(f"model {model.name!r} has no base_url")
    return model.base_url.rstrip("/")


def _auth_headers(model: ModelConfig) -> dict[str, str]:
    return {"Authorization": f"Bearer {model.api_key}"} if model.api_key else {}


class _Deadline:
    """When the upstream must next send a data frame by; moved on after every one of them.

    `asyncio.Timeout.reschedule` makes a new timer each time it is called, and this deadline
    moves for every token of every reply. So the timer here fires at the deadline it was armed
    for and only then looks where the deadline has got to: it re-arms for that, or expires the
    `asyncio.timeout(None)` it was given (whose block then raises TimeoutError as usual)."""

    def __init__(self, timeout: asyncio.Timeout, when: float) -> None:
        self._timeout = timeout
        self._loop = asyncio.get_running_loop()
        self._when = when
        self._held = False
        self._handle: asyncio.TimerHandle | None = None
        self._armed_for = math.inf

    async def __aenter__(self) -> "_Deadline":
        self._arm(self._when)
        return self

    async def __aexit__(self, *_exc: object) -> None:
        if self._handle is not None:
            self._handle.cancel()

    def hold(self) -> None:
        """Stops the clock until the next move()."""
        self._held = True

    def move(self, when: float) -> None:
        self._held = False
        self._when = when
        if when < self._armed_for:  # sooner than the timer: only when the first-token wait ends
            self._arm(when)

    def _arm(self, when: float) -> None:
        if self._handle is not None:
            self._handle.cancel()
        self._armed_for = when
        self._handle = self._loop.call_at(when, self._check)

    def _check(self) -> None:
        self._handle, self._armed_for = None, math.inf
        if self._held:
            return  # move() re-arms
        now = self._loop.time()
        if now < self._when:
            self._arm(self._when)
        else:
            self._timeout.reschedule(now)
