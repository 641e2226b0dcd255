import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, String
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
