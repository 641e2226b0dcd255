import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response, status
from fastapi.security import OAuth2PasswordRequestForm

from app.auth.dependencies import (
    ACCESS_COOKIE,
    REFRESH_COOKIE,
    REFRESH_COOKIE_PATH,
    AuthServiceDep,
    ClientInfoDep,
    CurrentPrincipal,
    CurrentUser,
)
from app.auth.errors import (
    AccountDisabled,
    EmailTaken,
    InvalidCredentials,
    InvalidToken,
    RefreshTokenReused,
    SessionNotFound,
    WeakPassword,
)
from app.auth.schemas import (
    LoginRequest,
    RefreshRequest,
    RegisterRequest,
    SessionRead,
    TokenPair,
    UserRead,
)
from app.core.deps import SettingsDep
from app.core.errors import Unauthorized, error_responses

router = APIRouter(prefix="/api/auth", tags=["auth"])


def set_auth_cookies(response: Response, tokens: TokenPair, *, secure: bool) -> None:
    response.set_cookie(
        ACCESS_COOKIE,
        tokens.access_token,
        max_age=tokens.expires_in,
        httponly=True,
        secure=secure,
        samesite="lax",
        path="/",
    )
    response.set_cookie(
        REFRESH_COOKIE,
        tokens.refresh_token,
        max_age=tokens.refresh_expires_in,
        httponly=True,
        secure=secure,
        samesite="lax",
        path=REFRESH_COOKIE_PATH,
    )


def clear_auth_cookies(response: Response, *, secure: bool) -> None:
    response.delete_cookie(ACCESS_COOKIE, path="/", secure=secure, httponly=True, samesite="lax")
    response.delete_cookie(
        REFRESH_COOKIE, path=REFRESH_COOKIE_PATH, secure=secure, httponly=True, samesite="lax"
    )


@router.post(
    "/register",
    status_code=status.HTTP_201_CREATED,
    summary="Create an account",
    responses=error_responses(EmailTaken, WeakPassword),
)
async def register(
    body: RegisterRequest,
    response: Response,
    service: AuthServiceDep,
    client: ClientInfoDep,
    settings: SettingsDep,
) -> TokenPair:
    """Registers a new user and signs them in (tokens in the body and as cookies)."""
    user = await service.register(
        email=body.email, display_name=body.display_name, password=body.password
    )
    tokens = await service.start_session(user, client)
    set_auth_cookies(response, tokens, secure=settings.secure_cookies)
    return tokens


@router.post(
    "/login",
    summary="Sign in with JSON",
    responses=error_responses(InvalidCredentials, AccountDisabled),
)
async def login(
    body: LoginRequest,
    response: Response,
    service: AuthServiceDep,
    client: ClientInfoDep,
    settings: SettingsDep,
) -> TokenPair:
    """Checks email and password and opens a new session."""
    user = await service.authenticate(email=body.email, password=body.password)
    tokens = await service.start_session(user, client)
    set_auth_cookies(response, tokens, secure=settings.secure_cookies)
    return tokens


@router.post(
    "/token",
    summary="Sign in with the OAuth2 password form (Swagger's Authorize button)",
    responses=error_responses(InvalidCredentials, AccountDisabled),
)
async def login_for_token(
    form: Annotated[OAuth2PasswordRequestForm, Depends()],
    response: Response,
    service: AuthServiceDep,
    client: ClientInfoDep,
    settings: SettingsDep,
) -> TokenPair:
    """OAuth2 password flow: `username` is the email."""
    if len(form.username) > 320 or len(form.password) > 1024:
        raise InvalidCredentials()
    user = await service.authenticate(email=form.username, password=form.password)
    tokens = await service.start_session(user, client)
    set_auth_cookies(response, tokens, secure=settings.secure_cookies)
    return tokens


@router.post(
    "/refresh",
    summary="Rotate the refresh token",
    responses=error_responses(InvalidToken, RefreshTokenReused, AccountDisabled),
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
    responses=error_responses(Unauthorized),
)
async def logout(
    principal: CurrentPrincipal, service: AuthServiceDep, settings: SettingsDep
) -> Response:
    """Revokes the current session; its tokens stop working at once."""
    await service.logout(principal)
    response = Response(status_code=status.HTTP_204_NO_CONTENT)
    clear_auth_cookies(response, secure=settings.secure_cookies)
    return response


@router.post(
    "/logout-all",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Sign out everywhere",
    responses=error_responses(Unauthorized),
)
async def logout_all(
    principal: CurrentPrincipal, service: AuthServiceDep, settings: SettingsDep
) -> Response:
    """Revokes every session of the current user, this one included."""
    await service.logout_all(principal)
    response = Response(status_code=status.HTTP_204_NO_CONTENT)
    clear_auth_cookies(response, secure=settings.secure_cookies)
    return response


@router.get("/me", summary="The signed-in user", responses=error_responses(Unauthorized))
async def read_me(user: CurrentUser) -> UserRead:
    """Returns the account behind the token or cookie."""
    return UserRead.model_validate(user)


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
    responses=error_responses(Unauthorized, SessionNotFound),
)
async def revoke_session(
    session_id: uuid.UUID, user: CurrentUser, service: AuthServiceDep
) -> Response:
    """Signs one device out; its access tokens stop working at once."""
    await service.revoke_session(user, session_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
