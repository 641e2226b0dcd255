"""Two-factor authentication with TOTP (RFC 6238) and single-use recovery codes.

The TOTP secret is encrypted at rest with a key derived from MFA_ENCRYPTION_KEY, or SECRET_KEY
when that is unset (HKDF, then Fernet). A database dump alone does not reveal the secrets. The
cost: changing the key makes stored secrets unreadable, so set MFA_ENCRYPTION_KEY before rotating
SECRET_KEY. Recovery codes (120 random bits each) are stored as SHA-256 digests.
"""

import base64
import hmac
import logging
import re
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import pyotp
import segno

from app import audit
from app.audit import actions
from app.auth.errors import (
    InvalidMfaCode,
    MfaAlreadyEnabled,
    MfaNotEnabled,
    MfaSetupRequired,
)
from app.auth.guard import CredentialGuard
from app.auth.notifications import Notifier
from app.auth.repository import AuthSessionRepository, MfaRecoveryCodeRepository
from app.core.config import Settings
from app.core.db import utcnow
from app.core.security import SecretBox, SecretBoxError, hash_token
from app.core.uow import UnitOfWork
from app.users.models import User
from app.users.repository import UserRepository

security_log = logging.getLogger("parley.security")

RECOVERY_CODE_COUNT = 10
_RECOVERY_CODE_BYTES = 15  # 120 bits, 24 base32 characters
# One time step either side of now: enough for clocks a little apart, not a wider replay window.
DRIFT_STEPS = 1
_TOTP_CODE = re.compile(r"^\d{6}$")
_MAX_CODE_LENGTH = 64


def new_recovery_code() -> str:
    raw = base64.b32encode(secrets.token_bytes(_RECOVERY_CODE_BYTES)).decode()
    return "-".join(raw[i : i + 4] for i in range(0, len(raw), 4))


def normalise_code(code: str) -> str:
    return re.sub(r"[\s-]", "", code).upper()


def recovery_code_hash(code: str) -> str:
    return hash_token(normalise_code(code))


def matching_step(secret: str, code: str, now: datetime, *, drift: int = DRIFT_STEPS) -> int | None:
    """The time step whose code `code` is, within `drift` steps of `now`; None if none."""
    totp = pyotp.TOTP(secret)
    current = totp.timecode(now)
    found: int | None = None
    for step in range(current - drift, current + drift + 1):
        # Check every step rather than stopping at the first match, so the time taken does not
        # depend on which one matched.
        if hmac.compare_digest(totp.generate_otp(step), code) and found is None:
            found = step
    return found


@dataclass(frozen=True)
class MfaSetupData:
    secret: str
    otpauth_uri: str
    qr_svg: str


