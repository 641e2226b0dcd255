"""Migration 0009 where the vector index lives: up, down and up again with pgvector (Postgres)
or sqlite-vec (SQLite), leaving nothing behind on the way down."""

import uuid
from pathlib import Path

import pytest
from sqlalchemy import text

from app.core.db import create_engine
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
