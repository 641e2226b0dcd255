"""A fake OpenAI-compatible model server on a real uvicorn, speaking vLLM's exact stream format.

Tests turn knobs on `fake.state` to reproduce what real upstreams do (pings, errors mid-stream,
dropped connections, missing usage, ...) and read back what it received and saw:

    async with run_fake_upstream() as fake:
        fake.state.tokens = ["Hello", " world"]
        fake.state.drop_after = 1
        ...  # point a client at fake.base_url ("http://127.0.0.1:<port>/v1")
        assert fake.state.requests[0]["stream"] is True

For attachments it keeps every content part it was sent (`state.parts`: text parts and images,
the images' data URLs decoded), so tests assert exactly what left Parley.

It also plays a guard model: chat requests for a model in `state.guard_models` are answered at
once (not streamed) with a verdict, as Llama Guard 3 ("safe", "unsafe\nS1"), ShieldGemma or
Granite Guardian ("Yes"/"No") would; and `POST /v1/moderations` answers as OpenAI's does.
`guard_rules` pick the verdict by a word in the request; `guard_delay` and `guard_down` make the
guard slow or unreachable.
"""

import asyncio
import base64
import binascii
import contextlib
import hashlib
import json
import math
import re
import socket
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, MutableMapping
from dataclasses import dataclass, field
from typing import Any, Literal

import uvicorn

from tests.support.wait import wait_until

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


@dataclass
class FakeState:
    """Knobs (set them before the request) and observations (read them after)."""

    # --- The reply
    tokens: list[str] | int = field(default_factory=lambda: ["Hello", ",", " world", "!"])
    reasoning: list[str] = field(default_factory=list)  # sent as delta.reasoning_content first
    # Tool calls made after the tokens, as OpenAI streams them: per call a chunk with its index,
    # id and name, then one chunk per argument fragment; the reply then finishes "tool_calls".
    # Each: {"id": "call_1", "name": "get_weather", "arguments": ['{"city":', ' "Paris"}']}.
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    # Scripted replies: each chat request takes the first left ({"tokens": [...],
    # "tool_calls": [...]}, either optional) instead of `tokens` and `tool_calls`; a model that
    # calls tools, then answers once it has their results.
    turns: list[dict[str, Any]] = field(default_factory=list)
    # A model that calls `tool_calls` until it has their results: a request whose last message
    # is a tool result gets `tokens` only (many chats at once, each calling once).
    answer_tool_results: bool = False
    first_token_delay: float = 0.0  # after the headers, before the role chunk
    token_delay: float = 0.0  # between content chunks
    models: list[str] = field(default_factory=lambda: ["fake-model"])
    api_key: str | None = None  # when set, requests without "Bearer <api_key>" get vLLM's 401

    # --- Format quirks
    crlf: bool = False  # end lines with \r\n
    ping_interval: float | None = None  # ": ping - <time>" comments while waiting
    sse_fields: bool = False  # add "event:" and "id:" lines to every frame
    send_usage: bool = True  # False: like llama.cpp, never any usage
    usage_with_choices: bool = False  # like LiteLLM: usage on a chunk with non-empty choices
    send_finish: bool = True  # False: [DONE] with no chunk carrying a finish_reason
    empty_body: bool = False  # 200 and no body at all (llama.cpp on a context overflow)

    # --- Faults (they apply to the first `faulty_requests` chat requests, or to all if None)
    faulty_requests: int | None = None
    error_status: int | None = None  # answer with this status and `error_body` instead
    error_body: str = '{"error": {"message": "Internal server error", "type": "InternalError"}}'
    error_content_type: str = "application/json"
    error_retry_after: str | None = None  # a Retry-After header on the error status
    error_chunk_after: int | None = None  # an error frame after N content chunks
    error_chunk_style: Literal["vllm", "flat", "litellm"] = "vllm"
    error_chunk_message: str = "The engine failed"
    malformed_after: int | None = None  # a chunk that is not JSON after N content chunks
    hang_before_headers: bool = False  # accept the request, never answer
    hang_after: int | None = None  # go silent after N content chunks (0: after the role chunk)
    drop_after: int | None = None  # abort the connection after N content chunks

    # --- A guard model (answers chat requests for these models with a verdict, not streamed)
    guard_models: set[str] = field(default_factory=lambda: {"guard-model"})
    guard_verdict: str = "safe"  # the answer when no rule matches
    # (word, answer): the first rule whose word is in the request's last message decides.
    guard_rules: list[tuple[str, str]] = field(default_factory=list)
    # /v1/moderations: (word, categories) flags inputs containing the word.
    moderation_rules: list[tuple[str, list[str]]] = field(default_factory=list)
    guard_delay: float = 0.0  # before answering (a slow guard)
    guard_down: bool = False  # answer 503 (an unreachable guard)

    # --- Embeddings (POST /v1/embeddings): deterministic vectors, similar texts similar
    embedding_dimensions: int = 64  # when the request names no `dimensions`
    embeddings_down: bool = False  # answer 503
    embeddings_garbage: bool = False  # answer 200 with a body that holds no embeddings
    embedding_wrong_dimensions: int | None = None  # vectors of this length instead
    embedding_delay: float = 0.0  # before answering
    embedding_requests: list[dict[str, Any]] = field(default_factory=list)  # their bodies

    # --- Observations
    guard_requests: list[dict[str, Any]] = field(default_factory=list)  # guard and moderation
    requests: list[dict[str, Any]] = field(default_factory=list)  # chat request bodies
    # Per chat request, the content parts of its messages in order (ReceivedPart).
    parts: list[list["ReceivedPart"]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)  # chat request headers
    client_ports: list[int] = field(default_factory=list)  # to tell reused connections apart
    active_streams: int = 0
    max_active_streams: int = 0
    disconnects: int = 0  # streams whose client went away before the end
    disconnected: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass(frozen=True)
