"""Dependencies of the accounts endpoints: their services, built per request."""

from typing import Annotated

from fastapi import Depends

from app.accounts.service import AdminService, ProfileService
from app.auth.dependencies import build_account_service, build_guard
from app.auth.repository import AuthSessionRepository
from app.core.deps import RuntimeDep, SessionDep
from app.users.repository import UserRepository


async def get_profile_service(session: SessionDep, runtime: RuntimeDep) -> ProfileService:
    return ProfileService(
        users=UserRepository(session),
        guard=build_guard(session, runtime),
        account=build_account_service(session, runtime),
        deletion_hooks=runtime.account_deletion_hooks,
    )


ProfileServiceDep = Annotated[ProfileService, Depends(get_profile_service)]


async def get_admin_service(session: SessionDep) -> AdminService:
    return AdminService(users=UserRepository(session), sessions=AuthSessionRepository(session))


AdminServiceDep = Annotated[AdminService, Depends(get_admin_service)]
