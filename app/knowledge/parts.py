"""The knowledge domain's long-lived parts, started by the app's runtime (app/runtime.py): the
embedding client, the index, the retriever and the ingestion workers (runtime.knowledge, also
app.state.knowledge for the package's dependencies)."""

import logging
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import httpx

from app.core.background import Supervisor
from app.core.config import Settings
from app.core.db import Database
from app.core.metrics import Metrics
from app.core.uow import UnitOfWork, unit_of_work
from app.files.store import FileStore
from app.knowledge.embeddings import TEXT_SPACE, EmbeddingClient
from app.knowledge.index import KnowledgeIndex, build_index
from app.knowledge.ingestion import IngestionWorkers
from app.knowledge.repository import DocumentRepository
from app.knowledge.rerank import RerankClient
from app.knowledge.retrieval import Retriever
from app.knowledge.schemas import Retrieval

if TYPE_CHECKING:
    from app.guardrails.pipeline import GuardrailPipeline

logger = logging.getLogger("parley.knowledge")


@dataclass
class KnowledgeParts:
    settings: Settings
    db: Database
    store: FileStore
    index: KnowledgeIndex
    embedder: EmbeddingClient | None
    # The PII policies for what goes to the embedding endpoint (docs/knowledge.md).
    guardrails: "GuardrailPipeline | None" = None
    # RERANK_BASE_URL's client (None: no reranker), and where its fallbacks are counted.
    reranker: RerankClient | None = None
    metrics: Metrics | None = None
    retriever: Retriever = field(init=False)
    workers: IngestionWorkers = field(init=False)

    def __post_init__(self) -> None:
        if self.embedder is not None and not self.index.vectors:
            self.embedder = None  # no vector index here: full text only (prepare() logged why)
        self.retriever = Retriever(
            self.db,
            self.index,
            self.embedder,
            min_similarity=self.settings.rag_min_similarity,
            settings=self.settings,
            reranker=self.reranker,
            metrics=self.metrics,
        )
        self.workers = IngestionWorkers(self, self.settings.ingest_workers)

    @property
    def retrieval(self) -> Retrieval:
        return self.retriever.retrieval

    @property
    def space(self) -> str:
        """The embedding space new documents are indexed in."""
        return self.embedder.space if self.embedder is not None else TEXT_SPACE

    async def delete_documents(self, uow: UnitOfWork, document_ids: Sequence[uuid.UUID]) -> None:
        """Deletes documents with their chunks and vectors, in the unit's transaction."""
        if not document_ids:
            return
        documents = uow.get(DocumentRepository)
        await self.index.delete_vectors(uow.session, await documents.chunk_ids(document_ids))
        await documents.delete_ids(document_ids)

    async def remove_orphans(self) -> int:
        """Deletes the documents no collection lists any more, and stray vectors."""
        removed = 0
        while True:
            async with unit_of_work(self.db) as uow:
                orphans = await uow.get(DocumentRepository).orphans(limit=100)
                await self.delete_documents(uow, orphans)
                if not orphans:
                    await self.index.sweep_vectors(uow.session)
            removed += len(orphans)
            if len(orphans) < 100:
                return removed


@asynccontextmanager
async def running_knowledge(
    settings: Settings,
    db: Database,
    store: FileStore,
    http: httpx.AsyncClient,
    supervisor: Supervisor,
    guardrails: "GuardrailPipeline | None" = None,
    embedder: EmbeddingClient | None = None,
    metrics: Metrics | None = None,
) -> AsyncIterator[KnowledgeParts]:
    """Prepares the index, starts the ingestion workers under the supervisor; stops them at
    the end. `embedder`: the runtime's one embedding client (None: full text only); the
    reranker comes from RERANK_BASE_URL, its fallbacks counted in `metrics`."""
    index = build_index(db.engine.dialect.name, settings.embedding_dimensions)
    if embedder is not None:
        try:
            await index.prepare(db.engine)
        except Exception:
            logger.warning("the vector index could not be prepared: full text only", exc_info=True)
    parts = KnowledgeParts(
        settings=settings,
        db=db,
        store=store,
        index=index,
        embedder=embedder,
        guardrails=guardrails,
        reranker=RerankClient.from_settings(settings, http),
        metrics=metrics,
    )
    if embedder is None:
        logger.info("no embedding endpoint (EMBEDDING_BASE_URL): knowledge retrieval is full text")
    else:
        logger.info("knowledge retrieval: %s", parts.retrieval, extra={"space": parts.space})
    parts.workers.start(supervisor)
    try:
        yield parts
    finally:
        await supervisor.stop(*parts.workers.loops)
        await parts.retriever.close()
