"""Usage records, reports and daily token quotas, against the fake upstream over real HTTP."""

import asyncio

from sqlalchemy import text

from tests.support.api import assert_error, register
from tests.support.sse import collect_sse
from tests.support.upstream_fixtures import new_chat, parley_settings, running_parley


async def send(parley, user, chat, content="Hello there"):
    return await parley.http.post(
        f"/api/chats/{chat['id']}/messages", json={"content": content}, headers=user.headers
    )


class TestUsageReport:
    async def test_sums_match_the_recorded_messages(self, database, clean_db, fake_upstream):
        settings = parley_settings(database, fake_upstream, auto_title=False)
        async with running_parley(settings) as parley:
            user = await register(parley.http)
            chat = await new_chat(parley.http, user)
            replies = [(await send(parley, user, chat, f"question {i}")).json() for i in range(3)]
            fake_upstream.state.send_usage = False  # like llama.cpp: estimated
            replies.append((await send(parley, user, chat, "estimated one")).json())
            report = (await parley.http.get("/api/usage", headers=user.headers)).json()
            by_model = await parley.http.get(
                "/api/usage", params={"group_by": "model"}, headers=user.headers
            )
        totals = report["totals"]
        assert totals["requests"] == 4
        assert totals["prompt_tokens"] == sum(r["prompt_tokens"] for r in replies)
        assert totals["completion_tokens"] == sum(r["completion_tokens"] for r in replies)
        assert totals["estimated_tokens"] == (
            replies[3]["prompt_tokens"] + replies[3]["completion_tokens"]
        )
        assert totals["reported_tokens"] + totals["estimated_tokens"] == totals["total_tokens"]
        assert len(report["items"]) == 1 and report["items"][0]["key"] == report["to"]
        assert [row["key"] for row in by_model.json()["items"]] == ["fake-model"]
        assert report["quota"]["daily_limit"] is None

    async def test_other_users_usage_is_not_mine(self, parley, author, chat):
        await send(parley, author, chat)
        stranger = await register(parley.http)
        report = (await parley.http.get("/api/usage", headers=stranger.headers)).json()
        assert report["totals"]["requests"] == 0 and report["items"] == []

    async def test_bad_range_is_422(self, parley, author):
        response = await parley.http.get(
            "/api/usage", params={"from": "2026-02-01", "to": "2026-01-01"}, headers=author.headers
        )
        assert_error(response, 422, "invalid_range")

    async def test_a_number_is_not_a_date(self, parley, author):
        for value in ("1.192092896e-07", "20260101", "2026-1-1"):
            response = await parley.http.get(
                "/api/usage", params={"to": value}, headers=author.headers
            )
            assert_error(response, 422, "validation_error")

    async def test_the_earliest_dates_are_an_empty_report(self, parley, author):
        response = await parley.http.get(
            "/api/usage", params={"to": "0001-01-01"}, headers=author.headers
        )
        assert response.status_code == 200, response.text
        assert response.json()["from"] == "0001-01-01"
        assert response.json()["items"] == []

    async def test_admin_sees_top_users(self, parley, author, chat, admin_engine):
        await send(parley, author, chat)
        admin = await register(parley.http)
        async with admin_engine.begin() as connection:
            await connection.execute(
                text("UPDATE user_account SET role='admin' WHERE email=:email"),
                {"email": admin.email},
            )
        refused = await parley.http.get("/api/admin/usage", headers=author.headers)
        assert_error(refused, 403)
        top = await parley.http.get(
            "/api/admin/usage", params={"group_by": "user"}, headers=admin.headers
        )
        assert top.status_code == 200, top.text
        assert [(r["key"], r["email"]) for r in top.json()["items"]] == [
            (author.user_id, author.email)
        ]


