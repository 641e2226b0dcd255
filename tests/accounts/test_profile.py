"""The signed-in user's profile: read, update preferences, change email, delete the account."""

import uuid

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from app.models import Base
from tests.support.api import PASSWORD, assert_error, login, register
from tests.support.app import settle
from tests.support.smtp_server import extract_token


async def profile(client, user) -> dict:
    response = await client.get("/api/users/me", headers=user.headers)
    assert response.status_code == 200, response.text
    return dict(response.json())


class TestReadProfile:
    async def test_returns_profile_and_empty_preferences(self, client):
        user = await register(client)

        body = await profile(client, user)

        assert body["email"] == user.email
        assert body["display_name"] == "Ada Lovelace"
        assert body["pending_email"] is None
        assert body["email_verified"] is False
        assert body["mfa_enabled"] is False
        assert body["daily_token_quota"] is None
        assert body["preferences"] == {
            "default_model": None,
            "temperature": None,
            "system_prompt": None,
        }
        assert "password_hash" not in body and "mfa_secret_encrypted" not in body

    async def test_needs_authentication(self, client):
        assert_error(await client.get("/api/users/me"), 401)


class TestUpdateProfile:
    async def test_sets_display_name_and_preferences(self, client):
        user = await register(client)

        response = await client.patch(
            "/api/users/me",
            json={
                "display_name": "  Countess  ",
                "preferences": {
                    "default_model": "echo",
                    "temperature": 0.3,
                    "system_prompt": "Answer briefly.",
                },
            },
            headers=user.headers,
        )

        assert response.status_code == 200, response.text
        body = await profile(client, user)
        assert body["display_name"] == "Countess"
        assert body["preferences"] == {
            "default_model": "echo",
            "temperature": 0.3,
            "system_prompt": "Answer briefly.",
        }

    async def test_leaves_out_fields_alone_and_null_clears(self, client):
        user = await register(client)
        await client.patch(
            "/api/users/me",
            json={"preferences": {"default_model": "echo", "temperature": 1.0}},
            headers=user.headers,
        )

        await client.patch(
            "/api/users/me", json={"preferences": {"temperature": None}}, headers=user.headers
        )

        preferences = (await profile(client, user))["preferences"]
        assert preferences == {"default_model": "echo", "temperature": None, "system_prompt": None}

    @pytest.mark.parametrize(
        "body",
        [
            {"preferences": {"temperature": 2.5}},
            {"preferences": {"temperature": -0.1}},
            {"preferences": {"system_prompt": "x" * 8001}},
            {"preferences": {"default_model": "m" * 101}},
            {"display_name": "   "},
        ],
    )
    async def test_invalid_values_are_refused(self, client, body):
        user = await register(client)
        response = await client.patch("/api/users/me", json=body, headers=user.headers)
        assert_error(response, 422, "validation_error")


def is_verification(mail) -> bool:
    return mail.subject == "Verify your email address"


class TestChangeEmail:
    NEW = "ada.new@example.com"

    async def test_needs_the_password(self, client):
        user = await register(client)
        response = await client.patch(
            "/api/users/me", json={"email": self.NEW}, headers=user.headers
        )
        assert_error(response, 422, "password_required")

    async def test_wrong_password_is_refused(self, client):
        user = await register(client)
        response = await client.patch(
            "/api/users/me",
            json={"email": self.NEW, "current_password": "not my password!"},
            headers=user.headers,
        )
        assert_error(response, 403, "invalid_password")

    async def test_taken_email_is_refused(self, client):
        user, other = await register(client), await register(client)
        response = await client.patch(
            "/api/users/me",
            json={"email": other.email, "current_password": PASSWORD},
            headers=user.headers,
        )
        assert_error(response, 409, "email_taken")

    async def test_new_email_waits_for_its_link_then_replaces_the_old(
        self, app, client, smtp_server
    ):
        user = await register(client)

        response = await client.patch(
            "/api/users/me",
            json={"email": self.NEW.upper(), "current_password": PASSWORD},
            headers=user.headers,
        )

        assert response.status_code == 200, response.text
        assert response.json()["email"] == user.email
        assert response.json()["pending_email"] == self.NEW
        mail = await smtp_server.wait_for(is_verification, to=self.NEW)
        verified = await client.get(
            "/api/auth/verify-email", params={"token": extract_token(mail.text)}
        )
        assert verified.json() == {"email": self.NEW, "email_verified": True}
        body = await profile(client, user)
        assert (body["email"], body["pending_email"], body["email_verified"]) == (
            self.NEW,
            None,
            True,
        )
        assert (await login(client, self.NEW)).status_code == 200
        assert_error(await login(client, user.email), 401, "invalid_credentials")
        await settle(app)
        notice = await smtp_server.wait_for(
            lambda m: m.subject == "Your Parley email was changed", to=user.email
        )
        assert self.NEW in notice.text

    async def test_old_link_stops_working_after_the_change(self, app, client, smtp_server):
        user = await register(client)
        old_link = await smtp_server.wait_for(is_verification, to=user.email)
        await client.patch(
            "/api/users/me",
            json={"email": self.NEW, "current_password": PASSWORD},
            headers=user.headers,
        )
        new_link = await smtp_server.wait_for(is_verification, to=self.NEW)
        await client.get("/api/auth/verify-email", params={"token": extract_token(new_link.text)})

        response = await client.get(
            "/api/auth/verify-email", params={"token": extract_token(old_link.text)}
        )

        assert_error(response, 400, "invalid_link")

    async def test_address_taken_meanwhile_is_refused_at_verification(self, client, smtp_server):
        user = await register(client)
        await client.patch(
            "/api/users/me",
            json={"email": self.NEW, "current_password": PASSWORD},
            headers=user.headers,
        )
        await register(client, email=self.NEW, display_name="Mallory")
        mail = await smtp_server.wait_for(
            lambda m: is_verification(m) and m.rcpt_tos == [self.NEW] and "Hi Ada" in m.text
        )

        response = await client.get(
            "/api/auth/verify-email", params={"token": extract_token(mail.text)}
        )

        assert_error(response, 409, "email_taken")
        assert (await profile(client, user))["email"] == user.email


