"""Forgot / reset password: no enumeration, single-use expiring tokens, sessions revoked."""

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

import pyotp
from sqlalchemy import event, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from app.auth.models import AccountToken, TokenPurpose
from app.core.db import utcnow
from app.core.security import hash_token
from tests.support.api import PASSWORD, assert_error, bearer, login, register
from tests.support.app import runtime_of, settle
from tests.support.smtp_server import SMTPTestServer, extract_token, extract_url

NEW_PASSWORD = "a brand new and rather long passphrase 7"


def is_reset(mail) -> bool:
    return mail.subject == "Reset your Parley password"


async def request_reset(client, app, smtp_server: SMTPTestServer, email: str) -> str:
    response = await client.post("/api/auth/forgot-password", json={"email": email})
    assert response.status_code == 202, response.text
    await settle(app)
    mail = await smtp_server.wait_for(is_reset, to=email)
    return extract_token(mail.text)


@contextmanager
def recorded_statements(engine: AsyncEngine) -> Iterator[list[tuple[asyncio.Task | None, str]]]:
    """The SQL `engine` runs while the block is open, each with the task that ran it."""
    statements: list[tuple[asyncio.Task | None, str]] = []

    def record(connection, cursor, statement, parameters, context, executemany) -> None:
        statements.append((asyncio.current_task(), statement))

    event.listen(engine.sync_engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", record)


class TestForgotPassword:
    async def test_same_status_and_body_for_known_and_unknown_emails(self, client):
        user = await register(client)

        known = await client.post("/api/auth/forgot-password", json={"email": user.email})
        unknown = await client.post(
            "/api/auth/forgot-password", json={"email": "nobody-here@example.com"}
        )

        assert known.status_code == unknown.status_code == 202
        assert known.content == unknown.content
        assert known.json()["status"] == "accepted"

    async def test_only_the_known_email_gets_a_mail(self, app, client, smtp_server):
        user = await register(client)
        await client.post("/api/auth/forgot-password", json={"email": user.email})
        await client.post("/api/auth/forgot-password", json={"email": "nobody-here@example.com"})
        await settle(app)

        resets = [m.rcpt_tos for m in smtp_server.received if is_reset(m)]
        assert resets == [[user.email]]

    async def test_the_answer_does_the_same_work_for_known_and_unknown_emails(self, app, client):
        """The account lookup runs in a background job after the response, so the answer (and
        its timing) cannot show whether the email has an account."""
        user = await register(client)
        await settle(app)
        request, job = {}, {}
        for email in (user.email, "nobody-here@example.com"):
            with recorded_statements(runtime_of(app).db.engine) as statements:
                response = await client.post("/api/auth/forgot-password", json={"email": email})
                await settle(app)
            assert response.status_code == 202
            request[email] = [sql for task, sql in statements if task is asyncio.current_task()]
            job[email] = [
                sql
                for task, sql in statements
                if task is not None and task.get_name() == "parley-job-password_reset"
            ]

        assert request[user.email] == request["nobody-here@example.com"]
        for email in (user.email, "nobody-here@example.com"):
            assert any("FROM user_account" in sql for sql in job[email]), job[email]

    async def test_link_uses_public_base_url_even_with_a_forged_host(
        self, app, client, smtp_server
    ):
        user = await register(client)
        await client.post(
            "/api/auth/forgot-password",
            json={"email": user.email},
            headers={"Host": "evil.example", "X-Forwarded-Host": "evil.example"},
        )
        await settle(app)

        mail = await smtp_server.wait_for(is_reset, to=user.email)

        assert extract_url(mail.text).startswith("https://parley.test/reset-password?token=")
        assert "evil.example" not in mail.text

    async def test_token_is_stored_hashed_and_expires_in_an_hour(
        self, app, client, smtp_server, admin_engine
    ):
        user = await register(client)
        token = await request_reset(client, app, smtp_server, user.email)
        async with admin_engine.connect() as connection:
            row = (
                await connection.execute(
                    select(AccountToken).where(AccountToken.purpose == TokenPurpose.RESET_PASSWORD)
                )
            ).one()
        assert row.token_hash == hash_token(token)
        assert row.expires_at - row.created_at == timedelta(hours=1)

    async def test_malformed_email_is_refused_as_such(self, client):
        response = await client.post("/api/auth/forgot-password", json={"email": "not-an-email"})
        assert_error(response, 422, "invalid_email")


class TestResetPassword:
    async def test_full_flow_from_the_mailed_link(self, app, client, smtp_server):
        user = await register(client)
        token = await request_reset(client, app, smtp_server, user.email)

        response = await client.post(
            "/api/auth/reset-password", json={"token": token, "new_password": NEW_PASSWORD}
        )

        assert response.status_code == 204, response.text
        assert (await login(client, user.email, NEW_PASSWORD)).status_code == 200
        assert_error(await login(client, user.email, PASSWORD), 401, "invalid_credentials")

    async def test_does_not_sign_in(self, app, client, smtp_server):
        user = await register(client)
        token = await request_reset(client, app, smtp_server, user.email)

        response = await client.post(
            "/api/auth/reset-password", json={"token": token, "new_password": NEW_PASSWORD}
        )

        assert response.content == b""
        for cookie in response.headers.get_list("set-cookie"):
            assert 'parley_access=""' in cookie or "Max-Age=0" in cookie, cookie

    async def test_revokes_every_session(self, app, client, smtp_server):
        user = await register(client)
        second = (await login(client, user.email)).json()
        token = await request_reset(client, app, smtp_server, user.email)

        await client.post(
            "/api/auth/reset-password", json={"token": token, "new_password": NEW_PASSWORD}
        )

        for access in (user.access_token, second["access_token"]):
            assert_error(await client.get("/api/auth/me", headers=bearer(access)), 401)
        refresh = await client.post(
            "/api/auth/refresh", json={"refresh_token": second["refresh_token"]}
        )
        assert_error(refresh, 401, "invalid_token")

    async def test_token_works_once(self, app, client, smtp_server):
        user = await register(client)
        token = await request_reset(client, app, smtp_server, user.email)
        body = {"token": token, "new_password": NEW_PASSWORD}
        assert (await client.post("/api/auth/reset-password", json=body)).status_code == 204

        again = await client.post(
            "/api/auth/reset-password",
            json={"token": token, "new_password": "yet another long passphrase 99"},
        )

        assert_error(again, 400, "invalid_link")
        assert (await login(client, user.email, NEW_PASSWORD)).status_code == 200

    async def test_expired_token_is_refused(self, app, client, smtp_server, admin_engine):
        user = await register(client)
        token = await request_reset(client, app, smtp_server, user.email)
        async with admin_engine.begin() as connection:
            await connection.execute(
                update(AccountToken)
                .where(AccountToken.token_hash == hash_token(token))
                .values(expires_at=utcnow() - timedelta(seconds=1))
            )

        response = await client.post(
            "/api/auth/reset-password", json={"token": token, "new_password": NEW_PASSWORD}
        )

        assert_error(response, 400, "invalid_link")
        assert (await login(client, user.email, PASSWORD)).status_code == 200

    async def test_a_newer_link_retires_the_older_one(self, app, client, smtp_server):
        user = await register(client)
        first = await request_reset(client, app, smtp_server, user.email)
        await client.post("/api/auth/forgot-password", json={"email": user.email})
        await settle(app)

        response = await client.post(
            "/api/auth/reset-password", json={"token": first, "new_password": NEW_PASSWORD}
        )

        assert_error(response, 400, "invalid_link")

    async def test_weak_password_is_refused_and_the_link_still_works(
        self, app, client, smtp_server
    ):
        user = await register(client)
        token = await request_reset(client, app, smtp_server, user.email)

        weak = await client.post(
            "/api/auth/reset-password", json={"token": token, "new_password": "password1234"}
        )

        assert_error(weak, 422, "weak_password")
        assert (await login(client, user.email, PASSWORD)).status_code == 200  # unchanged
        ok = await client.post(
            "/api/auth/reset-password", json={"token": token, "new_password": NEW_PASSWORD}
        )
        assert ok.status_code == 204
        assert (await login(client, user.email, NEW_PASSWORD)).status_code == 200

    async def test_recent_password_is_refused(self, app, client, smtp_server):
        user = await register(client)
        token = await request_reset(client, app, smtp_server, user.email)

        response = await client.post(
            "/api/auth/reset-password", json={"token": token, "new_password": PASSWORD}
        )

        assert_error(response, 422, "password_reused")

    async def test_owner_is_told_the_password_changed(self, app, client, smtp_server):
        user = await register(client)
        token = await request_reset(client, app, smtp_server, user.email)
        await client.post(
            "/api/auth/reset-password", json={"token": token, "new_password": NEW_PASSWORD}
        )
        await settle(app)

        await smtp_server.wait_for(
            lambda m: m.subject == "Your Parley password was changed", to=user.email
        )

    async def test_reset_lifts_a_lockout(self, app, client, smtp_server):
        user = await register(client)
        for _ in range(5):
            await login(client, user.email, "wrong password, wrong password")
        assert_error(await login(client, user.email), 423, "account_locked")
        token = await request_reset(client, app, smtp_server, user.email)

        await client.post(
            "/api/auth/reset-password", json={"token": token, "new_password": NEW_PASSWORD}
        )

        assert (await login(client, user.email, NEW_PASSWORD)).status_code == 200

    async def test_reset_does_not_bypass_mfa(self, app, client, smtp_server):
        user = await register(client)
        setup = (await client.post("/api/auth/mfa/setup", headers=user.headers)).json()
        totp = pyotp.TOTP(setup["secret"])
        enabled = await client.post(
            "/api/auth/mfa/enable",
            json={"code": totp.now(), "password": PASSWORD},
            headers=user.headers,
        )
        assert enabled.status_code == 200, enabled.text
        token = await request_reset(client, app, smtp_server, user.email)
        await client.post(
            "/api/auth/reset-password", json={"token": token, "new_password": NEW_PASSWORD}
        )

        response = await login(client, user.email, NEW_PASSWORD)

        assert response.status_code == 200
        assert response.json()["mfa_required"] is True
        assert "access_token" not in response.json()

    async def test_unknown_token_is_refused(self, client):
        response = await client.post(
            "/api/auth/reset-password", json={"token": "y" * 43, "new_password": NEW_PASSWORD}
        )
        assert_error(response, 400, "invalid_link")
