from app.core.errors import AppError, Conflict, Forbidden, NotFound, Unauthorized


class EmailTaken(Conflict):
    code = "email_taken"
    message = "An account with this email already exists."


class WeakPassword(AppError):
    status_code = 422
    code = "weak_password"
    message = "This password is too weak."


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


class SignInDisabled(AccountDisabled):
    """A sign-in refused because the account is disabled: the transaction still commits, so that
    the refused sign-in stays in the audit log."""

    commit_changes = True


class SessionNotFound(NotFound):
    code = "session_not_found"
    message = "Session not found."


class InvalidCredentials(Unauthorized):
    code = "invalid_credentials"
    message = "Incorrect email or password."
    # The failed attempt is counted (lockout), so the transaction commits.
    commit_changes = True


class AccountLocked(AppError):
    status_code = 423
    code = "account_locked"
    message = "Too many failed sign-in attempts: sign-in is locked for a while."
    commit_changes = True

    def __init__(self, retry_after: int) -> None:
        minutes = max(1, -(-retry_after // 60))
        super().__init__(
            "Too many failed sign-in attempts: sign-in for this email is locked for "
            f"{minutes} more minute{'s' if minutes != 1 else ''}. "
            "You can reset your password to regain access sooner.",
            headers={"Retry-After": str(retry_after)},
        )
        self.retry_after = retry_after


class InvalidPassword(AppError):
    """A wrong current password when re-authenticating for a sensitive change."""

    status_code = 403
    code = "invalid_password"
    message = "The password is incorrect."
    commit_changes = True


class PasswordReused(AppError):
    status_code = 422
    code = "password_reused"
    message = "This password was used recently; choose one you have not used before."


class InvalidAccountToken(AppError):
    status_code = 400
    code = "invalid_link"
    message = "This link is invalid, was already used, or has expired."


class CsrfFailed(Forbidden):
    code = "csrf_failed"
    message = "Missing or invalid CSRF token: send the parley_csrf cookie's value in X-CSRF-Token."


class EmailNotVerified(Forbidden):
    code = "email_not_verified"
    message = "Verify your email address first; we can send the link again."


class MfaAlreadyEnabled(Conflict):
    code = "mfa_already_enabled"
    message = "Two-factor authentication is already on; disable it first."


class MfaNotEnabled(Conflict):
    code = "mfa_not_enabled"
    message = "Two-factor authentication is not on for this account."


class MfaSetupRequired(Conflict):
    code = "mfa_setup_required"
    message = "Start with POST /api/auth/mfa/setup to get a secret, then confirm a code."


class InvalidMfaCode(Unauthorized):
    code = "invalid_mfa_code"
    message = "The code is incorrect, expired, or was already used."
    commit_changes = True


class InvalidMfaChallenge(Unauthorized):
    code = "invalid_mfa_challenge"
    message = "The sign-in challenge is invalid or has expired; sign in again."


class MfaNeedsTwoSteps(AppError):
    """The OAuth2 form (Swagger's Authorize) has no second step: refused, rather than answered
    with a challenge that Swagger would take for a sign-in."""

    status_code = 400
    code = "mfa_two_steps_required"
    message = (
        "This account has two-step sign-in: Swagger's Authorize cannot finish it. Sign in with "
        "POST /api/auth/login, then POST /api/auth/mfa/verify with the code, and use the "
        "access_token from that answer as a Bearer token."
    )


class PasswordLoginDisabled(Forbidden):
    code = "password_login_disabled"
    message = (
        "This server signs in through single sign-on only: open GET /api/auth/oidc/login in a "
        "browser."
    )


class SsoNotConfigured(NotFound):
    code = "sso_not_configured"
    message = "Single sign-on is not set up on this server (OIDC_ISSUER)."
