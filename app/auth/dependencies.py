from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import OAuth2PasswordBearer

from app.auth.errors import InvalidToken
from app.auth.repository import AuthSessionRepository, RefreshTokenRepository, UserRepository
from app.auth.service import AuthService, ClientInfo, Principal
from app.core.deps import RuntimeDep, SessionDep
from app.core.errors import Forbidden, Unauthorized
from app.core.logging import user_id_var
from app.users.models import User

ACCESS_COOKIE = "parley_access"
REFRESH_COOKIE = "parley_refresh"
REFRESH_COOKIE_PATH = "/api/auth"

# auto_error=False: the cookie is the other way in, checked below.
bearer_scheme = OAuth2PasswordBearer(tokenUrl="/api/auth/token", auto_error=False)


def get_auth_service(session: SessionDep, runtime: RuntimeDep) -> AuthService:
    return AuthService(
        users=UserRepository(session),
        sessions=AuthSessionRepository(session),
        refresh_tokens=RefreshTokenRepository(session),
        hasher=runtime.hasher,
        jwt=runtime.jwt,
        settings=runtime.settings,
    )


AuthServiceDep = Annotated[AuthService, Depends(get_auth_service)]


def client_info(request: Request) -> ClientInfo:
    return ClientInfo(
        user_agent=request.headers.get("user-agent"),
        ip_address=request.client.host if request.client else None,
    )


ClientInfoDep = Annotated[ClientInfo, Depends(client_info)]


async def get_principal(
    request: Request,
    service: AuthServiceDep,
    bearer: Annotated[str | None, Depends(bearer_scheme)],
) -> Principal:
    token = bearer or request.cookies.get(ACCESS_COOKIE)
    if not token:
        raise Unauthorized()
    if len(token) > 4096:
        raise InvalidToken()
    principal = await service.resolve_access_token(token)
    request.state.user_id = str(principal.user.id)
    user_id_var.set(str(principal.user.id))
    return principal


CurrentPrincipal = Annotated[Principal, Depends(get_principal)]


async def get_current_user(principal: CurrentPrincipal) -> User:
    return principal.user


CurrentUser = Annotated[User, Depends(get_current_user)]


async def get_current_admin(user: CurrentUser) -> User:
    if not user.is_admin:
        raise Forbidden("Administrators only.")
    return user


CurrentAdmin = Annotated[User, Depends(get_current_admin)]
