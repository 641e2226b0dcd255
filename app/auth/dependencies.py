from typing import Annotated, Protocol

from fastapi import Depends, Request
from fastapi.security import OAuth2PasswordBearer
from starlette.requests import HTTPConnection

from app.auth.account import AccountService
from app.auth.callers import (
    KEY_HEADER,
    KEY_PREFIX,
    KEY_SCOPE_STATE,
    Caller,
    KeyAuthenticator,
    KeyNotAllowed,
    KeysUnavailable,
    set_current_key,
)
from app.auth.cookies import ACCESS_COOKIE
from app.auth.csrf import CSRF_COOKIE, CSRF_HEADER, SAFE_METHODS
from app.auth.errors import EmailNotVerified, InvalidToken, PasswordLoginDisabled, SsoNotConfigured
from app.auth.guard import CredentialGuard
from app.auth.mfa import MfaService
from app.auth.notifications import Notifier
from app.auth.repository import (
    AccountTokenRepository,
    AuthSessionRepository,
    LoginAttemptRepository,
    MfaRecoveryCodeRepository,
    PasswordHistoryRepository,
    RefreshTokenRepository,
)
from app.auth.service import AuthService, ClientInfo, CsrfProof, Principal
from app.auth.sso import GroupSync, SsoParts, SsoService
from app.auth.tokens import AccountTokens
from app.core.deps import AccountDeletionHook, CoreRuntime, RuntimeDep, UnitOfWorkDep
from app.core.errors import Forbidden, Unauthorized
from app.core.logging import user_id_var
from app.core.uow import UnitOfWork
from app.mail import Mailer
from app.users.models import User
from app.users.repository import UserRepository

# auto_error=False: the cookie is the other way in, checked below.
bearer_scheme = OAuth2PasswordBearer(
    tokenUrl="/api/auth/token",
    auto_error=False,
    description="Email and password. Single sign-on accounts have no password: see the API "
    "description above for their tokens.",
)


class AuthRuntime(CoreRuntime, Protocol):
    """What auth uses of the app's runtime (app/runtime.py): core's objects and the mailer."""

    mailer: Mailer
    # Called in the unit of work of a password reset: other credentials (API keys) revoked.
    credential_revocation_hooks: list[AccountDeletionHook]
    # Checks API keys (app/keys); None: keys are refused.
    key_authenticator: KeyAuthenticator | None
    # Single sign-on (OIDC_ISSUER...); None when not configured.
    sso: SsoParts | None
    # Sets Parley groups from the provider's groups claim (the groups package; NoGroupSync).
    group_sync: GroupSync


async def get_auth_runtime(connection: HTTPConnection) -> AuthRuntime:
    runtime: AuthRuntime = connection.app.state.runtime
    return runtime


AuthRuntimeDep = Annotated[AuthRuntime, Depends(get_auth_runtime)]


# Builders, shared by request dependencies and by background jobs (which open their own session).


def build_notifier(uow: UnitOfWork, runtime: AuthRuntime) -> Notifier:
    return Notifier(uow, runtime.mailer, runtime.settings)


def build_guard(uow: UnitOfWork, runtime: AuthRuntime) -> CredentialGuard:
    return CredentialGuard(
        uow=uow,
        users=uow.get(UserRepository),
        attempts=uow.get(LoginAttemptRepository),
        hasher=runtime.hasher,
        notifier=build_notifier(uow, runtime),
        settings=runtime.settings,
        digest_key=runtime.digest_key,
        metrics=runtime.metrics,
    )


def build_mfa_service(uow: UnitOfWork, runtime: AuthRuntime) -> MfaService:
    return MfaService(
        uow=uow,
        users=uow.get(UserRepository),
        recovery_codes=uow.get(MfaRecoveryCodeRepository),
        sessions=uow.get(AuthSessionRepository),
        guard=build_guard(uow, runtime),
        notifier=build_notifier(uow, runtime),
        secret_box=runtime.secret_box,
        settings=runtime.settings,
        clock=runtime.clock,
    )


