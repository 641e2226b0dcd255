"""TOTP two-factor authentication: setup, enable, the two-step login, replay, drift, recovery
codes, disable. The app's TOTP clock is a runtime setting; tests move it step by step."""

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pyotp
import pytest
from sqlalchemy import select

from app.auth.models import MfaRecoveryCode
from app.core.security import hash_token
from app.users.models import User
from tests.support.api import PASSWORD, SignedInUser, assert_error, bearer, login, register
from tests.support.app import runtime_of, settle

STEP = timedelta(seconds=30)
START = datetime(2031, 5, 1, 12, 0, 0, tzinfo=UTC)  # on a step boundary


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, steps: int = 1) -> None:
        self.now += steps * STEP


@dataclass
class MfaUser:
    user: SignedInUser
    totp: pyotp.TOTP
    recovery_codes: list[str]
    clock: Clock

    def code(self, offset_steps: int = 0) -> str:
        return self.totp.at(self.clock.now + offset_steps * STEP)


@pytest.fixture
def clock(app) -> Clock:
    clock = Clock(START)
    runtime_of(app).clock = clock
    return clock


async def enable_mfa(client, user: SignedInUser, clock: Clock) -> MfaUser:
    setup = await client.post("/api/auth/mfa/setup", headers=user.headers)
    assert setup.status_code == 200, setup.text
    totp = pyotp.TOTP(setup.json()["secret"])
    response = await client.post(
        "/api/auth/mfa/enable",
        json={"code": totp.at(clock.now), "password": PASSWORD},
        headers=user.headers,
    )
    assert response.status_code == 200, response.text
    clock.advance()
    return MfaUser(user, totp, response.json()["recovery_codes"], clock)


@pytest.fixture
async def mfa_user(client, clock) -> MfaUser:
    return await enable_mfa(client, await register(client), clock)


async def challenge(client, email: str) -> str:
    response = await login(client, email)
    assert response.status_code == 200, response.text
    assert response.json()["mfa_required"] is True
    return str(response.json()["challenge_token"])


async def verify(client, challenge_token: str, code: str):
    return await client.post(
        "/api/auth/mfa/verify", json={"challenge_token": challenge_token, "code": code}
    )


async def assert_signed_in_as(client, response, user: SignedInUser) -> None:
    """The answer carries an access token that acts as `user`."""
    assert response.status_code == 200, response.text
    me = await client.get("/api/auth/me", headers=bearer(response.json()["access_token"]))
    assert me.status_code == 200 and me.json()["id"] == user.user_id


class TestMfaSetup:
    async def test_returns_secret_uri_and_svg_qr_code(self, client):
        user = await register(client)

        response = await client.post("/api/auth/mfa/setup", headers=user.headers)

        assert response.status_code == 200, response.text
        body = response.json()
        assert len(body["secret"]) >= 32  # base32: 160 bits
        uri = body["otpauth_uri"]
        assert uri.startswith("otpauth://totp/Parley:")
        assert f"secret={body['secret']}" in uri
        assert "issuer=Parley" in uri
        assert body["qr_svg"].startswith("<svg")
        assert response.headers["cache-control"] == "no-store"

    async def test_secret_is_encrypted_at_rest(self, client, admin_engine):
        user = await register(client)
        secret = (await client.post("/api/auth/mfa/setup", headers=user.headers)).json()["secret"]

        async with admin_engine.connect() as connection:
            stored = await connection.scalar(
                select(User.mfa_secret_encrypted).where(User.email == user.email)
            )

        assert stored and secret not in stored

    async def test_setup_alone_does_not_turn_mfa_on(self, client):
        user = await register(client)
        await client.post("/api/auth/mfa/setup", headers=user.headers)

        response = await login(client, user.email)

        assert "access_token" in response.json()

    async def test_refused_when_already_enabled(self, client, mfa_user):
        response = await client.post("/api/auth/mfa/setup", headers=mfa_user.user.headers)
        assert_error(response, 409, "mfa_already_enabled")


