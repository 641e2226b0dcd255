"""Prometheus metrics and readiness with upstreams."""

import re

from tests.support.settings import make_settings
from tests.support.upstream_fixtures import parley_settings, running_parley


def sample(text: str, name: str, **labels: str) -> float:
    """The value of one sample in Prometheus text format (0 when absent)."""
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', line.split(" ")[0]))
        if all(found.get(k) == v for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


class TestMetrics:
    async def test_counters_move_with_requests_and_replies(self, parley, author, chat):
        before = (await parley.http.get("/metrics")).text
        await parley.http.post(
            f"/api/chats/{chat['id']}/messages", json={"content": "Hi"}, headers=author.headers
        )
        await parley.http.get("/api/chats", headers=author.headers)
        after = (await parley.http.get("/metrics")).text
        route = "/api/chats"
        assert sample(after, "parley_http_requests_total", route=route, status="200") == (
            sample(before, "parley_http_requests_total", route=route, status="200") + 1
        )
        assert sample(after, "parley_tokens_total", model="fake-model", direction="completion") == (
            sample(before, "parley_tokens_total", model="fake-model", direction="completion") + 4
        )
        assert sample(after, "parley_time_to_first_token_seconds_count", model="fake-model") == 1
        assert sample(after, "parley_active_streams") == 0

    async def test_upstream_errors_are_counted_by_kind(self, parley, author, chat, fake_upstream):
        fake_upstream.state.drop_after = 1
        await parley.http.post(
            f"/api/chats/{chat['id']}/messages", json={"content": "Hi"}, headers=author.headers
        )
        text = (await parley.http.get("/metrics")).text
        assert sample(text, "parley_upstream_errors_total", kind="upstream_incomplete") == 1

    async def test_can_be_turned_off(self, database, clean_db, fake_upstream):
        settings = parley_settings(database, fake_upstream, metrics_enabled=False)
        async with running_parley(settings) as parley:
            response = await parley.http.get("/metrics")
        assert response.status_code == 404


class TestReadiness:
    async def test_reports_each_upstream(self, parley):
        response = await parley.http.get("/health/ready")
        assert response.status_code == 200
        assert response.json()["checks"]["upstream:fake-model"] == {
            "status": "ok",
            "detail": None,
        }

    async def test_a_dead_upstream_makes_it_not_ready(self, database, clean_db, fake_upstream):
        settings = parley_settings(database, fake_upstream, llm_base_url="http://127.0.0.1:9/v1")
        async with running_parley(settings) as parley:
            response = await parley.http.get("/health/ready")
        assert response.status_code == 503
        assert response.json()["checks"]["upstream:fake-model"]["status"] == "error"
        assert response.json()["checks"]["database"]["status"] == "ok"

    async def test_echo_only_needs_no_upstream(self, database, clean_db):
        async with running_parley(make_settings(database)) as parley:
            response = await parley.http.get("/health/ready")
        assert response.status_code == 200
        assert set(response.json()["checks"]) == {"database"}
