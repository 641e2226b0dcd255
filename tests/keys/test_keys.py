"""API keys: created once and shown once, stored as keyed hashes, scoped, revoked at once."""

import logging
import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import text

from app.keys.service import KeyChecker
from tests.keys.helpers import azure_style, create_key, make_admin, with_key
from tests.support.api import assert_error, register
from tests.support.app import runtime_of


def checker_of(app) -> KeyChecker:
    checker = runtime_of(app).key_authenticator
    assert isinstance(checker, KeyChecker)
    return checker


class TestCreateKey:
    async def test_the_key_is_shown_once_and_never_stored(self, client, user, clean_db):
        created = await create_key(client, user, scopes=["chats"])
        key = created["key"]
        assert key.startswith("pk-") and len(key) >= 3 + 43
        assert created["hint"] == key[-4:]
        listed = (await client.get("/api/keys", headers=user.headers)).json()
        assert [k["id"] for k in listed] == [created["id"]]
        assert "key" not in listed[0] and listed[0]["hint"] == key[-4:]
        async with clean_db.connect() as connection:
            rows = (await connection.execute(text("SELECT * FROM api_key"))).mappings().all()
        stored = " ".join(str(value) for value in rows[0].values())
        assert key not in stored and key[3:] not in stored

    async def test_the_key_is_never_logged(self, client, user, caplog):
        with caplog.at_level(logging.DEBUG):
            key = (await create_key(client, user, scopes=["chats"]))["key"]
            await client.get("/api/chats", headers=with_key(key))
            await client.get("/api/users/me", headers=with_key(key))
            await client.get("/api/chats", headers=with_key(key[:-1] + "x"))
        assert caplog.records  # the requests were logged...
        assert key[3:] not in caplog.text and key[3:-1] not in caplog.text  # ...not the key

    async def test_every_key_is_different(self, client, user):
        first = await create_key(client, user)
        second = await create_key(client, user)
        assert first["key"] != second["key"]

    async def test_invalid_fields_are_422(self, client, user):
        past = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
        for body in (
            {"name": ""},
            {"name": "x", "scopes": ["admin"]},
            {"name": "x", "expires_at": past},
            {"name": "x", "daily_token_limit": 0},
            {"name": "x", "rpm": True},
            {"name": "x", "rpm": 10**9},
            {"name": "x", "unknown": 1},
        ):
            response = await client.post("/api/keys", json=body, headers=user.headers)
            assert_error(response, 422)


class TestKeyAuth:
    async def test_bearer_and_api_key_header_both_work(self, client, user):
        key = (await create_key(client, user, scopes=["chats"]))["key"]
        for headers in (with_key(key), azure_style(key)):
            response = await client.get("/api/chats", headers=headers)
            assert response.status_code == 200, response.text

    async def test_account_keys_sessions_mfa_and_admin_routes_are_403(self, client, user):
        key = (await create_key(client, user, scopes=["chats", "knowledge"]))["key"]
        for method, path in (
            ("GET", "/api/auth/me"),
            ("GET", "/api/users/me"),
            ("DELETE", "/api/users/me"),
            ("GET", "/api/keys"),
            ("POST", "/api/keys"),
            ("GET", "/api/auth/sessions"),
            ("POST", "/api/auth/logout-all"),
            ("POST", "/api/auth/mfa/setup"),
            ("POST", "/api/auth/change-password"),
            ("GET", "/api/admin/users"),
            ("GET", "/api/admin/keys"),
            ("GET", "/api/usage"),
        ):
            response = await client.request(method, path, headers=with_key(key), json={})
            assert_error(response, 403, "api_key_not_allowed")
        me = await client.get("/api/auth/me", headers=user.headers)
        assert me.status_code == 200  # the account is untouched

    async def test_scopes_open_their_routes_only(self, client, user):
        none = (await create_key(client, user))["key"]
        chats = (await create_key(client, user, scopes=["chats"]))["key"]
        knowledge = (await create_key(client, user, scopes=["knowledge"]))["key"]
        # (/api/modes is public: it answers whoever asks.)
        for path in ("/api/chats", "/api/models", "/api/generations"):
            assert_error(
                await client.get(path, headers=with_key(none)), 403, "api_key_scope_missing"
            )
            assert (await client.get(path, headers=with_key(chats))).status_code == 200
            assert_error(
                await client.get(path, headers=with_key(knowledge)), 403, "api_key_scope_missing"
            )
        for path in ("/api/collections", "/api/files"):
            assert_error(
                await client.get(path, headers=with_key(chats)), 403, "api_key_scope_missing"
            )
            assert (await client.get(path, headers=with_key(knowledge))).status_code == 200

    async def test_a_key_sees_only_its_users_data(self, client, user, other_user):
        await client.post("/api/chats", json={"title": "mine"}, headers=user.headers)
        theirs = await client.post(
            "/api/chats", json={"title": "theirs"}, headers=other_user.headers
        )
        key = (await create_key(client, user, scopes=["chats"]))["key"]
        listed = (await client.get("/api/chats", headers=with_key(key))).json()["items"]
        assert [c["title"] for c in listed] == ["mine"]
        other = await client.get(f"/api/chats/{theirs.json()['id']}", headers=with_key(key))
        assert_error(other, 404)

    async def test_wrong_malformed_and_long_keys_are_401(self, client, user):
        await create_key(client, user, scopes=["chats"])
        for key in ("pk-" + "A" * 43, "pk-", "pk-" + "x" * 5000):
            response = await client.get("/api/chats", headers=with_key(key))
            assert_error(response, 401, "invalid_api_key")
        assert_error(await client.get("/api/chats", headers=azure_style("nope")), 401)

    async def test_an_expired_key_is_401(self, client, user, clean_db):
        created = await create_key(client, user, scopes=["chats"])
        assert (await client.get("/api/chats", headers=with_key(created["key"]))).status_code == 200
        async with clean_db.begin() as connection:
            await connection.execute(
                text("UPDATE api_key SET expires_at = :at"),
                {"at": datetime.now(UTC) - timedelta(seconds=1)},
            )
        # The worker cached the grant; expiry is checked on every request all the same, once
        # the edit is announced (here: the key is edited through the API, which announces it).
        patch = await client.patch(
            f"/api/keys/{created['id']}", json={"name": "renamed"}, headers=user.headers
        )
        assert patch.status_code == 200
        assert_error(
            await client.get("/api/chats", headers=with_key(created["key"])), 401, "api_key_expired"
        )

    async def test_expiry_is_checked_without_any_message(self, client, user):
        soon = datetime.now(UTC) + timedelta(seconds=1)
        created = await create_key(client, user, scopes=["chats"], expires_at=soon.isoformat())
        assert (await client.get("/api/chats", headers=with_key(created["key"]))).status_code == 200

        async def refused() -> bool:
            response = await client.get("/api/chats", headers=with_key(created["key"]))
            return response.status_code == 401

        from tests.support.wait import wait_until

        await wait_until(refused, timeout=5, interval=0.1)

    async def test_a_disabled_user_is_refused_at_once(self, client, user, clean_db):
        key = (await create_key(client, user, scopes=["chats"]))["key"]
        assert (await client.get("/api/chats", headers=with_key(key))).status_code == 200
        admin = await register(client)
        await make_admin(clean_db, admin)
        disabled = await client.patch(
            f"/api/admin/users/{user.user_id}", json={"is_active": False}, headers=admin.headers
        )
        assert disabled.status_code == 200, disabled.text
        assert_error(await client.get("/api/chats", headers=with_key(key)), 403, "account_disabled")

    async def test_a_deleted_user_is_refused(self, client, user):
        key = (await create_key(client, user, scopes=["chats"]))["key"]
        assert (await client.get("/api/chats", headers=with_key(key))).status_code == 200
        deleted = await client.request(
            "DELETE", "/api/users/me", json={"password": user.password}, headers=user.headers
        )
        assert deleted.status_code == 204, deleted.text
        assert_error(await client.get("/api/chats", headers=with_key(key)), 401, "invalid_api_key")


