"""Streaming chat completions from any OpenAI-compatible server, and the built-in `echo` model.

Every provider yields the same small events: `TextDelta`s as text arrives, then `Usage` when the
upstream reported it, then `Finish` as the very last event. Anything else ends the stream with an
`UpstreamError`, even after text has been yielded: the caller keeps the text it already received
and decides how to save it.
"""

import asyncio
import json
import math
import re
from collections.abc import AsyncGenerator
from contextlib import AsyncExitStack, aclosing, suppress
from dataclasses import asdict, dataclass
from typing import Any, Literal, Protocol

import httpx

from app.core.errors import AppError
from app.generation.network import UpstreamTransport

# --- Configuration -----------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelConfig:
    """A model as users see it, and where and how to reach it."""

    name: str
    base_url: str | None  # e.g. "http://gpu-1:8000/v1"; None for the built-in echo model
    api_key: str | None
    upstream_model: str  # the id the upstream knows the model by
    context_length: int
    provider: Literal["openai", "echo"]


@dataclass
class GenerationParams:
    """Sampling options; only those set are sent, so the upstream's own defaults apply otherwise."""

    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None

    def as_body(self) -> dict[str, float | int]:
        return {key: value for key, value in asdict(self).items() if value is not None}


# --- Stream events -----------------------------------------------------------------------------


@dataclass(frozen=True)
class TextDelta:
    text: str


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int
    completion_tokens: int


@dataclass(frozen=True)
class Finish:
    reason: str | None  # "stop", "length", ... as the upstream said


StreamEvent = TextDelta | Usage | Finish


# --- Errors ------------------------------------------------------------------------------------


class UpstreamError(AppError):
    """Base of every failure to get a reply from a model server."""

    status_code = 502
    code = "upstream_error"
    message = "The model server failed."


class UpstreamUnavailable(UpstreamError):
    code = "upstream_unavailable"
    message = "The model server cannot be reached."


class UpstreamHTTPError(UpstreamError):
    code = "upstream_http_error"
    message = "The model server refused the request."

    def __init__(self, message: str | None = None, *, upstream_status: int):
        super().__init__(message)
        self.upstream_status = upstream_status


class UpstreamTimeout(UpstreamError):
    status_code = 504
    code = "upstream_timeout"
    message = "The model server took too long to answer."


class UpstreamProtocolError(UpstreamError):
    code = "upstream_protocol_error"
    message = "The model server sent something that is not a chat completion stream."


class UpstreamStreamError(UpstreamError):
    code = "upstream_stream_error"
    message = "The model server reported an error during the reply."


class UpstreamIncomplete(UpstreamError):
    code = "upstream_incomplete"
    message = "The model server ended the reply before it was complete."


class _Retryable(Exception):
    """Carries an error that is worth one more attempt if nothing has been yielded yet."""

    def __init__(self, error: UpstreamError):
        super().__init__(str(error))
        self.error = error


# Statuses that say "try again shortly" rather than "this request is wrong".
_RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


# --- Helpers -----------------------------------------------------------------------------------


def estimate_tokens(text: str) -> int:
    """Rough token count for upstreams that report no usage: about four characters a token."""
    if not text:
        return 0
    return max(1, round(len(text) / 4))


UpstreamTransportName = Literal["fast", "httpx"]


def build_http_client(
    *,
    max_connections: int = 1000,
    connect_timeout: float,
    keepalive_expiry: float = 3.0,
    transport: UpstreamTransportName = "fast",
) -> httpx.AsyncClient:
    """The one HTTP client the app shares for every upstream call; the caller closes it.

    `transport` (setting UPSTREAM_TRANSPORT): "fast" makes connections with Parley's asyncio
    network backend, "httpx" with httpx's own (anyio), which behaves the same at more CPU."""
    if max_connections < 1:
        raise ValueError("max_connections must be at least 1")
    # Every streaming reply holds a connection for its whole length, so httpx's default of 100
    # would queue the 101st concurrent chat; keep-alive spares a handshake per message.
    # An idle connection is dropped before the server drops it: vLLM (uvicorn) closes idle
    # ones after 5 s, httpx's default, and a request sent on a connection just as the server
    # closes it fails before any answer (seen in bench/relay.py at 500 streams, twice in a
    # row for one reply: both attempts picked connections that were closing).
    limits = httpx.Limits(
        max_connections=max_connections,
        max_keepalive_connections=max_connections,
        keepalive_expiry=keepalive_expiry,
    )
    # Requests go out on plain-asyncio sockets (see app/generation/network.py). As a mount
    # for every URL rather than the client's transport, so proxies from the environment
    # (HTTPS_PROXY, NO_PROXY), which httpx mounts more specifically, still apply.
    mounts = {"all://": UpstreamTransport(limits=limits)} if transport == "fast" else None
    return httpx.AsyncClient(
        mounts=mounts,
        limits=limits,
        # No read timeout: the providers bound every read with their own first-token and idle
        # deadlines, which (unlike a socket read timeout) SSE keep-alive comments do not reset.
        timeout=httpx.Timeout(connect=connect_timeout, read=None, write=None, pool=connect_timeout),
        http1=True,
        http2=False,
        follow_redirects=False,
    )


