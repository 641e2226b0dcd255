import uuid

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from app.core.db import Base, Timestamps, UUIDPrimaryKey


class ChatShare(UUIDPrimaryKey, Timestamps, Base):
    """A chat's public link: one per chat, showing the branch up to `last_message_id`.

    The token itself is not stored: `token_hash` (SHA-256) finds the share, and `token_salt`
    with SECRET_KEY derives the token again, so the owner can copy their link later
    (app/sharing/tokens.py). Revoking deletes the row.
    """

    __tablename__ = "chat_share"

    chat_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("chat.id", ondelete="CASCADE"), unique=True
    )
    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("user_account.id", ondelete="CASCADE"), index=True
    )
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    token_salt: Mapped[str] = mapped_column(String(64))
    # The newest message when the chat was (last) shared; null: an empty chat.
    last_message_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("message.id", ondelete="CASCADE")
    )
