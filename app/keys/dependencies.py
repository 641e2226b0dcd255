"""How routes take callers with API keys, and the keys endpoints' service.

The interface other packages use (the /v1 surface included):

- `dependencies=[keys_allowed("chats")]` on a route (or `include_router(...)`) opens it to keys
  with that scope; `keys_allowed(ANY_KEY)` to every valid key. A key on a route without the
  marker answers 403 `api_key_not_allowed`; access tokens work on every route either way.
- `caller: CurrentCaller` gives `Caller(user, key)`, `key` None for an access token. `CurrentUser`
  and the other user dependencies of app/auth take keys the same way.
- `key.may_use(model)` for the key's model list; `UsageService.reserve(..., api_key=key)` applies
  its daily token limit and records usage against it (the generation service passes
  `current_key()`, the request's key).
"""

from functools import lru_cache
from typing import Annotated, Any

from fastapi import Depends, Request

from app.auth.callers import ANY_KEY, KEY_SCOPE_STATE, Caller, KeyGrant, current_key
from app.auth.dependencies import CurrentCaller, get_caller
from app.core.deps import RuntimeDep, UnitOfWorkDep
from app.keys.hashing import KeyHasher
from app.keys.repository import ApiKeyRepository
from app.keys.service import KeyService
from app.usage.repository import UsageRepository

__all__ = [
    "ANY_KEY",
    "Caller",
    "CurrentCaller",
    "KeyGrant",
    "KeyServiceDep",
    "current_key",
    "get_caller",
    "keys_allowed",
]


def keys_allowed(scope: str) -> Any:
    """A route marker: API keys with `scope` (or any key, with ANY_KEY) may call the route.

    FastAPI solves a route's `dependencies=` before its parameters, so the scope is in the
    request's state when the caller is resolved."""

    async def allow_api_keys(request: Request) -> None:
        setattr(request.state, KEY_SCOPE_STATE, scope)

    return Depends(allow_api_keys)


@lru_cache(maxsize=4)
def _hasher(secret_key: str) -> KeyHasher:
    # The key derivation (HKDF) once per secret, not once per request.
    return KeyHasher(secret_key)


async def get_key_service(uow: UnitOfWorkDep, runtime: RuntimeDep) -> KeyService:
    hasher = _hasher(runtime.settings.secret_key)
    return KeyService(
        uow=uow,
        keys=uow.get(ApiKeyRepository),
        usage=uow.get(UsageRepository),
        hasher=hasher,
        invalidations=runtime.invalidations,
    )


KeyServiceDep = Annotated[KeyService, Depends(get_key_service)]
