"""Errors under /v1 in OpenAI's shape, as the SDK reads them: each class of error, `param`,
`Retry-After` honoured by the SDK's retries, and `x-request-id` on every answer."""

from typing import Any

import httpx
import openai
import pytest

from tests.openai_api.conftest import v1_url
from tests.support.api import SignedInUser
from tests.support.fake_upstream import FakeUpstream
from tests.support.upstream_fixtures import Parley

HELLO: list[Any] = [{"role": "user", "content": "Say hello"}]


def assert_openai_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["x-request-id"]
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["code"] == code and error["message"]
    return dict(error)


class TestErrorShape:
    async def test_bad_token_is_401(self, parley: Parley) -> None:
        async with openai.AsyncOpenAI(
            base_url=v1_url(parley), api_key="not-a-token", max_retries=0
        ) as sdk:
            with pytest.raises(openai.AuthenticationError) as caught:
                await sdk.models.list()
        assert caught.value.status_code == 401
        body: Any = caught.value.body
        assert body["type"] == "authentication_error"

    async def test_unknown_model_is_404(self, client: openai.AsyncOpenAI) -> None:
        with pytest.raises(openai.NotFoundError) as caught:
            await client.chat.completions.create(model="gpt-9", messages=HELLO)
        assert caught.value.code == "model_not_found" and caught.value.param == "model"

    async def test_n_above_one_is_400_naming_the_param(
        self, client: openai.AsyncOpenAI, fake_upstream: FakeUpstream
    ) -> None:
        with pytest.raises(openai.BadRequestError) as caught:
            await client.chat.completions.create(model="fake-model", messages=HELLO, n=2)
        assert caught.value.param == "n" and caught.value.code == "unsupported_parameter"
        assert fake_upstream.state.requests == []

    async def test_out_of_range_field_is_422_naming_the_param(
        self, client: openai.AsyncOpenAI
    ) -> None:
        with pytest.raises(openai.UnprocessableEntityError) as caught:
            await client.chat.completions.create(model="fake-model", messages=HELLO, temperature=5)
        assert caught.value.param == "temperature"

    @pytest.mark.parametrize(
        "body, param",
        [
            ({"model": "fake-model", "messages": []}, "messages"),
            ({"model": "fake-model", "messages": [{"role": "wizard", "content": "x"}]}, None),
            ({"model": "fake-model", "messages": "hello"}, "messages"),
            ({"messages": HELLO}, "model"),
        ],
    )
    async def test_malformed_bodies_are_4xx_never_500(
        self, parley: Parley, author: SignedInUser, body: dict[str, Any], param: str | None
    ) -> None:
        response = await parley.http.post("/v1/chat/completions", json=body, headers=author.headers)
        error = assert_openai_error(response, 422, "validation_error")
        assert error["type"] == "invalid_request_error"
        if param is not None:
            assert error["param"] == param

    async def test_broken_json_is_400(self, parley: Parley, author: SignedInUser) -> None:
        response = await parley.http.post(
            "/v1/chat/completions",
            content=b"{not json",
            headers={**author.headers, "Content-Type": "application/json"},
        )
        assert_openai_error(response, 400, "malformed_json")

    async def test_tool_message_without_its_call_id_is_400(
        self, parley: Parley, author: SignedInUser
    ) -> None:
        body = {"model": "fake-model", "messages": [{"role": "tool", "content": "42"}]}
        response = await parley.http.post("/v1/chat/completions", json=body, headers=author.headers)
        error = assert_openai_error(response, 400, "invalid_value")
        assert error["param"] == "messages[0].tool_call_id"

    async def test_upstream_failure_is_5xx(
        self, client: openai.AsyncOpenAI, fake_upstream: FakeUpstream
    ) -> None:
        fake_upstream.state.error_status = 500
        with pytest.raises(openai.InternalServerError) as caught:
            await client.chat.completions.create(model="fake-model", messages=HELLO)
        assert caught.value.status_code >= 500
        body: Any = caught.value.body
        assert body["type"] == "server_error"

    async def test_parleys_own_api_keeps_its_shape(
        self, parley: Parley, author: SignedInUser
    ) -> None:
        response = await parley.http.get(
            "/api/chats/00000000-0000-0000-0000-000000000000", headers=author.headers
        )
        assert response.status_code == 404 and "request_id" in response.json()["error"]


class TestLimits:
    # A window of a few seconds: a loaded CI machine can take a second over the first reply.
    @pytest.mark.parametrize("parley_overrides", [{"rate_limit_generation": "1/3 seconds"}])
    async def test_the_sdk_waits_out_retry_after(
        self, parley: Parley, author: SignedInUser, fake_upstream: FakeUpstream
    ) -> None:
        async with openai.AsyncOpenAI(
            base_url=v1_url(parley), api_key=author.access_token, max_retries=0
        ) as impatient:
            await impatient.chat.completions.create(model="fake-model", messages=HELLO)
            with pytest.raises(openai.RateLimitError) as caught:
                await impatient.chat.completions.create(model="fake-model", messages=HELLO)
        assert int(caught.value.response.headers["retry-after"]) >= 1
        body: Any = caught.value.body
        assert body["type"] == "rate_limit_error"
        async with openai.AsyncOpenAI(
            base_url=v1_url(parley), api_key=author.access_token, max_retries=3
        ) as patient:
            answer = await patient.chat.completions.create(model="fake-model", messages=HELLO)
        assert answer.choices[0].message.content == "Hello, world!"
        assert len(fake_upstream.state.requests) == 2

    @pytest.mark.parametrize("parley_overrides", [{"daily_token_quota": 1}])
    async def test_daily_quota_is_429_before_the_upstream(
        self, client: openai.AsyncOpenAI, fake_upstream: FakeUpstream
    ) -> None:
        with pytest.raises(openai.RateLimitError) as caught:
            await client.chat.completions.create(model="fake-model", messages=HELLO)
        assert caught.value.code == "quota_exceeded"
        assert "retry-after" in caught.value.response.headers
        assert fake_upstream.state.requests == []
