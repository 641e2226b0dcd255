"""Single sign-on with OpenID Connect against a provider double on loopback
(tests/support/oidc_provider.py): sign-in and sign-up, linking by verified email only, the
groups claim and admin groups, key rotation, every failure (each back on the sign-in page with
its code, nobody signed in, the failure audited), SSO-only servers, and MFA."""

import time
import uuid
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pyotp
import pytest
from fastapi import FastAPI
from sqlalchemy import select

from app.auth.cookies import ACCESS_COOKIE
from app.auth.models import UserIdentity
from app.auth.sso import STATE_COOKIE, FlowState
from app.cli import create_admin
from app.core.config import Settings
from app.core.uow import UnitOfWork
from app.users.models import User
from tests.support.api import PASSWORD, SignedInUser, assert_error, login, register
from tests.support.app import runtime_of
from tests.support.audit import audit_events
from tests.support.database import TestDatabase
from tests.support.oidc_provider import (
    CLIENT_ID,
    CLIENT_SECRET,
    OidcProvider,
    run_oidc_provider,
    sso_sign_in,
)
from tests.support.settings import make_settings


@pytest.fixture
async def provider() -> AsyncIterator[OidcProvider]:
    async with run_oidc_provider() as running:
        running.user = person()
        yield running


@pytest.fixture
def sso_overrides() -> dict[str, Any]:
    """Settings a test class changes (OIDC_ALLOW_SIGNUP, OIDC_ADMIN_GROUPS, ...)."""
    return {}


@pytest.fixture
def settings(
    database: TestDatabase, clean_db: Any, provider: OidcProvider, sso_overrides: dict[str, Any]
) -> Settings:
    values: dict[str, Any] = {
        "oidc_issuer": provider.issuer,
        "oidc_client_id": CLIENT_ID,
        "oidc_client_secret": CLIENT_SECRET,
        "oidc_display_name": "Acme ID",
        **sso_overrides,
    }
    return make_settings(database, **values)


@pytest.fixture
async def browser(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """A client on https, so that it keeps and sends the Secure cookies, as a browser would."""
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="https://testserver") as http:
        yield http


@pytest.fixture
async def admin(browser: httpx.AsyncClient, settings: Settings) -> SignedInUser:
    user = await register(browser, display_name="Root Admin")
    await create_admin(
        settings,
        email=user.email,
        display_name="Root Admin",
        password_env="UNUSED_FOR_PROMOTION",
        promote=True,
    )
    return user


def person(**claims: Any) -> dict[str, Any]:
    """A person at the provider."""
    return {
        "sub": uuid.uuid4().hex,
        "email": f"sso-{uuid.uuid4().hex[:8]}@example.com",
        "email_verified": True,
        "name": "Ada Lovelace",
        **claims,
    }


async def me(browser: httpx.AsyncClient) -> dict[str, Any]:
    """Who the browser's cookies sign in, as the web client finds out."""
    response = await browser.get("/api/auth/me")
    assert response.status_code == 200, response.text
    return dict(response.json())


def assert_failed(response: httpx.Response, code: str) -> None:
    """Back on the sign-in page with the code, and no session cookie set."""
    assert response.status_code == 302, response.text
    location = urlsplit(response.headers["location"])
    assert location.path == "/signin"
    assert parse_qs(location.query) == {"sso_error": [code]}
    assert ACCESS_COOKIE not in response.cookies


async def identities(app: FastAPI) -> list[UserIdentity]:
    async with runtime_of(app).db.transaction() as session:
        return list(await session.scalars(select(UserIdentity)))


async def users(app: FastAPI) -> list[User]:
    async with runtime_of(app).db.transaction() as session:
        return list(await session.scalars(select(User)))