def build_auth_service(uow: UnitOfWork, runtime: AuthRuntime) -> AuthService:
    return AuthService(
        uow=uow,
        users=uow.get(UserRepository),
        sessions=uow.get(AuthSessionRepository),
        refresh_tokens=uow.get(RefreshTokenRepository),
        account_tokens=AccountTokens(uow.get(AccountTokenRepository)),
        guard=build_guard(uow, runtime),
        mfa=build_mfa_service(uow, runtime),
        notifier=build_notifier(uow, runtime),
        hasher=runtime.hasher,
        jwt=runtime.jwt,
        settings=runtime.settings,
        digest_key=runtime.digest_key,
    )


def build_account_service(uow: UnitOfWork, runtime: AuthRuntime) -> AccountService:
    return AccountService(
        uow=uow,
        users=uow.get(UserRepository),
        sessions=uow.get(AuthSessionRepository),
        history=uow.get(PasswordHistoryRepository),
        account_tokens=AccountTokens(uow.get(AccountTokenRepository)),
        guard=build_guard(uow, runtime),
        notifier=build_notifier(uow, runtime),
        hasher=runtime.hasher,
        limiter=runtime.limiter,
        settings=runtime.settings,
        digest_key=runtime.digest_key,
        revocation_hooks=runtime.credential_revocation_hooks,
    )


async def get_auth_service(uow: UnitOfWorkDep, runtime: AuthRuntimeDep) -> AuthService:
    return build_auth_service(uow, runtime)


AuthServiceDep = Annotated[AuthService, Depends(get_auth_service)]


async def get_account_service(uow: UnitOfWorkDep, runtime: AuthRuntimeDep) -> AccountService:
    return build_account_service(uow, runtime)


AccountServiceDep = Annotated[AccountService, Depends(get_account_service)]


async def get_mfa_service(uow: UnitOfWorkDep, runtime: AuthRuntimeDep) -> MfaService:
    return build_mfa_service(uow, runtime)


MfaServiceDep = Annotated[MfaService, Depends(get_mfa_service)]


async def get_sso_service(uow: UnitOfWorkDep, runtime: AuthRuntimeDep) -> SsoService:
    """The sign-in through the identity provider; 404 sso_not_configured without OIDC_*."""
    if runtime.sso is None:
        raise SsoNotConfigured()
    return SsoService(
        uow=uow,
        auth=build_auth_service(uow, runtime),
        client=runtime.sso.client,
        state_box=runtime.sso.state_box,
        hasher=runtime.hasher,
        group_sync=runtime.group_sync,
        settings=runtime.settings,
    )


SsoServiceDep = Annotated[SsoService, Depends(get_sso_service)]


async def password_login_allowed(runtime: RuntimeDep) -> None:
    """Refuses password sign-in and registration when PASSWORD_LOGIN_ENABLED is false."""
    if not runtime.settings.password_login_enabled:
        raise PasswordLoginDisabled()


async def get_guard(uow: UnitOfWorkDep, runtime: AuthRuntimeDep) -> CredentialGuard:
    return build_guard(uow, runtime)


CredentialGuardDep = Annotated[CredentialGuard, Depends(get_guard)]


async def client_info(request: Request, runtime: RuntimeDep) -> ClientInfo:
    return ClientInfo(
        user_agent=request.headers.get("user-agent"),
        ip_address=runtime.client_ips.client_ip(request),
    )


ClientInfoDep = Annotated[ClientInfo, Depends(client_info)]


def presented_key(request: Request, bearer: str | None) -> str | None:
    """The API key the request carries (`Authorization: Bearer pk-...` or `api-key:`), if any."""
    header = request.headers.get(KEY_HEADER)
    if header is not None:
        return header.strip()
    if bearer and bearer.strip().startswith(KEY_PREFIX):
        return bearer.strip()
    return None


