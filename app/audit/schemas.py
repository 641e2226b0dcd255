import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from app.core.cursor import Cursor


class AuditEventRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    time: datetime
    actor: str
    action: str
    target_type: str | None
    target_id: str | None
    outcome: str
    ip: str | None
    user_agent: str | None
    request_id: str | None
    details: dict[str, Any] | None


class AuditPage(BaseModel):
    items: list[AuditEventRead]
    # Pass as `cursor` for the next (older) page; null on the last one.
    next_cursor: str | None


class AuditCursor(Cursor):
    k: Literal["audit"] = "audit"
    t: datetime
    i: uuid.UUID
