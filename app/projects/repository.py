import uuid
from collections.abc import Sequence

from sqlalchemy import select

from app.core.repository import Repository
from app.projects.models import Project


class ProjectRepository(Repository[Project]):
    model = Project

    async def get_for_user(self, user_id: uuid.UUID, project_id: uuid.UUID) -> Project | None:
        return await self.session.scalar(
            select(Project).where(Project.id == project_id, Project.user_id == user_id)
        )

    async def list_for_user(self, user_id: uuid.UUID) -> Sequence[Project]:
        """The user's projects by name."""
        return list(
            await self.session.scalars(
                select(Project).where(Project.user_id == user_id).order_by(Project.name, Project.id)
            )
        )
