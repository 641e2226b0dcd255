"""The events a reply streams, shared by SSE and the WebSocket.

SSE frames are `event: <name>` with a JSON `data:` line:
- `start`  {chat_id, user_message, assistant_message_id, model} (chats) or {generation_id, model}
- `delta`  {content}: the next piece of text
- `usage`  {prompt_tokens, completion_tokens, estimated}
- `done`   the saved assistant message (or generation), status `complete` or `cancelled`
- `error`  {code, message}: the reply failed or was cut short; what came is saved
"""

import json
from dataclasses import dataclass
from typing import Any, Literal

EventName = Literal["start", "delta", "usage", "done", "error"]

SSE_HEADERS = {
    # Proxies (nginx, Cloudflare) must pass every event on at once instead of buffering.
    "Cache-Control": "no-cache, no-transform",
    "X-Accel-Buffering": "no",
}


@dataclass(frozen=True)
class ReplyEvent:
    name: EventName
    data: dict[str, Any]

    def sse(self) -> bytes:
        """One `event:`/`data:` frame, encoded as sse-starlette would, ready to write.

        JSON escapes every line break, so the data is always a single `data:` line."""
        data = json.dumps(self.data, separators=(",", ":"))
        return f"event: {self.name}\r\ndata: {data}\r\n\r\n".encode()

    def ws(self) -> dict[str, Any]:
        return {"event": self.name, "data": self.data}


def delta(text: str) -> ReplyEvent:
    return ReplyEvent("delta", {"content": text})


def error(code: str, message: str, **extra: Any) -> ReplyEvent:
    return ReplyEvent("error", {"code": code, "message": message, **extra})
