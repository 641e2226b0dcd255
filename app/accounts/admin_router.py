import uuid
from typing import Annotated

from fastapi import APIRouter, Query

from app.accounts.dependencies import AdminServiceDep
from app.accounts.errors import CannotModifySelf, UserNotFound
from app.accounts.schemas import AdminUserPage, AdminUserRead, AdminUserUpdate
from app.auth.dependencies import CurrentAdmin
from app.auth.errors import CsrfFailed
from app.core.db import INT32_MAX
from app.core.errors import Forbidden, Unauthorized, error_responses
from app.core.text import NoNul

router = APIRouter(prefix="/api/admin", tags=["admin"])


@router.get(
    "/users", summary="List and search users", responses=error_responses(Unauthorized, Forbidden)
)
async def list_users(
    admin: CurrentAdmin,
    service: AdminServiceDep,
    q: Annotated[
        str | None,
        Query(max_length=320, description="Part of an email or display name."),
        NoNul,
    ] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=INT32_MAX)] = 0,
) -> AdminUserPage:
    """Newest first, `limit` per page from `offset`; `total` counts every match."""
    users, total = await service.list_users(q, limit=limit, offset=offset)
    return AdminUserPage(
        items=[AdminUserRead.model_validate(u) for u in users],
        total=total,
        limit=limit,
        offset=offset,
    )


@router.patch(
    "/users/{user_id}",
    summary="Enable or disable a user, set their role or quota",
    responses=error_responses(Unauthorized, Forbidden, CsrfFailed, UserNotFound, CannotModifySelf),
)
async def update_user(
    user_id: uuid.UUID, body: AdminUserUpdate, admin: CurrentAdmin, service: AdminServiceDep
) -> AdminUserRead:
    """Disabling ends the user's sessions at once; their tokens stop working immediately."""
    return AdminUserRead.model_validate(await service.update_user(admin, user_id, body))
