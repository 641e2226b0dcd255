"""Routing across a model's deployments: several fake upstreams on loopback (a dead port, one
answering 500, one 429 with Retry-After, one hanging, one sending an empty 200, one cutting the
stream), and what a client of Parley sees: failover before the first token, no restart after
it, cooldowns and the half-open probe, the strategies, stickiness, fallbacks, the admin view."""

import asyncio
import json
import socket
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, asynccontextmanager, contextmanager
from typing import Any

import httpx
import pytest

from app.generation.upstream.registry import ModelRegistry
from app.groups.access import EVERY_MODEL
from tests.keys.helpers import make_admin
from tests.ops.test_processes import redis_url  # noqa: F401 - the fixture
from tests.support.api import SignedInUser, assert_error, register
from tests.support.database import TestDatabase
from tests.support.fake_upstream import FakeUpstream, run_fake_upstream
from tests.support.processes import server
from tests.support.settings import make_settings
from tests.support.sse import SSEEvent, collect_sse, names, text_of
from tests.support.upstream_fixtures import Parley, new_chat, running_parley

SSE = {"Accept": "text/event-stream"}
WHOLE = "Hello, world!"


@contextmanager
def dead_port() -> Iterator[str]:
    """A base URL whose port is bound but not listening: connections are refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/v1"


@asynccontextmanager
async def fakes(count: int) -> AsyncIterator[list[FakeUpstream]]:
    async with AsyncExitStack() as stack:
        yield [await stack.enter_async_context(run_fake_upstream()) for _ in range(count)]


def deployments(**urls: str) -> list[dict[str, Any]]:
    return [{"name": name, "base_url": url, "model": "fake-model"} for name, url in urls.items()]


@asynccontextmanager
async def routed(
    database: TestDatabase, models: dict[str, Any], **settings: Any
) -> AsyncIterator[Parley]:
    """Parley with `models` (LLM_MODELS); `usage` routing by default, which, with no limits set,
    tries the deployments in the order given: each test knows which one goes first."""
    values: dict[str, Any] = {
        "llm_models": models,
        "llm_routing": "usage",
        "llm_first_token_timeout": 1.0,
        "llm_idle_timeout": 2.0,
        "stream_checkpoint_seconds": 0.2,
        "echo_token_delay": 0.0,
        "auto_title": False,
        **settings,
    }
    async with running_parley(make_settings(database, **values)) as parley:
        yield parley


async def reply(parley: Parley, user: SignedInUser, chat: dict[str, Any]) -> list[SSEEvent]:
    return await reply_over(parley.http, user, chat)


def served_by(events: list[SSEEvent]) -> dict[str, str]:
    assert names(events)[-1] == "done", events[-1]
    assert text_of(events) == WHOLE  # the text once: nothing of a failed attempt
    return dict(events[-1].data["served_by"])


async def start(parley: Parley) -> tuple[SignedInUser, dict[str, Any]]:
    user = await register(parley.http)
    return user, await new_chat(parley.http, user)


class TestFailoverBeforeTheFirstToken:
    @pytest.mark.parametrize(
        "fault",
        ["dead_port", "http_500", "http_429", "hang_before_headers", "empty_200"],
    )
    async def test_the_next_deployment_answers(self, database, clean_db, fault):
        async with fakes(2) as (bad, good):
            with dead_port() as nowhere:
                first = nowhere if fault == "dead_port" else bad.base_url
                match fault:
                    case "http_500":
                        bad.state.error_status = 500
                    case "http_429":
                        bad.state.error_status = 429
                    case "hang_before_headers":
                        bad.state.hang_before_headers = True
                    case "empty_200":
                        bad.state.empty_body = True
                models = {"fake-model": {"deployments": deployments(a=first, b=good.base_url)}}
                async with routed(database, models) as parley:
                    user, chat = await start(parley)
                    events = await reply(parley, user, chat)
                    assert served_by(events) == {"model": "fake-model", "deployment": "b"}
                    assert names(events)[0] == "start"
                    saved = await parley.http.get(
                        f"/api/chats/{chat['id']}/messages", headers=user.headers
                    )
                    answer = saved.json()["items"][-1]
        assert answer["content"] == WHOLE and answer["status"] == "complete"
        assert answer["served_by"] == {"model": "fake-model", "deployment": "b"}
        assert len(good.state.requests) == 1
        if fault != "dead_port":
            assert len(bad.state.requests) == 1

    async def test_a_stream_cut_after_its_first_tokens_is_not_restarted(self, database, clean_db):
        async with fakes(2) as (cutting, good):
            cutting.state.drop_after = 3
            models = {
                "fake-model": {"deployments": deployments(a=cutting.base_url, b=good.base_url)}
            }
            async with routed(database, models) as parley:
                user, chat = await start(parley)
                events = await reply(parley, user, chat)
        assert names(events)[-1] == "error"
        assert events[-1].data["code"] == "upstream_incomplete"
        assert events[-1].data["saved"]["status"] == "failed"
        assert text_of(events) == "Hello, world"  # three tokens, once
        assert good.state.requests == []

    async def test_a_bad_request_is_not_sent_elsewhere(self, database, clean_db):
        async with fakes(2) as (refusing, good):
            refusing.state.error_status = 400
            refusing.state.error_body = '{"error": {"message": "context too long"}}'
            models = {
                "fake-model": {"deployments": deployments(a=refusing.base_url, b=good.base_url)}
            }
            async with routed(database, models) as parley:
                user, chat = await start(parley)
                events = await reply(parley, user, chat)
        assert names(events)[-1] == "error" and "context too long" in events[-1].data["message"]
        assert good.state.requests == []


class TestCooldown:
    async def test_a_failing_deployment_rests_then_one_probe_decides(self, database, clean_db):
        async with fakes(2) as (flaky, good):
            flaky.state.error_status = 500
            models = {"fake-model": {"deployments": deployments(a=flaky.base_url, b=good.base_url)}}
            async with routed(
                database, models, llm_allowed_fails=1, llm_cooldown_seconds=1.5
            ) as parley:
                user, chat = await start(parley)
                assert served_by(await reply(parley, user, chat))["deployment"] == "b"
                # Cooling down: no request reaches it.
                for _ in range(3):
                    assert served_by(await reply(parley, user, chat))["deployment"] == "b"
                assert len(flaky.state.requests) == 1
                # Half-open: one probe (a new chat's: this one stays where it is), which
                # fails: cooling down again.
                await asyncio.sleep(1.6)
                probing = await new_chat(parley.http, user)
                assert served_by(await reply(parley, user, probing))["deployment"] == "b"
                assert len(flaky.state.requests) == 2
                other = await new_chat(parley.http, user)
                assert served_by(await reply(parley, user, other))["deployment"] == "b"
                assert len(flaky.state.requests) == 2
                # It recovers; the next probe succeeds and it is healthy again.
                flaky.state.error_status = None
                await asyncio.sleep(1.6)
                for _ in range(2):
                    other = await new_chat(parley.http, user)
                    assert served_by(await reply(parley, user, other))["deployment"] == "a"
                assert served_by(await reply(parley, user, chat))["deployment"] == "b"

    async def test_retry_after_is_honoured_with_no_request_inside_it(self, database, clean_db):
        async with fakes(2) as (limited, good):
            limited.state.error_status = 429
            limited.state.error_retry_after = "1"
            limited.state.faulty_requests = 1
            models = {
                "fake-model": {"deployments": deployments(a=limited.base_url, b=good.base_url)}
            }
            async with routed(database, models, llm_allowed_fails=100) as parley:
                user = await register(parley.http)
                chat = await new_chat(parley.http, user)
                assert served_by(await reply(parley, user, chat))["deployment"] == "b"
                refused_at = time.monotonic()  # a's 429 came before b answered
                while time.monotonic() - refused_at < 0.8:
                    other = await new_chat(parley.http, user)
                    assert served_by(await reply(parley, user, other))["deployment"] == "b"
                assert len(limited.state.requests) == 1
                await asyncio.sleep(1.1 - (time.monotonic() - refused_at))
                other = await new_chat(parley.http, user)
                assert served_by(await reply(parley, user, other))["deployment"] == "a"

    async def test_when_all_cool_down_the_reply_waits_for_the_first_back(self, database, clean_db):
        async with fakes(2) as (one, two):
            for fake in (one, two):
                fake.state.error_status = 503
                fake.state.error_retry_after = "1"
                fake.state.faulty_requests = 1
            models = {"fake-model": {"deployments": deployments(a=one.base_url, b=two.base_url)}}
            async with routed(database, models, llm_first_token_timeout=3.0) as parley:
                user, chat = await start(parley)
                began = time.monotonic()
                events = await reply(parley, user, chat)
                waited = time.monotonic() - began
        assert served_by(events)["deployment"] in ("a", "b")
        assert waited >= 0.9
        assert len(one.state.requests) + len(two.state.requests) == 3

    async def test_a_lone_deployment_is_not_cooled_by_failures(self, database, clean_db):
        async with fakes(1) as (flaky,):
            flaky.state.error_status = 500
            models = {"fake-model": {"deployments": deployments(a=flaky.base_url)}}
            async with routed(database, models, llm_allowed_fails=1) as parley:
                user, chat = await start(parley)
                assert names(await reply(parley, user, chat))[-1] == "error"
                flaky.state.error_status = None
                assert served_by(await reply(parley, user, chat))["deployment"] == "a"


class TestStrategies:
    async def test_weighted_spreads_by_weight(self, database, clean_db):
        async with fakes(2) as (heavy, light):
            spec = deployments(a=heavy.base_url, b=light.base_url)
            spec[0]["weight"], spec[1]["weight"] = 4, 1
            async with routed(
                database, {"fake-model": {"deployments": spec}}, llm_routing="weighted"
            ) as parley:
                user = await register(parley.http)
                for _ in range(40):
                    chat = await new_chat(parley.http, user)
                    served_by(await reply(parley, user, chat))
        # 40 replies at 4:1; both get some, the heavier most (each bound ~5 sigma out).
        assert 22 <= len(heavy.state.requests) <= 39
        assert len(heavy.state.requests) + len(light.state.requests) == 40

    async def test_least_busy_avoids_the_busy_one(self, database, clean_db):
        async with fakes(2) as (slow, idle):
            slow.state.token_delay = 0.3
            idle.state.token_delay = 0.3
            models = {"fake-model": {"deployments": deployments(a=slow.base_url, b=idle.base_url)}}
            async with routed(database, models, llm_routing="least-busy") as parley:
                user = await register(parley.http)
                chats = [await new_chat(parley.http, user) for _ in range(4)]
                served = await asyncio.gather(*(reply(parley, user, chat) for chat in chats))
        counts = [served_by(events)["deployment"] for events in served]
        assert counts.count("a") == counts.count("b") == 2
        assert slow.state.max_active_streams == idle.state.max_active_streams == 2

    async def test_latency_prefers_the_fastest_first_token(self, database, clean_db):
        async with fakes(2) as (slow, fast):
            slow.state.first_token_delay = 0.3
            models = {"fake-model": {"deployments": deployments(a=slow.base_url, b=fast.base_url)}}
            async with routed(database, models, llm_routing="latency") as parley:
                user = await register(parley.http)
                for _ in range(6):
                    chat = await new_chat(parley.http, user)
                    served_by(await reply(parley, user, chat))
        # Each is tried once (nothing is known of it before), then the fast one only.
        assert len(slow.state.requests) == 1 and len(fast.state.requests) == 5


class TestStickiness:
    async def test_a_chat_stays_on_its_deployment_new_chats_spread(self, database, clean_db):
        async with fakes(2) as (one, two):
            models = {"fake-model": {"deployments": deployments(a=one.base_url, b=two.base_url)}}
            async with routed(database, models, llm_routing="weighted") as parley:
                user, chat = await start(parley)
                first = served_by(await reply(parley, user, chat))["deployment"]
                for _ in range(5):
                    assert served_by(await reply(parley, user, chat))["deployment"] == first
                spread = set()
                for _ in range(20):
                    other = await new_chat(parley.http, user)
                    spread.add(served_by(await reply(parley, user, other))["deployment"])
        assert spread == {"a", "b"}

    async def test_it_moves_when_its_deployment_cools_down(self, database, clean_db):
        async with fakes(2) as (one, two):
            models = {"fake-model": {"deployments": deployments(a=one.base_url, b=two.base_url)}}
            async with routed(database, models, llm_allowed_fails=1) as parley:
                user, chat = await start(parley)
                assert served_by(await reply(parley, user, chat))["deployment"] == "a"
                one.state.error_status = 500
                assert served_by(await reply(parley, user, chat))["deployment"] == "b"
                assert served_by(await reply(parley, user, chat))["deployment"] == "b"


class TestFallbacks:
    async def test_the_fallback_model_answers_when_every_deployment_failed(
        self, database, clean_db
    ):
        async with fakes(3) as (big_1, big_2, small):
            big_1.state.error_status = big_2.state.error_status = 502
            models = {
                "big": {"deployments": deployments(b1=big_1.base_url, b2=big_2.base_url)},
                "small": {"deployments": deployments(s=small.base_url)},
            }
            async with routed(
                database, models, llm_fallbacks={"big": ["small"]}, default_model="big"
            ) as parley:
                user = await register(parley.http)
                chat = await new_chat(parley.http, user, model="big")
                events = await reply(parley, user, chat)
                usage = await parley.http.get(
                    "/api/usage", params={"group_by": "model"}, headers=user.headers
                )
                by_deployment = await parley.http.get(
                    "/api/usage", params={"group_by": "deployment"}, headers=user.headers
                )
        assert served_by(events) == {"model": "small", "deployment": "s"}
        assert events[-1].data["model"] == "big"  # asked for; served_by says who answered
        assert len(big_1.state.requests) == len(big_2.state.requests) == 1
        assert [row["key"] for row in usage.json()["items"]] == ["small"]
        assert [row["key"] for row in by_deployment.json()["items"]] == ["small/s"]

    async def test_when_everything_fails_the_client_gets_one_error(self, database, clean_db):
        async with fakes(2) as (big, small):
            big.state.error_status = small.state.error_status = 500
            models = {
                "big": {"deployments": deployments(b=big.base_url)},
                "small": {"deployments": deployments(s=small.base_url)},
            }
            async with routed(
                database, models, llm_fallbacks={"big": ["small"]}, default_model="big"
            ) as parley:
                user = await register(parley.http)
                chat = await new_chat(parley.http, user, model="big")
                events = await reply(parley, user, chat)
        assert names(events) == ["start", "usage", "error"] or names(events)[-1] == "error"
        assert "delta" not in names(events)
        assert events[-1].data["code"] == "upstream_http_error"


class TestOperatorsView:
    async def test_the_admin_view_the_model_list_and_readiness(self, database, clean_db):
        async with fakes(2) as (down, up):
            down.state.error_status = 503
            down.state.error_retry_after = "30"
            spec = deployments(a=down.base_url, b=up.base_url)
            spec[0]["api_key"] = "sk-secret-of-a"
            async with routed(database, {"fake-model": {"deployments": spec}}) as parley:
                user, chat = await start(parley)
                served_by(await reply(parley, user, chat))
                admin = await register(parley.http)
                await make_admin(clean_db, admin)
                view = await parley.http.get("/api/admin/upstreams", headers=admin.headers)
                refused = await parley.http.get("/api/admin/upstreams", headers=user.headers)
                ready = await parley.http.get("/health/ready")
                models = await parley.http.get("/api/models", headers=user.headers)
                # Both cooling down: the model is unavailable and readiness degraded.
                up.state.error_status = 503
                up.state.error_retry_after = "30"
                other = await new_chat(parley.http, user)
                await reply(parley, user, other)
                degraded = await parley.http.get("/health/ready")
                unavailable = await parley.http.get("/api/models", headers=user.headers)
        assert view.status_code == 200, view.text
        assert "sk-secret-of-a" not in view.text
        (model,) = [m for m in view.json() if m["model"] == "fake-model"]
        a, b = model["deployments"]
        assert a["state"] == "cooldown" and a["cooldown_until"] is not None
        assert a["last_error"].startswith("http_5xx") and a["error_rate"] == 1.0
        assert b["state"] == "healthy" and b["ewma_ttft_ms"] is not None and b["in_flight"] == 0
        assert_error(refused, 403)
        assert ready.json()["status"] == "ready"
        assert {m["name"]: m["available"] for m in models.json()}["fake-model"] is True
        assert degraded.status_code == 200 and degraded.json()["status"] == "degraded"
        assert degraded.json()["checks"]["model:fake-model"]["status"] == "degraded"
        assert {m["name"]: m["available"] for m in unavailable.json()}["fake-model"] is False


class TestSharedAcrossWorkers:
    async def test_a_deployment_cooled_on_one_worker_is_cooled_on_the_other(
        self,
        database,
        clean_db,
        redis_url,  # noqa: F811
    ):
        tag = uuid.uuid4().hex[:8]  # the Redis keys of this test alone
        async with fakes(2) as (limited, good):
            limited.state.error_status = 429
            limited.state.error_retry_after = "30"
            spec = deployments(**{f"a-{tag}": limited.base_url, f"b-{tag}": good.base_url})
            settings = {
                "database_url": database.url,
                "redis_url": redis_url,
                "llm_models": json.dumps({"fake-model": {"deployments": spec}}),
                "llm_routing": "usage",
                "rate_limit_key_prefix": f"parley-test-{tag}",
            }
            async with (
                server(settings) as first,
                server(settings) as second,
                httpx.AsyncClient(base_url=first.base_url, timeout=30) as one,
                httpx.AsyncClient(base_url=second.base_url, timeout=30) as two,
            ):
                user = await register(one)
                events = await reply_over(one, user, await new_chat(one, user))
                assert served_by(events)["deployment"] == f"b-{tag}"
                assert len(limited.state.requests) == 1
                await asyncio.sleep(1.0)  # the other worker reads the cooldown within a second
                for _ in range(3):
                    events = await reply_over(two, user, await new_chat(two, user))
                    assert served_by(events)["deployment"] == f"b-{tag}"
        assert len(limited.state.requests) == 1


async def reply_over(
    http: httpx.AsyncClient, user: SignedInUser, chat: dict[str, Any]
) -> list[SSEEvent]:
    async with http.stream(
        "POST",
        f"/api/chats/{chat['id']}/messages",
        json={"content": "Hi there"},
        headers={**user.headers, **SSE},
    ) as response:
        return await collect_sse(response)


class TestConfiguration:
    def test_a_models_file_in_yaml_and_the_one_base_url_form(self, database, tmp_path):
        path = tmp_path / "models.yaml"
        path.write_text(
            "big:\n"
            "  context_length: 32768\n"
            "  deployments:\n"
            "    - {base_url: 'http://gpu-1:8000/v1', model: llama, weight: 3, max_parallel: 8}\n"
            "    - {name: spare, base_url: 'http://gpu-2:8000/v1', model: llama, rpm: 60}\n"
            "small:\n"
            "  base_url: http://gpu-3:8000/v1\n"
        )
        registry = ModelRegistry.from_settings(
            make_settings(database, llm_models_file=path, llm_fallbacks={"big": ["small"]})
        )
        big = registry.resolve("big", permit=EVERY_MODEL)
        assert [(d.name, d.weight, d.max_parallel, d.rpm) for d in big.deployments] == [
            ("gpu-1:8000", 3.0, 8, None),
            ("spare", 1.0, None, 60),
        ]
        assert big.context_length == 32768 and big.deployments[1].upstream_model == "llama"
        (small,) = registry.resolve("small", permit=EVERY_MODEL).deployments
        assert small.base_url == "http://gpu-3:8000/v1" and small.upstream_model == "small"

    @pytest.mark.parametrize(
        ("models", "fallbacks", "says"),
        [
            ({"m": {"deployments": []}}, {}, "non-empty list"),
            ({"m": {"deployments": [{"model": "x"}]}}, {}, "needs a base_url"),
            ({"m": {"deployments": deployments(a="http://h/v1") * 2}}, {}, "distinct names"),
            ({"m": {"deployments": [{"base_url": "http://h/v1", "weight": 0}]}}, {}, "weight"),
            ({"m": {"deployments": [{"base_url": "http://h/v1", "rpm": 1.5}]}}, {}, "rpm"),
            ({"m": {"base_url": "http://h/v1"}}, {"m": ["nowhere"]}, "do not exist"),
        ],
    )
    def test_a_wrong_configuration_says_what_is_wrong(self, database, models, fallbacks, says):
        with pytest.raises(ValueError, match=says):
            ModelRegistry.from_settings(
                make_settings(database, llm_models=models, llm_fallbacks=fallbacks)
            )
