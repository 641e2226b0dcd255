"""Lockout holds under concurrency: a burst of guesses on two workers sharing the database gets
at most LOCKOUT_MAX_ATTEMPTS checks, for passwords and for second factors alike."""

import asyncio
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

import httpx
import pyotp
import pytest
from fastapi import FastAPI

from app.core.config import Settings
from app.main import create_app
from tests.support.api import PASSWORD, login, register
from tests.support.app import runtime_of
from tests.support.live import live_server
from tests.support.settings import make_settings

WRONG = "definitely not the password"
BURST = 40


def checks_run(apps: list[FastAPI], factor: str) -> int:
    """Credential checks that ran (passed or failed) on every worker, from /metrics' counter."""
    return sum(
        int(
            runtime_of(app).metrics.registry.get_sample_value(
                "parley_credential_checks_total", {"factor": factor, "outcome": outcome}
            )
            or 0
        )
        for app in apps
        for outcome in ("passed", "failed")
    )


@contextmanager
def two_workers(settings: Settings) -> Iterator[tuple[list[FastAPI], list[httpx.AsyncClient]]]:
    """Two app instances (engines, pools, hashers of their own) on real uvicorn servers, each
    on its own thread and event loop, sharing one database: what two workers are."""
    apps = [create_app(settings), create_app(settings)]
    with ExitStack() as stack:
        urls = [stack.enter_context(live_server(app)) for app in apps]
        clients = [httpx.AsyncClient(base_url=url, timeout=60) for url in urls]
        yield apps, clients


async def burst(clients: list[httpx.AsyncClient], requests: list[tuple[str, dict]]):
    """Sends every request at once, alternating between the workers."""
    return await asyncio.gather(
        *(
            clients[i % len(clients)].post(path, json=body)
            for i, (path, body) in enumerate(requests)
        )
    )


@pytest.fixture
def slow_hash_settings(database, clean_db) -> Settings:
    # A hash slow enough (~50 ms) that the whole burst is in flight while the first checks run.
    return make_settings(database, bcrypt_rounds=9)


class TestConcurrentPasswordGuesses:
    async def test_a_burst_gets_no_more_checks_than_the_threshold(self, slow_hash_settings):
        with two_workers(slow_hash_settings) as (apps, clients):
            user = await register(clients[0])
            checks_before = checks_run(apps, "password")

            answers = await burst(
                clients,
                [("/api/auth/login", {"email": user.email, "password": WRONG})] * BURST,
            )

            checks = checks_run(apps, "password") - checks_before
            statuses = Counter(response.status_code for response in answers)
            assert checks == 5
            # At most four wrong guesses are told so (the fifth locks; one that ends after the
            # lock is answered as locked); everything else is refused unchecked.
            assert statuses[401] <= 4
            assert statuses[401] + statuses[423] == BURST
            assert (await login(clients[1], user.email, PASSWORD)).status_code == 423
            for client in clients:
                await client.aclose()

    async def test_the_right_password_inside_a_burst_never_beats_the_lock(self, slow_hash_settings):
        with two_workers(slow_hash_settings) as (apps, clients):
            user = await register(clients[0])
            guesses = [("/api/auth/login", {"email": user.email, "password": WRONG})] * BURST
            guesses[BURST // 2] = ("/api/auth/login", {"email": user.email, "password": PASSWORD})
            checks_before = checks_run(apps, "password")

            answers = await burst(clients, guesses)

            checks = checks_run(apps, "password") - checks_before
            right = answers[BURST // 2]
            later = await login(clients[1], user.email, PASSWORD)
            if right.status_code == 200:
                # It was checked among the first five: a success starts a fresh run, which the
                # rest of the burst may have used up in turn.
                assert checks <= 10
            else:
                assert right.status_code == 423
                assert checks == 5
                assert later.status_code == 423
            for client in clients:
                await client.aclose()


class TestConcurrentSecondFactorGuesses:
    async def test_a_burst_of_codes_gets_no_more_checks_than_the_threshold(
        self, database, clean_db
    ):
        with two_workers(make_settings(database)) as (apps, clients):
            user = await register(clients[0])
            headers = user.headers
            setup = (await clients[0].post("/api/auth/mfa/setup", headers=headers)).json()
            totp = pyotp.TOTP(setup["secret"])
            enabled = await clients[0].post(
                "/api/auth/mfa/enable",
                json={"code": totp.now(), "password": PASSWORD},
                headers=headers,
            )
            assert enabled.status_code == 200, enabled.text
            challenge = (await login(clients[0], user.email)).json()["challenge_token"]
            wrong_code = f"{(int(totp.now()) + 1) % 1_000_000:06d}"

            answers = await burst(
                clients,
                [("/api/auth/mfa/verify", {"challenge_token": challenge, "code": wrong_code})] * 30,
            )

            statuses = Counter(response.status_code for response in answers)
            assert checks_run(apps, "second_factor") == 5
            assert statuses[401] <= 4
            assert statuses[401] + statuses[423] == 30
            right = await clients[1].post(
                "/api/auth/mfa/verify", json={"challenge_token": challenge, "code": totp.now()}
            )
            assert right.status_code == 423
            for client in clients:
                await client.aclose()
