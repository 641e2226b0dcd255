"""Shared dependencies: the app's runtime objects and the per-request database session."""

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime
from typing import Annotated, Protocol

from fastapi import Depends
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import HTTPConnection

from app.core.background import BackgroundJobs, Supervisor
from app.core.clientip import ClientIPResolver
from app.core.config import Settings
from app.core.db import Database
from app.core.invalidation import Invalidations
from app.core.metrics import Metrics
from app.core.ratelimit import RateLimiter
from app.core.security import JWTCodec, PasswordHasher, SecretBox
from app.core.uow import UnitOfWork

# Called in the unit of work that deletes an account, before the user's row goes: domains whose
# data lives outside the database (file bytes) mark it for removal there.
AccountDeletionHook = Callable[[UnitOfWork, uuid.UUID], Awaitable[None]]


class CoreRuntime(Protocol):
    """What core's dependencies and every domain may use of the app's runtime (app/runtime.py,
    built in create_app()): core's own long-lived objects. Domains that need more (auth's mailer,
    generation's parts) declare a protocol of their own on top of this one."""

    settings: Settings
    db: Database
    hasher: PasswordHasher
    jwt: JWTCodec
    metrics: Metrics
    limiter: RateLimiter
    client_ips: ClientIPResolver
    # Encrypts TOTP secrets at rest.
    secret_box: SecretBox
    # Keys the pseudonyms of emails in the lockout table and binds CSRF tokens to sessions.
    digest_key: bytes
    # Work a request schedules without waiting for, drained at shutdown.
    jobs: BackgroundJobs
    # The long-lived loops (sweeps, purges, listeners, workers), restarted when they crash.
    supervisor: Supervisor
    account_deletion_hooks: list[AccountDeletionHook]
    # Drops what workers cached when it changes (app/core/invalidation.py).
    invalidations: Invalidations

    # The time TOTP codes are checked against; tests swap it to control the clock.
    def clock(self) -> datetime: ...


# Dependencies are `async def` even when they only look something up or build an object:
# FastAPI runs a plain `def` dependency in a worker thread, one thread round trip per dependency
# per request, which on a busy server costs more than the work itself.
async def get_runtime(connection: HTTPConnection) -> CoreRuntime:
    runtime: CoreRuntime = connection.app.state.runtime
    return runtime


RuntimeDep = Annotated[CoreRuntime, Depends(get_runtime)]


async def get_settings_dep(runtime: RuntimeDep) -> Settings:
    return runtime.settings


SettingsDep = Annotated[Settings, Depends(get_settings_dep)]


async def get_session(runtime: RuntimeDep) -> AsyncIterator[AsyncSession]:
    async with runtime.db.transaction() as session:
        yield session


# scope="function": the commit runs when the handler returns, before the response is sent, so a
# failed commit becomes an error response instead of a success the client wrongly believes.
SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]


async def get_unit_of_work(session: SessionDep) -> UnitOfWork:
    return UnitOfWork(session)


# The request's unit of work: services get their repositories from it; it commits when the
# handler returns (the session above).
UnitOfWorkDep = Annotated[UnitOfWork, Depends(get_unit_of_work)]
