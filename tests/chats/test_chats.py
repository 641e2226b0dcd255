import uuid
from datetime import datetime

import pytest

from tests.chats.conftest import add_turns, chat_service, ids, load_chat, new_chat
from tests.support.api import assert_error, register


async def list_all(client, user, **params):
    """Follows next_cursor to the end; returns every page's ids."""
    pages, cursor = [], None
    while True:
        query = {**params, **({"cursor": cursor} if cursor else {})}
        response = await client.get("/api/chats", params=query, headers=user.headers)
        assert response.status_code == 200, response.text
        body = response.json()
        pages.append(ids(body["items"]))
        cursor = body["next_cursor"]
        if cursor is None:
            return pages


class TestCreateChat:
    async def test_defaults(self, client, user):
        response = await client.post("/api/chats", json={}, headers=user.headers)
        assert response.status_code == 201, response.text
        chat = response.json()
        assert chat["title"] is None
        assert chat["mode"] == "chat" and chat["mode_params"] == {}
        assert chat["model"] is None and chat["temperature"] is None
        assert chat["pinned"] is False and chat["archived"] is False
        uuid.UUID(chat["id"])
        created = datetime.fromisoformat(chat["created_at"])
        offset = created.utcoffset()
        assert offset is not None and offset.total_seconds() == 0
        assert chat["last_message_at"] == chat["created_at"]

    async def test_all_settings(self, client, user):
        chat = await new_chat(
            client,
            user,
            title="  Lisbon  ",
            model="llama-3-8b",
            system_prompt="Be brief.",
            temperature=0.3,
            top_p=0.9,
            max_tokens=512,
            pinned=True,
        )
        assert chat["title"] == "Lisbon"
        assert (chat["model"], chat["system_prompt"]) == ("llama-3-8b", "Be brief.")
        assert (chat["temperature"], chat["top_p"], chat["max_tokens"]) == (0.3, 0.9, 512)
        assert chat["pinned"] is True

    @pytest.mark.parametrize(
        ("field", "value"),
        [
            ("temperature", 2.5),
            ("temperature", -0.1),
            ("top_p", 0),
            ("top_p", 1.5),
            ("max_tokens", 0),
            ("max_tokens", 10_000_000),
            ("title", ""),
            ("title", "x" * 201),
            ("model", ""),
            ("system_prompt", "x" * 20_001),
        ],
    )
    async def test_out_of_bounds_settings_name_the_field(self, client, user, field, value):
        response = await client.post("/api/chats", json={field: value}, headers=user.headers)
        error = assert_error(response, 422, "validation_error")
        assert [d["field"] for d in error["details"]] == [f"body.{field}"]

    async def test_requires_authentication(self, client):
        assert_error(await client.post("/api/chats", json={}), 401)


class TestGetChat:
    async def test_returns_the_chat(self, client, user, chat):
        response = await client.get(f"/api/chats/{chat['id']}", headers=user.headers)
        assert response.status_code == 200
        assert response.json() == chat

    async def test_unknown_id_is_404(self, client, user):
        response = await client.get(f"/api/chats/{uuid.uuid4()}", headers=user.headers)
        assert_error(response, 404, "chat_not_found")

    async def test_malformed_id_is_422(self, client, user):
        response = await client.get("/api/chats/not-a-uuid", headers=user.headers)
        assert_error(response, 422, "validation_error")


