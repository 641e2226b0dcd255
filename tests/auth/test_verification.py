"""Email verification: the mailed link, single use, expiry, resend, and the chat gate."""

from datetime import timedelta

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from app.auth.dependencies import ChatAllowedUser
from app.auth.models import AccountToken
from app.core.db import utcnow
from app.core.security import hash_token
from app.users.models import User
from tests.support.api import PASSWORD, assert_error, register
from tests.support.app import serving, settle
from tests.support.settings import make_settings, smtp_settings
from tests.support.smtp_server import SMTPTestServer, extract_token, extract_url


def is_verification(mail) -> bool:
    return mail.subject == "Verify your email address"


async def mailed_token(smtp_server: SMTPTestServer, email: str, *, index: int = 0) -> str:
    await smtp_server.wait_for(is_verification, to=email)
    mails = [m for m in smtp_server.received if email in m.rcpt_tos and is_verification(m)]
    return extract_token(mails[index].text)


async def is_verified(client: httpx.AsyncClient, headers: dict[str, str]) -> bool:
    response = await client.get("/api/auth/me", headers=headers)
    assert response.status_code == 200, response.text
    return bool(response.json()["email_verified"])


class TestRegisterMailsVerification:
    async def test_mail_links_to_public_base_url_not_the_host_header(self, client, smtp_server):
        user = await register(client)
        mail = await smtp_server.wait_for(is_verification, to=user.email)
        url = extract_url(mail.text)
        assert url.startswith("https://parley.test/verify-email?token=")
        assert "testserver" not in mail.text

    @pytest.mark.parametrize(
        ("host", "link"),
        [
            ("127.0.0.1:8000", "http://127.0.0.1:8000/verify-email?token="),
            ("localhost:8123", "http://localhost:8123/verify-email?token="),
            # Not in ALLOWED_HOSTS: a forged Host never makes the link.
            ("evil.example", "https://parley.test/verify-email?token="),
            ("127.0.0.1.evil.example:8000", "https://parley.test/verify-email?token="),
        ],
    )
    async def test_an_allowed_host_the_user_signed_up_on_makes_the_link(
        self, client, smtp_server, host, link
    ):
        email = f"host-{abs(hash(host))}@example.com"
        response = await client.post(
            "/api/auth/register",
            json={"email": email, "display_name": "Ada", "password": PASSWORD},
            headers={"Host": host},
        )
        assert response.status_code == 201, response.text
        mail = await smtp_server.wait_for(is_verification, to=email)
        assert extract_url(mail.text).startswith(link)

    async def test_token_has_at_least_128_bits_and_is_stored_hashed(
        self, client, smtp_server, admin_engine: AsyncEngine
    ):
        user = await register(client)
        token = await mailed_token(smtp_server, user.email)
        assert len(token) >= 22  # URL-safe base64: 22 characters carry 128 bits
        async with admin_engine.connect() as connection:
            stored = (await connection.execute(select(AccountToken.token_hash))).scalars().all()
        assert token not in stored
        assert hash_token(token) in stored

    async def test_new_account_starts_unverified(self, client):
        user = await register(client)
        assert not await is_verified(client, user.headers)


class TestVerifyEmailLink:
    async def test_the_mailed_link_opens_the_page_that_verifies(self, client, smtp_server):
        user = await register(client)
        url = extract_url((await smtp_server.wait_for(is_verification, to=user.email)).text)

        page = await client.get(url.replace("https://parley.test", ""))
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        response = await client.post("/api/auth/verify-email", json={"token": extract_token(url)})

        assert response.status_code == 200, response.text
        assert response.json() == {"email": user.email, "email_verified": True}
        assert await is_verified(client, user.headers)

    async def test_link_works_once(self, client, smtp_server):
        user = await register(client)
        token = await mailed_token(smtp_server, user.email)
        first = await client.get("/api/auth/verify-email", params={"token": token})
        assert first.status_code == 200
        assert await is_verified(client, user.headers)

        again = await client.get("/api/auth/verify-email", params={"token": token})

        assert_error(again, 400, "invalid_link")
        assert await is_verified(client, user.headers)  # a spent link undoes nothing

    async def test_expired_link_is_refused(self, client, smtp_server, admin_engine):
        user = await register(client)
        token = await mailed_token(smtp_server, user.email)
        async with admin_engine.begin() as connection:
            await connection.execute(
                update(AccountToken)
                .where(AccountToken.token_hash == hash_token(token))
                .values(expires_at=utcnow() - timedelta(seconds=1))
            )

        response = await client.get("/api/auth/verify-email", params={"token": token})

        assert_error(response, 400, "invalid_link")
        assert not await is_verified(client, user.headers)

    async def test_link_expires_after_24_hours(self, client, smtp_server, admin_engine):
        user = await register(client)
        await mailed_token(smtp_server, user.email)
        async with admin_engine.connect() as connection:
            row = (await connection.execute(select(AccountToken))).one()
        assert row.expires_at - row.created_at == timedelta(hours=24)

    async def test_unknown_token_is_refused(self, client):
        response = await client.get("/api/auth/verify-email", params={"token": "x" * 43})
        assert_error(response, 400, "invalid_link")

    async def test_missing_token_is_a_validation_error(self, client):
        assert_error(await client.get("/api/auth/verify-email"), 422, "validation_error")