class TestMfaEnable:
    async def test_returns_ten_distinct_recovery_codes_stored_hashed(
        self, client, mfa_user, admin_engine
    ):
        codes = mfa_user.recovery_codes
        assert len(codes) == len(set(codes)) == 10
        async with admin_engine.connect() as connection:
            stored = set((await connection.execute(select(MfaRecoveryCode.code_hash))).scalars())
        assert stored == {hash_token(code.replace("-", "")) for code in codes}

    async def test_wrong_code_is_refused(self, client, clock):
        user = await register(client)
        await client.post("/api/auth/mfa/setup", headers=user.headers)

        response = await client.post(
            "/api/auth/mfa/enable",
            json={"code": "000000", "password": PASSWORD},
            headers=user.headers,
        )

        assert_error(response, 401, "invalid_mfa_code")
        assert "access_token" in (await login(client, user.email)).json()

    async def test_needs_the_password(self, client, clock):
        user = await register(client)
        secret = (await client.post("/api/auth/mfa/setup", headers=user.headers)).json()["secret"]

        response = await client.post(
            "/api/auth/mfa/enable",
            json={"code": pyotp.TOTP(secret).at(clock.now), "password": "not the password!"},
            headers=user.headers,
        )

        assert_error(response, 403, "invalid_password")

    async def test_needs_setup_first(self, client):
        user = await register(client)
        response = await client.post(
            "/api/auth/mfa/enable",
            json={"code": "123456", "password": PASSWORD},
            headers=user.headers,
        )
        assert_error(response, 409, "mfa_setup_required")

    async def test_ends_other_sessions_and_keeps_this_one(self, client, clock):
        user = await register(client)
        other = (await login(client, user.email)).json()

        await enable_mfa(client, user, clock)

        assert (await client.get("/api/auth/me", headers=user.headers)).json()["mfa_enabled"]
        gone = await client.get("/api/auth/me", headers=bearer(other["access_token"]))
        assert_error(gone, 401, "invalid_token")

    async def test_owner_is_mailed(self, app, client, smtp_server, mfa_user):
        await settle(app)
        await smtp_server.wait_for(
            lambda m: m.subject == "Two-factor authentication is on", to=mfa_user.user.email
        )


class TestMfaLogin:
    async def test_password_alone_gives_a_challenge_not_tokens(self, client, mfa_user):
        response = await login(client, mfa_user.user.email)

        body = response.json()
        assert response.status_code == 200
        assert body["mfa_required"] is True
        assert set(body) == {"mfa_required", "challenge_token", "expires_in"}
        assert body["expires_in"] == 5 * 60
        assert "set-cookie" not in response.headers

    async def test_challenge_and_totp_give_tokens(self, client, mfa_user):
        token = await challenge(client, mfa_user.user.email)

        response = await verify(client, token, mfa_user.code())

        await assert_signed_in_as(client, response, mfa_user.user)
        assert "parley_access=" in response.headers["set-cookie"]

    async def test_a_code_is_never_accepted_twice(self, client, mfa_user):
        code = mfa_user.code()
        assert (await verify(client, await challenge(client, mfa_user.user.email), code)).is_success

        replay = await verify(client, await challenge(client, mfa_user.user.email), code)

        assert_error(replay, 401, "invalid_mfa_code")

    async def test_a_code_older_than_the_last_used_one_is_refused(self, client, mfa_user):
        newer = mfa_user.code(+1)
        older = mfa_user.code(0)
        assert (
            await verify(client, await challenge(client, mfa_user.user.email), newer)
        ).is_success

        response = await verify(client, await challenge(client, mfa_user.user.email), older)

        assert_error(response, 401, "invalid_mfa_code")

    @pytest.mark.parametrize("offset", [-1, +1])
    async def test_one_step_of_drift_is_accepted(self, client, mfa_user, offset):
        mfa_user.clock.advance(2)  # so that the step before is still unused
        token = await challenge(client, mfa_user.user.email)

        response = await verify(client, token, mfa_user.code(offset))

        await assert_signed_in_as(client, response, mfa_user.user)

    @pytest.mark.parametrize("offset", [-2, +2])
    async def test_two_steps_of_drift_are_refused(self, client, mfa_user, offset):
        mfa_user.clock.advance(3)
        token = await challenge(client, mfa_user.user.email)

        response = await verify(client, token, mfa_user.code(offset))

        assert_error(response, 401, "invalid_mfa_code")

    async def test_recovery_code_works_once(self, client, mfa_user):
        code = mfa_user.recovery_codes[3]
        first = await verify(client, await challenge(client, mfa_user.user.email), code)
        await assert_signed_in_as(client, first, mfa_user.user)

        again = await verify(client, await challenge(client, mfa_user.user.email), code)

        assert_error(again, 401, "invalid_mfa_code")

    async def test_recovery_code_ignores_case_spaces_and_dashes(self, client, mfa_user):
        code = mfa_user.recovery_codes[0].replace("-", " ").lower()
        response = await verify(client, await challenge(client, mfa_user.user.email), code)
        await assert_signed_in_as(client, response, mfa_user.user)

    async def test_another_users_recovery_code_is_refused(self, client, clock, mfa_user):
        other = await enable_mfa(client, await register(client), clock)
        token = await challenge(client, mfa_user.user.email)

        response = await verify(client, token, other.recovery_codes[0])

        assert_error(response, 401, "invalid_mfa_code")

    async def test_garbage_or_expired_challenge_is_refused(self, client, mfa_user, app):
        assert_error(
            await verify(client, "not-a-token", mfa_user.code()), 401, "invalid_mfa_challenge"
        )
        jwt = runtime_of(app).jwt
        user_id = uuid.UUID(
            (await client.get("/api/auth/me", headers=mfa_user.user.headers)).json()["id"]
        )
        expired, _ = jwt.encode_mfa_challenge(user_id=user_id, ttl=timedelta(seconds=-1))
        assert_error(await verify(client, expired, mfa_user.code()), 401, "invalid_mfa_challenge")

    async def test_challenge_is_not_an_access_token(self, client, mfa_user):
        token = await challenge(client, mfa_user.user.email)
        response = await client.get("/api/auth/me", headers=bearer(token))
        assert_error(response, 401, "invalid_token")

    async def test_access_token_is_not_a_challenge(self, client, mfa_user):
        response = await verify(client, mfa_user.user.access_token, mfa_user.code())
        assert_error(response, 401, "invalid_mfa_challenge")

    async def test_wrong_codes_lock_the_account(self, client, mfa_user):
        token = await challenge(client, mfa_user.user.email)
        for _ in range(4):
            assert_error(await verify(client, token, "000000"), 401, "invalid_mfa_code")

        fifth = await verify(client, token, "000000")

        assert_error(fifth, 423, "account_locked")
        assert_error(await verify(client, token, mfa_user.code()), 423, "account_locked")
        assert_error(await login(client, mfa_user.user.email), 423, "account_locked")

    async def test_a_correct_password_does_not_reset_the_code_failures(self, client, mfa_user):
        """Else someone who knows the password could guess codes forever, four at a time."""
        for _ in range(2):
            token = await challenge(client, mfa_user.user.email)
            for _ in range(2):
                await verify(client, token, "000000")
        token = await challenge(client, mfa_user.user.email)

        response = await verify(client, token, "000000")

        assert_error(response, 423, "account_locked")

    async def test_oauth2_form_refuses_with_a_clear_error(self, client, mfa_user):
        # Swagger's Authorize cannot do the second step: a challenge (a 200) would read there as
        # "Authorized" with no token, so the form says what to do instead.
        response = await client.post(
            "/api/auth/token", data={"username": mfa_user.user.email, "password": PASSWORD}
        )
        assert_error(response, 400, "mfa_two_steps_required")
        message = response.json()["error"]["message"]
        assert "/api/auth/login" in message and "/api/auth/mfa/verify" in message
        assert "access_token" not in response.json()


