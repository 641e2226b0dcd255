"""Collections shared with groups: the owner sets `group_ids`; members list, search and use the
collection in their chats (retrieval reads the owner's index), but only the owner changes it;
everyone else, and a member once the group is gone or they left it, gets 404."""

from typing import Any

import httpx

from app.cli import create_admin
from tests.generation.test_replies import stream
from tests.knowledge.test_knowledge import WARRANTY, indexed, search
from tests.support.api import SignedInUser, assert_error, register
from tests.support.fake_upstream import FakeUpstream
from tests.support.upstream_fixtures import Parley, new_chat


async def promoted(parley: Parley) -> SignedInUser:
    user = await register(parley.http, display_name="Root Admin")
    await create_admin(
        parley.app.state.runtime.settings,
        email=user.email,
        display_name="Root Admin",
        password_env="UNUSED_FOR_PROMOTION",
        promote=True,
    )
    return user


async def group_of(parley: Parley, admin: SignedInUser, *users: SignedInUser) -> dict[str, Any]:
    response = await parley.http.post(
        "/api/admin/groups", json={"name": "team"}, headers=admin.headers
    )
    assert response.status_code == 201, response.text
    group = dict(response.json())
    for user in users:
        added = await parley.http.post(
            f"/api/admin/groups/{group['id']}/members",
            json={"user_id": user.user_id},
            headers=admin.headers,
        )
        assert added.status_code == 201, added.text
    return group


async def share(
    parley: Parley, user: SignedInUser, coll: dict[str, Any], group_ids: list[str]
) -> httpx.Response:
    return await parley.http.patch(
        f"/api/collections/{coll['id']}", json={"group_ids": group_ids}, headers=user.headers
    )


async def sources_of(parley: Parley, user: SignedInUser, coll: dict[str, Any]) -> list[Any]:
    chat = await new_chat(parley.http, user, collection_ids=[coll["id"]])
    _, events = await stream(parley, user, chat, "Does the warranty cover water damage?")
    found = [e.data for e in events if e.event == "sources"]
    return list(found[0]["sources"]) if found else []


class TestSharedCollections:
    async def test_members_search_and_use_it_but_only_the_owner_changes_it(
        self, parley: Parley, author: SignedInUser, fake_upstream: FakeUpstream
    ) -> None:
        admin = await promoted(parley)
        member = await register(parley.http)
        coll, file = await indexed(parley, author, WARRANTY)
        group = await group_of(parley, admin, author, member)
        shared = await share(parley, author, coll, [group["id"]])
        assert shared.status_code == 200, shared.text
        assert (shared.json()["group_ids"], shared.json()["owned"]) == ([group["id"]], True)
        # The member lists it, reads it and its files, and searches it.
        listed = await parley.http.get("/api/collections", headers=member.headers)
        assert [(c["id"], c["owned"], c["group_ids"]) for c in listed.json()] == [
            (coll["id"], False, [])
        ]
        url = f"/api/collections/{coll['id']}"
        assert (await parley.http.get(url, headers=member.headers)).status_code == 200
        files = await parley.http.get(f"{url}/files", headers=member.headers)
        assert [f["file_id"] for f in files.json()] == [file["id"]]
        hits = (await search(parley, member, coll, "water damage"))["hits"]
        assert hits and hits[0]["file_id"] == file["id"]
        # Retrieval in the member's chat reads the owner's index.
        sources = await sources_of(parley, member, coll)
        assert sources and sources[0]["file_id"] == file["id"]
        assert "covers water damage" in fake_upstream.state.requests[-1]["messages"][-1]["content"]
        # Only the owner changes it.
        changes = [
            await parley.http.patch(url, json={"name": "Mine now"}, headers=member.headers),
            await share(parley, member, coll, []),
            await parley.http.delete(url, headers=member.headers),
            await parley.http.post(
                f"{url}/files", json={"file_id": file["id"]}, headers=member.headers
            ),
            await parley.http.delete(f"{url}/files/{file['id']}", headers=member.headers),
            await parley.http.post(f"{url}/reindex", headers=member.headers),
        ]
        for response in changes:
            assert_error(response, 403, "collection_read_only")
        assert (await parley.http.get(url, headers=author.headers)).json()["name"] == coll["name"]

    async def test_non_members_get_404_and_losing_the_group_loses_the_collection(
        self, parley: Parley, author: SignedInUser
    ) -> None:
        admin = await promoted(parley)
        member, stranger = await register(parley.http), await register(parley.http)
        coll, _ = await indexed(parley, author, WARRANTY)
        group = await group_of(parley, admin, author, member)
        assert (await share(parley, author, coll, [group["id"]])).status_code == 200
        url = f"/api/collections/{coll['id']}"
        for response in (
            await parley.http.get(url, headers=stranger.headers),
            await parley.http.get(f"{url}/search", params={"q": "x"}, headers=stranger.headers),
            await parley.http.patch(url, json={"name": "x"}, headers=stranger.headers),
            await parley.http.post(
                "/api/chats", json={"collection_ids": [coll["id"]]}, headers=stranger.headers
            ),
        ):
            assert_error(response, 404, "collection_not_found")
        # A chat of the member's names it; once the group is gone, retrieval finds nothing and
        # the collection answers 404.
        chat = await new_chat(parley.http, member, collection_ids=[coll["id"]])
        deleted = await parley.http.delete(
            f"/api/admin/groups/{group['id']}", headers=admin.headers
        )
        assert deleted.status_code == 204
        assert_error(await parley.http.get(url, headers=member.headers), 404)
        _, events = await stream(parley, member, chat, "Does the warranty cover water damage?")
        assert all(e.event != "sources" or e.data["sources"] == [] for e in events)
        owner_view = await parley.http.get(url, headers=author.headers)
        assert owner_view.json()["group_ids"] == []

    async def test_only_groups_the_owner_is_in_can_be_named(
        self, parley: Parley, author: SignedInUser
    ) -> None:
        admin = await promoted(parley)
        coll, _ = await indexed(parley, author, WARRANTY)
        theirs = await group_of(parley, admin)
        refused = await share(parley, author, coll, [theirs["id"]])
        assert_error(refused, 422, "unknown_group")
        refused = await share(parley, author, coll, ["00000000-0000-0000-0000-000000000000"])
        assert_error(refused, 422, "unknown_group")
        bad = await share(parley, author, coll, ["nope"])
        assert_error(bad, 422, "validation_error")
