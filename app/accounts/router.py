from fastapi import APIRouter, Response, status

from app.accounts.dependencies import ProfileServiceDep
from app.accounts.errors import PasswordRequired
from app.accounts.schemas import DeleteAccountRequest, Preferences, ProfileRead, ProfileUpdate
from app.auth.cookies import signed_out
from app.auth.dependencies import (
    CurrentUser,
)
from app.auth.errors import AccountLocked, CsrfFailed, EmailTaken, InvalidPassword
from app.core.deps import SettingsDep
from app.core.emails import InvalidEmail
from app.core.errors import Unauthorized, error_responses
from app.users.models import User

router = APIRouter(prefix="/api/users", tags=["users"])


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
        Unauthorized,
        PasswordRequired,
        InvalidPassword,
        AccountLocked,
        EmailTaken,
        InvalidEmail,
        CsrfFailed,
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
    return signed_out(secure=settings.secure_cookies)