class TestMfaDisable:
    async def test_needs_password_and_code(self, client, mfa_user):
        headers = mfa_user.user.headers
        wrong_password = await client.post(
            "/api/auth/mfa/disable",
            json={"password": "not the password!", "code": mfa_user.code()},
            headers=headers,
        )
        wrong_code = await client.post(
            "/api/auth/mfa/disable", json={"password": PASSWORD, "code": "000000"}, headers=headers
        )

        assert_error(wrong_password, 403, "invalid_password")
        assert_error(wrong_code, 401, "invalid_mfa_code")
        assert (await login(client, mfa_user.user.email)).json().get("mfa_required") is True

    async def test_turns_mfa_off(self, app, client, smtp_server, mfa_user):
        response = await client.post(
            "/api/auth/mfa/disable",
            json={"password": PASSWORD, "code": mfa_user.code()},
            headers=mfa_user.user.headers,
        )

        assert response.status_code == 204, response.text
        assert "access_token" in (await login(client, mfa_user.user.email)).json()
        await settle(app)
        await smtp_server.wait_for(
            lambda m: m.subject == "Two-factor authentication is off", to=mfa_user.user.email
        )

    async def test_accepts_a_recovery_code(self, client, mfa_user, admin_engine):
        response = await client.post(
            "/api/auth/mfa/disable",
            json={"password": PASSWORD, "code": mfa_user.recovery_codes[0]},
            headers=mfa_user.user.headers,
        )

        assert response.status_code == 204, response.text
        async with admin_engine.connect() as connection:
            left = (await connection.execute(select(MfaRecoveryCode))).all()
        assert left == []

    async def test_refused_when_not_enabled(self, client):
        user = await register(client)
        response = await client.post(
            "/api/auth/mfa/disable",
            json={"password": PASSWORD, "code": "123456"},
            headers=user.headers,
        )
        assert_error(response, 409, "mfa_not_enabled")
