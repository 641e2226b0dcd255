import uuid
from datetime import date, datetime

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from app.core.db import Base, UUIDPrimaryKey, utcnow


class UsageRecord(UUIDPrimaryKey, Base):
    """Tokens one reply used (or, while `pending`, reserved against the daily quota).

    Records outlive the chats they came from (the links are set to NULL), so deleting a chat
    does not give quota back or rewrite history.
    """

    __tablename__ = "usage_record"
    __table_args__ = (
        Index("ix_usage_record_user_day", "user_id", "day", "model"),
        Index("ix_usage_record_day", "day"),
        # A key's tokens today (its daily limit, the key list) without a scan.
        Index("ix_usage_record_api_key_day", "api_key_id", "day"),
    )

    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("user_account.id", ondelete="CASCADE"))
    day: Mapped[date]  # UTC day, the unit of quotas and reports
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    model: Mapped[str] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(16))  # chat | generate | title | summary | embedding
    # The deployment of `model` that answered (routing), when known.
    deployment: Mapped[str | None] = mapped_column(String(200))
    prompt_tokens: Mapped[int] = mapped_column(default=0)
    completion_tokens: Mapped[int] = mapped_column(default=0)
    estimated: Mapped[bool] = mapped_column(default=False)
    pending: Mapped[bool] = mapped_column(default=False)
    # Indexed so that deleting a chat's messages finds their usage links without a scan.
    message_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("message.id", ondelete="SET NULL"), index=True
    )
    generation_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("generation.id", ondelete="SET NULL"), index=True
    )
    # The API key the request came with (app/keys); NULL for access tokens and deleted keys.
    api_key_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("api_key.id", ondelete="SET NULL")
    )
