"""Administration of users: list and search, enable/disable, role, quota."""

import uuid

import pytest

from tests.support.api import PASSWORD, assert_error, login, register


async def patch_user(client, admin, user_id: str, body: dict):
    return await client.patch(f"/api/admin/users/{user_id}", json=body, headers=admin.headers)


class TestListUsers:
    async def test_admins_only(self, client, admin):
        user = await register(client)
        assert_error(await client.get("/api/admin/users", headers=user.headers), 403, "forbidden")
        assert_error(await client.get("/api/admin/users"), 401)

    async def test_pages_newest_first_with_a_total(self, client, admin):
        users = [await register(client) for _ in range(4)]

        first = await client.get(
            "/api/admin/users", params={"limit": 2, "offset": 0}, headers=admin.headers
        )
        second = await client.get(
            "/api/admin/users", params={"limit": 2, "offset": 2}, headers=admin.headers
        )

        assert first.status_code == 200, first.text
        assert first.json()["total"] == second.json()["total"] == 5
        emails = [u["email"] for u in first.json()["items"] + second.json()["items"]]
        assert emails == [u.email for u in reversed(users)]
        assert set(first.json()["items"][0]) >= {
            "id",
            "email",
            "display_name",
            "role",
            "is_active",
            "email_verified",
            "mfa_enabled",
            "daily_token_quota",
        }

    async def test_searches_email_and_display_name_case_insensitively(self, client, admin):
        grace = await register(client, email="grace.hopper@navy.example", display_name="Grace")
        await register(client, email="alan@example.com", display_name="Alan Turing")

        by_email = await client.get(
            "/api/admin/users", params={"q": "HOPPER"}, headers=admin.headers
        )
        by_name = await client.get(
            "/api/admin/users", params={"q": "turing"}, headers=admin.headers
        )

        assert [u["email"] for u in by_email.json()["items"]] == [grace.email]
        assert by_email.json()["total"] == 1
        assert [u["display_name"] for u in by_name.json()["items"]] == ["Alan Turing"]

    async def test_the_last_page_far_away_is_empty(self, client, admin):
        response = await client.get(
            "/api/admin/users", params={"offset": 2**31 - 1}, headers=admin.headers
        )
        assert response.status_code == 200
        assert response.json()["items"] == []

    async def test_wildcards_in_the_query_are_literal(self, client, admin):
        await register(client, email="plain@example.com")
        response = await client.get("/api/admin/users", params={"q": "%"}, headers=admin.headers)
        assert response.json()["total"] == 0

    @pytest.mark.parametrize(
        "params",
        [
            {"limit": 0},
            {"limit": 201},
            {"offset": -1},
            {"offset": 2**31},
            {"offset": 9223372036854775808},
        ],
    )
    async def test_page_bounds(self, client, admin, params):
        response = await client.get("/api/admin/users", params=params, headers=admin.headers)
        assert_error(response, 422, "validation_error")


class TestDisableUser:
    async def test_cuts_a_signed_in_user_off_at_once(self, client, admin):
        user = await register(client)
        assert (await client.get("/api/auth/me", headers=user.headers)).status_code == 200

        response = await patch_user(client, admin, user.user_id, {"is_active": False})

        assert response.status_code == 200, response.text
        assert response.json()["is_active"] is False
        assert_error(await client.get("/api/auth/me", headers=user.headers), 401)
        refresh = await client.post("/api/auth/refresh", json={"refresh_token": user.refresh_token})
        assert_error(refresh, 401)

    async def test_disabled_user_cannot_sign_in(self, client, admin):
        user = await register(client)
        await patch_user(client, admin, user.user_id, {"is_active": False})

        assert_error(await login(client, user.email), 403, "account_disabled")

    async def test_enabling_again_does_not_revive_old_sessions(self, client, admin):
        user = await register(client)
        await patch_user(client, admin, user.user_id, {"is_active": False})

        await patch_user(client, admin, user.user_id, {"is_active": True})

        assert_error(await client.get("/api/auth/me", headers=user.headers), 401)
        assert (await login(client, user.email, PASSWORD)).status_code == 200

    async def test_admin_cannot_disable_or_demote_themselves(self, client, admin):
        for body in ({"is_active": False}, {"role": "user"}):
            response = await patch_user(client, admin, admin.user_id, body)
            assert_error(response, 409, "cannot_modify_self")


class TestUpdateUser:
    async def test_sets_and_clears_the_quota(self, client, admin):
        user = await register(client)

        set_ = await patch_user(client, admin, user.user_id, {"daily_token_quota": 50000})
        other_change = await patch_user(client, admin, user.user_id, {"is_active": True})
        cleared = await patch_user(client, admin, user.user_id, {"daily_token_quota": None})

        assert set_.json()["daily_token_quota"] == 50000
        assert other_change.json()["daily_token_quota"] == 50000  # left out: unchanged
        assert cleared.json()["daily_token_quota"] is None
        me = await client.get("/api/users/me", headers=user.headers)
        assert me.json()["daily_token_quota"] is None

    async def test_the_largest_quota_the_column_holds_is_kept(self, client, admin):
        user = await register(client)

        response = await patch_user(client, admin, user.user_id, {"daily_token_quota": 2**31 - 1})

        assert response.json()["daily_token_quota"] == 2**31 - 1
        me = await client.get("/api/users/me", headers=user.headers)
        assert me.json()["daily_token_quota"] == 2**31 - 1

    async def test_promotes_to_admin(self, client, admin):
        user = await register(client)

        response = await patch_user(client, admin, user.user_id, {"role": "admin"})

        assert response.json()["role"] == "admin"
        assert (await client.get("/api/admin/users", headers=user.headers)).status_code == 200

    @pytest.mark.parametrize(
        "body",
        [
            {"role": "superuser"},
            {"daily_token_quota": -1},
            {"daily_token_quota": 2**31},
            {"daily_token_quota": 2**63},
            {"is_active": "maybe"},
        ],
    )
    async def test_invalid_changes_are_refused(self, client, admin, body):
        user = await register(client)
        response = await patch_user(client, admin, user.user_id, body)
        assert_error(response, 422, "validation_error")

    async def test_unknown_user_is_404(self, client, admin):
        response = await patch_user(client, admin, str(uuid.uuid4()), {"is_active": False})
        assert_error(response, 404, "user_not_found")

    async def test_admins_only(self, client, admin):
        user, other = await register(client), await register(client)
        response = await client.patch(
            f"/api/admin/users/{other.user_id}", json={"role": "admin"}, headers=user.headers
        )
        assert_error(response, 403, "forbidden")


class TestUpdateUserRefusesUnknownFields:
    async def test_fields_admins_cannot_set_are_refused(self, client, admin):
        user = await register(client)
        response = await patch_user(client, admin, user.user_id, {"email": "new@example.com"})
        assert_error(response, 422, "validation_error")


class TestListUsersOddQueries:
    async def test_nul_in_the_query_is_invalid_input(self, client, admin):
        response = await client.get(
            "/api/admin/users", params={"q": "a\u0000"}, headers=admin.headers
        )
        assert_error(response, 422, "validation_error")
