"""Single sign-on: the sign-in that begins at GET /api/auth/oidc/login and ends at the callback.

`begin()` makes the flow's secrets (state, nonce, PKCE verifier), keeps them in a short-lived
encrypted cookie, and sends the browser to the provider. `finish()` checks the state against
the cookie, exchanges the code, verifies the ID token (app/auth/oidc.py), finds or links or
creates the account, applies the groups claim, and signs the user in through AuthService, the
same session and cookies as a password sign-in.

Accounts match by (issuer, subject) first (`user_identity`). Without a link, an existing account
is linked only when the provider marks the email `email_verified`: an unverified email never
takes over an account (`sso_email_unverified`).
"""

import json
import logging
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import httpx
from pydantic_core import PydanticCustomError

from app import audit
from app.audit import actions
from app.auth.models import UserIdentity
from app.auth.oidc import (
    ACCOUNT_DISABLED,
    EMAIL_MISSING,
    EMAIL_UNVERIFIED,
    PROVIDER_ERROR,
    SIGNUP_DISABLED,
    STATE_INVALID,
    OidcClient,
    OidcFailure,
)
from app.auth.repository import UserIdentityRepository
from app.auth.schemas import MfaChallenge, TokenPair
from app.auth.service import AuthService, ClientInfo
from app.core.config import Settings
from app.core.db import utcnow
from app.core.emails import normalise_email
from app.core.security import PasswordHasher, SecretBox, SecretBoxError, derive_key
from app.core.uow import UnitOfWork
from app.users.models import Role, User
from app.users.repository import UserRepository

security_log = logging.getLogger("parley.security")

STATE_COOKIE = "parley_oidc"
STATE_COOKIE_PATH = "/api/auth/oidc"
# How long the browser has to sign in at the provider and come back.
STATE_SECONDS = 600
_MAX_DISPLAY_NAME = 100


class GroupSync(Protocol):
    """Sets a user's Parley groups from the provider's groups claim, at each SSO sign-in.

    The groups package implements it (and creates groups Parley lacks when `create_missing`,
    OIDC_CREATE_GROUPS); the runtime holds the one in use (`runtime.group_sync`). Called in the
    sign-in's unit of work, only when OIDC_GROUPS_CLAIM is set and the claim is present."""

    async def sync(
        self, uow: UnitOfWork, user: User, groups: Sequence[str], *, create_missing: bool
    ) -> None: ...


class NoGroupSync:
    """The default until groups exist: the claim sets nothing (OIDC_ADMIN_GROUPS still works)."""

    async def sync(
        self, uow: UnitOfWork, user: User, groups: Sequence[str], *, create_missing: bool
    ) -> None:
        return None


@dataclass(frozen=True)
class SsoParts:
    """The long-lived parts of single sign-on (runtime.sso; None when OIDC is not set up)."""

    client: OidcClient
    # Encrypts the state cookie (a key of its own, derived from SECRET_KEY).
    state_box: SecretBox

    @classmethod
    def build(cls, settings: Settings, http: Callable[[], httpx.AsyncClient]) -> "SsoParts | None":
        if not settings.oidc_enabled:
            return None
        return cls(
            client=OidcClient(settings, http),
            state_box=SecretBox(derive_key(settings.secret_key, purpose="parley:oidc-state:v1")),
        )


@dataclass(frozen=True)
class FlowState:
    """What the login step keeps for the callback, in the encrypted state cookie."""

    state: str
    nonce: str
    code_verifier: str
    next_path: str
    expires_at: float

    def seal(self, box: SecretBox) -> str:
        return box.encrypt(json.dumps(self.__dict__))

    @classmethod
    def open(cls, box: SecretBox, sealed: str | None, *, now: float) -> "FlowState":
        """The flow's state; OidcFailure(STATE_INVALID) when missing, forged or expired."""
        if not sealed or len(sealed) > 4096:
            raise OidcFailure(STATE_INVALID, "no state cookie")
        try:
            found = cls(**json.loads(box.decrypt(sealed)))
        except (SecretBoxError, ValueError, TypeError) as exc:
            raise OidcFailure(STATE_INVALID, "state cookie unreadable") from exc
        if found.expires_at < now:
            raise OidcFailure(STATE_INVALID, "state expired")
        return found


