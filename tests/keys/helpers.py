"""Creating keys and calling the API with them."""

from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.support.api import SignedInUser


async def create_key(http: httpx.AsyncClient, user: SignedInUser, **fields: Any) -> dict[str, Any]:
    body = {"name": "my script", **fields}
    response = await http.post("/api/keys", json=body, headers=user.headers)
    assert response.status_code == 201, response.text
    return dict(response.json())


def with_key(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def azure_style(key: str) -> dict[str, str]:
    return {"api-key": key}


async def make_admin(engine: AsyncEngine, user: SignedInUser) -> None:
    async with engine.begin() as connection:
        await connection.execute(
            text("UPDATE user_account SET role='admin' WHERE email=:email"),
            {"email": user.email},
        )
