"""The index, in the app's own database: full text and vectors, per dialect.

- SQLite: FTS5 (knowledge_chunk_search, migration 0009) and sqlite-vec's vec0 table
  knowledge_vec_<dimensions>, partitioned by user, cosine distance (exact: vec0 scans), with
  knowledge_vec_<dimensions>_code beside it: each vector's 7-bit-per-dimension code (codes.py),
  searched by Hamming distance for candidates that the float vectors then rank exactly.
- Postgres: knowledge_chunk.text_search, a stored to_tsvector('english', text) with a GIN
  index (0009), and pgvector's
  knowledge_embedding with one HNSW index (cosine) per dimension, a partial expression index.

Each search is one statement per index over every collection asked for at once, restricted to
the user's own collections and to documents that are ready; vectors are compared only with
vectors of the same embedding space (model and dimensions).
"""

import logging
import re
import struct
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Uuid, bindparam, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from app.core import sqlite as sqlite_support
from app.knowledge.codes import code_bits, quantize

logger = logging.getLogger("parley.knowledge")

WORD = re.compile(r"[^\W_]+")
MAX_QUERY_WORDS = 32

# Rows of one user's chunks inside the collections asked for, ready to be searched.
_MEMBER = (
    "EXISTS (SELECT 1 FROM collection_file cf"
    " JOIN collection col ON col.id = cf.collection_id"
    " JOIN knowledge_document d ON d.id = cf.document_id"
    " WHERE cf.document_id = c.document_id AND col.user_id = :user_id"
    " AND cf.collection_id IN :collection_ids AND d.status = 'ready'{space})"
)


def query_words(query: str) -> list[str]:
    words = [w.casefold()[:64] for w in WORD.findall(query)]
    return list(dict.fromkeys(words))[:MAX_QUERY_WORDS]


def _member(space: bool) -> str:
    return _MEMBER.format(space=" AND d.space = :space" if space else "")


def _params(user_id: uuid.UUID, collection_ids: Sequence[uuid.UUID]) -> list[object]:
    return [
        bindparam("user_id", user_id, type_=Uuid()),
        bindparam("collection_ids", list(collection_ids), type_=Uuid(), expanding=True),
    ]


@dataclass
class Candidate:
    chunk_id: int
    value: float  # distance (vectors, lower is better) or rank score (text, higher is better)


class KnowledgeIndex:
    """Full-text search, and vector search where the database has a vector index."""

    dialect = "none"

    def __init__(self, dimensions: int) -> None:
        self.dimensions = dimensions
        self.vectors = False  # set by prepare()

    async def prepare(self, engine: AsyncEngine) -> None:
        """Makes the vector index for EMBEDDING_DIMENSIONS if the database can hold one."""

    async def add_vectors(
        self, session: AsyncSession, user_id: uuid.UUID, rows: Sequence[tuple[int, list[float]]]
    ) -> None:
        raise NotImplementedError

    async def delete_vectors(self, session: AsyncSession, chunk_ids: Sequence[int]) -> None:
        """Vectors of chunks about to be deleted (Postgres' go with them by foreign key)."""

    async def sweep_vectors(self, session: AsyncSession) -> None:
        """Removes vectors whose chunk is gone (their user or document was deleted)."""

    async def vector_search(
        self,
        session: AsyncSession,
        *,
        user_id: uuid.UUID,
        collection_ids: Sequence[uuid.UUID],
        space: str,
        vector: list[float],
        limit: int,
    ) -> list[Candidate]:
        return []

    async def text_search(
        self,
        session: AsyncSession,
        *,
        user_id: uuid.UUID,
        collection_ids: Sequence[uuid.UUID],
        words: Sequence[str],
        limit: int,
        candidates: int | None = None,
    ) -> list[Candidate]:
        """The best `limit` chunks matching any of the words; `candidates` caps how many
        matching chunks are ranked for that, where the ranking costs (Postgres)."""
        raise NotImplementedError


def _f32(vector: Sequence[float]) -> bytes:
    return struct.pack(f"{len(vector)}f", *vector)


def _unpack(blob: bytes) -> tuple[float, ...]:
    return struct.unpack(f"{len(blob) // 4}f", blob)


