"""Projects: folders of chats with instructions, a default model, collections and tools; chats
filed in them and listed by them; deleting one moves its chats out or trashes them."""

from typing import Any

import httpx

from tests.chats.conftest import ids, new_chat
from tests.support.api import SignedInUser, assert_error


async def new_project(
    client: httpx.AsyncClient, user: SignedInUser, **fields: Any
) -> dict[str, Any]:
    response = await client.post(
        "/api/projects", json={"name": "Thesis", **fields}, headers=user.headers
    )
    assert response.status_code == 201, response.text
    return dict(response.json())


async def new_collection(client: httpx.AsyncClient, user: SignedInUser) -> str:
    response = await client.post("/api/collections", json={"name": "notes"}, headers=user.headers)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def listed(client: httpx.AsyncClient, user: SignedInUser, **params: Any) -> list[str]:
    response = await client.get("/api/chats", params=params, headers=user.headers)
    assert response.status_code == 200, response.text
    return ids(response.json()["items"])


class TestCreateProject:
    async def test_a_project_keeps_what_it_was_given(self, client, user):
        collection = await new_collection(client, user)
        project = await new_project(
            client,
            user,
            name="  Thesis  ",
            instructions="Answer as a statistics tutor.",
            model="echo",
            collection_ids=[collection, collection],
            tool_ids=["parley.knowledge_search"],
        )
        assert project["name"] == "Thesis"
        assert project["instructions"] == "Answer as a statistics tutor."
        assert project["model"] == "echo"
        assert project["collection_ids"] == [collection]
        assert project["tool_ids"] == ["parley.knowledge_search"]
        assert project["chat_count"] == 0

        response = await client.get(f"/api/projects/{project['id']}", headers=user.headers)
        assert response.json() == project

    async def test_another_users_collection_is_refused(self, client, user, other_user):
        theirs = await new_collection(client, other_user)
        response = await client.post(
            "/api/projects",
            json={"name": "x", "collection_ids": [theirs]},
            headers=user.headers,
        )
        assert_error(response, 404, "collection_not_found")

    async def test_only_enabled_tools_may_be_named(self, client, user):
        response = await client.post(
            "/api/projects", json={"name": "x", "tool_ids": ["web.search"]}, headers=user.headers
        )
        assert_error(response, 422, "unknown_tool")

    async def test_a_blank_name_is_422(self, client, user):
        response = await client.post("/api/projects", json={"name": "  "}, headers=user.headers)
        assert_error(response, 422)


class TestListProjects:
    async def test_my_projects_by_name_with_their_chat_counts(self, client, user, other_user):
        beta = await new_project(client, user, name="beta")
        alpha = await new_project(client, user, name="alpha")
        await new_project(client, other_user, name="theirs")
        await new_chat(client, user, project_id=beta["id"])
        await new_chat(client, user, project_id=beta["id"])

        response = await client.get("/api/projects", headers=user.headers)

        assert [(p["name"], p["chat_count"]) for p in response.json()] == [
            ("alpha", 0),
            ("beta", 2),
        ]
        assert response.json()[0]["id"] == alpha["id"]


class TestUpdateProject:
    async def test_only_the_fields_sent_change(self, client, user):
        project = await new_project(client, user, instructions="Be brief.", model="echo")
        response = await client.patch(
            f"/api/projects/{project['id']}", json={"name": "Renamed"}, headers=user.headers
        )
        assert response.status_code == 200, response.text
        assert response.json()["name"] == "Renamed"
        assert response.json()["instructions"] == "Be brief."

        response = await client.patch(
            f"/api/projects/{project['id']}",
            json={"instructions": None, "model": None},
            headers=user.headers,
        )
        assert response.json()["instructions"] is None
        assert response.json()["model"] is None


class TestOwnership:
    async def test_another_users_project_is_404_everywhere(self, client, user, other_user):
        theirs = await new_project(client, other_user)
        path = f"/api/projects/{theirs['id']}"
        assert_error(await client.get(path, headers=user.headers), 404, "project_not_found")
        assert_error(
            await client.patch(path, json={"name": "x"}, headers=user.headers),
            404,
            "project_not_found",
        )
        assert_error(await client.delete(path, headers=user.headers), 404, "project_not_found")
        response = await client.post(
            "/api/chats", json={"project_id": theirs["id"]}, headers=user.headers
        )
        assert_error(response, 404, "project_not_found")
        chat = await new_chat(client, user)
        response = await client.patch(
            f"/api/chats/{chat['id']}", json={"project_id": theirs["id"]}, headers=user.headers
        )
        assert_error(response, 404, "project_not_found")
        assert await listed(client, user, project_id=theirs["id"]) == []


class TestChatsInProjects:
    async def test_chats_are_filed_moved_and_listed_by_project(self, client, user):
        project = await new_project(client, user)
        inside = await new_chat(client, user, title="in", project_id=project["id"])
        outside = await new_chat(client, user, title="out")
        assert inside["project_id"] == project["id"]
        assert outside["project_id"] is None

        assert await listed(client, user, project_id=project["id"]) == [inside["id"]]

        response = await client.patch(
            f"/api/chats/{outside['id']}", json={"project_id": project["id"]}, headers=user.headers
        )
        assert response.json()["project_id"] == project["id"]
        assert set(await listed(client, user, project_id=project["id"])) == {
            inside["id"],
            outside["id"],
        }

        response = await client.patch(
            f"/api/chats/{inside['id']}", json={"project_id": None}, headers=user.headers
        )
        assert response.json()["project_id"] is None
        assert await listed(client, user, project_id=project["id"]) == [outside["id"]]


class TestDeleteProject:
    async def test_by_default_its_chats_move_out_and_stay(self, client, user):
        project = await new_project(client, user)
        chat = await new_chat(client, user, project_id=project["id"])

        response = await client.delete(f"/api/projects/{project['id']}", headers=user.headers)

        assert response.status_code == 204
        assert_error(await client.get(f"/api/projects/{project['id']}", headers=user.headers), 404)
        response = await client.get(f"/api/chats/{chat['id']}", headers=user.headers)
        assert response.status_code == 200
        assert response.json()["project_id"] is None
        assert await listed(client, user) == [chat["id"]]

    async def test_chats_trash_puts_them_in_the_trash(self, client, user):
        project = await new_project(client, user)
        chat = await new_chat(client, user, project_id=project["id"])
        kept = await new_chat(client, user)

        response = await client.delete(
            f"/api/projects/{project['id']}", params={"chats": "trash"}, headers=user.headers
        )

        assert response.status_code == 204
        assert await listed(client, user) == [kept["id"]]
        assert await listed(client, user, trashed="true") == [chat["id"]]
        response = await client.post(f"/api/chats/{chat['id']}/restore", headers=user.headers)
        assert response.status_code == 200
        assert response.json()["project_id"] is None

    async def test_an_unknown_choice_is_422(self, client, user):
        project = await new_project(client, user)
        response = await client.delete(
            f"/api/projects/{project['id']}", params={"chats": "burn"}, headers=user.headers
        )
        assert_error(response, 422)
