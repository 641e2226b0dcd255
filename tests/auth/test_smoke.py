from tests.support.api import register


async def test_register_then_me_returns_the_account(client):
    user = await register(client)
    response = await client.get("/api/auth/me", headers=user.headers)
    assert response.status_code == 200, response.text
    assert response.json()["email"] == user.email