class MfaService:
    def __init__(
        self,
        *,
        uow: UnitOfWork,
        users: UserRepository,
        recovery_codes: MfaRecoveryCodeRepository,
        sessions: AuthSessionRepository,
        guard: CredentialGuard,
        notifier: Notifier,
        secret_box: SecretBox,
        settings: Settings,
        clock: Callable[[], datetime],
    ) -> None:
        # `clock` is the time TOTP codes are checked against (tests control it); rows get the
        # real time.
        self.uow = uow
        self.users = users
        self.recovery_codes = recovery_codes
        self.sessions = sessions
        self.guard = guard
        self.notifier = notifier
        self.secret_box = secret_box
        self.settings = settings
        self.clock = clock

    async def setup(self, user: User) -> MfaSetupData:
        """A new secret (replacing an unconfirmed one); MFA stays off until a code confirms it."""
        if user.mfa_enabled:
            raise MfaAlreadyEnabled()
        secret = pyotp.random_base32()
        user.mfa_secret_encrypted = self.secret_box.encrypt(secret)
        user.mfa_last_used_step = None
        await self.uow.flush()
        uri = pyotp.TOTP(secret).provisioning_uri(
            name=user.email, issuer_name=self.settings.mfa_issuer
        )
        qr_svg = segno.make(uri, error="m").svg_inline(scale=4, title="Two-factor setup code")
        return MfaSetupData(secret=secret, otpauth_uri=uri, qr_svg=qr_svg)

    async def enable(
        self, user: User, *, code: str, password: str, keep_session_id: uuid.UUID
    ) -> list[str]:
        """Turns MFA on once a code from the new secret checks out; returns the recovery codes.

        Needs the password too (ASVS 7.5.1), or a stolen session could bind the account to the
        thief's authenticator and lock its owner out. Other sessions end: they signed in with
        one factor.
        """
        if user.mfa_enabled:
            raise MfaAlreadyEnabled()
        if user.mfa_secret_encrypted is None:
            raise MfaSetupRequired()
        await self.guard.reauthenticate(user, password)
        if not await self._check_totp(user, code):
            raise InvalidMfaCode()
        now = utcnow()
        codes = [new_recovery_code() for _ in range(RECOVERY_CODE_COUNT)]
        await self.recovery_codes.replace_all(user.id, [recovery_code_hash(c) for c in codes], now)
        user.mfa_enabled_at = now
        await self.uow.flush()
        await self.sessions.revoke_all(user.id, now=now, reason="mfa_enabled", keep=keep_session_id)
        self.notifier.mfa_changed(user, enabled=True)
        security_log.info("mfa enabled", extra={"event": "mfa_enabled"})
        await audit.record(
            self.uow, actions.MFA_ENABLED, actor=user.id, target=audit.Target("user", user.id)
        )
        return codes

    async def disable(self, user: User, *, password: str, code: str) -> None:
        """Turns MFA off; needs the password and a current code (or a recovery code)."""
        if not user.mfa_enabled:
            raise MfaNotEnabled()
        await self.guard.reauthenticate(user, password)
        await self.guard.check_second_factor(
            user, lambda: self.verify_second_factor(user, code), InvalidMfaCode()
        )
        await self.guard.succeed(user.email)
        user.mfa_enabled_at = None
        user.mfa_secret_encrypted = None
        user.mfa_last_used_step = None
        await self.recovery_codes.delete_all(user.id)
        await self.uow.flush()
        self.notifier.mfa_changed(user, enabled=False)
        security_log.info("mfa disabled", extra={"event": "mfa_disabled"})
        await audit.record(
            self.uow, actions.MFA_DISABLED, actor=user.id, target=audit.Target("user", user.id)
        )

    async def verify_second_factor(self, user: User, code: str) -> bool:
        """A TOTP code (six digits, never accepted twice) or an unused recovery code."""
        if not code or len(code) > _MAX_CODE_LENGTH or not user.mfa_enabled:
            return False
        normalised = normalise_code(code)
        if _TOTP_CODE.match(normalised):
            return await self._check_totp(user, normalised)
        used = await self.recovery_codes.claim(user.id, recovery_code_hash(normalised), utcnow())
        if used:
            security_log.info("recovery code used", extra={"event": "mfa_recovery_code_used"})
            await audit.record(
                self.uow,
                actions.RECOVERY_CODE_USED,
                actor=user.id,
                target=audit.Target("user", user.id),
                details={"left": await self.recovery_codes.count_unused(user.id)},
            )
        return used

    async def recovery_codes_left(self, user: User) -> int:
        return await self.recovery_codes.count_unused(user.id)

    async def _check_totp(self, user: User, code: str) -> bool:
        if user.mfa_secret_encrypted is None:
            return False
        try:
            secret = self.secret_box.decrypt(user.mfa_secret_encrypted)
        except SecretBoxError:
            security_log.error(
                "cannot decrypt a TOTP secret: was MFA_ENCRYPTION_KEY or SECRET_KEY changed?",
                extra={"event": "mfa_secret_unreadable", "target_user_id": str(user.id)},
            )
            return False
        step = matching_step(secret, normalise_code(code), self.clock())
        if step is None:
            return False
        # Replay: a code, or any code of an earlier step, works at most once.
        return await self.users.claim_mfa_step(user.id, step)
