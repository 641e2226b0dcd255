"""Lockout after consecutive failures, its expiry, and no account enumeration through it."""

from datetime import timedelta

from sqlalchemy import update

from app.auth.models import LoginAttempt
from app.core.db import utcnow
from tests.support.api import PASSWORD, assert_error, login, register
from tests.support.app import runtime_of, serving, settle
from tests.support.settings import make_settings, smtp_settings

WRONG = "definitely not the password"
UNKNOWN = "nobody-at-all@example.com"


async def fail(client, email: str, times: int):
    return [await login(client, email, WRONG) for _ in range(times)]


class TestLockout:
    async def test_five_failures_lock_the_account(self, client):
        user = await register(client)
        failures = await fail(client, user.email, 4)
        assert {r.status_code for r in failures} == {401}

        fifth = await fail(client, user.email, 1)

        error = assert_error(fifth[0], 423, "account_locked")
        assert "locked" in error["message"]
        assert int(fifth[0].headers["Retry-After"]) == 15 * 60

    async def test_correct_password_is_refused_while_locked(self, client):
        user = await register(client)
        await fail(client, user.email, 5)

        response = await login(client, user.email, PASSWORD)

        assert_error(response, 423, "account_locked")
        assert 0 < int(response.headers["Retry-After"]) <= 15 * 60

    async def test_oauth2_form_endpoint_shares_the_lock(self, client):
        user = await register(client)
        await fail(client, user.email, 5)

        response = await client.post(
            "/api/auth/token", data={"username": user.email, "password": PASSWORD}
        )

        assert_error(response, 423, "account_locked")

    async def test_lock_expires(self, client, admin_engine):
        user = await register(client)
        await fail(client, user.email, 5)
        async with admin_engine.begin() as connection:
            await connection.execute(
                update(LoginAttempt).values(locked_until=utcnow() - timedelta(seconds=1))
            )

        assert (await login(client, user.email, PASSWORD)).status_code == 200

    async def test_a_success_resets_the_count(self, client):
        user = await register(client)
        await fail(client, user.email, 4)
        assert (await login(client, user.email, PASSWORD)).status_code == 200

        failures = await fail(client, user.email, 4)

        assert {r.status_code for r in failures} == {401}

    async def test_after_expiry_the_count_starts_afresh(self, client, admin_engine):
        user = await register(client)
        await fail(client, user.email, 5)
        async with admin_engine.begin() as connection:
            await connection.execute(
                update(LoginAttempt).values(locked_until=utcnow() - timedelta(seconds=1))
            )

        failures = await fail(client, user.email, 4)

        assert {r.status_code for r in failures} == {401}

    async def test_owner_is_mailed_once(self, app, client, smtp_server):
        user = await register(client)
        await fail(client, user.email, 7)
        await settle(app)

        locked = [m for m in smtp_server.received if m.subject == "Your Parley account was locked"]
        assert [m.rcpt_tos for m in locked] == [[user.email]]
        assert "15 minutes" in locked[0].text

    async def test_settings_choose_threshold_and_duration(self, database, clean_db, smtp_server):
        settings = make_settings(
            database, **smtp_settings(smtp_server), lockout_max_attempts=2, lockout_minutes=3
        )
        async with serving(settings) as (_app, client):
            user = await register(client)
            first, second = await fail(client, user.email, 2)
        assert_error(first, 401, "invalid_credentials")
        assert_error(second, 423, "account_locked")
        assert second.headers["Retry-After"] == str(3 * 60)


class TestLockoutEnumeration:
    """A lock says only that someone failed five times with this email, never that it exists."""

    async def test_unknown_email_locks_exactly_like_a_known_one(self, client):
        user = await register(client)

        known = await fail(client, user.email, 6)
        unknown = await fail(client, UNKNOWN, 6)

        for known_response, unknown_response in zip(known, unknown, strict=True):
            assert known_response.status_code == unknown_response.status_code
            assert (
                known_response.json()["error"]["message"]
                == unknown_response.json()["error"]["message"]
            )
            assert known_response.headers.get("Retry-After") == unknown_response.headers.get(
                "Retry-After"
            )

    async def test_wrong_password_and_unknown_email_answer_alike(self, client):
        user = await register(client)

        known = await login(client, user.email, WRONG)
        unknown = await login(client, UNKNOWN, WRONG)

        assert known.status_code == unknown.status_code == 401
        known_error, unknown_error = known.json()["error"], unknown.json()["error"]
        assert known_error["code"] == unknown_error["code"] == "invalid_credentials"
        assert known_error["message"] == unknown_error["message"]

    async def test_wrong_password_and_unknown_email_spend_one_password_check_each(
        self, app, client
    ):
        """An unknown email verifies a dummy hash, so its answer costs the one bcrypt check a
        wrong password costs: how long the answer takes cannot tell which emails have accounts."""
        hasher = runtime_of(app).hasher
        user = await register(client)

        spent: dict[str, list[int]] = {}
        for email in (user.email, UNKNOWN, user.email, UNKNOWN):
            before = hasher.verifications
            assert_error(await login(client, email, WRONG), 401, "invalid_credentials")
            spent.setdefault(email, []).append(hasher.verifications - before)

        assert spent == {user.email: [1, 1], UNKNOWN: [1, 1]}

    async def test_a_locked_email_costs_no_password_check_known_or_not(self, app, client):
        """While locked nothing is checked, for an account's email and an unknown one alike: the
        423 already says the email is locked, and checking would only hand an attacker a free
        bcrypt on our CPU."""
        hasher = runtime_of(app).hasher
        locked_user, open_user = await register(client), await register(client)
        await fail(client, locked_user.email, 5)
        await fail(client, UNKNOWN, 5)

        spent = {}
        for email, password, status in (
            (locked_user.email, WRONG, 423),
            (locked_user.email, PASSWORD, 423),
            (UNKNOWN, WRONG, 423),
            (open_user.email, WRONG, 401),
        ):
            before = hasher.verifications
            assert (await login(client, email, password)).status_code == status
            spent[email, password] = hasher.verifications - before

        assert spent == {
            (locked_user.email, WRONG): 0,
            (locked_user.email, PASSWORD): 0,
            (UNKNOWN, WRONG): 0,
            (open_user.email, WRONG): 1,
        }


class TestOddEmails:
    async def test_nul_in_the_email_is_just_wrong_credentials(self, client):
        for response in (
            await login(client, "ada\u0000@example.com", WRONG),
            await client.post(
                "/api/auth/token", data={"username": "ada\u0000@example.com", "password": WRONG}
            ),
        ):
            assert_error(response, 401, "invalid_credentials")
