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

import sqlite3
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import aiosqlite

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