@dataclass(frozen=True)
class Profile:
    """What the provider says about the person signing in."""

    issuer: str
    subject: str
    email: str | None
    email_verified: bool
    display_name: str
    groups: list[str] | None


def safe_next(path: str | None) -> str:
    """A path on this site to return to after signing in; "/" for anything else."""
    if path and path.startswith("/") and not path.startswith("//") and "\\" not in path:
        return path[:512]
    return "/"


class SsoService:
    def __init__(
        self,
        *,
        uow: UnitOfWork,
        auth: AuthService,
        client: OidcClient,
        state_box: SecretBox,
        hasher: PasswordHasher,
        group_sync: GroupSync,
        settings: Settings,
    ) -> None:
        self.uow = uow
        self.users = uow.get(UserRepository)
        self.identities = uow.get(UserIdentityRepository)
        self.auth = auth
        self.client = client
        self.state_box = state_box
        self.hasher = hasher
        self.group_sync = group_sync
        self.settings = settings

    async def begin(self, next_path: str | None) -> tuple[str, str]:
        """The provider's authorization URL and the sealed state cookie to set."""
        flow = FlowState(
            state=secrets.token_urlsafe(32),
            nonce=secrets.token_urlsafe(32),
            code_verifier=secrets.token_urlsafe(64),
            next_path=safe_next(next_path),
            expires_at=time.time() + STATE_SECONDS,
        )
        url = await self.client.authorization_url(
            state=flow.state, nonce=flow.nonce, code_verifier=flow.code_verifier
        )
        return url, flow.seal(self.state_box)

    async def finish(
        self,
        *,
        sealed_state: str | None,
        state: str | None,
        code: str | None,
        error: str | None,
        client: ClientInfo,
    ) -> tuple[TokenPair | MfaChallenge, str]:
        """Signs in from the provider's answer: the tokens (or an MFA challenge) and the path to
        return to. OidcFailure, with nobody signed in, for anything wrong."""
        flow = FlowState.open(self.state_box, sealed_state, now=time.time())
        if not state or not secrets.compare_digest(state.encode(), flow.state.encode()):
            raise OidcFailure(STATE_INVALID, "state does not match")
        if error is not None:
            raise OidcFailure(PROVIDER_ERROR, f"provider: {error[:64]}")
        if not code:
            raise OidcFailure(PROVIDER_ERROR, "no code")
        tokens = await self.client.exchange(code, flow.code_verifier)
        claims = await self.client.verify_id_token(tokens, nonce=flow.nonce)
        if self._needs_userinfo(claims):
            claims = {**await self.client.userinfo(tokens, claims["sub"]), **claims}
        profile = self._profile(claims)
        user = await self._account(profile)
        if profile.groups is not None:
            await self._apply_groups(user, profile.groups)
        result = await self.auth.sign_in_verified(
            user, client, method="oidc", require_mfa=self.settings.oidc_require_mfa
        )
        return result, flow.next_path

    def _needs_userinfo(self, claims: dict[str, Any]) -> bool:
        groups_claim = self.settings.oidc_groups_claim
        return "email" not in claims or (groups_claim is not None and groups_claim not in claims)

    def _profile(self, claims: dict[str, Any]) -> Profile:
        email: str | None = None
        raw_email = claims.get("email")
        if isinstance(raw_email, str) and raw_email:
            try:
                email = normalise_email(raw_email)
            except (ValueError, PydanticCustomError):
                email = None
        verified = claims.get("email_verified") in (True, "true")
        name = next(
            (
                value.strip()
                for key in ("name", "preferred_username", "nickname")
                if isinstance(value := claims.get(key), str) and value.strip()
            ),
            email.split("@", 1)[0] if email else "SSO user",
        )
        groups: list[str] | None = None
        claim = self.settings.oidc_groups_claim
        if claim and claim in claims:
            raw = claims[claim]
            items = [raw] if isinstance(raw, str) else raw if isinstance(raw, list) else []
            groups = [g for g in items if isinstance(g, str) and g][:500]
        return Profile(
            issuer=str(claims["iss"]),
            subject=str(claims["sub"]),
            email=email,
            email_verified=verified,
            display_name=name.replace("\x00", "")[:_MAX_DISPLAY_NAME],
            groups=groups,
        )

    async def _account(self, profile: Profile) -> User:
        """The linked account; else the verified email's account, now linked; else a new one.
        Every refusal comes before the first write, so a refused sign-in changes nothing."""
        now = utcnow()
        identity = await self.identities.find(profile.issuer, profile.subject)
        if identity is not None:
            user = await self.users.get(identity.user_id)
            if user is None or not user.is_active:
                raise OidcFailure(ACCOUNT_DISABLED, "account disabled")
            identity.last_sign_in_at = now
            identity.email = profile.email
            return user
        if profile.email is None:
            raise OidcFailure(EMAIL_MISSING, "no usable email claim")
        user = await self._user_by_email(profile)
        await self.identities.add(
            UserIdentity(
                user_id=user.id,
                issuer=profile.issuer,
                subject=profile.subject,
                email=profile.email,
                created_at=now,
                last_sign_in_at=now,
            )
        )
        await audit.record(
            self.uow,
            actions.IDENTITY_LINKED,
            actor=user.id,
            target=audit.Target("user", user.id),
            details={"issuer": profile.issuer, "subject": profile.subject[:128]},
        )
        return user

    async def _user_by_email(self, profile: Profile) -> User:
        assert profile.email is not None
        existing = await self.users.get_by_email(profile.email)
        if existing is not None:
            if not profile.email_verified:
                # Anyone can claim any address at some providers: only a verified one links.
                raise OidcFailure(EMAIL_UNVERIFIED, "an account has this unverified email")
            if not existing.is_active:
                raise OidcFailure(ACCOUNT_DISABLED, "account disabled")
            if existing.email_verified_at is None:
                existing.email_verified_at = utcnow()
            return existing
        if not self.settings.oidc_allow_signup:
            raise OidcFailure(SIGNUP_DISABLED, "no account and OIDC_ALLOW_SIGNUP is off")
        user = User(
            email=profile.email,
            display_name=profile.display_name,
            # No password: a random one nobody knows (a reset by mail can set a real one).
            password_hash=await self.hasher.hash(secrets.token_urlsafe(32)),
            email_verified_at=utcnow() if profile.email_verified else None,
        )
        if not await self.users.add_if_new(user):
            # Registered in between: try again as an existing account.
            return await self._user_by_email(profile)
        security_log.info("account registered", extra={"event": "register", "method": "oidc"})
        await audit.record(
            self.uow,
            actions.USER_CREATED,
            actor=user.id,
            target=audit.Target("user", user.id),
            details={"method": "oidc", "issuer": profile.issuer},
        )
        return user

    async def _apply_groups(self, user: User, groups: list[str]) -> None:
        """OIDC_ADMIN_GROUPS sets the role both ways; the groups go to the group sync."""
        admin_groups = set(self.settings.oidc_admin_groups)
        if admin_groups:
            role = Role.ADMIN if admin_groups.intersection(groups) else Role.USER
            if user.role != role:
                await audit.record(
                    self.uow,
                    actions.ROLE_CHANGED,
                    actor=actions.SYSTEM,
                    target=audit.Target("user", user.id),
                    details={"from": str(user.role), "to": str(role), "by": "oidc_admin_groups"},
                )
                user.role = role
        await self.group_sync.sync(
            self.uow, user, groups, create_missing=self.settings.oidc_create_groups
        )
        await self.uow.flush()
