"""API keys: the owner's and the admins' operations (KeyService), and the check a request's key
goes through (KeyChecker, the runtime's key authenticator).

A worker keeps the grants of the keys it has seen (keyed by the key's hash, no expiry) so that
a request with a key costs one HMAC and a dictionary look-up, plus the user's row. Every change
to a key (revoked, edited) and every password reset is published on the app's Invalidations
after its commit, and every worker drops what it held at once (with REDIS_URL, within
milliseconds; docs/api.md). While a worker's reader is not subscribed to Redis it caches
nothing and reads each key from the database. Expiry needs no message: it is checked on every
request. A disabled or deleted user needs none either: the user's row is read on every request.
"""

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from limits import RateLimitItem, RateLimitItemPerMinute

from app import audit
from app.audit import actions
from app.auth.callers import ANY_KEY, KEY_PREFIX, KeyGrant
from app.auth.errors import AccountDisabled
from app.core.db import utcnow
from app.core.invalidation import USER_ACCESS, Invalidations
from app.core.ratelimit import RateLimiter
from app.core.uow import UnitOfWork
from app.keys.errors import (
    ApiKeyExpired,
    ApiKeyNotFound,
    ApiKeyRateLimited,
    ApiKeyScopeMissing,
    InvalidApiKey,
    InvalidApiKeyField,
    TooManyApiKeys,
)
from app.keys.hashing import MAX_KEY_LENGTH, KeyHasher, hint_of, new_key
from app.keys.models import ApiKey
from app.keys.repository import ApiKeyRepository
from app.keys.schemas import (
    ApiKeyAdminRead,
    ApiKeyCreate,
    ApiKeyCreated,
    ApiKeyRead,
    ApiKeyUpdate,
)
from app.usage.repository import UsageRepository
from app.users.models import User
from app.users.repository import UserRepository

# Invalidation topic: a key changed or was revoked (value: the key id).
KEY_TOPIC = "api-key"
# last_used_at is written at most this often per key.
TOUCH_INTERVAL = timedelta(minutes=1)
MAX_KEYS_PER_USER = 50
RATE_LIMIT_NAME = "api_key"


@dataclass(frozen=True)
class Grant:
    """What a valid key allows (app.auth.callers.KeyGrant)."""

    id: uuid.UUID
    user_id: uuid.UUID
    name: str
    scopes: tuple[str, ...]
    models: frozenset[str] | None
    daily_token_limit: int | None
    rpm: int | None
    expires_at: datetime | None

    def may_use(self, model: str) -> bool:
        return self.models is None or model in self.models

    @classmethod
    def of(cls, key: ApiKey) -> "Grant":
        return cls(
            id=key.id,
            user_id=key.user_id,
            name=key.name,
            scopes=tuple(key.scopes or ()),
            models=frozenset(key.models) if key.models is not None else None,
            daily_token_limit=key.daily_token_limit,
            rpm=key.rpm,
            expires_at=key.expires_at,
        )


