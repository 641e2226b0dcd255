"""The Responses API on top of chat replies: its input items as chat messages, and a reply's
events as a Response object or as its stream of typed events.

Input: `input` as a string or items (messages with `input_text`/`output_text`/`input_image`
parts, `function_call` and `function_call_output` items), `instructions` (a system message for
this turn only, as OpenAI treats it), function `tools`. Output: a `message` item with one
`output_text` part, and a `function_call` item per tool call.
"""

import json
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from app.generation.reply_events import ReplyEvent
from app.openai_api.chunks import ReplyParts
from app.openai_api.errors import InvalidParameter, UnsupportedParameter
from app.openai_api.schemas import ChatMessageIn, ResponsesRequest

_ROLES = ("user", "system", "developer", "assistant")
_COMPACT_JSON = json.JSONEncoder(separators=(",", ":"))


def response_id(row_id: uuid.UUID) -> str:
    return f"resp_{row_id.hex}"


def parse_response_id(value: str) -> uuid.UUID | None:
    """The row id of `resp_<hex>`; None for anything else (which names no response)."""
    if not value.startswith("resp_"):
        return None
    try:
        return uuid.UUID(hex=value[5:])
    except ValueError:
        return None


def _content(param: str, content: Any) -> str | list[dict[str, Any]]:
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise UnsupportedParameter(param, f"{param} must be a string or a list of content parts.")
    parts: list[dict[str, Any]] = []
    for number, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind in ("input_text", "output_text", "text") and isinstance(part.get("text"), str):
            parts.append({"type": "text", "text": part["text"]})
        elif kind == "input_image" and isinstance(part.get("image_url"), str):
            image: dict[str, Any] = {"url": part["image_url"]}
            if part.get("detail") in ("auto", "low", "high"):
                image["detail"] = part["detail"]
            parts.append({"type": "image_url", "image_url": image})
        else:
            raise UnsupportedParameter(
                f"{param}[{number}]",
                f"{param}[{number}]: only input_text, output_text and input_image (by URL) "
                "parts are supported.",
            )
    return parts


def input_messages(body: ResponsesRequest) -> list[dict[str, Any]]:
    """This turn's input as chat messages (checked like /v1/chat/completions' messages)."""
    if isinstance(body.input, str):
        return [{"role": "user", "content": body.input}]
    messages: list[dict[str, Any]] = []
    for number, item in enumerate(body.input):
        param = f"input[{number}]"
        kind = item.get("type", "message")
        if kind == "message" and item.get("role") in _ROLES:
            messages.append(
                {"role": item["role"], "content": _content(f"{param}.content", item.get("content"))}
            )
        elif kind == "function_call":
            call = {
                "id": str(item.get("call_id") or item.get("id") or ""),
                "type": "function",
                "function": {
                    "name": str(item.get("name") or ""),
                    "arguments": str(item.get("arguments") or ""),
                },
            }
            last = messages[-1] if messages else None
            if last is not None and last["role"] == "assistant" and "tool_calls" in last:
                last["tool_calls"].append(call)
            else:
                messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
        elif kind == "function_call_output":
            output = item.get("output")
            messages.append(
                {
                    "role": "tool",
                    "tool_call_id": str(item.get("call_id") or ""),
                    "content": output if isinstance(output, str) else json.dumps(output),
                }
            )
        else:
            raise UnsupportedParameter(
                param,
                f"{param}: only message, function_call and function_call_output items are "
                "supported.",
            )
    # The same checks as chat messages: roles, parts, tool calls.
    try:
        return [ChatMessageIn.model_validate(m).upstream() for m in messages]
    except ValidationError as exc:
        raise InvalidParameter(
            "input", f"The input items do not fit: {exc.errors()[0]['msg']}"
        ) from exc


