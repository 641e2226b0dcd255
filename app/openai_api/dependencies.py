"""Who calls /v1: the one place its authentication lives.

A caller is a user signed in with an access token (Bearer header or cookie) or with one of their
API keys (`Authorization: Bearer pk-...` or `api-key:`); the router opens itself to every valid
key with `keys_allowed(ANY_KEY)`. `caller.may_use(model)` applies the key's model allow-list: a
model the key may not use does not exist for it (404).
"""

from typing import Annotated

from fastapi import Depends

from app.auth.dependencies import ChatAllowedUser
from app.core.deps import RuntimeDep
from app.keys.dependencies import Caller, CurrentCaller


async def get_caller(caller: CurrentCaller, _allowed: ChatAllowedUser) -> Caller:
    """The caller, if they may chat (REQUIRE_VERIFIED_EMAIL_TO_CHAT)."""
    return caller


CallerDep = Annotated[Caller, Depends(get_caller)]


async def get_generation_caller(caller: CallerDep, runtime: RuntimeDep) -> Caller:
    """The caller, counted against the per-user RATE_LIMIT_GENERATION (429 with Retry-After)."""
    await runtime.limiter.enforce("generation", f"user:{caller.user.id}")
    return caller


# For endpoints that call a model.
GenerationCallerDep = Annotated[Caller, Depends(get_generation_caller)]