_MAX_MESSAGE = 500
_MAX_ERROR_BODY = 64 * 1024
_DRAIN_TIMEOUT = 1.0
_TRACEBACK_START = re.compile(r"^\s*Traceback \(most recent call last\)")
_STACK_LINE = re.compile(r"^(\s*File \"|\s+at\s|\s*[\^~]+\s*$)")
# An absolute path: "/x/y..." not preceded by something that makes it part of a URL or a word.
_POSIX_PATH = re.compile(r"(?<![\w:/.~-])/(?:[\w.@+-]+/)+[\w.@+-]*")
_WINDOWS_PATH = re.compile(r"\b[A-Za-z]:\\(?:[^\\\s\"']+\\)*[^\\\s\"']*")
_HTML_TAG = re.compile(r"<[^>]+>")


def _strip_stack_traces(text: str) -> str:
    """Drop Python tracebacks (keeping their final `SomeError: message` line) and stack frames."""
    kept: list[str] = []
    in_traceback = False
    for line in text.splitlines():
        if _TRACEBACK_START.match(line):
            in_traceback = True
            continue
        if in_traceback:
            # Frames and their source lines are indented; the exception line that ends it is not.
            if line[:1].isspace() or not line.strip():
                continue
            in_traceback = False
        if _STACK_LINE.match(line):
            continue
        kept.append(line)
    return "\n".join(kept)


def sanitise_upstream_message(text: str) -> str:
    """Make an upstream's error text fit to show a user: no stack traces, no paths, not too long."""
    if "<html" in text[:200].lower():
        text = _HTML_TAG.sub(" ", text)
    text = _strip_stack_traces(text)
    text = _POSIX_PATH.sub("<path>", text)
    text = _WINDOWS_PATH.sub("<path>", text)
    text = " ".join(text.split())
    if len(text) > _MAX_MESSAGE:
        text = text[: _MAX_MESSAGE - 1].rstrip() + "…"
    return text


def _message_from_json(value: Any) -> str | None:
    """The human message inside the error shapes OpenAI, vLLM, LiteLLM and FastAPI servers use."""
    if isinstance(value, str):
        return value
    if not isinstance(value, dict):
        return None
    error = value.get("error")
    if isinstance(error, dict):
        return _message_from_json(error)
    if isinstance(error, str):
        return error
    for key in ("message", "detail"):
        field = value.get(key)
        if isinstance(field, str):
            return field
        if field is not None:
            return json.dumps(field, ensure_ascii=False)
    return None


def upstream_message(body: str) -> str:
    """The upstream's own explanation from an error body of any shape, sanitised."""
    try:
        message = _message_from_json(json.loads(body)) or body
    except ValueError:
        message = body
    return sanitise_upstream_message(message) or "no details given"


