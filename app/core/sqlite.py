"""aiosqlite with one trip to the database thread per statement instead of four.

aiosqlite runs each sqlite3 call on the connection's own thread, and SQLAlchemy's adapter makes
four such calls per statement: open a cursor, execute, fetch the rows, close the cursor. Every
call is a round trip between the event loop and that thread (a queue put, a thread wake-up, a
wake-up of the loop), which costs far more than SQLite itself: about 100 µs each on a small VM,
against a few µs for a simple indexed query. This connection hands SQLAlchemy a cursor that does
all four in one trip and keeps the rows, so a statement costs one round trip. A transaction's
BEGIN travels with its first statement, and committing or rolling back a connection with no
open transaction (the pool does so at every check-in) costs no trip at all.
"""

import logging
import os
import sqlite3
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import aiosqlite

logger = logging.getLogger("parley.db")

Rows = list[Any]


class _Outcome:
    """What a statement left on its sqlite3 cursor, carried back from the database thread."""

    __slots__ = ("description", "lastrowid", "rowcount", "rows")

    def __init__(self, cursor: sqlite3.Cursor, rows: Rows) -> None:
        self.description = cursor.description
        self.rowcount = cursor.rowcount
        self.lastrowid = cursor.lastrowid
        self.rows = rows


class PrefetchingCursor:
    """The async cursor SQLAlchemy's aiosqlite adapter drives, doing each statement in one trip.

    The rows are fetched in the same trip as the statement. SQLAlchemy's adapter fetches every
    row right after executing anyway, and Parley uses no server-side cursors, so nothing is read
    that would not have been.
    """

    arraysize = 1

    def __init__(self, connection: "OneTripConnection") -> None:
        self._connection = connection
        self._rows: Rows = []
        self.description: Any = None
        self.rowcount = -1
        self.lastrowid: int | None = None

    async def __aenter__(self) -> "PrefetchingCursor":
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()

    async def execute(
        self, sql: str, parameters: Sequence[Any] | None = None
    ) -> "PrefetchingCursor":
        self._take(await self._connection.run(partial(_execute, sql, parameters)))
        return self

    async def executemany(
        self, sql: str, parameters: Sequence[Sequence[Any]]
    ) -> "PrefetchingCursor":
        self._take(await self._connection.run(partial(_executemany, sql, parameters)))
        return self

    def _take(self, outcome: _Outcome) -> None:
        self.description = outcome.description
        self.rowcount = outcome.rowcount
        self.lastrowid = outcome.lastrowid
        self._rows = outcome.rows

    async def fetchone(self) -> Any:
        return self._rows.pop(0) if self._rows else None

    async def fetchmany(self, size: int | None = None) -> Rows:
        size = self.arraysize if size is None else size
        taken, self._rows = self._rows[:size], self._rows[size:]
        return taken

    async def fetchall(self) -> Rows:
        taken, self._rows = self._rows, []
        return taken

    async def close(self) -> None:
        self._rows = []


def _execute(
    sql: str, parameters: Sequence[Any] | None, connection: sqlite3.Connection
) -> _Outcome:
    cursor = connection.cursor()
    try:
        cursor.execute(sql, () if parameters is None else parameters)
        return _Outcome(cursor, cursor.fetchall() if cursor.description else [])
    finally:
        cursor.close()


def _executemany(
    sql: str, parameters: Sequence[Sequence[Any]], connection: sqlite3.Connection
) -> _Outcome:
    cursor = connection.cursor()
    try:
        cursor.executemany(sql, parameters)
        return _Outcome(cursor, [])
    finally:
        cursor.close()


class OneTripConnection(aiosqlite.Connection):
    _begin: str | None = None  # a BEGIN waiting to go out with the next statement

    def cursor(self) -> PrefetchingCursor:  # type: ignore[override]
        return PrefetchingCursor(self)

    def begin_with_next_statement(self, sql: str = "BEGIN") -> None:
        """Opens a transaction, in the same trip as the statement that first needs it."""
        self._begin = sql

    async def run(self, work: Callable[[sqlite3.Connection], _Outcome]) -> _Outcome:
        """Runs `work` on the database thread with the sqlite3 connection."""
        begin, self._begin = self._begin, None

        def trip() -> _Outcome:
            connection = self._conn
            if begin is not None:
                connection.execute(begin)
            return work(connection)

        return await self._execute(trip)

    def _idle(self) -> bool:
        """No transaction is open: nothing to commit or roll back."""
        if self._begin is not None:  # begun, but no statement ever sent the BEGIN
            self._begin = None
            return True
        try:
            # A flag read, safe from this thread while no statement runs (the caller owns the
            # connection). Connections that insist on their own thread answer on it instead.
            return not self._conn.in_transaction
        except (sqlite3.ProgrammingError, ValueError):
            return False

    async def commit(self) -> None:
        if not self._idle():
            await super().commit()

    async def rollback(self) -> None:
        if not self._idle():
            await super().rollback()


async def connect(database: str, **options: Any) -> OneTripConnection:
    """Opens a connection as aiosqlite.connect() would, with the one-trip cursor."""
    connection = OneTripConnection(
        partial(sqlite3.connect, database, **options), iter_chunk_size=64
    )
    connection._thread.daemon = True  # as SQLAlchemy does: never keep the process alive
    await connection  # starts the thread and opens the database
    return connection


# --- sqlite-vec ----------------------------------------------------------------------------

_vector_extension: bool | None = None


def load_vector_extension() -> bool:
    """Makes sqlite-vec (the `vec0` tables of the knowledge index) part of every SQLite
    connection the process opens from now on; False when it cannot be loaded (then retrieval is
    full text only, and the log says why). Idempotent.

    Through sqlite3_auto_extension, the C API, with the extension's entry point: Python builds
    without loadable-extension support (pyenv's default, for one) have no
    Connection.enable_load_extension, but the SQLite library they link always has this.
    """
    global _vector_extension
    if _vector_extension is not None:
        return _vector_extension
    _vector_extension = False
    try:
        import ctypes
        import ctypes.util

        import sqlite_vec

        library_path = _linked_sqlite_library()
        if library_path is None:
            logger.warning("sqlite-vec not loaded: the SQLite library Python uses was not found")
            return False
        library = ctypes.CDLL(library_path)
        extension = ctypes.CDLL(sqlite_vec.loadable_path() + ".so")
        entry = ctypes.cast(extension.sqlite3_vec_init, ctypes.c_void_p)
        if library.sqlite3_auto_extension(entry) != 0:
            logger.warning("sqlite-vec not loaded: sqlite3_auto_extension refused it")
            return False
        probe = sqlite3.connect(":memory:")
        try:
            probe.execute("SELECT vec_version()").fetchone()
        finally:
            probe.close()
    except Exception as exc:  # a missing package, library or symbol: full text only
        logger.warning("sqlite-vec not loaded (%s): retrieval on SQLite is full text only", exc)
        return False
    _vector_extension = True
    return True


def _linked_sqlite_library() -> str | None:
    """The path of the libsqlite3 that Python's _sqlite3 module is linked with (the same
    library must register the extension, or its connections never see it)."""
    import _sqlite3

    maps_path = "/proc/self/maps"  # Linux: the libraries this process has mapped
    if getattr(_sqlite3, "__file__", None) and os.path.exists(maps_path):
        with open(maps_path) as maps:
            for line in maps:
                path = line.rsplit(" ", 1)[-1].strip()
                if "libsqlite3" in path:
                    return path
    import ctypes.util

    return ctypes.util.find_library("sqlite3")