class TestDeleteAccount:
    async def test_needs_the_password(self, client):
        user = await register(client)
        response = await client.request(
            "DELETE", "/api/users/me", json={"password": "not my password!"}, headers=user.headers
        )
        assert_error(response, 403, "invalid_password")
        assert (await client.get("/api/users/me", headers=user.headers)).status_code == 200

    async def test_deletes_the_user_and_every_row_of_theirs(
        self, app, client, smtp_server, admin_engine: AsyncEngine
    ):
        user = await register(client)
        keep = await register(client)
        await login(client, user.email)
        await client.post(
            "/api/auth/change-password",
            json={"current_password": PASSWORD, "new_password": "another long passphrase 77"},
            headers=user.headers,
        )
        await client.post("/api/auth/mfa/setup", headers=user.headers)

        response = await client.request(
            "DELETE",
            "/api/users/me",
            json={"password": "another long passphrase 77"},
            headers=user.headers,
        )

        assert response.status_code == 204, response.text
        assert_error(await client.get("/api/users/me", headers=user.headers), 401)
        assert_error(await login(client, user.email), 401, "invalid_credentials")
        assert (await client.get("/api/users/me", headers=keep.headers)).status_code == 200
        async with admin_engine.connect() as connection:
            for table in Base.metadata.sorted_tables:
                if "user_id" not in table.c:
                    continue
                count = await connection.scalar(
                    select(func.count())
                    .select_from(table)
                    .where(table.c.user_id == user_id_of(user))
                )
                assert count == 0, table.name
            sessions = await connection.scalar(
                select(func.count()).select_from(Base.metadata.tables["refresh_token"])
            )
        assert sessions == 1  # only the other user's

    async def test_the_email_can_register_again(self, client):
        user = await register(client)
        deleted = await client.request(
            "DELETE", "/api/users/me", json={"password": PASSWORD}, headers=user.headers
        )
        assert deleted.status_code == 204, deleted.text

        again = await register(client, email=user.email)

        assert again.user_id != user.user_id
        assert (await profile(client, again))["email"] == user.email
        assert_error(await client.get("/api/users/me", headers=user.headers), 401)


def user_id_of(user) -> uuid.UUID:
    return uuid.UUID(user.user_id)


class TestUpdateProfileRefusesUnknownFields:
    @pytest.mark.parametrize(
        "body",
        [
            {"displayName": "typo"},
            {"role": "admin"},
            {"is_active": True},
            {"preferences": {"temprature": 1}},
        ],
    )
    async def test_unknown_or_protected_fields_are_refused(self, client, body):
        user = await register(client)

        response = await client.patch("/api/users/me", json=body, headers=user.headers)

        assert_error(response, 422, "validation_error")
        assert (await profile(client, user))["role"] == "user"


class TestNulCharacters:
    """Postgres cannot store NUL in text: such input is a 422, never a 500."""

    @pytest.mark.parametrize(
        "body",
        [
            {"display_name": "Ada\u0000"},
            {"preferences": {"system_prompt": "be brief\u0000"}},
            {"preferences": {"default_model": "echo\u0000"}},
        ],
    )
    async def test_refused_as_invalid_input(self, client, body):
        user = await register(client)
        response = await client.patch("/api/users/me", json=body, headers=user.headers)
        assert_error(response, 422, "validation_error")
