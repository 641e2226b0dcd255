"""Fixtures for knowledge: Parley on a real uvicorn with the fake upstream serving embeddings,
on a database with a vector index.

On SQLite that is the suite's database (sqlite-vec). On Postgres the suite's server may lack
pgvector, so a Postgres 16 with pgvector (the `pgserver` package's) is started once per session
and these tests run on it; tests/knowledge/test_fallback.py covers the suite's own server.
"""

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.core.config import Settings
from app.core.db import create_engine
from app.models import Base
from tests.support.database import BACKEND, TestDatabase, migrate
from tests.support.fake_upstream import FakeUpstream
from tests.support.settings import make_settings
from tests.support.upstream_fixtures import Parley, parley_settings, running_parley

DIMENSIONS = 64
# The pgserver instance behind each pgvector database's URL (for tests that make databases).
PG_SERVERS: dict[str, Any] = {}


@pytest.fixture(scope="session")
def pgvector_database(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestDatabase]:
    """A Postgres 16 with pgvector (pgserver), a fresh database on it, migrated to head."""
    import pgserver

    # Its data directory's path must be short: the server's Unix socket lives in it.
    root = Path(f"/tmp/parley-pgv-{os.getpid()}")
    server = pgserver.get_server(root, cleanup_mode="delete")
    name = f"parley_test_{uuid.uuid4().hex[:12]}"
    server.psql(f'CREATE DATABASE "{name}";')
    url = f"postgresql+asyncpg://postgres@/{name}?host={root}"
    try:
        migrate(url)
        PG_SERVERS[url] = server
        yield TestDatabase(url, "postgres")
    finally:
        server.cleanup()


@pytest.fixture(scope="session")
def vector_database(request: pytest.FixtureRequest) -> TestDatabase:
    if BACKEND == "postgres":
        database: TestDatabase = request.getfixturevalue("pgvector_database")
    else:
        database = request.getfixturevalue("database")
    return database


@pytest.fixture(scope="session")
async def vector_engine(vector_database: TestDatabase) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(make_settings(vector_database))
    yield engine
    await engine.dispose()


@pytest.fixture
async def clean_vector_db(vector_engine: AsyncEngine) -> AsyncEngine:
    tables = [table.name for table in reversed(Base.metadata.sorted_tables)]
    async with vector_engine.begin() as connection:
        if vector_engine.dialect.name == "postgresql":
            quoted = ", ".join(f'"{name}"' for name in tables)
            await connection.execute(text(f"TRUNCATE {quoted} CASCADE"))
        else:
            for name in tables:
                await connection.execute(text(f'DELETE FROM "{name}"'))
            vec = await connection.scalar(
                text(f"SELECT name FROM sqlite_master WHERE name = 'knowledge_vec_{DIMENSIONS}'")
            )
            if vec:
                await connection.execute(text(f"DELETE FROM knowledge_vec_{DIMENSIONS}"))
                await connection.execute(text(f"DELETE FROM knowledge_vec_{DIMENSIONS}_code"))
    return vector_engine


def knowledge_settings(
    database: TestDatabase, fake: FakeUpstream, tmp: Path, **overrides: Any
) -> Settings:
    values: dict[str, Any] = {
        "embedding_base_url": fake.base_url,
        "embedding_model": "fake-embed",
        "embedding_dimensions": DIMENSIONS,
        "rag_min_similarity": 0.35,
        "rag_top_k": 3,
        "rag_chunk_tokens": 120,
        "rag_chunk_overlap": 10,
        "auto_title": False,
        "file_storage_dir": str(tmp / "files"),
        **overrides,
    }
    return parley_settings(database, fake, **values)


@pytest.fixture
async def parley(
    vector_database: TestDatabase,
    clean_vector_db: AsyncEngine,
    fake_upstream: FakeUpstream,
    tmp_path: Path,
) -> AsyncIterator[Parley]:
    settings = knowledge_settings(vector_database, fake_upstream, tmp_path)
    async with running_parley(settings) as running:
        yield running
