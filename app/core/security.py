"""Password hashing, JWTs and opaque tokens. CPU-heavy work runs in a worker thread."""

import asyncio
import base64
import hashlib
import hmac
import logging
import os
import secrets
import sys
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, TypeVar

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from jose import JWTError, jwt
from passlib.context import CryptContext

JWT_ALGORITHM = "HS256"
TokenType = Literal["access", "mfa_challenge"]
T = TypeVar("T")

logger = logging.getLogger("parley.security")


class PasswordHasher:
    """bcrypt behind SHA-256 (passlib's `bcrypt_sha256`), so passwords past 72 bytes still count.

    Hashing takes ~250 ms at cost 12: it runs in threads of its own, never on the event loop, one
    core short of all of them (twenty logins at once must not take every core from the loop), and
    on Linux at a lower scheduling priority (`nice`): when the machine is busy, the loop relaying
    tokens runs first and a sign-in waits a little longer, instead of every stream stuttering.
    """

    def __init__(self, rounds: int, *, nice: int = 0) -> None:
        self._context = CryptContext(schemes=["bcrypt_sha256"], bcrypt_sha256__rounds=rounds)
        self._dummy_hash: str | None = None
        self._nice = nice
        self._executor: ThreadPoolExecutor | None = None
        self._verifications = 0

    @property
    def verifications(self) -> int:
        """Password checks finished so far, dummy ones included. Every sign-in must spend exactly
        one whatever the email and the lock say; tests count them instead of timing answers."""
        return self._verifications

    def _lower_priority(self) -> None:
        if self._nice > 0 and sys.platform.startswith("linux"):
            # Linux keeps a nice value per thread (a new thread starts with its creator's);
            # raising it needs no privileges.
            thread = threading.get_native_id()
            try:
                current = os.getpriority(os.PRIO_PROCESS, thread)
                os.setpriority(os.PRIO_PROCESS, thread, min(19, current + self._nice))
            except OSError as exc:
                logger.warning("could not lower the hashing threads' priority: %s", exc)

    async def _run(self, function: Callable[..., T], *args: Any) -> T:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(
                max_workers=max(1, (os.cpu_count() or 2) - 1),
                thread_name_prefix="parley-password-hash",
                initializer=self._lower_priority,
            )
        return await asyncio.get_running_loop().run_in_executor(self._executor, function, *args)

    async def hash(self, password: str) -> str:
        return await self._run(self._context.hash, password)

    async def verify(self, password: str, password_hash: str) -> bool:
        valid = await self._run(self._context.verify, password, password_hash)
        self._verifications += 1
        return valid

    async def verify_dummy(self, password: str) -> None:
        """Spend the same work as a real check, so unknown emails answer as slowly as wrong ones."""
        if self._dummy_hash is None:
            self._dummy_hash = await self.hash(secrets.token_urlsafe(16))
        await self.verify(password, self._dummy_hash)

    def close(self) -> None:
        """Lets the threads end once their work is done (at shutdown)."""
        if self._executor is not None:
            self._executor.shutdown(wait=False)
            self._executor = None


def new_opaque_token() -> str:
    """A random URL-safe token with 256 bits of entropy."""
    return secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    """Tokens are high-entropy, so a fast hash is enough to keep them out of the database."""
    return hashlib.sha256(token.encode()).hexdigest()


def tokens_equal(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


def derive_key(secret: str, *, purpose: str) -> bytes:
    """A 256-bit key for one purpose, derived from a master secret (HKDF-SHA256)."""
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose.encode()).derive(
        secret.encode()
    )


def keyed_digest(key: bytes, value: str) -> str:
    """HMAC-SHA256 of `value`: a stable pseudonym that nobody without the key can recompute."""
    return hmac.new(key, value.encode(), hashlib.sha256).hexdigest()


class SecretBoxError(Exception):
    """The ciphertext was not made with this key, or was altered."""


class SecretBox:
    """Authenticated encryption (Fernet: AES-128-CBC + HMAC-SHA256) for small secrets at rest."""

    def __init__(self, key: bytes) -> None:
        self._fernet = Fernet(base64.urlsafe_b64encode(key))

    def encrypt(self, plaintext: str) -> str:
        return self._fernet.encrypt(plaintext.encode()).decode()

    def decrypt(self, ciphertext: str) -> str:
        try:
            return self._fernet.decrypt(ciphertext.encode()).decode()
        except (InvalidToken, ValueError) as exc:
            raise SecretBoxError("cannot decrypt") from exc


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
        claims = self._decode(token, "access")
        try:
            return AccessClaims(
                user_id=uuid.UUID(claims["sub"]),
                session_id=uuid.UUID(claims["sid"]),
                expires_at=datetime.fromtimestamp(claims["exp"], UTC),
            )
        except (KeyError, ValueError, TypeError) as exc:
            raise TokenError(str(exc)) from exc

    def encode_mfa_challenge(self, *, user_id: uuid.UUID, ttl: timedelta) -> tuple[str, datetime]:
        """A short-lived proof that the password step passed; useless without a second factor."""
        now = datetime.now(UTC)
        expires_at = now + ttl
        claims: dict[str, Any] = {
            "sub": str(user_id),
            "type": "mfa_challenge",
            "iat": int(now.timestamp()),
            "exp": int(expires_at.timestamp()),
            "jti": uuid.uuid4().hex,
        }
        return jwt.encode(claims, self._key, algorithm=JWT_ALGORITHM), expires_at

    def decode_mfa_challenge(self, token: str) -> uuid.UUID:
        claims = self._decode(token, "mfa_challenge")
        try:
            return uuid.UUID(claims["sub"])
        except (KeyError, ValueError, TypeError) as exc:
            raise TokenError(str(exc)) from exc

    def _decode(self, token: str, token_type: TokenType) -> dict[str, Any]:
        try:
            # Pin the algorithm before verifying: `alg: none` and RS/HS confusion are refused.
            if jwt.get_unverified_header(token).get("alg") != JWT_ALGORITHM:
                raise TokenError("unexpected algorithm")
            claims: dict[str, Any] = jwt.decode(
                token,
                self._key,
                algorithms=[JWT_ALGORITHM],
                options={"require_exp": True, "require_sub": True, "require_iat": True},
            )
        except (JWTError, ValueError, TypeError, AttributeError) as exc:
            raise TokenError(str(exc)) from exc
        # The type claim keeps a challenge from passing as an access token and vice versa.
        if claims.get("type") != token_type:
            raise TokenError(f"not an {token_type} token")
        return claims
