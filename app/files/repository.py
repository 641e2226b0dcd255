import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Uuid, bindparam, delete, func, insert, literal, select, tuple_, update
from sqlalchemy.dialects.postgresql import insert as postgres_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.db import UTCDateTime, utcnow
from app.core.repository import Repository
from app.files import images
from app.files.models import (
    BlobState,
    File,
    FilePreview,
    FileText,
    MessageAttachment,
    PendingBlob,
)
from app.users.models import User


@dataclass(frozen=True)
class FileKey:
    """A file's place in the listing: newest first, the id breaking ties."""

    created_at: datetime
    id: uuid.UUID


class FileRepository(Repository[File]):
    model = File

    async def get_for_user(self, user_id: uuid.UUID, file_id: uuid.UUID) -> File | None:
        return await self.session.scalar(
            select(File).where(File.id == file_id, File.user_id == user_id)
        )

    async def list_page(
        self,
        user_id: uuid.UUID,
        *,
        limit: int,
        after: FileKey | None = None,
        kind: str | None = None,
    ) -> list[File]:
        """Up to `limit` files, newest first, strictly after `after` (keyset pagination)."""
        statement = select(File).where(File.user_id == user_id)
        if kind is not None:
            statement = statement.where(File.kind == kind)
        if after is not None:
            statement = statement.where(
                tuple_(File.created_at, File.id)
                < tuple_(literal(after.created_at, UTCDateTime()), literal(after.id, Uuid()))
            )
        statement = statement.order_by(File.created_at.desc(), File.id.desc()).limit(limit)
        return list(await self.session.scalars(statement))

    async def owned(
        self, user_id: uuid.UUID, file_ids: Sequence[uuid.UUID], *, lock: bool = False
    ) -> dict[uuid.UUID, File]:
        """The user's files among `file_ids`. With `lock` (Postgres), each is locked against
        deletion (FOR SHARE) until the transaction ends: attaching it and deleting it cannot
        interleave. SQLite's BEGIN IMMEDIATE already serializes every writer."""
        statement = select(File).where(File.id.in_(list(file_ids)), File.user_id == user_id)
        if lock and self.session.get_bind().dialect.name == "postgresql":
            statement = statement.with_for_update(read=True)
        return {file.id: file for file in await self.session.scalars(statement)}

    async def exists(self, file_id: uuid.UUID) -> bool:
        return await self.session.scalar(select(File.id).where(File.id == file_id)) is not None

    async def lock_for_delete(self, file_id: uuid.UUID) -> bool:
        """Locks the file's row (Postgres) before it is checked for use and deleted; False
        when it is gone already."""
        statement = select(File.id).where(File.id == file_id)
        if self.session.get_bind().dialect.name == "postgresql":
            statement = statement.with_for_update()
        return await self.session.scalar(statement) is not None

    async def keys_of_user(self, user_id: uuid.UUID) -> list[uuid.UUID]:
        return list(
            await self.session.scalars(select(File.storage_key).where(File.user_id == user_id))
        )


class PendingBlobRepository(Repository[PendingBlob]):
    model = PendingBlob

    async def lock_user(self, user_id: uuid.UUID) -> None:
        """Serializes one user's quota checks across requests and workers (Postgres; SQLite's
        BEGIN IMMEDIATE already serializes every writer). First in its transaction."""
        if self.session.get_bind().dialect.name == "postgresql":
            await self.session.execute(select(User.id).where(User.id == user_id).with_for_update())

    async def bytes_used(self, user_id: uuid.UUID) -> int:
        """The user's stored files plus the reservations of their uploads in flight."""
        stored = select(func.coalesce(func.sum(File.size_bytes), 0)).where(File.user_id == user_id)
        reserved = select(func.coalesce(func.sum(PendingBlob.reserved_bytes), 0)).where(
            PendingBlob.user_id == user_id, PendingBlob.state == BlobState.UPLOADING
        )
        used = await self.session.scalar(
            select(stored.scalar_subquery() + reserved.scalar_subquery())
        )
        return int(used or 0)

    async def claim_upload(self, key: uuid.UUID) -> bool:
        """Ends an upload's reservation, as its file row is added; False if the sweep took it
        for a dead upload first (its bytes are being deleted)."""
        result = await self.session.execute(
            delete(PendingBlob).where(
                PendingBlob.storage_key == key, PendingBlob.state == BlobState.UPLOADING
            )
        )
        return bool(getattr(result, "rowcount", 0))

    async def add_deleting(
        self, keys: Sequence[uuid.UUID], *, user_id: uuid.UUID | None, now: datetime
    ) -> None:
        if keys:
            await self.session.execute(
                insert(PendingBlob),
                [
                    {
                        "storage_key": key,
                        "user_id": user_id,
                        "state": BlobState.DELETING,
                        "reserved_bytes": 0,
                        "created_at": now,
                    }
                    for key in keys
                ],
            )

    async def expire_uploads(self, *, started_before: datetime) -> int:
        """Uploads begun before then belong to dead processes: their bytes are to be deleted."""
        result = await self.session.execute(
            update(PendingBlob)
            .where(
                PendingBlob.state == BlobState.UPLOADING,
                PendingBlob.created_at < started_before,
            )
            .values(state=BlobState.DELETING, reserved_bytes=0)
        )
        return int(getattr(result, "rowcount", 0) or 0)

    async def deleting_keys(self, *, limit: int) -> list[uuid.UUID]:
        return list(
            await self.session.scalars(
                select(PendingBlob.storage_key)
                .where(PendingBlob.state == BlobState.DELETING)
                .order_by(PendingBlob.created_at)
                .limit(limit)
            )
        )

    async def forget(self, keys: Sequence[uuid.UUID]) -> None:
        """Drops the rows of bytes that are gone from storage."""
        if keys:
            await self.session.execute(
                delete(PendingBlob).where(PendingBlob.storage_key.in_(list(keys)))
            )


