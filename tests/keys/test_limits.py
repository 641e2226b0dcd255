"""A key's own limits (rpm, daily tokens, models), on top of its user's, and usage per key;
replies come from the fake upstream over real HTTP."""

from sqlalchemy import text

from tests.keys.helpers import create_key, make_admin, with_key
from tests.support.api import assert_error, register


async def send(parley, headers, chat_id, content="Hello there"):
    return await parley.http.post(
        f"/api/chats/{chat_id}/messages", json={"content": content}, headers=headers
    )


class TestRpm:
    async def test_over_the_keys_rpm_is_429_with_retry_after(self, parley, author):
        key = (await create_key(parley.http, author, scopes=["chats"], rpm=2))["key"]
        for _ in range(2):
            assert (await parley.http.get("/api/chats", headers=with_key(key))).status_code == 200
        refused = await parley.http.get("/api/chats", headers=with_key(key))
        assert_error(refused, 429, "api_key_rate_limited")
        assert 1 <= int(refused.headers["Retry-After"]) <= 60
        # The user's other credentials are not limited by the key's rpm.
        assert (await parley.http.get("/api/chats", headers=author.headers)).status_code == 200


class TestDailyTokenLimit:
    async def test_over_the_keys_limit_is_429_before_the_upstream_is_called(
        self, parley, author, chat, fake_upstream
    ):
        key = (await create_key(parley.http, author, scopes=["chats"], daily_token_limit=50))["key"]
        first = await send(parley, with_key(key), chat["id"])
        assert first.status_code == 200, first.text
        calls = len(fake_upstream.state.requests)
        refused = await send(parley, with_key(key), chat["id"], "more " * 60)
        assert_error(refused, 429, "api_key_quota_exceeded")
        assert 0 < int(refused.headers["Retry-After"]) <= 86400
        assert len(fake_upstream.state.requests) == calls
        # The user's own access token has no such limit.
        assert (await send(parley, author.headers, chat["id"], "more " * 60)).status_code == 200

    async def test_the_users_quota_still_applies_to_keys(self, parley, author, chat, clean_db):
        async with clean_db.begin() as connection:
            await connection.execute(
                text("UPDATE user_account SET daily_token_quota = 1 WHERE email = :email"),
                {"email": author.email},
            )
        key = (await create_key(parley.http, author, scopes=["chats"]))["key"]
        assert_error(await send(parley, with_key(key), chat["id"]), 429, "quota_exceeded")


class TestModels:
    async def test_a_key_may_use_only_its_models(self, parley, author, chat):
        other = (await create_key(parley.http, author, scopes=["chats"], models=["other"]))["key"]
        assert_error(
            await send(parley, with_key(other), chat["id"]), 403, "api_key_model_not_allowed"
        )
        allowed = (await create_key(parley.http, author, scopes=["chats"], models=["fake-model"]))[
            "key"
        ]
        assert (await send(parley, with_key(allowed), chat["id"])).status_code == 200


class TestUsagePerKey:
    async def test_usage_groups_by_key_and_the_list_shows_todays_tokens(
        self, parley, author, chat, clean_db
    ):
        created = await create_key(parley.http, author, scopes=["chats"], name="nightly job")
        by_key = (await send(parley, with_key(created["key"]), chat["id"])).json()
        by_token = (await send(parley, author.headers, chat["id"])).json()
        report = await parley.http.get(
            "/api/usage", params={"group_by": "key"}, headers=author.headers
        )
        assert report.status_code == 200, report.text
        rows = {row["key"]: row for row in report.json()["items"]}
        assert rows[created["id"]]["name"] == "nightly job"
        assert rows[created["id"]]["total_tokens"] == (
            by_key["prompt_tokens"] + by_key["completion_tokens"]
        )
        assert rows["none"]["total_tokens"] == (
            by_token["prompt_tokens"] + by_token["completion_tokens"]
        )
        listed = (await parley.http.get("/api/keys", headers=author.headers)).json()
        assert listed[0]["tokens_today"] == rows[created["id"]]["total_tokens"]
        admin = await register(parley.http)
        await make_admin(clean_db, admin)
        everyone = await parley.http.get(
            "/api/admin/usage", params={"group_by": "key"}, headers=admin.headers
        )
        assert created["id"] in {row["key"] for row in everyone.json()["items"]}

    async def test_a_deleted_keys_usage_stays_with_its_user(self, parley, author, chat, clean_db):
        created = await create_key(parley.http, author, scopes=["chats"])
        await send(parley, with_key(created["key"]), chat["id"])
        async with clean_db.begin() as connection:
            await connection.execute(text("DELETE FROM api_key"))
        report = (await parley.http.get("/api/usage", headers=author.headers)).json()
        assert report["totals"]["requests"] == 1
