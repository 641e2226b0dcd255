"""Who calls /v1: the one place its authentication lives.

Today a caller is a user signed in with a JWT access token (Bearer header or cookie). The API
keys work replaces `get_caller` with a key-aware one (`Authorization: Bearer pk-...`, `api-key:`)
whose `key` is set and whose `may_use` applies the key's model allow-list; nothing else in
app/openai_api authenticates."""

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends

from app.auth.dependencies import ChatAllowedUser
from app.core.deps import RuntimeDep
from app.users.models import User


@dataclass(frozen=True)
class Caller:
    """The user a /v1 request acts for, and the API key it came with (None: a session token)."""

    user: User
    key: Any = None

    def may_use(self, model: str) -> bool:
        """Whether the caller may use `model`: a model it may not use does not exist for it
        (404). Every model, until keys carry allow-lists."""
        return True


async def get_caller(user: ChatAllowedUser) -> Caller:
    return Caller(user=user)


CallerDep = Annotated[Caller, Depends(get_caller)]


async def get_generation_caller(caller: CallerDep, runtime: RuntimeDep) -> Caller:
    """The caller, counted against the per-user RATE_LIMIT_GENERATION (429 with Retry-After)."""
    await runtime.limiter.enforce("generation", f"user:{caller.user.id}")
    return caller


# For endpoints that call a model.
GenerationCallerDep = Annotated[Caller, Depends(get_generation_caller)]
