import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from app.auth.callers import KeyGrant
from app.core.config import Settings
from app.core.db import utcnow
from app.core.errors import AppError
from app.groups.access import GroupAccess
from app.usage.models import UsageRecord
from app.usage.repository import UsageRepository
from app.usage.schemas import MyUsage, QuotaRead, UsageReport, UsageRow
from app.users.models import User

DEFAULT_REPORT_DAYS = 30


class QuotaExceeded(AppError):
    status_code = 429
    code = "quota_exceeded"
    message = "You have used today's token quota; it resets at midnight UTC."


class ApiKeyQuotaExceeded(AppError):
    status_code = 429
    code = "api_key_quota_exceeded"
    message = "This API key has used its daily token limit; it resets at midnight UTC."


class ApiKeyModelNotAllowed(AppError):
    status_code = 403
    code = "api_key_model_not_allowed"
    message = "This API key may not use this model."


class InvalidRange(AppError):
    status_code = 422
    code = "invalid_range"
    message = "`from` must not be after `to`, and the range must be at most 366 days."


@dataclass(frozen=True)
class Quota:
    limit: int | None
    used: int
    resets_at: datetime

    @property
    def remaining(self) -> int | None:
        return None if self.limit is None else max(self.limit - self.used, 0)

    def headers(self) -> dict[str, str]:
        if self.limit is None:
            return {}
        return {"X-Quota-Limit": str(self.limit), "X-Quota-Remaining": str(self.remaining)}

    def read(self) -> QuotaRead:
        return QuotaRead(
            daily_limit=self.limit,
            used_today=self.used,
            remaining_today=self.remaining,
            resets_at=self.resets_at,
        )


def _next_midnight(now: datetime) -> datetime:
    return datetime.combine(now.date() + timedelta(days=1), time(), tzinfo=UTC)


def daily_limit(user: User, settings: Settings) -> int | None:
    """The user's daily token quota: their own, else DAILY_TOKEN_QUOTA (None: no limit)."""
    own = getattr(user, "daily_token_quota", None)
    return own if own is not None else settings.daily_token_quota


