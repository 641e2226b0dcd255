"""Browser hardening headers on every response."""

from tests.support.app import serving
from tests.support.settings import make_settings

COMMON = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
}


class TestSecurityHeaders:
    async def test_on_api_responses(self, client):
        response = await client.get("/health")
        for name, value in COMMON.items():
            assert response.headers[name] == value
        assert "default-src 'none'" in response.headers["content-security-policy"]
        assert "frame-ancestors 'none'" in response.headers["content-security-policy"]

    async def test_on_errors_too(self, client):
        response = await client.get("/api/no-such-endpoint")
        assert response.status_code == 404
        for name, value in COMMON.items():
            assert response.headers[name] == value
        assert response.headers["cache-control"] == "no-store"

    async def test_api_answers_are_not_cached(self, client):
        response = await client.post("/api/auth/login", json={"email": "a@b.co", "password": "x"})
        assert response.headers["cache-control"] == "no-store"

    async def test_docs_get_a_policy_that_lets_swagger_load(self, client):
        response = await client.get("/docs")
        assert response.status_code == 200
        policy = response.headers["content-security-policy"]
        assert "script-src 'self';" in policy
        assert "frame-ancestors 'none'" in policy
        assert response.headers["x-frame-options"] == "DENY"

    async def test_no_hsts_outside_production(self, client):
        response = await client.get("/health")
        assert "strict-transport-security" not in response.headers

    async def test_hsts_in_production(self, database, clean_db):
        settings = make_settings(
            database, environment="production", secret_key="p" * 48, hsts_seconds=31536000
        )
        async with serving(settings) as (_app, client):
            response = await client.get("/health")
        assert response.headers["strict-transport-security"] == (
            "max-age=31536000; includeSubDomains"
        )
