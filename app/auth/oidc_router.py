"""Single sign-on routes: whether SSO is on, the redirect to the provider, and the callback.

The browser, not a script, walks through these: both steps answer with redirects. The callback
ends on the frontend, signed in (the same cookies as a password sign-in) or on the sign-in page
with `?sso_error=<code>`, signed in as nobody.
"""

import logging
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request, status
from fastapi.responses import RedirectResponse
from pydantic import BaseModel

from app import audit
from app.audit import actions
from app.auth.cookies import set_auth_cookies
from app.auth.dependencies import AuthRuntimeDep, ClientInfoDep, SsoServiceDep
from app.auth.errors import SsoNotConfigured
from app.auth.oidc import OidcFailure
from app.auth.schemas import MfaChallenge
from app.auth.sso import STATE_COOKIE, STATE_COOKIE_PATH, STATE_SECONDS
from app.core.deps import SettingsDep, UnitOfWorkDep
from app.core.errors import error_responses
from app.core.ratelimit import RateLimited, limit_by_ip

router = APIRouter(prefix="/api/auth/oidc", tags=["sso"])
security_log = logging.getLogger("parley.security")

SSO_HOWTO = (
    "An SSO account has no password to send to /api/auth/token. To call the API as one: sign in "
    "through GET /api/auth/oidc/login in a browser, then either create an API key (POST "
    "/api/keys, `pk-...`, sent as `Authorization: Bearer pk-...`), or call POST "
    "/api/auth/refresh from that browser session and use the `access_token` it returns."
)


class SsoInfo(BaseModel):
    """What the sign-in page needs to offer single sign-on."""

    enabled: bool
    # The button's label: "Sign in with <display_name>".
    display_name: str | None
    # Where the button points (a browser navigation, not a fetch).
    login_url: str | None
    # false: password sign-in and registration are refused (SSO only).
    password_login: bool


@router.get("", summary="Is single sign-on on?")
async def sso_info(runtime: AuthRuntimeDep) -> SsoInfo:
    """Public: whether the sign-in page should show "Sign in with <display_name>", and whether
    it should still show the password form."""
    settings = runtime.settings
    on = runtime.sso is not None
    return SsoInfo(
        enabled=on,
        display_name=settings.oidc_display_name if on else None,
        login_url="/api/auth/oidc/login" if on else None,
        password_login=settings.password_login_enabled,
    )


def _frontend(settings_frontend: str | None, path: str) -> str:
    return (settings_frontend or "") + path


@router.get(
    "/login",
    summary="Sign in with the identity provider (browser redirect)",
    status_code=status.HTTP_302_FOUND,
    response_class=RedirectResponse,
    responses=error_responses(SsoNotConfigured),
    description=SSO_HOWTO,
)
async def sso_login(
    service: SsoServiceDep,
    settings: SettingsDep,
    next: Annotated[
        str | None, Query(max_length=512, description="A path to return to afterwards.")
    ] = None,
) -> RedirectResponse:
    """Redirects to the provider's sign-in, with a fresh state, nonce and PKCE challenge (kept
    in a short-lived encrypted cookie for the callback)."""
    try:
        url, sealed = await service.begin(next)
    except OidcFailure as failure:
        return _failed(settings.frontend_url, failure.code)
    response = RedirectResponse(url, status_code=status.HTTP_302_FOUND)
    response.set_cookie(
        STATE_COOKIE,
        sealed,
        max_age=STATE_SECONDS,
        httponly=True,
        secure=settings.secure_cookies,
        # Lax: the provider's redirect back is a top-level GET, which carries it.
        samesite="lax",
        path=STATE_COOKIE_PATH,
    )
    return response


def _failed(frontend_url: str | None, code: str) -> RedirectResponse:
    query = urlencode({"sso_error": code})
    return RedirectResponse(
        _frontend(frontend_url, f"/signin?{query}"), status_code=status.HTTP_302_FOUND
    )


@router.get(
    "/callback",
    summary="Where the identity provider sends the browser back",
    status_code=status.HTTP_302_FOUND,
    response_class=RedirectResponse,
    responses=error_responses(SsoNotConfigured, RateLimited),
    dependencies=[limit_by_ip("login")],
)
async def sso_callback(
    request: Request,
    service: SsoServiceDep,
    settings: SettingsDep,
    client: ClientInfoDep,
    uow: UnitOfWorkDep,
    code: Annotated[str | None, Query(max_length=4096)] = None,
    state: Annotated[str | None, Query(max_length=512)] = None,
    error: Annotated[str | None, Query(max_length=256)] = None,
) -> RedirectResponse:
    """Checks the state, exchanges the code, verifies the ID token, and signs the user in with
    Parley's own session and cookies; then back to the frontend. Any failure goes to the sign-in
    page with `?sso_error=<code>` (docs/sso.md lists them) and signs nobody in."""
    try:
        result, next_path = await service.finish(
            sealed_state=request.cookies.get(STATE_COOKIE),
            state=state,
            code=code,
            error=error,
            client=client,
        )
    except OidcFailure as failure:
        security_log.warning(
            "sso sign-in failed",
            extra={"event": "sso_failed", "code": failure.code, "reason": failure.reason},
        )
        await audit.record(
            uow,
            actions.SIGN_IN,
            outcome=actions.FAILED,
            details={"method": "oidc", "reason": failure.code},
        )
        response = _failed(settings.frontend_url, failure.code)
    else:
        if isinstance(result, MfaChallenge):
            # The second step happens on the sign-in page, with the challenge in the fragment
            # (never sent to a server, so never in a log).
            query = urlencode({"sso": "mfa", "next": next_path})
            target = _frontend(settings.frontend_url, f"/signin?{query}#{result.challenge_token}")
            response = RedirectResponse(target, status_code=status.HTTP_302_FOUND)
        else:
            response = RedirectResponse(
                _frontend(settings.frontend_url, next_path), status_code=status.HTTP_302_FOUND
            )
            set_auth_cookies(response, result, secure=settings.secure_cookies)
    response.delete_cookie(
        STATE_COOKIE,
        path=STATE_COOKIE_PATH,
        secure=settings.secure_cookies,
        httponly=True,
        samesite="lax",
    )
    return response
