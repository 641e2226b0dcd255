"""FRONTEND_URL: every mailed link opens the frontend's pages, over a real SMTP server."""

from urllib.parse import urlsplit

import pytest

from app.core.config import Settings
from tests.support.api import PASSWORD, register
from tests.support.app import serving, settle
from tests.support.settings import make_settings, smtp_settings
from tests.support.smtp_server import SMTPTestServer, extract_token, extract_url

FRONTEND = "https://app.example.org/parley"
NEW_PASSWORD = "a brand new and rather long passphrase 7"


def frontend_page(url: str) -> str:
    """The page a link opens, after checking that it is on the frontend and carries a token."""
    assert url.startswith(f"{FRONTEND}/"), url
    parts = urlsplit(url)
    assert parts.query.startswith("token=")
    return parts.path.removeprefix(urlsplit(FRONTEND).path)


@pytest.fixture
def frontend_settings(database, clean_db, smtp_server: SMTPTestServer) -> Settings:
    return make_settings(database, **smtp_settings(smtp_server), frontend_url=f"{FRONTEND}/")


class TestFrontendLinks:
    async def test_verification_link_opens_the_frontend_page(self, frontend_settings, smtp_server):
        async with serving(frontend_settings) as (app, client):
            user = await register(client)
            await settle(app)
            mail = await smtp_server.wait_for(
                lambda m: m.subject == "Verify your email address", to=user.email
            )
            url = extract_url(mail.text)
            assert frontend_page(url) == "/verify-email"
            assert "parley.test" not in mail.text
            assert url in mail.html
            # The frontend page POSTs the token to the API.
            verified = await client.post(
                "/api/auth/verify-email", json={"token": extract_token(mail.text)}
            )
        assert verified.status_code == 200, verified.text
        assert verified.json() == {"email": user.email, "email_verified": True}

    async def test_reset_link_opens_the_frontend_page(self, frontend_settings, smtp_server):
        async with serving(frontend_settings) as (app, client):
            user = await register(client)
            await client.post("/api/auth/forgot-password", json={"email": user.email})
            await settle(app)
            mail = await smtp_server.wait_for(
                lambda m: m.subject == "Reset your Parley password", to=user.email
            )
            assert frontend_page(extract_url(mail.text)) == "/reset-password"
            reset = await client.post(
                "/api/auth/reset-password",
                json={"token": extract_token(mail.text), "new_password": NEW_PASSWORD},
            )
            assert reset.status_code == 204, reset.text
            login = await client.post(
                "/api/auth/login", json={"email": user.email, "password": NEW_PASSWORD}
            )
        assert login.status_code == 200, login.text

    async def test_email_change_link_opens_the_frontend_page(self, frontend_settings, smtp_server):
        new_email = "moved-here@example.com"
        async with serving(frontend_settings) as (app, client):
            user = await register(client)
            changed = await client.patch(
                "/api/users/me",
                json={"email": new_email, "current_password": PASSWORD},
                headers=user.headers,
            )
            assert changed.status_code == 200, changed.text
            await settle(app)
            mail = await smtp_server.wait_for(
                lambda m: m.subject == "Verify your email address", to=new_email
            )
        assert frontend_page(extract_url(mail.text)) == "/verify-email"


class TestFrontendUrlSetting:
    @pytest.mark.parametrize(
        "value", ["app.example.org", "ftp://app.example.org", "https://app.example.org/?x=1"]
    )
    def test_refuses_what_is_not_a_page_base(self, value):
        with pytest.raises(ValueError, match="FRONTEND_URL"):
            Settings(frontend_url=value)

    def test_empty_means_parleys_own_pages(self):
        assert Settings(frontend_url="").frontend_url is None