class TestInfo:
    async def test_the_sign_in_page_learns_the_button_label(self, browser):
        response = await browser.get("/api/auth/oidc")
        assert response.json() == {
            "enabled": True,
            "display_name": "Acme ID",
            "login_url": "/api/auth/oidc/login",
            "password_login": True,
        }

    async def test_login_redirects_to_the_provider_with_pkce_state_and_nonce(
        self, browser, provider
    ):
        response = await browser.get("/api/auth/oidc/login")
        assert response.status_code == 302
        target = urlsplit(response.headers["location"])
        assert f"{target.scheme}://{target.netloc}{target.path}" == f"{provider.issuer}/authorize"
        params = {k: v[0] for k, v in parse_qs(target.query).items()}
        assert params["code_challenge_method"] == "S256"
        assert len(params["code_challenge"]) == 43
        assert params["scope"] == "openid email profile"
        assert params["state"] and params["nonce"]
        assert params["redirect_uri"].endswith("/api/auth/oidc/callback")
        cookie = response.headers["set-cookie"]
        assert cookie.startswith(f"{STATE_COOKIE}=") and "HttpOnly" in cookie
        # The secrets are not readable in the cookie.
        assert params["state"] not in cookie and params["nonce"] not in cookie


class TestOff:
    @pytest.fixture
    def sso_overrides(self) -> dict[str, Any]:
        return {"oidc_issuer": None}

    async def test_off_without_settings(self, client):
        assert (await client.get("/api/auth/oidc")).json()["enabled"] is False
        assert_error(await client.get("/api/auth/oidc/login"), 404, "sso_not_configured")
        assert_error(await client.get("/api/auth/oidc/callback"), 404, "sso_not_configured")


class TestSignIn:
    async def test_a_first_sign_in_creates_the_account_and_signs_in(
        self, app, browser, provider, admin
    ):
        response = await sso_sign_in(browser, provider, next_path="/knowledge")

        assert response.status_code == 302
        assert response.headers["location"] == "/knowledge"
        assert ACCESS_COOKIE in response.cookies
        assert STATE_COOKIE not in browser.cookies  # the state is used up
        account = await me(browser)
        assert account["email"] == provider.user["email"]
        assert account["display_name"] == "Ada Lovelace"
        assert account["email_verified"] is True
        [identity] = await identities(app)
        assert (identity.issuer, identity.subject) == (provider.issuer, provider.user["sub"])
        # The refresh cookie works like a password sign-in's (the web client's reload).
        refreshed = await browser.post("/api/auth/refresh")
        assert refreshed.status_code == 200, refreshed.text

        events = await audit_events(browser, admin, actor=account["id"])
        assert [(e["action"], e["outcome"]) for e in events] == [
            ("auth.sign_in", "succeeded"),
            ("auth.identity_linked", "succeeded"),
            ("user.created", "succeeded"),
        ]
        assert events[0]["details"] == {"method": "oidc"}

    async def test_the_subject_finds_the_account_again_whatever_the_email(
        self, app, browser, provider
    ):
        await sso_sign_in(browser, provider)
        first = await me(browser)
        browser.cookies.clear()
        provider.user = {**provider.user, "email": "renamed@example.com"}

        await sso_sign_in(browser, provider)

        assert (await me(browser))["id"] == first["id"]
        assert len(await users(app)) == 1

    async def test_an_unsafe_next_path_goes_home(self, browser, provider):
        response = await sso_sign_in(browser, provider, next_path="//evil.example/x")
        assert response.headers["location"] == "/"

    async def test_email_from_userinfo(self, browser, provider):
        provider.userinfo_only = {"email": provider.user["email"], "email_verified": True}
        response = await sso_sign_in(browser, provider)
        assert ACCESS_COOKIE in response.cookies
        assert (await me(browser))["email"] == provider.user["email"]

    async def test_mfa_is_skipped_for_sso_users_by_default(self, app, browser, provider):
        user, _totp = await mfa_account(app, browser)
        provider.user = person(email=user.email)
        response = await sso_sign_in(browser, provider)
        assert response.headers["location"] == "/"
        assert (await me(browser))["id"] == user.user_id


