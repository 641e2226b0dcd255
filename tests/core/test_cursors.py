"""Crafted cursors are 400 invalid_cursor on every cursor-paginated listing, never a 500."""

import base64
import json

import pytest

from tests.support.api import assert_error, register


def craft(payload: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(payload).encode()).decode().rstrip("=")


TIME = "2020-01-01T00:00:00+00:00"
ID = "00000000-0000-4000-8000-000000000000"
CRAFTED = {
    "chats": [
        {"k": "chats", "p": False, "t": TIME, "i": 5},
        {"k": "chats", "p": "yes", "t": TIME, "i": ID},
        {"k": "chats", "p": False, "t": "2020-01-01T00:00:00", "i": ID},
        {"k": "chats", "p": False, "t": 1577836800, "i": ID},
        {"k": "chats", "p": False, "t": TIME, "i": ID, "extra": 1},
        {"k": "messages", "d": "older", "b": ID, "t": ID},
        {"k": "chats"},
    ],
    "messages": [
        {"k": "messages", "d": "older", "b": 5, "t": ID},
        {"k": "messages", "d": "sideways", "b": ID, "t": ID},
        {"k": "messages", "d": ["older"], "b": ID, "t": ID},
        {"k": "chats", "p": False, "t": TIME, "i": ID},
    ],
    "generations": [
        {"k": "generations", "t": TIME, "i": 5},
        {"k": "generations", "t": None, "i": ID},
        {"k": "generations", "t": TIME, "i": {"a": 1}},
    ],
}
NOT_CURSORS = ["!!!", "a" * 600, craft([1, 2]), craft("chats"), "e30", "_-_-"]


@pytest.fixture
async def paths(client):
    user = await register(client)
    chat = (await client.post("/api/chats", json={}, headers=user.headers)).json()
    return user, {
        "chats": "/api/chats",
        "messages": f"/api/chats/{chat['id']}/messages",
        "generations": "/api/generations",
    }


class TestCraftedCursors:
    @pytest.mark.parametrize("listing", ["chats", "messages", "generations"])
    async def test_every_malformed_cursor_is_400(self, client, paths, listing):
        user, by_listing = paths
        cursors = [craft(payload) for payload in CRAFTED[listing]] + NOT_CURSORS
        for cursor in cursors:
            response = await client.get(
                by_listing[listing], params={"cursor": cursor}, headers=user.headers
            )
            assert_error(response, 400, "invalid_cursor")

    async def test_a_real_cursor_still_pages(self, client):
        user = await register(client)
        for title in ("one", "two", "three"):
            await client.post("/api/chats", json={"title": title}, headers=user.headers)
        first = (await client.get("/api/chats?limit=2", headers=user.headers)).json()
        second = await client.get(
            "/api/chats", params={"limit": 2, "cursor": first["next_cursor"]}, headers=user.headers
        )
        titles = [c["title"] for c in first["items"] + second.json()["items"]]
        assert titles == ["three", "two", "one"]
