"""The client of an OpenAI-compatible embeddings endpoint: POST {base}/embeddings with
{"model", "input": [texts]}, answered {"data": [{"index", "embedding": [floats]}]} by vLLM,
OpenAI, Ollama's /v1 and llama.cpp's server alike."""

import asyncio
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from app.core.config import Settings
from app.knowledge.errors import EmbeddingFailed

logger = logging.getLogger("parley.knowledge")

TEXT_SPACE = "text"  # the space of documents indexed without vectors (full text only)
RETRY_DELAY = 0.5


def space_of(model: str, dimensions: int) -> str:
    return f"{model}@{dimensions}"


@dataclass
class EmbeddingClient:
    http: httpx.AsyncClient
    base_url: str
    model: str
    dimensions: int
    api_key: str | None = None
    batch_size: int = 64
    timeout: float = 30.0
    retries: int = 1

    @classmethod
    def from_settings(cls, settings: Settings, http: httpx.AsyncClient) -> "EmbeddingClient | None":
        if not settings.embedding_base_url:
            return None
        key = settings.embedding_api_key
        return cls(
            http=http,
            base_url=settings.embedding_base_url.rstrip("/"),
            model=settings.embedding_model,
            dimensions=settings.embedding_dimensions,
            api_key=key.get_secret_value() if key is not None else None,
            batch_size=settings.embedding_batch_size,
            timeout=settings.embedding_timeout,
        )

    @property
    def space(self) -> str:
        return space_of(self.model, self.dimensions)

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """One unit-length vector per text, in batches of EMBEDDING_BATCH_SIZE; EmbeddingFailed
        when the endpoint fails twice in a row or answers anything but vectors of the
        configured length."""
        vectors: list[list[float]] = []
        for start in range(0, len(texts), self.batch_size):
            vectors.extend(await self._batch(list(texts[start : start + self.batch_size])))
        return vectors

    async def embed_one(self, text: str) -> list[float]:
        return (await self._batch([text]))[0]

    async def create(self, body: dict[str, Any]) -> dict[str, Any]:
        """POST /embeddings with a client's own body (the /v1 surface), the model replaced by the
        configured one: the endpoint's JSON answer, as it is. EmbeddingFailed when it fails."""
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        try:
            response = await self.http.post(
                f"{self.base_url}/embeddings",
                json={**body, "model": self.model},
                headers=headers,
                timeout=self.timeout,
            )
        except httpx.HTTPError as exc:
            raise EmbeddingFailed(
                "embedding_unavailable", "The embedding endpoint could not be reached."
            ) from exc
        if response.status_code != 200:
            raise EmbeddingFailed(
                "embedding_unavailable",
                f"The embedding endpoint answered HTTP {response.status_code}.",
            )
        try:
            answer = response.json()
        except ValueError:
            answer = None
        if not isinstance(answer, dict) or not isinstance(answer.get("data"), list):
            raise EmbeddingFailed(
                "embedding_invalid", "The embedding endpoint's answer holds no embeddings."
            )
        return answer

    async def _batch(self, texts: list[str]) -> list[list[float]]:
        attempt = 0
        while True:
            try:
                return await self._request(texts)
            except EmbeddingFailed as exc:
                if attempt >= self.retries or exc.code in ("dimension_mismatch",):
                    raise
                attempt += 1
                logger.warning("embedding request failed, retrying: %s", exc.message)
                await asyncio.sleep(RETRY_DELAY)

    async def _request(self, texts: list[str]) -> list[list[float]]:
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        try:
            response = await self.http.post(
                f"{self.base_url}/embeddings",
                json={"model": self.model, "input": texts},
                headers=headers,
                timeout=self.timeout,
            )
        except httpx.TimeoutException as exc:
            raise EmbeddingFailed(
                "embedding_unavailable", "The embedding endpoint did not answer in time."
            ) from exc
        except httpx.HTTPError as exc:
            raise EmbeddingFailed(
                "embedding_unavailable", "The embedding endpoint could not be reached."
            ) from exc
        if response.status_code != 200:
            raise EmbeddingFailed(
                "embedding_unavailable",
                f"The embedding endpoint answered HTTP {response.status_code}.",
            )
        if len(texts) <= 8:
            return self._vectors(response, len(texts))
        # Parsing and normalising thousands of floats is CPU work: off the event loop.
        return await asyncio.to_thread(self._vectors, response, len(texts))

    def _vectors(self, response: httpx.Response, count: int) -> list[list[float]]:
        invalid = EmbeddingFailed(
            "embedding_invalid", "The embedding endpoint's answer holds no usable embeddings."
        )
        try:
            data = response.json()["data"]
            items = sorted(data, key=lambda item: int(item.get("index", 0)))
            vectors = [[float(x) for x in item["embedding"]] for item in items]
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise invalid from exc
        if len(vectors) != count:
            raise invalid
        for vector in vectors:
            if len(vector) != self.dimensions:
                raise EmbeddingFailed(
                    "dimension_mismatch",
                    f"The embedding model returned vectors of {len(vector)} dimensions; "
                    f"EMBEDDING_DIMENSIONS is {self.dimensions}.",
                )
        return [_normalised(vector, invalid) for vector in vectors]


def _normalised(vector: list[float], invalid: EmbeddingFailed) -> list[float]:
    norm = math.sqrt(sum(x * x for x in vector))
    if not math.isfinite(norm) or norm == 0:
        raise invalid
    return [x / norm for x in vector]
