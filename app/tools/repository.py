from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as postgres_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from app.core.db import utcnow
from app.core.repository import Repository
from app.tools.models import ToolSetting


class ToolSettingRepository(Repository[ToolSetting]):
    model = ToolSetting

    async def disabled(self) -> set[str]:
        """The ids of the tools and servers switched off."""
        rows = await self.session.scalars(
            select(ToolSetting.tool_id).where(ToolSetting.enabled.is_(False))
        )
        return set(rows)

    async def set_enabled(self, tool_id: str, enabled: bool) -> None:
        dialect = self.session.get_bind().dialect.name
        make_insert = postgres_insert if dialect == "postgresql" else sqlite_insert
        values = {"enabled": enabled, "updated_at": utcnow()}
        await self.session.execute(
            make_insert(ToolSetting)
            .values(tool_id=tool_id, **values)
            .on_conflict_do_update(index_elements=["tool_id"], set_=values)
        )
