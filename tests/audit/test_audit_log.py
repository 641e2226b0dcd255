"""The audit log: the events each security and administrative action records (with who, from
where, which request), the admin route's filters, cursor and JSON Lines export, no secrets in
details, and the retention purge."""

import json
import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select

from app.audit.actions import ANONYMOUS
from app.audit.models import AuditEvent
from app.audit.recorder import clean_details
from app.audit.repository import AuditRepository
from app.audit.service import purge_audit
from app.core.db import Database
from tests.auth.test_mfa import Clock, enable_mfa
from tests.auth.test_verification import mailed_token
from tests.support.api import PASSWORD, assert_error, bearer, login, register
from tests.support.app import runtime_of, settle
from tests.support.audit import audit_events, one_event
from tests.support.smtp_server import extract_token
from tests.support.wait import wait_until


class TestTheRoute:
    async def test_administrators_only(self, client, admin):
        user = await register(client)
        assert_error(await client.get("/api/admin/audit", headers=user.headers), 403, "forbidden")
        assert_error(await client.get("/api/admin/audit"), 401)

    async def test_no_route_edits_or_deletes_an_event(self, app, client, admin):
        paths = {path: set(item) for path, item in app.openapi()["paths"].items()}
        assert {path for path in paths if "audit" in path} == {"/api/admin/audit"}
        assert paths["/api/admin/audit"] == {"get"}
        for method in ("DELETE", "PATCH", "PUT", "POST"):
            response = await client.request(method, "/api/admin/audit", headers=admin.headers)
            assert response.status_code == 405

    async def test_filters_pages_and_exports(self, client, admin):
        users = [await register(client) for _ in range(3)]
        for user in users:
            await login(client, user.email)

        everyone = await audit_events(client, admin, action="auth.sign_in")
        assert [e["target_id"] for e in everyone] == [u.user_id for u in reversed(users)]
        first = await client.get(
            "/api/admin/audit", params={"action": "auth.*", "limit": 2}, headers=admin.headers
        )
        second = await client.get(
            "/api/admin/audit",
            params={"action": "auth.*", "limit": 2, "cursor": first.json()["next_cursor"]},
            headers=admin.headers,
        )
        assert len(first.json()["items"]) == 2 and len(second.json()["items"]) == 1
        by_actor = await audit_events(client, admin, actor=users[0].user_id)
        assert {e["action"] for e in by_actor} == {"user.created", "auth.sign_in"}
        by_target = await audit_events(
            client, admin, target_type="user", target_id=users[1].user_id
        )
        assert {e["action"] for e in by_target} == {"user.created", "auth.sign_in"}
        later = (datetime.now(UTC) + timedelta(minutes=1)).isoformat()
        assert await audit_events(client, admin, since=later) == []
        assert len(await audit_events(client, admin, until=later, action="user.created")) == 4

        export = await client.get(
            "/api/admin/audit",
            params={"format": "jsonl", "action": "auth.*"},
            headers=admin.headers,
        )
        assert export.status_code == 200
        assert export.headers["content-type"].startswith("application/x-ndjson")
        lines = [json.loads(line) for line in export.text.splitlines()]
        assert [e["id"] for e in lines] == [e["id"] for e in everyone]
        by_accept = await client.get(
            "/api/admin/audit",
            params={"action": "auth.*"},
            headers={**admin.headers, "Accept": "application/jsonl"},
        )
        assert by_accept.text == export.text

    async def test_bad_filters_are_refused_clearly(self, client, admin):
        for params in (
            {"since": "2026-01-01T00:00:00"},  # no time zone
            {"action": "DROP TABLE"},
            {"limit": "0"},
        ):
            response = await client.get("/api/admin/audit", params=params, headers=admin.headers)
            assert_error(response, 422, "validation_error")
        assert_error(
            await client.get("/api/admin/audit", params={"cursor": "abc"}, headers=admin.headers),
            400,
            "invalid_cursor",
        )