class SqliteIndex(KnowledgeIndex):
    dialect = "sqlite"

    # Candidates the codes' Hamming search hands to the exact ranking, at least.
    CODE_CANDIDATES = 150

    @property
    def table(self) -> str:
        return f"knowledge_vec_{self.dimensions}"

    @property
    def code_table(self) -> str:
        return f"knowledge_vec_{self.dimensions}_code"

    async def prepare(self, engine: AsyncEngine) -> None:
        if not sqlite_support.load_vector_extension():
            return
        async with engine.begin() as connection:
            await connection.execute(
                text(
                    f"CREATE VIRTUAL TABLE IF NOT EXISTS {self.table} USING vec0("
                    "chunk_id INTEGER PRIMARY KEY, "
                    f"embedding float[{self.dimensions}] distance_metric=cosine, "
                    "user_id TEXT PARTITION KEY)"
                )
            )
            # Vectors indexed before this table existed got their codes from migration 0014.
            await connection.execute(
                text(
                    f"CREATE VIRTUAL TABLE IF NOT EXISTS {self.code_table} USING vec0("
                    "chunk_id INTEGER PRIMARY KEY, "
                    f"embedding bit[{code_bits(self.dimensions)}], "
                    "user_id TEXT PARTITION KEY)"
                )
            )
        self.vectors = True

    async def add_vectors(
        self, session: AsyncSession, user_id: uuid.UUID, rows: Sequence[tuple[int, list[float]]]
    ) -> None:
        if not rows:
            return
        stored = [(chunk_id, _f32(vector)) for chunk_id, vector in rows]
        await session.execute(
            text(f"INSERT INTO {self.table} (chunk_id, embedding, user_id) VALUES (:c, :e, :u)"),
            [{"c": chunk_id, "e": blob, "u": user_id.hex} for chunk_id, blob in stored],
        )
        # Coded as stored (float32), so a code never depends on who wrote it (migration 0014).
        await session.execute(
            text(
                f"INSERT INTO {self.code_table} (chunk_id, embedding, user_id)"
                " VALUES (:c, vec_bit(:e), :u)"
            ),
            [
                {"c": chunk_id, "e": quantize(_unpack(blob)), "u": user_id.hex}
                for chunk_id, blob in stored
            ],
        )

    async def delete_vectors(self, session: AsyncSession, chunk_ids: Sequence[int]) -> None:
        if not self.vectors or not chunk_ids:
            return
        for start in range(0, len(chunk_ids), 500):
            for table in (self.table, self.code_table):
                await session.execute(
                    text(f"DELETE FROM {table} WHERE chunk_id IN :ids").bindparams(
                        bindparam("ids", list(chunk_ids[start : start + 500]), expanding=True)
                    )
                )

    async def sweep_vectors(self, session: AsyncSession) -> None:
        if self.vectors:
            for table in (self.table, self.code_table):
                await session.execute(
                    text(
                        f"DELETE FROM {table}"
                        " WHERE chunk_id NOT IN (SELECT id FROM knowledge_chunk)"
                    )
                )

    async def vector_search(
        self,
        session: AsyncSession,
        *,
        user_id: uuid.UUID,
        collection_ids: Sequence[uuid.UUID],
        space: str,
        vector: list[float],
        limit: int,
    ) -> list[Candidate]:
        if not self.vectors:
            return []
        # The user's nearest codes first (Hamming distance; vec0 allows k up to 4096), ranked
        # again by the exact cosine distance of their float vectors (looked up by chunk id),
        # then the ones in the collections asked for.
        statement = text(
            f"WITH near AS MATERIALIZED (SELECT chunk_id FROM {self.code_table}"
            " WHERE embedding MATCH vec_bit(:code) AND k = :k AND user_id = :user_hex),"
            " knn AS MATERIALIZED (SELECT near.chunk_id,"
            " vec_distance_cosine(v.embedding, :vector) AS distance"
            f" FROM near JOIN {self.table} v ON v.chunk_id = near.chunk_id)"
            " SELECT knn.chunk_id, knn.distance FROM knn"
            " JOIN knowledge_chunk c ON c.id = knn.chunk_id"
            f" WHERE {_member(space=True)} ORDER BY knn.distance LIMIT :limit"
        ).bindparams(*_params(user_id, collection_ids))  # type: ignore[arg-type]
        stored = _f32(vector)
        rows = await session.execute(
            statement,
            {
                "code": quantize(_unpack(stored)),
                "vector": stored,
                "k": min(4096, max(limit * 4, self.CODE_CANDIDATES)),
                "user_hex": user_id.hex,
                "space": space,
                "limit": limit,
            },
        )
        return [Candidate(int(row[0]), float(row[1])) for row in rows]

    async def text_search(
        self,
        session: AsyncSession,
        *,
        user_id: uuid.UUID,
        collection_ids: Sequence[uuid.UUID],
        words: Sequence[str],
        limit: int,
        candidates: int | None = None,
    ) -> list[Candidate]:
        # FTS5 ranks inside its own index (bm25 while it walks the matches): no cap needed.
        match = " OR ".join(f'"{word}"' for word in words)
        statement = text(
            "SELECT c.id, -bm25(knowledge_chunk_search) AS score FROM knowledge_chunk_search s"
            " JOIN knowledge_chunk c ON c.id = s.rowid"
            f" WHERE knowledge_chunk_search MATCH :match AND {_member(space=False)}"
            " ORDER BY bm25(knowledge_chunk_search) LIMIT :limit"
        ).bindparams(*_params(user_id, collection_ids))  # type: ignore[arg-type]
        rows = await session.execute(statement, {"match": match, "limit": limit})
        return [Candidate(int(row[0]), float(row[1])) for row in rows]


