"""What an operator's deployment exposes (issue 24): /metrics behind METRICS_TOKEN, the API docs
behind DOCS_ENABLED, the guard model kept internal. Parley on a real uvicorn."""

from typing import Any

from tests.guardrails.test_guardrails import GUARD
from tests.support.api import assert_error, register
from tests.support.fake_upstream import FakeUpstream
from tests.support.upstream_fixtures import new_chat, parley_settings, running_parley

TOKEN = "scrape-me-0123456789abcdef"
PRODUCTION = {"environment": "production", "secret_key": "x" * 48}


def settings(database: Any, fake: FakeUpstream, **overrides: Any) -> Any:
    return parley_settings(database, fake, auto_title=False, **overrides)


class TestMetricsToken:
    async def test_with_a_token_only_the_bearer_of_it_reads_metrics(
        self, database, clean_db, fake_upstream
    ):
        async with running_parley(settings(database, fake_upstream, metrics_token=TOKEN)) as p:
            assert_error(await p.http.get("/metrics"), 401, "metrics_token_required")
            wrong = await p.http.get("/metrics", headers={"Authorization": "Bearer nope"})
            assert_error(wrong, 401, "metrics_token_required")
            assert wrong.headers["www-authenticate"] == "Bearer"
            right = await p.http.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
            assert right.status_code == 200 and "parley_http_requests_total" in right.text

    async def test_production_without_a_token_serves_no_metrics(
        self, database, clean_db, fake_upstream
    ):
        async with running_parley(settings(database, fake_upstream, **PRODUCTION)) as parley:
            assert_error(await parley.http.get("/metrics"), 404, "metrics_off")

    async def test_production_with_a_token_serves_them_to_its_bearer(
        self, database, clean_db, fake_upstream
    ):
        configured = settings(database, fake_upstream, metrics_token=TOKEN, **PRODUCTION)
        async with running_parley(configured) as parley:
            assert_error(await parley.http.get("/metrics"), 401)
            response = await parley.http.get(
                "/metrics", headers={"Authorization": f"Bearer {TOKEN}"}
            )
            assert response.status_code == 200


class TestApiDocs:
    async def test_production_serves_no_docs_and_no_schema(self, database, clean_db, fake_upstream):
        async with running_parley(settings(database, fake_upstream, **PRODUCTION)) as parley:
            for path in ("/docs", "/redoc", "/openapi.json", "/docs-assets/swagger-init.js"):
                assert (await parley.http.get(path)).status_code == 404, path
            assert (await parley.http.get("/health")).status_code == 200

    async def test_docs_enabled_turns_them_on_in_production(
        self, database, clean_db, fake_upstream
    ):
        configured = settings(database, fake_upstream, docs_enabled=True, **PRODUCTION)
        async with running_parley(configured) as parley:
            assert (await parley.http.get("/docs")).status_code == 200
            assert (await parley.http.get("/openapi.json")).json()["info"]["title"] == "Parley"

    async def test_docs_enabled_false_turns_them_off_in_development(
        self, database, clean_db, fake_upstream
    ):
        configured = settings(
            database, fake_upstream, docs_enabled=False, environment="development"
        )
        async with running_parley(configured) as parley:
            assert (await parley.http.get("/openapi.json")).status_code == 404
            assert (await parley.http.get("/docs")).status_code == 404


class TestGuardModelIsInternal:
    async def test_it_is_not_listed_and_cannot_be_chatted_with(
        self, database, clean_db, fake_upstream
    ):
        async with running_parley(settings(database, fake_upstream, **GUARD)) as parley:
            user = await register(parley.http)
            models = (await parley.http.get("/api/models", headers=user.headers)).json()
            assert "guard-model" not in [m["name"] for m in models]
            assert "fake-model" in [m["name"] for m in models]
            chat = await new_chat(parley.http, user)
            response = await parley.http.post(
                f"/api/chats/{chat['id']}/messages",
                json={"content": "Hi", "model": "guard-model"},
                headers=user.headers,
            )
            assert_error(response, 404, "unknown_model")
            body = {"mode": "chat", "prompt": "Hi", "model": "guard-model"}
            response = await parley.http.post("/api/generate", json=body, headers=user.headers)
            assert_error(response, 404, "unknown_model")
            assert fake_upstream.state.requests == []
            # The chat model still answers, and the guard still judges.
            answered = await parley.http.post(
                f"/api/chats/{chat['id']}/messages", json={"content": "Hi"}, headers=user.headers
            )
            assert answered.status_code == 200, answered.text
            assert fake_upstream.state.guard_requests
            assert fake_upstream.state.requests[-1]["model"] == "fake-model"
