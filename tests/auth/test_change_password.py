"""Change password: needs the current one, keeps this session, ends the others, no reuse."""

from tests.support.api import PASSWORD, assert_error, bearer, login, register
from tests.support.app import settle

PASSWORDS = [f"history passphrase number {n} is long enough" for n in range(1, 7)]


async def change(client, user, current: str, new: str):
    return await client.post(
        "/api/auth/change-password",
        json={"current_password": current, "new_password": new},
        headers=user.headers,
    )


class TestChangePassword:
    async def test_changes_the_password(self, client):
        user = await register(client)

        response = await change(client, user, PASSWORD, PASSWORDS[0])

        assert response.status_code == 204, response.text
        assert (await login(client, user.email, PASSWORDS[0])).status_code == 200
        assert_error(await login(client, user.email, PASSWORD), 401, "invalid_credentials")

    async def test_wrong_current_password_is_refused(self, client):
        user = await register(client)

        response = await change(client, user, "not my password at all", PASSWORDS[0])

        assert_error(response, 403, "invalid_password")
        assert (await login(client, user.email, PASSWORD)).status_code == 200

    async def test_keeps_this_session_and_ends_the_others(self, client):
        user = await register(client)
        other = (await login(client, user.email)).json()

        await change(client, user, PASSWORD, PASSWORDS[0])

        assert (await client.get("/api/auth/me", headers=user.headers)).status_code == 200
        gone = await client.get("/api/auth/me", headers=bearer(other["access_token"]))
        assert_error(gone, 401, "invalid_token")

    async def test_the_last_five_passwords_cannot_be_reused(self, client):
        user = await register(client)
        current = PASSWORD
        for new in PASSWORDS[:4]:
            assert (await change(client, user, current, new)).status_code == 204
            current = new
        # Now the last five are PASSWORD and PASSWORDS[0..3]; every one of them is refused.
        for old in [PASSWORD, *PASSWORDS[:4]]:
            assert_error(await change(client, user, current, old), 422, "password_reused")

        assert (await change(client, user, current, PASSWORDS[4])).status_code == 204

        # PASSWORD is now the sixth most recent, so it may come back.
        assert (await change(client, user, PASSWORDS[4], PASSWORD)).status_code == 204

    async def test_policy_applies(self, client):
        user = await register(client)
        response = await change(client, user, PASSWORD, user.email)
        assert_error(response, 422, "weak_password")
        assert (await login(client, user.email, PASSWORD)).status_code == 200
        assert_error(await login(client, user.email, user.email), 401, "invalid_credentials")

    async def test_owner_is_mailed(self, app, client, smtp_server):
        user = await register(client)
        await change(client, user, PASSWORD, PASSWORDS[0])
        await settle(app)
        await smtp_server.wait_for(
            lambda m: m.subject == "Your Parley password was changed", to=user.email
        )

    async def test_wrong_current_passwords_count_towards_the_lockout(self, client):
        user = await register(client)
        for _ in range(4):
            assert_error(await change(client, user, "wrong guess, wrong guess", PASSWORDS[0]), 403)

        response = await change(client, user, "wrong guess, wrong guess", PASSWORDS[0])

        assert_error(response, 423, "account_locked")
        assert_error(await login(client, user.email), 423, "account_locked")

    async def test_needs_authentication(self, client):
        response = await client.post(
            "/api/auth/change-password",
            json={"current_password": PASSWORD, "new_password": PASSWORDS[0]},
        )
        assert_error(response, 401)
