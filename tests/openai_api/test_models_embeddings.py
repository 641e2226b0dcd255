"""GET /v1/models and POST /v1/embeddings through the openai SDK."""

import json
from collections.abc import AsyncIterator
from typing import Any

import openai
import pytest
from sqlalchemy import text

from tests.openai_api.conftest import v1_url
from tests.support.api import SignedInUser, register
from tests.support.database import TestDatabase
from tests.support.fake_upstream import FakeUpstream, run_fake_upstream
from tests.support.upstream_fixtures import Parley, parley_settings, running_parley


class TestListModels:
    async def test_lists_the_models(
        self, client: openai.AsyncOpenAI, parley: Parley, author: SignedInUser
    ) -> None:
        models = [model async for model in client.models.list()]
        own = await parley.http.get("/api/models", headers=author.headers)
        assert [m.id for m in models] == [m["name"] for m in own.json()]
        assert models[0].id == "fake-model"
        assert models[0].object == "model" and models[0].owned_by == "parley"

    async def test_needs_a_token(self, parley: Parley) -> None:
        response = await parley.http.get("/v1/models")
        assert response.status_code == 401
        assert response.json()["error"]["type"] == "authentication_error"


@pytest.fixture
async def embedding_parley(
    database: TestDatabase, clean_db: object, fake_upstream: FakeUpstream
) -> AsyncIterator[Parley]:
    settings = parley_settings(
        database,
        fake_upstream,
        embedding_base_url=fake_upstream.base_url,
        embedding_model="fake-embed",
        embedding_dimensions=64,
    )
    async with running_parley(settings) as running:
        yield running


class TestEmbeddings:
    async def test_vectors_from_the_embedding_upstream(
        self, embedding_parley: Parley, fake_upstream: FakeUpstream
    ) -> None:
        user = await register(embedding_parley.http)
        async with openai.AsyncOpenAI(
            base_url=v1_url(embedding_parley), api_key=user.access_token, max_retries=0
        ) as sdk:
            models = [m.id async for m in sdk.models.list()]
            assert "fake-embed" in models
            answer = await sdk.embeddings.create(
                model="fake-embed", input=["water damage", "pancakes"], encoding_format="float"
            )
        assert [item.index for item in answer.data] == [0, 1]
        assert len(answer.data[0].embedding) == 64 and answer.model == "fake-embed"
        assert fake_upstream.state.embedding_requests[-1]["input"] == [
            "water damage",
            "pancakes",
        ]

    async def test_unknown_embedding_model_is_404(self, embedding_parley: Parley) -> None:
        user = await register(embedding_parley.http)
        async with openai.AsyncOpenAI(
            base_url=v1_url(embedding_parley), api_key=user.access_token, max_retries=0
        ) as sdk:
            with pytest.raises(openai.NotFoundError):
                await sdk.embeddings.create(model="text-embedding-3-small", input="hi")

    async def test_upstream_down_is_5xx(
        self, embedding_parley: Parley, fake_upstream: FakeUpstream
    ) -> None:
        fake_upstream.state.embeddings_down = True
        user = await register(embedding_parley.http)
        async with openai.AsyncOpenAI(
            base_url=v1_url(embedding_parley), api_key=user.access_token, max_retries=0
        ) as sdk:
            with pytest.raises(openai.InternalServerError):
                await sdk.embeddings.create(model="fake-embed", input="hi")

    async def test_without_an_embedding_endpoint_no_model_exists(
        self, client: openai.AsyncOpenAI
    ) -> None:
        with pytest.raises(openai.NotFoundError) as caught:
            await client.embeddings.create(model="fake-embed", input="hi")
        assert caught.value.code == "model_not_found"


class TestEmbeddingUsage:
    async def test_counted_with_the_endpoints_own_token_count(
        self, embedding_parley: Parley
    ) -> None:
        user = await register(embedding_parley.http)
        async with openai.AsyncOpenAI(
            base_url=v1_url(embedding_parley), api_key=user.access_token, max_retries=0
        ) as sdk:
            answer = await sdk.embeddings.create(
                model="fake-embed", input=["water damage in the attic", "pancakes"]
            )
        report = await embedding_parley.http.get(
            "/api/usage", params={"group_by": "model"}, headers=user.headers
        )
        rows = {row["key"]: row for row in report.json()["items"]}
        assert answer.usage.prompt_tokens == 6
        assert rows["fake-embed"]["prompt_tokens"] == 6
        assert rows["fake-embed"]["reported_tokens"] == 6

    async def test_over_the_daily_quota_is_429_before_the_endpoint(
        self, embedding_parley: Parley, fake_upstream: FakeUpstream, clean_db: Any
    ) -> None:
        user = await register(embedding_parley.http)
        async with clean_db.begin() as connection:
            await connection.execute(
                text("UPDATE user_account SET daily_token_quota = 3 WHERE email = :email"),
                {"email": user.email},
            )
        async with openai.AsyncOpenAI(
            base_url=v1_url(embedding_parley), api_key=user.access_token, max_retries=0
        ) as sdk:
            with pytest.raises(openai.RateLimitError) as caught:
                await sdk.embeddings.create(model="fake-embed", input="word " * 40)
        assert caught.value.code == "quota_exceeded"
        assert fake_upstream.state.embedding_requests == []


class TestEmbeddingDeployments:
    async def test_a_failing_deployment_is_skipped(
        self, database: TestDatabase, clean_db: object, fake_upstream: FakeUpstream
    ) -> None:
        async with run_fake_upstream() as down:
            down.state.embeddings_down = True
            endpoints = [
                {"name": "down", "base_url": down.base_url},
                {"name": "up", "base_url": fake_upstream.base_url},
            ]
            settings = parley_settings(
                database,
                fake_upstream,
                embedding_deployments=json.dumps(endpoints),
                embedding_model="fake-embed",
                embedding_dimensions=64,
                llm_allowed_fails=1,
            )
            async with running_parley(settings) as parley:
                user = await register(parley.http)
                async with openai.AsyncOpenAI(
                    base_url=v1_url(parley), api_key=user.access_token, max_retries=0
                ) as sdk:
                    for _ in range(6):
                        answer = await sdk.embeddings.create(model="fake-embed", input="hi")
                        assert len(answer.data[0].embedding) == 64
        assert len(fake_upstream.state.embedding_requests) == 6
        # Tried at most once: it failed, and cooled down until LLM_COOLDOWN_SECONDS pass.
        assert len(down.state.embedding_requests) <= 1
