"""The projects domain's errors."""

from app.core.errors import NotFound


class ProjectNotFound(NotFound):
    code = "project_not_found"
    message = "Project not found."
