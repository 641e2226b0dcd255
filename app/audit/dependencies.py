from typing import Annotated, Protocol

from fastapi import Depends
from starlette.requests import HTTPConnection

from app.audit.service import AuditService
from app.audit.writer import AuditWriter
from app.core.deps import CoreRuntime, UnitOfWorkDep


class AuditRuntime(CoreRuntime, Protocol):
    """What the audit package uses of the app's runtime: core's objects and the writer."""

    audit_writer: AuditWriter


async def get_audit_runtime(connection: HTTPConnection) -> AuditRuntime:
    runtime: AuditRuntime = connection.app.state.runtime
    return runtime


AuditRuntimeDep = Annotated[AuditRuntime, Depends(get_audit_runtime)]


async def get_audit_service(uow: UnitOfWorkDep) -> AuditService:
    return AuditService(uow)


AuditServiceDep = Annotated[AuditService, Depends(get_audit_service)]
