"""Calling the API as a user: sign up, sign in, the Bearer header, the one error shape; an
administrator made by the CLI's own code path."""

import uuid
from dataclasses import dataclass
from typing import Any

import httpx

from app.cli import create_admin
from app.core.config import Settings

PASSWORD = "correct horse battery staple 42"


@dataclass
class SignedInUser:
    email: str
    password: str
    access_token: str
    refresh_token: str
    session_id: str
    user_id: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access_token}"}


async def register(
    client: httpx.AsyncClient,
    *,
    email: str | None = None,
    password: str = PASSWORD,
    display_name: str = "Ada Lovelace",
) -> SignedInUser:
    email = email or f"user-{uuid.uuid4().hex[:10]}@example.com"
    response = await client.post(
        "/api/auth/register",
        json={"email": email, "display_name": display_name, "password": password},
    )
    assert response.status_code == 201, response.text
    body = response.json()
    client.cookies.clear()  # tests choose explicitly between Bearer and cookie authentication
    return SignedInUser(
        email=email,
        password=password,
        access_token=body["access_token"],
        refresh_token=body["refresh_token"],
        session_id=body["session_id"],
        user_id=body["user"]["id"],
    )


def assert_error(response: httpx.Response, status: int, code: str | None = None) -> dict[str, Any]:
    """The one error shape: {"error": {"code", "message", "request_id", ...}}."""
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert isinstance(error["message"], str) and error["message"]
    assert error["request_id"] == response.headers["x-request-id"]
    if code is not None:
        assert error["code"] == code, error
    return dict(error)


async def login(
    client: httpx.AsyncClient, email: str, password: str = PASSWORD, **headers: str
) -> httpx.Response:
    return await client.post(
        "/api/auth/login", json={"email": email, "password": password}, headers=headers or None
    )


def bearer(access_token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {access_token}"}


async def registered_admin(client: httpx.AsyncClient, settings: Settings) -> SignedInUser:
    """A user signed up through the API, then promoted to administrator by the CLI's own code
    path (`parley create-admin --promote`)."""
    user = await register(client, display_name="Root Admin")
    await create_admin(
        settings,
        email=user.email,
        display_name="Root Admin",
        password_env="UNUSED_FOR_PROMOTION",
        promote=True,
    )
    return user
