import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.core.db import Base, UUIDPrimaryKey, utcnow


class AuthSession(UUIDPrimaryKey, Base):
    """One signed-in device. Access tokens carry its id, so revoking it cuts them off at once."""

    __tablename__ = "auth_session"

    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("user_account.id", ondelete="CASCADE"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]
    revoked_reason: Mapped[str | None] = mapped_column(String(32))
    user_agent: Mapped[str | None] = mapped_column(String(255))
    ip_address: Mapped[str | None] = mapped_column(String(64))

    def is_active(self, now: datetime) -> bool:
        return self.revoked_at is None and self.expires_at > now


class RefreshToken(UUIDPrimaryKey, Base):
    """A single-use refresh token, stored as its SHA-256 only."""

    __tablename__ = "refresh_token"

    session_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("auth_session.id", ondelete="CASCADE"), index=True
    )
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]


class TokenPurpose(StrEnum):
    VERIFY_EMAIL = "verify_email"
    RESET_PASSWORD = "reset_password"  # noqa: S105 - a purpose, not a password


class AccountToken(UUIDPrimaryKey, Base):
    """A single-use token mailed to the user (verify an email, reset a password), stored hashed.

    `email` is the address the token was sent to: a token proves control of that mailbox only,
    so it stops working if the account's email changes in between.
    """

    __tablename__ = "account_token"

    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("user_account.id", ondelete="CASCADE"), index=True
    )
    purpose: Mapped[str] = mapped_column(String(32))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    email: Mapped[str] = mapped_column(String(320))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]


class LoginAttempt(UUIDPrimaryKey, Base):
    """Consecutive failed sign-ins per email, whether or not an account has that email.

    Keyed by an HMAC of the normalised email rather than by user, so that unknown emails lock
    exactly like real ones and the lock itself reveals nothing about who has an account.
    """

    __tablename__ = "login_attempt"

    key: Mapped[str] = mapped_column(String(64), unique=True)
    failed_count: Mapped[int] = mapped_column(default=0)
    locked_until: Mapped[datetime | None]
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class PasswordHistory(UUIDPrimaryKey, Base):
    """Hashes of a user's previous passwords, newest kept, for the no-reuse rule."""

    __tablename__ = "password_history"

    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("user_account.id", ondelete="CASCADE"), index=True
    )
    password_hash: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class MfaRecoveryCode(UUIDPrimaryKey, Base):
    """A single-use recovery code. Codes carry 120 random bits, so SHA-256 suffices to store them
    (ASVS 6.5.2: a fast hash is fine for lookup secrets of at least 112 bits)."""

    __tablename__ = "mfa_recovery_code"

    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("user_account.id", ondelete="CASCADE"), index=True
    )
    code_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    used_at: Mapped[datetime | None]


class UserIdentity(UUIDPrimaryKey, Base):
    """An account at an OpenID Connect provider linked to a Parley account: the provider's
    issuer and its subject (`sub`, stable for that account there). A sign-in with that pair signs
    in this user, whatever email the provider sends later."""

    __tablename__ = "user_identity"
    __table_args__ = (UniqueConstraint("issuer", "subject"),)

    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("user_account.id", ondelete="CASCADE"), index=True
    )
    issuer: Mapped[str] = mapped_column(String(255))
    subject: Mapped[str] = mapped_column(String(255))
    # The email the provider sent at the last sign-in (a record, not used to match).
    email: Mapped[str | None] = mapped_column(String(320))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_sign_in_at: Mapped[datetime | None]
