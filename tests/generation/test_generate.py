"""Stateless generation (the email writer), its history, and the model list."""

from typing import Any

import pytest

from tests.support.api import assert_error, register
from tests.support.sse import collect_sse, names, text_of
from tests.support.upstream_fixtures import parley_settings, running_parley

EMAIL: dict[str, Any] = {
    "mode": "email",
    "params": {
        "purpose": "Ask for a meeting",
        "recipient": "Dr. Smith",
        "key_points": ["next week", "30 minutes"],
        "tone": "formal",
        "length": "short",
    },
    "prompt": "Write it.",
}


class TestGenerate:
    async def test_streams_and_is_kept_in_history(self, parley, author, fake_upstream):
        async with parley.http.stream(
            "POST",
            "/api/generate",
            json={**EMAIL, "temperature": 0.2, "max_tokens": 200},
            headers={**author.headers, "Accept": "text/event-stream"},
        ) as response:
            events = await collect_sse(response)
        assert names(events)[0] == "start" and names(events)[-1] == "done"
        done = events[-1].data
        assert done["output"] == text_of(events) == "Hello, world!"
        assert done["mode"] == "email" and done["params"]["tone"] == "formal"
        assert done["settings"] == {"temperature": 0.2, "max_tokens": 200}
        system = fake_upstream.state.requests[-1]["messages"][0]
        assert system["role"] == "system" and "Dr. Smith" in system["content"]
        history = await parley.http.get("/api/generations", headers=author.headers)
        items = history.json()["items"]
        assert [i["id"] for i in items] == [done["id"]]
        assert items[0]["status"] == "complete" and items[0]["completion_tokens"] == 4

    async def test_json_answer(self, parley, author):
        response = await parley.http.post("/api/generate", json=EMAIL, headers=author.headers)
        assert response.status_code == 200, response.text
        assert response.json()["output"] == "Hello, world!"

    async def test_bad_mode_params_name_the_field(self, parley, author):
        body = {**EMAIL, "params": {**EMAIL["params"], "tone": "rude"}}
        response = await parley.http.post("/api/generate", json=body, headers=author.headers)
        error = assert_error(response, 422)
        assert "tone" in response.text and error["code"]

    async def test_unknown_mode(self, parley, author, fake_upstream):
        response = await parley.http.post(
            "/api/generate", json={**EMAIL, "mode": "poetry"}, headers=author.headers
        )
        error = assert_error(response, 422, "unknown_mode")
        assert "poetry" in error["message"] and "email" in error["message"]
        assert fake_upstream.state.requests == []
        history = await parley.http.get("/api/generations", headers=author.headers)
        assert history.json()["items"] == []

    async def test_history_pages_and_is_private(self, parley, author):
        for _ in range(3):
            await parley.http.post("/api/generate", json=EMAIL, headers=author.headers)
        first = await parley.http.get(
            "/api/generations", params={"limit": 2}, headers=author.headers
        )
        second = await parley.http.get(
            "/api/generations",
            params={"limit": 2, "cursor": first.json()["next_cursor"]},
            headers=author.headers,
        )
        ids = [i["id"] for i in first.json()["items"] + second.json()["items"]]
        assert len(ids) == len(set(ids)) == 3 and second.json()["next_cursor"] is None
        stranger = await register(parley.http)
        theirs = await parley.http.get("/api/generations", headers=stranger.headers)
        assert theirs.json()["items"] == []

    async def test_bad_cursor_is_400(self, parley, author):
        response = await parley.http.get(
            "/api/generations", params={"cursor": "!!!"}, headers=author.headers
        )
        assert_error(response, 400, "invalid_cursor")


class TestModels:
    async def test_lists_the_upstream_model_and_echo(self, parley, author):
        response = await parley.http.get("/api/models", headers=author.headers)
        models = {m["name"]: m for m in response.json()}
        assert models["fake-model"]["default"] is True and not models["fake-model"]["built_in"]
        assert models["echo"]["built_in"] is True and models["echo"]["default"] is False

    async def test_echo_is_the_default_without_an_upstream(self, database, clean_db, fake_upstream):
        settings = parley_settings(database, fake_upstream, llm_base_url=None)
        async with running_parley(settings) as parley:
            user = await register(parley.http)
            models = (await parley.http.get("/api/models", headers=user.headers)).json()
            assert models == [
                {
                    "name": "echo",
                    "provider": "echo",
                    "built_in": True,
                    "context_length": 8192,
                    "default": True,
                    "vision": True,
                    "available": True,
                }
            ]
            response = await parley.http.post(
                "/api/generate", json={"prompt": "ping pong"}, headers=user.headers
            )
            assert response.json()["output"] == "Echo: ping pong"
            assert response.json()["usage_estimated"] is True
        assert fake_upstream.state.requests == []

    @pytest.mark.parametrize("name", ["echo"])
    async def test_echo_by_name_beside_an_upstream(self, parley, author, fake_upstream, name):
        response = await parley.http.post(
            "/api/generate", json={"prompt": "hi", "model": name}, headers=author.headers
        )
        assert response.json()["output"] == "Echo: hi"
        assert fake_upstream.state.requests == []
