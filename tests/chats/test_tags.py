"""Tags: up to 20 short labels per chat, normalised; chats filtered by one; a user's tags
counted."""

from tests.chats.conftest import ids, new_chat
from tests.support.api import assert_error


class TestTagChats:
    async def test_tags_are_normalised_and_sorted(self, client, user):
        chat = await new_chat(client, user, tags=["Work", " work ", "Été  2024", "#a-b"])
        assert chat["tags"] == ["#a-b", "work", "été 2024"]

        response = await client.patch(
            f"/api/chats/{chat['id']}", json={"tags": ["Later"]}, headers=user.headers
        )
        assert response.json()["tags"] == ["later"]
        response = await client.get(f"/api/chats/{chat['id']}", headers=user.headers)
        assert response.json()["tags"] == ["later"]

        response = await client.patch(
            f"/api/chats/{chat['id']}", json={"tags": None}, headers=user.headers
        )
        assert response.json()["tags"] == []

    async def test_bad_tags_are_422_with_a_reason(self, client, user):
        for tags, reason in [
            (["ok", ""], "at least 1"),
            (["  "], "at least 1"),
            (["x" * 33], "at most 32"),
            (["a\u0000b"], "NUL"),
            ([f"t{i}" for i in range(21)], "at most 20"),
            ("work", "list"),
        ]:
            response = await client.post("/api/chats", json={"tags": tags}, headers=user.headers)
            body = assert_error(response, 422, "validation_error")
            assert reason in str(body), (tags, body)


class TestFilterByTag:
    async def test_only_chats_with_the_tag_are_listed(self, client, user, other_user):
        tagged = await new_chat(client, user, tags=["work"])
        await new_chat(client, user, tags=["home"])
        await new_chat(client, other_user, tags=["work"])

        response = await client.get("/api/chats", params={"tag": "WORK"}, headers=user.headers)

        assert ids(response.json()["items"]) == [tagged["id"]]

    async def test_a_tag_no_chat_has_lists_nothing(self, client, user):
        await new_chat(client, user, tags=["work"])
        response = await client.get("/api/chats", params={"tag": "#"}, headers=user.headers)
        assert response.json()["items"] == []


class TestListTags:
    async def test_my_tags_with_counts_leaving_out_the_trash(self, client, user, other_user):
        await new_chat(client, user, tags=["work", "urgent"])
        await new_chat(client, user, tags=["work"])
        trashed = await new_chat(client, user, tags=["work", "old"])
        await new_chat(client, other_user, tags=["secret"])
        await client.delete(f"/api/chats/{trashed['id']}", headers=user.headers)

        response = await client.get("/api/tags", headers=user.headers)

        assert response.status_code == 200
        assert response.json() == [{"tag": "urgent", "count": 1}, {"tag": "work", "count": 2}]
