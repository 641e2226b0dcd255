import asyncio
import os
import sys
import threading
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from jose import jwt

from app.core.security import PasswordHasher
from tests.support.api import PASSWORD, assert_error, bearer, register

SECRET = "test-secret-key-that-is-long-enough-0123456789"


class TestRegister:
    async def test_returns_tokens_user_and_cookies(self, client):
        response = await client.post(
            "/api/auth/register",
            json={"email": " Ada@Example.COM ", "display_name": "Ada", "password": PASSWORD},
        )
        assert response.status_code == 201, response.text
        body = response.json()
        assert body["user"]["email"] == "ada@example.com"
        assert body["token_type"] == "bearer"
        assert body["expires_in"] == 15 * 60
        cookies = response.headers.get_list("set-cookie")
        access = next(c for c in cookies if c.startswith("parley_access="))
        refresh = next(c for c in cookies if c.startswith("parley_refresh="))
        assert "HttpOnly" in access and "SameSite=lax" in access and "Path=/" in access
        assert "Path=/api/auth" in refresh and "HttpOnly" in refresh
        # Outside development cookies are Secure (the test environment counts as outside).
        assert "Secure" in access and "Secure" in refresh

    async def test_email_is_unique_case_insensitively(self, client):
        await register(client, email="grace@example.com")
        response = await client.post(
            "/api/auth/register",
            json={"email": "GRACE@example.com", "display_name": "G", "password": PASSWORD},
        )
        assert_error(response, 409, "email_taken")

    @pytest.mark.parametrize(
        ("password", "reason"),
        [
            ("short", "at least 12"),
            ("password1234", "too easy to guess"),
            ("aaaaaaaaaaaaaaaa", "too easy to guess"),
            ("x" * 129, "at most 128"),
        ],
    )
    async def test_weak_passwords_are_refused_with_a_reason(self, client, password, reason):
        response = await client.post(
            "/api/auth/register",
            json={"email": "weak@example.com", "display_name": "W", "password": password},
        )
        assert response.status_code == 422
        assert reason in response.text

    async def test_password_equal_to_email_is_refused(self, client):
        email = "long.address.person@example.com"
        response = await client.post(
            "/api/auth/register", json={"email": email, "display_name": "L", "password": email}
        )
        error = assert_error(response, 422, "weak_password")
        assert "email" in error["message"]

    async def test_invalid_email_names_the_field(self, client):
        response = await client.post(
            "/api/auth/register",
            json={"email": "not-an-email", "display_name": "N", "password": PASSWORD},
        )
        error = assert_error(response, 422, "invalid_email")
        assert error["details"][0]["field"] == "body.email"

    async def test_a_reserved_domain_is_refused_with_the_same_code(self, client):
        response = await client.post(
            "/api/auth/register",
            json={"email": "ada@host.arpa", "display_name": "N", "password": PASSWORD},
        )
        error = assert_error(response, 422, "invalid_email")
        assert "special-use or reserved" in error["message"]

    async def test_fifty_concurrent_registrations_all_succeed(self, client):
        responses = await asyncio.gather(
            *(
                client.post(
                    "/api/auth/register",
                    json={
                        "email": f"crowd{i}@example.com",
                        "display_name": f"Crowd {i}",
                        "password": PASSWORD,
                    },
                )
                for i in range(50)
            )
        )
        assert [r.status_code for r in responses] == [201] * 50
        users = [r.json()["user"] for r in responses]
        assert [u["email"] for u in users] == [f"crowd{i}@example.com" for i in range(50)]
        assert len({u["id"] for u in users}) == 50

    async def test_concurrent_duplicates_give_one_account_and_conflicts(self, client):
        responses = await asyncio.gather(
            *(
                client.post(
                    "/api/auth/register",
                    json={"email": "same@example.com", "display_name": "S", "password": PASSWORD},
                )
                for _ in range(5)
            )
        )
        statuses = sorted(r.status_code for r in responses)
        assert statuses == [201, 409, 409, 409, 409]


