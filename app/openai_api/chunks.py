"""A reply's events (app/generation/reply_events.py) as OpenAI Chat Completions answers: the
`chat.completion.chunk` stream (`data: {...}` lines, then `data: [DONE]`), or one
`chat.completion` object.

- Every chunk carries `usage: null`; with `stream_options.include_usage` one more chunk, last
  before `[DONE]`, has `choices: []` and the usage.
- `tool_call_delta` events become `delta.tool_calls` entries exactly as the upstream sent them.
- A reply stopped by the output guardrail ends with `finish_reason: "content_filter"`; any other
  failure after the stream started is a `data: {"error": {...}}` payload (the SDK raises
  APIError), then `[DONE]`.
- The `parley` object (first chunk, or the answer) carries what the `parley` extension asked
  for: `chat_id` and `message_id` of the saved exchange, and retrieval's `sources`.
"""

import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from app.core.errors import openai_error_body
from app.generation.reply_events import ReplyEvent

DONE = b"data: [DONE]\n\n"
_COMPACT_JSON = json.JSONEncoder(separators=(",", ":"))


def sse_data(payload: dict[str, Any]) -> bytes:
    return b"data: " + _COMPACT_JSON.encode(payload).encode() + b"\n\n"


def usage_json(data: dict[str, Any]) -> dict[str, int]:
    prompt, completion = int(data["prompt_tokens"]), int(data["completion_tokens"])
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


def reply_id_of(start: dict[str, Any]) -> str:
    """The saved reply's id (a generation, or the chat's assistant message)."""
    return str(start.get("generation_id") or start.get("assistant_message_id") or "")


def error_payload(data: dict[str, Any]) -> dict[str, Any]:
    """A reply's `error` event as OpenAI's error object."""
    return openai_error_body(
        502, str(data.get("code") or "generation_failed"), str(data.get("message") or "")
    )


@dataclass
class ReplyParts:
    """What a reply's events said, gathered: its text, tool calls, usage, sources and end."""

    start: dict[str, Any] = field(default_factory=dict)
    text: list[str] = field(default_factory=list)
    tool_calls: dict[int, dict[str, Any]] = field(default_factory=dict)
    usage: dict[str, int] | None = None
    sources: list[dict[str, Any]] | None = None
    error: dict[str, Any] | None = None
    done: bool = False

    def add(self, event: ReplyEvent) -> None:
        data = event.data
        match event.name:
            case "start":
                self.start = data
            case "sources":
                self.sources = data.get("sources") or []
            case "delta":
                self.text.append(data["content"])
            case "tool_call_delta":
                self.add_tool_call(data)
            case "usage":
                self.usage = usage_json(data)
            case "done":
                self.done = True
            case "error":
                self.error = data

    def add_tool_call(self, data: dict[str, Any]) -> None:
        call = self.tool_calls.setdefault(
            int(data["index"]),
            {"id": "", "type": "function", "function": {"name": "", "arguments": ""}},
        )
        if data.get("id"):
            call["id"] = data["id"]
        function = data.get("function") or {}
        if function.get("name"):
            call["function"]["name"] += function["name"]
        call["function"]["arguments"] += function.get("arguments") or ""

    @property
    def blocked(self) -> bool:
        return self.error is not None and self.error.get("code") == "content_blocked"

    def finish_reason(self, upstream: str | None) -> str:
        if self.blocked:
            return "content_filter"
        if upstream:
            return upstream
        return "tool_calls" if self.tool_calls else "stop"

    def parley(self) -> dict[str, Any] | None:
        """The answer's `parley` object, when the request used the extension."""
        found: dict[str, Any] = {}
        if "chat_id" in self.start:
            found["chat_id"] = self.start["chat_id"]
            found["message_id"] = self.start.get("assistant_message_id")
        if self.sources is not None:
            found["sources"] = self.sources
        return found or None


class ChatCompletionStream:
    """Turns one reply's events into `chat.completion.chunk` frames."""

    def __init__(
        self,
        *,
        model: str,
        include_usage: bool,
        finish_reason: Callable[[], str | None],
    ) -> None:
        self.model = model
        self.include_usage = include_usage
        self.upstream_finish = finish_reason
        self.created = int(time.time())
        self.parts = ReplyParts()
        self.id = "chatcmpl-"
        self.first_sent = False
        # A text chunk's bytes around its content, made once per reply: only the text is
        # encoded per token (this runs for every token of every stream).
        self._text_frame: tuple[bytes, bytes] | None = None

    def _text(self, text: str) -> bytes:
        if self._text_frame is None:
            marker = "\x00text\x00"
            frame = sse_data(self.chunk({"content": marker}))
            head, _, tail = frame.partition(_COMPACT_JSON.encode(marker).encode())
            self._text_frame = (head, tail)
        head, tail = self._text_frame
        return head + _COMPACT_JSON.encode(text).encode() + tail

    def chunk(self, delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
        chunk: dict[str, Any] = {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "system_fingerprint": None,
            "choices": [
                {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
            ],
            "usage": None,
        }
        if not self.first_sent:
            self.first_sent = True
            chunk["choices"][0]["delta"] = {"role": "assistant", **delta}
            if (parley := self.parts.parley()) is not None:
                chunk["parley"] = parley
        return chunk

    async def frames(self, events: AsyncIterator[ReplyEvent]) -> AsyncIterator[bytes]:
        parts = self.parts
        async for event in events:
            parts.add(event)
            match event.name:
                case "start":
                    self.id = f"chatcmpl-{reply_id_of(event.data).replace('-', '')}"
                case "delta":
                    if not self.first_sent:  # the role, and the `parley` object
                        yield sse_data(self.chunk({"content": event.data["content"]}))
                    else:
                        yield self._text(event.data["content"])
                case "tool_call_delta":
                    yield sse_data(self.chunk({"tool_calls": [event.data]}))
                case "done":
                    yield self._finish()
                    if self.include_usage:
                        yield self._usage()
                    yield DONE
                    return
                case "error":
                    if parts.blocked:
                        yield self._finish()
                        if self.include_usage:
                            yield self._usage()
                    else:
                        yield sse_data(error_payload(event.data))
                    yield DONE
                    return
        # The events ended without an end (a rejoined reply no longer readable): say so.
        ended = {"code": "reply_incomplete", "message": "The reply ended before its end."}
        yield sse_data(error_payload(ended))
        yield DONE

    def _finish(self) -> bytes:
        reason = self.parts.finish_reason(self.upstream_finish())
        return sse_data(self.chunk({}, reason))

    def _usage(self) -> bytes:
        usage = self.parts.usage or {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
        return sse_data(
            {
                "id": self.id,
                "object": "chat.completion.chunk",
                "created": self.created,
                "model": self.model,
                "system_fingerprint": None,
                "choices": [],
                "usage": usage,
            }
        )


def chat_completion(parts: ReplyParts, *, model: str, finish_reason: str | None) -> dict[str, Any]:
    """One `chat.completion` object from a reply's gathered parts."""
    message: dict[str, Any] = {
        "role": "assistant",
        "content": "".join(parts.text) if parts.text or not parts.tool_calls else None,
        "refusal": None,
    }
    if parts.tool_calls:
        message["tool_calls"] = [parts.tool_calls[i] for i in sorted(parts.tool_calls)]
    answer: dict[str, Any] = {
        "id": f"chatcmpl-{reply_id_of(parts.start).replace('-', '')}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "system_fingerprint": None,
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": parts.finish_reason(finish_reason),
            }
        ],
        "usage": parts.usage,
    }
    if (parley := parts.parley()) is not None:
        answer["parley"] = parley
    return answer