async def get_principal(
    request: Request,
    service: AuthServiceDep,
    bearer: Annotated[str | None, Depends(bearer_scheme)],
) -> Principal:
    """The session behind the request's access token (bearer or cookie). API keys have no
    session: a route that needs one (sessions, logout, MFA) refuses them with 403."""
    if presented_key(request, bearer) is not None:
        raise KeyNotAllowed()
    return await _resolve_principal(request, service, bearer)


async def _resolve_principal(
    request: Request, service: AuthService, bearer: str | None
) -> Principal:
    # `Authorization: Bearer` with nothing after it is no bearer token: the request is then
    # authenticated by its cookie, and must pass the CSRF check like any other.
    bearer = bearer.strip() if bearer else None
    token = bearer or request.cookies.get(ACCESS_COOKIE)
    if not token:
        raise Unauthorized()
    if len(token) > 4096:
        raise InvalidToken()
    principal = await service.resolve_access_token(token)
    if not bearer and request.method not in SAFE_METHODS:
        # The browser attaches cookies to cross-site requests on its own; a header it does not.
        service.check_csrf(
            principal,
            CsrfProof(
                cookie=request.cookies.get(CSRF_COOKIE), header=request.headers.get(CSRF_HEADER)
            ),
        )
    request.state.user_id = str(principal.user.id)
    user_id_var.set(str(principal.user.id))
    return principal


CurrentPrincipal = Annotated[Principal, Depends(get_principal)]


async def get_caller(
    request: Request,
    runtime: AuthRuntimeDep,
    uow: UnitOfWorkDep,
    service: AuthServiceDep,
    bearer: Annotated[str | None, Depends(bearer_scheme)],
) -> Caller:
    """Who calls: a user with an access token (every route), or with an API key on the routes
    that a `keys_allowed(scope)` marker opens to keys with that scope (403 elsewhere)."""
    key = presented_key(request, bearer)
    if key is None:
        principal = await _resolve_principal(request, service, bearer)
        set_current_key(None)
        return Caller(user=principal.user)
    scope = getattr(request.state, KEY_SCOPE_STATE, None)
    if scope is None:
        raise KeyNotAllowed()
    if runtime.key_authenticator is None:
        raise KeysUnavailable()
    user, grant = await runtime.key_authenticator.authenticate(key, scope=scope, uow=uow)
    request.state.user_id = str(user.id)
    user_id_var.set(str(user.id))
    set_current_key(grant)
    return Caller(user=user, key=grant)


# `caller: CurrentCaller` where a route needs to know whether a key was used (caller.key).
CurrentCaller = Annotated[Caller, Depends(get_caller)]


async def get_current_user(caller: CurrentCaller) -> User:
    return caller.user


CurrentUser = Annotated[User, Depends(get_current_user)]


async def get_current_admin(user: CurrentUser) -> User:
    if not user.is_admin:
        raise Forbidden("Administrators only.")
    return user


CurrentAdmin = Annotated[User, Depends(get_current_admin)]


async def get_chat_allowed_user(user: CurrentUser, runtime: RuntimeDep) -> User:
    """The current user, if they may chat: with REQUIRE_VERIFIED_EMAIL_TO_CHAT, verified only."""
    if runtime.settings.require_verified_email_to_chat and not user.email_verified:
        raise EmailNotVerified()
    return user


# For the chat and generation routers: `user: ChatAllowedUser`.
ChatAllowedUser = Annotated[User, Depends(get_chat_allowed_user)]


async def get_generation_user(user: ChatAllowedUser, runtime: RuntimeDep) -> User:
    """ChatAllowedUser, counted against the per-user RATE_LIMIT_GENERATION."""
    await runtime.limiter.enforce("generation", f"user:{user.id}")
    return user


# For endpoints that call the model (send a message, regenerate, /api/generate):
# `user: GenerationUser` applies the per-user generation limit (429 with Retry-After).
GenerationUser = Annotated[User, Depends(get_generation_user)]
