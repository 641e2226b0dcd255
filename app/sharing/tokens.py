"""Share tokens: 256 bits an attacker cannot predict, never stored.

A share keeps a random salt (`secrets.token_hex(32)`) and the SHA-256 of its token; the token is
HMAC-SHA256(SECRET_KEY, salt), base64url. So the database alone gives no working link (the hash
finds a share, it does not open one), while the owner can be shown their link again (sharing
again, `GET /api/shares`) without it being kept anywhere. Rotating SECRET_KEY turns every link
into a new one the next time its chat is shared (the old ones stop working).
"""

import base64
import hashlib
import hmac
import secrets


def new_salt() -> str:
    return secrets.token_hex(32)


def derive_token(secret_key: str, salt: str) -> str:
    digest = hmac.new(
        secret_key.encode(), b"parley-share:" + salt.encode(), hashlib.sha256
    ).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()
