"""Retrieval with no vector search: no embedding endpoint configured (both databases), and a
Postgres without pgvector (the suite's own server): full text only, said by the collection and
the `sources` event, and it works out of the box."""

from pathlib import Path
from typing import Any

from app.core.config import Settings
from tests.generation.test_replies import stream
from tests.knowledge.test_knowledge import WARRANTY, add, collection, search, settled, upload
from tests.support.api import register
from tests.support.database import BACKEND, TestDatabase
from tests.support.fake_upstream import FakeUpstream
from tests.support.sse import names
from tests.support.upstream_fixtures import new_chat, parley_settings, running_parley


def settings_on_suite_database(
    database: TestDatabase, fake: FakeUpstream, tmp: Path, **overrides: Any
) -> Settings:
    return parley_settings(
        database, fake, auto_title=False, file_storage_dir=str(tmp / "files"), **overrides
    )


class TestFullTextOnly:
    async def test_no_embedding_endpoint_means_full_text_retrieval(
        self,
        database: TestDatabase,
        clean_db: Any,
        fake_upstream: FakeUpstream,
        tmp_path: Path,
    ) -> None:
        settings = settings_on_suite_database(database, fake_upstream, tmp_path)
        async with running_parley(settings) as parley:
            user = await register(parley.http)
            coll = await collection(parley, user)
            assert coll["retrieval"] == "full_text"
            await add(parley, user, coll, await upload(parley, user, "m.md", WARRANTY.encode()))
            [status] = await settled(parley, user, coll)
            assert status["status"] == "ready"
            result = await search(parley, user, coll, "warranty")
            assert result["retrieval"] == "full_text"
            assert result["hits"][0]["section"] == "Warranty"
            chat = await new_chat(parley.http, user, collection_ids=[coll["id"]])
            _, events = await stream(parley, user, chat, "What does the warranty cover?")
            assert names(events).index("sources") < names(events).index("delta")
            sources = next(e.data for e in events if e.event == "sources")
            assert sources["retrieval"] == "full_text" and sources["sources"]
        assert fake_upstream.state.embedding_requests == []

    async def test_postgres_without_pgvector_falls_back_to_full_text(
        self,
        database: TestDatabase,
        clean_db: Any,
        fake_upstream: FakeUpstream,
        tmp_path: Path,
    ) -> None:
        """On the suite's database with an embedding endpoint configured: hybrid where the
        database has a vector index (SQLite with sqlite-vec), full text on a Postgres without
        pgvector (this machine's Postgres 15), and nothing is embedded for nothing."""
        settings = settings_on_suite_database(
            database,
            fake_upstream,
            tmp_path,
            embedding_base_url=fake_upstream.base_url,
            embedding_dimensions=64,
        )
        async with running_parley(settings) as parley:
            user = await register(parley.http)
            coll = await collection(parley, user)
            expected = "full_text" if BACKEND == "postgres" else "hybrid"
            assert coll["retrieval"] == expected
            await add(parley, user, coll, await upload(parley, user, "m.md", WARRANTY.encode()))
            [status] = await settled(parley, user, coll)
            assert status["status"] == "ready"
            assert (await search(parley, user, coll, "warranty"))["hits"]
        assert bool(fake_upstream.state.embedding_requests) == (expected == "hybrid")
