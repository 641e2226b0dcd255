"""NUL characters, which Postgres text cannot hold, are a 422 wherever text comes in."""

from tests.conftest import assert_error


class TestNulCharacters:
    async def test_refused_in_chat_fields_and_search(self, client, user):
        created = await client.post("/api/chats", json={"title": "a\x00b"}, headers=user.headers)
        assert_error(created, 422, "validation_error")
        search = await client.get("/api/chats", params={"q": "a\x00"}, headers=user.headers)
        assert_error(search, 422, "validation_error")

    async def test_refused_in_messages_and_prompts(self, client, user):
        chat = (await client.post("/api/chats", json={}, headers=user.headers)).json()
        sent = await client.post(
            f"/api/chats/{chat['id']}/messages", json={"content": "x\x00"}, headers=user.headers
        )
        assert_error(sent, 422, "validation_error")
        generated = await client.post(
            "/api/generate", json={"prompt": "x\x00"}, headers=user.headers
        )
        assert_error(generated, 422, "validation_error")
        mode = await client.post(
            "/api/chats",
            json={"mode": "similar_questions", "mode_params": {"question": "why\x00"}},
            headers=user.headers,
        )
        assert_error(mode, 422)
