"""The groups endpoints over real HTTP: administrators create, change and delete groups; a
group's admins manage its membership and nothing else; every user lists their own groups; the
membership sync single sign-on uses."""

import uuid

import pytest

from app.core.db import Database
from app.core.uow import unit_of_work
from app.groups.service import GroupService
from tests.groups.conftest import add_member, create_group
from tests.support.api import SignedInUser, assert_error, register
from tests.support.upstream_fixtures import Parley


class TestCreateGroup:
    async def test_a_group_has_its_fields_and_admins(
        self, parley: Parley, admin: SignedInUser, member: SignedInUser
    ) -> None:
        group = await create_group(
            parley.http,
            admin,
            name="  research ",
            description="The lab",
            models=["fake-model"],
            daily_token_quota=5000,
            admins=[member.user_id],
        )
        assert group["name"] == "research"
        assert (group["description"], group["models"]) == ("The lab", ["fake-model"])
        assert group["daily_token_quota"] == 5000
        assert group["admins"] == [member.user_id]
        assert (group["member_count"], group["members"]) == (0, [])

    async def test_a_taken_name_is_409(self, parley: Parley, admin: SignedInUser) -> None:
        await create_group(parley.http, admin, name="research")
        again = await parley.http.post(
            "/api/admin/groups", json={"name": "research"}, headers=admin.headers
        )
        assert_error(again, 409, "group_name_taken")

    @pytest.mark.parametrize(
        ("body", "code"),
        [
            ({"name": ""}, "validation_error"),
            ({"name": "x" * 101}, "validation_error"),
            ({"name": "q", "daily_token_quota": -1}, "validation_error"),
            ({"name": "q", "daily_token_quota": "10"}, "validation_error"),
            ({"name": "q", "models": ["no-such-model"]}, "unknown_group_model"),
            ({"name": "q", "admins": [str(uuid.uuid4())]}, "unknown_user"),
        ],
    )
    async def test_bad_input_is_422(
        self, parley: Parley, admin: SignedInUser, body: dict[str, object], code: str
    ) -> None:
        response = await parley.http.post("/api/admin/groups", json=body, headers=admin.headers)
        assert_error(response, 422, code)

    async def test_a_user_is_403(self, parley: Parley, member: SignedInUser) -> None:
        response = await parley.http.post(
            "/api/admin/groups", json={"name": "mine"}, headers=member.headers
        )
        assert_error(response, 403, "forbidden")


class TestReadGroups:
    async def test_list_and_get(
        self, parley: Parley, admin: SignedInUser, member: SignedInUser
    ) -> None:
        beta = await create_group(parley.http, admin, name="beta")
        await create_group(parley.http, admin, name="alpha")
        assert (await add_member(parley.http, admin, beta, member)).status_code == 201
        listed = await parley.http.get("/api/admin/groups", headers=admin.headers)
        assert [(g["name"], g["member_count"]) for g in listed.json()] == [
            ("alpha", 0),
            ("beta", 1),
        ]
        one = await parley.http.get(f"/api/admin/groups/{beta['id']}", headers=admin.headers)
        assert [m["email"] for m in one.json()["members"]] == [member.email]

    async def test_an_unknown_group_is_404(self, parley: Parley, admin: SignedInUser) -> None:
        response = await parley.http.get(f"/api/admin/groups/{uuid.uuid4()}", headers=admin.headers)
        assert_error(response, 404, "group_not_found")


class TestUpdateGroup:
    async def test_only_the_fields_sent_change(self, parley: Parley, admin: SignedInUser) -> None:
        group = await create_group(parley.http, admin, models=["fake-model"], daily_token_quota=9)
        response = await parley.http.patch(
            f"/api/admin/groups/{group['id']}",
            json={"name": "lab", "daily_token_quota": None},
            headers=admin.headers,
        )
        assert response.status_code == 200, response.text
        changed = response.json()
        assert (changed["name"], changed["models"], changed["daily_token_quota"]) == (
            "lab",
            ["fake-model"],
            None,
        )

    async def test_a_taken_name_is_409_and_bad_models_422(
        self, parley: Parley, admin: SignedInUser
    ) -> None:
        await create_group(parley.http, admin, name="taken")
        group = await create_group(parley.http, admin, name="mine")
        url = f"/api/admin/groups/{group['id']}"
        renamed = await parley.http.patch(url, json={"name": "taken"}, headers=admin.headers)
        assert_error(renamed, 409, "group_name_taken")
        models = await parley.http.patch(url, json={"models": ["nope"]}, headers=admin.headers)
        assert_error(models, 422, "unknown_group_model")
        unknown = await parley.http.patch(
            f"/api/admin/groups/{uuid.uuid4()}", json={"name": "x"}, headers=admin.headers
        )
        assert_error(unknown, 404, "group_not_found")

    async def test_delete(self, parley: Parley, admin: SignedInUser) -> None:
        group = await create_group(parley.http, admin)
        url = f"/api/admin/groups/{group['id']}"
        assert (await parley.http.delete(url, headers=admin.headers)).status_code == 204
        assert_error(await parley.http.get(url, headers=admin.headers), 404, "group_not_found")
        assert_error(await parley.http.delete(url, headers=admin.headers), 404, "group_not_found")


