"""Migration 0009 where the vector index lives: up, down and up again with pgvector (Postgres)
or sqlite-vec (SQLite), leaving nothing behind on the way down."""

import random
import struct
import uuid
from pathlib import Path

import pytest
from sqlalchemy import text

from app.core.db import create_engine
from app.knowledge.codes import quantize
from tests.knowledge.conftest import DIMENSIONS, PG_SERVERS
from tests.support.database import BACKEND, TestDatabase, migrate
from tests.support.fake_upstream import FakeUpstream
from tests.support.settings import make_settings
from tests.support.upstream_fixtures import running_parley


async def _names(url: str) -> set[str]:
    engine = create_engine(make_settings(TestDatabase(url, BACKEND)))
    try:
        async with engine.connect() as connection:
            if engine.dialect.name == "sqlite":
                query = "SELECT name FROM sqlite_master WHERE type = 'table'"
            else:
                query = "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
            return set((await connection.execute(text(query))).scalars())
    finally:
        await engine.dispose()


@pytest.fixture
def fresh_url(tmp_path: Path, request: pytest.FixtureRequest) -> str:
    if BACKEND == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path}/migration.db"
    database = request.getfixturevalue("pgvector_database")
    name = f"parley_mig_{uuid.uuid4().hex[:10]}"
    base, _, query = database.url.rpartition("?")
    server_url = base.rsplit("/", 1)[0]
    PG_SERVERS[database.url].psql(f'CREATE DATABASE "{name}";')
    return f"{server_url}/{name}?{query}"


async def test_up_down_up_with_the_vector_index(
    fresh_url: str, fake_upstream: FakeUpstream, tmp_path: Path
) -> None:
    migrate(fresh_url)
    names = await _names(fresh_url)
    assert {"collection", "collection_file", "knowledge_document", "knowledge_chunk"} <= names
    if BACKEND == "postgres":
        assert "knowledge_embedding" in names  # pgvector was available: vectors have a table
    else:
        # The app makes the vec0 table for its dimension at start-up.
        settings = make_settings(
            TestDatabase(fresh_url, BACKEND),
            embedding_base_url=fake_upstream.base_url,
            embedding_dimensions=DIMENSIONS,
            file_storage_dir=str(tmp_path / "files"),
        )
        async with running_parley(settings):
            pass
        assert f"knowledge_vec_{DIMENSIONS}" in await _names(fresh_url)
    migrate(fresh_url, "0008", down=True)
    left = {n for n in await _names(fresh_url) if n.startswith(("knowledge", "collection"))}
    assert left == set()
    migrate(fresh_url)
    assert "knowledge_chunk" in await _names(fresh_url)


async def test_0014_codes_the_vectors_already_indexed(fresh_url: str) -> None:
    """SQLite: the vectors written before 0014 get their codes from the migration (the frozen
    copy of `quantize`); down again, the code tables go. Postgres: nothing changes either way."""
    migrate(fresh_url, "0013")
    engine = create_engine(make_settings(TestDatabase(fresh_url, BACKEND)))
    rng = random.Random(4)
    vectors = {n: [rng.gauss(0, 1) for _ in range(DIMENSIONS)] for n in range(1, 1201)}
    user = uuid.uuid4().hex
    try:
        if BACKEND == "sqlite":
            async with engine.begin() as connection:
                await connection.execute(
                    text(
                        f"CREATE VIRTUAL TABLE knowledge_vec_{DIMENSIONS} USING vec0("
                        "chunk_id INTEGER PRIMARY KEY, "
                        f"embedding float[{DIMENSIONS}] distance_metric=cosine, "
                        "user_id TEXT PARTITION KEY)"
                    )
                )
                await connection.execute(
                    text(
                        f"INSERT INTO knowledge_vec_{DIMENSIONS} (chunk_id, embedding, user_id)"
                        " VALUES (:c, :e, :u)"
                    ),
                    [
                        {"c": n, "e": struct.pack(f"{DIMENSIONS}f", *v), "u": user}
                        for n, v in vectors.items()
                    ],
                )
        before = await _names(fresh_url)
        migrate(fresh_url, "0014")
        if BACKEND == "sqlite":
            async with engine.connect() as connection:
                rows = (
                    await connection.execute(
                        text(f"SELECT chunk_id, embedding FROM knowledge_vec_{DIMENSIONS}_code")
                    )
                ).all()
            # Codes of the float32 values as stored, as the app writes them.
            stored = {
                n: list(struct.unpack(f"{DIMENSIONS}f", struct.pack(f"{DIMENSIONS}f", *v)))
                for n, v in vectors.items()
            }
            assert {int(r[0]): bytes(r[1]) for r in rows} == {
                n: quantize(v) for n, v in stored.items()
            }
        else:
            assert await _names(fresh_url) == before
        migrate(fresh_url, "0013", down=True)
        assert await _names(fresh_url) == before
    finally:
        await engine.dispose()
