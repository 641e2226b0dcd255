"""The app's runtime: every long-lived object of one app instance, above the domains.

`Runtime.build(settings)` (in create_app()) makes the objects that need no running event loop:
the database, hashing, tokens, metrics, the mailer, the rate limiter, the HTTP client every
upstream call shares, the one Redis client (with REDIS_URL), the file store, the supervisor of
the long-lived loops and the background jobs. `runtime.running()` (the app's lifespan and
nothing else) starts the parts in order and closes them in reverse:

1. the file store (its storage, the spool sweep),
2. generation (app/generation/parts.py: models, replies, stop signals, the reply fan-out),
3. knowledge (app/knowledge/parts.py: the index, the ingestion workers),
4. the trash purge and the audit log's purge;

before them, with REDIS_URL, the reader of invalidation messages (API keys revoked on another
worker; app/core/invalidation.py);

then, on the way out, the supervisor's remaining loops, the background jobs (they queue
mails), the mails, the HTTP client, the database and, last, Redis, which the parts above use up
to their end.

Domains reach the runtime through protocols of their own (`CoreRuntime` in app/core/deps.py,
`AuthRuntime` in app/auth/dependencies.py), never through this module, which imports them.
"""

import logging
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import httpx
from redis.asyncio import Redis

from app.audit.service import start_audit_purge
from app.audit.writer import AuditWriter
from app.auth.sso import GroupSync, NoGroupSync, SsoParts
from app.chats.trash import start_trash_purge
from app.core.background import BackgroundJobs, Supervisor
from app.core.clientip import ClientIPResolver
from app.core.config import Settings
from app.core.db import Database, utcnow
from app.core.deps import AccountDeletionHook
from app.core.invalidation import Invalidations
from app.core.metrics import Metrics
from app.core.ratelimit import RateLimiter
from app.core.security import JWTCodec, PasswordHasher, SecretBox, derive_key
from app.core.shared_redis import connect_redis
from app.core.uow import UnitOfWork
from app.files.store import FileStore
from app.generation.parts import GenerationParts, running_generation
from app.generation.upstream.transport import build_http_client
from app.groups.access import GroupCache
from app.groups.service import GroupMembershipSync
from app.keys.hashing import KeyHasher
from app.keys.service import KeyChecker, revoke_keys_of_user
from app.knowledge.embeddings import EmbeddingClient
from app.knowledge.parts import KnowledgeParts, running_knowledge
from app.mail import Mailer, build_mail_sender

logger = logging.getLogger("parley")


