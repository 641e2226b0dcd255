from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, Field

GroupBy = Literal["day", "model", "key", "deployment"]
AdminGroupBy = Literal["day", "model", "user", "key", "deployment"]


class UsageRow(BaseModel):
    key: str = Field(
        description="The day (YYYY-MM-DD), the model, the user id, the API key id "
        '("none": requests with an access token), or `<model>/<deployment>` that answered '
        '("none": no deployment recorded, as for the echo model).'
    )
    email: str | None = Field(default=None, description="With group_by=user.")
    name: str | None = Field(default=None, description="With group_by=key: the key's name.")
    requests: int
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    reported_tokens: int = Field(description="Tokens as counted by the upstream.")
    estimated_tokens: int = Field(description="Tokens estimated because the upstream sent none.")


class QuotaRead(BaseModel):
    daily_limit: int | None = Field(description="Null: no limit.")
    used_today: int = Field(description="Including tokens reserved by replies in progress.")
    remaining_today: int | None
    resets_at: datetime


class UsageReport(BaseModel):
    start: date = Field(serialization_alias="from")
    end: date = Field(serialization_alias="to")
    group_by: str
    items: list[UsageRow]
    totals: UsageRow


class MyUsage(UsageReport):
    quota: QuotaRead