class TestUpdateChat:
    async def test_rename_pin_archive(self, client, user, chat):
        response = await client.patch(
            f"/api/chats/{chat['id']}",
            json={"title": "Porto instead", "pinned": True, "archived": True},
            headers=user.headers,
        )
        assert response.status_code == 200, response.text
        body = response.json()
        assert (body["title"], body["pinned"], body["archived"]) == ("Porto instead", True, True)
        assert body["updated_at"] >= chat["updated_at"]
        again = await client.get(f"/api/chats/{chat['id']}", headers=user.headers)
        assert again.json()["title"] == "Porto instead"

    async def test_only_sent_fields_change(self, client, user):
        chat = await new_chat(client, user, title="Keep", temperature=0.5, model="m1")
        response = await client.patch(
            f"/api/chats/{chat['id']}", json={"top_p": 0.5}, headers=user.headers
        )
        body = response.json()
        assert (body["title"], body["temperature"], body["model"]) == ("Keep", 0.5, "m1")
        assert body["top_p"] == 0.5

    async def test_null_resets_a_setting_to_default(self, client, user):
        chat = await new_chat(client, user, temperature=0.5, system_prompt="Pirate voice.")
        response = await client.patch(
            f"/api/chats/{chat['id']}",
            json={"temperature": None, "system_prompt": None},
            headers=user.headers,
        )
        assert response.json()["temperature"] is None
        assert response.json()["system_prompt"] is None

    async def test_null_does_not_clear_flags(self, client, user):
        chat = await new_chat(client, user, pinned=True)
        response = await client.patch(
            f"/api/chats/{chat['id']}", json={"pinned": None}, headers=user.headers
        )
        assert response.json()["pinned"] is True

    async def test_bad_setting_is_422_and_changes_nothing(self, client, user, chat):
        response = await client.patch(
            f"/api/chats/{chat['id']}",
            json={"title": "New", "temperature": 9},
            headers=user.headers,
        )
        assert_error(response, 422, "validation_error")
        again = await client.get(f"/api/chats/{chat['id']}", headers=user.headers)
        assert again.json()["title"] == chat["title"]


class TestDeleteChat:
    """DELETE ?permanent=true; the trash (DELETE without it) is in test_trash.py."""

    async def test_deletes_chat_and_its_messages(self, client, user, chat, app):
        await add_turns(app, user, chat["id"], 3)
        response = await client.delete(
            f"/api/chats/{chat['id']}", params={"permanent": "true"}, headers=user.headers
        )
        assert response.status_code == 204
        assert_error(await client.get(f"/api/chats/{chat['id']}", headers=user.headers), 404)
        listed = await client.get("/api/chats", headers=user.headers)
        assert chat["id"] not in ids(listed.json()["items"])
        async with chat_service(app) as service:
            left = await service.messages.all_in_chat(uuid.UUID(chat["id"]))
        assert left == []

    async def test_deleted_messages_no_longer_match_search(self, client, user, chat, app):
        await add_turns(app, user, chat["id"], 1, text="zanzibar")
        await client.delete(f"/api/chats/{chat['id']}", headers=user.headers)
        response = await client.get("/api/chats", params={"q": "zanzibar"}, headers=user.headers)
        assert response.json()["items"] == []

    async def test_deleting_a_branched_chat_removes_every_branch(self, client, user, chat, app):
        first = await add_turns(app, user, chat["id"], 2)
        async with chat_service(app) as service:
            loaded = await load_chat(service, user, chat["id"])
            await service.edit_user_message(loaded, first[0].id, "edited root")
        response = await client.delete(
            f"/api/chats/{chat['id']}", params={"permanent": "true"}, headers=user.headers
        )
        assert response.status_code == 204
        async with chat_service(app) as service:
            assert await service.messages.get(first[3].id) is None

    async def test_deleting_twice_is_404(self, client, user, chat):
        forever = {"permanent": "true"}
        await client.delete(f"/api/chats/{chat['id']}", params=forever, headers=user.headers)
        response = await client.delete(
            f"/api/chats/{chat['id']}", params=forever, headers=user.headers
        )
        assert_error(response, 404, "chat_not_found")


