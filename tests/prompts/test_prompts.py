"""The prompt library: saved prompts with a /command each and {{variables}} in their content."""

from typing import Any

import httpx

from tests.support.api import SignedInUser, assert_error


async def new_prompt(client: httpx.AsyncClient, user: SignedInUser, **fields: Any) -> Any:
    body = {"name": "Summary", "command": "tldr", "content": "Summarise {{text}}.", **fields}
    response = await client.post("/api/prompts", json=body, headers=user.headers)
    assert response.status_code == 201, response.text
    return response.json()


class TestCreatePrompt:
    async def test_the_variables_are_parsed_once_each_in_order(self, client, user):
        prompt = await new_prompt(
            client,
            user,
            content="Write {{ count }} lines on {{topic}} for {{count}} readers; {{not a var}}.",
        )
        assert prompt["variables"] == ["count", "topic"]
        response = await client.get(f"/api/prompts/{prompt['id']}", headers=user.headers)
        assert response.json() == prompt

    async def test_a_command_is_lower_case_letters_digits_and_dashes(self, client, user):
        for command in ["Tldr", "tl dr", "tl_dr", "", "x" * 33, "/tldr"]:
            response = await client.post(
                "/api/prompts",
                json={"name": "x", "command": command, "content": "y"},
                headers=user.headers,
            )
            assert_error(response, 422, "validation_error")
        await new_prompt(client, user, command="tl-dr-2")

    async def test_a_command_i_already_use_is_409(self, client, user, other_user):
        await new_prompt(client, user)
        await new_prompt(client, other_user)  # another user's does not count
        response = await client.post(
            "/api/prompts",
            json={"name": "Again", "command": "tldr", "content": "z"},
            headers=user.headers,
        )
        assert_error(response, 409, "command_taken")


class TestListPrompts:
    async def test_mine_by_command(self, client, user, other_user):
        await new_prompt(client, user, command="zeta")
        await new_prompt(client, user, command="alpha")
        await new_prompt(client, other_user, command="theirs")
        response = await client.get("/api/prompts", headers=user.headers)
        assert [p["command"] for p in response.json()] == ["alpha", "zeta"]


class TestUpdatePrompt:
    async def test_only_the_fields_sent_change(self, client, user):
        prompt = await new_prompt(client, user)
        response = await client.patch(
            f"/api/prompts/{prompt['id']}",
            json={"content": "Explain {{topic}}."},
            headers=user.headers,
        )
        assert response.status_code == 200
        assert response.json()["command"] == "tldr"
        assert response.json()["variables"] == ["topic"]

    async def test_taking_another_prompts_command_is_409(self, client, user):
        await new_prompt(client, user, command="one")
        second = await new_prompt(client, user, command="two")
        path = f"/api/prompts/{second['id']}"
        response = await client.patch(path, json={"command": "one"}, headers=user.headers)
        assert_error(response, 409, "command_taken")
        response = await client.patch(path, json={"command": "two"}, headers=user.headers)
        assert response.status_code == 200


class TestDeletePrompt:
    async def test_it_is_gone(self, client, user):
        prompt = await new_prompt(client, user)
        path = f"/api/prompts/{prompt['id']}"
        assert (await client.delete(path, headers=user.headers)).status_code == 204
        assert_error(await client.get(path, headers=user.headers), 404, "prompt_not_found")


class TestOwnership:
    async def test_another_users_prompt_is_404_everywhere(self, client, user, other_user):
        theirs = await new_prompt(client, other_user)
        path = f"/api/prompts/{theirs['id']}"
        assert_error(await client.get(path, headers=user.headers), 404, "prompt_not_found")
        response = await client.patch(path, json={"name": "x"}, headers=user.headers)
        assert_error(response, 404, "prompt_not_found")
        assert_error(await client.delete(path, headers=user.headers), 404, "prompt_not_found")
