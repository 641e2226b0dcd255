"""The ingestion workers: background tasks of every app process that claim queued documents in
the database, and extract, chunk, embed and index them.

Off the request (a file added is only queued) and off the event loop (extraction runs in a
worker process given at most EXTRACT_MAX_SECONDS, chunking in a worker thread; embedding is
network I/O). Claims are fair between users: one user's documents never take every worker.
A claim is a lease in the database, renewed while the worker works: if the process dies, the
lease lapses and any worker takes the document over; after three such attempts it fails with
the reason. A document is `ready` only once its
chunks, vectors and status are written in one transaction, so a half-indexed file never shows
as ready.
"""

import asyncio
import logging
import uuid
from contextlib import suppress
from datetime import timedelta
from typing import TYPE_CHECKING

import anyio.to_thread

from app.core.background import Supervisor
from app.core.db import utcnow
from app.core.errors import AppError
from app.core.uow import UnitOfWork
from app.files import extract
from app.files.models import FileKind
from app.files.sandbox import ExtractJob
from app.files.storage import StorageError
from app.guardrails.pipeline import PII_LABELS
from app.guardrails.recorder import EventContext
from app.knowledge.chunking import chunk_pages
from app.knowledge.embeddings import TEXT_SPACE
from app.knowledge.errors import IngestionFailure
from app.knowledge.models import DocumentStatus, KnowledgeDocument
from app.knowledge.repository import DocumentRepository

if TYPE_CHECKING:
    from app.knowledge.parts import KnowledgeParts

logger = logging.getLogger("parley.knowledge")

# Seconds between looks for work when nothing woke the worker (another process may queue).
POLL_SECONDS = 2.0
SWEEP_EVERY = 300.0


class _LeaseLost(Exception):
    """Another worker took the document over (this one was too slow to renew its lease)."""


