import logging
import uuid
from collections.abc import Sequence

from app import audit
from app.accounts.errors import CannotModifySelf, PasswordRequired, UserNotFound
from app.accounts.schemas import AdminUserUpdate, ProfileUpdate
from app.audit import actions
from app.auth.account import AccountService
from app.auth.errors import EmailTaken
from app.auth.guard import CredentialGuard
from app.auth.repository import AuthSessionRepository
from app.core.db import utcnow
from app.core.deps import AccountDeletionHook
from app.core.uow import UnitOfWork
from app.users.models import Role, User
from app.users.repository import UserRepository

security_log = logging.getLogger("parley.security")
audit_log = logging.getLogger("parley.audit")


class ProfileService:
    """The signed-in user's own account: profile, preferences, email, deletion."""

    def __init__(
        self,
        uow: UnitOfWork,
        *,
        guard: CredentialGuard,
        account: AccountService,
        deletion_hooks: Sequence[AccountDeletionHook] = (),
    ) -> None:
        self.uow = uow
        self.users = uow.get(UserRepository)
        self.guard = guard
        self.account = account
        self.deletion_hooks = deletion_hooks

    async def update(self, user: User, changes: ProfileUpdate) -> User:
        """Applies the fields sent; a new email needs the password and waits for its link."""
        if changes.email is not None and changes.email != user.email:
            await self._request_email_change(user, changes.email, changes.current_password)
        elif changes.email is not None and user.pending_email is not None:
            # Asking for the current address again cancels a pending change.
            user.pending_email = None
        if changes.display_name is not None:
            user.display_name = changes.display_name
        if changes.preferences is not None:
            for field in changes.preferences.model_fields_set:
                setattr(user, field, getattr(changes.preferences, field))
        await self.uow.flush()
        return user

    async def delete(self, user: User, *, password: str) -> None:
        """Deletes the account and, through ON DELETE CASCADE, everything that belongs to it."""
        await self.guard.reauthenticate(user, password)
        await self.guard.succeed(user.email)
        for hook in self.deletion_hooks:
            await hook(self.uow, user.id)
        await self.users.delete_by_id(user.id)
        await audit.record(
            self.uow, actions.USER_DELETED, actor=user.id, target=audit.Target("user", user.id)
        )
        security_log.info(
            "account deleted", extra={"event": "account_deleted", "target_user_id": str(user.id)}
        )

    async def _request_email_change(self, user: User, email: str, password: str | None) -> None:
        if password is None:
            raise PasswordRequired()
        await self.guard.reauthenticate(user, password)
        if await self.users.get_by_email(email) is not None:
            raise EmailTaken()
        user.pending_email = email
        await self.account.send_verification(user, email=email)
        security_log.info("email change requested", extra={"event": "email_change_requested"})


class AdminService:
    """What administrators do to other accounts."""

    def __init__(self, uow: UnitOfWork) -> None:
        self.uow = uow
        self.users = uow.get(UserRepository)
        self.sessions = uow.get(AuthSessionRepository)

    async def list_users(
        self, query: str | None, *, limit: int, offset: int
    ) -> tuple[list[User], int]:
        """Users newest first; `query` matches email or display name, case-insensitively."""
        return await self.users.search(query, limit=limit, offset=offset)

    async def update_user(self, admin: User, user_id: uuid.UUID, changes: AdminUserUpdate) -> User:
        """Enables or disables, sets the role and the quota; disabling ends every session."""
        user = await self.users.get(user_id)
        if user is None:
            raise UserNotFound()
        fields = changes.model_fields_set
        if user.id == admin.id and (
            ("is_active" in fields and changes.is_active is False)
            or ("role" in fields and changes.role not in (None, Role.ADMIN))
        ):
            # The last administrator locking themselves out would need the CLI to undo.
            raise CannotModifySelf()
        applied: dict[str, object] = {}
        target = audit.Target("user", user.id)
        if "is_active" in fields and changes.is_active is not None:
            if user.is_active != changes.is_active:
                action = actions.USER_ENABLED if changes.is_active else actions.USER_DISABLED
                await audit.record(self.uow, action, actor=admin.id, target=target)
            user.is_active = changes.is_active
            applied["is_active"] = changes.is_active
        if "role" in fields and changes.role is not None:
            if user.role != changes.role:
                await audit.record(
                    self.uow,
                    actions.ROLE_CHANGED,
                    actor=admin.id,
                    target=target,
                    details={"from": str(user.role), "to": str(changes.role)},
                )
            user.role = changes.role
            applied["role"] = str(changes.role)
        if "daily_token_quota" in fields:
            user.daily_token_quota = changes.daily_token_quota
            applied["daily_token_quota"] = changes.daily_token_quota
        await self.uow.flush()
        if applied.get("is_active") is False:
            # Access tokens are checked against the user on every request, so they already fail;
            # revoking the sessions also keeps them dead if the account is enabled again.
            await self.sessions.revoke_all(user.id, now=utcnow(), reason="disabled")
        audit_log.info(
            "admin changed a user",
            extra={
                "event": "admin_user_update",
                "admin_id": str(admin.id),
                "target_user_id": str(user.id),
                "changes": applied,
            },
        )
        return user