@dataclass
class Runtime:
    """The long-lived objects of one app instance (app.state.runtime)."""

    settings: Settings
    db: Database
    hasher: PasswordHasher
    jwt: JWTCodec
    metrics: Metrics
    mailer: Mailer
    limiter: RateLimiter
    client_ips: ClientIPResolver
    # Encrypts TOTP secrets at rest.
    secret_box: SecretBox
    # Keys the pseudonyms of emails in the lockout table and binds CSRF tokens to sessions.
    digest_key: bytes
    # The one HTTP client for every upstream call (models, embeddings, the guard model).
    http: httpx.AsyncClient
    files: FileStore
    # The one Redis client, with REDIS_URL (app/core/shared_redis.py).
    redis: Redis | None = None
    jobs: BackgroundJobs = field(default_factory=BackgroundJobs)
    # The long-lived loops (sweeps, purges, listeners, workers), restarted when they crash.
    supervisor: Supervisor = field(default_factory=Supervisor)
    account_deletion_hooks: list[AccountDeletionHook] = field(default_factory=list)
    # Called in the unit of work of a password reset (which signs the user out everywhere):
    # domains holding other credentials of the user (API keys) revoke them.
    credential_revocation_hooks: list[AccountDeletionHook] = field(default_factory=list)
    # Drops what workers cached when it changes (app/core/invalidation.py).
    invalidations: Invalidations = field(default_factory=lambda: Invalidations(None))
    # Checks API keys (app/keys); None: keys are refused.
    key_authenticator: KeyChecker | None = None
    # Restricted models and users' groups, cached per worker (app/groups/access.py).
    groups: GroupCache = field(default_factory=lambda: GroupCache(Invalidations(None)))
    # Writes the audit events of committed requests in batches (app/audit/writer.py).
    audit_writer: AuditWriter = field(init=False)
    # Single sign-on (app/auth/sso.py); None unless OIDC_ISSUER, _CLIENT_ID and _SECRET are set.
    sso: SsoParts | None = None
    # Sets Parley groups from the identity provider's groups claim (build() puts the groups
    # package's GroupMembershipSync here).
    group_sync: GroupSync = field(default_factory=NoGroupSync)
    # The time TOTP codes are checked against; tests swap it to control the clock.
    clock: Callable[[], datetime] = utcnow
    # Started by running(): None before and after.
    generation: GenerationParts | None = None
    knowledge: KnowledgeParts | None = None

    @classmethod
    def build(cls, settings: Settings) -> "Runtime":
        """Builds every object that needs no running event loop; running() starts the rest."""
        client_ips = ClientIPResolver(settings.trusted_proxies)
        mfa_key = (
            settings.mfa_encryption_key.get_secret_value()
            if settings.mfa_encryption_key is not None
            else settings.secret_key
        )
        shared = connect_redis(settings.redis_url) if settings.redis_url else None
        db = Database(settings)
        runtime = cls(
            settings=settings,
            db=db,
            hasher=PasswordHasher(settings.bcrypt_rounds, nice=settings.password_hash_nice),
            jwt=JWTCodec(
                settings.secret_key, access_ttl=timedelta(minutes=settings.access_token_minutes)
            ),
            metrics=Metrics(),
            mailer=Mailer(build_mail_sender(settings)),
            limiter=RateLimiter(settings, client_ips=client_ips, shared=shared),
            client_ips=client_ips,
            secret_box=SecretBox(derive_key(mfa_key, purpose="parley:mfa-secret:v1")),
            digest_key=derive_key(settings.secret_key, purpose="parley:digest:v1"),
            http=_http_client(settings),
            files=FileStore(settings, db),
            redis=shared,
        )
        runtime.account_deletion_hooks.append(runtime.files.forget_user)
        runtime.sso = SsoParts.build(settings, lambda: runtime.http)
        runtime.audit_writer = AuditWriter(db)
        invalidations = runtime.invalidations = Invalidations(shared)
        runtime.groups = GroupCache(invalidations)
        runtime.group_sync = GroupMembershipSync(runtime.groups)
        runtime.key_authenticator = KeyChecker(
            hasher=KeyHasher(settings.secret_key),
            limiter=runtime.limiter,
            invalidations=invalidations,
        )

        async def revoke_api_keys(uow: UnitOfWork, user_id: uuid.UUID) -> None:
            await revoke_keys_of_user(uow, user_id, invalidations=invalidations)

        runtime.credential_revocation_hooks.append(revoke_api_keys)
        return runtime

    @asynccontextmanager
    async def running(self) -> AsyncIterator["Runtime"]:
        """Starts the parts in order; on the way out closes them in reverse, then the shared
        clients (Redis last)."""
        settings, db, supervisor = self.settings, self.db, self.supervisor
        if self.http.is_closed:  # an app's lifespan run again (tests)
            self.http = _http_client(settings)
        try:
            if self.invalidations.shared:
                # Every worker drops cached API-key grants when a key changes.
                supervisor.start("invalidations", self.invalidations.run)
                await self.invalidations.wait_live()
            async with AsyncExitStack() as parts:
                await parts.enter_async_context(self.files.running(supervisor))
                # One embedding client (its deployments' health) for retrieval and /v1.
                embeddings = EmbeddingClient.from_settings(settings, self.http)
                self.generation = await parts.enter_async_context(
                    running_generation(
                        settings,
                        db,
                        self.metrics,
                        supervisor,
                        self.http,
                        self.redis,
                        embeddings,
                        groups=self.groups,
                        invalidations=self.invalidations,
                    )
                )
                self.knowledge = await parts.enter_async_context(
                    running_knowledge(
                        settings,
                        db,
                        self.files,
                        self.http,
                        supervisor,
                        self.generation.guardrails,
                        embeddings,
                        self.metrics,
                    )
                )
                self.generation.knowledge = self.knowledge
                await start_trash_purge(supervisor, db, settings)
                await start_audit_purge(supervisor, db, settings)
                supervisor.start("audit-writer", self.audit_writer.run)
                yield self
        finally:
            # The loops end first; background jobs queue mails, so they finish next; then the
            # mails go out.
            await supervisor.close()
            await self.invalidations.close()
            await self.jobs.drain()
            await self._write_audit_events()
            await self.mailer.drain()
            await self.http.aclose()
            await db.dispose()
            self.hasher.close()
            if self.redis is not None:
                await self.redis.aclose()

    async def _write_audit_events(self) -> None:
        """Shutdown: the audit events still queued go to the database before it closes."""
        try:
            await self.audit_writer.flush()
        except Exception:
            logger.exception(
                "audit events lost at shutdown", extra={"count": self.audit_writer.pending}
            )


def _http_client(settings: Settings) -> httpx.AsyncClient:
    return build_http_client(
        max_connections=settings.llm_max_connections,
        connect_timeout=settings.llm_connect_timeout,
        keepalive_expiry=settings.llm_keepalive_seconds,
        transport=settings.upstream_transport,
    )
