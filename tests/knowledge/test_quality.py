"""Retrieval quality controls (issue 32): the fusion methods (RAG_FUSION), the optional reranker
(RERANK_*) with its fallback, and GET .../search?explain=true. Parley on a real uvicorn, the
fake upstream serving the embeddings and /rerank."""

from pathlib import Path
from typing import Any

import pytest

from tests.generation.test_replies import stream
from tests.knowledge.conftest import knowledge_settings
from tests.knowledge.test_knowledge import add, collection, settled, upload
from tests.support.api import SignedInUser, assert_error, register
from tests.support.database import TestDatabase
from tests.support.fake_upstream import FakeUpstream
from tests.support.upstream_fixtures import Parley, new_chat, running_parley

DOCUMENTS = {
    "warranty.md": "The Aquaphone warranty covers water damage for two years. A warranty claim "
    "needs the receipt; the warranty desk answers warranty questions by mail.",
    "battery.md": "The Aquaphone battery lasts eighteen hours and charges in forty minutes. The "
    "warranty covers the battery for one year.",
    "pancakes.md": "Whisk flour, milk and eggs into a smooth batter, then fry thin pancakes.",
    "shipping.md": "Orders ship within two days; water-resistant packaging protects the phone.",
}


async def library(parley: Parley, user: SignedInUser) -> dict[str, Any]:
    """A collection holding DOCUMENTS, all indexed."""
    coll = await collection(parley, user)
    for name, text in DOCUMENTS.items():
        await add(parley, user, coll, await upload(parley, user, name, text.encode()))
    files = await settled(parley, user, coll)
    assert all(f["status"] == "ready" for f in files), files
    return coll


async def explained(parley: Parley, user: SignedInUser, coll: dict, q: str) -> list[dict]:
    response = await parley.http.get(
        f"/api/collections/{coll['id']}/search",
        params={"q": q, "explain": "true"},
        headers=user.headers,
    )
    assert response.status_code == 200, response.text
    hits: list[dict[str, Any]] = response.json()["hits"]
    return hits


def fallbacks(metrics: str, reason: str) -> float:
    prefix = f'parley_rerank_fallbacks_total{{reason="{reason}"}} '
    return sum(
        float(line[len(prefix) :]) for line in metrics.splitlines() if line.startswith(prefix)
    )


@pytest.fixture
def settings_for(
    vector_database: TestDatabase, clean_vector_db: Any, fake_upstream: FakeUpstream, tmp_path: Path
) -> Any:
    def make(**overrides: Any) -> Any:
        return knowledge_settings(vector_database, fake_upstream, tmp_path, **overrides)

    return make


class TestFusion:
    async def test_an_embedding_model_that_does_not_separate_leaves_the_full_text_order(
        self, settings_for: Any
    ) -> None:
        # RAG_FUSION=gated, the default: until the model has shown over enough queries that
        # its vectors single out chunks more sharply than the words do, full text ranks.
        async with running_parley(settings_for()) as parley:
            user = await register(parley.http)
            coll = await library(parley, user)
            hits = await explained(parley, user, coll, "warranty water damage")
            assert [hit["explain"]["lexical_rank"] for hit in hits] == list(range(1, len(hits) + 1))
            assert hits[0]["name"] == "warranty.md"
            assert "pancakes.md" not in [hit["name"] for hit in hits]

    async def test_a_vector_weight_of_one_ranks_by_the_vectors_alone(
        self, settings_for: Any
    ) -> None:
        configured = settings_for(
            rag_fusion="rrf", rag_fusion_vector_weight=1.0, rag_min_similarity=0.0
        )
        async with running_parley(configured) as parley:
            user = await register(parley.http)
            coll = await library(parley, user)
            hits = await explained(parley, user, coll, "Aquaphone battery charges")
            assert [hit["explain"]["vector_rank"] for hit in hits] == list(range(1, len(hits) + 1))
            similarities = [hit["similarity"] for hit in hits]
            assert similarities == sorted(similarities, reverse=True)
            assert hits[0]["name"] == "battery.md"

    @pytest.mark.parametrize("method", ["rrf", "convex", "gated"])
    async def test_every_method_puts_the_best_match_first(
        self, settings_for: Any, method: str
    ) -> None:
        async with running_parley(settings_for(rag_fusion=method)) as parley:
            user = await register(parley.http)
            coll = await library(parley, user)
            hits = await explained(parley, user, coll, "battery charges forty minutes")
            assert hits[0]["name"] == "battery.md"
            fused = [hit["explain"]["fused_score"] for hit in hits]
            assert fused == sorted(fused, reverse=True)
            assert [hit["score"] for hit in hits] == fused

    async def test_a_query_no_word_matches_is_ranked_by_its_vectors(
        self, settings_for: Any
    ) -> None:
        # "warrantee" (sic) matches no indexed word, but shares most letters with "warranty".
        async with running_parley(settings_for(rag_min_similarity=0.0)) as parley:
            user = await register(parley.http)
            coll = await library(parley, user)
            hits = await explained(parley, user, coll, "warrantee")
            assert hits and hits[0]["name"] == "warranty.md"
            assert all(hit["explain"]["lexical_rank"] is None for hit in hits)
            assert hits[0]["explain"]["vector_rank"] == 1


