import uuid
from collections.abc import Sequence

from app.core.db import utcnow
from app.core.uow import UnitOfWork
from app.knowledge.errors import CollectionNotFound
from app.knowledge.repository import CollectionRepository
from app.projects.errors import ProjectNotFound
from app.projects.models import Project
from app.projects.repository import ProjectRepository
from app.projects.schemas import ProjectCreate, ProjectUpdate
from app.tools.catalog import ToolCatalog
from app.tools.errors import UnknownTool
from app.users.models import User


def _stored(ids: Sequence[object] | None) -> list[str] | None:
    """Ids as stored: strings, each once, in order; None for none."""
    return [str(i) for i in dict.fromkeys(ids or [])] or None


class ProjectService:
    """Projects: folders of chats with shared instructions, model, knowledge and tools.

    Deleting one touches its chats, so it is the chats' service that does it
    (ChatService.delete_project)."""

    def __init__(self, uow: UnitOfWork, tools: ToolCatalog | None = None) -> None:
        self.uow = uow
        self.projects = uow.get(ProjectRepository)
        self.tools = tools

    def _check_tools(self, ids: Sequence[str]) -> None:
        """Each an enabled tool (UnknownTool, 422, otherwise)."""
        if not ids:
            return
        if self.tools is None:
            raise UnknownTool()
        self.tools.check(ids)

    async def _check_collections(self, user_id: uuid.UUID, ids: Sequence[uuid.UUID]) -> None:
        if not ids:
            return
        # The user's collections, and those shared with a group they are a member of.
        usable = await self.uow.get(CollectionRepository).usable(user_id, ids)
        if len(usable) != len(set(ids)):
            raise CollectionNotFound()

    async def create(self, user: User, data: ProjectCreate) -> Project:
        """A project; its collections must be the user's, its tools enabled ones."""
        await self._check_collections(user.id, data.collection_ids)
        self._check_tools(data.tool_ids)
        now = utcnow()
        return await self.projects.add(
            Project(
                user_id=user.id,
                name=data.name,
                instructions=data.instructions or None,
                model=data.model,
                collection_ids=_stored(data.collection_ids),
                tool_ids=_stored(data.tool_ids),
                created_at=now,
                updated_at=now,
            )
        )

    async def get_owned(self, user: User, project_id: uuid.UUID) -> Project:
        """The user's project, or ProjectNotFound (also for another user's: never 403)."""
        project = await self.projects.get_for_user(user.id, project_id)
        if project is None:
            raise ProjectNotFound()
        return project

    async def owned_or_none(
        self, user_id: uuid.UUID, project_id: uuid.UUID | None
    ) -> Project | None:
        """The user's project if `project_id` names one (a reply's chat may name a project that
        was deleted meanwhile: it then has none)."""
        if project_id is None:
            return None
        return await self.projects.get_for_user(user_id, project_id)

    async def list_projects(self, user: User) -> Sequence[Project]:
        return await self.projects.list_for_user(user.id)

    async def update(self, project: Project, data: ProjectUpdate) -> Project:
        """Changes the fields sent."""
        sent = data.model_fields_set
        if "name" in sent and data.name is not None:
            project.name = data.name
        if "instructions" in sent:
            project.instructions = data.instructions or None
        if "model" in sent:
            project.model = data.model
        if "collection_ids" in sent:
            await self._check_collections(project.user_id, data.collection_ids or [])
            project.collection_ids = _stored(data.collection_ids)
        if "tool_ids" in sent:
            self._check_tools(data.tool_ids or [])
            project.tool_ids = _stored(data.tool_ids)
        await self.uow.flush()
        return project
