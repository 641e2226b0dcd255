from typing import Annotated

from fastapi import Depends

from app.audit.service import AuditService
from app.core.deps import UnitOfWorkDep


async def get_audit_service(uow: UnitOfWorkDep) -> AuditService:
    return AuditService(uow)


AuditServiceDep = Annotated[AuditService, Depends(get_audit_service)]
