"""The files domain's long-lived parts: the storage backend, the limit on concurrent content
work, removing bytes nothing owns any more, and the sweep that finds what crashes left.

Bytes and rows stay consistent through file_pending_blob (see PendingBlob): an upload's row
is written before its first byte, deleting a file writes one in the same transaction, so bytes
are only ever removed after the database says nothing owns them, and a process that dies at
any point leaves a row that names what to remove.
"""

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import anyio

from app.core.background import BackgroundJobs, Supervisor
from app.core.config import Settings
from app.core.db import Database, utcnow
from app.core.uow import UnitOfWork, unit_of_work
from app.files import extract, images
from app.files.detect import DOCX, PDF
from app.files.models import FileKind
from app.files.repository import FileRepository, PendingBlobRepository
from app.files.sandbox import EXTRACT_WORKERS, ExtractionPool
from app.files.storage import Storage, StorageError, build_storage
from app.files.upload import ReceivedFile

logger = logging.getLogger("parley.files")

# Decoding images and checking uploads: at most this many at once per process (a decoded
# image may take tens of megabytes; more at once would only wait for the same cores).
# Documents' text is read elsewhere (self.extraction, worker processes), so neither waits for
# the other.
CONTENT_WORKERS = 2
# Rows handled per sweep batch; the sweep runs at most this often (seconds).
_SWEEP_BATCH = 500
_SWEEP_EVERY = 300.0


@dataclass(frozen=True)
class Inspection:
    """What an upload's content check found."""

    width: int | None = None
    height: int | None = None
    page_count: int | None = None


class FileStore:
    def __init__(self, settings: Settings, db: Database, *, storage: Storage | None = None) -> None:
        self.settings = settings
        self.db = db
        # Its own, so that shutdown waits for pending deletions before the storage closes.
        self.jobs = BackgroundJobs()
        self.storage = storage or build_storage(settings)
        self.content_limiter = anyio.CapacityLimiter(CONTENT_WORKERS)
        self.extraction = ExtractionPool(
            workers=EXTRACT_WORKERS, max_seconds=settings.extract_max_seconds
        )

    # --- content ---------------------------------------------------------------------------

    async def inspect(self, spool: Path, received: ReceivedFile) -> Inspection:
        """Checks the received file's content in a worker thread: images decode (dimensions),
        PDFs have a page tree (page count), a ZIP is a Word document."""
        file_type, name = received.file_type, received.name
        max_pixels = self.settings.image_max_pixels

        def check() -> Inspection:
            if file_type.kind == FileKind.IMAGE:
                info = images.inspect_image(
                    spool, name=name, file_type=file_type, max_pixels=max_pixels
                )
                return Inspection(width=info.width, height=info.height)
            if file_type == PDF:
                return Inspection(page_count=extract.count_pdf_pages(spool, name=name))
            if file_type == DOCX:
                extract.check_docx(spool, name=name)
            return Inspection()

        if file_type.is_text:
            return Inspection()
        return await anyio.to_thread.run_sync(check, limiter=self.content_limiter)

    # --- removing bytes --------------------------------------------------------------------

    def purge_after_commit(self, uow: UnitOfWork, keys: Sequence[uuid.UUID]) -> None:
        """Once `uow` commits (its pending rows for `keys` with it), removes the bytes in
        the background; if that fails, the sweep tries again later."""
        if not keys:
            return
        doomed = list(keys)

        async def purge() -> None:
            await self.purge(doomed)

        uow.after_commit(lambda: self.jobs.spawn("file-purge", purge))

    async def purge(self, keys: Sequence[uuid.UUID]) -> int:
        """Deletes the bytes under `keys`, then their pending rows; returns how many went.
        Keys whose bytes could not be deleted keep their rows for the next sweep."""
        gone: list[uuid.UUID] = []
        for key in keys:
            try:
                await self.storage.delete(key)
            except StorageError:
                logger.warning("could not delete a file's bytes", exc_info=True)
                continue
            gone.append(key)
        for start in range(0, len(gone), _SWEEP_BATCH):
            async with unit_of_work(self.db) as uow:
                await uow.get(PendingBlobRepository).forget(gone[start : start + _SWEEP_BATCH])
        return len(gone)

    async def forget_user(self, uow: UnitOfWork, user_id: uuid.UUID) -> None:
        """Account deletion: in the transaction that deletes the user (whose file rows go by
        ON DELETE CASCADE), marks every one of their files' bytes for deletion."""
        keys = await uow.get(FileRepository).keys_of_user(user_id)
        await uow.get(PendingBlobRepository).add_deleting(keys, user_id=None, now=utcnow())
        self.purge_after_commit(uow, keys)

    # --- the sweep -------------------------------------------------------------------------

    @property
    def stale_after(self) -> timedelta:
        """An upload runs at most FILE_UPLOAD_TIMEOUT_SECONDS; one older than twice that lost
        its process."""
        return timedelta(seconds=2 * self.settings.file_upload_timeout_seconds)

    async def sweep(self) -> int:
        """Removes what dead processes and failed deletions left: bytes of uploads that never
        finished, bytes of deleted files still in storage, spool files. Returns the count."""
        async with unit_of_work(self.db) as uow:
            await uow.get(PendingBlobRepository).expire_uploads(
                started_before=utcnow() - self.stale_after
            )
        removed = 0
        while True:
            async with unit_of_work(self.db) as uow:
                keys = await uow.get(PendingBlobRepository).deleting_keys(limit=_SWEEP_BATCH)
            purged = await self.purge(keys)
            removed += purged
            if len(keys) < _SWEEP_BATCH or purged == 0:
                break
        removed += await self.storage.sweep_spool(older_than=self.stale_after.total_seconds())
        if removed:
            logger.info("swept leftover file bytes", extra={"count": removed})
        return removed

    async def sweep_forever(self) -> None:
        """The periodic sweep, run by the supervisor while the store runs."""
        interval = min(self.settings.file_upload_timeout_seconds, _SWEEP_EVERY)
        while True:
            await asyncio.sleep(interval)
            try:
                await self.sweep()
            except Exception:
                logger.warning("file sweep failed", exc_info=True)

    @asynccontextmanager
    async def running(self, supervisor: Supervisor) -> AsyncIterator["FileStore"]:
        """Starts the storage and sweeps at start-up and periodically (a supervised loop);
        for the app's runtime."""
        await self.storage.start()
        try:
            try:
                await self.sweep()
            except Exception:
                logger.warning("start-up file sweep failed", exc_info=True)
            supervisor.start(SWEEP_LOOP, self.sweep_forever)
            try:
                yield self
            finally:
                await supervisor.stop(SWEEP_LOOP)
                await self.jobs.drain()
                await self.extraction.close()
        finally:
            await self.storage.close()


# The store's loop under the supervisor.
SWEEP_LOOP = "file-sweep"
