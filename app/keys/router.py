import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Response, status

from app.auth.callers import KeyNotAllowed
from app.auth.dependencies import CurrentAdmin, CurrentUser
from app.auth.errors import CsrfFailed
from app.core.errors import Forbidden, Unauthorized, error_responses
from app.keys.dependencies import KeyServiceDep
from app.keys.errors import ApiKeyNotFound, InvalidApiKeyField, TooManyApiKeys
from app.keys.schemas import (
    ApiKeyAdminRead,
    ApiKeyCreate,
    ApiKeyCreated,
    ApiKeyRead,
    ApiKeyUpdate,
)

router = APIRouter(tags=["api keys"])

_COMMON = (Unauthorized, KeyNotAllowed, CsrfFailed)


@router.post(
    "/api/keys",
    status_code=status.HTTP_201_CREATED,
    summary="Create an API key",
    responses=error_responses(*_COMMON, InvalidApiKeyField, TooManyApiKeys),
)
async def create_api_key(
    body: ApiKeyCreate, user: CurrentUser, service: KeyServiceDep
) -> ApiKeyCreated:
    """Returns the key (`pk-...`) this once: Parley keeps only a keyed hash and its last 4
    characters. API keys cannot call this endpoint."""
    return await service.create(user, body)


@router.get("/api/keys", summary="List my API keys", responses=error_responses(*_COMMON))
async def list_api_keys(user: CurrentUser, service: KeyServiceDep) -> list[ApiKeyRead]:
    """Live keys, newest first, with their limits, last use (to the minute) and today's tokens."""
    return await service.list_keys(user)


@router.patch(
    "/api/keys/{key_id}",
    summary="Rename an API key or change its limits",
    responses=error_responses(*_COMMON, ApiKeyNotFound, InvalidApiKeyField),
)
async def update_api_key(
    key_id: uuid.UUID, body: ApiKeyUpdate, user: CurrentUser, service: KeyServiceDep
) -> ApiKeyRead:
    """Fields left out stay; a limit sent as null is removed. Applies on every worker at once."""
    return await service.update(user, key_id, body)


@router.delete(
    "/api/keys/{key_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Revoke an API key",
    responses=error_responses(*_COMMON, ApiKeyNotFound),
)
async def revoke_api_key(key_id: uuid.UUID, user: CurrentUser, service: KeyServiceDep) -> Response:
    """The key stops working on every worker at once (within 1 s with REDIS_URL)."""
    await service.revoke(user, key_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get(
    "/api/admin/keys",
    summary="List every user's API keys",
    tags=["admin"],
    responses=error_responses(*_COMMON, Forbidden),
)
async def list_all_api_keys(
    _admin: CurrentAdmin,
    service: KeyServiceDep,
    user_id: uuid.UUID | None = None,
    include_revoked: bool = False,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[ApiKeyAdminRead]:
    """Newest first, with each key's owner; revoked keys too with `include_revoked`."""
    return await service.admin_list(user_id=user_id, include_revoked=include_revoked, limit=limit)


@router.delete(
    "/api/admin/keys/{key_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Revoke any API key",
    tags=["admin"],
    responses=error_responses(*_COMMON, Forbidden, ApiKeyNotFound),
)
async def admin_revoke_api_key(
    key_id: uuid.UUID, _admin: CurrentAdmin, service: KeyServiceDep
) -> Response:
    """The key stops working on every worker at once (within 1 s with REDIS_URL)."""
    await service.admin_revoke(key_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
