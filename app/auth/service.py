import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from app import audit
from app.audit import actions
from app.auth.csrf import csrf_token_valid, issue_csrf_token
from app.auth.errors import (
    AccountDisabled,
    CsrfFailed,
    EmailTaken,
    InvalidMfaChallenge,
    InvalidMfaCode,
    InvalidToken,
    RefreshTokenReused,
    SessionNotFound,
    SignInDisabled,
)
from app.auth.guard import CredentialGuard
from app.auth.mfa import MfaService
from app.auth.models import AuthSession, RefreshToken, TokenPurpose
from app.auth.notifications import Notifier
from app.auth.passwords import check_password_policy
from app.auth.repository import AuthSessionRepository, RefreshTokenRepository
from app.auth.schemas import MfaChallenge, TokenPair, UserRead
from app.auth.tokens import AccountTokens
from app.core.config import Settings
from app.core.db import utcnow
from app.core.security import JWTCodec, PasswordHasher, TokenError, hash_token, new_opaque_token
from app.core.uow import UnitOfWork
from app.users.models import User
from app.users.repository import UserRepository

security_log = logging.getLogger("parley.security")

# Writing last_used_at on every request would turn every read into a write.
SESSION_TOUCH_INTERVAL = timedelta(minutes=1)


@dataclass(frozen=True)
class ClientInfo:
    user_agent: str | None
    ip_address: str | None


@dataclass(frozen=True)
class Principal:
    """Who is calling: the user and the session their token belongs to."""

    user: User
    session: AuthSession


@dataclass(frozen=True)
class CsrfProof:
    """What a cookie-authenticated request brought: the CSRF cookie and the header."""

    cookie: str | None
    header: str | None