class TestSignIn:
    async def test_a_failed_sign_in_is_recorded_though_the_request_fails(self, client, admin):
        user = await register(client)

        response = await client.post(
            "/api/auth/login",
            json={"email": user.email, "password": "not the password at all"},
            headers={"User-Agent": "audit-test/1.0"},
        )

        assert_error(response, 401, "invalid_credentials")
        event = await one_event(client, admin, "auth.sign_in", target_id=user.user_id)
        assert event["outcome"] == "failed"
        assert event["actor"] == ANONYMOUS
        assert event["details"] == {"method": "password", "reason": "invalid_credentials"}
        assert event["request_id"] == response.headers["x-request-id"]
        assert event["user_agent"] == "audit-test/1.0"
        assert event["ip"] == "127.0.0.1"

    async def test_an_unknown_email_is_recorded_without_naming_it(self, client, admin):
        await login(client, "nobody@example.com")
        event = await one_event(client, admin, "auth.sign_in")
        assert event["outcome"] == "failed" and event["target_id"] is None
        assert event["details"]["account"] == "unknown"
        assert "nobody" not in json.dumps(event)

    async def test_success_and_lockout(self, client, admin, settings):
        user = await register(client)
        await login(client, user.email)
        for _ in range(settings.lockout_max_attempts):
            await login(client, user.email, "wrong password, again!")
        assert_error(await login(client, user.email), 423, "account_locked")

        events = await audit_events(client, admin, action="auth.sign_in", actor=user.user_id)
        assert [e["outcome"] for e in events] == ["succeeded"]
        outcomes = [e["outcome"] for e in await audit_events(client, admin, action="auth.sign_in")]
        assert outcomes[:2] == ["locked", "locked"]
        assert outcomes.count("failed") == settings.lockout_max_attempts - 1

    async def test_a_disabled_account_signing_in_is_recorded(self, client, admin):
        user = await register(client)
        await client.patch(
            f"/api/admin/users/{user.user_id}", json={"is_active": False}, headers=admin.headers
        )
        assert_error(await login(client, user.email), 403, "account_disabled")
        event = await one_event(client, admin, "auth.sign_in", target_id=user.user_id)
        assert event["outcome"] == "failed"
        assert event["details"]["reason"] == "account_disabled"

    async def test_mfa_sign_in_and_recovery_code(self, app, client, admin):
        clock = Clock(datetime(2031, 5, 1, 12, 0, 0, tzinfo=UTC))
        runtime_of(app).clock = clock
        mfa = await enable_mfa(client, await register(client), clock)
        step = await login(client, mfa.user.email)
        token = step.json()["challenge_token"]
        bad = await client.post(
            "/api/auth/mfa/verify", json={"challenge_token": token, "code": "000000"}
        )
        assert_error(bad, 401, "invalid_mfa_code")
        good = await client.post(
            "/api/auth/mfa/verify",
            json={"challenge_token": token, "code": mfa.recovery_codes[0]},
        )
        assert good.status_code == 200, good.text

        events = await audit_events(client, admin, target_id=mfa.user.user_id)
        actions = [(e["action"], e["outcome"], (e["details"] or {}).get("method")) for e in events]
        assert actions[:3] == [
            ("auth.sign_in", "succeeded", "mfa"),
            ("auth.recovery_code_used", "succeeded", None),
            ("auth.sign_in", "failed", "mfa"),
        ]
        assert ("auth.mfa_enabled", "succeeded", None) in actions
        assert events[1]["details"] == {"left": 9}

        disable = await client.post(
            "/api/auth/mfa/disable",
            json={"password": PASSWORD, "code": mfa.code()},
            headers=mfa.user.headers,
        )
        assert disable.status_code == 204, disable.text
        await one_event(client, admin, "auth.mfa_disabled", actor=mfa.user.user_id)


