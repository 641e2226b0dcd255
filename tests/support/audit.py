"""Reading the audit log as an administrator would."""

from typing import Any

import httpx

from tests.support.api import SignedInUser


async def audit_events(
    client: httpx.AsyncClient, admin: SignedInUser, **filters: str
) -> list[dict[str, Any]]:
    """Every event matching `filters`, newest first (all pages)."""
    events: list[dict[str, Any]] = []
    params: dict[str, str] = {**filters, "limit": "500"}
    while True:
        response = await client.get("/api/admin/audit", params=params, headers=admin.headers)
        assert response.status_code == 200, response.text
        body = response.json()
        events.extend(body["items"])
        if body["next_cursor"] is None:
            return events
        params["cursor"] = body["next_cursor"]


async def one_event(
    client: httpx.AsyncClient, admin: SignedInUser, action: str, **filters: str
) -> dict[str, Any]:
    """The one event of `action` (matching `filters`); fails if there are none or several."""
    events = await audit_events(client, admin, action=action, **filters)
    assert len(events) == 1, events
    return events[0]
