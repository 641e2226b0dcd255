"""The projects endpoints. They live with the chats because deleting a project moves its chats
out or trashes them; the projects themselves are app/projects'."""

from typing import Annotated

from fastapi import APIRouter, Query, Response, status

from app.auth.dependencies import CurrentUser
from app.chats.dependencies import ChatServiceDep
from app.core.errors import Unauthorized, error_responses
from app.knowledge.errors import CollectionNotFound
from app.projects.dependencies import OwnedProject, ProjectServiceDep
from app.projects.errors import ProjectNotFound
from app.projects.models import Project
from app.projects.schemas import ChatsOnDelete, ProjectCreate, ProjectRead, ProjectUpdate

router = APIRouter(prefix="/api/projects", tags=["projects"])


def _read(project: Project, chat_count: int = 0) -> ProjectRead:
    return ProjectRead.model_validate(project).model_copy(update={"chat_count": chat_count})


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    summary="Create a project",
    responses=error_responses(Unauthorized, CollectionNotFound),
)
async def create_project(
    body: ProjectCreate, user: CurrentUser, service: ProjectServiceDep
) -> ProjectRead:
    """A folder of chats with shared instructions, default model, collections and tools."""
    return _read(await service.create(user, body))


@router.get("", summary="List my projects", responses=error_responses(Unauthorized))
async def list_projects(
    user: CurrentUser, service: ProjectServiceDep, chats: ChatServiceDep
) -> list[ProjectRead]:
    """Your projects by name, each with its number of chats."""
    projects = await service.list_projects(user)
    counts = await chats.project_chat_counts(user, projects)
    return [_read(project, counts.get(project.id, 0)) for project in projects]


@router.get(
    "/{project_id}",
    summary="Get a project",
    responses=error_responses(Unauthorized, ProjectNotFound),
)
async def get_project(
    project: OwnedProject, user: CurrentUser, chats: ChatServiceDep
) -> ProjectRead:
    """One project; list its chats with GET /api/chats?project_id=."""
    counts = await chats.project_chat_counts(user, [project])
    return _read(project, counts.get(project.id, 0))


@router.patch(
    "/{project_id}",
    summary="Change a project",
    responses=error_responses(Unauthorized, ProjectNotFound, CollectionNotFound),
)
async def update_project(
    project: OwnedProject,
    body: ProjectUpdate,
    user: CurrentUser,
    service: ProjectServiceDep,
    chats: ChatServiceDep,
) -> ProjectRead:
    """Changes only the fields sent; its chats follow at their next reply."""
    await service.update(project, body)
    counts = await chats.project_chat_counts(user, [project])
    return _read(project, counts.get(project.id, 0))


@router.delete(
    "/{project_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete a project",
    responses=error_responses(Unauthorized, ProjectNotFound),
)
async def delete_project(
    project: OwnedProject,
    chats: ChatServiceDep,
    chats_action: Annotated[
        ChatsOnDelete,
        Query(
            alias="chats",
            description="`move` (default): its chats stay, out of any project; `trash`: they go "
            "to the trash (restorable for TRASH_DAYS).",
        ),
    ] = "move",
) -> Response:
    """Deletes the project; its chats move out of it, or to the trash with `?chats=trash`."""
    await chats.delete_project(project, trash_chats=chats_action == "trash")
    return Response(status_code=status.HTTP_204_NO_CONTENT)
