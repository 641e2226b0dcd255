"""The cookie policy: which cookies carry a signed-in session, with which attributes.

The access and refresh tokens are HttpOnly (the refresh one only sent to the auth endpoints);
the CSRF token is readable by the frontend's JavaScript, which echoes it in X-CSRF-Token. All are
SameSite=Lax, and Secure outside development.
"""

from fastapi import Response, status

from app.auth.csrf import CSRF_COOKIE
from app.auth.schemas import TokenPair

ACCESS_COOKIE = "parley_access"
REFRESH_COOKIE = "parley_refresh"
REFRESH_COOKIE_PATH = "/api/auth"


def set_auth_cookies(response: Response, tokens: TokenPair, *, secure: bool) -> None:
    response.set_cookie(
        ACCESS_COOKIE,
        tokens.access_token,
        max_age=tokens.expires_in,
        httponly=True,
        secure=secure,
        samesite="lax",
        path="/",
    )
    response.set_cookie(
        REFRESH_COOKIE,
        tokens.refresh_token,
        max_age=tokens.refresh_expires_in,
        httponly=True,
        secure=secure,
        samesite="lax",
        path=REFRESH_COOKIE_PATH,
    )
    # Readable by the frontend's JavaScript on purpose: it echoes it in X-CSRF-Token.
    response.set_cookie(
        CSRF_COOKIE,
        tokens.csrf_token,
        max_age=tokens.refresh_expires_in,
        httponly=False,
        secure=secure,
        samesite="lax",
        path="/",
    )


def clear_auth_cookies(response: Response, *, secure: bool) -> None:
    response.delete_cookie(ACCESS_COOKIE, path="/", secure=secure, httponly=True, samesite="lax")
    response.delete_cookie(
        REFRESH_COOKIE, path=REFRESH_COOKIE_PATH, secure=secure, httponly=True, samesite="lax"
    )
    response.delete_cookie(CSRF_COOKIE, path="/", secure=secure, httponly=False, samesite="lax")


def signed_out(*, secure: bool) -> Response:
    """204 No Content that also removes the session's cookies from the browser."""
    response = Response(status_code=status.HTTP_204_NO_CONTENT)
    clear_auth_cookies(response, secure=secure)
    return response
