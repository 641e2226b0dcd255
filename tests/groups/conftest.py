"""Groups run against Parley on a real uvicorn with the fake upstream (its model `fake-model`
is the one restricted), with an administrator made by the CLI's own code path."""

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from app.cli import create_admin
from app.core.db import Database
from tests.support.api import SignedInUser, register
from tests.support.upstream_fixtures import Parley


@pytest.fixture
async def admin(parley: Parley) -> SignedInUser:
    user = await register(parley.http, display_name="Root Admin")
    await create_admin(
        parley.app.state.runtime.settings,
        email=user.email,
        display_name="Root Admin",
        password_env="UNUSED_FOR_PROMOTION",
        promote=True,
    )
    return user


@pytest.fixture
async def db(parley: Parley) -> AsyncIterator[Database]:
    """The app's database on the test's own event loop (the app serves on another thread's)."""
    database = Database(parley.app.state.runtime.settings)
    yield database
    await database.dispose()


@pytest.fixture
async def member(parley: Parley) -> SignedInUser:
    return await register(parley.http, display_name="Grace Member")


@pytest.fixture
async def outsider(parley: Parley) -> SignedInUser:
    return await register(parley.http, display_name="Olive Outsider")


async def create_group(
    http: httpx.AsyncClient, admin: SignedInUser, **fields: Any
) -> dict[str, Any]:
    body = {"name": "research", **fields}
    response = await http.post("/api/admin/groups", json=body, headers=admin.headers)
    assert response.status_code == 201, response.text
    return dict(response.json())


async def add_member(
    http: httpx.AsyncClient, actor: SignedInUser, group: dict[str, Any], user: SignedInUser
) -> httpx.Response:
    return await http.post(
        f"/api/admin/groups/{group['id']}/members",
        json={"user_id": user.user_id},
        headers=actor.headers,
    )


async def restrict(
    http: httpx.AsyncClient, admin: SignedInUser, model: str, restricted: bool = True
) -> dict[str, Any]:
    response = await http.patch(
        f"/api/admin/models/{model}", json={"restricted": restricted}, headers=admin.headers
    )
    assert response.status_code == 200, response.text
    return dict(response.json())
