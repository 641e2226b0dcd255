import httpx

from tests.support.app import start_app
from tests.support.settings import make_settings


class TestHealth:
    async def test_alive(self, client):
        response = await client.get("/health")
        assert response.status_code == 200 and response.json() == {"status": "ok"}

    async def test_ready_when_the_database_answers(self, client):
        response = await client.get("/health/ready")
        assert response.status_code == 200
        assert response.json()["checks"]["database"]["status"] == "ok"

    async def test_not_ready_when_the_database_is_down(self, database):
        settings = make_settings(
            database, database_url="postgresql+asyncpg://postgres@127.0.0.1:1/nowhere"
        )
        app, lifespan = await start_app(settings)
        try:
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
                response = await http.get("/health/ready")
        finally:
            await lifespan.__aexit__(None, None, None)
        assert response.status_code == 503
        assert response.json()["checks"]["database"]["status"] == "error"