class TestLinking:
    async def test_a_verified_email_links_the_existing_account(self, app, browser, provider):
        user = await register(browser)
        provider.user = person(email=user.email, email_verified=True)

        await sso_sign_in(browser, provider)

        assert (await me(browser))["id"] == user.user_id
        [identity] = await identities(app)
        assert str(identity.user_id) == user.user_id
        # The password still works too.
        assert (await login(browser, user.email)).status_code == 200

    async def test_an_unverified_email_never_takes_over_an_account(
        self, app, browser, provider, admin
    ):
        user = await register(browser)
        provider.user = person(email=user.email, email_verified=False)

        response = await sso_sign_in(browser, provider)

        assert_failed(response, "sso_email_unverified")
        assert await identities(app) == []
        assert_error(await browser.get("/api/auth/me"), 401)
        [event] = await audit_events(browser, admin, action="auth.sign_in", actor="anonymous")
        assert event["outcome"] == "failed"
        assert event["details"] == {"method": "oidc", "reason": "sso_email_unverified"}

    async def test_an_unverified_email_may_still_sign_up(self, browser, provider):
        provider.user = person(email_verified=False)
        response = await sso_sign_in(browser, provider)
        assert ACCESS_COOKIE in response.cookies
        assert (await me(browser))["email_verified"] is False

    async def test_a_disabled_account_is_refused(self, browser, provider, admin):
        await sso_sign_in(browser, provider)
        account = await me(browser)
        browser.cookies.clear()
        await browser.patch(
            f"/api/admin/users/{account['id']}", json={"is_active": False}, headers=admin.headers
        )
        assert_failed(await sso_sign_in(browser, provider), "sso_account_disabled")


class TestNoSignUp:
    @pytest.fixture
    def sso_overrides(self) -> dict[str, Any]:
        return {"oidc_allow_signup": False}

    async def test_an_unknown_person_gets_no_account(self, app, browser, provider, admin):
        before = len(await users(app))
        assert_failed(await sso_sign_in(browser, provider), "sso_signup_disabled")
        assert len(await users(app)) == before

    async def test_an_existing_account_still_signs_in(self, browser, provider):
        user = await register(browser)
        provider.user = person(email=user.email)
        await sso_sign_in(browser, provider)
        assert (await me(browser))["id"] == user.user_id


