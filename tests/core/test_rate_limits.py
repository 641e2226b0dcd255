"""Rate limits: per IP on the auth endpoints, per user on generation, shared through Redis."""

import os
import uuid

import pytest
import redis
from fastapi import FastAPI

from app.auth.dependencies import GenerationUser
from tests.support.api import PASSWORD, assert_error, register
from tests.support.app import serving
from tests.support.database import IN_CI
from tests.support.live import free_port
from tests.support.settings import make_settings

REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")

# (limit name, path, JSON body) for every per-IP limited POST endpoint.
ENDPOINTS = [
    ("register", "/api/auth/register", {"email": "x@example.com"}),
    ("login", "/api/auth/login", {"email": "x@example.com", "password": "wrong"}),
    ("refresh", "/api/auth/refresh", {"refresh_token": "nope"}),
    ("forgot_password", "/api/auth/forgot-password", {"email": "x@example.com"}),
    ("reset_password", "/api/auth/reset-password", {"token": "t", "new_password": "p"}),
    ("verify_email", "/api/auth/verify-email", {"token": "nope"}),
    ("resend_verification", "/api/auth/resend-verification", {"email": "x@example.com"}),
    ("mfa_verify", "/api/auth/mfa/verify", {"challenge_token": "c", "code": "123456"}),
]


@pytest.fixture(scope="session")
def redis_url() -> str:
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
    except redis.exceptions.RedisError as exc:
        message = f"Redis at {REDIS_URL} is unreachable: {exc!r}"
        if IN_CI:
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return REDIS_URL


def assert_rate_limited(response, *, window: int = 60) -> None:
    error = assert_error(response, 429, "rate_limited")
    retry_after = int(response.headers["Retry-After"])
    assert 1 <= retry_after <= window
    assert str(retry_after) in error["message"]


class TestPerIpLimits:
    @pytest.mark.parametrize(("name", "path", "body"), ENDPOINTS, ids=[e[0] for e in ENDPOINTS])
    async def test_each_endpoint_answers_429_past_its_limit(
        self, database, clean_db, name, path, body
    ):
        settings = make_settings(database, **{f"rate_limit_{name}": "2/minute"})
        async with serving(settings) as (_app, client):
            allowed = [await client.post(path, json=body) for _ in range(2)]
            refused = await client.post(path, json=body)

        assert all(r.status_code != 429 for r in allowed), [r.text for r in allowed]
        assert_rate_limited(refused)

    async def test_the_verify_link_shares_the_verify_limit(self, database, clean_db):
        settings = make_settings(database, rate_limit_verify_email="2/minute")
        async with serving(settings) as (_app, client):
            await client.post("/api/auth/verify-email", json={"token": "nope"})
            await client.get("/api/auth/verify-email", params={"token": "nope"})
            refused = await client.get("/api/auth/verify-email", params={"token": "nope"})
        assert_rate_limited(refused)

    async def test_json_and_form_login_share_one_limit(self, database, clean_db):
        settings = make_settings(database, rate_limit_login="2/minute")
        async with serving(settings) as (_app, client):
            await client.post("/api/auth/login", json={"email": "a@example.com", "password": "x"})
            await client.post(
                "/api/auth/token", data={"username": "a@example.com", "password": "x"}
            )
            refused = await client.post(
                "/api/auth/token", data={"username": "a@example.com", "password": "x"}
            )
        assert_rate_limited(refused)

    async def test_limit_applies_before_validation(self, database, clean_db):
        settings = make_settings(database, rate_limit_login="1/minute")
        async with serving(settings) as (_app, client):
            await client.post("/api/auth/login", json={})
            refused = await client.post("/api/auth/login", json={})
        assert_rate_limited(refused)

    async def test_several_windows_in_one_setting(self, database, clean_db):
        settings = make_settings(database, rate_limit_login="100/minute;2/hour")
        async with serving(settings) as (_app, client):
            for _ in range(2):
                await client.post("/api/auth/login", json={"email": "a@b.co", "password": "x"})
            refused = await client.post(
                "/api/auth/login", json={"email": "a@b.co", "password": "x"}
            )
        assert_rate_limited(refused, window=3600)
        assert int(refused.headers["Retry-After"]) > 60

    async def test_can_be_turned_off(self, database, clean_db):
        settings = make_settings(database, rate_limit_login="1/minute", rate_limit_enabled=False)
        async with serving(settings) as (_app, client):
            answers = [
                await client.post("/api/auth/login", json={"email": "a@b.co", "password": "x"})
                for _ in range(3)
            ]
        assert {r.status_code for r in answers} == {401}


