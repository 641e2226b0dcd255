from typing import Literal

import pytest

from app.chats.errors import InvalidModeParams, UnknownMode
from app.chats.modes import MODES, Mode, ModeParams, declare, get_mode
from tests.chats.conftest import new_chat
from tests.support.api import assert_error

EMAIL = {"purpose": "Ask for a week more", "tone": "formal", "length": "short"}


class TestListModes:
    async def test_lists_every_mode_with_its_schema(self, client):
        response = await client.get("/api/modes")
        assert response.status_code == 200
        modes = {mode["name"]: mode for mode in response.json()}
        assert list(modes) == ["chat", "email", "similar_questions", "summarize", "image"]
        email = modes["email"]["params_schema"]
        assert email["required"] == ["purpose"]
        assert email["properties"]["tone"]["enum"] == [
            "formal",
            "friendly",
            "persuasive",
            "apologetic",
            "neutral",
        ]
        assert email["properties"]["length"]["enum"] == ["short", "medium", "long"]
        count = modes["similar_questions"]["params_schema"]["properties"]["count"]
        assert (count["minimum"], count["maximum"]) == (1, 20)
        assert all(mode["title"] and mode["description"] for mode in modes.values())

    async def test_the_image_mode_is_marked_for_vision(self, client, user):
        modes = {mode["name"]: mode for mode in (await client.get("/api/modes")).json()}
        image = modes["image"]
        assert image["vision"] is True and not any(
            m["vision"] for m in modes.values() if m != image
        )
        task = image["params_schema"]["properties"]["task"]
        assert task["enum"] == ["describe", "extract_text", "answer"]
        assert task["default"] == "describe"
        chat = await new_chat(client, user, mode="image", mode_params={"task": "answer"})
        assert chat["mode_params"] == {"task": "answer"}
        bad = await client.post(
            "/api/chats",
            json={"mode": "image", "mode_params": {"task": "draw"}},
            headers=user.headers,
        )
        assert assert_error(bad, 422, "invalid_mode_params")["details"][0]["field"] == (
            "body.mode_params.task"
        )

    async def test_mode_names_are_documented_in_openapi(self, client):
        schema = (await client.get("/openapi.json")).json()
        mode = schema["components"]["schemas"]["ChatCreate"]["properties"]["mode"]
        assert mode["enum"] == list(MODES)


class TestModeValidation:
    async def test_email_chat_stores_validated_params_with_defaults(self, client, user):
        chat = await new_chat(client, user, mode="email", mode_params={"purpose": " Thanks "})
        assert chat["mode"] == "email"
        assert chat["mode_params"] == {
            "purpose": "Thanks",
            "recipient": None,
            "key_points": [],
            "tone": "neutral",
            "length": "medium",
        }

    @pytest.mark.parametrize(
        ("params", "field"),
        [
            ({**EMAIL, "tone": "sarcastic"}, "body.mode_params.tone"),
            ({**EMAIL, "length": "epic"}, "body.mode_params.length"),
            ({"tone": "formal"}, "body.mode_params.purpose"),
            ({**EMAIL, "key_points": ["ok", ""]}, "body.mode_params.key_points.1"),
            ({**EMAIL, "tonee": "formal"}, "body.mode_params.tonee"),
        ],
    )
    async def test_bad_email_params_name_the_field(self, client, user, params, field):
        response = await client.post(
            "/api/chats", json={"mode": "email", "mode_params": params}, headers=user.headers
        )
        error = assert_error(response, 422, "invalid_mode_params")
        assert [d["field"] for d in error["details"]] == [field]
        assert field in error["message"]

    @pytest.mark.parametrize("count", [0, 21, "many"])
    async def test_similar_questions_count_bounds(self, client, user, count):
        response = await client.post(
            "/api/chats",
            json={"mode": "similar_questions", "mode_params": {"count": count}},
            headers=user.headers,
        )
        error = assert_error(response, 422, "invalid_mode_params")
        assert error["details"][0]["field"] == "body.mode_params.count"

    async def test_unknown_mode_names_the_field(self, client, user):
        response = await client.post("/api/chats", json={"mode": "poetry"}, headers=user.headers)
        error = assert_error(response, 422, "unknown_mode")
        assert error["details"][0]["field"] == "body.mode"
        assert "email" in error["details"][0]["message"]

    async def test_changing_mode_validates_the_new_params(self, client, user, chat):
        response = await client.patch(
            f"/api/chats/{chat['id']}", json={"mode": "email"}, headers=user.headers
        )
        error = assert_error(response, 422, "invalid_mode_params")
        assert error["details"][0]["field"] == "body.mode_params.purpose"
        unchanged = await client.get(f"/api/chats/{chat['id']}", headers=user.headers)
        assert unchanged.json()["mode"] == "chat"

    async def test_change_mode_and_params_together(self, client, user, chat):
        response = await client.patch(
            f"/api/chats/{chat['id']}",
            json={"mode": "summarize", "mode_params": {"style": "bullet_points"}},
            headers=user.headers,
        )
        assert response.status_code == 200, response.text
        assert response.json()["mode_params"] == {"length": "medium", "style": "bullet_points"}

    async def test_params_alone_are_checked_against_the_current_mode(self, client, user):
        chat = await new_chat(client, user, mode="email", mode_params=EMAIL)
        bad = await client.patch(
            f"/api/chats/{chat['id']}", json={"mode_params": {"count": 3}}, headers=user.headers
        )
        assert_error(bad, 422, "invalid_mode_params")
        good = await client.patch(
            f"/api/chats/{chat['id']}",
            json={"mode_params": {**EMAIL, "tone": "apologetic"}},
            headers=user.headers,
        )
        assert good.json()["mode_params"]["tone"] == "apologetic"


