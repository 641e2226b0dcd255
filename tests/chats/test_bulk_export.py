"""GET /api/chats/export: every chat of the caller in one streamed zip."""

import io
import json
import zipfile

import httpx

from app.chats.models import MessageStatus
from app.chats.transfer.export import PAGE_CHATS
from tests.chats.conftest import add_turns, chat_service, load_chat, new_chat
from tests.support.api import SignedInUser, assert_error


async def export_zip(
    client: httpx.AsyncClient, user: SignedInUser, **params: str
) -> dict[str, bytes]:
    response = await client.get("/api/chats/export", params=params, headers=user.headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/zip"
    disposition = response.headers["content-disposition"]
    assert disposition.startswith('attachment; filename="parley-export-')
    with zipfile.ZipFile(io.BytesIO(response.content)) as archive:
        assert archive.testzip() is None
        return {name: archive.read(name) for name in archive.namelist()}


def titles(files: dict[str, bytes]) -> list[str]:
    return sorted(
        json.loads(data)["chat"]["title"] for name, data in files.items() if name.endswith(".json")
    )


class TestBulkExport:
    async def test_a_json_and_a_markdown_file_per_chat(self, client, user, app):
        first = await new_chat(client, user, title="Trip to Lisbon")
        q0, *_rest = await add_turns(app, user, first["id"], 2)
        async with chat_service(app) as service:
            loaded = await load_chat(service, user, first["id"])
            await service.add_assistant_message(
                loaded, q0.id, content="a second answer", status=MessageStatus.COMPLETE
            )
        second = await new_chat(client, user, title="Empty one")
        files = await export_zip(client, user)
        assert len(files) == 4
        folder = next(iter(files)).split("/")[0]
        assert folder.startswith("parley-export-")
        document = json.loads(files[f"{folder}/trip-to-lisbon-{first['id']}.json"])
        assert document["format"] == "parley.chat.v1"
        assert document["chat"]["id"] == first["id"]
        assert len(document["messages"]) == 5  # every branch
        single = await client.get(
            f"/api/chats/{first['id']}/export", params={"format": "json"}, headers=user.headers
        )
        expected = json.loads(single.content)
        assert document["thread"] == expected["thread"]
        assert document["messages"] == expected["messages"]
        markdown = files[f"{folder}/trip-to-lisbon-{first['id']}.md"].decode()
        assert markdown.startswith("# Trip to Lisbon\n")
        assert "a second answer" in markdown  # the newest branch is the one shown
        assert json.loads(files[f"{folder}/empty-one-{second['id']}.json"])["messages"] == []

    async def test_the_zip_imports_into_another_account(self, client, user, other_user, app):
        for title in ("One", "Two", "Three"):
            chat = await new_chat(client, user, title=title)
            await add_turns(app, user, chat["id"], 1, text=title)
        response = await client.get("/api/chats/export", headers=user.headers)
        imported = await client.post(
            "/api/chats/import",
            files={"file": ("parley-export.zip", response.content)},
            headers=other_user.headers,
        )
        assert imported.status_code == 200, imported.text
        summary = imported.json()
        assert (summary["format"], summary["imported"], summary["messages"]) == ("parley", 3, 6)
        copies = await client.get("/api/chats", headers=other_user.headers)
        assert sorted(chat["title"] for chat in copies.json()["items"]) == ["One", "Three", "Two"]
        # Into the account it came from: those are its own chats, nothing changes.
        again = await client.post(
            "/api/chats/import",
            files={"file": ("parley-export.zip", response.content)},
            headers=user.headers,
        )
        assert (again.json()["imported"], again.json()["unchanged"]) == (0, 3)

    async def test_archived_and_trashed_only_when_included(self, client, user):
        await new_chat(client, user, title="Active")
        archived = await new_chat(client, user, title="Archived")
        trashed = await new_chat(client, user, title="Trashed")
        await client.patch(
            f"/api/chats/{archived['id']}", json={"archived": True}, headers=user.headers
        )
        await client.delete(f"/api/chats/{trashed['id']}", headers=user.headers)
        assert titles(await export_zip(client, user)) == ["Active"]
        assert titles(await export_zip(client, user, include="archived")) == [
            "Active",
            "Archived",
        ]
        assert titles(await export_zip(client, user, include="trashed")) == ["Active", "Trashed"]
        assert titles(await export_zip(client, user, include="archived,trashed")) == [
            "Active",
            "Archived",
            "Trashed",
        ]
        response = await client.get(
            "/api/chats/export", params={"include": "archived,deleted"}, headers=user.headers
        )
        error = assert_error(response, 422, "invalid_include")
        assert "deleted" in error["message"]

    async def test_one_projects_or_one_tags_chats(self, client, user):
        created = await client.post("/api/projects", json={"name": "Thesis"}, headers=user.headers)
        project = created.json()
        await new_chat(client, user, title="In the project", project_id=project["id"])
        await new_chat(client, user, title="Tagged", tags=["Travel"])
        await new_chat(client, user, title="Neither")
        assert titles(await export_zip(client, user, project_id=project["id"])) == [
            "In the project"
        ]
        assert titles(await export_zip(client, user, tag="travel")) == ["Tagged"]
        assert titles(await export_zip(client, user, tag="  TRAVEL ")) == ["Tagged"]
        assert titles(await export_zip(client, user, tag="none")) == []

    async def test_other_users_chats_are_never_exported(self, client, user, other_user, app):
        mine = await new_chat(client, user, title="Mine")
        theirs = await new_chat(client, other_user, title="Theirs")
        await add_turns(app, user, mine["id"], 1, text="my secret")
        await add_turns(app, other_user, theirs["id"], 1, text="their secret")
        files = await export_zip(client, user, include="archived,trashed")
        assert titles(files) == ["Mine"]
        everything = b"".join(files.values())
        assert b"their secret" not in everything and theirs["id"].encode() not in everything
        assert titles(await export_zip(client, other_user)) == ["Theirs"]

    async def test_more_chats_than_a_page(self, client, user):
        for index in range(PAGE_CHATS + 3):
            await new_chat(client, user, title=f"Chat {index}")
        files = await export_zip(client, user)
        assert len(titles(files)) == PAGE_CHATS + 3

    async def test_no_chats_is_an_empty_zip(self, client, user):
        assert await export_zip(client, user) == {}


async def test_export_needs_a_signed_in_user(client: httpx.AsyncClient) -> None:
    assert_error(await client.get("/api/chats/export"), 401)