class UsageService:
    def __init__(
        self, *, usage: UsageRepository, settings: Settings, groups: GroupAccess | None = None
    ) -> None:
        """`groups`: the request's view of groups, whose quotas apply; None for recording
        only (titles made in the background)."""
        self.usage = usage
        self.settings = settings
        self.groups = groups

    async def limit_for(self, user: User) -> int | None:
        """The user's daily token limit: their own quota (or DAILY_TOKEN_QUOTA), or their
        groups' tightest quota when it is tighter."""
        limit = daily_limit(user, self.settings)
        group = await self.groups.daily_token_quota(user.id) if self.groups is not None else None
        if group is not None and (limit is None or group < limit):
            return group
        return limit

    async def quota(self, user: User) -> Quota:
        now = utcnow()
        used = await self.usage.used_on(user.id, now.date())
        return Quota(limit=await self.limit_for(user), used=used, resets_at=_next_midnight(now))

    async def lock(self, user: User, *, api_key: KeyGrant | None = None) -> None:
        """Takes the user's quota lock. Call it first in the transaction, before any insert
        that references the user: Postgres would otherwise hold key-share locks that deadlock
        two concurrent requests upgrading to this lock."""
        if await self.limit_for(user) is not None or (
            api_key is not None and api_key.daily_token_limit is not None
        ):
            await self.usage.lock_user(user.id)

    async def reserve(
        self,
        user: User,
        *,
        model: str,
        kind: str,
        prompt_tokens: int,
        completion_tokens: int,
        message_id: uuid.UUID | None = None,
        generation_id: uuid.UUID | None = None,
        api_key: KeyGrant | None = None,
    ) -> tuple[UsageRecord, Quota]:
        """Checks the daily quota and holds the reply's likely tokens against it.

        The check and the reservation happen under a per-user lock, so concurrent requests see
        each other's reservations and cannot overspend by more than one reply's overrun.
        Refused before the upstream is called. With the request's API key (`current_key()`),
        the key's model list and daily token limit apply too, on top of the user's quota, and
        the usage is recorded against the key.
        """
        limit = await self.limit_for(user)
        now = utcnow()
        if api_key is not None:
            await self._check_key(user, api_key, model=model, prompt_tokens=prompt_tokens, now=now)
        if limit is not None:
            await self.usage.lock_user(user.id)  # already held when lock() came first
            used = await self.usage.used_on(user.id, now.date())
            if used + prompt_tokens > limit:
                retry = int((_next_midnight(now) - now).total_seconds()) + 1
                raise QuotaExceeded(headers={"Retry-After": str(retry)})
        else:
            used = 0
        record = _record(
            user.id,
            now,
            model=model,
            kind=kind,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            estimated=True,
            pending=True,
            message_id=message_id,
            generation_id=generation_id,
            api_key_id=api_key.id if api_key is not None else None,
        )
        await self.usage.add(record)
        quota = Quota(
            limit=limit,
            used=used + prompt_tokens + completion_tokens,
            resets_at=_next_midnight(now),
        )
        return record, quota

    async def _check_key(
        self, user: User, api_key: KeyGrant, *, model: str, prompt_tokens: int, now: datetime
    ) -> None:
        if not api_key.may_use(model):
            raise ApiKeyModelNotAllowed(f"This API key may not use the model {model!r}.")
        if api_key.daily_token_limit is None:
            return
        await self.usage.lock_user(user.id)  # the key's tokens are the user's: one lock
        used = await self.usage.used_by_key_on(api_key.id, now.date())
        if used + prompt_tokens > api_key.daily_token_limit:
            retry = int((_next_midnight(now) - now).total_seconds()) + 1
            raise ApiKeyQuotaExceeded(headers={"Retry-After": str(retry)})

    async def record(
        self,
        user_id: uuid.UUID,
        *,
        model: str,
        kind: str,
        prompt_tokens: int,
        completion_tokens: int,
        estimated: bool,
    ) -> None:
        """Usage that needs no reservation (titles made in the background)."""
        await self.usage.add(
            _record(
                user_id,
                utcnow(),
                model=model,
                kind=kind,
                prompt_tokens=prompt_tokens,
                completion_tokens=completion_tokens,
                estimated=estimated,
            )
        )

    async def report(
        self,
        *,
        start: date | None,
        end: date | None,
        group_by: str,
        user_id: uuid.UUID | None = None,
        limit: int | None = None,
    ) -> UsageReport:
        end = end or utcnow().date()
        span = timedelta(days=DEFAULT_REPORT_DAYS - 1)
        # From the earliest date there is when `to` is too early to go back the whole span.
        start = start or max(end, date.min + span) - span
        if start > end or (end - start).days > 366:
            raise InvalidRange()
        rows = await self.usage.report(
            start=start, end=end, group_by=group_by, user_id=user_id, limit=limit
        )
        emails = await self.usage.emails([r["key"] for r in rows]) if group_by == "user" else {}
        names = await self.usage.key_names([r["key"] for r in rows]) if group_by == "key" else {}
        items = [_row(r, email=emails.get(r["key"]), name=names.get(r["key"])) for r in rows]
        totals = _row(
            {
                "key": "total",
                **{
                    name: sum(r[name] for r in rows)
                    for name in (
                        "requests",
                        "prompt_tokens",
                        "completion_tokens",
                        "estimated_tokens",
                    )
                },
            }
        )
        return UsageReport(start=start, end=end, group_by=group_by, items=items, totals=totals)

    async def my_usage(
        self, user: User, *, start: date | None, end: date | None, group_by: str
    ) -> MyUsage:
        report = await self.report(start=start, end=end, group_by=group_by, user_id=user.id)
        quota = await self.quota(user)
        return MyUsage(**report.model_dump(), quota=quota.read())


def _row(row: dict[str, Any], *, email: str | None = None, name: str | None = None) -> UsageRow:
    total = int(row["prompt_tokens"]) + int(row["completion_tokens"])
    estimated = int(row["estimated_tokens"])
    return UsageRow(
        # group_by=key: usage without a key (access tokens) is the row "none"; group_by=deployment:
        # usage with no deployment recorded (echo, or before routing) likewise.
        key=str(row["key"]) if row["key"] is not None else "none",
        email=email,
        name=name,
        requests=int(row["requests"]),
        prompt_tokens=int(row["prompt_tokens"]),
        completion_tokens=int(row["completion_tokens"]),
        total_tokens=total,
        reported_tokens=total - estimated,
        estimated_tokens=estimated,
    )


def _record(user_id: uuid.UUID, now: datetime, **fields: Any) -> UsageRecord:
    """A usage row dated `now` (its UTC day is the unit of quotas and reports)."""
    return UsageRecord(user_id=user_id, day=now.date(), created_at=now, **fields)
