"""The chat WebSocket lives no longer than its session: revoked, disabled or expired, the socket
gets an `error` event and close code 1008, idle or mid-reply; `reauth` carries a newer token.
Real client (websockets) against Parley on a real uvicorn, the fake upstream behind it."""

import asyncio
import json
import time
from contextlib import suppress

import pytest
import websockets
from jose import jwt

from app.cli import create_admin
from tests.conftest import SignedInUser, register
from tests.generation.test_websocket import events_until_end, next_event, ws_url
from tests.support.wait import wait_until

NEW_PASSWORD = "a brand new passphrase for the ledger 93"


async def signed_in_socket(parley, chat, user: SignedInUser):
    """A socket authenticated by `user`'s token, proven by one whole exchange."""
    socket = await websockets.connect(ws_url(parley, chat))
    await socket.send(json.dumps({"type": "auth", "token": user.access_token}))
    await socket.send(json.dumps({"type": "message", "content": "Hi"}))
    assert (await events_until_end(socket))[-1]["event"] == "done"
    return socket


async def frames_until_closed(socket) -> list[dict]:
    """Every frame until the server closes the socket; fails if it stays open and silent."""
    frames = []
    with suppress(websockets.ConnectionClosed):
        while True:
            frames.append(json.loads(await asyncio.wait_for(socket.recv(), timeout=5)))
    return frames


async def start_long_reply(socket, fake_upstream) -> None:
    fake_upstream.state.tokens = 3000
    fake_upstream.state.token_delay = 0.01
    await socket.send(json.dumps({"type": "message", "content": "Long"}))
    while (await next_event(socket))["event"] != "delta":
        pass


def assert_closed_for(socket, frames: list[dict], code: str) -> None:
    assert frames[-1]["event"] == "error" and frames[-1]["data"]["code"] == code
    assert "done" not in [frame["event"] for frame in frames]
    assert socket.close_code == 1008 and socket.close_reason == code


class TestSocketSession:
    async def test_logout_all_closes_an_idle_socket(self, parley, author, chat):
        socket = await signed_in_socket(parley, chat, author)
        response = await parley.http.post("/api/auth/logout-all", headers=author.headers)
        assert response.status_code == 204, response.text
        frames = await frames_until_closed(socket)
        assert_closed_for(socket, frames, "session_revoked")
        me = await parley.http.get("/api/auth/me", headers=author.headers)
        assert me.status_code == 401

    async def test_a_password_change_elsewhere_closes_a_socket_mid_reply(
        self, parley, author, chat, fake_upstream
    ):
        socket = await signed_in_socket(parley, chat, author)
        await start_long_reply(socket, fake_upstream)
        login = await parley.http.post(
            "/api/auth/login", json={"email": author.email, "password": author.password}
        )
        other = {"Authorization": f"Bearer {login.json()['access_token']}"}
        parley.http.cookies.clear()
        response = await parley.http.post(
            "/api/auth/change-password",
            json={"current_password": author.password, "new_password": NEW_PASSWORD},
            headers=other,
        )
        assert response.status_code == 204, response.text
        frames = await frames_until_closed(socket)
        assert_closed_for(socket, frames, "session_revoked")

    async def test_an_admin_disabling_the_user_closes_a_socket_mid_reply(
        self, parley, author, chat, fake_upstream
    ):
        admin = await register(parley.http, display_name="Root Admin")
        await create_admin(
            parley.app.state.runtime.settings,
            email=admin.email,
            display_name="Root Admin",
            password_env="UNUSED_FOR_PROMOTION",
            promote=True,
        )
        socket = await signed_in_socket(parley, chat, author)
        await start_long_reply(socket, fake_upstream)
        response = await parley.http.patch(
            f"/api/admin/users/{author.user_id}", json={"is_active": False}, headers=admin.headers
        )
        assert response.status_code == 200, response.text
        frames = await frames_until_closed(socket)
        # Disabling also revokes the sessions; either way the socket is closed with 1008.
        assert frames[-1]["data"]["code"] in ("account_disabled", "session_revoked")
        assert_closed_for(socket, frames, frames[-1]["data"]["code"])

    @pytest.mark.parametrize("parley_overrides", [{"access_token_minutes": 0.05}])
    async def test_an_expired_token_closes_the_socket(self, parley, author, chat):
        socket = await signed_in_socket(parley, chat, author)
        frames = await frames_until_closed(socket)  # 3 s after sign-in
        assert_closed_for(socket, frames, "token_expired")

    @pytest.mark.parametrize("parley_overrides", [{"access_token_minutes": 0.1}])
    async def test_reauth_with_a_refreshed_token_keeps_the_socket(self, parley, author, chat):
        first_expiry = jwt.get_unverified_claims(author.access_token)["exp"]
        socket = await signed_in_socket(parley, chat, author)
        # Refresh late enough that the new token outlives the first by a few seconds.
        await wait_until(lambda: time.time() >= first_expiry - 3, timeout=10)
        refreshed = await parley.http.post(
            "/api/auth/refresh", json={"refresh_token": author.refresh_token}
        )
        parley.http.cookies.clear()
        new_token = refreshed.json()["access_token"]
        stranger = await register(parley.http)
        await socket.send(json.dumps({"type": "reauth", "token": stranger.access_token}))
        assert (await next_event(socket))["data"]["code"] == "invalid_token"
        await socket.send(json.dumps({"type": "reauth", "token": new_token}))
        acknowledged = await next_event(socket)
        assert acknowledged["event"] == "reauthenticated"
        assert acknowledged["data"]["expires_in"] > 0
        await wait_until(lambda: time.time() > first_expiry + 1, timeout=10)
        await socket.send(json.dumps({"type": "message", "content": "Still here"}))
        assert (await events_until_end(socket))[-1]["event"] == "done"
        frames = await frames_until_closed(socket)  # once the new token expires too
        assert_closed_for(socket, frames, "token_expired")


class TestBinaryFrame:
    async def test_gets_invalid_message_and_the_socket_stays_open(self, parley, author, chat):
        async with websockets.connect(ws_url(parley, chat)) as socket:
            await socket.send(json.dumps({"type": "auth", "token": author.access_token}))
            await socket.send(b'{"type": "message", "content": "Hi"}')
            event = await next_event(socket)
            assert event["event"] == "error" and event["data"]["code"] == "invalid_message"
            await socket.send(json.dumps({"type": "message", "content": "Hi"}))
            assert (await events_until_end(socket))[-1]["event"] == "done"
