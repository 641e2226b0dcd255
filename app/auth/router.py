import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response, status

from app.auth.cookies import REFRESH_COOKIE, set_auth_cookies, signed_out
from app.auth.dependencies import (
    AccountServiceDep,
    AuthRuntimeDep,
    AuthServiceDep,
    ClientInfoDep,
    CurrentPrincipal,
    CurrentUser,
    MfaServiceDep,
    password_login_allowed,
)
from app.auth.errors import (
    AccountDisabled,
    AccountLocked,
    CsrfFailed,
    EmailTaken,
    InvalidAccountToken,
    InvalidCredentials,
    InvalidMfaChallenge,
    InvalidMfaCode,
    InvalidPassword,
    InvalidToken,
    MfaAlreadyEnabled,
    MfaNeedsTwoSteps,
    MfaNotEnabled,
    MfaSetupRequired,
    PasswordLoginDisabled,
    PasswordReused,
    RefreshTokenReused,
    SessionNotFound,
    WeakPassword,
)
from app.auth.jobs import schedule_password_reset, schedule_verification_resend
from app.auth.schemas import (
    Accepted,
    ChangePasswordRequest,
    EmailRequest,
    EmailVerified,
    LinkToken,
    LoginRequest,
    MfaChallenge,
    MfaDisableRequest,
    MfaEnableRequest,
    MfaSetupRead,
    MfaVerifyRequest,
    PasswordForm,
    RecoveryCodes,
    RefreshRequest,
    RegisterRequest,
    ResetPasswordRequest,
    SessionRead,
    TokenPair,
    UserRead,
    VerifyEmailRequest,
)
from app.core.deps import SettingsDep
from app.core.emails import InvalidEmail
from app.core.errors import Unauthorized, error_responses
from app.core.ratelimit import RateLimited, limit_by_ip

router = APIRouter(prefix="/api/auth", tags=["auth"])
mfa_router = APIRouter(prefix="/api/auth/mfa", tags=["mfa"])


def _signed_in(
    response: Response, result: TokenPair | MfaChallenge, *, secure: bool
) -> TokenPair | MfaChallenge:
    if isinstance(result, TokenPair):
        set_auth_cookies(response, result, secure=secure)
    return result


@router.post(
    "/register",
    status_code=status.HTTP_201_CREATED,
    summary="Create an account",
    responses=error_responses(
        EmailTaken, InvalidEmail, WeakPassword, RateLimited, PasswordLoginDisabled
    ),
    dependencies=[Depends(password_login_allowed), limit_by_ip("register")],
)
async def register(
    body: RegisterRequest,
    response: Response,
    service: AuthServiceDep,
    client: ClientInfoDep,
    settings: SettingsDep,
) -> TokenPair:
    """Registers a new user, mails a verification link, and signs them in."""
    user = await service.register(
        email=body.email, display_name=body.display_name, password=body.password
    )
    tokens = await service.start_session(user, client)
    set_auth_cookies(response, tokens, secure=settings.secure_cookies)
    return tokens


_LOGIN_ERRORS = error_responses(
    InvalidCredentials, AccountDisabled, AccountLocked, RateLimited, PasswordLoginDisabled
)


@router.post(
    "/login",
    summary="Sign in with JSON",
    responses=_LOGIN_ERRORS,
    dependencies=[Depends(password_login_allowed), limit_by_ip("login")],
)
async def login(
    body: LoginRequest,
    response: Response,
    service: AuthServiceDep,
    client: ClientInfoDep,
    settings: SettingsDep,
) -> TokenPair | MfaChallenge:
    """Checks email and password and opens a session; with MFA on, returns a challenge instead
    (`mfa_required: true`) to finish at POST /api/auth/mfa/verify."""
    result = await service.login(email=body.email, password=body.password, client=client)
    return _signed_in(response, result, secure=settings.secure_cookies)


@router.post(
    "/token",
    summary="Sign in with the OAuth2 password form (Swagger's Authorize button)",
    responses={**_LOGIN_ERRORS, **error_responses(MfaNeedsTwoSteps)},
    dependencies=[Depends(password_login_allowed), limit_by_ip("login")],
)
async def login_for_token(
    form: Annotated[PasswordForm, Depends()],
    response: Response,
    service: AuthServiceDep,
    client: ClientInfoDep,
    settings: SettingsDep,
) -> TokenPair:
    """OAuth2 password flow: `username` is the email. MFA accounts are refused with
    `mfa_two_steps_required` (Swagger cannot do the second step: use /login and /mfa/verify)."""
    result = await service.login(email=form.username, password=form.password, client=client)
    if isinstance(result, MfaChallenge):
        raise MfaNeedsTwoSteps()
    set_auth_cookies(response, result, secure=settings.secure_cookies)
    return result


