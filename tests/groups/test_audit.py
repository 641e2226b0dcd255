"""Each group change leaves an audit event: group created, changed, deleted, membership changed
(by an administrator or the group's admin), model restricted; a refused change leaves none."""

from tests.groups.conftest import add_member, create_group, restrict
from tests.support.api import SignedInUser, register
from tests.support.audit import audit_events
from tests.support.upstream_fixtures import Parley


class TestGroupEvents:
    async def test_every_change_is_recorded_with_its_actor(
        self, parley: Parley, admin: SignedInUser, member: SignedInUser
    ) -> None:
        lead = await register(parley.http)
        group = await create_group(parley.http, admin, admins=[lead.user_id])
        url = f"/api/admin/groups/{group['id']}"
        await parley.http.patch(url, json={"daily_token_quota": 5}, headers=admin.headers)
        assert (await add_member(parley.http, lead, group, member)).status_code == 201
        await parley.http.delete(f"{url}/members/{member.user_id}", headers=admin.headers)
        await restrict(parley.http, admin, "fake-model")
        await restrict(parley.http, admin, "fake-model")  # no change: no event
        await parley.http.delete(url, headers=admin.headers)
        # Refused: a user who manages nothing.
        await parley.http.post("/api/admin/groups", json={"name": "x"}, headers=member.headers)

        events = await audit_events(parley.http, admin)
        seen = [
            (e["action"], e["actor"], e["target_id"])
            for e in reversed(events)
            if e["action"].startswith(("group.", "model."))
        ]
        gid = group["id"]
        assert seen == [
            ("group.created", admin.user_id, gid),
            ("group.changed", admin.user_id, gid),
            ("group.membership_changed", lead.user_id, gid),
            ("group.membership_changed", admin.user_id, gid),
            ("model.restricted", admin.user_id, "fake-model"),
            ("group.deleted", admin.user_id, gid),
        ]
        changed = next(e for e in events if e["action"] == "group.changed")
        assert changed["details"] == {"fields": ["daily_token_quota"]}
