"""/v1 with API keys, as scripts use it: the SDK's `api_key` is a Parley key; the key's model
list, rpm and daily token limit apply in OpenAI's error shape, and its usage is counted on it."""

from typing import Any

import openai
import pytest

from tests.keys.helpers import azure_style, create_key, with_key
from tests.openai_api.conftest import v1_url
from tests.support.api import SignedInUser, assert_error
from tests.support.fake_upstream import FakeUpstream
from tests.support.upstream_fixtures import Parley

HELLO: list[Any] = [{"role": "user", "content": "Say hello"}]


def sdk(parley: Parley, key: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=v1_url(parley), api_key=key, max_retries=0)


class TestKeyAuthentication:
    async def test_a_key_of_any_scope_calls_v1(self, parley: Parley, author: SignedInUser) -> None:
        key = (await create_key(parley.http, author, scopes=["knowledge"]))["key"]
        async with sdk(parley, key) as client:
            answer = await client.chat.completions.create(model="fake-model", messages=HELLO)
            streamed = await client.chat.completions.create(
                model="fake-model", messages=HELLO, stream=True
            )
            text = "".join([c.choices[0].delta.content or "" async for c in streamed if c.choices])
        assert answer.choices[0].message.content == "Hello, world!" == text

    async def test_the_azure_style_header_works(self, parley: Parley, author: SignedInUser) -> None:
        key = (await create_key(parley.http, author))["key"]
        listed = await parley.http.get("/v1/models", headers=azure_style(key))
        assert listed.status_code == 200, listed.text
        assert "fake-model" in [model["id"] for model in listed.json()["data"]]

    async def test_a_revoked_key_is_401_at_once(
        self, parley: Parley, author: SignedInUser, fake_upstream: FakeUpstream
    ) -> None:
        created = await create_key(parley.http, author)
        async with sdk(parley, created["key"]) as client:
            await client.models.list()
            revoked = await parley.http.delete(f"/api/keys/{created['id']}", headers=author.headers)
            assert revoked.status_code == 204
            with pytest.raises(openai.AuthenticationError) as caught:
                await client.chat.completions.create(model="fake-model", messages=HELLO)
        assert caught.value.code == "invalid_api_key"
        assert fake_upstream.state.requests == []

    async def test_a_key_cannot_manage_the_account(
        self, parley: Parley, author: SignedInUser
    ) -> None:
        key = (await create_key(parley.http, author))["key"]
        for path in ("/api/users/me", "/api/keys"):
            refused = await parley.http.get(path, headers=with_key(key))
            assert_error(refused, 403, "api_key_not_allowed")


class TestKeyLimits:
    async def test_models_outside_the_keys_list_do_not_exist_for_it(
        self, parley: Parley, author: SignedInUser, fake_upstream: FakeUpstream
    ) -> None:
        key = (await create_key(parley.http, author, models=["other-model"]))["key"]
        async with sdk(parley, key) as client:
            assert [model.id async for model in client.models.list()] == []
            with pytest.raises(openai.NotFoundError) as caught:
                await client.chat.completions.create(model="fake-model", messages=HELLO)
        assert caught.value.code == "model_not_found"
        assert fake_upstream.state.requests == []
        # The same user's access token sees every model.
        mine = await parley.http.get("/v1/models", headers=author.headers)
        assert "fake-model" in [model["id"] for model in mine.json()["data"]]

    async def test_over_the_keys_rpm_is_a_rate_limit_error_with_retry_after(
        self, parley: Parley, author: SignedInUser
    ) -> None:
        key = (await create_key(parley.http, author, rpm=1))["key"]
        async with sdk(parley, key) as client:
            await client.chat.completions.create(model="fake-model", messages=HELLO)
            with pytest.raises(openai.RateLimitError) as caught:
                await client.chat.completions.create(model="fake-model", messages=HELLO)
        assert caught.value.code == "api_key_rate_limited"
        assert 1 <= int(caught.value.response.headers["retry-after"]) <= 60

    async def test_over_the_keys_daily_tokens_is_429_before_the_upstream(
        self, parley: Parley, author: SignedInUser, fake_upstream: FakeUpstream
    ) -> None:
        key = (await create_key(parley.http, author, daily_token_limit=30))["key"]
        async with sdk(parley, key) as client:
            await client.chat.completions.create(model="fake-model", messages=HELLO, max_tokens=8)
            calls = len(fake_upstream.state.requests)
            with pytest.raises(openai.RateLimitError) as caught:
                await client.chat.completions.create(
                    model="fake-model", messages=[{"role": "user", "content": "more " * 60}]
                )
        assert caught.value.code == "api_key_quota_exceeded"
        assert len(fake_upstream.state.requests) == calls

    async def test_usage_is_counted_on_the_key(self, parley: Parley, author: SignedInUser) -> None:
        created = await create_key(parley.http, author, name="nightly job")
        async with sdk(parley, created["key"]) as client:
            answer = await client.chat.completions.create(model="fake-model", messages=HELLO)
        assert answer.usage is not None
        report = await parley.http.get(
            "/api/usage", params={"group_by": "key"}, headers=author.headers
        )
        rows = {row["key"]: row for row in report.json()["items"]}
        assert rows[created["id"]]["total_tokens"] == answer.usage.total_tokens
        assert "none" not in rows
