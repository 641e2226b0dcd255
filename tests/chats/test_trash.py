"""The trash: DELETE moves a chat there, it can be listed and restored for TRASH_DAYS, then the
purge deletes it; DELETE ?permanent=true deletes at once."""

import uuid
from datetime import datetime, timedelta

from app.chats.models import Chat
from app.chats.trash import purge_trash
from app.core.db import utcnow
from tests.chats.conftest import add_turns, chat_service, ids, new_chat
from tests.support.api import assert_error


async def trash(client, user, chat_id: str) -> None:
    response = await client.delete(f"/api/chats/{chat_id}", headers=user.headers)
    assert response.status_code == 204, response.text


async def listed(client, user, **params) -> list[str]:
    response = await client.get("/api/chats", params=params, headers=user.headers)
    assert response.status_code == 200, response.text
    return ids(response.json()["items"])


async def trashed_at(app, chat_id: str, when: datetime) -> None:
    """Moves the chat's time in the trash back, as if it had been deleted at `when`."""
    async with app.state.runtime.db.transaction() as session:
        chat = await session.get(Chat, uuid.UUID(chat_id))
        assert chat is not None
        chat.deleted_at = when


async def message_count(app, chat_id: str) -> int:
    async with chat_service(app) as service:
        return len(await service.messages.all_in_chat(uuid.UUID(chat_id)))


class TestMoveToTrash:
    async def test_chat_leaves_the_list_and_shows_in_the_trash(self, client, user, chat, app):
        await add_turns(app, user, chat["id"], 2)
        kept = await new_chat(client, user, title="kept")

        await trash(client, user, chat["id"])

        assert await listed(client, user) == [kept["id"]]
        response = await client.get("/api/chats", params={"trashed": "true"}, headers=user.headers)
        [item] = response.json()["items"]
        assert item["id"] == chat["id"]
        assert item["title"] == "Trip to Lisbon"
        assert item["deleted_at"] is not None
        assert await message_count(app, chat["id"]) == 4

    async def test_a_trashed_chat_is_404_for_everything_but_restore_and_delete(
        self, client, user, chat, app
    ):
        await add_turns(app, user, chat["id"], 1)
        await trash(client, user, chat["id"])
        base = f"/api/chats/{chat['id']}"
        for method, path, body in [
            ("GET", base, None),
            ("PATCH", base, {"title": "renamed"}),
            ("GET", f"{base}/messages", None),
            ("GET", f"{base}/export", None),
            ("POST", f"{base}/messages", {"content": "are you there?"}),
            ("POST", f"{base}/summarize", None),
        ]:
            response = await client.request(method, path, json=body, headers=user.headers)
            assert_error(response, 404, "chat_not_found")
        assert await message_count(app, chat["id"]) == 2

    async def test_trashing_twice_keeps_the_first_time(self, client, user, chat, app):
        await trash(client, user, chat["id"])
        first = (await client.get("/api/chats?trashed=true", headers=user.headers)).json()
        await trash(client, user, chat["id"])
        second = (await client.get("/api/chats?trashed=true", headers=user.headers)).json()
        assert first["items"][0]["deleted_at"] == second["items"][0]["deleted_at"]

    async def test_search_finds_trashed_chats_only_in_the_trash(self, client, user, chat, app):
        await add_turns(app, user, chat["id"], 1, text="zanzibar")
        await trash(client, user, chat["id"])
        assert await listed(client, user, q="zanzibar") == []
        assert await listed(client, user, q="zanzibar", trashed="true") == [chat["id"]]

    async def test_archived_chats_go_to_the_same_trash(self, client, user, chat):
        archived = await new_chat(client, user, title="old news")
        await client.patch(
            f"/api/chats/{archived['id']}", json={"archived": True}, headers=user.headers
        )
        await trash(client, user, archived["id"])
        await trash(client, user, chat["id"])
        assert set(await listed(client, user, trashed="true")) == {chat["id"], archived["id"]}
        assert await listed(client, user, archived="true") == []


