"""CSRF: cookie-authenticated unsafe requests need the signed double-submit token."""

import httpx

from tests.support.api import PASSWORD, assert_error, bearer, register


async def cookie_login(client: httpx.AsyncClient, email: str) -> dict:
    response = await client.post("/api/auth/login", json={"email": email, "password": PASSWORD})
    assert response.status_code == 200, response.text
    return dict(response.json())


def csrf_header(client: httpx.AsyncClient) -> dict[str, str]:
    return {"X-CSRF-Token": client.cookies["parley_csrf"]}


class TestCsrfCookie:
    async def test_login_sets_a_readable_csrf_cookie_matching_the_body(self, https_client):
        user = await register(https_client)
        response = await https_client.post(
            "/api/auth/login", json={"email": user.email, "password": PASSWORD}
        )

        cookies = [c for c in response.headers.get_list("set-cookie") if "parley_csrf=" in c]
        assert len(cookies) == 1
        attributes = cookies[0].lower()
        assert "httponly" not in attributes  # the frontend's JavaScript reads it
        assert "samesite=lax" in attributes and "secure" in attributes and "path=/" in attributes
        assert https_client.cookies["parley_csrf"] == response.json()["csrf_token"]

    async def test_refresh_from_the_cookie_needs_no_csrf_token_and_issues_a_new_one(
        self, https_client
    ):
        user = await register(https_client)
        tokens = await cookie_login(https_client, user.email)

        response = await https_client.post("/api/auth/refresh")

        assert response.status_code == 200, response.text
        assert response.json()["csrf_token"] != tokens["csrf_token"]
        assert https_client.cookies["parley_csrf"] == response.json()["csrf_token"]
        logout = await https_client.post("/api/auth/logout", headers=csrf_header(https_client))
        assert logout.status_code == 204

    async def test_logout_clears_the_csrf_cookie(self, https_client):
        user = await register(https_client)
        await cookie_login(https_client, user.email)

        await https_client.post("/api/auth/logout", headers=csrf_header(https_client))

        assert "parley_csrf" not in https_client.cookies


class TestCsrfEnforcement:
    async def test_cookie_request_without_the_token_is_refused(self, https_client):
        user = await register(https_client)
        await cookie_login(https_client, user.email)

        response = await https_client.post("/api/auth/logout")

        assert_error(response, 403, "csrf_failed")
        assert (await https_client.get("/api/auth/me")).status_code == 200  # still signed in

    async def test_cookie_request_with_the_token_is_accepted(self, https_client):
        user = await register(https_client)
        tokens = await cookie_login(https_client, user.email)

        response = await https_client.post("/api/auth/logout", headers=csrf_header(https_client))

        assert response.status_code == 204
        me = await https_client.get("/api/auth/me", headers=bearer(tokens["access_token"]))
        assert_error(me, 401, "invalid_token")  # the session really ended

    async def test_header_that_differs_from_the_cookie_is_refused(self, https_client):
        user = await register(https_client)
        await cookie_login(https_client, user.email)
        forged = https_client.cookies["parley_csrf"][:-4] + "abcd"

        response = await https_client.post("/api/auth/logout", headers={"X-CSRF-Token": forged})

        assert_error(response, 403, "csrf_failed")

    async def test_token_of_another_session_is_refused(self, https_client):
        """A cookie planted by a sibling subdomain (cookie tossing) does not match the session."""
        user = await register(https_client)
        other = await cookie_login(https_client, user.email)
        await cookie_login(https_client, user.email)  # the jar now holds a second session
        # Both cookie and header carry the first session's (valid, but not this one's) token.
        https_client.cookies.delete("parley_csrf")
        https_client.cookies.set("parley_csrf", other["csrf_token"], domain="testserver.local")
        assert https_client.cookies["parley_csrf"] == other["csrf_token"]

        response = await https_client.post(
            "/api/auth/logout", headers={"X-CSRF-Token": other["csrf_token"]}
        )

        assert_error(response, 403, "csrf_failed")

    async def test_safe_methods_need_no_token(self, https_client):
        user = await register(https_client)
        await cookie_login(https_client, user.email)

        me = await https_client.get("/api/auth/me")
        profile = await https_client.get("/api/users/me")

        assert me.status_code == profile.status_code == 200
        assert me.json()["email"] == profile.json()["email"] == user.email

    async def test_every_unsafe_method_is_covered(self, https_client):
        user = await register(https_client)
        await cookie_login(https_client, user.email)

        patch = await https_client.patch("/api/users/me", json={"display_name": "Mallory"})
        delete = await https_client.request("DELETE", "/api/users/me", json={"password": PASSWORD})
        change = await https_client.post(
            "/api/auth/change-password",
            json={"current_password": PASSWORD, "new_password": "a totally new passphrase 1"},
        )

        for response in (patch, delete, change):
            assert_error(response, 403, "csrf_failed")
        assert (await https_client.get("/api/users/me")).json()["display_name"] == "Ada Lovelace"


class TestBearerIsUnaffected:
    async def test_bearer_request_needs_no_csrf_token(self, client):
        user = await register(client)

        response = await client.patch(
            "/api/users/me", json={"display_name": "Grace"}, headers=user.headers
        )

        assert response.status_code == 200, response.text
        profile = await client.get("/api/users/me", headers=user.headers)
        assert profile.json()["display_name"] == "Grace"

    async def test_bearer_wins_even_with_cookies_present(self, https_client):
        user = await register(https_client)
        tokens = await cookie_login(https_client, user.email)

        response = await https_client.post(
            "/api/auth/logout", headers=bearer(tokens["access_token"])
        )

        assert response.status_code == 204
        me = await https_client.get("/api/auth/me", headers=bearer(tokens["access_token"]))
        assert_error(me, 401, "invalid_token")


class TestEmptyBearerIsNoBearer:
    """An `Authorization` header that carries no token must not switch the CSRF check off."""

    EMPTY_BEARERS = ("Bearer", "bearer", "BEARER", "Bearer    ")

    async def test_cookie_requests_with_an_empty_bearer_still_need_the_token(self, https_client):
        user = await register(https_client)
        await cookie_login(https_client, user.email)

        for value in self.EMPTY_BEARERS:
            create = await https_client.post(
                "/api/chats", json={"title": "forged"}, headers={"Authorization": value}
            )
            logout_all = await https_client.post(
                "/api/auth/logout-all", headers={"Authorization": value}
            )
            assert_error(create, 403, "csrf_failed")
            assert_error(logout_all, 403, "csrf_failed")

        chats = await https_client.get("/api/chats")
        assert chats.json()["items"] == []
        # The session survived every forged logout-all.
        assert (await https_client.get("/api/auth/me")).status_code == 200

    async def test_with_the_token_an_empty_bearer_changes_nothing(self, https_client):
        user = await register(https_client)
        await cookie_login(https_client, user.email)

        response = await https_client.post(
            "/api/chats",
            json={"title": "mine"},
            headers={"Authorization": "Bearer", **csrf_header(https_client)},
        )

        assert response.status_code == 201, response.text
