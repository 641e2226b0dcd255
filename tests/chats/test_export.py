import json
import uuid

from app.chats.models import MessageStatus
from tests.chats.conftest import add_turns, chat_service, load_chat, new_chat
from tests.support.api import assert_error


async def export(client, user, chat_id, **params):
    return await client.get(f"/api/chats/{chat_id}/export", params=params, headers=user.headers)


class TestExportChat:
    async def test_json_has_every_branch_and_the_current_thread(self, client, user, chat, app):
        q0, a0 = await add_turns(app, user, chat["id"], 1)
        async with chat_service(app) as service:
            loaded = await load_chat(service, user, chat["id"])
            second = await service.add_assistant_message(
                loaded, q0.id, content="again", status=MessageStatus.COMPLETE
            )
        response = await export(client, user, chat["id"], format="json")
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == "application/json"
        disposition = response.headers["content-disposition"]
        assert disposition.startswith('attachment; filename="parley-trip-to-lisbon-')
        assert '.json"' in disposition
        document = json.loads(response.content)
        assert document["format"] == "parley.chat.v1"
        assert document["chat"]["id"] == chat["id"]
        assert [m["id"] for m in document["messages"]] == [str(q0.id), str(a0.id), str(second.id)]
        assert document["thread"] == [str(q0.id), str(second.id)]
        assert document["messages"][1]["parent_id"] == str(q0.id)

    async def test_markdown_shows_the_thread(self, client, user, app):
        chat = await new_chat(
            client, user, title="Café plans", system_prompt="Be brief.", model="llama"
        )
        await add_turns(app, user, chat["id"], 2)
        response = await export(client, user, chat["id"], format="markdown")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/markdown")
        assert 'filename="parley-cafe-plans-' in response.headers["content-disposition"]
        assert response.headers["content-disposition"].endswith(".md")
        text = response.text
        assert text.startswith("# Café plans\n")
        assert "- Model: llama" in text and "## System prompt\n\nBe brief." in text
        positions = [
            text.index(f"turn {kind} {i}") for i in range(2) for kind in ("question", "answer")
        ]
        assert positions == sorted(positions)
        assert text.count("## You") == 2 and text.count("## Assistant") == 2

    async def test_markdown_of_another_branch(self, client, user, chat, app):
        q0, _a0 = await add_turns(app, user, chat["id"], 1)
        async with chat_service(app) as service:
            loaded = await load_chat(service, user, chat["id"])
            await service.edit_user_message(loaded, q0.id, "edited question")
        current = (await export(client, user, chat["id"], format="markdown")).text
        assert "edited question" in current and "turn question 0" not in current
        old = (await export(client, user, chat["id"], format="markdown", leaf_id=str(q0.id))).text
        assert "turn question 0" in old and "turn answer 0" in old and "edited" not in old

    async def test_untitled_empty_chat(self, client, user):
        chat = await new_chat(client, user)
        response = await export(client, user, chat["id"], format="markdown")
        assert response.text.startswith("# Untitled chat")
        assert 'filename="parley-chat-' in response.headers["content-disposition"]
        document = (await export(client, user, chat["id"])).json()
        assert document["messages"] == [] and document["thread"] == []

    async def test_email_mode_params_are_listed(self, client, user):
        chat = await new_chat(
            client,
            user,
            mode="email",
            mode_params={"purpose": "Say thanks", "key_points": ["a", "b"]},
        )
        text = (await export(client, user, chat["id"], format="markdown")).text
        assert "- Mode: Email writer" in text
        assert "  - purpose: Say thanks" in text and "  - key points: a, b" in text

    async def test_unknown_format_is_422(self, client, user, chat):
        response = await export(client, user, chat["id"], format="pdf")
        error = assert_error(response, 422, "validation_error")
        assert error["details"][0]["field"] == "query.format"

    async def test_unknown_leaf_is_404(self, client, user, chat):
        response = await export(client, user, chat["id"], leaf_id=str(uuid.uuid4()))
        assert_error(response, 404, "message_not_found")
