"""Single sign-on in the browser: the sign-in page's "Sign in with <provider>" button through the
provider double (tests/support/oidc_provider.py) back to a signed-in client, and a failure shown
on the sign-in page."""

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from playwright.async_api import Browser, Page, expect

from app.main import create_app
from tests.support.database import TestDatabase
from tests.support.live import free_port, live_server
from tests.support.oidc_provider import CLIENT_ID, CLIENT_SECRET, OidcProvider, run_oidc_provider
from tests.support.settings import make_settings


@pytest.fixture
async def sso_server(
    database: TestDatabase, clean_db: Any
) -> AsyncIterator[tuple[str, OidcProvider]]:
    """Parley with single sign-on on a port of its own, and the provider it trusts."""
    async with run_oidc_provider() as provider:
        port = free_port()
        base_url = f"http://127.0.0.1:{port}"
        settings = make_settings(
            database,
            public_base_url=base_url,
            oidc_issuer=provider.issuer,
            oidc_client_id=CLIENT_ID,
            oidc_client_secret=CLIENT_SECRET,
            oidc_display_name="Acme ID",
        )
        with live_server(create_app(settings), port=port):
            yield base_url, provider


async def watched_page(browser: Browser, base_url: str, errors: list[str]) -> Page:
    context = await browser.new_context(base_url=base_url)
    page = await context.new_page()
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    return page


class TestSignInWithTheProvider:
    async def test_the_button_signs_in_through_the_provider(
        self, browser: Browser, sso_server: tuple[str, OidcProvider]
    ) -> None:
        base_url, provider = sso_server
        email = f"sso-{uuid.uuid4().hex[:8]}@example.com"
        provider.user = {"sub": "web-1", "email": email, "email_verified": True, "name": "Ada"}
        errors: list[str] = []
        page = await watched_page(browser, base_url, errors)

        await page.goto("/signin")
        await page.get_by_role("link", name="Sign in with Acme ID").click()

        await page.get_by_role("link", name="Account").wait_for()
        await page.goto("/account")
        await expect(page.get_by_text(email).first).to_be_visible()
        assert errors == []
        await page.context.close()

    async def test_a_failure_is_explained_on_the_sign_in_page(
        self, browser: Browser, sso_server: tuple[str, OidcProvider]
    ) -> None:
        base_url, provider = sso_server
        provider.authorize_error = "access_denied"
        errors: list[str] = []
        page = await watched_page(browser, base_url, errors)

        await page.goto("/signin")
        await page.get_by_role("link", name="Sign in with Acme ID").click()

        await expect(page).to_have_url(f"{base_url}/signin?sso_error=sso_provider_error")
        await expect(page.get_by_role("alert")).to_have_text(
            "The identity provider did not sign you in."
        )
        # Nobody is signed in: the page still offers the form.
        await expect(page.get_by_label("Email")).to_be_visible()
        assert errors == []
        await page.context.close()