class ReceivedPart:
    """One content part as the fake read it: a text, or an image with its data URL decoded."""

    role: str
    type: str  # "text" or "image_url"
    text: str | None = None
    media_type: str | None = None  # of an image's data URL
    data: bytes | None = None  # an image's bytes, decoded from base64


def decode_data_url(url: str) -> tuple[str, bytes]:
    """(media type, bytes) of a `data:<type>;base64,<data>` URL, strictly (as OpenAI does)."""
    header, sep, payload = url.partition(",")
    if not (sep and header.startswith("data:") and header.endswith(";base64")):
        raise ValueError(f"not a base64 data URL: {url[:40]!r}")
    try:
        return header[5:-7], base64.b64decode(payload, validate=True)
    except binascii.Error as exc:
        raise ValueError("the data URL's base64 does not decode") from exc


def _parts(body: dict[str, Any]) -> list[ReceivedPart]:
    found: list[ReceivedPart] = []
    for message in body.get("messages", []):
        content = message.get("content")
        if not isinstance(content, list):
            continue
        for part in content:
            if part.get("type") == "image_url":
                media_type, data = decode_data_url(part["image_url"]["url"])
                found.append(ReceivedPart(message["role"], "image_url", None, media_type, data))
            else:
                found.append(ReceivedPart(message["role"], part.get("type"), part.get("text")))
    return found


class _Drop(Exception):
    """Raised out of the ASGI app once the response started: uvicorn then aborts the socket."""