def _pgvector(vector: Sequence[float]) -> str:
    return "[" + ",".join(repr(float(x)) for x in vector) + "]"


class PostgresIndex(KnowledgeIndex):
    dialect = "postgresql"
    # HNSW candidates per search (pgvector's hnsw.ef_search): more than asked for, since the
    # index returns the nearest of everyone's vectors before the user and collections filter.
    EF_SEARCH = 200

    async def prepare(self, engine: AsyncEngine) -> None:
        async with engine.begin() as connection:
            exists = await connection.scalar(text("SELECT to_regclass('knowledge_embedding')"))
            if exists is None:
                logger.warning(
                    "no pgvector table (knowledge_embedding) on this Postgres: knowledge "
                    "retrieval is full text only (install pgvector, then migrate 0009 again; "
                    "see docs/knowledge.md)"
                )
                return
            d = self.dimensions
            await connection.execute(
                text(
                    f"CREATE INDEX IF NOT EXISTS ix_knowledge_embedding_hnsw_{d}"
                    f" ON knowledge_embedding USING hnsw ((embedding::vector({d}))"
                    f" vector_cosine_ops) WHERE dimensions = {d}"
                )
            )
        self.vectors = True

    async def add_vectors(
        self, session: AsyncSession, user_id: uuid.UUID, rows: Sequence[tuple[int, list[float]]]
    ) -> None:
        if rows:
            await session.execute(
                text(
                    "INSERT INTO knowledge_embedding (chunk_id, user_id, dimensions, embedding)"
                    " VALUES (:c, :u, :d, CAST(:e AS vector))"
                ).bindparams(bindparam("u", type_=Uuid())),
                [
                    {"c": chunk_id, "u": user_id, "d": len(vector), "e": _pgvector(vector)}
                    for chunk_id, vector in rows
                ],
            )

    async def vector_search(
        self,
        session: AsyncSession,
        *,
        user_id: uuid.UUID,
        collection_ids: Sequence[uuid.UUID],
        space: str,
        vector: list[float],
        limit: int,
    ) -> list[Candidate]:
        if not self.vectors:
            return []
        d = self.dimensions
        distance = f"(e.embedding::vector({d})) <=> CAST(:vector AS vector({d}))"
        await session.execute(text(f"SET LOCAL hnsw.ef_search = {max(self.EF_SEARCH, limit)}"))
        statement = text(
            f"WITH knn AS MATERIALIZED (SELECT e.chunk_id, {distance} AS distance"
            f" FROM knowledge_embedding e WHERE e.dimensions = {d} AND e.user_id = :user_id"
            f" ORDER BY {distance} LIMIT :k)"
            " SELECT knn.chunk_id, knn.distance FROM knn"
            " JOIN knowledge_chunk c ON c.id = knn.chunk_id"
            f" WHERE {_member(space=True)} ORDER BY knn.distance LIMIT :limit"
        ).bindparams(*_params(user_id, collection_ids))  # type: ignore[arg-type]
        rows = await session.execute(
            statement,
            {
                "vector": _pgvector(vector),
                "k": max(self.EF_SEARCH, limit),
                "space": space,
                "limit": limit,
            },
        )
        return [Candidate(int(row[0]), float(row[1])) for row in rows]

    async def text_search(
        self,
        session: AsyncSession,
        *,
        user_id: uuid.UUID,
        collection_ids: Sequence[uuid.UUID],
        words: Sequence[str],
        limit: int,
        candidates: int | None = None,
    ) -> list[Candidate]:
        # ts_rank_cd reads each matching chunk's tsvector: a query of common words matches
        # thousands. At most `candidates` of them (as the GIN index yields them) are ranked.
        statement = text(
            "SELECT m.id, ts_rank_cd(m.text_search, q) AS score"
            " FROM (SELECT c.id, c.text_search FROM knowledge_chunk c"
            " WHERE c.text_search @@ to_tsquery('english', :match)"
            f" AND {_member(space=False)} LIMIT :candidates) m,"
            " to_tsquery('english', :match) q"
            " ORDER BY score DESC LIMIT :limit"
        ).bindparams(*_params(user_id, collection_ids))  # type: ignore[arg-type]
        rows = await session.execute(
            statement,
            {
                "match": " | ".join(words),
                "candidates": max(limit, candidates) if candidates is not None else None,
                "limit": limit,
            },
        )
        return [Candidate(int(row[0]), float(row[1])) for row in rows]


def build_index(dialect: str, dimensions: int) -> KnowledgeIndex:
    if dialect == "sqlite":
        return SqliteIndex(dimensions)
    return PostgresIndex(dimensions)
