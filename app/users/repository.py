from sqlalchemy import func, or_, select

from app.auth.repository import UserRepository
from app.core.emails import canonical_email
from app.users.models import User


def _like_pattern(text: str) -> str:
    """A LIKE pattern matching `text` literally anywhere (%, _ and the escape are escaped)."""
    escaped = text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


class UserDirectory(UserRepository):
    """The admin's view of users: search and pages."""

    async def search(self, query: str | None, *, limit: int, offset: int) -> tuple[list[User], int]:
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