@router.post(
    "/refresh",
    summary="Rotate the refresh token",
    responses=error_responses(InvalidToken, RefreshTokenReused, AccountDisabled, RateLimited),
    dependencies=[limit_by_ip("refresh")],
)
async def refresh_tokens(
    request: Request,
    response: Response,
    service: AuthServiceDep,
    settings: SettingsDep,
    body: RefreshRequest | None = None,
) -> TokenPair:
    """Trades a refresh token (body or cookie) for a new pair; each one works once."""
    raw = (body.refresh_token if body else None) or request.cookies.get(REFRESH_COOKIE)
    if not raw or len(raw) > 512:
        raise InvalidToken()
    tokens = await service.refresh(raw)
    set_auth_cookies(response, tokens, secure=settings.secure_cookies)
    return tokens


@router.post(
    "/logout",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Sign out of this session",
    responses=error_responses(Unauthorized, CsrfFailed),
)
async def logout(
    principal: CurrentPrincipal, service: AuthServiceDep, settings: SettingsDep
) -> Response:
    """Revokes the current session; its tokens stop working at once."""
    await service.logout(principal)
    return signed_out(secure=settings.secure_cookies)


@router.post(
    "/logout-all",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Sign out everywhere",
    responses=error_responses(Unauthorized, CsrfFailed),
)
async def logout_all(
    principal: CurrentPrincipal, service: AuthServiceDep, settings: SettingsDep
) -> Response:
    """Revokes every session of the current user, this one included."""
    await service.logout_all(principal)
    return signed_out(secure=settings.secure_cookies)


@router.get("/me", summary="The signed-in user", responses=error_responses(Unauthorized))
async def read_me(user: CurrentUser) -> UserRead:
    """Returns the account behind the token or cookie."""
    return UserRead.model_validate(user)


@router.get(
    "/verify-email",
    summary="Verify an email address from the mailed link",
    responses=error_responses(InvalidAccountToken, EmailTaken, RateLimited),
    dependencies=[limit_by_ip("verify_email")],
)
async def verify_email_link(
    token: Annotated[LinkToken, Query(description="The token from the mailed link.")],
    service: AccountServiceDep,
) -> EmailVerified:
    """The link in the verification mail; works once, within EMAIL_VERIFICATION_HOURS."""
    user = await service.verify_email(token)
    return EmailVerified(email=user.email)


@router.post(
    "/verify-email",
    summary="Verify an email address with the mailed token",
    responses=error_responses(InvalidAccountToken, EmailTaken, RateLimited),
    dependencies=[limit_by_ip("verify_email")],
)
async def verify_email(body: VerifyEmailRequest, service: AccountServiceDep) -> EmailVerified:
    """For frontends that show their own page for the link and POST the token."""
    user = await service.verify_email(body.token)
    return EmailVerified(email=user.email)


@router.post(
    "/resend-verification",
    status_code=status.HTTP_202_ACCEPTED,
    summary="Mail the verification link again",
    responses=error_responses(InvalidEmail, RateLimited),
    dependencies=[limit_by_ip("resend_verification")],
)
async def resend_verification(body: EmailRequest, runtime: AuthRuntimeDep) -> Accepted:
    """Always 202 with the same body: whether the email has an account is not revealed."""
    schedule_verification_resend(runtime, body.email)
    return Accepted(
        message="If this address belongs to an account that still needs verifying, "
        "a new link is on its way."
    )


@router.post(
    "/forgot-password",
    status_code=status.HTTP_202_ACCEPTED,
    summary="Mail a password reset link",
    responses=error_responses(InvalidEmail, RateLimited),
    dependencies=[limit_by_ip("forgot_password")],
)
async def forgot_password(body: EmailRequest, runtime: AuthRuntimeDep) -> Accepted:
    """Always 202 with the same body, in the same time: the lookup runs after the response."""
    schedule_password_reset(runtime, body.email)
    return Accepted(
        message="If this address belongs to an account, a link to reset the password is on its "
        "way. It works once and expires soon."
    )


