"""Who calls: a user, signed in with a session's access token or with one of their API keys.

The keys themselves live in app/keys, above this package; what auth needs of them is declared
here: the grant a key carries (`KeyGrant`) and the object that checks a presented key
(`KeyAuthenticator`, set on the runtime by create_app()). A route opens itself to keys with the
`keys_allowed(scope)` marker of app/keys, which records the scope in the request's state before
any other dependency runs; a key on a route without it is refused (403).
"""

import uuid
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from app.core.errors import AppError
from app.core.uow import UnitOfWork
from app.users.models import User

# The scope a route marked with keys_allowed() grants keys (request.state attribute).
KEY_SCOPE_STATE = "api_key_scope"
# keys_allowed(ANY_KEY): any valid key, whatever its scopes (the /v1 surface).
ANY_KEY = "*"
# Every key prefix: a bearer token that starts with it is a key, never a JWT.
KEY_PREFIX = "pk-"
# The Azure-style header some clients send the key in.
KEY_HEADER = "api-key"


class KeyGrant(Protocol):
    """What a valid key allows, as its check found it."""

    @property
    def id(self) -> uuid.UUID: ...

    @property
    def user_id(self) -> uuid.UUID: ...

    @property
    def name(self) -> str: ...

    @property
    def scopes(self) -> tuple[str, ...]: ...

    @property
    def daily_token_limit(self) -> int | None: ...

    @property
    def rpm(self) -> int | None: ...

    @property
    def expires_at(self) -> datetime | None: ...

    def may_use(self, model: str) -> bool:
        """Whether the key's allow-list lets it call `model` (no list: every model)."""
        ...


class KeyAuthenticator(Protocol):
    async def authenticate(self, key: str, *, scope: str, uow: UnitOfWork) -> tuple[User, KeyGrant]:
        """The user and grant behind `key`, on a route open to keys with `scope` (the user read
        in `uow`); raises 401 for a bad, revoked or expired key or a disabled user, 403 when the
        key lacks the scope, 429 over its rpm."""
        ...


@dataclass(frozen=True)
class Caller:
    """Who calls: the user, and the API key they used (None for an access token)."""

    user: User
    key: KeyGrant | None = None

    def may_use(self, model: str) -> bool:
        """Whether the caller may use `model`: the key's allow-list, or every model."""
        return self.key is None or self.key.may_use(model)


class KeyNotAllowed(AppError):
    status_code = 403
    code = "api_key_not_allowed"
    message = "API keys cannot call this endpoint; sign in with an access token."


class KeysUnavailable(AppError):
    status_code = 401
    code = "invalid_api_key"
    message = "API keys are not accepted by this server."


# The key of the request being served (None for an access token); set by get_caller, read by
# the generation code to apply the key's model list and token limit.
_current_key: ContextVar[KeyGrant | None] = ContextVar("parley_api_key", default=None)


def current_key() -> KeyGrant | None:
    """The API key the current request authenticated with, if any."""
    return _current_key.get()


def set_current_key(key: KeyGrant | None) -> None:
    _current_key.set(key)
