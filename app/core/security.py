"""Password hashing, JWTs and opaque tokens. CPU-heavy work runs in a worker thread."""

import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from anyio import to_thread
from jose import JWTError, jwt
from passlib.context import CryptContext

JWT_ALGORITHM = "HS256"
TokenType = Literal["access"]


class PasswordHasher:
    """bcrypt behind SHA-256 (passlib's `bcrypt_sha256`), so passwords past 72 bytes still count.

    Hashing takes ~250 ms at cost 12: it always runs in a worker thread, never on the event loop.
    """

    def __init__(self, rounds: int) -> None:
        self._context = CryptContext(schemes=["bcrypt_sha256"], bcrypt_sha256__rounds=rounds)
        self._dummy_hash: str | None = None

    async def hash(self, password: str) -> str:
        return await to_thread.run_sync(self._context.hash, password)

    async def verify(self, password: str, password_hash: str) -> bool:
        return await to_thread.run_sync(self._context.verify, password, password_hash)

    async def verify_dummy(self, password: str) -> None:
        """Spend the same work as a real check, so unknown emails answer as slowly as wrong ones."""
        if self._dummy_hash is None:
            self._dummy_hash = await self.hash(secrets.token_urlsafe(16))
        await self.verify(password, self._dummy_hash)


def new_opaque_token() -> str:
    """A random URL-safe token with 256 bits of entropy."""
    return secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    """Tokens are high-entropy, so a fast hash is enough to keep them out of the database."""
    return hashlib.sha256(token.encode()).hexdigest()


def tokens_equal(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


@dataclass(frozen=True)
class AccessClaims:
    user_id: uuid.UUID
    session_id: uuid.UUID
    expires_at: datetime


class TokenError(Exception):
    """The token is malformed, forged, expired or of the wrong kind."""


class JWTCodec:
    def __init__(self, secret_key: str, *, access_ttl: timedelta) -> None:
        self._key = secret_key
        self.access_ttl = access_ttl

    def encode_access(self, *, user_id: uuid.UUID, session_id: uuid.UUID) -> tuple[str, datetime]:
        now = datetime.now(UTC)
        expires_at = now + self.access_ttl
        claims: dict[str, Any] = {
            "sub": str(user_id),
            "sid": str(session_id),
            "type": "access",
            "iat": int(now.timestamp()),
            "exp": int(expires_at.timestamp()),
            "jti": uuid.uuid4().hex,
        }
        return jwt.encode(claims, self._key, algorithm=JWT_ALGORITHM), expires_at

    def decode_access(self, token: str) -> AccessClaims:
        try:
            # Pin the algorithm before verifying: `alg: none` and RS/HS confusion are refused.
            if jwt.get_unverified_header(token).get("alg") != JWT_ALGORITHM:
                raise TokenError("unexpected algorithm")
            claims = jwt.decode(
                token,
                self._key,
                algorithms=[JWT_ALGORITHM],
                options={"require_exp": True, "require_sub": True, "require_iat": True},
            )
            if claims.get("type") != "access":
                raise TokenError("not an access token")
            return AccessClaims(
                user_id=uuid.UUID(claims["sub"]),
                session_id=uuid.UUID(claims["sid"]),
                expires_at=datetime.fromtimestamp(claims["exp"], UTC),
            )
        except (JWTError, KeyError, ValueError, TypeError, AttributeError) as exc:
            raise TokenError(str(exc)) from exc