class AuthService:
    def __init__(
        self,
        *,
        uow: UnitOfWork,
        users: UserRepository,
        sessions: AuthSessionRepository,
        refresh_tokens: RefreshTokenRepository,
        account_tokens: AccountTokens,
        guard: CredentialGuard,
        mfa: MfaService,
        notifier: Notifier,
        hasher: PasswordHasher,
        jwt: JWTCodec,
        settings: Settings,
        digest_key: bytes,
    ) -> None:
        self.uow = uow
        self.users = users
        self.sessions = sessions
        self.refresh_tokens = refresh_tokens
        self.account_tokens = account_tokens
        self.guard = guard
        self.mfa = mfa
        self.notifier = notifier
        self.hasher = hasher
        self.jwt = jwt
        self.settings = settings
        self.digest_key = digest_key

    @property
    def refresh_ttl(self) -> timedelta:
        return timedelta(days=self.settings.refresh_token_days)

    async def register(self, *, email: str, display_name: str, password: str) -> User:
        """Creates an account after the password policy passes and mails a verification link."""
        await check_password_policy(
            password,
            email=email,
            display_name=display_name,
            min_score=self.settings.password_min_score,
        )
        if await self.users.get_by_email(email) is not None:
            raise EmailTaken()
        user = User(
            email=email, display_name=display_name, password_hash=await self.hasher.hash(password)
        )
        if not await self.users.add_if_new(user):
            raise EmailTaken()
        now = utcnow()
        token = await self.account_tokens.issue(
            user,
            TokenPurpose.VERIFY_EMAIL,
            email=user.email,
            ttl=timedelta(hours=self.settings.email_verification_hours),
            now=now,
        )
        self.notifier.verification(user, email=user.email, token=token)
        security_log.info("account registered", extra={"event": "register"})
        await audit.record(
            self.uow,
            actions.USER_CREATED,
            actor=user.id,
            target=audit.Target("user", user.id),
            details={"method": "password"},
        )
        return user

    async def authenticate(self, *, email: str, password: str) -> User:
        """Checks credentials (with lockout); for an MFA account only the first step."""
        user = await self.guard.check_login(email, password)
        if not user.is_active:
            await self.record_sign_in(user, "password", outcome=actions.FAILED)
            raise SignInDisabled()
        return user

    async def record_sign_in(
        self, user: User, method: str, *, outcome: str = actions.SUCCEEDED
    ) -> None:
        """Audits a sign-in of `user` by `method` (password, mfa, oidc)."""
        details: dict[str, str] = {"method": method}
        if outcome != actions.SUCCEEDED:
            details["reason"] = "account_disabled"
        await audit.record(
            self.uow,
            actions.SIGN_IN,
            actor=user.id if outcome == actions.SUCCEEDED else None,
            target=audit.Target("user", user.id),
            outcome=outcome,
            details=details,
        )

    async def login(
        self, *, email: str, password: str, client: ClientInfo
    ) -> TokenPair | MfaChallenge:
        """Signs in: tokens, or, when MFA is on, a challenge to finish with a second factor."""
        user = await self.authenticate(email=email, password=password)
        if user.mfa_enabled:
            return self.mfa_challenge(user)
        await self.guard.succeed(user.email)
        security_log.info("signed in", extra={"event": "login", "target_user_id": str(user.id)})
        await self.record_sign_in(user, "password")
        return await self.start_session(user, client)

    def mfa_challenge(self, user: User) -> MfaChallenge:
        """The first step's answer for an MFA account: a challenge for POST /mfa/verify."""
        ttl = timedelta(minutes=self.settings.mfa_challenge_minutes)
        challenge, _expires_at = self.jwt.encode_mfa_challenge(user_id=user.id, ttl=ttl)
        security_log.info("mfa challenge issued", extra={"event": "login_mfa_challenge"})
        return MfaChallenge(challenge_token=challenge, expires_in=int(ttl.total_seconds()))

    async def sign_in_verified(
        self, user: User, client: ClientInfo, *, method: str, require_mfa: bool
    ) -> TokenPair | MfaChallenge:
        """Signs in a user whom another party (single sign-on) has authenticated: the same
        session and tokens as a password sign-in; with `require_mfa`, an MFA account gets the
        challenge instead, as after a password."""
        if require_mfa and user.mfa_enabled:
            return self.mfa_challenge(user)
        security_log.info(
            "signed in", extra={"event": "login", "method": method, "target_user_id": str(user.id)}
        )
        await self.record_sign_in(user, method)
        return await self.start_session(user, client)

    async def complete_mfa_login(
        self, *, challenge_token: str, code: str, client: ClientInfo
    ) -> TokenPair:
        """The second sign-in step: a TOTP or recovery code against the challenge."""
        try:
            user_id = self.jwt.decode_mfa_challenge(challenge_token)
        except TokenError as exc:
            raise InvalidMfaChallenge() from exc
        user = await self.users.get(user_id)
        if user is None or not user.mfa_enabled:
            raise InvalidMfaChallenge()
        if not user.is_active:
            await self.record_sign_in(user, "mfa", outcome=actions.FAILED)
            raise SignInDisabled()
        await self.guard.check_second_factor(
            user,
            lambda: self.mfa.verify_second_factor(user, code),
            InvalidMfaCode(),
            sign_in="mfa",
        )
        await self.guard.succeed(user.email)
        security_log.info(
            "signed in with mfa", extra={"event": "login", "target_user_id": str(user.id)}
        )
        await self.record_sign_in(user, "mfa")
        return await self.start_session(user, client)

    async def start_session(self, user: User, client: ClientInfo) -> TokenPair:
        """Opens a new device session and issues its first token pair."""
        now = utcnow()
        session = AuthSession(
            user_id=user.id,
            created_at=now,
            last_used_at=now,
            expires_at=now + self.refresh_ttl,
            user_agent=(client.user_agent or "")[:255] or None,
            ip_address=client.ip_address,
        )
        await self.sessions.add(session)
        return await self._issue(user, session, now)

    async def refresh(self, raw_token: str) -> TokenPair:
        """Rotates a refresh token. A token presented twice revokes its whole session.

        A refresh from the cookie needs no CSRF token: a forged one only rotates the victim's
        own cookies and shows the attacker nothing, and frontends that lost their CSRF token
        (a page reload) get a fresh one here.
        """
        now = utcnow()
        token = await self.refresh_tokens.get_by_hash(hash_token(raw_token))
        if token is None:
            raise InvalidToken()
        found = await self.sessions.get_with_user(token.session_id)
        if found is None:
            raise InvalidToken()
        session, user = found
        if token.used_at is not None or not await self.refresh_tokens.claim(token.id, now):
            # Someone replayed a rotated token: either the user or a thief holds a copy, and we
            # cannot tell which, so the session ends for both.
            await self.sessions.revoke(session.id, now=now, reason="refresh_reuse")
            raise RefreshTokenReused()
        if not session.is_active(now) or token.expires_at <= now:
            raise InvalidToken()
        if not user.is_active:
            raise AccountDisabled()
        session.last_used_at = now
        session.expires_at = now + self.refresh_ttl
        return await self._issue(user, session, now)

    async def resolve_access_token(self, token: str) -> Principal:
        """The user and session behind an access token, which must still be live."""
        try:
            claims = self.jwt.decode_access(token)
        except TokenError as exc:
            raise InvalidToken() from exc
        found = await self.sessions.get_with_user(claims.session_id)
        now = utcnow()
        if found is None:
            raise InvalidToken()
        session, user = found
        if user.id != claims.user_id or not session.is_active(now):
            raise InvalidToken()
        if not user.is_active:
            raise AccountDisabled()
        if now - session.last_used_at > SESSION_TOUCH_INTERVAL:
            await self.sessions.touch(session.id, now)
        return Principal(user=user, session=session)

    def check_csrf(self, principal: Principal, proof: CsrfProof) -> None:
        """Cookie-authenticated unsafe requests must echo the session's CSRF token."""
        if not csrf_token_valid(
            self.digest_key, principal.session.id, cookie=proof.cookie, header=proof.header
        ):
            security_log.warning("csrf check failed", extra={"event": "csrf_failed"})
            raise CsrfFailed()

    async def logout(self, principal: Principal) -> None:
        await self.sessions.revoke(principal.session.id, now=utcnow(), reason="logout")

    async def logout_all(self, principal: Principal) -> int:
        count = await self.sessions.revoke_all(principal.user.id, now=utcnow(), reason="logout_all")
        await audit.record(
            self.uow,
            actions.SIGN_OUT_EVERYWHERE,
            actor=principal.user.id,
            target=audit.Target("user", principal.user.id),
            details={"sessions": count},
        )
        return count

    async def list_sessions(self, user: User) -> list[AuthSession]:
        return await self.sessions.list_active(user.id, utcnow())

    async def revoke_session(self, user: User, session_id: uuid.UUID) -> None:
        """Ends one of the user's sessions; another user's session id is simply not found."""
        session = await self.sessions.get(session_id)
        if session is None or session.user_id != user.id or session.revoked_at is not None:
            raise SessionNotFound()
        await self.sessions.revoke(session.id, now=utcnow(), reason="revoked")
        await audit.record(
            self.uow,
            actions.SESSION_REVOKED,
            actor=user.id,
            target=audit.Target("session", session.id),
        )

    async def _issue(self, user: User, session: AuthSession, now: datetime) -> TokenPair:
        raw_refresh = new_opaque_token()
        await self.refresh_tokens.add(
            RefreshToken(
                session_id=session.id,
                token_hash=hash_token(raw_refresh),
                created_at=now,
                expires_at=now + self.refresh_ttl,
            )
        )
        access, access_expires_at = self.jwt.encode_access(user_id=user.id, session_id=session.id)
        return TokenPair(
            access_token=access,
            refresh_token=raw_refresh,
            expires_in=int((access_expires_at - now).total_seconds()),
            refresh_expires_in=int(self.refresh_ttl.total_seconds()),
            session_id=session.id,
            csrf_token=issue_csrf_token(self.digest_key, session.id),
            user=UserRead.model_validate(user),
        )