class TestVerifyEmailPost:
    async def test_posting_the_token_verifies(self, client, smtp_server):
        user = await register(client)
        token = await mailed_token(smtp_server, user.email)

        response = await client.post("/api/auth/verify-email", json={"token": token})

        assert response.status_code == 200, response.text
        assert await is_verified(client, user.headers)

    async def test_token_is_single_use_across_get_and_post(self, client, smtp_server):
        user = await register(client)
        token = await mailed_token(smtp_server, user.email)
        assert (await client.get("/api/auth/verify-email", params={"token": token})).is_success

        response = await client.post("/api/auth/verify-email", json={"token": token})

        assert_error(response, 400, "invalid_link")

    async def test_overlong_token_is_refused_before_the_database(self, client):
        response = await client.post("/api/auth/verify-email", json={"token": "a" * 5000})
        assert_error(response, 422, "validation_error")


class TestResendVerification:
    ACCEPTED_STATUS = 202

    async def test_same_answer_for_known_unknown_and_verified_emails(
        self, app, client, smtp_server
    ):
        unverified = await register(client)
        verified = await register(client)
        token = await mailed_token(smtp_server, verified.email)
        await client.post("/api/auth/verify-email", json={"token": token})

        answers = [
            await client.post("/api/auth/resend-verification", json={"email": email})
            for email in (unverified.email, verified.email, "nobody-here@example.com")
        ]

        assert {r.status_code for r in answers} == {self.ACCEPTED_STATUS}
        assert len({r.content for r in answers}) == 1

    async def test_sends_a_new_link_and_retires_the_old_one(self, app, client, smtp_server):
        user = await register(client)
        old = await mailed_token(smtp_server, user.email)

        await client.post("/api/auth/resend-verification", json={"email": user.email})
        await settle(app)

        new = await mailed_token(smtp_server, user.email, index=1)
        assert new != old
        old_response = await client.post("/api/auth/verify-email", json={"token": old})
        assert_error(old_response, 400, "invalid_link")
        assert (await client.post("/api/auth/verify-email", json={"token": new})).is_success

    async def test_unknown_and_verified_emails_get_no_mail(self, app, client, smtp_server):
        verified = await register(client)
        token = await mailed_token(smtp_server, verified.email)
        await client.post("/api/auth/verify-email", json={"token": token})

        for email in (verified.email, "nobody-here@example.com"):
            await client.post("/api/auth/resend-verification", json={"email": email})
        await settle(app)

        assert [m.rcpt_tos for m in smtp_server.received] == [[verified.email]]

    async def test_mails_per_address_are_capped(self, database, clean_db, smtp_server):
        settings = make_settings(
            database, **smtp_settings(smtp_server), rate_limit_mail_per_address="2/hour"
        )
        async with serving(settings) as (app, client):
            user = await register(client)  # the first mail is not capped: it is register's
            answers = [
                await client.post("/api/auth/resend-verification", json={"email": user.email})
                for _ in range(4)
            ]
            await settle(app)
        assert {r.status_code for r in answers} == {202}
        assert len([m for m in smtp_server.received if user.email in m.rcpt_tos]) == 1 + 2


class TestChatAllowedUser:
    """The reusable dependency the chat and generation routers use."""

    @staticmethod
    def add_probe(app: FastAPI) -> None:
        @app.get("/probe/chat")
        async def probe(user: ChatAllowedUser) -> dict[str, str]:
            return {"user": str(user.id)}

    @pytest.mark.parametrize("required", [True, False])
    async def test_unverified_users_chat_only_when_the_setting_allows(
        self, database, clean_db, smtp_server, required: bool
    ):
        settings = make_settings(
            database, **smtp_settings(smtp_server), require_verified_email_to_chat=required
        )
        async with serving(settings) as (app, client):
            self.add_probe(app)
            user = await register(client)
            before = await client.get("/probe/chat", headers=user.headers)
            token = await mailed_token(smtp_server, user.email)
            await client.post("/api/auth/verify-email", json={"token": token})
            after = await client.get("/probe/chat", headers=user.headers)
        if required:
            assert_error(before, 403, "email_not_verified")
        else:
            assert before.json() == {"user": user.user_id}
        assert after.json() == {"user": user.user_id}


class TestVerifyDisabledAccount:
    async def test_link_of_a_disabled_account_is_refused(self, client, smtp_server, admin_engine):
        user = await register(client)
        token = await mailed_token(smtp_server, user.email)
        async with admin_engine.begin() as connection:
            await connection.execute(
                update(User).where(User.email == user.email).values(is_active=False)
            )

        response = await client.post("/api/auth/verify-email", json={"token": token})

        assert_error(response, 400, "invalid_link")
