"""Every error the groups package raises: its HTTP status, stable code and default message."""

from app.core.errors import AppError, Conflict, NotFound


class GroupNotFound(NotFound):
    code = "group_not_found"
    message = "Group not found."


class GroupNameTaken(Conflict):
    code = "group_name_taken"
    message = "A group of this name exists already."


class UnknownUsers(AppError):
    status_code = 422
    code = "unknown_user"
    message = "Some of these user ids are not users."


class UnknownGroupModels(AppError):
    status_code = 422
    code = "unknown_group_model"
    message = "Some of these models are not configured (GET /api/models lists them)."


class UnknownGroups(AppError):
    status_code = 422
    code = "unknown_group"
    message = "Some of these ids are not groups you are a member of (GET /api/groups/mine)."
