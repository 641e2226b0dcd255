"""Shared dependencies: the app's runtime objects and the per-request database session."""

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Annotated

from fastapi import Depends
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import HTTPConnection

from app.core.background import BackgroundJobs, Supervisor
from app.core.clientip import ClientIPResolver
from app.core.config import Settings
from app.core.db import Database, utcnow
from app.core.invalidation import Invalidations
from app.core.metrics import Metrics
from app.core.ratelimit import RateLimiter
from app.core.security import JWTCodec, PasswordHasher, SecretBox
from app.core.uow import UnitOfWork

if TYPE_CHECKING:
    # Named for the type checker only: core imports no package above it (main builds the mailer).
    from app.auth.callers import KeyAuthenticator
    from app.mail import Mailer

# Called in the unit of work that deletes an account, before the user's row goes: domains whose
# data lives outside the database (file bytes) mark it for removal there.
AccountDeletionHook = Callable[[UnitOfWork, uuid.UUID], Awaitable[None]]


@dataclass
class Runtime:
    """Long-lived objects of one app instance, built in create_app()."""

    settings: Settings
    db: Database
    hasher: PasswordHasher
    jwt: JWTCodec
    metrics: Metrics
    mailer: "Mailer"
    limiter: RateLimiter
    client_ips: ClientIPResolver
    # Encrypts TOTP secrets at rest.
    secret_box: SecretBox
    # Keys the pseudonyms of emails in the lockout table and binds CSRF tokens to sessions.
    digest_key: bytes
    jobs: BackgroundJobs = field(default_factory=BackgroundJobs)
    # The long-lived loops (sweeps, purges), restarted when they crash.
    supervisor: Supervisor = field(default_factory=Supervisor)
    account_deletion_hooks: list[AccountDeletionHook] = field(default_factory=list)
    # Called in the unit of work of a password reset (which signs the user out everywhere):
    # domains holding other credentials of the user (API keys) revoke them.
    credential_revocation_hooks: list[AccountDeletionHook] = field(default_factory=list)
    # Drops what workers cached when it changes (app/core/invalidation.py).
    invalidations: Invalidations = field(default_factory=lambda: Invalidations(None))
    # Checks API keys (app/keys), set by create_app(); None: keys are refused.
    key_authenticator: "KeyAuthenticator | None" = None
    # The time TOTP codes are checked against; tests swap it to control the clock.
    clock: Callable[[], datetime] = utcnow


# Dependencies are `async def` even when they only look something up or build an object:
# FastAPI runs a plain `def` dependency in a worker thread, one thread round trip per dependency
# per request, which on a busy server costs more than the work itself.
async def get_runtime(connection: HTTPConnection) -> Runtime:
    runtime: Runtime = connection.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


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
