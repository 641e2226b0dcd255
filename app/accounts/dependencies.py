"""Dependencies of the accounts endpoints: their services, built per request."""

from typing import Annotated

from fastapi import Depends

from app.accounts.service import AdminService, ProfileService
from app.auth.dependencies import AuthRuntimeDep, build_account_service, build_guard
from app.core.deps import UnitOfWorkDep


async def get_profile_service(uow: UnitOfWorkDep, runtime: AuthRuntimeDep) -> ProfileService:
    return ProfileService(
        uow,
        guard=build_guard(uow, runtime),
        account=build_account_service(uow, runtime),
        deletion_hooks=runtime.account_deletion_hooks,
    )


ProfileServiceDep = Annotated[ProfileService, Depends(get_profile_service)]


async def get_admin_service(uow: UnitOfWorkDep) -> AdminService:
    return AdminService(uow)


AdminServiceDep = Annotated[AdminService, Depends(get_admin_service)]