class TestAccountEvents:
    async def test_sessions_and_passwords(self, client, admin, smtp_server):
        user = await register(client)
        other = await login(client, user.email)
        other_session = other.json()["session_id"]
        response = await client.delete(f"/api/auth/sessions/{other_session}", headers=user.headers)
        assert response.status_code == 204
        event = await one_event(client, admin, "auth.session_revoked")
        assert (event["actor"], event["target_type"], event["target_id"]) == (
            user.user_id,
            "session",
            other_session,
        )

        new_password = "a brand new passphrase 77"
        changed = await client.post(
            "/api/auth/change-password",
            json={"current_password": PASSWORD, "new_password": new_password},
            headers=user.headers,
        )
        assert changed.status_code == 204, changed.text
        await one_event(client, admin, "auth.password_changed", actor=user.user_id)

        await client.post("/api/auth/forgot-password", json={"email": user.email})
        mail = await smtp_server.wait_for(
            lambda m: m.subject == "Reset your Parley password", to=user.email
        )
        reset = await client.post(
            "/api/auth/reset-password",
            json={"token": extract_token(mail.text), "new_password": "yet another passphrase 88"},
        )
        assert reset.status_code == 204, reset.text
        event = await one_event(client, admin, "auth.password_reset")
        assert event["actor"] == user.user_id

        signed_in = await login(client, user.email, "yet another passphrase 88")
        everywhere = await client.post(
            "/api/auth/logout-all",
            headers={"Authorization": "Bearer " + signed_in.json()["access_token"]},
        )
        assert everywhere.status_code == 204, everywhere.text
        event = await one_event(client, admin, "auth.sign_out_everywhere")
        assert event["actor"] == user.user_id

        everything = json.dumps(await audit_events(client, admin))
        for secret in (PASSWORD, new_password, signed_in.json()["access_token"]):
            assert secret not in everything

    async def test_email_verified_and_changed(self, client, admin, smtp_server):
        user = await register(client)
        verified = await client.post(
            "/api/auth/verify-email", json={"token": await mailed_token(smtp_server, user.email)}
        )
        assert verified.status_code == 200, verified.text
        await one_event(client, admin, "auth.email_verified", actor=user.user_id)

        new_email = f"new-{uuid.uuid4().hex[:8]}@example.com"
        asked = await client.patch(
            "/api/users/me",
            json={"email": new_email, "current_password": PASSWORD},
            headers=user.headers,
        )
        assert asked.status_code == 200, asked.text
        changed = await client.post(
            "/api/auth/verify-email", json={"token": await mailed_token(smtp_server, new_email)}
        )
        assert changed.status_code == 200, changed.text
        await one_event(client, admin, "auth.email_changed", actor=user.user_id)

    async def test_admin_changes_and_deletion(self, client, admin):
        user = await register(client)
        url = f"/api/admin/users/{user.user_id}"
        await client.patch(url, json={"role": "admin"}, headers=admin.headers)
        await client.patch(url, json={"role": "admin"}, headers=admin.headers)  # no change
        await client.patch(url, json={"is_active": False}, headers=admin.headers)
        await client.patch(url, json={"is_active": True}, headers=admin.headers)

        events = await audit_events(client, admin, actor=admin.user_id, target_id=user.user_id)
        assert [e["action"] for e in events] == [
            "user.enabled",
            "user.disabled",
            "user.role_changed",
        ]
        assert events[2]["details"] == {"from": "user", "to": "admin"}

        # Disabling ended the user's sessions: they sign in again to delete the account.
        token = (await login(client, user.email)).json()["access_token"]
        deleted = await client.request(
            "DELETE", "/api/users/me", json={"password": PASSWORD}, headers=bearer(token)
        )
        assert deleted.status_code == 204, deleted.text
        event = await one_event(client, admin, "user.deleted")
        assert event["target_id"] == user.user_id

    async def test_api_keys(self, client, admin):
        user = await register(client)
        created = await client.post(
            "/api/keys", json={"name": "laptop", "scopes": []}, headers=user.headers
        )
        assert created.status_code == 201, created.text
        key = created.json()
        await client.delete(f"/api/keys/{key['id']}", headers=user.headers)

        made = await one_event(client, admin, "api_key.created")
        revoked = await one_event(client, admin, "api_key.revoked")
        assert made["target_id"] == revoked["target_id"] == key["id"]
        assert made["actor"] == revoked["actor"] == user.user_id
        assert made["details"]["name"] == "laptop"
        assert key["key"] not in json.dumps([made, revoked])

    async def test_share_links(self, client, admin):
        user = await register(client)
        created = await client.post("/api/chats", json={"title": "Trip"}, headers=user.headers)
        chat_id = created.json()["id"]
        shared = await client.post(f"/api/chats/{chat_id}/share", headers=user.headers)
        assert shared.status_code in (200, 201), shared.text
        await client.delete(f"/api/chats/{chat_id}/share", headers=user.headers)

        made = await one_event(client, admin, "share_link.created")
        revoked = await one_event(client, admin, "share_link.revoked")
        assert made["target_id"] == revoked["target_id"] == chat_id
        assert made["actor"] == revoked["actor"] == user.user_id
        assert shared.json()["token"] not in json.dumps([made, revoked])

    async def test_admin_reads_of_the_moderation_log(self, client, admin):
        response = await client.get(
            "/api/admin/moderation", params={"point": "input"}, headers=admin.headers
        )
        assert response.status_code == 200, response.text
        event = await one_event(client, admin, "moderation.read")
        assert event["actor"] == admin.user_id
        assert event["details"]["point"] == "input"


