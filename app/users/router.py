from typing import Annotated

from fastapi import APIRouter, Depends, Response, status

from app.auth.dependencies import (
    CurrentUser,
    build_account_service,
    build_guard,
)
from app.auth.errors import AccountLocked, CsrfFailed, EmailTaken, InvalidPassword
from app.auth.router import clear_auth_cookies
from app.core.deps import RuntimeDep, SessionDep, SettingsDep
from app.core.errors import Unauthorized, error_responses
from app.users.errors import PasswordRequired
from app.users.models import User
from app.users.repository import UserDirectory
from app.users.schemas import DeleteAccountRequest, Preferences, ProfileRead, ProfileUpdate
from app.users.service import ProfileService

router = APIRouter(prefix="/api/users", tags=["users"])


async def get_profile_service(session: SessionDep, runtime: RuntimeDep) -> ProfileService:
    return ProfileService(
        users=UserDirectory(session),
        guard=build_guard(session, runtime),
        account=build_account_service(session, runtime),
        deletion_hooks=runtime.account_deletion_hooks,
    )


ProfileServiceDep = Annotated[ProfileService, Depends(get_profile_service)]


def profile_read(user: User) -> ProfileRead:
    return ProfileRead(
        id=user.id,
        email=user.email,
        pending_email=user.pending_email,
        display_name=user.display_name,
        role=user.role,
        email_verified=user.email_verified,
        mfa_enabled=user.mfa_enabled,
        daily_token_quota=user.daily_token_quota,
        created_at=user.created_at,
        preferences=Preferences.model_validate(user),
    )


@router.get("/me", summary="My profile and preferences", responses=error_responses(Unauthorized))
async def read_profile(user: CurrentUser) -> ProfileRead:
    """The signed-in user's profile, preferences and quota."""
    return profile_read(user)


@router.patch(
    "/me",
    summary="Update my profile and preferences",
    responses=error_responses(
        Unauthorized, PasswordRequired, InvalidPassword, AccountLocked, EmailTaken, CsrfFailed
    ),
)
async def update_profile(
    body: ProfileUpdate, user: CurrentUser, service: ProfileServiceDep
) -> ProfileRead:
    """Changes the fields sent. A new email needs `current_password` and is used once the link
    mailed to it is opened; until then it shows as `pending_email`."""
    return profile_read(await service.update(user, body))


@router.delete(
    "/me",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete my account and all my data",
    responses=error_responses(Unauthorized, InvalidPassword, AccountLocked, CsrfFailed),
)
async def delete_account(
    body: DeleteAccountRequest,
    user: CurrentUser,
    service: ProfileServiceDep,
    settings: SettingsDep,
) -> Response:
    """Needs the password. Deletes the account, its sessions, chats and everything else."""
    await service.delete(user, password=body.password)
    response = Response(status_code=status.HTTP_204_NO_CONTENT)
    clear_auth_cookies(response, secure=settings.secure_cookies)
    return response