class TestLogin:
    async def test_json_login_opens_a_new_session(self, client, user):
        response = await client.post(
            "/api/auth/login", json={"email": user.email.upper(), "password": user.password}
        )
        assert response.status_code == 200, response.text
        assert response.json()["session_id"] != user.session_id

    async def test_wrong_password_and_unknown_email_answer_alike(self, client, user):
        wrong = await client.post(
            "/api/auth/login", json={"email": user.email, "password": "not the password!!"}
        )
        unknown = await client.post(
            "/api/auth/login", json={"email": "nobody@example.com", "password": "whatever it is"}
        )
        assert_error(wrong, 401, "invalid_credentials")
        assert_error(unknown, 401, "invalid_credentials")
        assert wrong.json()["error"]["message"] == unknown.json()["error"]["message"]

    async def test_oauth2_form_login_works_for_swagger(self, client, user):
        response = await client.post(
            "/api/auth/token", data={"username": user.email, "password": user.password}
        )
        assert response.status_code == 200, response.text
        token = response.json()["access_token"]
        me = await client.get("/api/auth/me", headers={"Authorization": f"Bearer {token}"})
        assert me.json()["email"] == user.email

    async def test_oauth2_form_with_wrong_password_is_401(self, client, user):
        response = await client.post(
            "/api/auth/token", data={"username": user.email, "password": "wrong password!!"}
        )
        assert_error(response, 401, "invalid_credentials")


class TestPasswordHashing:
    async def test_long_passwords_are_not_truncated_at_72_bytes(self):
        hasher = PasswordHasher(rounds=4)
        password = "p" * 100
        stored = await hasher.hash(password)
        assert await hasher.verify(password, stored)
        assert not await hasher.verify(password[:72], stored)
        hasher.close()

    @pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread nice is Linux's")
    async def test_hashing_runs_in_threads_below_the_event_loops_priority(self):
        before = set(threading.enumerate())
        hasher = PasswordHasher(rounds=4, nice=7)
        try:
            assert await hasher.verify("a password", await hasher.hash("a password"))
            hashing = [
                t for t in set(threading.enumerate()) - before if t.name.startswith("parley")
            ]
            assert hashing
            loop_nice = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
            for thread in hashing:
                assert thread.native_id is not None
                assert os.getpriority(os.PRIO_PROCESS, thread.native_id) == min(19, loop_nice + 7)
        finally:
            hasher.close()

    async def test_login_with_a_100_character_password(self, client):
        password = "correct horse battery staple " * 3 + "tail-1234"
        assert len(password) == 96
        user = await register(client, password=password)
        ok = await client.post("/api/auth/login", json={"email": user.email, "password": password})
        assert ok.status_code == 200
        truncated = await client.post(
            "/api/auth/login", json={"email": user.email, "password": password[:72]}
        )
        assert truncated.status_code == 401


