import uuid
from datetime import datetime

from sqlalchemy import JSON, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from app.core.db import Base, UUIDPrimaryKey, utcnow


class ApiKey(UUIDPrimaryKey, Base):
    """A user's API key: its keyed hash (never the key), a hint, scopes and limits.

    Revoking sets `revoked_at` and keeps the row, so usage recorded against the key keeps its
    name in reports; the row goes with its user.
    """

    __tablename__ = "api_key"

    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("user_account.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(100))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    hint: Mapped[str] = mapped_column(String(8))
    # Route groups the key opens besides /v1: "chats", "knowledge".
    scopes: Mapped[list[str]] = mapped_column(JSON, default=list)
    # The models the key may use; None: every model its user may use.
    models: Mapped[list[str] | None] = mapped_column(JSON)
    daily_token_limit: Mapped[int | None]
    rpm: Mapped[int | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime | None]
    # Written at most once a minute (app/keys/service.py).
    last_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]