class TestRevokeKey:
    async def test_a_revoked_key_is_refused_at_once(self, app, client, user):
        created = await create_key(client, user, scopes=["chats"])
        key = created["key"]
        assert (await client.get("/api/chats", headers=with_key(key))).status_code == 200
        reads = checker_of(app).reads
        assert (await client.get("/api/chats", headers=with_key(key))).status_code == 200
        assert checker_of(app).reads == reads  # the grant was cached
        response = await client.delete(f"/api/keys/{created['id']}", headers=user.headers)
        assert response.status_code == 204
        assert_error(await client.get("/api/chats", headers=with_key(key)), 401, "invalid_api_key")
        assert (await client.get("/api/keys", headers=user.headers)).json() == []

    async def test_other_users_keys_are_404(self, client, user, other_user):
        created = await create_key(client, other_user)
        path = f"/api/keys/{created['id']}"
        assert_error(await client.delete(path, headers=user.headers), 404, "api_key_not_found")
        assert_error(
            await client.patch(path, json={"name": "x"}, headers=user.headers),
            404,
            "api_key_not_found",
        )
        assert_error(await client.delete(f"/api/keys/{uuid.uuid4()}", headers=user.headers), 404)

    async def test_removing_a_scope_applies_at_once(self, client, user):
        created = await create_key(client, user, scopes=["chats"])
        assert (await client.get("/api/chats", headers=with_key(created["key"]))).status_code == 200
        await client.patch(f"/api/keys/{created['id']}", json={"scopes": []}, headers=user.headers)
        assert_error(
            await client.get("/api/chats", headers=with_key(created["key"])),
            403,
            "api_key_scope_missing",
        )

    async def test_admins_list_and_revoke_any_key(self, client, user, clean_db):
        created = await create_key(client, user, scopes=["chats"])
        admin = await register(client)
        assert_error(await client.get("/api/admin/keys", headers=user.headers), 403)
        await make_admin(clean_db, admin)
        listed = (await client.get("/api/admin/keys", headers=admin.headers)).json()
        assert [(k["id"], k["email"]) for k in listed] == [(created["id"], user.email)]
        response = await client.delete(f"/api/admin/keys/{created['id']}", headers=admin.headers)
        assert response.status_code == 204
        assert_error(await client.get("/api/chats", headers=with_key(created["key"])), 401)
        assert (await client.get("/api/admin/keys", headers=admin.headers)).json() == []
        everything = await client.get(
            "/api/admin/keys", params={"include_revoked": "true"}, headers=admin.headers
        )
        assert everything.json()[0]["revoked_at"] is not None


class TestLastUsed:
    async def test_written_on_first_use_and_not_again_within_the_minute(
        self, client, user, clean_db
    ):
        created = await create_key(client, user, scopes=["chats"])
        assert created["last_used_at"] is None
        await client.get("/api/chats", headers=with_key(created["key"]))
        first = (await client.get("/api/keys", headers=user.headers)).json()[0]["last_used_at"]
        assert first is not None
        async with clean_db.begin() as connection:
            await connection.execute(text("UPDATE api_key SET last_used_at = NULL"))
        await client.get("/api/chats", headers=with_key(created["key"]))
        # This worker wrote it less than a minute ago: no write on this request.
        assert (await client.get("/api/keys", headers=user.headers)).json()[0][
            "last_used_at"
        ] is None