class FakeUpstream:
    """The ASGI app. `base_url` is filled in once the server listens."""

    def __init__(self) -> None:
        self.state = FakeState()
        self.base_url = ""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        route = (scope["method"], scope["path"])
        if route == ("GET", "/v1/models"):
            data = [{"id": name, "object": "model"} for name in self.state.models]
            await _send_json(send, 200, {"object": "list", "data": data})
        elif route == ("POST", "/v1/chat/completions"):
            await self._chat(scope, receive, send)
        elif route == ("POST", "/v1/moderations"):
            await self._moderate(receive, send)
        elif route == ("POST", "/v1/embeddings"):
            await self._embeddings(receive, send)
        else:
            await _send_json(send, 404, {"detail": "Not Found"})

    async def _guard_wait(self, send: Send) -> bool:
        """A slow or unreachable guard; False when the request was answered (503)."""
        if self.state.guard_delay:
            await asyncio.sleep(self.state.guard_delay)
        if self.state.guard_down:
            await _send_json(send, 503, {"error": {"message": "guard is down"}})
            return False
        return True

    async def _guard(self, body: dict[str, Any], send: Send) -> None:
        state = self.state
        state.guard_requests.append(body)
        if not await self._guard_wait(send):
            return
        messages = body.get("messages") or [{}]
        text = str(messages[-1].get("content", ""))
        answer = next((a for word, a in state.guard_rules if word in text), state.guard_verdict)
        await _send_json(
            send,
            200,
            {
                "id": f"chatcmpl-{uuid.uuid4().hex}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": body.get("model"),
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": answer},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
            },
        )

    async def _moderate(self, receive: Receive, send: Send) -> None:
        body = json.loads(await _read_body(receive))
        self.state.guard_requests.append(body)
        if not await self._guard_wait(send):
            return
        text = str(body.get("input", ""))
        flagged = {c for word, cats in self.state.moderation_rules if word in text for c in cats}
        categories = {name: name in flagged for name in ("harassment", "violence", *flagged)}
        result = {"flagged": bool(flagged), "categories": categories, "category_scores": {}}
        answer = {"id": "modr-1", "model": body.get("model"), "results": [result]}
        await _send_json(send, 200, answer)

    async def _embeddings(self, receive: Receive, send: Send) -> None:
        state = self.state
        raw = b""
        more = True
        while more:
            message = await receive()
            raw += message.get("body", b"")
            more = message.get("more_body", False)
        body = json.loads(raw)
        state.embedding_requests.append(body)
        if state.embedding_delay:
            await asyncio.sleep(state.embedding_delay)
        if state.embeddings_down:
            await _send_json(send, 503, {"error": {"message": "The model is loading"}})
            return
        if state.embeddings_garbage:
            await _send_json(send, 200, {"object": "list", "data": "not embeddings"})
            return
        inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
        dimensions = (
            state.embedding_wrong_dimensions or body.get("dimensions") or state.embedding_dimensions
        )
        data = [
            {"object": "embedding", "index": i, "embedding": fake_embedding(text, dimensions)}
            for i, text in enumerate(inputs)
        ]
        usage = {"prompt_tokens": sum(len(t.split()) for t in inputs), "total_tokens": 0}
        await _send_json(
            send, 200, {"object": "list", "data": data, "model": body.get("model"), "usage": usage}
        )

    async def _chat(self, scope: Scope, receive: Receive, send: Send) -> None:
        state = self.state
        body = json.loads(await _read_body(receive))
        if body.get("model") in state.guard_models:
            await self._guard(body, send)
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        state.requests.append(body)
        state.headers.append(headers)
        state.client_ports.append(scope["client"][1])
        try:
            state.parts.append(_parts(body))
        except ValueError as exc:  # as OpenAI answers an image URL it cannot read
            state.parts.append([])
            await _send_json(send, 400, {"error": {"message": str(exc), "type": "invalid_image"}})
            return
        faulty = state.faulty_requests is None or len(state.requests) <= state.faulty_requests

        if state.api_key is not None and headers.get("authorization") != f"Bearer {state.api_key}":
            await _send_json(send, 401, {"error": "Unauthorized"})
            return
        if faulty and state.error_status is not None:
            await _send_bytes(
                send,
                state.error_status,
                state.error_body.encode(),
                state.error_content_type,
                retry_after=state.error_retry_after,
            )
            return

        state.active_streams += 1
        state.max_active_streams = max(state.max_active_streams, state.active_streams)
        try:
            await self._stream_until_disconnect(body, faulty, receive, send)
        finally:
            state.active_streams -= 1

    async def _stream_until_disconnect(
        self, body: dict[str, Any], faulty: bool, receive: Receive, send: Send
    ) -> None:
        # Race the reply against the client going away, so a test can see the disconnect and a
        # hanging reply ends when its client does.
        reply = asyncio.create_task(self._reply(body, faulty, send))
        gone = asyncio.create_task(_wait_for_disconnect(receive))
        await asyncio.wait({reply, gone}, return_when=asyncio.FIRST_COMPLETED)
        if gone.done():
            reply.cancel()
            with contextlib.suppress(asyncio.CancelledError, _Drop):
                await reply
            self.state.disconnects += 1
            self.state.disconnected.set()
            return
        gone.cancel()
        with contextlib.suppress(_Stop):
            reply.result()  # re-raises _Drop
        # Ending the body only now: uvicorn reports a disconnect to receive() once it is complete.
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def _reply(self, body: dict[str, Any], faulty: bool, send: Send) -> None:
        state = self.state
        eol = "\r\n" if state.crlf else "\n"

        async def emit(text: str) -> None:
            await send({"type": "http.response.body", "body": text.encode(), "more_body": True})

        async def wait(seconds: float) -> None:
            # Sleep, sending keep-alive comments meanwhile when asked to (as sse-starlette does).
            if state.ping_interval is None:
                await asyncio.sleep(seconds)
                return
            end = time.monotonic() + seconds
            while (left := end - time.monotonic()) > 0:
                await asyncio.sleep(min(left, state.ping_interval))
                await emit(f": ping - {time.strftime('%Y-%m-%d %H:%M:%S')}{eol}{eol}")

        async def frame(payload: dict[str, Any] | str, number: int) -> None:
            if not isinstance(payload, str):
                payload = json.dumps(payload, separators=(",", ":"))
            extra = f"event: message{eol}id: {number}{eol}" if state.sse_fields else ""
            await emit(f"{extra}data: {payload}{eol}{eol}")

        async def hang() -> None:
            # Until the client disconnects; still pinging if asked, as a live but stuck server.
            while True:
                await wait(state.ping_interval or 3600)

        if faulty and state.hang_before_headers:
            await hang()
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"text/event-stream; charset=utf-8")],
            }
        )
        if state.empty_body:
            return
        await wait(state.first_token_delay)

        chunk = _ChunkMaker(str(body.get("model", "fake-model")))
        turn = state.turns.pop(0) if state.turns else {}
        tokens = _tokens(turn.get("tokens", state.tokens))
        tool_calls: list[dict[str, Any]] = turn.get("tool_calls", state.tool_calls)
        if state.answer_tool_results and body["messages"][-1].get("role") == "tool":
            tool_calls = []
        max_tokens = body.get("max_tokens")
        finish_reason = "stop"
        if isinstance(max_tokens, int) and len(tokens) > max_tokens:
            tokens, finish_reason = tokens[:max_tokens], "length"
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        usage = {
            "prompt_tokens": sum(len(str(m.get("content", "")).split()) for m in body["messages"]),
            "total_tokens": 0,
            "completion_tokens": len(tokens),
        }
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]

        number = 0
        await frame(chunk.choice({"role": "assistant", "content": ""}), number)
        for text in state.reasoning:
            number += 1
            await frame(chunk.choice({"reasoning_content": text}), number)
        for sent, text in enumerate(tokens):
            if faulty:
                await self._fault_at(sent, frame, hang)
            if sent:
                await wait(state.token_delay)
            number += 1
            await frame(chunk.choice({"content": text}), number)
        if faulty:
            await self._fault_at(len(tokens), frame, hang)
        for index, call in enumerate(tool_calls):
            number += 1
            opening = {
                "index": index,
                "id": call["id"],
                "type": "function",
                "function": {"name": call["name"], "arguments": ""},
            }
            await frame(chunk.choice({"tool_calls": [opening]}), number)
            for fragment in call["arguments"]:
                number += 1
                piece = {"index": index, "function": {"arguments": fragment}}
                await frame(chunk.choice({"tool_calls": [piece]}), number)
        if tool_calls and finish_reason == "stop":
            finish_reason = "tool_calls"

        with_usage = include_usage and state.send_usage
        if state.send_finish:
            final = chunk.choice({"content": ""}, finish_reason=finish_reason)
            if with_usage and state.usage_with_choices:
                final["usage"] = usage
            await frame(final, number + 1)
        if with_usage and not state.usage_with_choices:
            await frame({**chunk.base(), "choices": [], "usage": usage}, number + 2)
        await emit(f"data: [DONE]{eol}{eol}")

    async def _fault_at(
        self,
        sent: int,
        frame: Callable[[dict[str, Any] | str, int], Awaitable[None]],
        hang: Callable[[], Awaitable[None]],
    ) -> None:
        """Inject the configured fault once `sent` content chunks have gone out."""
        state = self.state
        if state.error_chunk_after == sent:
            await frame(_error_frame(state.error_chunk_style, state.error_chunk_message), -1)
            if state.error_chunk_style != "litellm":  # LiteLLM just ends the body
                await frame("[DONE]", -1)
            raise _Stop()
        if state.malformed_after == sent:
            await frame('{"id": "chatcmpl-broken", "choices": [', -1)
        if state.hang_after == sent:
            await hang()
        if state.drop_after == sent:
            raise _Drop(f"dropping after {sent} tokens")