async def _read_error_body(response: httpx.Response) -> str:
    """Read at most `_MAX_ERROR_BODY` bytes: an error page is not worth unbounded memory."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        chunks.append(chunk)
        size += len(chunk)
        if size >= _MAX_ERROR_BODY:
            break
    return b"".join(chunks)[:_MAX_ERROR_BODY].decode(response.encoding or "utf-8", "replace")


# --- Providers ---------------------------------------------------------------------------------


class LLMProvider(Protocol):
    def stream(
        self, model: ModelConfig, messages: list[dict[str, str]], params: GenerationParams
    ) -> AsyncGenerator[StreamEvent, None]:
        """Stream a reply; closing the generator (or cancelling its task) stops the upstream."""
        ...

    async def list_models(self, model: ModelConfig) -> list[str]:
        """The model ids the upstream serves (a cheap reachability check)."""
        ...


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
    ):
        self._http = http
        self._first_token_timeout = first_token_timeout
        self._idle_timeout = idle_timeout
        self._retry_backoff = retry_backoff
        self._request_timeout = request_timeout

    async def list_models(self, model: ModelConfig) -> list[str]:
        """GET {base_url}/models and return the ids listed there."""
        url = f"{_base_url(model)}/models"
        try:
            async with asyncio.timeout(self._request_timeout):
                response = await self._http.get(url, headers=_auth_headers(model))
        except TimeoutError as exc:
            raise UpstreamTimeout("The model server did not list its models in time.") from exc
        except httpx.TransportError as exc:
            raise _unavailable(exc) from exc
        if not response.is_success:
            raise _http_error(response.status_code, response.text)
        try:
            return [str(entry["id"]) for entry in response.json()["data"]]
        except (ValueError, KeyError, TypeError) as exc:
            raise UpstreamProtocolError("The model server's model list has an odd shape.") from exc

    async def stream(
        self, model: ModelConfig, messages: list[dict[str, str]], params: GenerationParams
    ) -> AsyncGenerator[StreamEvent, None]:
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
        url = f"{_base_url(model)}/chat/completions"
        headers = {"Accept": "text/event-stream", **_auth_headers(model)}
        for attempt in (1, 2):
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
                if yielded or attempt == 2:
                    raise failure.error from failure.__cause__
            await asyncio.sleep(self._retry_backoff)

    async def _attempt(
        self, url: str, body: dict[str, Any], headers: dict[str, str]
    ) -> AsyncGenerator[StreamEvent, None]:
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
                raise _Retryable(_unavailable(exc)) from exc

            if not response.is_success:
                try:
                    async with asyncio.timeout(self._idle_timeout):
                        text = await _read_error_body(response)
                except (TimeoutError, httpx.TransportError):
                    text = ""
                error = _http_error(response.status_code, text)
                if response.status_code in _RETRY_STATUSES:
                    raise _Retryable(error)
                raise error

            async with aclosing(self._read_events(response, deadline)) as events:
                async for event in events:
                    yield event

    async def _read_events(
        self, response: httpx.Response, deadline: float
    ) -> AsyncGenerator[StreamEvent, None]:
        loop = asyncio.get_running_loop()
        lines = _lines(response)
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
                    chunk = _parse_chunk(data)
                    _raise_if_error_frame(chunk)
                    if (chunk_usage := _usage_of(chunk)) is not None:
                        usage = chunk_usage
                    text, reason = _choice_of(chunk)
                    if reason is not None:
                        finish = Finish(reason)
                    if text:
                        progress.hold()
                        yield TextDelta(text)
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


def _unavailable(exc: httpx.TransportError) -> UpstreamUnavailable:
    # httpx's messages name the failure (refused, name resolution, timeout) without secrets.
    detail = sanitise_upstream_message(str(exc)) or type(exc).__name__
    return UpstreamUnavailable(f"The model server cannot be reached: {detail}")


def _http_error(status: int, body: str) -> UpstreamHTTPError:
    return UpstreamHTTPError(
        f"The model server answered {status}: {upstream_message(body)}", upstream_status=status
    )


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


async def _lines(response: httpx.Response) -> AsyncGenerator[str, None]:
    """The body's lines, split on \n, \r\n and \r alike, as SSE wants, and read as UTF-8 (the
    only encoding SSE allows). httpx's aiter_lines does the same through two more layers of
    generators and decoders; this runs for every token of every reply."""
    pending = b""
    async for chunk in response.aiter_bytes():
        lines = (pending + chunk).splitlines() if pending else chunk.splitlines()
        # A chunk cut mid-line leaves its last piece for the next one. (A \r\n cut between the
        # two makes an extra blank line, which SSE reads as an event boundary and so do we.)
        pending = b"" if chunk.endswith((b"\n", b"\r")) or not lines else lines.pop()
        for line in lines:
            yield line.decode("utf-8", "replace")
    if pending:
        yield pending.decode("utf-8", "replace")


def _parse_chunk(data: str) -> dict[str, Any]:
    try:
        chunk = json.loads(data)
    except ValueError as exc:
        raise UpstreamProtocolError("The model server sent a chunk that is not JSON.") from exc
    if not isinstance(chunk, dict):
        raise UpstreamProtocolError("The model server sent a chunk that is not a JSON object.")
    return chunk


def _raise_if_error_frame(chunk: dict[str, Any]) -> None:
    # vLLM: {"error": {...}}; older vLLM: {"object": "error", "message": ...}; LiteLLM like vLLM
    # but maybe without [DONE]. Whatever follows, an error frame ends the reply.
    if chunk.get("error") is not None or chunk.get("object") == "error":
        message = _message_from_json(chunk) or "no details given"
        raise UpstreamStreamError(
            f"The model server failed mid-reply: {sanitise_upstream_message(message)}"
        )


def _usage_of(chunk: dict[str, Any]) -> Usage | None:
    # Usually its own chunk with empty choices (OpenAI, vLLM), but LiteLLM sends it alongside
    # choices: take it from wherever it is.
    usage = chunk.get("usage")
    if not isinstance(usage, dict):
        return None
    prompt, completion = usage.get("prompt_tokens"), usage.get("completion_tokens")
    if not isinstance(prompt, int) or not isinstance(completion, int):
        raise UpstreamProtocolError("The model server sent usage without token counts.")
    return Usage(prompt_tokens=prompt, completion_tokens=completion)


def _choice_of(chunk: dict[str, Any]) -> tuple[str, str | None]:
    """The text and finish reason of the first choice; vLLM leaves out fields that are null."""
    choices = chunk.get("choices")
    if choices is None or choices == []:
        return "", None
    if not isinstance(choices, list) or not isinstance(choices[0], dict):
        raise UpstreamProtocolError("The model server sent a chunk with malformed choices.")
    choice = choices[0]
    delta = choice.get("delta") or {}
    if not isinstance(delta, dict):
        raise UpstreamProtocolError("The model server sent a chunk with a malformed delta.")
    # `reasoning_content` (thinking models) is deliberately not part of the reply text.
    content = delta.get("content")
    if content is not None and not isinstance(content, str):
        raise UpstreamProtocolError("The model server sent non-text content.")
    reason = choice.get("finish_reason")
    return content or "", str(reason) if reason is not None else None


class EchoProvider:
    """The built-in `echo` model: a deterministic local reply, so the app runs without an LLM."""

    def __init__(self, *, delay: float = 0.02):
        self._delay = delay

    async def list_models(self, model: ModelConfig) -> list[str]:
        return ["echo"]

    async def stream(
        self, model: ModelConfig, messages: list[dict[str, str]], params: GenerationParams
    ) -> AsyncGenerator[StreamEvent, None]:
        """Reply "Echo: <last user message>", one word at a time at a model-like pace."""
        prompt = next(
            (m.get("content", "") for m in reversed(messages) if m.get("role") == "user"), ""
        )
        reply = f"Echo: {prompt.strip()}" if prompt.strip() else "Echo: (empty message)"
        # Each token is a word with the whitespace after it, so the tokens join back to the reply.
        tokens = re.findall(r"\S+\s*", reply)
        reason = "stop"
        if params.max_tokens is not None and len(tokens) > params.max_tokens:
            tokens, reason = tokens[: params.max_tokens], "length"
        for token in tokens:
            await asyncio.sleep(self._delay)
            yield TextDelta(token)
        # No Usage event: like llama.cpp, the counts are left to the caller's estimate, which
        # is then flagged as such.
        yield Finish(reason)


__all__ = [
    "EchoProvider",
    "Finish",
    "GenerationParams",
    "LLMProvider",
    "ModelConfig",
    "OpenAIProvider",
    "StreamEvent",
    "TextDelta",
    "UpstreamError",
    "UpstreamHTTPError",
    "UpstreamIncomplete",
    "UpstreamProtocolError",
    "UpstreamStreamError",
    "UpstreamTimeout",
    "UpstreamUnavailable",
    "Usage",
    "build_http_client",
    "estimate_tokens",
    "sanitise_upstream_message",
    "upstream_message",
]
