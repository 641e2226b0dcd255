"""A project's instructions, model and collections reach the replies of its chats."""

from pathlib import Path
from typing import Any

import pytest

from tests.generation.test_replies import send, stream
from tests.knowledge.test_fallback import settings_on_suite_database
from tests.knowledge.test_knowledge import WARRANTY, add, collection, settled, upload
from tests.support.api import assert_error, register
from tests.support.database import TestDatabase
from tests.support.fake_upstream import FakeUpstream
from tests.support.sse import names
from tests.support.upstream_fixtures import new_chat, running_parley


async def project(parley: Any, user: Any, **fields: Any) -> dict[str, Any]:
    response = await parley.http.post(
        "/api/projects", json={"name": "P", **fields}, headers=user.headers
    )
    assert response.status_code == 201, response.text
    return dict(response.json())


def system_sent(fake: FakeUpstream, content: str) -> str | None:
    """The system prompt of the reply to `content` (not of a title's request)."""
    body = next(
        body for body in reversed(fake.state.requests) if body["messages"][-1]["content"] == content
    )
    first = body["messages"][0]
    return str(first["content"]) if first["role"] == "system" else None


class TestProjectInstructions:
    async def test_they_come_first_then_the_chats_own_prompt(self, parley, author, fake_upstream):
        filed = await project(parley, author, instructions="Answer in French.")
        chat = await new_chat(
            parley.http, author, project_id=filed["id"], system_prompt="Be brief."
        )

        await stream(parley, author, chat, content="Hello")

        assert system_sent(fake_upstream, "Hello") == "Answer in French.\n\nBe brief."

    async def test_before_the_modes_prompt_and_follow_a_change(self, parley, author, fake_upstream):
        filed = await project(parley, author, instructions="Answer in French.")
        chat = await new_chat(parley.http, author, project_id=filed["id"])
        await stream(parley, author, chat, content="Hello")
        system = system_sent(fake_upstream, "Hello")
        assert system is not None and system.startswith("Answer in French.\n\n")
        assert len(system) > len("Answer in French.\n\n")

        await parley.http.patch(
            f"/api/projects/{filed['id']}",
            json={"instructions": "Answer in German."},
            headers=author.headers,
        )
        await stream(parley, author, chat, content="Again")
        assert (system_sent(fake_upstream, "Again") or "").startswith("Answer in German.")

    async def test_a_chat_out_of_the_project_loses_them(self, parley, author, fake_upstream):
        filed = await project(parley, author, instructions="Answer in French.")
        chat = await new_chat(parley.http, author, project_id=filed["id"], system_prompt="Hi.")
        await parley.http.patch(
            f"/api/chats/{chat['id']}", json={"project_id": None}, headers=author.headers
        )
        await stream(parley, author, chat, content="Hello")
        assert system_sent(fake_upstream, "Hello") == "Hi."


class TestProjectModel:
    async def test_chats_without_a_model_use_the_projects(self, parley, author, fake_upstream):
        filed = await project(parley, author, model="echo")
        chat = await new_chat(parley.http, author, project_id=filed["id"])
        _, events = await stream(parley, author, chat, content="Hello")
        assert events[0].data["model"] == "echo"
        assert fake_upstream.state.requests == []

        own = await new_chat(parley.http, author, project_id=filed["id"], model="fake-model")
        _, events = await stream(parley, author, own, content="Hello")
        assert events[0].data["model"] == "fake-model"


class TestProjectCollections:
    async def test_they_add_to_the_chats_own(
        self, database: TestDatabase, clean_db: Any, fake_upstream: FakeUpstream, tmp_path: Path
    ) -> None:
        settings = settings_on_suite_database(database, fake_upstream, tmp_path)
        async with running_parley(settings) as parley:
            user = await register(parley.http)
            coll = await collection(parley, user)
            await add(parley, user, coll, await upload(parley, user, "m.md", WARRANTY.encode()))
            [status] = await settled(parley, user, coll)
            assert status["status"] == "ready"
            filed = await project(parley, user, collection_ids=[coll["id"]])
            chat = await new_chat(parley.http, user, project_id=filed["id"])

            _, events = await stream(parley, user, chat, "What does the warranty cover?")

            assert "sources" in names(events)
            sources = next(e.data for e in events if e.event == "sources")
            assert sources["sources"]


@pytest.mark.parametrize("parley_overrides", [{"blocked_patterns": ["zorblax"]}])
class TestProjectInstructionsAreChecked:
    async def test_instructions_pass_the_input_checks(self, parley, author, fake_upstream):
        filed = await project(parley, author, instructions="Always mention zorblax.")
        chat = await new_chat(parley.http, author, project_id=filed["id"])

        response = await send(parley, author, chat, "Hello")

        assert assert_error(response, 422, "input_blocked")["category"] == "blocked_pattern"
        assert fake_upstream.state.requests == []