class TestClientIpForLimits:
    async def test_forwarded_for_from_a_trusted_proxy_separates_clients(self, database, clean_db):
        settings = make_settings(
            database, rate_limit_login="1/minute", trusted_proxies=["127.0.0.1"]
        )
        body = {"email": "a@b.co", "password": "x"}
        async with serving(settings) as (_app, client):
            first = await client.post(
                "/api/auth/login", json=body, headers={"X-Forwarded-For": "203.0.113.1"}
            )
            same = await client.post(
                "/api/auth/login", json=body, headers={"X-Forwarded-For": "203.0.113.1"}
            )
            other = await client.post(
                "/api/auth/login", json=body, headers={"X-Forwarded-For": "203.0.113.2"}
            )
        assert first.status_code == 401
        assert_rate_limited(same)
        assert other.status_code == 401

    async def test_forwarded_for_from_an_untrusted_peer_is_ignored(self, database, clean_db):
        settings = make_settings(database, rate_limit_login="1/minute")
        body = {"email": "a@b.co", "password": "x"}
        async with serving(settings) as (_app, client):
            await client.post(
                "/api/auth/login", json=body, headers={"X-Forwarded-For": "203.0.113.1"}
            )
            spoofed = await client.post(
                "/api/auth/login", json=body, headers={"X-Forwarded-For": "203.0.113.99"}
            )
        assert_rate_limited(spoofed)

    async def test_sessions_record_the_resolved_client_ip(self, database, clean_db):
        settings = make_settings(database, trusted_proxies=["127.0.0.0/8"])
        async with serving(settings) as (_app, client):
            user = await register(client)
            await client.post(
                "/api/auth/login",
                json={"email": user.email, "password": PASSWORD},
                headers={"X-Forwarded-For": "198.51.100.7, 127.0.0.2"},
            )
            sessions = (await client.get("/api/auth/sessions", headers=user.headers)).json()
        assert "198.51.100.7" in {s["ip_address"] for s in sessions}


def add_generation_probe(app: FastAPI) -> None:
    @app.post("/probe/generate")
    async def probe(user: GenerationUser) -> dict[str, str]:
        return {"user": str(user.id)}


class TestPerUserGenerationLimit:
    async def test_each_user_has_their_own_budget(self, database, clean_db):
        settings = make_settings(database, rate_limit_generation="2/minute")
        async with serving(settings) as (app, client):
            add_generation_probe(app)
            ada, grace = await register(client), await register(client)
            ada_answers = [
                await client.post("/probe/generate", headers=ada.headers) for _ in range(3)
            ]
            grace_answer = await client.post("/probe/generate", headers=grace.headers)

        assert [r.status_code for r in ada_answers[:2]] == [200, 200]
        assert_rate_limited(ada_answers[2])
        assert grace_answer.status_code == 200


class TestSharedStorage:
    async def test_two_app_instances_share_one_limit_through_redis(
        self, database, clean_db, redis_url
    ):
        prefix = f"parley-test-{uuid.uuid4().hex}"
        settings = make_settings(
            database, redis_url=redis_url, rate_limit_key_prefix=prefix, rate_limit_login="3/minute"
        )
        body = {"email": "a@b.co", "password": "x"}
        async with serving(settings) as (_one, first), serving(settings) as (_two, second):
            answers = [
                await first.post("/api/auth/login", json=body),
                await second.post("/api/auth/login", json=body),
                await first.post("/api/auth/login", json=body),
            ]
            over_on_second = await second.post("/api/auth/login", json=body)
            over_on_first = await first.post("/api/auth/login", json=body)

        assert [r.status_code for r in answers] == [401, 401, 401]
        assert_rate_limited(over_on_second)
        assert_rate_limited(over_on_first)
        store = redis.Redis.from_url(redis_url)
        if keys := store.keys(f"*{prefix}*"):
            store.delete(*keys)

    async def test_memory_storage_is_per_instance(self, database, clean_db):
        settings = make_settings(database, rate_limit_login="1/minute")
        body = {"email": "a@b.co", "password": "x"}
        async with serving(settings) as (_one, first), serving(settings) as (_two, second):
            one = await first.post("/api/auth/login", json=body)
            two = await second.post("/api/auth/login", json=body)
        assert one.status_code == two.status_code == 401

    async def test_unreachable_redis_falls_back_to_per_worker_limits(
        self, database, clean_db, capsys
    ):
        settings = make_settings(
            database, redis_url=f"redis://127.0.0.1:{free_port()}/0", rate_limit_login="1/minute"
        )
        body = {"email": "a@b.co", "password": "x"}
        async with serving(settings) as (_app, client):
            first = await client.post("/api/auth/login", json=body)
            second = await client.post("/api/auth/login", json=body)
        assert first.status_code == 401
        assert_rate_limited(second)
        # The app logs JSON lines to stdout (configure_logging replaces the root handlers).
        assert "rate-limit storage unreachable" in capsys.readouterr().out
