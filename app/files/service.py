import logging
import uuid
from collections.abc import AsyncIterable
from typing import Literal

import anyio
from pydantic import AwareDatetime
from starlette.requests import ClientDisconnect

from app.core.cursor import Cursor
from app.core.db import utcnow
from app.core.uow import UnitOfWork
from app.files.errors import (
    FileInUse,
    FileNotFound,
    FileTooLarge,
    StorageQuotaExceeded,
    StorageUnavailable,
    UploadIncomplete,
    UploadTimeout,
)
from app.files.models import BlobState, File, FileKind, PendingBlob
from app.files.repository import (
    AttachmentRepository,
    FileKey,
    FileRepository,
    PendingBlobRepository,
)
from app.files.schemas import FilePage, FileRead
from app.files.storage import BlobNotFound, BlobStream, StorageError
from app.files.store import FileStore
from app.files.upload import FORM_OVERHEAD_BYTES, UploadReceiver, boundary_of
from app.users.models import User

logger = logging.getLogger("parley.files")


class FileCursor(Cursor):
    k: Literal["files"] = "files"
    t: AwareDatetime
    i: uuid.UUID

    @classmethod
    def after(cls, file: File) -> "FileCursor":
        return cls(t=file.created_at, i=file.id)

    def key(self) -> FileKey:
        return FileKey(created_at=self.t, id=self.i)


class FileService:
    def __init__(self, uow: UnitOfWork, *, store: FileStore) -> None:
        self.uow = uow
        self.files = uow.get(FileRepository)
        self.blobs = uow.get(PendingBlobRepository)
        self.attachments = uow.get(AttachmentRepository)
        self.store = store

    # --- upload --------------------------------------------------------------------------------

    async def upload(
        self,
        user: User,
        *,
        body: AsyncIterable[bytes],
        content_type: str | None,
        content_length: int | None,
    ) -> File:
        """Receives a multipart upload into storage and records it; refused (and nothing kept)
        when it is too large, over quota, of a type not allowed, or damaged."""
        settings = self.store.settings
        max_bytes = settings.file_max_bytes
        if content_length is not None and content_length > max_bytes + FORM_OVERHEAD_BYTES:
            raise FileTooLarge(max_bytes)  # before reading a byte of it
        boundary = boundary_of(content_type)
        key = uuid.uuid4()
        # The request's size bounds the file's: reserve that much of the quota up front.
        await self._reserve(user, key, min(content_length or max_bytes, max_bytes))
        # Streaming is the exception to "the request commits once": the reservation commits
        # before the body is read, and no database connection is held while it arrives.
        await self.uow.commit()
        storage = self.store.storage
        spool = storage.spool_path(key)
        try:
            with anyio.fail_after(settings.file_upload_timeout_seconds):
                receiver = UploadReceiver(boundary=boundary, spool=spool, max_bytes=max_bytes)
                received = await receiver.receive(body)
                found = await self.store.inspect(spool, received)
                await storage.put(key, spool, size=received.size, sha256=received.sha256)
            file = File(
                user_id=user.id,
                name=received.name,
                media_type=received.file_type.media_type,
                kind=received.file_type.kind,
                size_bytes=received.size,
                sha256=received.sha256,
                width=found.width,
                height=found.height,
                page_count=found.page_count,
                storage_key=key,
                created_at=utcnow(),
            )
            async with self.store.db.transaction() as session:
                if not await PendingBlobRepository(session).claim_upload(key):
                    raise UploadTimeout()  # the sweep took it for a dead upload
                await FileRepository(session).add(file)
        except BaseException as exc:
            with anyio.CancelScope(shield=True):
                await self._discard(key)
            if isinstance(exc, TimeoutError):
                raise UploadTimeout() from exc
            if isinstance(exc, ClientDisconnect):
                raise UploadIncomplete() from exc
            if isinstance(exc, StorageError):
                logger.error("storing an upload failed", exc_info=True)
                raise StorageUnavailable() from exc
            raise
        finally:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(lambda: spool.unlink(missing_ok=True))
        return file

    async def _reserve(self, user: User, key: uuid.UUID, size: int) -> None:
        """Holds `size` bytes of the user's quota for an upload, atomically: under the user's
        lock, concurrent uploads see each other's reservations."""
        quota = self.store.settings.storage_quota_bytes
        await self.uow.commit()  # the lock comes first in its transaction
        await self.blobs.lock_user(user.id)
        used = await self.blobs.bytes_used(user.id)
        if used + size > quota:
            raise StorageQuotaExceeded(quota=quota, used=used)
        await self.blobs.add(
            PendingBlob(
                storage_key=key,
                user_id=user.id,
                state=BlobState.UPLOADING,
                reserved_bytes=size,
                created_at=utcnow(),
            )
        )

    async def _discard(self, key: uuid.UUID) -> None:
        """A failed upload: its bytes (if any reached storage) and its reservation go. If the
        storage cannot be reached, the reservation stays for the sweep to finish the job."""
        try:
            await self.store.purge([key])
        except Exception:
            logger.warning("could not discard a failed upload", exc_info=True)

    # --- reading -------------------------------------------------------------------------------

    async def get_owned_file(self, user: User, file_id: uuid.UUID) -> File:
        """The user's file, or FileNotFound (also for another user's file: never 403)."""
        file = await self.files.get_for_user(user.id, file_id)
        if file is None:
            raise FileNotFound()
        return file

    async def list_files(
        self, user: User, *, limit: int, cursor: str | None = None, kind: FileKind | None = None
    ) -> FilePage:
        """One page of the user's files, newest first."""
        files = await self.files.list_page(
            user.id,
            limit=limit + 1,
            after=FileCursor.decode(cursor).key() if cursor else None,
            kind=kind,
        )
        page = files[:limit]
        return FilePage(
            items=[FileRead.model_validate(file) for file in page],
            next_cursor=FileCursor.after(page[-1]).encode() if len(files) > limit else None,
        )

    async def open_content(self, file: File) -> BlobStream:
        """The file's bytes, as a stream to send (after the request's transaction has ended)."""
        try:
            return await self.store.storage.open(file.storage_key)
        except BlobNotFound as exc:
            logger.error("a file's bytes are missing from storage", extra={"file_id": str(file.id)})
            raise StorageUnavailable("The file's content is missing from storage.") from exc
        except StorageError as exc:
            logger.error("reading a file from storage failed", exc_info=True)
            raise StorageUnavailable() from exc

    # --- deleting ------------------------------------------------------------------------------

    async def delete_file(self, file: File) -> None:
        """Deletes the file's row now and its bytes once that has committed. A file attached
        to messages is kept (FileInUse, 409): a chat's history never loses what it was about."""
        # Locked first (Postgres), so that a message attaching it meanwhile either committed
        # before (and is counted) or finds the file gone (404).
        if not await self.files.lock_for_delete(file.id):
            raise FileNotFound()
        messages, chats = await self.attachments.use_of(file.id)
        if messages:
            raise FileInUse(file.name, messages=messages, chats=chats)
        await self.files.delete(file)
        await self.blobs.add_deleting([file.storage_key], user_id=file.user_id, now=utcnow())
        self.store.purge_after_commit(self.uow, [file.storage_key])