class TestModePrompts:
    def test_every_mode_renders_its_defaults_or_example(self):
        examples = {"email": EMAIL}
        for name, mode in MODES.items():
            prompt = mode.render(examples.get(name, {}))
            assert prompt and "{" not in prompt, name

    def test_email_prompt_uses_every_parameter(self):
        prompt = get_mode("email").render(
            {**EMAIL, "recipient": "Dana", "key_points": ["late data", "draft Friday"]}
        )
        for text in ("Ask for a week more", "Dana", "- late data", "- draft Friday", "formal"):
            assert text in prompt
        assert "under 100 words" in prompt

    def test_similar_questions_prompt(self):
        prompt = get_mode("similar_questions").render(
            {"count": 7, "question": "Why is the sky blue?"}
        )
        assert "exactly 7 questions" in prompt and "Why is the sky blue?" in prompt

    @pytest.mark.parametrize(
        ("task", "words"),
        [
            ("describe", "Describe the attached images in detail"),
            ("extract_text", "Transcribe all the text visible in the attached images"),
            ("answer", "Answer the user's question about the attached images"),
        ],
    )
    def test_image_prompt_follows_the_task(self, task, words):
        prompt = get_mode("image").render({"task": task})
        assert prompt.startswith("You look at images the user attaches.") and words in prompt

    def test_errors(self):
        with pytest.raises(UnknownMode):
            get_mode("nope")
        with pytest.raises(InvalidModeParams):
            get_mode("email").render({})


class TestDeclaringAMode:
    async def test_one_declaration_is_listed_validated_and_rendered(self, client, user):
        class HaikuParams(ModeParams):
            season: Literal["spring", "summer", "autumn", "winter"]

        mode = declare(
            Mode(
                name="haiku",
                title="Haiku",
                description="Answers in haiku.",
                params=HaikuParams,
                template="Answer in a haiku about {season}.",
            )
        )
        try:
            listed = {m["name"] for m in (await client.get("/api/modes")).json()}
            assert "haiku" in listed
            chat = await new_chat(client, user, mode="haiku", mode_params={"season": "autumn"})
            assert chat["mode_params"] == {"season": "autumn"}
            bad = await client.post(
                "/api/chats",
                json={"mode": "haiku", "mode_params": {"season": "monsoon"}},
                headers=user.headers,
            )
            assert assert_error(bad, 422)["details"][0]["field"] == "body.mode_params.season"
            assert mode.render({"season": "winter"}) == "Answer in a haiku about winter."
            with pytest.raises(ValueError, match="declared twice"):
                declare(mode)
        finally:
            MODES.pop("haiku")