class TestListChats:
    async def test_empty(self, client, user):
        response = await client.get("/api/chats", headers=user.headers)
        assert response.json() == {"items": [], "next_cursor": None}

    async def test_pinned_first_then_most_recently_active(self, client, user, app):
        old = await new_chat(client, user, title="old")
        pinned = await new_chat(client, user, title="pinned", pinned=True)
        recent = await new_chat(client, user, title="recent")
        await add_turns(app, user, old["id"], 1)  # activity moves it above "recent"
        response = await client.get("/api/chats", headers=user.headers)
        assert ids(response.json()["items"]) == [pinned["id"], old["id"], recent["id"]]

    async def test_activity_updates_last_message_at(self, client, user, chat, app):
        [question, *_] = await add_turns(app, user, chat["id"], 1)
        response = await client.get(f"/api/chats/{chat['id']}", headers=user.headers)
        last = datetime.fromisoformat(response.json()["last_message_at"])
        assert last > datetime.fromisoformat(chat["last_message_at"])
        assert last > question.created_at

    async def test_pages_cover_every_chat_once(self, client, user):
        created = [(await new_chat(client, user, title=f"c{i}"))["id"] for i in range(12)]
        pages = await list_all(client, user, limit=5)
        assert [len(page) for page in pages] == [5, 5, 2]
        assert [chat_id for page in pages for chat_id in page] == created[::-1]

    async def test_exact_multiple_of_limit_has_no_empty_last_page(self, client, user):
        for i in range(4):
            await new_chat(client, user, title=f"c{i}")
        pages = await list_all(client, user, limit=2)
        assert [len(page) for page in pages] == [2, 2]

    async def test_concurrent_inserts_neither_duplicate_nor_skip(self, client, user, app):
        original = [(await new_chat(client, user, title=f"c{i}"))["id"] for i in range(9)]
        first = await client.get("/api/chats", params={"limit": 4}, headers=user.headers)
        seen = ids(first.json()["items"])
        cursor = first.json()["next_cursor"]
        # New chats and new activity land at the top while someone is paging down.
        await new_chat(client, user, title="new one")
        await add_turns(app, user, original[-1], 1)
        while cursor:
            response = await client.get(
                "/api/chats", params={"limit": 4, "cursor": cursor}, headers=user.headers
            )
            seen += ids(response.json()["items"])
            cursor = response.json()["next_cursor"]
        assert len(seen) == len(set(seen)) == 9
        assert set(seen) == set(original)

    async def test_equal_activity_times_are_ordered_by_id(self, client, user, app):
        created = [await new_chat(client, user, title=f"c{i}") for i in range(5)]
        async with chat_service(app) as service:
            same = None
            for item in created:
                loaded = await load_chat(service, user, item["id"])
                same = same or loaded.last_message_at
                loaded.last_message_at = same
        pages = await list_all(client, user, limit=2)
        flat = [chat_id for page in pages for chat_id in page]
        assert flat == sorted((c["id"] for c in created), reverse=True)

    async def test_archived_hidden_unless_asked(self, client, user):
        active = await new_chat(client, user, title="active")
        archived = await new_chat(client, user, title="archived")
        await client.patch(
            f"/api/chats/{archived['id']}", json={"archived": True}, headers=user.headers
        )
        default = await client.get("/api/chats", headers=user.headers)
        assert ids(default.json()["items"]) == [active["id"]]
        only = await client.get("/api/chats", params={"archived": "true"}, headers=user.headers)
        assert ids(only.json()["items"]) == [archived["id"]]

    async def test_pinned_filter(self, client, user):
        pinned = await new_chat(client, user, pinned=True)
        unpinned = await new_chat(client, user)
        yes = await client.get("/api/chats", params={"pinned": "true"}, headers=user.headers)
        no = await client.get("/api/chats", params={"pinned": "false"}, headers=user.headers)
        assert ids(yes.json()["items"]) == [pinned["id"]]
        assert ids(no.json()["items"]) == [unpinned["id"]]

    async def test_only_my_chats(self, client, user, other_user):
        mine = await new_chat(client, user)
        await new_chat(client, other_user)
        response = await client.get("/api/chats", headers=user.headers)
        assert ids(response.json()["items"]) == [mine["id"]]

    @pytest.mark.parametrize(
        "cursor",
        ["garbage!!", "e30", "eyJrIjoibWVzc2FnZXMifQ", "eyJrIjoiY2hhdHMiLCJwIjp0cnVlfQ", "x" * 40],
    )
    async def test_bad_cursor_is_400(self, client, user, cursor):
        response = await client.get("/api/chats", params={"cursor": cursor}, headers=user.headers)
        assert_error(response, 400, "invalid_cursor")

    @pytest.mark.parametrize("limit", [0, 101, -1])
    async def test_limit_bounds(self, client, user, limit):
        response = await client.get("/api/chats", params={"limit": limit}, headers=user.headers)
        error = assert_error(response, 422, "validation_error")
        assert error["details"][0]["field"] == "query.limit"