class TestCurrentUser:
    async def test_cookie_authenticates(self, client, user):
        client.cookies.set("parley_access", user.access_token)
        response = await client.get("/api/auth/me")
        assert response.status_code == 200
        assert response.json()["id"] == user.user_id

    async def test_no_credentials_is_401(self, client):
        response = await client.get("/api/auth/me")
        assert_error(response, 401, "not_authenticated")
        assert response.headers["www-authenticate"] == "Bearer"

    def _forge(self, claims: dict, key: str = SECRET, algorithm: str = "HS256") -> str:
        return jwt.encode(claims, key, algorithm=algorithm)

    def _claims(self, user, **overrides) -> dict:
        now = datetime.now(UTC)
        claims = {
            "sub": user.user_id,
            "sid": user.session_id,
            "type": "access",
            "iat": int(now.timestamp()),
            "exp": int((now + timedelta(minutes=5)).timestamp()),
        }
        claims.update(overrides)
        return claims

    async def test_forged_and_malformed_tokens_are_401(self, client, user):
        header = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0"  # {"alg":"none","typ":"JWT"}
        valid_payload = user.access_token.split(".")[1]
        past = int((datetime.now(UTC) - timedelta(minutes=1)).timestamp())
        tokens = {
            "alg none": f"{header}.{valid_payload}.",
            "bad signature": self._forge(self._claims(user), key="another-secret-key-entirely"),
            "HS512": self._forge(self._claims(user), algorithm="HS512"),
            "expired": self._forge(self._claims(user, exp=past)),
            "wrong type": self._forge(self._claims(user, type="refresh")),
            "unknown session": self._forge(self._claims(user, sid=str(uuid.uuid4()))),
            "someone else's session": self._forge(self._claims(user, sub=str(uuid.uuid4()))),
            "garbage": "not.a.jwt",
            "huge": "a" * 5000,
        }
        for name, token in tokens.items():
            response = await client.get(
                "/api/auth/me", headers={"Authorization": f"Bearer {token}"}
            )
            assert response.status_code == 401, name
            assert response.json()["error"]["code"] in ("invalid_token", "not_authenticated")

    async def test_well_formed_forgery_with_the_right_key_works(self, client, user):
        # Guards the test above: the forging helper itself produces acceptable tokens.
        token = self._forge(self._claims(user))
        response = await client.get("/api/auth/me", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 200
        assert response.json()["id"] == user.user_id


class TestRefresh:
    async def test_rotation_returns_a_new_pair_and_old_access_still_works(self, client, user):
        response = await client.post(
            "/api/auth/refresh", json={"refresh_token": user.refresh_token}
        )
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["refresh_token"] != user.refresh_token
        assert body["session_id"] == user.session_id
        me = await client.get(
            "/api/auth/me", headers={"Authorization": f"Bearer {body['access_token']}"}
        )
        assert me.status_code == 200

    async def test_reusing_a_refresh_token_revokes_the_session(self, client, user):
        first = await client.post("/api/auth/refresh", json={"refresh_token": user.refresh_token})
        new_pair = first.json()
        replay = await client.post("/api/auth/refresh", json={"refresh_token": user.refresh_token})
        assert_error(replay, 401, "refresh_token_reused")
        # The thief's copy and the legitimate new tokens are both dead now.
        again = await client.post(
            "/api/auth/refresh", json={"refresh_token": new_pair["refresh_token"]}
        )
        assert again.status_code == 401
        me = await client.get(
            "/api/auth/me", headers={"Authorization": f"Bearer {new_pair['access_token']}"}
        )
        assert_error(me, 401, "invalid_token")

    async def test_refresh_from_cookie(self, client, user):
        client.cookies.set("parley_refresh", user.refresh_token)
        response = await client.post("/api/auth/refresh")
        assert response.status_code == 200, response.text
        rotated = response.json()["refresh_token"]
        assert rotated != user.refresh_token
        assert f"parley_refresh={rotated}" in response.headers["set-cookie"]
        me = await client.get("/api/auth/me", headers=bearer(response.json()["access_token"]))
        assert me.json()["id"] == user.user_id

    async def test_concurrent_refreshes_with_one_token_let_at_most_one_through(self, client, user):
        responses = await asyncio.gather(
            *(
                client.post("/api/auth/refresh", json={"refresh_token": user.refresh_token})
                for _ in range(4)
            )
        )
        assert sum(r.status_code == 200 for r in responses) <= 1
        assert all(r.status_code in (200, 401) for r in responses)

    async def test_unknown_or_missing_refresh_token_is_401(self, client):
        assert_error(
            await client.post("/api/auth/refresh", json={"refresh_token": "nope"}),
            401,
            "invalid_token",
        )
        assert_error(await client.post("/api/auth/refresh"), 401, "invalid_token")

    async def test_refresh_tokens_are_stored_hashed(self, client, user, admin_engine):
        from sqlalchemy import text

        async with admin_engine.connect() as connection:
            hashes = (await connection.execute(text("SELECT token_hash FROM refresh_token"))).all()
        assert hashes and all(user.refresh_token not in row[0] for row in hashes)


class TestLogout:
    async def test_logout_kills_this_sessions_tokens_only(self, client, user):
        other = await client.post(
            "/api/auth/login", json={"email": user.email, "password": user.password}
        )
        other_token = other.json()["access_token"]
        response = await client.post("/api/auth/logout", headers=user.headers)
        assert response.status_code == 204
        assert (await client.get("/api/auth/me", headers=user.headers)).status_code == 401
        refresh = await client.post("/api/auth/refresh", json={"refresh_token": user.refresh_token})
        assert refresh.status_code == 401
        still = await client.get("/api/auth/me", headers={"Authorization": f"Bearer {other_token}"})
        assert still.status_code == 200

    async def test_logout_clears_cookies(self, client, user):
        response = await client.post("/api/auth/logout", headers=user.headers)
        cleared = response.headers.get_list("set-cookie")
        assert any(c.startswith('parley_access=""') or "Max-Age=0" in c for c in cleared)

    async def test_logout_all_kills_every_session(self, client, user):
        other = await client.post(
            "/api/auth/login", json={"email": user.email, "password": user.password}
        )
        response = await client.post("/api/auth/logout-all", headers=user.headers)
        assert response.status_code == 204
        sessions = [
            (user.access_token, user.refresh_token),
            (other.json()["access_token"], other.json()["refresh_token"]),
        ]
        for access_token, refresh_token in sessions:
            me = await client.get("/api/auth/me", headers=bearer(access_token))
            assert_error(me, 401, "invalid_token")
            refresh = await client.post("/api/auth/refresh", json={"refresh_token": refresh_token})
            assert refresh.status_code == 401


class TestSessions:
    async def test_lists_devices_with_current_marked(self, client, user):
        await client.post(
            "/api/auth/login",
            json={"email": user.email, "password": user.password},
            headers={"User-Agent": "PhoneBrowser/1.0"},
        )
        response = await client.get("/api/auth/sessions", headers=user.headers)
        assert response.status_code == 200
        sessions = response.json()
        assert len(sessions) == 2
        assert [s["current"] for s in sessions if s["id"] == user.session_id] == [True]
        assert any(s["user_agent"] == "PhoneBrowser/1.0" for s in sessions)

    async def test_revoking_a_session_cuts_its_access_token_at_once(self, client, user):
        other = (
            await client.post(
                "/api/auth/login", json={"email": user.email, "password": user.password}
            )
        ).json()
        response = await client.delete(
            f"/api/auth/sessions/{other['session_id']}", headers=user.headers
        )
        assert response.status_code == 204
        me = await client.get(
            "/api/auth/me", headers={"Authorization": f"Bearer {other['access_token']}"}
        )
        assert me.status_code == 401
        listed = await client.get("/api/auth/sessions", headers=user.headers)
        assert [s["id"] for s in listed.json()] == [user.session_id]

    async def test_another_users_session_is_404(self, client, user, other_user):
        response = await client.delete(
            f"/api/auth/sessions/{other_user.session_id}", headers=user.headers
        )
        assert_error(response, 404, "session_not_found")
        me = await client.get("/api/auth/me", headers=other_user.headers)
        assert me.status_code == 200


class TestSwaggerExamples:
    async def test_the_register_example_works_as_written(self, client):
        # Swagger's "Try it out" sends the example unchanged: it must not be a 422.
        schema = (await client.get("/openapi.json")).json()["components"]["schemas"]
        [example] = schema["RegisterRequest"]["examples"]
        response = await client.post("/api/auth/register", json=example)
        assert response.status_code == 201, response.text
