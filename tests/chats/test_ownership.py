"""Another user's chat or message answers 404 on every endpoint, exactly like a missing one."""

import uuid

import pytest

from tests.chats.conftest import add_turns, new_chat
from tests.support.api import assert_error

CHAT_ENDPOINTS = [
    ("GET", "/api/chats/{chat}", None),
    ("PATCH", "/api/chats/{chat}", {"title": "mine now"}),
    ("DELETE", "/api/chats/{chat}", None),
    ("DELETE", "/api/chats/{chat}?permanent=true", None),
    ("POST", "/api/chats/{chat}/restore", None),
    ("GET", "/api/chats/{chat}/messages", None),
    ("GET", "/api/chats/{chat}/export", None),
    ("GET", "/api/chats/{chat}/export?format=markdown", None),
]


@pytest.fixture
async def victim(client, other_user, app):
    """A chat of the other user, with messages."""
    chat = await new_chat(client, other_user, title="Private")
    messages = await add_turns(app, other_user, chat["id"], 2, text="private")
    return {"chat": chat["id"], "message": str(messages[0].id)}


class TestOtherUsersChatIs404:
    @pytest.mark.parametrize(("method", "path", "body"), CHAT_ENDPOINTS)
    async def test_endpoint(self, client, user, other_user, victim, method, path, body):
        response = await client.request(
            method, path.format(**victim), json=body, headers=user.headers
        )
        assert_error(response, 404, "chat_not_found")
        # Nothing changed for the owner.
        owner_view = await client.get(f"/api/chats/{victim['chat']}", headers=other_user.headers)
        assert owner_view.status_code == 200
        assert owner_view.json()["title"] == "Private"

    @pytest.mark.parametrize(("method", "path", "body"), CHAT_ENDPOINTS)
    async def test_same_answer_as_a_missing_chat(self, client, user, method, path, body):
        response = await client.request(
            method, path.format(chat=uuid.uuid4()), json=body, headers=user.headers
        )
        assert_error(response, 404, "chat_not_found")


class TestOtherUsersMessageIs404:
    @pytest.mark.parametrize(
        "path",
        [
            "/api/chats/{chat}/messages?leaf_id={message}",
            "/api/chats/{chat}/export?leaf_id={message}",
        ],
    )
    async def test_as_leaf_in_my_own_chat(self, client, user, victim, path):
        mine = await new_chat(client, user)
        response = await client.get(
            path.format(chat=mine["id"], message=victim["message"]), headers=user.headers
        )
        assert_error(response, 404, "message_not_found")

    async def test_their_cursor_in_my_chat(self, client, user, other_user, victim):
        theirs = await client.get(
            f"/api/chats/{victim['chat']}/messages?limit=1", headers=other_user.headers
        )
        mine = await new_chat(client, user)
        response = await client.get(
            f"/api/chats/{mine['id']}/messages",
            params={"cursor": theirs.json()["older_cursor"]},
            headers=user.headers,
        )
        assert_error(response, 400, "invalid_cursor")


class TestEveryChatEndpointNeedsAuthentication:
    @pytest.mark.parametrize(
        ("method", "path", "body"), [*CHAT_ENDPOINTS, ("GET", "/api/chats", None)]
    )
    async def test_endpoint(self, client, victim, method, path, body):
        response = await client.request(method, path.format(**victim), json=body)
        assert_error(response, 401)