class KeyChecker:
    """Checks the API key a request presents (the runtime's KeyAuthenticator)."""

    def __init__(
        self,
        *,
        hasher: KeyHasher,
        limiter: RateLimiter,
        invalidations: Invalidations,
    ) -> None:
        self.hasher = hasher
        self.limiter = limiter
        self.invalidations = invalidations
        self._grants: dict[str, Grant] = {}
        self._hash_of: dict[uuid.UUID, str] = {}
        # Bumped by every invalidation: a grant read from the database before a message came
        # is not cached after it (it may be what the message revoked).
        self._epoch = 0
        self._touched: dict[uuid.UUID, datetime] = {}
        self._rpm_items: dict[int, list[RateLimitItem]] = {}
        # Database reads of keys (cache misses), for tests and the benchmark.
        self.reads = 0
        invalidations.subscribe(KEY_TOPIC, self._drop_key)
        invalidations.subscribe(USER_ACCESS, self._drop_user)
        invalidations.on_reset(self.clear)

    def clear(self) -> None:
        self._epoch += 1
        self._grants.clear()
        self._hash_of.clear()

    def _drop_key(self, value: str) -> None:
        self._epoch += 1
        try:
            key_id = uuid.UUID(value)
        except ValueError:
            return
        digest = self._hash_of.pop(key_id, None)
        if digest is not None:
            self._grants.pop(digest, None)

    def _drop_user(self, value: str) -> None:
        self._epoch += 1
        for digest, grant in list(self._grants.items()):
            if str(grant.user_id) == value:
                self._grants.pop(digest, None)
                self._hash_of.pop(grant.id, None)

    async def grant(self, key: str, uow: UnitOfWork) -> Grant:
        """The grant of a live key (cached), or 401."""
        if not key.startswith(KEY_PREFIX) or len(key) > MAX_KEY_LENGTH:
            raise InvalidApiKey()
        digest = self.hasher.digest(key)
        live = self.invalidations.live
        found = self._grants.get(digest) if live else None
        if found is not None:
            return found
        epoch = self._epoch
        self.reads += 1
        row = await uow.get(ApiKeyRepository).by_hash(digest)
        if row is None or row.revoked_at is not None:
            raise InvalidApiKey()
        found = Grant.of(row)
        if live and self.invalidations.live and epoch == self._epoch:
            self._grants[digest] = found
            self._hash_of[found.id] = digest
        return found

    async def authenticate(self, key: str, *, scope: str, uow: UnitOfWork) -> tuple[User, KeyGrant]:
        grant = await self.grant(key, uow)
        now = utcnow()
        if grant.expires_at is not None and grant.expires_at <= now:
            raise ApiKeyExpired()
        user = await uow.get(UserRepository).get(grant.user_id)
        if user is None:
            raise InvalidApiKey()
        if not user.is_active:
            raise AccountDisabled()
        if scope != ANY_KEY and scope not in grant.scopes:
            raise ApiKeyScopeMissing(f"The API key has no `{scope}` scope.")
        if grant.rpm is not None:
            retry_after = await self.limiter.hit(
                RATE_LIMIT_NAME, str(grant.id), items=self._rpm(grant.rpm)
            )
            if retry_after is not None:
                raise ApiKeyRateLimited(retry_after)
        touched = self._touched.get(grant.id)
        if touched is None or now - touched >= TOUCH_INTERVAL:
            self._touched[grant.id] = now
            await uow.get(ApiKeyRepository).touch(grant.id, now=now, interval=TOUCH_INTERVAL)
        return user, grant

    def _rpm(self, rpm: int) -> list[RateLimitItem]:
        items = self._rpm_items.get(rpm)
        if items is None:
            items = self._rpm_items[rpm] = [RateLimitItemPerMinute(rpm)]
        return items


def _announce(uow: UnitOfWork, invalidations: Invalidations, topic: str, value: str) -> None:
    """Tells every worker once the change is committed (before, a worker could read the old row
    again and keep it)."""
    uow.after_commit(lambda: invalidations.publish_soon(topic, value))


async def revoke_keys_of_user(
    uow: UnitOfWork, user_id: uuid.UUID, *, invalidations: Invalidations
) -> None:
    """A password reset signs the user out everywhere: their keys are revoked too."""
    revoked = await uow.get(ApiKeyRepository).revoke_all(user_id, now=utcnow())
    if revoked:
        _announce(uow, invalidations, USER_ACCESS, str(user_id))