class RecordingGroupSync:
    """A GroupSync (app/auth/sso.py) that remembers what it was asked to set."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, list[str], bool]] = []

    async def sync(
        self, uow: UnitOfWork, user: User, groups: Sequence[str], *, create_missing: bool
    ) -> None:
        self.calls.append((user.email, list(groups), create_missing))


class TestGroups:
    @pytest.fixture
    def sso_overrides(self) -> dict[str, Any]:
        return {
            "oidc_groups_claim": "groups",
            "oidc_admin_groups": "parley-admins, ops",
            "oidc_create_groups": True,
        }

    async def test_admin_groups_set_the_role_at_each_sign_in(self, browser, provider, admin):
        provider.user = person(groups=["staff", "parley-admins"])
        await sso_sign_in(browser, provider)
        account = await me(browser)
        assert account["role"] == "admin"

        browser.cookies.clear()
        provider.user = {**provider.user, "groups": ["staff"]}
        await sso_sign_in(browser, provider)
        assert (await me(browser))["role"] == "user"

        changes = await audit_events(browser, admin, action="user.role_changed")
        assert [(e["actor"], e["details"]["to"]) for e in changes] == [
            ("system", "user"),
            ("system", "admin"),
        ]

    async def test_the_groups_claim_goes_to_the_group_sync(self, app, browser, provider):
        recorder = RecordingGroupSync()
        runtime_of(app).group_sync = recorder
        provider.user = person(groups=["staff", "research"])

        await sso_sign_in(browser, provider)

        assert recorder.calls == [(provider.user["email"], ["staff", "research"], True)]

    async def test_the_groups_claim_sets_the_users_parley_groups(self, browser, provider, admin):
        # The runtime's own sync (app/groups): missing groups are created (OIDC_CREATE_GROUPS),
        # and each sign-in leaves the groups the claim no longer names.
        provider.user = person(groups=["staff", "research"])
        await sso_sign_in(browser, provider)
        mine = await browser.get("/api/groups/mine")
        assert [g["name"] for g in mine.json()] == ["research", "staff"]

        browser.cookies.clear()
        provider.user = {**provider.user, "groups": ["staff"]}
        await sso_sign_in(browser, provider)
        mine = await browser.get("/api/groups/mine")
        assert [(g["name"], g["member"]) for g in mine.json()] == [("staff", True)]

        changes = await audit_events(browser, admin, action="group.membership_changed")
        assert sorted(e["details"]["change"] for e in changes) == ["added", "added", "removed"]

    async def test_no_claim_leaves_role_and_groups_alone(self, app, browser, provider):
        recorder = RecordingGroupSync()
        runtime_of(app).group_sync = recorder
        await sso_sign_in(browser, provider)
        assert recorder.calls == []
        assert (await me(browser))["role"] == "user"


class TestKeyRotation:
    async def test_an_unknown_key_id_fetches_the_keys_again_once(self, browser, provider):
        await sso_sign_in(browser, provider)
        assert provider.jwks_reads == 1
        browser.cookies.clear()

        provider.rotate_key()
        response = await sso_sign_in(browser, provider)

        assert ACCESS_COOKIE in response.cookies
        assert provider.jwks_reads == 2

    async def test_a_key_the_provider_never_published_fails(self, browser, provider):
        await sso_sign_in(browser, provider)
        browser.cookies.clear()
        provider.sign_with_unpublished_key = True

        assert_failed(await sso_sign_in(browser, provider), "sso_token_invalid")
        assert provider.jwks_reads == 2  # one fresh fetch, no more


class TestFailures:
    async def check(
        self, browser: httpx.AsyncClient, admin: SignedInUser, response: httpx.Response, code: str
    ) -> None:
        assert_failed(response, code)
        assert_error(await browser.get("/api/auth/me"), 401)
        events = await audit_events(browser, admin, action="auth.sign_in", actor="anonymous")
        assert [e["details"] for e in events] == [{"method": "oidc", "reason": code}]

    async def test_a_forged_state(self, browser, provider, admin):
        start = await browser.get("/api/auth/oidc/login")
        async with httpx.AsyncClient() as outside:
            at_provider = await outside.get(start.headers["location"])
        back = httpx.URL(at_provider.headers["location"])
        params = dict(back.params)
        params["state"] = "forged-" + params["state"]
        response = await browser.get(back.path, params=params)
        await self.check(browser, admin, response, "sso_state_invalid")

    async def test_a_callback_without_the_state_cookie(self, browser, provider, admin):
        start = await browser.get("/api/auth/oidc/login")
        async with httpx.AsyncClient() as outside:
            at_provider = await outside.get(start.headers["location"])
        back = httpx.URL(at_provider.headers["location"])
        browser.cookies.clear()  # another browser: the attacker's link in the victim's
        response = await browser.get(back.path, params=back.params)
        await self.check(browser, admin, response, "sso_state_invalid")

    async def test_an_expired_state(self, app, browser, provider, admin):
        sso = runtime_of(app).sso
        assert sso is not None
        expired = FlowState(
            state="s", nonce="n", code_verifier="v" * 64, next_path="/", expires_at=time.time() - 1
        )
        browser.cookies.set(
            STATE_COOKIE, expired.seal(sso.state_box), domain="testserver", path="/api/auth/oidc"
        )
        response = await browser.get("/api/auth/oidc/callback", params={"state": "s", "code": "c"})
        await self.check(browser, admin, response, "sso_state_invalid")

    async def test_a_wrong_nonce(self, browser, provider, admin):
        provider.token_claims = {"nonce": "someone-elses-nonce"}
        await self.check(browser, admin, await sso_sign_in(browser, provider), "sso_wrong_nonce")

    async def test_a_wrong_audience(self, browser, provider, admin):
        provider.token_claims = {"aud": "another-client"}
        response = await sso_sign_in(browser, provider)
        await self.check(browser, admin, response, "sso_wrong_audience")

    async def test_an_expired_token(self, browser, provider, admin):
        now = int(time.time())
        provider.token_claims = {"iat": now - 7200, "exp": now - 3600}
        response = await sso_sign_in(browser, provider)
        await self.check(browser, admin, response, "sso_token_expired")

    async def test_a_wrong_issuer(self, browser, provider, admin):
        provider.token_claims = {"iss": "https://impostor.example"}
        await self.check(browser, admin, await sso_sign_in(browser, provider), "sso_wrong_issuer")

    async def test_an_error_from_the_provider(self, browser, provider, admin):
        provider.authorize_error = "access_denied"
        response = await sso_sign_in(browser, provider)
        await self.check(browser, admin, response, "sso_provider_error")

    async def test_no_email_and_no_link(self, browser, provider, admin):
        provider.user = {"sub": "no-email-person"}
        await self.check(browser, admin, await sso_sign_in(browser, provider), "sso_email_missing")


class TestSsoOnly:
    @pytest.fixture
    def sso_overrides(self) -> dict[str, Any]:
        return {"password_login_enabled": False}

    async def test_password_sign_in_and_registration_are_refused(self, app, browser, provider):
        refused = "password_login_disabled"
        assert_error(
            await browser.post(
                "/api/auth/register",
                json={"email": "a@example.com", "display_name": "A", "password": PASSWORD},
            ),
            403,
            refused,
        )
        assert_error(await login(browser, "a@example.com"), 403, refused)
        assert_error(
            await browser.post(
                "/api/auth/token", data={"username": "a@example.com", "password": PASSWORD}
            ),
            403,
            refused,
        )
        assert (await browser.get("/api/auth/oidc")).json()["password_login"] is False

        await sso_sign_in(browser, provider)
        assert (await me(browser))["email"] == provider.user["email"]


class TestRequiredMfa:
    @pytest.fixture
    def sso_overrides(self) -> dict[str, Any]:
        return {"oidc_require_mfa": True}

    async def test_an_mfa_account_finishes_with_its_code(self, app, browser, provider):
        user, totp = await mfa_account(app, browser)
        provider.user = person(email=user.email)

        response = await sso_sign_in(browser, provider)

        assert ACCESS_COOKIE not in response.cookies
        location = urlsplit(response.headers["location"])
        assert location.path == "/signin"
        assert parse_qs(location.query)["sso"] == ["mfa"]
        challenge = location.fragment
        clock = runtime_of(app).clock
        verified = await browser.post(
            "/api/auth/mfa/verify",
            json={"challenge_token": challenge, "code": totp.at(clock() + timedelta(seconds=30))},
        )
        assert verified.status_code == 200, verified.text
        assert verified.json()["user"]["id"] == user.user_id


async def mfa_account(app: FastAPI, browser: httpx.AsyncClient) -> tuple[SignedInUser, pyotp.TOTP]:
    """A password account with MFA on (the app's TOTP clock fixed, so codes are predictable)."""
    now = datetime(2031, 5, 1, 12, 0, 0, tzinfo=UTC)
    runtime_of(app).clock = lambda: now
    user = await register(browser)
    setup = await browser.post("/api/auth/mfa/setup", headers=user.headers)
    totp = pyotp.TOTP(setup.json()["secret"])
    enabled = await browser.post(
        "/api/auth/mfa/enable",
        json={"code": totp.at(now), "password": PASSWORD},
        headers=user.headers,
    )
    assert enabled.status_code == 200, enabled.text
    browser.cookies.clear()
    return user, totp
