import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    ForeignKey,
    Index,
    LargeBinary,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column

from app.core.db import Base, UUIDPrimaryKey, utcnow


class FileKind(StrEnum):
    IMAGE = "image"
    DOCUMENT = "document"


class BlobState(StrEnum):
    # An upload in flight: its bytes may be partly stored, and its size counts against the quota.
    UPLOADING = "uploading"
    # Bytes no file owns any more (a deleted file, a failed upload): to be removed from storage.
    DELETING = "deleting"


def _one_of(column: str, values: type[StrEnum]) -> str:
    return f"{column} IN ({', '.join(repr(str(v)) for v in values)})"


class File(UUIDPrimaryKey, Base):
    """An uploaded file's metadata; its bytes are in storage under `storage_key`."""

    __tablename__ = "file"
    __table_args__ = (
        # The listing: one user's files, newest first, the id breaking ties for the cursor.
        # Also serves the user_id foreign key and the quota's sum.
        Index("ix_file_listing", "user_id", "created_at", "id"),
        CheckConstraint(_one_of("kind", FileKind), name="kind"),
    )

    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("user_account.id", ondelete="CASCADE"))
    # Sanitised: no path separators or control characters, at most 255 characters.
    name: Mapped[str] = mapped_column(String(255))
    # Detected from the bytes, never taken from the client.
    media_type: Mapped[str] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(16))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    # Images only.
    width: Mapped[int | None]
    height: Mapped[int | None]
    # PDFs only (when the page tree could be read).
    page_count: Mapped[int | None]
    # Fresh for every upload: files never share bytes, so deleting one never touches another's.
    storage_key: Mapped[uuid.UUID] = mapped_column(unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class PendingBlob(Base):
    """Bytes in storage that no file row owns: an upload in flight, or bytes to delete.

    An upload writes this row (reserving its size against the quota) before it stores a byte,
    and swaps it for the file row in the transaction that creates the file; deleting a file
    swaps the other way. So whatever dies half-way (the client, the storage, the process)
    leaves a row here, and the sweep removes the bytes it names.
    """

    __tablename__ = "file_pending_blob"
    __table_args__ = (CheckConstraint(_one_of("state", BlobState), name="state"),)

    storage_key: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    # Kept (as NULL) when the account goes, so the bytes of its uploads are still swept.
    user_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("user_account.id", ondelete="SET NULL"), index=True
    )
    state: Mapped[str] = mapped_column(String(16))
    reserved_bytes: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class MessageAttachment(Base):
    """A file attached to a user message, in the order the user gave.

    A file still attached to a message is not deleted (409 file_in_use, see FileService): the
    chat's history keeps its context. Deleting the message, its chat or the account removes the
    link (ON DELETE CASCADE); the file stays in the user's files until they delete it.
    """

    __tablename__ = "message_attachment"
    __table_args__ = (
        # The attachments of a chat's thread, read for every reply in one statement.
        Index("ix_message_attachment_chat_id", "chat_id"),
        # Whether a file is in use, when it is deleted (and the file_id foreign key).
        Index("ix_message_attachment_file_id", "file_id"),
    )

    message_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("message.id", ondelete="CASCADE"), primary_key=True
    )
    # In the primary key: the same file twice on one message is refused by the database too.
    file_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("file.id", ondelete="CASCADE"), primary_key=True
    )
    # The message's chat, so that a thread's attachments are one index range, not one lookup
    # per message.
    chat_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("chat.id", ondelete="CASCADE"))
    position: Mapped[int]


class FileText(Base):
    """A document's text, extracted once (when it is first attached) with the caps then in
    force, so that later replies quote it without reading the file again."""

    __tablename__ = "file_text"

    file_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("file.id", ondelete="CASCADE"), primary_key=True
    )
    text: Mapped[str] = mapped_column(Text)
    # Pages or characters were left out by DOCUMENT_MAX_PAGES / DOCUMENT_MAX_CHARS.
    truncated: Mapped[bool]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class FilePreview(Base):
    """An image as prepared for vision models (scaled to VISION_MAX_SIDE, turned upright,
    metadata stripped, re-encoded), made when it is first sent, so that every later reply that
    sends it again reads these few hundred kilobytes instead of decoding the original.

    In the database rather than next to the original in storage: it goes with the file's row
    (ON DELETE CASCADE) with nothing to sweep, and a reply reads it in the short transaction it
    opens anyway. Made again when VISION_MAX_SIDE changes (`max_side`)."""

    __tablename__ = "file_preview"

    file_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("file.id", ondelete="CASCADE"), primary_key=True
    )
    max_side: Mapped[int]
    media_type: Mapped[str] = mapped_column(String(32))
    data: Mapped[bytes] = mapped_column(LargeBinary)
    width: Mapped[int]
    height: Mapped[int]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
