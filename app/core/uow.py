"""The unit of work: one request's (or one background job's) database work.

Repositories come from it (`uow.get(ChatRepository)`, one per type), they flush, and it commits:
once at the end of the request (app/core/deps.py, `UnitOfWorkDep`) or of the job
(`Database.unit()`), or earlier where a service must end its transaction before slow work (a
reply's upstream call, reading files, a guard model). Services hold a UnitOfWork, never a
session: all SQL stays in the repositories.
"""

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any, Protocol, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from app.core.db import Database, after_commit


class RepositoryType(Protocol):
    def __init__(self, session: AsyncSession, /) -> None: ...


R = TypeVar("R", bound=RepositoryType)


class UnitOfWork:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session
        self._repositories: dict[type[Any], Any] = {}

    def get(self, repository: type[R]) -> R:
        """The unit's repository of this type (made on first use, then shared)."""
        found = self._repositories.get(repository)
        if found is None:
            found = self._repositories[repository] = repository(self._session)
        return found

    async def flush(self) -> None:
        """Sends what the repositories wrote so far, inside the transaction."""
        await self._session.flush()

    async def commit(self) -> None:
        """Ends the transaction now (what was loaded stays usable); the next statement starts a
        new one. The connection goes back to the pool meanwhile."""
        await self._session.commit()

    @asynccontextmanager
    async def savepoint(self) -> AsyncIterator[None]:
        """A nested transaction: an error inside undoes only what was written inside."""
        async with self._session.begin_nested():
            yield

    def after_commit(self, callback: Callable[[], None]) -> None:
        """Runs `callback` once the unit has committed, never if it rolls back."""
        after_commit(self._session, callback)

    @property
    def session(self) -> AsyncSession:
        """For repositories and storage hooks that join the transaction; services use the
        methods above."""
        return self._session


@asynccontextmanager
async def unit_of_work(db: Database) -> AsyncIterator[UnitOfWork]:
    """A unit of work of its own (a background job, or a step that must commit apart from its
    request): commits when the block succeeds, rolls back otherwise."""
    async with db.transaction() as session:
        yield UnitOfWork(session)
