"""Importing chats exported elsewhere (POST /api/chats/import).

The upload is spooled to a temporary file first, with no database connection held (the body may
take minutes). Then conversations are read in batches in a worker thread (reader.py) and each
batch is written in one transaction: its new chats in a few multi-row INSERTs under a savepoint,
or, if that fails, one savepoint per conversation, so that a conversation the database refuses
is reported and the others of its batch still go in. A conversation is never half-imported.
"""

import logging
import uuid
from collections.abc import AsyncIterable

import anyio.to_thread
from sqlalchemy.exc import SQLAlchemyError

from app.chats.transfer.errors import ImportTooLarge, UnsupportedImport
from app.chats.transfer.formats import PARLEY
from app.chats.transfer.reader import ConversationReader, Failure, Read
from app.chats.transfer.repository import TransferRepository
from app.chats.transfer.schemas import ImportFailure, ImportSummary
from app.chats.transfer.upload import ImportReceiver, spool_file
from app.core.db import utcnow
from app.core.uow import UnitOfWork
from app.files.upload import FORM_OVERHEAD_BYTES, boundary_of
from app.users.models import User

logger = logging.getLogger("parley.imports")

# The summary lists this many failures at most (`failed` counts them all).
MAX_LISTED_FAILURES = 1000


class ImportService:
    def __init__(self, uow: UnitOfWork, *, max_bytes: int) -> None:
        self.uow = uow
        self.repository = uow.get(TransferRepository)
        self.max_bytes = max_bytes

    async def import_file(
        self,
        user: User,
        *,
        body: AsyncIterable[bytes],
        content_type: str | None,
        content_length: int | None,
    ) -> ImportSummary:
        if content_length is not None and content_length > self.max_bytes + FORM_OVERHEAD_BYTES:
            raise ImportTooLarge(self.max_bytes)  # before reading a byte of it
        boundary = boundary_of(content_type)
        user_id = user.id
        await self.uow.commit()  # no connection held while the body arrives
        spool = await anyio.to_thread.run_sync(spool_file)
        reader = ConversationReader(spool, user_id=user_id, now=utcnow(), max_bytes=self.max_bytes)
        try:
            receiver = ImportReceiver(boundary=boundary, spool=spool, max_bytes=self.max_bytes)
            await receiver.receive(body)
            if receiver.size == 0:
                raise UnsupportedImport("The file is empty.")
            await anyio.to_thread.run_sync(reader.open)
            assert reader.format is not None
            summary = ImportSummary(
                format=reader.format,
                conversations=0,
                imported=0,
                unchanged=0,
                failed=0,
                messages=0,
                skipped_messages=0,
                failures=[],
            )
            seen: set[tuple[str, str]] = set()
            while batch := await anyio.to_thread.run_sync(reader.next_batch):
                await self._write(user_id, batch, summary, seen)
                await self.uow.commit()
        finally:
            await anyio.to_thread.run_sync(reader.close)
        summary.failures.sort(key=lambda failure: failure.index)
        return summary

    async def _write(
        self,
        user_id: uuid.UUID,
        batch: list[Read | Failure],
        summary: ImportSummary,
        seen: set[tuple[str, str]],
    ) -> None:
        reads = [outcome for outcome in batch if isinstance(outcome, Read)]
        summary.conversations += sum(
            1 for outcome in batch if not (isinstance(outcome, Failure) and outcome.broken)
        )
        for outcome in batch:
            if isinstance(outcome, Failure):
                self._fail(summary, outcome.index, outcome.title, outcome.reason)
        keys = [(read.rows.source, read.rows.import_id) for read in reads]
        done = await self.repository.imported(user_id, keys)
        parley_ids = [
            uuid.UUID(read.rows.import_id) for read in reads if read.rows.source == PARLEY
        ]
        own = await self.repository.existing_ids(user_id, parley_ids) if parley_ids else set()
        new: list[Read] = []
        for read in reads:
            key = (read.rows.source, read.rows.import_id)
            # A Parley export of a chat still in this account is that chat: nothing to do.
            if (
                key in done
                or key in seen
                or (read.rows.source == PARLEY and uuid.UUID(key[1]) in own)
            ):
                summary.unchanged += 1
            else:
                new.append(read)
            seen.add(key)
        if not new:
            return
        try:
            async with self.uow.savepoint():
                await self.repository.insert_chats([read.rows.chat for read in new])
                await self.repository.insert_messages(
                    [message for read in new for message in read.rows.messages]
                )
            for read in new:
                self._count(summary, read)
            return
        except SQLAlchemyError:
            pass  # one of them was refused: find which, keeping the others
        for read in new:
            try:
                async with self.uow.savepoint():
                    await self.repository.insert_chats([read.rows.chat])
                    await self.repository.insert_messages(read.rows.messages)
            except SQLAlchemyError as exc:
                if "uq_chat_import" in str(exc) or "UNIQUE" in str(exc):
                    summary.unchanged += 1  # imported meanwhile by another request
                    continue
                logger.warning("the database refused an imported conversation", exc_info=True)
                self._fail(summary, read.index, read.rows.title, "The database refused it.")
            else:
                self._count(summary, read)

    @staticmethod
    def _count(summary: ImportSummary, read: Read) -> None:
        summary.imported += 1
        summary.messages += len(read.rows.messages)
        summary.skipped_messages += read.rows.skipped

    @staticmethod
    def _fail(summary: ImportSummary, index: int, title: str | None, reason: str) -> None:
        summary.failed += 1
        if len(summary.failures) < MAX_LISTED_FAILURES:
            summary.failures.append(ImportFailure(index=index, title=title, reason=reason))
