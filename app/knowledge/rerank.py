"""The client of an optional reranker: POST {RERANK_BASE_URL}/rerank with {"model", "query",
"documents": [texts]}, answered {"results": [{"index", "relevance_score"}]} by vLLM and Cohere,
or [{"index", "score"}] by Text Embeddings Inference. It re-scores the best fused chunks; when
it fails the caller keeps the fused order (retrieval.py)."""

from dataclasses import dataclass, field
from typing import Any

import httpx

from app.core.config import Settings


class RerankFailed(Exception):
    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason  # timeout, unavailable or invalid (the metric's label)
        self.message = message


@dataclass
class RerankClient:
    http: httpx.AsyncClient
    base_url: str
    model: str
    api_key: str | None = field(default=None, repr=False)
    candidates: int = 30
    timeout: float = 5.0

    @classmethod
    def from_settings(cls, settings: Settings, http: httpx.AsyncClient) -> "RerankClient | None":
        if not settings.rerank_base_url:
            return None
        key = settings.rerank_api_key
        return cls(
            http=http,
            base_url=settings.rerank_base_url.rstrip("/"),
            model=settings.rerank_model,
            api_key=key.get_secret_value() if key is not None else None,
            candidates=settings.rerank_candidates,
            timeout=settings.rerank_timeout,
        )

    async def scores(self, query: str, documents: list[str]) -> list[float]:
        """One relevance score per document, in the documents' order (higher is better)."""
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        body = {"model": self.model, "query": query, "documents": documents}
        try:
            response = await self.http.post(
                f"{self.base_url}/rerank", json=body, headers=headers, timeout=self.timeout
            )
        except httpx.TimeoutException as exc:
            raise RerankFailed("timeout", "The reranker did not answer in time.") from exc
        except httpx.HTTPError as exc:
            raise RerankFailed("unavailable", "The reranker could not be reached.") from exc
        if response.status_code != 200:
            raise RerankFailed("unavailable", f"The reranker answered HTTP {response.status_code}.")
        return _scores(response, len(documents))


def _scores(response: httpx.Response, count: int) -> list[float]:
    invalid = RerankFailed("invalid", "The reranker's answer holds no usable scores.")
    try:
        answer: Any = response.json()
    except ValueError as exc:
        raise invalid from exc
    results = answer.get("results") if isinstance(answer, dict) else answer
    if not isinstance(results, list):
        raise invalid
    scores: list[float | None] = [None] * count
    try:
        for item in results:
            index = int(item["index"])
            value = item.get("relevance_score", item.get("score"))
            if not 0 <= index < count or isinstance(value, bool):
                raise invalid
            scores[index] = float(value)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise invalid from exc
    if any(score is None for score in scores):
        raise invalid
    return [score for score in scores if score is not None]