class TestRestore:
    async def test_restore_brings_the_chat_back_with_its_messages(self, client, user, chat, app):
        await add_turns(app, user, chat["id"], 2, text="lisbon")
        await trash(client, user, chat["id"])

        response = await client.post(f"/api/chats/{chat['id']}/restore", headers=user.headers)

        assert response.status_code == 200, response.text
        assert response.json()["deleted_at"] is None
        assert await listed(client, user) == [chat["id"]]
        assert await listed(client, user, trashed="true") == []
        page = await client.get(f"/api/chats/{chat['id']}/messages", headers=user.headers)
        contents = [m["content"] for m in page.json()["items"]]
        assert contents == [
            "lisbon question 0",
            "lisbon answer 0",
            "lisbon question 1",
            "lisbon answer 1",
        ]
        sent = await client.post(
            f"/api/chats/{chat['id']}/messages", json={"content": "back"}, headers=user.headers
        )
        assert sent.status_code == 200, sent.text

    async def test_an_archived_chat_goes_back_to_the_archive(self, client, user, chat):
        await client.patch(
            f"/api/chats/{chat['id']}", json={"archived": True}, headers=user.headers
        )
        await trash(client, user, chat["id"])
        await client.post(f"/api/chats/{chat['id']}/restore", headers=user.headers)
        assert await listed(client, user, archived="true") == [chat["id"]]

    async def test_restoring_a_chat_not_in_the_trash_changes_nothing(self, client, user, chat):
        response = await client.post(f"/api/chats/{chat['id']}/restore", headers=user.headers)
        assert response.status_code == 200, response.text
        assert response.json()["title"] == chat["title"]
        assert await listed(client, user) == [chat["id"]]

    async def test_past_trash_days_it_is_gone_even_before_the_purge(self, client, user, chat, app):
        await trash(client, user, chat["id"])
        await trashed_at(app, chat["id"], utcnow() - timedelta(days=30, minutes=1))

        assert await listed(client, user, trashed="true") == []
        response = await client.post(f"/api/chats/{chat['id']}/restore", headers=user.headers)
        assert_error(response, 404, "chat_not_found")

    async def test_just_inside_trash_days_it_can_be_restored(self, client, user, chat, app):
        await trash(client, user, chat["id"])
        await trashed_at(app, chat["id"], utcnow() - timedelta(days=29, hours=23))
        response = await client.post(f"/api/chats/{chat['id']}/restore", headers=user.headers)
        assert response.status_code == 200, response.text


class TestOtherUsersTrash:
    async def test_another_users_trashed_chat_is_404_everywhere(
        self, client, user, other_user, app
    ):
        theirs = await new_chat(client, other_user, title="Private")
        await trash(client, other_user, theirs["id"])
        base = f"/api/chats/{theirs['id']}"
        for method, path in [
            ("POST", f"{base}/restore"),
            ("DELETE", base),
            ("DELETE", f"{base}?permanent=true"),
            ("GET", base),
        ]:
            assert_error(
                await client.request(method, path, headers=user.headers), 404, "chat_not_found"
            )
        assert await listed(client, user, trashed="true") == []
        assert await listed(client, other_user, trashed="true") == [theirs["id"]]


class TestDeleteForever:
    async def test_from_the_trash(self, client, user, chat, app):
        await add_turns(app, user, chat["id"], 1)
        await trash(client, user, chat["id"])
        response = await client.delete(
            f"/api/chats/{chat['id']}", params={"permanent": "true"}, headers=user.headers
        )
        assert response.status_code == 204
        assert await listed(client, user, trashed="true") == []
        restored = await client.post(f"/api/chats/{chat['id']}/restore", headers=user.headers)
        assert_error(restored, 404, "chat_not_found")
        assert await message_count(app, chat["id"]) == 0


class TestPurge:
    async def test_purges_only_chats_past_their_time_in_the_trash(self, client, user, app):
        expired, recent, active = [await new_chat(client, user, title=t) for t in "abc"]
        for chat in (expired, recent, active):
            await add_turns(app, user, chat["id"], 1)
        await trash(client, user, expired["id"])
        await trash(client, user, recent["id"])
        await trashed_at(app, expired["id"], utcnow() - timedelta(days=31))

        runtime = app.state.runtime
        assert await purge_trash(runtime.db, runtime.settings) == 1

        async with runtime.db.transaction() as session:
            assert await session.get(Chat, uuid.UUID(expired["id"])) is None
            assert await session.get(Chat, uuid.UUID(recent["id"])) is not None
            assert await session.get(Chat, uuid.UUID(active["id"])) is not None
        assert await message_count(app, expired["id"]) == 0
        assert await message_count(app, recent["id"]) == 2
        assert await listed(client, user, trashed="true") == [recent["id"]]
        assert await purge_trash(runtime.db, runtime.settings) == 0

    async def test_purges_in_batches_until_done(self, client, user, app):
        chats = [await new_chat(client, user, title=f"chat {i}") for i in range(5)]
        for chat in chats[:2]:
            await add_turns(app, user, chat["id"], 1)
        for chat in chats:
            await trash(client, user, chat["id"])
            await trashed_at(app, chat["id"], utcnow() - timedelta(days=40))
        runtime = app.state.runtime
        assert await purge_trash(runtime.db, runtime.settings, batch=2) == 5
        async with runtime.db.transaction() as session:
            for chat in chats:
                assert await session.get(Chat, uuid.UUID(chat["id"])) is None
        assert [await message_count(app, chat["id"]) for chat in chats[:2]] == [0, 0]
