"""Revocation on every worker: a password reset revokes keys, and with REDIS_URL a key revoked
on one worker is refused by another within a second."""

import asyncio
import uuid

import httpx
import pytest

from app.core.invalidation import Invalidations
from app.core.shared_redis import connect_redis
from tests.auth.test_password_reset import NEW_PASSWORD, request_reset
from tests.keys.helpers import create_key, with_key
from tests.ops.test_processes import redis_url  # noqa: F401 - the fixture
from tests.support.api import assert_error, register
from tests.support.processes import server
from tests.support.wait import wait_until


class TestPasswordReset:
    @pytest.fixture
    def settings(self, mail_settings):
        return mail_settings

    async def test_a_reset_revokes_every_key(self, app, client, user, smtp_server):
        first = await create_key(client, user, scopes=["chats"])
        second = await create_key(client, user, scopes=["knowledge"])
        assert (await client.get("/api/chats", headers=with_key(first["key"]))).status_code == 200
        token = await request_reset(client, app, smtp_server, user.email)
        response = await client.post(
            "/api/auth/reset-password", json={"token": token, "new_password": NEW_PASSWORD}
        )
        assert response.status_code == 204, response.text
        assert_error(await client.get("/api/chats", headers=with_key(first["key"])), 401)
        assert_error(await client.get("/api/files", headers=with_key(second["key"])), 401)


class TestInvalidations:
    async def test_a_message_reaches_the_other_reader(self, redis_url):  # noqa: F811
        channel = f"parley-test:{uuid.uuid4().hex}"
        client = connect_redis(redis_url)
        one = Invalidations(client, channel=channel)
        two = Invalidations(client, channel=channel)
        seen: list[str] = []
        resets: list[int] = []
        two.subscribe("thing", seen.append)
        two.on_reset(lambda: resets.append(1))

        reader = asyncio.create_task(two.run())
        try:
            assert await two.wait_live()
            assert resets == [1]  # subscribing drops whatever was cached before
            await one.publish("thing", "42")
            await wait_until(lambda: seen == ["42"], timeout=2, interval=0.01)
        finally:
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)
            await one.close()
            await two.close()
            await client.aclose()
        assert not two.live and len(resets) == 2

    async def test_without_redis_messages_stay_in_process_and_are_live(self):
        local = Invalidations(None)
        seen: list[str] = []
        local.subscribe("thing", seen.append)
        await local.publish("thing", "1")
        assert local.live and seen == ["1"]


class TestTwoWorkers:
    async def test_revoked_on_one_worker_is_refused_by_the_other_within_a_second(
        self,
        database,
        clean_db,
        fake_upstream,
        redis_url,  # noqa: F811
    ):
        settings = {
            "database_url": database.url,
            "llm_base_url": fake_upstream.base_url,
            "llm_model": "fake-model",
            "redis_url": redis_url,
            "rate_limit_key_prefix": f"parley-test-{uuid.uuid4().hex}",
            "auto_title": "false",
        }
        async with (
            server(settings) as first,
            server(settings) as second,
            httpx.AsyncClient(base_url=first.base_url, timeout=20) as one,
            httpx.AsyncClient(base_url=second.base_url, timeout=20) as two,
        ):
            user = await register(one)
            created = await create_key(one, user, scopes=["chats"])
            key = with_key(created["key"])
            # Both workers have checked (and cached) the key.
            assert (await one.get("/api/chats", headers=key)).status_code == 200
            assert (await two.get("/api/chats", headers=key)).status_code == 200
            # A scope removed on the first is gone on the second.
            patch = await one.patch(
                f"/api/keys/{created['id']}", json={"scopes": []}, headers=user.headers
            )
            assert patch.status_code == 200

            async def scope_gone() -> bool:
                return (await two.get("/api/chats", headers=key)).status_code == 403

            await wait_until(scope_gone, timeout=1.0, interval=0.02)
            await one.patch(
                f"/api/keys/{created['id']}", json={"scopes": ["chats"]}, headers=user.headers
            )

            async def scope_back() -> bool:
                return (await two.get("/api/chats", headers=key)).status_code == 200

            await wait_until(scope_back, timeout=1.0, interval=0.02)
            revoked = await one.delete(f"/api/keys/{created['id']}", headers=user.headers)
            assert revoked.status_code == 204

            async def refused() -> bool:
                return (await two.get("/api/chats", headers=key)).status_code == 401

            await wait_until(refused, timeout=1.0, interval=0.02)
            assert_error(await one.get("/api/chats", headers=key), 401, "invalid_api_key")