class TestQuota:
    async def test_over_quota_is_429_before_the_upstream_is_called(
        self, database, clean_db, fake_upstream
    ):
        settings = parley_settings(database, fake_upstream, daily_token_quota=700, auto_title=False)
        async with running_parley(settings) as parley:
            user = await register(parley.http)
            chat = await new_chat(parley.http, user, max_tokens=50)
            first = await send(parley, user, chat)
            assert first.status_code == 200, first.text
            assert int(first.headers["x-quota-limit"]) == 700
            remaining = int(first.headers["x-quota-remaining"])
            assert 0 < remaining < 700
            calls = len(fake_upstream.state.requests)
            statuses = []
            for _ in range(30):
                response = await send(parley, user, chat)
                statuses.append(response.status_code)
                if response.status_code == 429:
                    break
            refused = response
            assert_error(refused, 429, "quota_exceeded")
            assert int(refused.headers["retry-after"]) > 0
            assert len(fake_upstream.state.requests) == calls + statuses.count(200)
            usage = (await parley.http.get("/api/usage", headers=user.headers)).json()
            assert usage["quota"]["daily_limit"] == 700
            assert usage["quota"]["remaining_today"] < 200

    async def test_quota_headers_are_readable_by_a_frontend_on_another_origin(
        self, database, clean_db, fake_upstream
    ):
        frontend = "https://chat.example.org"
        settings = parley_settings(
            database,
            fake_upstream,
            daily_token_quota=700,
            auto_title=False,
            cors_origins=[frontend],
        )
        async with running_parley(settings) as parley:
            user = await register(parley.http)
            chat = await new_chat(parley.http, user, max_tokens=50)
            answer = await parley.http.post(
                f"/api/chats/{chat['id']}/messages",
                json={"content": "Hello there"},
                headers={**user.headers, "Origin": frontend},
            )
            other = await parley.http.post(
                f"/api/chats/{chat['id']}/messages",
                json={"content": "Hello again"},
                headers={**user.headers, "Origin": "https://elsewhere.example.org"},
            )
        assert answer.status_code == 200, answer.text
        assert answer.headers["access-control-allow-origin"] == frontend
        exposed = {
            name.strip().lower()
            for name in answer.headers["access-control-expose-headers"].split(",")
        }
        assert {"x-quota-limit", "x-quota-remaining", "x-request-id"} <= exposed
        assert int(answer.headers["x-quota-limit"]) == 700
        assert "access-control-allow-origin" not in other.headers

    async def test_concurrent_requests_cannot_overspend(self, database, clean_db, fake_upstream):
        # Replies of max_tokens=20 taking a second each: all twenty are in flight together.
        fake_upstream.state.tokens = 50
        fake_upstream.state.token_delay = 0.05
        settings = parley_settings(database, fake_upstream, daily_token_quota=400, auto_title=False)
        async with running_parley(settings) as parley:
            user = await register(parley.http)
            chats = [await new_chat(parley.http, user, max_tokens=20) for _ in range(20)]

            async def one(chat):
                async with parley.http.stream(
                    "POST",
                    f"/api/chats/{chat['id']}/messages",
                    json={"content": "hi"},
                    headers={**user.headers, "Accept": "text/event-stream"},
                ) as response:
                    if response.status_code != 200:
                        await response.aread()
                        return response.status_code
                    await collect_sse(response)
                    return 200

            statuses = await asyncio.gather(*(one(c) for c in chats))
            usage = (await parley.http.get("/api/usage", headers=user.headers)).json()
        assert 0 < statuses.count(200) < 20, statuses
        assert statuses.count(429) == 20 - statuses.count(200), statuses
        one_reply = usage["totals"]["total_tokens"] / usage["totals"]["requests"]
        assert usage["totals"]["total_tokens"] <= 400 + one_reply


class TestQuotaSetByAdmin:
    async def test_a_per_user_quota_overrides_the_default(self, parley, author, chat, admin_engine):
        admin = await register(parley.http)
        async with admin_engine.begin() as connection:
            await connection.execute(
                text("UPDATE user_account SET role='admin' WHERE email=:email"),
                {"email": admin.email},
            )
        set_quota = await parley.http.patch(
            f"/api/admin/users/{author.user_id}",
            json={"daily_token_quota": 1},
            headers=admin.headers,
        )
        assert set_quota.status_code == 200, set_quota.text
        refused = await send(parley, author, chat)
        assert_error(refused, 429, "quota_exceeded")
        usage = (await parley.http.get("/api/usage", headers=author.headers)).json()
        assert usage["quota"]["daily_limit"] == 1


class TestPreferences:
    async def test_preferred_model_prompt_and_temperature_apply(
        self, parley, author, chat, fake_upstream
    ):
        response = await parley.http.patch(
            "/api/users/me",
            json={"preferences": {"system_prompt": "Answer in French.", "temperature": 0.3}},
            headers=author.headers,
        )
        assert response.status_code == 200, response.text
        await send(parley, author, chat)
        sent = fake_upstream.state.requests[0]  # (the next is the chat's automatic title)
        assert sent["messages"][0] == {"role": "system", "content": "Answer in French."}
        assert sent["temperature"] == 0.3
        await parley.http.patch(
            "/api/users/me", json={"preferences": {"default_model": "echo"}}, headers=author.headers
        )
        reply = await send(parley, author, chat, "ping")
        assert reply.json()["model"] == "echo" and reply.json()["content"] == "Echo: ping"


class TestFailedReplies:
    async def test_a_reply_that_failed_before_any_token_costs_nothing(
        self, parley, author, chat, fake_upstream
    ):
        fake_upstream.state.error_status = 503
        fake_upstream.state.error_body = '{"error": {"message": "overloaded"}}'
        response = await send(parley, author, chat)
        assert response.status_code == 502
        usage = (await parley.http.get("/api/usage", headers=author.headers)).json()
        assert usage["totals"]["total_tokens"] == 0
        assert usage["quota"]["used_today"] == 0