class _Stop(Exception):
    """Ends a reply early but cleanly (the body is completed)."""


class _ChunkMaker:
    """vLLM's chunk layout: same id, created and model on every chunk of one reply."""

    def __init__(self, model: str) -> None:
        self._base = {
            "id": f"chatcmpl-{uuid.uuid4().hex}",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": model,
        }

    def base(self) -> dict[str, Any]:
        return dict(self._base)

    def choice(self, delta: dict[str, Any], *, finish_reason: str | None = None) -> dict[str, Any]:
        choice: dict[str, Any] = {
            "index": 0,
            "delta": delta,
            "logprobs": None,
            "finish_reason": finish_reason,
        }
        if finish_reason is not None:
            choice["stop_reason"] = None
        return {**self._base, "choices": [choice]}


_STOPWORDS = frozenset(
    {
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "by",
        "does",
        "do",
        "for",
        "from",
        "how",
        "in",
        "is",
        "it",
        "its",
        "of",
        "on",
        "or",
        "the",
        "this",
        "to",
        "under",
        "what",
        "when",
        "which",
        "who",
        "why",
        "with",
    }
)


def fake_embedding(text: str, dimensions: int) -> list[float]:
    """A deterministic unit vector of hashed features: each word (weight 1) and its character
    trigrams (weight 0.3), each at a hashed index with a hashed sign. Texts sharing words point
    the same way; unrelated texts are nearly orthogonal."""
    vector = [0.0] * dimensions
    for word in re.findall(r"[^\W_]+", text.casefold()):
        if word in _STOPWORDS:
            continue
        features = [(word, 1.0)]
        padded = f"#{word}#"
        features += [(padded[i : i + 3], 0.3) for i in range(len(padded) - 2)]
        for feature, weight in features:
            digest = hashlib.blake2b(feature.encode(), digest_size=8).digest()
            index = int.from_bytes(digest[:4], "little") % dimensions
            sign = 1.0 if digest[4] & 1 else -1.0
            vector[index] += sign * weight
    norm = math.sqrt(sum(x * x for x in vector)) or 1.0
    return [x / norm for x in vector]


