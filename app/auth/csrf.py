"""CSRF protection for cookie-authenticated requests: a signed double-submit token.

The token is `<nonce>.<HMAC(key, session id, nonce)>`. It is set in the `parley_csrf` cookie
(readable by JavaScript) and returned as `csrf_token` in every token response; unsafe requests
authenticated by cookie must echo it in the `X-CSRF-Token` header. A cross-site page can make the
browser send the cookies but cannot read them, so it cannot produce the header. The HMAC binds
the token to the session, so a cookie planted from a sibling subdomain ("cookie tossing") does
not pass. Bearer requests need nothing: a browser never adds an Authorization header by itself.
"""

import secrets
import uuid

from app.core.security import keyed_digest, tokens_equal

CSRF_COOKIE = "parley_csrf"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
_MAX_LENGTH = 256


def _signature(key: bytes, session_id: uuid.UUID, nonce: str) -> str:
    return keyed_digest(key, f"csrf:{session_id}:{nonce}")


def issue_csrf_token(key: bytes, session_id: uuid.UUID) -> str:
    nonce = secrets.token_urlsafe(16)
    return f"{nonce}.{_signature(key, session_id, nonce)}"


def csrf_token_valid(
    key: bytes, session_id: uuid.UUID, *, cookie: str | None, header: str | None
) -> bool:
    if not cookie or not header or len(header) > _MAX_LENGTH:
        return False
    if not tokens_equal(cookie, header):
        return False
    nonce, _, signature = header.partition(".")
    return bool(nonce) and tokens_equal(signature, _signature(key, session_id, nonce))
