"""Groups: administrators manage them under /api/admin/groups, a group's admins its membership;
every user lists their own groups at /api/groups/mine."""

import uuid

from fastapi import APIRouter, Response, status

from app.accounts.errors import UserNotFound
from app.auth.dependencies import CurrentAdmin, CurrentUser
from app.auth.errors import CsrfFailed
from app.core.errors import Forbidden, Unauthorized, error_responses
from app.groups.dependencies import GroupServiceDep, KnownModels
from app.groups.errors import GroupNameTaken, GroupNotFound, UnknownGroupModels, UnknownUsers
from app.groups.schemas import (
    GroupCreate,
    GroupDetail,
    GroupMemberAdd,
    GroupRead,
    GroupUpdate,
    MyGroupRead,
)

admin_router = APIRouter(prefix="/api/admin/groups", tags=["admin"])
router = APIRouter(prefix="/api/groups", tags=["groups"])


@admin_router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    summary="Create a group",
    responses=error_responses(
        Unauthorized, Forbidden, CsrfFailed, GroupNameTaken, UnknownGroupModels, UnknownUsers
    ),
)
async def create_group(
    body: GroupCreate, _admin: CurrentAdmin, service: GroupServiceDep, known: KnownModels
) -> GroupDetail:
    """A group with a unique name, the restricted models its members may use, an optional daily
    token quota for each member, and its admins. Administrators only."""
    return await service.create(body, known_models=known)


@admin_router.get("", summary="List groups", responses=error_responses(Unauthorized, Forbidden))
async def list_groups(_admin: CurrentAdmin, service: GroupServiceDep) -> list[GroupRead]:
    """Every group by name, with its member count. Administrators only."""
    return await service.list_groups()


@admin_router.get(
    "/{group_id}",
    summary="Get a group",
    responses=error_responses(Unauthorized, Forbidden, GroupNotFound),
)
async def get_group(
    group_id: uuid.UUID, _admin: CurrentAdmin, service: GroupServiceDep
) -> GroupDetail:
    """A group with its members. Administrators only."""
    return await service.detail(group_id)


@admin_router.patch(
    "/{group_id}",
    summary="Change a group",
    responses=error_responses(
        Unauthorized,
        Forbidden,
        CsrfFailed,
        GroupNotFound,
        GroupNameTaken,
        UnknownGroupModels,
        UnknownUsers,
    ),
)
async def update_group(
    group_id: uuid.UUID,
    body: GroupUpdate,
    _admin: CurrentAdmin,
    service: GroupServiceDep,
    known: KnownModels,
) -> GroupDetail:
    """Changes the fields sent (`models` and `admins` are replaced whole); members' access
    changes at once. Administrators only."""
    return await service.update(group_id, body, known_models=known)


@admin_router.delete(
    "/{group_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete a group",
    responses=error_responses(Unauthorized, Forbidden, CsrfFailed, GroupNotFound),
)
async def delete_group(
    group_id: uuid.UUID, _admin: CurrentAdmin, service: GroupServiceDep
) -> Response:
    """Its members lose its models, its quota and the collections shared with it, at once.
    Administrators only."""
    await service.delete(group_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@admin_router.post(
    "/{group_id}/members",
    status_code=status.HTTP_201_CREATED,
    summary="Add a member to a group",
    responses=error_responses(Unauthorized, Forbidden, CsrfFailed, GroupNotFound, UserNotFound),
)
async def add_group_member(
    group_id: uuid.UUID, body: GroupMemberAdd, user: CurrentUser, service: GroupServiceDep
) -> GroupDetail:
    """Adds the user (again: no change). Administrators, and the group's admins."""
    return await service.add_member(user, group_id, body.user_id)


@admin_router.delete(
    "/{group_id}/members/{user_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Remove a member from a group",
    responses=error_responses(Unauthorized, Forbidden, CsrfFailed, GroupNotFound, UserNotFound),
)
async def remove_group_member(
    group_id: uuid.UUID, user_id: uuid.UUID, user: CurrentUser, service: GroupServiceDep
) -> Response:
    """Takes the user out of the group; 404 when they are not in it. Administrators, and the
    group's admins."""
    await service.remove_member(user, group_id, user_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/mine", summary="List my groups", responses=error_responses(Unauthorized))
async def list_my_groups(user: CurrentUser, service: GroupServiceDep) -> list[MyGroupRead]:
    """The groups you are a member or an admin of, with the models and quota they give."""
    return await service.mine(user)
