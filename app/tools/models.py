from datetime import datetime

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from app.core.db import Base, utcnow


class ToolSetting(Base):
    """An admin's switch for a tool (`server.tool`) or a whole MCP server (`server`); a tool
    with no row is enabled."""

    __tablename__ = "tool_setting"

    tool_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    enabled: Mapped[bool]
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
