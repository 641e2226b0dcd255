"""Retrieval benchmark: the knowledge index at 100,000 chunks of 384 dimensions, on SQLite
(sqlite-vec + FTS5) and on Postgres (pgvector HNSW + tsvector).

    .venv/bin/python bench/retrieval.py                 # both, 100,000 chunks
    .venv/bin/python bench/retrieval.py --db sqlite --chunks 20000

The data are synthetic: 1,000 documents of 100 chunks (5 collections x 200 files, one user),
each chunk 60 words from a 5,000-word vocabulary and a unit vector near one of 200 topic centres.
Postgres is a Postgres 16 with pgvector started by the `pgserver` package (a temporary data
directory). It measures, through Parley's own index and Retriever:

- ingestion: chunks per second written (chunks, vectors and the full-text index; no embedding);
- hybrid top-10 search latency (one vector and one full-text query, fused) at 1 and 10
  concurrent searches, p50 and p99, over the 5 collections;
- recall@10 of the vector search against exact search (brute force in Python);
- the database's size;
- the time retrieval adds to a reply's first token: Retriever.retrieve() (embed the question at
  the fake upstream, search, fuse) minus the embedding request's own time, and the number of
  embedding requests per message (counted at the fake upstream).
"""

import argparse
import asyncio
import math
import os
import random
import shutil
import statistics
import struct
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import insert, text  # noqa: E402
from sqlalchemy.ext.asyncio import AsyncSession  # noqa: E402

from app.core.config import Settings  # noqa: E402
from app.core.db import Database, utcnow  # noqa: E402
from app.files.models import File  # noqa: E402
from app.knowledge.embeddings import EmbeddingClient  # noqa: E402
from app.knowledge.index import build_index  # noqa: E402
from app.knowledge.models import (  # noqa: E402
    Collection,
    CollectionFile,
    KnowledgeChunk,
    KnowledgeDocument,
)
from app.knowledge.retrieval import Retriever  # noqa: E402
from app.users.models import User  # noqa: E402
from tests.support.database import migrate  # noqa: E402
from tests.support.fake_upstream import run_fake_upstream  # noqa: E402

DIM = 384
COLLECTIONS, FILES_PER_COLLECTION = 5, 200
TOPICS = 200
MODEL = "bench-embed"


def unit(vector: list[float]) -> list[float]:
    norm = math.sqrt(sum(x * x for x in vector)) or 1.0
    return [x / norm for x in vector]


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


async def exact_top10(
    session: AsyncSession, dialect: str, user_id: uuid.UUID, vector: list[float]
) -> set[int]:
    """The true 10 nearest, by a full scan (no vector index)."""
    if dialect == "sqlite":
        rows = await session.execute(
            text(
                f"SELECT chunk_id FROM knowledge_vec_{DIM} WHERE user_id = :u"
                " ORDER BY vec_distance_cosine(embedding, :v) LIMIT 10"
            ),
            {"u": user_id.hex, "v": struct.pack(f"{DIM}f", *vector)},
        )
    else:
        await session.execute(text("SET LOCAL enable_indexscan = off"))
        await session.execute(text("SET LOCAL enable_bitmapscan = off"))
        literal = "[" + ",".join(repr(x) for x in vector) + "]"
        rows = await session.execute(
            text(
                f"SELECT chunk_id FROM knowledge_embedding WHERE dimensions = {DIM}"
                f" ORDER BY (embedding::vector({DIM})) <=> CAST(:v AS vector({DIM})) LIMIT 10"
            ),
            {"v": literal},
        )
    return {int(row[0]) for row in rows}


class Data:
    def __init__(self, seed: int = 7) -> None:
        self.rng = random.Random(seed)
        self.centres = [unit([self.rng.gauss(0, 1) for _ in range(DIM)]) for _ in range(TOPICS)]
        self.vocabulary = [f"w{n:04d}" for n in range(5000)]

    def vector(self) -> list[float]:
        centre = self.rng.choice(self.centres)
        return unit([c + self.rng.gauss(0, 0.05) for c in centre])

    def words(self, count: int) -> str:
        return " ".join(self.rng.choices(self.vocabulary, k=count))