def _tokens(tokens: list[str] | int) -> list[str]:
    if isinstance(tokens, int):
        return [f"tok{i} " for i in range(tokens)]
    return list(tokens)


def _error_frame(style: str, message: str) -> dict[str, Any]:
    if style == "flat":  # vLLM before it nested errors
        return {"object": "error", "message": message, "type": "InternalServerError", "code": 500}
    error = {"message": message, "type": "InternalServerError", "param": None, "code": 500}
    if style == "vllm":
        error["object"] = "error"
    return {"error": error}


async def _read_body(receive: Receive) -> bytes:
    raw = b""
    more = True
    while more:
        message = await receive()
        raw += message.get("body", b"")
        more = message.get("more_body", False)
    return raw


async def _wait_for_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


async def _send_bytes(
    send: Send, status: int, body: bytes, content_type: str, *, retry_after: str | None = None
) -> None:
    headers = [
        (b"content-type", content_type.encode()),
        (b"content-length", str(len(body)).encode()),
    ]
    if retry_after is not None:
        headers.append((b"retry-after", retry_after.encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})


async def _send_json(send: Send, status: int, payload: Any) -> None:
    await _send_bytes(send, status, json.dumps(payload).encode(), "application/json")


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # The fake runs inside the test process: leave Ctrl-C to pytest.
        yield


@contextlib.asynccontextmanager
async def run_fake_upstream() -> AsyncIterator[FakeUpstream]:
    """Serve a fresh `FakeUpstream` on 127.0.0.1 (a free port) in the running event loop."""
    app = FakeUpstream()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        app,
        lifespan="off",
        access_log=False,
        log_config=None,  # uvicorn's loggers propagate to pytest's capture instead
        timeout_graceful_shutdown=2,
    )
    server = _Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        await wait_until(lambda: server.started or task.done())
        if task.done():
            task.result()  # raises what stopped it
        if not server.started:
            raise RuntimeError("the fake upstream did not start")
        app.base_url = f"http://127.0.0.1:{port}/v1"
        yield app
    finally:
        server.should_exit = True
        await task
        sock.close()
