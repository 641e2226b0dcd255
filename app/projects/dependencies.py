import uuid
from typing import Annotated

from fastapi import Depends

from app.auth.dependencies import CurrentUser
from app.core.deps import UnitOfWorkDep
from app.projects.models import Project
from app.projects.service import ProjectService
from app.tools.dependencies import ToolCatalogDep


async def get_project_service(uow: UnitOfWorkDep, tools: ToolCatalogDep) -> ProjectService:
    return ProjectService(uow, tools)


ProjectServiceDep = Annotated[ProjectService, Depends(get_project_service)]


async def get_owned_project(
    project_id: uuid.UUID, user: CurrentUser, service: ProjectServiceDep
) -> Project:
    """The project in the path if it is the caller's; ProjectNotFound (404) otherwise."""
    return await service.get_owned(user, project_id)


OwnedProject = Annotated[Project, Depends(get_owned_project)]