@router.post(
    "/reset-password",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Set a new password with the mailed token",
    responses=error_responses(InvalidAccountToken, WeakPassword, PasswordReused, RateLimited),
    dependencies=[limit_by_ip("reset_password")],
)
async def reset_password(
    body: ResetPasswordRequest, service: AccountServiceDep, settings: SettingsDep
) -> Response:
    """Sets the password, ends every session, and signs nobody in (MFA still applies)."""
    await service.reset_password(body.token, body.new_password)
    return signed_out(secure=settings.secure_cookies)


@router.post(
    "/change-password",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Change my password",
    responses=error_responses(
        Unauthorized, InvalidPassword, AccountLocked, WeakPassword, PasswordReused, CsrfFailed
    ),
)
async def change_password(
    body: ChangePasswordRequest, principal: CurrentPrincipal, service: AccountServiceDep
) -> Response:
    """Needs the current password; this session stays, every other one ends."""
    await service.change_password(
        principal.user,
        current_password=body.current_password,
        new_password=body.new_password,
        session_id=principal.session.id,
    )
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get(
    "/sessions", summary="List my signed-in devices", responses=error_responses(Unauthorized)
)
async def list_sessions(principal: CurrentPrincipal, service: AuthServiceDep) -> list[SessionRead]:
    """Active sessions, most recently used first; `current` marks this one."""
    sessions = await service.list_sessions(principal.user)
    return [
        SessionRead.model_validate(s).model_copy(update={"current": s.id == principal.session.id})
        for s in sessions
    ]


@router.delete(
    "/sessions/{session_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Revoke one session",
    responses=error_responses(Unauthorized, SessionNotFound, CsrfFailed),
)
async def revoke_session(
    session_id: uuid.UUID, user: CurrentUser, service: AuthServiceDep
) -> Response:
    """Signs one device out; its access tokens stop working at once."""
    await service.revoke_session(user, session_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@mfa_router.post(
    "/setup",
    summary="Start two-factor setup",
    responses=error_responses(Unauthorized, MfaAlreadyEnabled, CsrfFailed),
)
async def setup_mfa(user: CurrentUser, service: MfaServiceDep) -> MfaSetupRead:
    """A new TOTP secret with its otpauth URI and QR code; MFA stays off until enabled."""
    data = await service.setup(user)
    return MfaSetupRead(secret=data.secret, otpauth_uri=data.otpauth_uri, qr_svg=data.qr_svg)


@mfa_router.post(
    "/enable",
    summary="Turn two-factor authentication on",
    responses=error_responses(
        Unauthorized,
        InvalidPassword,
        AccountLocked,
        InvalidMfaCode,
        MfaAlreadyEnabled,
        MfaSetupRequired,
        CsrfFailed,
    ),
)
async def enable_mfa(
    body: MfaEnableRequest, principal: CurrentPrincipal, service: MfaServiceDep
) -> RecoveryCodes:
    """Confirms a code from the new secret (and the password); returns 10 recovery codes, once.
    Other sessions end."""
    codes = await service.enable(
        principal.user,
        code=body.code,
        password=body.password,
        keep_session_id=principal.session.id,
    )
    return RecoveryCodes(recovery_codes=codes)


@mfa_router.post(
    "/verify",
    summary="Finish signing in with a second factor",
    responses=error_responses(
        InvalidMfaChallenge, InvalidMfaCode, AccountLocked, AccountDisabled, RateLimited
    ),
    dependencies=[limit_by_ip("mfa_verify")],
)
async def verify_mfa(
    body: MfaVerifyRequest,
    response: Response,
    service: AuthServiceDep,
    client: ClientInfoDep,
    settings: SettingsDep,
) -> TokenPair:
    """Trades the login challenge and a TOTP or recovery code for tokens (and cookies)."""
    tokens = await service.complete_mfa_login(
        challenge_token=body.challenge_token, code=body.code, client=client
    )
    set_auth_cookies(response, tokens, secure=settings.secure_cookies)
    return tokens


@mfa_router.post(
    "/disable",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Turn two-factor authentication off",
    responses=error_responses(
        Unauthorized, InvalidPassword, InvalidMfaCode, AccountLocked, MfaNotEnabled, CsrfFailed
    ),
)
async def disable_mfa(
    body: MfaDisableRequest, user: CurrentUser, service: MfaServiceDep
) -> Response:
    """Needs the password and a current code (or a recovery code)."""
    await service.disable(user, password=body.password, code=body.code)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
