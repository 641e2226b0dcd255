"""The events a reply streams, as SSE frames or WebSocket messages, and the SSE response.

SSE frames are `event: <name>` with a JSON `data:` line:
- `start`  {chat_id, user_message, assistant_message_id, model} (chats) or {generation_id, model}
- `sources` {sources, query, retrieval}: what retrieval put in the prompt (chats that name
  collections), before the first delta
- `delta`  {content}: the next piece of text
- `tool_call_delta` {index, id, type, function: {name, arguments}}: a piece of a tool call the
  model makes, relayed as the upstream sent it (only requests that offer tools: /v1)
- `tool_call` {id, name, arguments}: a tool Parley runs for the model (chats with tools), once
  its arguments are complete
- `approval_required` {id, name, arguments}: the call waits for the user's approval
  (POST .../tool-approvals)
- `tool_result` {id, name, content, is_error, duration_ms}: what the call gave the model
- `usage`  {prompt_tokens, completion_tokens, estimated}
- `done`   the saved assistant message (or generation), status `complete` or `cancelled`
- `error`  {code, message}: the reply failed or was cut short; what came is saved
  (`content_blocked` adds `category`: which guardrail check stopped it)

Every event of a reply carries an `id:`, its sequence number within the reply (1 is `start`), so
a client that lost its connection rejoins with `Last-Event-ID` and gets exactly what it missed
(app/generation/resume.py).
"""

import json
from collections.abc import MutableMapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from sse_starlette import EventSourceResponse
from starlette.types import Send

EventName = Literal[
    "start",
    "sources",
    "delta",
    "tool_call_delta",
    "tool_call",
    "approval_required",
    "tool_result",
    "usage",
    "done",
    "error",
]

SSE_HEADERS = {
    # Proxies (nginx, Cloudflare) must pass every event on at once instead of buffering.
    "Cache-Control": "no-cache, no-transform",
    "X-Accel-Buffering": "no",
}


class EventStream(EventSourceResponse):
    """sse-starlette's response, minus a cancel scope around every frame when no send timeout
    is set (ours never is: a client too slow to read only delays its own copy of the reply).

    An anyio cancel scope costs about as much as the write it guards, and this runs for every
    token of every reply."""

    async def _send_with_timeout(self, send: Send, message: MutableMapping[str, Any]) -> None:
        if self.send_timeout is None:
            await send(message)
        else:
            await super()._send_with_timeout(send, message)


def event_stream_class(sender: Literal["fast", "sse-starlette"]) -> type[EventSourceResponse]:
    """The SSE response for the setting SSE_SENDER: `EventStream`, or sse-starlette's own (the
    way back should an upgrade of sse-starlette break the override)."""
    return EventStream if sender == "fast" else EventSourceResponse


# json.dumps with any option builds a new encoder per call; this runs for every token.
_COMPACT_JSON = json.JSONEncoder(separators=(",", ":"))


@dataclass(frozen=True)
class ReplyEvent:
    name: EventName
    data: dict[str, Any]
    # The event's sequence number within its reply (from 1), given when it enters the reply's
    # log (ReplyLog.emit); 0 for events outside a reply (a WebSocket's own errors).
    id: int = 0

    def sse(self) -> bytes:
        """One `id:`/`event:`/`data:` frame, encoded as sse-starlette would, ready to write.

        JSON escapes every line break, so the data is always a single `data:` line."""
        data = _COMPACT_JSON.encode(self.data)
        if self.id:
            return f"id: {self.id}\r\nevent: {self.name}\r\ndata: {data}\r\n\r\n".encode()
        return f"event: {self.name}\r\ndata: {data}\r\n\r\n".encode()

    def ws(self) -> dict[str, Any]:
        if self.id:
            return {"event": self.name, "data": self.data, "id": self.id}
        return {"event": self.name, "data": self.data}

    def numbered(self, number: int) -> "ReplyEvent":
        return ReplyEvent(self.name, self.data, number)

    @property
    def final(self) -> bool:
        """`done` and `error` end a reply: nothing follows them."""
        return self.name in ("done", "error")


def delta(text: str) -> ReplyEvent:
    return ReplyEvent("delta", {"content": text})


def next_event(log: Sequence[ReplyEvent], cursor: int) -> tuple[ReplyEvent, int]:
    """The event at `cursor` in a reply's log and where the next one is. A reader that fell
    behind gets the waiting deltas as one, numbered as its last part: one write instead of many,
    which is what lets a busy server catch up, and a rejoin from that number misses nothing."""
    event = log[cursor]
    cursor += 1
    if event.name != "delta" or cursor >= len(log) or log[cursor].name != "delta":
        return event, cursor
    parts = [event.data["content"]]
    while cursor < len(log) and log[cursor].name == "delta":
        event = log[cursor]
        parts.append(event.data["content"])
        cursor += 1
    return ReplyEvent("delta", {"content": "".join(parts)}, event.id), cursor


def error(code: str, message: str, **extra: Any) -> ReplyEvent:
    return ReplyEvent("error", {"code": code, "message": message, **extra})
