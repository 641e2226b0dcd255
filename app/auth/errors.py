from app.core.errors import AppError, Conflict, NotFound, Unauthorized


class EmailTaken(Conflict):
    code = "email_taken"
    message = "An account with this email already exists."


class WeakPassword(AppError):
    status_code = 422
    code = "weak_password"
    message = "This password is too weak."


class InvalidCredentials(Unauthorized):
    code = "invalid_credentials"
    message = "Incorrect email or password."


class InvalidToken(Unauthorized):
    code = "invalid_token"
    message = "The token is invalid or has expired."


class RefreshTokenReused(Unauthorized):
    code = "refresh_token_reused"
    message = "This refresh token was already used; the session has been revoked for safety."
    commit_changes = True


class AccountDisabled(AppError):
    status_code = 403
    code = "account_disabled"
    message = "This account is disabled."


class SessionNotFound(NotFound):
    code = "session_not_found"
    message = "Session not found."
