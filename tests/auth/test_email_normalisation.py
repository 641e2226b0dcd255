"""An address is the same account however it is typed: full-width letters, capitals, spaces.
Every way in (register, sign-in, the OAuth2 form, forgot password, resend, email change, the
admin search) folds it the same way."""

import pytest

from app.cli import create_admin
from tests.support.api import PASSWORD, assert_error, login, register
from tests.support.app import settle

# "example" in full-width letters
FULL_WIDTH_DOMAIN = "\uff45\uff58\uff41\uff4d\uff50\uff4c\uff45.com"


@pytest.fixture
async def account(client):
    local = "ada.normalised"
    user = await register(client, email=f"{local}@example.com")
    return user, [
        f"{local}@{FULL_WIDTH_DOMAIN}",
        f"  {local.upper()}@EXAMPLE.COM ",
        f"{local}@Example.Com",
    ]


class TestEveryWayInFoldsTheSame:
    async def test_register_refuses_each_variant_as_taken(self, client, account):
        _user, variants = account
        for variant in variants:
            response = await client.post(
                "/api/auth/register",
                json={"email": variant, "display_name": "Copy", "password": PASSWORD},
            )
            assert_error(response, 409, "email_taken")

    async def test_sign_in_accepts_each_variant(self, client, account):
        _user, variants = account
        for variant in variants:
            assert (await login(client, variant)).status_code == 200, variant
            form = await client.post(
                "/api/auth/token", data={"username": variant, "password": PASSWORD}
            )
            assert form.status_code == 200, variant

    async def test_failures_under_any_variant_count_towards_one_lock(self, client, account):
        user, variants = account
        for i in range(5):
            await login(client, variants[i % len(variants)], "not the password at all")
        assert_error(await login(client, user.email), 423, "account_locked")

    async def test_forgot_password_and_resend_mail_the_account(
        self, app, client, smtp_server, account
    ):
        user, variants = account
        await client.post("/api/auth/forgot-password", json={"email": variants[0]})
        await client.post("/api/auth/resend-verification", json={"email": variants[0]})
        await settle(app)

        reset = await smtp_server.wait_for(
            lambda m: m.subject == "Reset your Parley password", to=user.email
        )
        verify = await smtp_server.wait_for(lambda m: "erif" in m.subject, to=user.email)
        assert reset.rcpt_tos == verify.rcpt_tos == [user.email]

    async def test_an_email_change_to_a_variant_of_a_taken_address_is_refused(
        self, client, account
    ):
        _owner, variants = account
        other = await register(client)
        response = await client.patch(
            "/api/users/me",
            json={"email": variants[0], "current_password": PASSWORD},
            headers=other.headers,
        )
        assert_error(response, 409, "email_taken")

    async def test_admin_search_finds_the_account_by_a_variant(self, client, settings, account):
        user, variants = account
        admin = await register(client)
        await create_admin(
            settings, email=admin.email, display_name="Root", password_env="UNUSED", promote=True
        )
        response = await client.get(
            "/api/admin/users", params={"q": variants[0]}, headers=admin.headers
        )
        assert [u["email"] for u in response.json()["items"]] == [user.email]
