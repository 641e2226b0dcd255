"""API keys as the client holds them (`pk-` and 43 url-safe characters) and as Parley stores
them: an HMAC-SHA256 keyed by a key derived from SECRET_KEY, and the last 4 characters as a
hint. A stolen table gives no key, and without the secret not even a way to test guesses."""

import hashlib
import hmac
import secrets

from app.auth.callers import KEY_PREFIX
from app.core.security import derive_key

KEY_PURPOSE = "parley:api-key:v1"
# 32 random bytes: 43 url-safe characters after the prefix.
KEY_BYTES = 32
# Longer than any key Parley makes; a longer header is refused before it is hashed.
MAX_KEY_LENGTH = 128
HINT_LENGTH = 4


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(KEY_BYTES)


def hint_of(key: str) -> str:
    return key[-HINT_LENGTH:]


class KeyHasher:
    def __init__(self, secret_key: str) -> None:
        self._key = derive_key(secret_key, purpose=KEY_PURPOSE)

    def digest(self, key: str) -> str:
        """The stored form of `key` (64 hex characters)."""
        return hmac.new(self._key, key.encode(), hashlib.sha256).hexdigest()
