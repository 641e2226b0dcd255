import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Uuid, delete, func, insert, literal, select, tuple_, update

from app.core.db import UTCDateTime
from app.core.repository import Repository
from app.files.models import BlobState, File, PendingBlob
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
