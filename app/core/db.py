"""Async engine, sessions and the declarative base shared by every domain's models."""

import logging
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import DateTime, MetaData, TypeDecorator, Uuid, event
from sqlalchemy.engine import Dialect, make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.pool import StaticPool

from app.core import sqlite
from app.core.config import Settings
from app.core.errors import AppError

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


logger = logging.getLogger("parley.db")

_AFTER_COMMIT = "parley_after_commit"


# The largest value an INTEGER column holds on every backend (Postgres' int4): every integer a
# client sends that is stored in, or compared with, such a column is bounded by it.
INT32_MAX = 2_147_483_647


def utcnow() -> datetime:
    return datetime.now(UTC)


def after_commit(session: AsyncSession, callback: Callable[[], None]) -> None:
    """Run `callback` once the session's transaction has committed, and never if it rolls back.

    Mails that carry a token go out this way: a link must not reach an inbox before the token
    it carries is in the database, nor at all when the request fails.
    """
    session.info.setdefault(_AFTER_COMMIT, []).append(callback)


def _run_after_commit(session: AsyncSession) -> None:
    callbacks: list[Callable[[], None]] = session.info.pop(_AFTER_COMMIT, [])
    for callback in callbacks:
        try:
            callback()
        except Exception:
            # The commit stands; a failed follow-up must not turn success into an error.
            logger.exception("after-commit callback failed")


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite stores them naive)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UTCDateTime, uuid.UUID: Uuid}


class UUIDPrimaryKey:
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)


class Timestamps:
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


def _configure_sqlite(engine: AsyncEngine, *, foreign_keys: bool, one_trip: bool) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let us issue BEGIN ourselves (below); pysqlite's implicit BEGIN is deferred.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA foreign_keys={'ON' if foreign_keys else 'OFF'}")
        cursor.execute("PRAGMA busy_timeout=10000")
        cursor.execute("PRAGMA synchronous=NORMAL")
        # A 64 MB page cache and memory-mapped reads: search and deep pages touch many pages.
        cursor.execute("PRAGMA cache_size=-65536")
        cursor.execute("PRAGMA mmap_size=268435456")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Any) -> None:
        # A deferred transaction that reads and then writes gets SQLITE_BUSY at once when
        # another writer got in between, ignoring busy_timeout. IMMEDIATE takes the write lock
        # up front, so concurrent writers queue on busy_timeout instead of failing.
        # Sent with the transaction's first statement, in the same trip to the database thread.
        if one_trip:
            connection.connection.driver_connection.begin_with_next_statement("BEGIN IMMEDIATE")
        else:  # SQLITE_CONNECTION=aiosqlite: a trip of its own
            connection.exec_driver_sql("BEGIN IMMEDIATE")


def create_engine(settings: Settings, *, sqlite_foreign_keys: bool = True) -> AsyncEngine:
    """The app's engine. Migrations turn SQLite's foreign keys off: batch mode rebuilds tables by
    dropping them, and with foreign keys on that drop would cascade into the child tables."""
    if settings.is_sqlite:
        sqlite.load_vector_extension()  # the knowledge index's vec0 tables, where available
        options: dict[str, Any] = {}
        if ":memory:" in settings.database_url or settings.database_url.endswith("://"):
            options["poolclass"] = StaticPool
        else:
            # SQLite has one writer at a time, and every transaction here is a writer (BEGIN
            # IMMEDIATE), so more connections add no concurrency: they only make waiters poll
            # the lock in SQLite's busy handler, unfairly, until some starve past the timeout.
            # One connection turns that into SQLAlchemy's FIFO pool queue.
            options.update(pool_size=1, max_overflow=0, pool_timeout=60)
        url = make_url(settings.database_url)
        one_trip = settings.sqlite_connection == "fast"
        if one_trip:
            database, connect_options = url.get_dialect()().create_connect_args(url)

            async def connect() -> sqlite.OneTripConnection:
                return await sqlite.connect(*database, **connect_options, timeout=30)

            options["async_creator"] = connect
        else:
            # SQLITE_CONNECTION=aiosqlite: its stock connection, the way back should an upgrade
            # of aiosqlite or SQLAlchemy break the one-trip one.
            options["connect_args"] = {"timeout": 30}
        engine = create_async_engine(url, echo=settings.db_echo, **options)
        _configure_sqlite(engine, foreign_keys=sqlite_foreign_keys, one_trip=one_trip)
        return engine
    return create_async_engine(
        settings.database_url,
        echo=settings.db_echo,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_pre_ping=True,
        pool_recycle=1800,
    )


class Database:
    """The engine and session factory of one app instance."""

    def __init__(self, settings: Settings) -> None:
        self.engine = create_engine(settings)
        self.sessionmaker = async_sessionmaker(self.engine, expire_on_commit=False)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """One short unit of work: commits when the block succeeds, rolls back otherwise."""
        async with self.sessionmaker() as session:
            try:
                yield session
                await session.commit()
                _run_after_commit(session)
            except AppError as exc:
                # Some refusals must still be recorded (a revoked session after token reuse,
                # a counted failed login), so such errors commit before they propagate.
                if exc.commit_changes:
                    await session.commit()
                    _run_after_commit(session)
                else:
                    session.info.pop(_AFTER_COMMIT, None)
                    await session.rollback()
                raise
            except BaseException:
                session.info.pop(_AFTER_COMMIT, None)
                await session.rollback()
                raise

    async def dispose(self) -> None:
        await self.engine.dispose()
