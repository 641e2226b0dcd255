"""A small, strict Server-Sent Events reader for tests (the format as browsers parse it)."""

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx


@dataclass
class SSEEvent:
    event: str
    data: Any  # parsed JSON
    id: str | None = None  # the event's own `id:` field, if it had one


async def iter_sse(response: httpx.Response) -> AsyncIterator[SSEEvent]:
    """Yields each event as it arrives; comment lines (keep-alives) are skipped."""
    name = "message"
    data: list[str] = []
    event_id: str | None = None
    async for line in response.aiter_lines():
        if line == "":
            if data:
                yield SSEEvent(name, json.loads("\n".join(data)), event_id)
            name, data, event_id = "message", [], None
        elif line.startswith(":"):
            continue
        else:
            field, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if field == "event":
                name = value
            elif field == "id":
                event_id = value
            elif field == "data":
                data.append(value)


async def collect_sse(response: httpx.Response) -> list[SSEEvent]:
    assert response.status_code == 200, (await response.aread()).decode()
    assert response.headers["content-type"].startswith("text/event-stream")
    return [event async for event in iter_sse(response)]


def names(events: list[SSEEvent]) -> list[str]:
    return [e.event for e in events]


def text_of(events: list[SSEEvent]) -> str:
    return "".join(e.data["content"] for e in events if e.event == "delta")