class KeyService:
    def __init__(
        self,
        *,
        uow: UnitOfWork,
        keys: ApiKeyRepository,
        usage: UsageRepository,
        hasher: KeyHasher,
        invalidations: Invalidations,
    ) -> None:
        self.uow = uow
        self.keys = keys
        self.usage = usage
        self.hasher = hasher
        self.invalidations = invalidations

    async def create(self, user: User, data: ApiKeyCreate) -> ApiKeyCreated:
        """A new key; the only time its text is returned."""
        now = utcnow()
        _check_expiry(data.expires_at, now)
        if await self.keys.count_live(user.id) >= MAX_KEYS_PER_USER:
            raise TooManyApiKeys()
        key = new_key()
        row = await self.keys.add(
            ApiKey(
                user_id=user.id,
                name=data.name,
                key_hash=self.hasher.digest(key),
                hint=hint_of(key),
                scopes=sorted(set(data.scopes)),
                models=_unique(data.models),
                daily_token_limit=data.daily_token_limit,
                rpm=data.rpm,
                created_at=now,
                expires_at=data.expires_at,
            )
        )
        await audit.record(
            self.uow,
            actions.API_KEY_CREATED,
            actor=user.id,
            target=audit.Target("api_key", row.id),
            details={"name": row.name, "scopes": row.scopes, "owner": str(user.id)},
        )
        return ApiKeyCreated(**ApiKeyRead.model_validate(row).model_dump(), key=key)

    async def list_keys(self, user: User) -> list[ApiKeyRead]:
        """The user's live keys, newest first, with the tokens each used today."""
        rows = await self.keys.live_of(user.id)
        used = await self.usage.used_by_keys_on([row.id for row in rows], utcnow().date())
        return [_read(row, used.get(row.id, 0)) for row in rows]

    async def update(self, user: User, key_id: uuid.UUID, changes: ApiKeyUpdate) -> ApiKeyRead:
        row = await self.keys.owned(user.id, key_id)
        if row is None:
            raise ApiKeyNotFound()
        fields: dict[str, Any] = changes.model_dump(exclude_unset=True)
        if "name" in fields and fields["name"] is None:
            raise InvalidApiKeyField("name", "must not be null")
        if "expires_at" in fields:
            _check_expiry(fields["expires_at"], utcnow())
        if "scopes" in fields:
            fields["scopes"] = sorted(set(fields["scopes"] or ()))
        if "models" in fields:
            fields["models"] = _unique(fields["models"])
        for name, value in fields.items():
            setattr(row, name, value)
        await self.uow.flush()
        _announce(self.uow, self.invalidations, KEY_TOPIC, str(row.id))
        used = await self.usage.used_by_keys_on([row.id], utcnow().date())
        return _read(row, used.get(row.id, 0))

    async def revoke(self, user: User, key_id: uuid.UUID) -> None:
        """Revokes one of the user's keys: refused on every worker at once."""
        row = await self.keys.owned(user.id, key_id)
        if row is None:
            raise ApiKeyNotFound()
        await self._revoke(row)

    async def admin_list(
        self, *, user_id: uuid.UUID | None, include_revoked: bool, limit: int
    ) -> list[ApiKeyAdminRead]:
        rows = await self.keys.everyone(
            user_id=user_id, include_revoked=include_revoked, limit=limit
        )
        used = await self.usage.used_by_keys_on([row.id for row, _ in rows], utcnow().date())
        return [
            ApiKeyAdminRead(
                **_read(row, used.get(row.id, 0)).model_dump(),
                user_id=row.user_id,
                email=email,
                revoked_at=row.revoked_at,
            )
            for row, email in rows
        ]

    async def admin_revoke(self, key_id: uuid.UUID) -> None:
        row = await self.keys.get(key_id)
        if row is None or row.revoked_at is not None:
            raise ApiKeyNotFound()
        await self._revoke(row)

    async def _revoke(self, row: ApiKey) -> None:
        row.revoked_at = utcnow()
        await self.uow.flush()
        await audit.record(
            self.uow,
            actions.API_KEY_REVOKED,
            target=audit.Target("api_key", row.id),
            details={"name": row.name, "owner": str(row.user_id)},
        )
        _announce(self.uow, self.invalidations, KEY_TOPIC, str(row.id))


def _read(row: ApiKey, tokens_today: int) -> ApiKeyRead:
    read = ApiKeyRead.model_validate(row)
    read.tokens_today = tokens_today
    return read


def _unique(models: list[str] | None) -> list[str] | None:
    return None if models is None else list(dict.fromkeys(models))


def _check_expiry(expires_at: datetime | None, now: datetime) -> None:
    if expires_at is None:
        return
    if expires_at.tzinfo is None or expires_at <= now:
        raise InvalidApiKeyField("expires_at", "must be a future time with a time zone")
