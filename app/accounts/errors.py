from app.core.errors import AppError, Conflict, NotFound


class UserNotFound(NotFound):
    code = "user_not_found"
    message = "User not found."


class PasswordRequired(AppError):
    status_code = 422
    code = "password_required"
    message = "Changing the email needs your current password (current_password)."


class CannotModifySelf(Conflict):
    code = "cannot_modify_self"
    message = "Administrators cannot disable or demote themselves; ask another administrator."