class TestMembership:
    async def test_add_and_remove(
        self, parley: Parley, admin: SignedInUser, member: SignedInUser
    ) -> None:
        group = await create_group(parley.http, admin)
        added = await add_member(parley.http, admin, group, member)
        assert added.status_code == 201, added.text
        assert [m["id"] for m in added.json()["members"]] == [member.user_id]
        again = await add_member(parley.http, admin, group, member)
        assert again.json()["member_count"] == 1
        url = f"/api/admin/groups/{group['id']}/members/{member.user_id}"
        assert (await parley.http.delete(url, headers=admin.headers)).status_code == 204
        assert_error(await parley.http.delete(url, headers=admin.headers), 404, "user_not_found")

    async def test_an_unknown_user_or_group_is_404(
        self, parley: Parley, admin: SignedInUser
    ) -> None:
        group = await create_group(parley.http, admin)
        response = await parley.http.post(
            f"/api/admin/groups/{group['id']}/members",
            json={"user_id": str(uuid.uuid4())},
            headers=admin.headers,
        )
        assert_error(response, 404, "user_not_found")
        response = await parley.http.post(
            f"/api/admin/groups/{uuid.uuid4()}/members",
            json={"user_id": admin.user_id},
            headers=admin.headers,
        )
        assert_error(response, 404, "group_not_found")
        bad = await parley.http.post(
            f"/api/admin/groups/{group['id']}/members",
            json={"user_id": "nope"},
            headers=admin.headers,
        )
        assert_error(bad, 422, "validation_error")


class TestGroupAdmins:
    async def test_a_group_admin_manages_that_groups_members_only(
        self, parley: Parley, admin: SignedInUser, member: SignedInUser, outsider: SignedInUser
    ) -> None:
        lead = await register(parley.http, display_name="Lead")
        mine = await create_group(parley.http, admin, name="mine", admins=[lead.user_id])
        other = await create_group(parley.http, admin, name="other")
        added = await add_member(parley.http, lead, mine, member)
        assert added.status_code == 201, added.text
        removed = await parley.http.delete(
            f"/api/admin/groups/{mine['id']}/members/{member.user_id}", headers=lead.headers
        )
        assert removed.status_code == 204
        assert_error(await add_member(parley.http, lead, other, member), 403, "forbidden")
        # A group that does not exist answers like one they do not administer.
        assert_error(
            await add_member(parley.http, lead, {"id": str(uuid.uuid4())}, member),
            403,
            "forbidden",
        )
        # Nothing else: not the group itself, not other administrator routes.
        refused = [
            await parley.http.get("/api/admin/groups", headers=lead.headers),
            await parley.http.get(f"/api/admin/groups/{mine['id']}", headers=lead.headers),
            await parley.http.patch(
                f"/api/admin/groups/{mine['id']}", json={"name": "x"}, headers=lead.headers
            ),
            await parley.http.delete(f"/api/admin/groups/{mine['id']}", headers=lead.headers),
            await parley.http.get("/api/admin/users", headers=lead.headers),
            await parley.http.patch(
                "/api/admin/models/fake-model", json={"restricted": True}, headers=lead.headers
            ),
        ]
        for response in refused:
            assert_error(response, 403, "forbidden")
        # Users who administer nothing cannot manage members at all.
        assert_error(await add_member(parley.http, outsider, mine, outsider), 403, "forbidden")


class TestMyGroups:
    async def test_lists_the_groups_i_am_in_or_administer(
        self, parley: Parley, admin: SignedInUser, member: SignedInUser
    ) -> None:
        research = await create_group(
            parley.http, admin, name="research", models=["fake-model"], daily_token_quota=7
        )
        await create_group(parley.http, admin, name="leads", admins=[member.user_id])
        await create_group(parley.http, admin, name="unrelated")
        await add_member(parley.http, admin, research, member)
        response = await parley.http.get("/api/groups/mine", headers=member.headers)
        assert response.status_code == 200, response.text
        assert [(g["name"], g["member"], g["admin"]) for g in response.json()] == [
            ("leads", False, True),
            ("research", True, False),
        ]
        assert response.json()[1]["models"] == ["fake-model"]
        assert response.json()[1]["daily_token_quota"] == 7


class TestSyncMemberships:
    async def test_the_user_ends_in_exactly_the_groups_named(
        self, parley: Parley, admin: SignedInUser, member: SignedInUser, db: Database
    ) -> None:
        kept = await create_group(parley.http, admin, name="staff")
        dropped = await create_group(parley.http, admin, name="old-team")
        await add_member(parley.http, admin, dropped, member)
        runtime = parley.app.state.runtime
        user_id = uuid.UUID(member.user_id)
        async with unit_of_work(db) as uow:
            service = GroupService(uow=uow, cache=runtime.groups)
            names = await service.sync_memberships(
                user_id, ["staff", "idp-only", " "], create_missing=False
            )
        assert names == ["staff"]
        async with unit_of_work(db) as uow:
            service = GroupService(uow=uow, cache=runtime.groups)
            names = await service.sync_memberships(
                user_id, ["staff", "idp-only"], create_missing=True
            )
        assert names == ["idp-only", "staff"]
        mine = await parley.http.get("/api/groups/mine", headers=member.headers)
        assert [g["name"] for g in mine.json()] == ["idp-only", "staff"]
        detail = await parley.http.get(f"/api/admin/groups/{kept['id']}", headers=admin.headers)
        assert detail.json()["member_count"] == 1
