from datetime import datetime
from enum import StrEnum

from sqlalchemy import Float, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.core.db import Base, Timestamps, UUIDPrimaryKey


class Role(StrEnum):
    USER = "user"
    ADMIN = "admin"


class User(UUIDPrimaryKey, Timestamps, Base):
    __tablename__ = "user_account"

    # Stored normalised (lower-cased), so uniqueness is case-insensitive on every backend.
    email: Mapped[str] = mapped_column(String(320), unique=True)
    display_name: Mapped[str] = mapped_column(String(100))
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16), default=Role.USER)
    is_active: Mapped[bool] = mapped_column(default=True)
    email_verified_at: Mapped[datetime | None]
    # A new address waiting for its verification link; the account keeps the old one till then.
    pending_email: Mapped[str | None] = mapped_column(String(320))

    # Preferences.
    default_model: Mapped[str | None] = mapped_column(String(100))
    temperature: Mapped[float | None] = mapped_column(Float)
    system_prompt: Mapped[str | None] = mapped_column(Text)

    # Tokens per UTC day; None means no quota (enforced by the usage domain).
    daily_token_quota: Mapped[int | None]

    # TOTP: the secret is encrypted at rest; set by setup, live once mfa_enabled_at is set.
    mfa_secret_encrypted: Mapped[str | None] = mapped_column(String(255))
    mfa_enabled_at: Mapped[datetime | None]
    # The last accepted time step: a code of this step or an earlier one is a replay.
    mfa_last_used_step: Mapped[int | None]

    @property
    def email_verified(self) -> bool:
        return self.email_verified_at is not None

    @property
    def mfa_enabled(self) -> bool:
        return self.mfa_enabled_at is not None

    @property
    def is_admin(self) -> bool:
        return self.role == Role.ADMIN
