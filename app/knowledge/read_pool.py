"""Where retrieval reads: on SQLite, a pool of read-only connections of its own.

The app's SQLite engine has one connection, the writer (app/core/db.py: every transaction there
is BEGIN IMMEDIATE), so searches on it queue behind each other and behind every write. In WAL
mode readers do not block the writer nor each other, and sqlite3 lets go of the GIL while a
statement runs, so RAG_READ_CONNECTIONS connections (each on its own thread) search in parallel.
They are opened read-only (`PRAGMA query_only`) and run each statement in autocommit: no read
transaction is left open to hold back WAL checkpoints.

On Postgres, or an in-memory SQLite database (one connection by nature), or with
RAG_READ_CONNECTIONS=0, reads take the app's own pool in a short transaction.
"""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from app.core import sqlite
from app.core.config import Settings
from app.core.db import Database


def _read_engine(settings: Settings, connections: int) -> AsyncEngine:
    url = make_url(settings.database_url)
    options: dict[str, Any] = {"pool_size": connections, "max_overflow": 0, "pool_timeout": 60}
    if settings.sqlite_connection == "fast":
        database, connect_options = url.get_dialect()().create_connect_args(url)

        async def connect() -> sqlite.OneTripConnection:
            return await sqlite.connect(*database, **connect_options, timeout=30)

        options["async_creator"] = connect
    else:
        options["connect_args"] = {"timeout": 30}
    engine = create_async_engine(url, **options)

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # autocommit: no BEGIN, no snapshot kept
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA query_only=ON")
        cursor.execute("PRAGMA busy_timeout=10000")
        cursor.execute("PRAGMA cache_size=-65536")
        cursor.execute("PRAGMA mmap_size=268435456")
        cursor.close()

    return engine


class ReadPool:
    """Sessions for retrieval's reads (nothing written through them)."""

    def __init__(self, db: Database, settings: Settings) -> None:
        self.db = db
        self.engine: AsyncEngine | None = None
        memory = ":memory:" in settings.database_url or settings.database_url.endswith("://")
        if settings.is_sqlite and not memory and settings.rag_read_connections > 0:
            sqlite.load_vector_extension()
            self.engine = _read_engine(settings, settings.rag_read_connections)
            self._sessions = async_sessionmaker(self.engine, expire_on_commit=False)

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        if self.engine is None:
            async with self.db.transaction() as session:
                yield session
            return
        async with self._sessions() as session:
            yield session

    async def close(self) -> None:
        if self.engine is not None:
            await self.engine.dispose()