def chat_tools(body: ResponsesRequest) -> dict[str, Any]:
    """The request's function tools and tool choice, in Chat Completions' form."""
    extra: dict[str, Any] = {}
    if body.tools:
        tools = []
        for number, tool in enumerate(body.tools):
            if tool.get("type") != "function" or not isinstance(tool.get("name"), str):
                raise UnsupportedParameter(
                    f"tools[{number}]", "Only function tools are supported (type: function)."
                )
            function = {
                key: tool[key]
                for key in ("name", "description", "parameters", "strict")
                if tool.get(key) is not None
            }
            tools.append({"type": "function", "function": function})
        extra["tools"] = tools
    choice = body.tool_choice
    if isinstance(choice, dict) and choice.get("type") == "function" and "name" in choice:
        extra["tool_choice"] = {"type": "function", "function": {"name": choice["name"]}}
    elif choice is not None:
        extra["tool_choice"] = choice
    if body.parallel_tool_calls is not None:
        extra["parallel_tool_calls"] = body.parallel_tool_calls
    return extra


@dataclass
class ResponseBuilder:
    """One response being answered: its object, and its stream of events."""

    id: str
    model: str
    body: ResponsesRequest
    created_at: int = field(default_factory=lambda: int(time.time()))
    parts: ReplyParts = field(default_factory=ReplyParts)
    status: str = "in_progress"
    _sequence: int = 0
    # Output items in the order they were opened: ("message", None) or ("function_call", index).
    _items: list[tuple[str, int | None]] = field(default_factory=list)
    _ids: dict[tuple[str, int | None], str] = field(default_factory=dict)

    def _item_id(self, key: tuple[str, int | None]) -> str:
        if key not in self._ids:
            prefix = "msg" if key[0] == "message" else "fc"
            self._ids[key] = f"{prefix}_{uuid.uuid4().hex}"
        return self._ids[key]

    def output(self) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        done = "in_progress" if self.status == "in_progress" else "completed"
        keys = list(self._items)
        if self.status != "in_progress":  # the whole answer, even if nothing streamed
            if self.parts.text and ("message", None) not in keys:
                keys.insert(0, ("message", None))
            keys += [("function_call", i) for i in sorted(self.parts.tool_calls)]
            keys = list(dict.fromkeys(keys))
        for key in keys:
            items.append(self._item(key, done))
        return items

    def _item(self, key: tuple[str, int | None], status: str) -> dict[str, Any]:
        if key[0] == "message":
            text = "".join(self.parts.text)
            return {
                "id": self._item_id(key),
                "type": "message",
                "status": status,
                "role": "assistant",
                "content": [{"type": "output_text", "text": text, "annotations": []}],
            }
        assert key[1] is not None
        call = self.parts.tool_calls[key[1]]
        return {
            "id": self._item_id(key),
            "type": "function_call",
            "status": status,
            "call_id": call["id"],
            "name": call["function"]["name"],
            "arguments": call["function"]["arguments"],
        }

    def response(self) -> dict[str, Any]:
        body = self.body
        usage = self.parts.usage
        answer: dict[str, Any] = {
            "id": self.id,
            "object": "response",
            "created_at": self.created_at,
            "status": self.status,
            "model": self.model,
            "output": self.output(),
            "error": None,
            "incomplete_details": None,
            "instructions": body.instructions,
            "previous_response_id": body.previous_response_id,
            "tools": body.tools or [],
            "tool_choice": body.tool_choice or "auto",
            "parallel_tool_calls": body.parallel_tool_calls is not False,
            "temperature": body.temperature,
            "top_p": body.top_p,
            "max_output_tokens": body.max_output_tokens,
            "metadata": body.metadata or {},
            "store": body.store,
            "text": {"format": {"type": "text"}},
            "usage": {
                "input_tokens": usage["prompt_tokens"],
                "input_tokens_details": {"cached_tokens": 0},
                "output_tokens": usage["completion_tokens"],
                "output_tokens_details": {"reasoning_tokens": 0},
                "total_tokens": usage["total_tokens"],
            }
            if usage is not None and self.status != "in_progress"
            else None,
        }
        error = self.parts.error
        if self.status == "failed" and error is not None:
            answer["error"] = {"code": error.get("code"), "message": error.get("message")}
        if self.status == "incomplete":
            answer["incomplete_details"] = {"reason": "content_filter"}
        if (parley := self.parts.parley()) is not None:
            answer["parley"] = parley
        return answer

    def end(self) -> None:
        """Sets the status once the reply's last event is in."""
        parts = self.parts
        if parts.blocked:
            self.status = "incomplete"
        elif parts.error is not None:
            self.status = "failed"
        else:
            self.status = "completed"

    def assistant_message(self) -> dict[str, Any]:
        """The reply as a chat message, for the conversation a later turn continues."""
        message: dict[str, Any] = {"role": "assistant", "content": "".join(self.parts.text)}
        if self.parts.tool_calls:
            message["tool_calls"] = [
                self.parts.tool_calls[i] for i in sorted(self.parts.tool_calls)
            ]
        return message

    # --- streaming --------------------------------------------------------------------------

    def _event(self, kind: str, **data: Any) -> bytes:
        self._sequence += 1
        payload = {"type": kind, "sequence_number": self._sequence, **data}
        return f"event: {kind}\ndata: {_COMPACT_JSON.encode(payload)}\n\n".encode()

    def _open(self, key: tuple[str, int | None]) -> list[bytes]:
        self._items.append(key)
        index = len(self._items) - 1
        frames = [
            self._event(
                "response.output_item.added",
                output_index=index,
                item=self._item(key, "in_progress"),
            )
        ]
        if key[0] == "message":
            frames.append(
                self._event(
                    "response.content_part.added",
                    item_id=self._item_id(key),
                    output_index=index,
                    content_index=0,
                    part={"type": "output_text", "text": "", "annotations": []},
                )
            )
        return frames

    async def events(self, events: AsyncIterator[ReplyEvent], on_end: Any) -> AsyncIterator[bytes]:
        """The stream: response.created, the items' events, then response.completed (or
        response.failed). `on_end` (a coroutine function) runs before the last event: the
        response is stored by then."""
        parts = self.parts
        yield self._event("response.created", response=self.response())
        yield self._event("response.in_progress", response=self.response())
        async for event in events:
            parts.add(event)
            if event.name == "delta":
                key: tuple[str, int | None] = ("message", None)
                if key not in self._items:
                    for frame in self._open(key):
                        yield frame
                yield self._event(
                    "response.output_text.delta",
                    item_id=self._item_id(key),
                    output_index=self._items.index(key),
                    content_index=0,
                    delta=event.data["content"],
                    logprobs=[],
                )
            elif event.name == "tool_call_delta":
                key = ("function_call", int(event.data["index"]))
                if key not in self._items:
                    for frame in self._open(key):
                        yield frame
                fragment = (event.data.get("function") or {}).get("arguments") or ""
                if fragment:
                    yield self._event(
                        "response.function_call_arguments.delta",
                        item_id=self._item_id(key),
                        output_index=self._items.index(key),
                        delta=fragment,
                    )
            elif event.final:
                break
        self.end()
        for index, key in enumerate(self._items):
            item = self._item(key, "completed")
            if key[0] == "message":
                text = item["content"][0]["text"]
                yield self._event(
                    "response.output_text.done",
                    item_id=item["id"],
                    output_index=index,
                    content_index=0,
                    text=text,
                    logprobs=[],
                )
                yield self._event(
                    "response.content_part.done",
                    item_id=item["id"],
                    output_index=index,
                    content_index=0,
                    part=item["content"][0],
                )
            else:
                yield self._event(
                    "response.function_call_arguments.done",
                    item_id=item["id"],
                    output_index=index,
                    arguments=item["arguments"],
                )
            yield self._event("response.output_item.done", output_index=index, item=item)
        await on_end()
        if self.status == "failed":
            yield self._event("response.failed", response=self.response())
        elif self.status == "incomplete":
            yield self._event("response.incomplete", response=self.response())
        else:
            yield self._event("response.completed", response=self.response())