@dataclass(frozen=True)
class DocumentText:
    text: str
    # Pages or characters were left out by DOCUMENT_MAX_PAGES / DOCUMENT_MAX_CHARS.
    truncated: bool


class AttachmentRepository:
    """All SQL about attachments: the links, and the documents' extracted text."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def link(
        self, *, chat_id: uuid.UUID, message_id: uuid.UUID, file_ids: Sequence[uuid.UUID]
    ) -> None:
        """Attaches the files to a message (already flushed), in this order."""
        if file_ids:
            await self.session.execute(
                insert(MessageAttachment),
                [
                    {
                        "message_id": message_id,
                        "file_id": file_id,
                        "chat_id": chat_id,
                        "position": position,
                    }
                    for position, file_id in enumerate(file_ids)
                ],
            )

    async def in_chat(self, chat_id: uuid.UUID) -> dict[uuid.UUID, list[File]]:
        """Every attachment in the chat, by message, each message's in order. Read for every
        reply (one index range on message_attachment.chat_id; empty in most chats). Messages
        waiting to be written are not flushed for it (their links are written after them): a
        user message and its reply then go to the database in one flush."""
        with self.session.no_autoflush:
            rows = await self.session.execute(_IN_CHAT, {"chat_id": chat_id})
        return _by_message((message_id, file) for message_id, file in rows)

    async def of_messages(self, message_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, list[File]]:
        """The attachments of these messages, by message, each message's in order."""
        ids = list(set(message_ids))
        if not ids:
            return {}
        rows = await self.session.execute(_OF_MESSAGES, {"message_ids": ids})
        return _by_message((message_id, file) for message_id, file in rows)

    async def file_ids_of(self, chat_id: uuid.UUID, message_id: uuid.UUID) -> list[uuid.UUID]:
        """The files attached to one message of the chat (none if it is not in the chat)."""
        return list(
            await self.session.scalars(
                select(MessageAttachment.file_id)
                .where(
                    MessageAttachment.chat_id == chat_id,
                    MessageAttachment.message_id == message_id,
                )
                .order_by(MessageAttachment.position)
            )
        )

    async def use_of(self, file_id: uuid.UUID) -> tuple[int, int]:
        """(messages, chats) the file is attached to."""
        row = (
            await self.session.execute(
                select(func.count(), func.count(MessageAttachment.chat_id.distinct())).where(
                    MessageAttachment.file_id == file_id
                )
            )
        ).one()
        return int(row[0]), int(row[1])

    async def texts(self, file_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, DocumentText]:
        ids = list(set(file_ids))
        if not ids:
            return {}
        rows = await self.session.execute(
            select(FileText.file_id, FileText.text, FileText.truncated).where(
                FileText.file_id.in_(ids)
            )
        )
        return {file_id: DocumentText(text, truncated) for file_id, text, truncated in rows}

    async def preview(self, file_id: uuid.UUID, max_side: int) -> images.PreparedImage | None:
        """The image as prepared for `max_side` before, if it was."""
        row = (
            await self.session.execute(
                select(
                    FilePreview.media_type, FilePreview.data, FilePreview.width, FilePreview.height
                ).where(FilePreview.file_id == file_id, FilePreview.max_side == max_side)
            )
        ).first()
        return images.PreparedImage(*row) if row is not None else None

    async def keep_preview(
        self, file_id: uuid.UUID, max_side: int, prepared: images.PreparedImage
    ) -> None:
        """Keeps (or replaces, made for another max_side) an image's prepared version."""
        dialect = self.session.get_bind().dialect.name
        make_insert = postgres_insert if dialect == "postgresql" else sqlite_insert
        values = {
            "max_side": max_side,
            "media_type": prepared.media_type,
            "data": prepared.data,
            "width": prepared.width,
            "height": prepared.height,
            "created_at": utcnow(),
        }
        await self.session.execute(
            make_insert(FilePreview)
            .values(file_id=file_id, **values)
            .on_conflict_do_update(index_elements=["file_id"], set_=values)
        )

    async def add_texts(self, texts: Mapping[uuid.UUID, DocumentText]) -> None:
        """Keeps documents' extracted text; a text another request stored first is kept."""
        if not texts:
            return
        dialect = self.session.get_bind().dialect.name
        make_insert = postgres_insert if dialect == "postgresql" else sqlite_insert
        now = utcnow()
        await self.session.execute(
            make_insert(FileText).on_conflict_do_nothing(index_elements=["file_id"]),
            [
                {"file_id": file_id, "text": t.text, "truncated": t.truncated, "created_at": now}
                for file_id, t in texts.items()
            ],
        )


def _by_message(rows: Iterable[tuple[uuid.UUID, File]]) -> dict[uuid.UUID, list[File]]:
    found: dict[uuid.UUID, list[File]] = {}
    for message_id, file in rows:
        found.setdefault(message_id, []).append(file)
    return found


# On every reply's and every message page's path: built once (constructing a statement costs
# about as much as running it).
_ATTACHED = (
    select(MessageAttachment.message_id, File)
    .join(File, File.id == MessageAttachment.file_id)
    .order_by(MessageAttachment.message_id, MessageAttachment.position)
)
_IN_CHAT = _ATTACHED.where(MessageAttachment.chat_id == bindparam("chat_id", type_=Uuid))
_OF_MESSAGES = _ATTACHED.where(
    MessageAttachment.message_id.in_(bindparam("message_ids", expanding=True))
)