async def build(
    db: Database, chunks: int, data: Data
) -> tuple[uuid.UUID, list[uuid.UUID], float, list[tuple[int, list[float]]]]:
    index = build_index(db.engine.dialect.name, DIM)
    await index.prepare(db.engine)
    user_id = uuid.uuid4()
    now = utcnow()
    collection_ids = [uuid.uuid4() for _ in range(COLLECTIONS)]
    documents = COLLECTIONS * FILES_PER_COLLECTION
    per_document = max(1, chunks // documents)
    async with db.transaction() as session:
        session.add(
            User(
                id=user_id,
                email=f"bench-{user_id.hex[:8]}@example.com",
                display_name="Bench",
                password_hash="x",
            )
        )
        await session.flush()
        for cid in collection_ids:
            session.add(
                Collection(id=cid, user_id=user_id, name="bench", created_at=now, updated_at=now)
            )
        await session.flush()
    kept: list[tuple[int, list[float]]] = []
    elapsed = 0.0
    space = f"{MODEL}@{DIM}"
    for number in range(documents):
        file_id, document_id = uuid.uuid4(), uuid.uuid4()
        rows = [
            {
                "document_id": document_id,
                "position": p,
                "text": data.words(60),
                "page": None,
                "section": None,
            }
            for p in range(per_document)
        ]
        vectors = [data.vector() for _ in rows]
        started = time.perf_counter()
        async with db.transaction() as session:
            session.add(
                File(
                    id=file_id,
                    user_id=user_id,
                    name=f"doc-{number}.txt",
                    media_type="text/plain",
                    kind="document",
                    size_bytes=1,
                    sha256=f"{number:064x}",
                    storage_key=uuid.uuid4(),
                    created_at=now,
                )
            )
            session.add(
                KnowledgeDocument(
                    id=document_id,
                    user_id=user_id,
                    sha256=f"{number:064x}",
                    space=space,
                    status="ready",
                    chunk_count=per_document,
                    attempts=1,
                    created_at=now,
                    updated_at=now,
                )
            )
            await session.flush()
            session.add(
                CollectionFile(
                    collection_id=collection_ids[number % COLLECTIONS],
                    file_id=file_id,
                    document_id=document_id,
                    added_at=now,
                )
            )
            result = await session.execute(
                insert(KnowledgeChunk).returning(KnowledgeChunk.id, sort_by_parameter_order=True),
                rows,
            )
            ids = [int(r[0]) for r in result]
            await index.add_vectors(session, user_id, list(zip(ids, vectors, strict=True)))
        elapsed += time.perf_counter() - started
        kept.extend(zip(ids, vectors, strict=True))
    return user_id, collection_ids, per_document * documents / elapsed, kept


async def run_backend(name: str, url: str, args: argparse.Namespace) -> dict[str, str]:
    migrate(url)
    settings = Settings(_env_file=None, database_url=url, db_pool_size=20)  # type: ignore[call-arg]
    db = Database(settings)
    data = Data()
    user_id, collection_ids, rate, vectors = await build(db, args.chunks, data)
    # Fresh statistics, as autovacuum (Postgres) or PRAGMA optimize (SQLite) would have them.
    async with db.engine.connect() as connection:
        await connection.execute(text("ANALYZE"))
        await connection.commit()
    index = build_index(db.engine.dialect.name, DIM)
    await index.prepare(db.engine)
    async with run_fake_upstream() as fake:
        fake.state.embedding_dimensions = DIM
        import httpx

        async with httpx.AsyncClient() as http:
            embedder = EmbeddingClient(
                http=http, base_url=fake.base_url, model=MODEL, dimensions=DIM
            )
            # With the settings, as the app builds it: the read connections (SQLite) and the
            # full-text cap (Postgres), RAG_READ_CONNECTIONS and RAG_TEXT_CANDIDATES.
            retriever = Retriever(db, index, embedder, min_similarity=-1.0, settings=settings)
            queries = [(data.vector(), data.words(4)) for _ in range(args.queries)]

            async def one(q: tuple[list[float], str]) -> float:
                started = time.perf_counter()
                await retriever.search(
                    user_id=user_id,
                    collection_ids=collection_ids,
                    query=q[1],
                    top_k=10,
                    vector=q[0],
                )
                return (time.perf_counter() - started) * 1000

            for q in queries[:10]:
                await one(q)  # warm-up
            single = [await one(q) for q in queries]
            ten: list[float] = []
            for start in range(0, len(queries), 10):
                ten += await asyncio.gather(*(one(q) for q in queries[start : start + 10]))
            # recall@10 of the vector search against an exact scan done by the database itself
            hits = 0
            sample = queries[: args.recall_queries]
            for vector, _ in sample:
                async with db.transaction() as session:
                    found = await index.vector_search(
                        session,
                        user_id=user_id,
                        collection_ids=collection_ids,
                        space=embedder.space,
                        vector=vector,
                        limit=10,
                    )
                    exact = await exact_top10(session, db.engine.dialect.name, user_id, vector)
                hits += len({c.chunk_id for c in found} & exact)
            recall = hits / (10 * len(sample))
            # time retrieval adds to the first token
            added: list[float] = []
            before = len(fake.state.embedding_requests)
            for _ in range(20):
                started = time.perf_counter()
                await embedder.embed_one("how do I reset the device")
                embed_ms = (time.perf_counter() - started) * 1000
                started = time.perf_counter()
                await retriever.retrieve(
                    user_id=user_id,
                    collection_ids=collection_ids,
                    question="how do I reset the device " + data.words(3),
                    top_k=5,
                )
                added.append((time.perf_counter() - started) * 1000 - embed_ms)
            per_message = (len(fake.state.embedding_requests) - before - 20) / 20
            await retriever.close()
    async with db.transaction() as session:
        if db.engine.dialect.name == "sqlite":
            size = _sqlite_size(url.split("///", 1)[1])
        else:
            size = int(
                await session.scalar(text("SELECT pg_database_size(current_database())")) or 0
            )
    await db.dispose()
    total = len(vectors)
    return {
        "database": name,
        "chunks": f"{total:,}",
        "ingest chunks/s": f"{rate:,.0f}",
        "p50/p99 ms (1)": f"{statistics.median(single):.1f} / {percentile(single, 99):.1f}",
        "p50/p99 ms (10)": f"{statistics.median(ten):.1f} / {percentile(ten, 99):.1f}",
        "recall@10": f"{recall:.3f}",
        "size per 100k": f"{size / total * 100_000 / 2**20:,.0f} MiB",
        "TTFT added p50/p99 ms": f"{statistics.median(added):.1f} / {percentile(added, 99):.1f}",
        "embeddings/message": f"{per_message:.0f}",
    }


def _sqlite_size(path: str) -> int:
    """The database file and its write-ahead log."""
    return sum(os.path.getsize(p) for p in (path, path + "-wal") if os.path.exists(p))


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--chunks", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--recall-queries", type=int, default=20)
    args = parser.parse_args()
    rows = []
    tmp = Path(tempfile.mkdtemp(prefix="parley-bench-"))
    try:
        if args.db in ("sqlite", "both"):
            rows.append(
                await run_backend(
                    "SQLite (sqlite-vec)", f"sqlite+aiosqlite:///{tmp}/bench.db", args
                )
            )
            print(rows[-1], flush=True)
        if args.db in ("postgres", "both"):
            import pgserver

            root = Path(f"/tmp/parley-bench-pg-{os.getpid()}")
            server = pgserver.get_server(root, cleanup_mode="delete")
            try:
                server.psql('CREATE DATABASE "bench";')
                rows.append(
                    await run_backend(
                        "Postgres 16 (pgvector)",
                        f"postgresql+asyncpg://postgres@/bench?host={root}",
                        args,
                    )
                )
                print(rows[-1], flush=True)
            finally:
                server.cleanup()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    header = list(rows[0])
    print("| " + " | ".join(header) + " |")
    print("|" + " --- |" * len(header))
    for row in rows:
        print("| " + " | ".join(row[h] for h in header) + " |")


if __name__ == "__main__":
    asyncio.run(main())