class TestWriting:
    async def test_events_reach_the_database_in_the_background(self, app, client, admin_engine):
        user = await register(client)
        await login(client, user.email)

        async def written() -> bool:
            async with admin_engine.connect() as connection:
                count = await connection.scalar(
                    select(func.count())
                    .select_from(AuditEvent)
                    .where(AuditEvent.action == "auth.sign_in")
                )
            return count == 1

        # No read of the log: the audit-writer loop writes the queue on its own.
        await wait_until(written)

    async def test_a_request_that_fails_records_nothing_of_its_change(self, client, admin):
        user = await register(client)
        refused = await client.post(
            "/api/auth/change-password",
            json={"current_password": PASSWORD, "new_password": "password1234"},
            headers=user.headers,
        )
        assert_error(refused, 422, "weak_password")
        assert await audit_events(client, admin, action="auth.password_changed") == []


class TestDetails:
    def test_fields_that_could_hold_a_secret_are_dropped(self):
        cleaned = clean_details(
            {
                "method": "password",
                "password": "hunter2",
                "new_password": "x",
                "access_token": "x",
                "api_key": "pk-x",
                "client_secret": "x",
                "code": "123456",
                "note": "n" * 1000,
            }
        )
        assert cleaned == {"method": "password", "note": "n" * 200}


class TestRetention:
    async def test_the_purge_deletes_events_older_than_audit_days(self, app, settings):
        db: Database = runtime_of(app).db
        now = datetime.now(UTC)
        async with db.transaction() as session:
            for days in (settings.audit_days + 2, settings.audit_days + 1, 1):
                AuditRepository(session).append(
                    AuditEvent(
                        time=now - timedelta(days=days),
                        actor="system",
                        action="test.old" if days > 1 else "test.recent",
                        outcome="succeeded",
                    )
                )

        assert await purge_audit(db, settings, batch=1) == 2

        async with db.transaction() as session:
            left = await session.scalars(select(AuditEvent.action))
            assert list(left) == ["test.recent"]
            assert await session.scalar(select(func.count()).select_from(AuditEvent)) == 1

    async def test_the_purge_runs_in_the_background(self, app):
        await settle(app)
        assert "audit-purge" in runtime_of(app).supervisor.running