class TestSearchChats:
    async def search(self, client, user, q, **params):
        response = await client.get("/api/chats", params={"q": q, **params}, headers=user.headers)
        assert response.status_code == 200, response.text
        return ids(response.json()["items"])

    async def test_matches_title_words_by_prefix_any_case(self, client, user):
        lisbon = await new_chat(client, user, title="Trip to Lisbon")
        await new_chat(client, user, title="Tax return")
        assert await self.search(client, user, "lisb") == [lisbon["id"]]
        assert await self.search(client, user, "TRIP") == [lisbon["id"]]
        assert await self.search(client, user, "isbon") == []

    async def test_matches_message_text(self, client, user, app):
        chat = await new_chat(client, user, title="Untitled")
        other = await new_chat(client, user, title="Other")
        await add_turns(app, user, chat["id"], 2, text="kubernetes")
        await add_turns(app, user, other["id"], 2, text="gardening")
        assert await self.search(client, user, "kubernet") == [chat["id"]]

    async def test_every_word_is_required(self, client, user, app):
        both = await new_chat(client, user, title="Weekend in Porto")
        await new_chat(client, user, title="Weekend plans")
        assert await self.search(client, user, "porto weekend") == [both["id"]]
        assert await self.search(client, user, "weekend madrid") == []

    async def test_punctuation_is_ignored_and_empty_query_lists_all(self, client, user):
        chat = await new_chat(client, user, title="C++ tips")
        assert await self.search(client, user, '"tips" (c*') == [chat["id"]]
        assert await self.search(client, user, "!!!") == [chat["id"]]

    async def test_search_matches_edited_and_regenerated_branches(self, client, user, app):
        chat = await new_chat(client, user)
        [question, *_] = await add_turns(app, user, chat["id"], 1, text="plain")
        async with chat_service(app) as service:
            loaded = await load_chat(service, user, chat["id"])
            await service.edit_user_message(loaded, question.id, "now about quokkas")
        assert await self.search(client, user, "quokka") == [chat["id"]]

    async def test_renamed_title_is_searchable_and_old_one_is_not(self, client, user):
        chat = await new_chat(client, user, title="Alpha")
        await client.patch(f"/api/chats/{chat['id']}", json={"title": "Beta"}, headers=user.headers)
        assert await self.search(client, user, "beta") == [chat["id"]]
        assert await self.search(client, user, "alpha") == []

    async def test_other_users_matches_are_not_returned(self, client, user, other_user, app):
        theirs = await new_chat(client, other_user, title="Secret plan")
        await add_turns(app, other_user, theirs["id"], 1, text="secret")
        assert await self.search(client, user, "secret") == []

    async def test_search_combines_with_filters_and_pages(self, client, user, app):
        matching = []
        for i in range(5):
            chat = await new_chat(client, user, title=f"Recipe {i}", pinned=i == 0)
            matching.append(chat["id"])
            await new_chat(client, user, title=f"Unrelated {i}")
        pages = await list_all(client, user, q="recipe", limit=2)
        flat = [chat_id for page in pages for chat_id in page]
        assert flat == [matching[0], *matching[:0:-1]]
        assert await self.search(client, user, "recipe", pinned="true") == [matching[0]]
        await client.patch(
            f"/api/chats/{matching[1]}", json={"archived": True}, headers=user.headers
        )
        assert await self.search(client, user, "recipe", archived="true") == [matching[1]]

    @pytest.mark.parametrize("dense_matches", [0, 10**9], ids=["per-chat", "per-match"])
    async def test_both_search_strategies_agree(
        self, client, user, app, monkeypatch, dense_matches
    ):
        # Postgres walks chats for common words and follows matches for rare ones.
        monkeypatch.setattr("app.chats.repository.DENSE_MATCHES", dense_matches)
        await new_chat(client, user, title="no match here")
        chats = [await new_chat(client, user, title=f"chat {i}") for i in range(3)]
        for item in chats:
            await add_turns(app, user, item["id"], 3, text="common words everywhere")
        titled = await new_chat(client, user, title="Everywhere else")
        found = await self.search(client, user, "everywhere")
        assert found == [titled["id"], *(c["id"] for c in reversed(chats))]
        assert await self.search(client, user, "everywhere words") == [
            c["id"] for c in reversed(chats)
        ]

    async def test_new_user_sees_nothing(self, client):
        user = await register(client)
        assert await self.search(client, user, "anything") == []