class TestReranker:
    async def test_the_reranker_reorders_the_fused_candidates(
        self, settings_for: Any, fake_upstream: FakeUpstream
    ) -> None:
        fake_upstream.state.rerank_scorer = lambda query, doc: 0.9 if "battery" in doc else 0.1
        configured = settings_for(rerank_base_url=fake_upstream.base_url, rerank_model="rr")
        async with running_parley(configured) as parley:
            user = await register(parley.http)
            coll = await library(parley, user)
            hits = await explained(parley, user, coll, "warranty")
            assert [hit["name"] for hit in hits[:2]] == ["battery.md", "warranty.md"]
            assert hits[0]["explain"]["lexical_rank"] == 2
            assert [hit["explain"]["rerank_score"] for hit in hits[:2]] == [0.9, 0.1]
            assert hits[0]["score"] == 0.9
        [request] = fake_upstream.state.rerank_requests
        assert request["model"] == "rr" and request["query"] == "warranty"
        assert len(request["documents"]) == len(hits)

    @pytest.mark.parametrize(
        ("knobs", "reason"),
        [({"rerank_down": True}, "unavailable"), ({"rerank_delay": 2.0}, "timeout")],
    )
    async def test_a_failing_reranker_leaves_the_fused_order_and_is_counted(
        self, settings_for: Any, fake_upstream: FakeUpstream, knobs: dict, reason: str
    ) -> None:
        for name, value in knobs.items():
            setattr(fake_upstream.state, name, value)
        fake_upstream.state.rerank_scorer = lambda query, doc: 0.9 if "battery" in doc else 0.1
        configured = settings_for(rerank_base_url=fake_upstream.base_url, rerank_timeout=0.3)
        async with running_parley(configured) as parley:
            user = await register(parley.http)
            coll = await library(parley, user)
            hits = await explained(parley, user, coll, "warranty")
            # The fused order: full text's, as the gate has not opened (test_fusion above).
            assert [hit["explain"]["lexical_rank"] for hit in hits] == list(range(1, len(hits) + 1))
            assert hits[0]["name"] == "warranty.md"
            assert all("rerank_score" not in hit["explain"] for hit in hits)
            metrics = (await parley.http.get("/metrics")).text
            assert fallbacks(metrics, reason) == 1
        assert len(fake_upstream.state.rerank_requests) == 1


class TestExplain:
    async def test_explain_says_what_ranked_each_hit(self, settings_for: Any) -> None:
        async with running_parley(settings_for(rag_fusion="rrf")) as parley:
            user = await register(parley.http)
            coll = await library(parley, user)
            hits = await explained(parley, user, coll, "Aquaphone warranty")
            both = [hit for hit in hits if hit["explain"]["vector_rank"] is not None]
            assert both, hits
            for hit in both:
                explain = hit["explain"]
                assert set(explain) == {"lexical_rank", "vector_rank", "similarity", "fused_score"}
                assert explain["similarity"] == hit["similarity"]
                assert explain["fused_score"] == hit["score"]
            plain = await parley.http.get(
                f"/api/collections/{coll['id']}/search",
                params={"q": "Aquaphone warranty"},
                headers=user.headers,
            )
            assert all(hit["explain"] is None for hit in plain.json()["hits"])

    async def test_another_users_collection_is_404_with_explain(self, settings_for: Any) -> None:
        async with running_parley(settings_for()) as parley:
            owner = await register(parley.http)
            coll = await library(parley, owner)
            other = await register(parley.http)
            response = await parley.http.get(
                f"/api/collections/{coll['id']}/search",
                params={"q": "warranty", "explain": "true"},
                headers=other.headers,
            )
            assert_error(response, 404, "collection_not_found")


class TestQueryRewrite:
    async def test_a_rewrite_that_keeps_nothing_of_the_question_is_not_searched(
        self, settings_for: Any, fake_upstream: FakeUpstream
    ) -> None:
        # The stub model answers "Hello, world!" to everything, the rewrite request included.
        async with running_parley(settings_for()) as parley:
            user = await register(parley.http)
            coll = await library(parley, user)
            chat = await new_chat(parley.http, user, collection_ids=[coll["id"]])
            await stream(parley, user, chat, "Tell me about the Aquaphone.")
            question = "How long does the battery last?"
            _, events = await stream(parley, user, chat, question)
            sources = next(e.data for e in events if e.event == "sources")
            assert sources["query"] == question
            assert sources["sources"][0]["name"] == "battery.md"
            fake_upstream.state.tokens = ["Aquaphone battery life"]
            _, events = await stream(parley, user, chat, "And the batteries?")
            sources = next(e.data for e in events if e.event == "sources")
            assert sources["query"] == "Aquaphone battery life"