class IngestionWorkers:
    def __init__(self, runtime: "KnowledgeParts", count: int) -> None:
        self.runtime = runtime
        self.count = count
        self.wake = asyncio.Event()
        self.lease = timedelta(seconds=runtime.settings.ingest_lease_seconds)
        # A user's documents ingested at once (across processes): all workers but one, so that
        # another user's file never waits for one user's queue (at least one, of course).
        self.per_user = max(1, count - 1)

    @property
    def loops(self) -> list[str]:
        """The names of the workers' loops under the supervisor."""
        return [f"ingest-worker-{n}" for n in range(self.count)] + ["ingest-sweep"]

    def start(self, supervisor: Supervisor) -> None:
        """Runs the workers and the orphan sweep as supervised loops (a crash is logged and
        the loop restarted); stop them with `supervisor.stop(*workers.loops)`."""
        *workers, sweep = self.loops
        for name in workers:
            supervisor.start(name, self._run)
        supervisor.start(sweep, self._sweep_forever)

    def notify(self) -> None:
        self.wake.set()

    async def _run(self) -> None:
        owner = uuid.uuid4()
        while True:
            self.wake.clear()
            try:
                document_id = await self._claim(owner)
            except Exception:
                logger.warning("claiming a document to ingest failed", exc_info=True)
                document_id = None
            if document_id is None:
                with suppress(TimeoutError):
                    await asyncio.wait_for(self.wake.wait(), POLL_SECONDS)
                continue
            self.wake.set()  # there may be more: let the other workers look too
            await self.ingest(document_id, owner)

    async def _claim(self, owner: uuid.UUID) -> uuid.UUID | None:
        now = utcnow()
        async with self.runtime.db.transaction() as session:
            documents = DocumentRepository(session)
            failed = await documents.fail_abandoned(now)
            if failed:
                logger.warning("documents failed after repeated interrupted ingestion: %d", failed)
            return await documents.claim(
                owner, now=now, lease_until=now + self.lease, per_user=self.per_user
            )

    async def _sweep_forever(self) -> None:
        while True:
            try:
                await self.runtime.remove_orphans()
            except Exception:
                logger.warning("knowledge sweep failed", exc_info=True)
            await asyncio.sleep(SWEEP_EVERY)

    async def _heartbeat(self, document_id: uuid.UUID, owner: uuid.UUID) -> None:
        while True:
            await asyncio.sleep(self.lease.total_seconds() / 3)
            async with self.runtime.db.transaction() as session:
                held = await DocumentRepository(session).renew(
                    document_id, owner, utcnow() + self.lease
                )
            if not held:
                raise _LeaseLost()

    async def ingest(self, document_id: uuid.UUID, owner: uuid.UUID) -> None:
        """Ingests one claimed document to `ready`, or `failed` with the reason."""
        work = asyncio.create_task(self._ingest(document_id, owner))
        heartbeat = asyncio.create_task(self._heartbeat(document_id, owner))
        done, _ = await asyncio.wait({work, heartbeat}, return_when=asyncio.FIRST_COMPLETED)
        if heartbeat in done:
            work.cancel()
            logger.warning("lost the lease on a document", extra={"document_id": str(document_id)})
        heartbeat.cancel()
        await asyncio.gather(work, heartbeat, return_exceptions=True)
        if work.done() and not work.cancelled() and isinstance(work.exception(), _LeaseLost):
            logger.warning("lost the lease on a document", extra={"document_id": str(document_id)})

    async def _ingest(self, document_id: uuid.UUID, owner: uuid.UUID) -> None:
        try:
            await self._index(document_id, owner)
        except IngestionFailure as failure:
            await self._fail(document_id, owner, failure.code, failure.message)
        except AppError as exc:  # the document could not be read: encrypted, corrupt, empty
            await self._fail(document_id, owner, exc.code, exc.message)
        except StorageError:
            await self._fail(
                document_id, owner, "file_unreadable", "The file's bytes could not be read."
            )
        except (asyncio.CancelledError, _LeaseLost):
            raise
        except Exception:
            logger.exception("ingestion failed", extra={"document_id": str(document_id)})
            await self._fail(
                document_id, owner, "ingestion_failed", "The file could not be indexed."
            )

    async def _index(self, document_id: uuid.UUID, owner: uuid.UUID) -> None:
        runtime, settings = self.runtime, self.runtime.settings
        async with runtime.db.transaction() as session:
            documents = DocumentRepository(session)
            document = await documents.get(document_id)
            if document is None:
                return
            file = await documents.source_file(document)
            space, user_id = document.space, document.user_id
            if file is None:  # every collection let go of it meanwhile
                await runtime.delete_documents(UnitOfWork(session), [document_id])
                return
        if file.kind != FileKind.DOCUMENT:
            raise IngestionFailure("unsupported_kind", "Images cannot be indexed.")
        if space != TEXT_SPACE and (runtime.embedder is None or runtime.space != space):
            raise IngestionFailure(
                "reindex_needed",
                "The embedding model or its dimensions changed: re-index the collection.",
            )
        job = ExtractJob(
            kind="pages",
            media_type=file.media_type,
            name=file.name,
            max_pages=settings.rag_max_pages,
            max_chars=settings.rag_max_chars,
        )
        # In a worker process given at most EXTRACT_MAX_SECONDS (extraction_timeout past it).
        async with runtime.store.storage.local_file(file.storage_key) as path:
            handle = await anyio.to_thread.run_sync(path.open, "rb")
            try:
                paged: extract.PagedText = await runtime.store.extraction.run(handle, job)
            finally:
                await anyio.to_thread.run_sync(handle.close)
        chunks, truncated = await anyio.to_thread.run_sync(
            lambda: chunk_pages(
                paged.pages,
                size=settings.rag_chunk_tokens,
                overlap=settings.rag_chunk_overlap,
                max_chunks=settings.rag_max_chunks,
            )
        )
        cuts = list(paged.cuts)
        if truncated:
            cuts.append(f"Only the first {settings.rag_max_chunks} chunks were indexed.")
        if not chunks:
            raise IngestionFailure("document_has_no_text", f"“{file.name}” has no text to index.")
        vectors: list[list[float]] | None = None
        if space != TEXT_SPACE:
            assert runtime.embedder is not None
            texts, withheld = await self._for_embedding(
                [chunk.text for chunk in chunks], user_id=user_id, name=file.name
            )
            if withheld:
                cuts.append(
                    f"It holds {withheld}, which this server does not send to models: "
                    "left out of its embeddings, and never quoted in a prompt."
                )
            vectors = await runtime.embedder.embed(texts)
        async with runtime.db.transaction() as session:
            documents = DocumentRepository(session)
            held = await documents.held(document_id, owner)
            if held is None:
                raise _LeaseLost()
            ids = await documents.add_chunks(
                [
                    {
                        "document_id": document_id,
                        "position": chunk.position,
                        "text": chunk.text,
                        "page": chunk.page,
                        "section": chunk.section,
                    }
                    for chunk in chunks
                ]
            )
            if vectors is not None:
                await runtime.index.add_vectors(
                    session, user_id, list(zip(ids, vectors, strict=True))
                )
            _settle(held, DocumentStatus.READY)
            held.chunk_count = len(ids)
            held.page_count = paged.page_count
            held.cuts = cuts or None
        logger.info(
            "document indexed",
            extra={"document_id": str(document_id), "chunks": len(ids), "space": space},
        )

    async def _for_embedding(
        self, texts: list[str], *, user_id: uuid.UUID, name: str
    ) -> tuple[list[str], str]:
        """The chunks as the embedding endpoint may see them: personal data replaced by
        placeholders per PII_* (the index keeps the text as written; docs/knowledge.md), each
        kind recorded once for the document; and the kinds of `block` data it held, to say on
        the file."""
        guardrails = self.runtime.guardrails
        if guardrails is None:
            return texts, ""
        results = await anyio.to_thread.run_sync(
            lambda: [guardrails.for_embedding(text, point="untrusted") for text in texts]
        )
        counts: dict[str, int] = {}
        for _text, found in results:
            for kind, count in found.items():
                counts[kind] = counts.get(kind, 0) + count
        guardrails.record_embedding_redactions(
            counts, context=EventContext(user_id=user_id), name=name
        )
        withheld = guardrails.blocked_kinds(counts)
        return [text for text, _found in results], ", ".join(PII_LABELS[k] for k in withheld)

    async def _fail(
        self, document_id: uuid.UUID, owner: uuid.UUID, code: str, message: str
    ) -> None:
        async with self.runtime.db.transaction() as session:
            held = await DocumentRepository(session).held(document_id, owner)
            if held is not None:
                _settle(held, DocumentStatus.FAILED)
                held.error_code, held.error_message = code, message
        logger.info("document failed", extra={"document_id": str(document_id), "code": code})


def _settle(document: KnowledgeDocument, status: DocumentStatus) -> None:
    document.status = status
    document.lease_owner = None
    document.lease_until = None
    document.error_code = document.error_message = None
    document.updated_at = utcnow()
