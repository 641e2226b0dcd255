"""The SSE events as /openapi.json describes them: every reply route names every event a reply
sends, `sources` included, in its schema and its description."""

from typing import Any, get_args

import httpx

from app.generation.reply_events import EventName

EVENTS = set(get_args(EventName))
STREAMING_ROUTES = {
    ("post", "/api/chats/{chat_id}/messages"),
    ("post", "/api/chats/start"),
    ("patch", "/api/chats/{chat_id}/messages/{message_id}"),
    ("post", "/api/chats/{chat_id}/messages/{message_id}/regenerate"),
    ("get", "/api/chats/{chat_id}/messages/{message_id}/stream"),
    ("post", "/api/generate"),
}


def event_stream_answers(openapi: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    """(method, path) -> its 200 answer, for every operation that can answer with SSE."""
    found = {}
    for path, operations in openapi["paths"].items():
        for method, operation in operations.items():
            answer = operation.get("responses", {}).get("200", {})
            if "text/event-stream" in answer.get("content", {}):
                found[(method, path)] = answer
    return found


async def test_every_reply_route_lists_every_event(client: httpx.AsyncClient) -> None:
    response = await client.get("/openapi.json")
    assert response.status_code == 200
    answers = event_stream_answers(response.json())
    assert set(answers) == STREAMING_ROUTES
    assert "sources" in EVENTS
    for route, answer in answers.items():
        schema = answer["content"]["text/event-stream"]["schema"]
        assert set(schema["properties"]["event"]["enum"]) == EVENTS, route


async def test_the_description_of_a_send_names_sources(client: httpx.AsyncClient) -> None:
    openapi = (await client.get("/openapi.json")).json()
    answer = openapi["paths"]["/api/chats/{chat_id}/messages"]["post"]["responses"]["200"]
    for name in ("start", "sources", "delta", "usage", "done", "error"):
        assert f"`{name}`" in answer["description"], name
