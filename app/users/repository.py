"""The one repository of the user_account table: look-ups, the admin's search and pages, deletion,
and the TOTP replay guard. Auth, accounts and the CLI all use it."""

import uuid

from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.exc import IntegrityError

from app.core.emails import canonical_email
from app.core.repository import Repository
from app.users.models import User


def _like_pattern(text: str) -> str:
    """A LIKE pattern matching `text` literally anywhere (%, _ and the escape are escaped)."""
    escaped = text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


class UserRepository(Repository[User]):
    model = User

    async def add_if_new(self, user: User) -> bool:
        """Adds the user unless the email is taken (a race lost on the unique email included):
        in a nested transaction, so a lost race leaves the unit of work usable."""
        try:
            async with self.session.begin_nested():
                await self.add(user)
        except IntegrityError:
            return False
        return True

    async def get_by_email(self, email: str) -> User | None:
        return await self.session.scalar(select(User).where(User.email == email))

    async def search(self, query: str | None, *, limit: int, offset: int) -> tuple[list[User], int]:
        """Newest first; `query` matches part of the email or display name, case-insensitively."""
        condition = None
        if query:
            # Typed as the user typed it; stored addresses are in canonical form.
            pattern = _like_pattern(canonical_email(query))
            condition = or_(
                func.lower(User.email).like(pattern, escape="\\"),
                func.lower(User.display_name).like(pattern, escape="\\"),
            )
        count = select(func.count()).select_from(User)
        page = select(User).order_by(User.created_at.desc(), User.id).limit(limit).offset(offset)
        if condition is not None:
            count = count.where(condition)
            page = page.where(condition)
        total = int(await self.session.scalar(count) or 0)
        return list(await self.session.scalars(page)), total

    async def claim_mfa_step(self, user_id: uuid.UUID, step: int) -> bool:
        """Records `step` as the last TOTP step used; False if it (or a later one) already was.

        One conditional UPDATE, so two requests racing with the same code cannot both win.
        """
        result = await self.session.execute(
            update(User)
            .where(
                User.id == user_id,
                (User.mfa_last_used_step.is_(None)) | (User.mfa_last_used_step < step),
            )
            .values(mfa_last_used_step=step)
            .execution_options(synchronize_session=False)
        )
        return bool(getattr(result, "rowcount", 0))

    async def delete_by_id(self, user_id: uuid.UUID) -> None:
        """Deletes the user; the database cascades to every row that references them."""
        await self.session.execute(
            delete(User).where(User.id == user_id).execution_options(synchronize_session=False)
        )
