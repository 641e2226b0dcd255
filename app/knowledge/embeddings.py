"""The client of an OpenAI-compatible embeddings endpoint: POST {base}/embeddings with
{"model", "input": [texts]}, answered {"data": [{"index", "embedding": [floats]}]} by vLLM,
OpenAI, Ollama's /v1 and llama.cpp's server alike.

EMBEDDING_DEPLOYMENTS lists several endpoints of the same model: a request goes to one chosen by
weight among those not cooling down, and a refused connection, a timeout or an error status
sends it to the next at once. LLM_ALLOWED_FAILS failures within LLM_FAIL_WINDOW_SECONDS cool an
endpoint down for LLM_COOLDOWN_SECONDS (a Retry-After, for that long), as for chat models
(docs/upstreams.md#routing); this worker's own view, as embeddings are not streamed."""

import asyncio
import json
import logging
import math
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import urlsplit

import httpx

from app.core.config import Settings
from app.knowledge.errors import EmbeddingFailed

logger = logging.getLogger("parley.knowledge")

TEXT_SPACE = "text"  # the space of documents indexed without vectors (full text only)
RETRY_DELAY = 0.5


T = TypeVar("T")


def space_of(model: str, dimensions: int) -> str:
    return f"{model}@{dimensions}"


@dataclass
class EmbeddingEndpoint:
    """One deployment of the embedding model, with its health as this worker saw it."""

    name: str
    base_url: str
    api_key: str | None = field(default=None, repr=False)
    weight: float = 1.0
    failures: deque[float] = field(default_factory=deque)
    cooldown_until: float = 0.0

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}


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
    # EMBEDDING_DEPLOYMENTS; empty: the one endpoint above.
    endpoints: list[EmbeddingEndpoint] = field(default_factory=list)
    allowed_fails: int = 3
    fail_window: float = 60.0
    cooldown: float = 10.0

    def __post_init__(self) -> None:
        if not self.endpoints:
            self.endpoints = [
                EmbeddingEndpoint(urlsplit(self.base_url).netloc, self.base_url, self.api_key)
            ]

    @classmethod
    def from_settings(cls, settings: Settings, http: httpx.AsyncClient) -> "EmbeddingClient | None":
        endpoints = _endpoints(settings.embedding_deployments)
        if not settings.embedding_base_url and not endpoints:
            return None
        key = settings.embedding_api_key
        default_key = key.get_secret_value() if key is not None else None
        for endpoint in endpoints:
            endpoint.api_key = endpoint.api_key or default_key
        base_url = settings.embedding_base_url or endpoints[0].base_url
        return cls(
            http=http,
            base_url=base_url.rstrip("/"),
            model=settings.embedding_model,
            dimensions=settings.embedding_dimensions,
            api_key=default_key,
            batch_size=settings.embedding_batch_size,
            timeout=settings.embedding_timeout,
            endpoints=endpoints,
            allowed_fails=settings.llm_allowed_fails,
            fail_window=settings.llm_fail_window_seconds,
            cooldown=settings.llm_cooldown_seconds,
        )

    async def _routed(self, call: Callable[[EmbeddingEndpoint], Awaitable[T]]) -> T:
        """`call` on an endpoint chosen by weight among the healthy ones; on an unreachable or
        failing one (embedding_unavailable), at once on the next. A single endpoint is only
        tried once here (the callers retry it after a pause)."""
        now = time.time()
        healthy = [e for e in self.endpoints if e.cooldown_until <= now]
        order: list[EmbeddingEndpoint] = []
        while healthy:
            chosen = random.choices(healthy, weights=[e.weight for e in healthy])[0]  # noqa: S311
            order.append(chosen)
            healthy.remove(chosen)
        order += sorted(
            (e for e in self.endpoints if e not in order), key=lambda e: e.cooldown_until
        )
        error: EmbeddingFailed | None = None
        for endpoint in order:
            try:
                return await call(endpoint)
            except EmbeddingFailed as exc:
                if exc.code != "embedding_unavailable":
                    raise
                error = exc
                self._failed(endpoint, exc)
        assert error is not None
        raise error

    def _failed(self, endpoint: EmbeddingEndpoint, error: EmbeddingFailed) -> None:
        if len(self.endpoints) < 2:
            return  # nowhere else to go: cooling it down would only stop embeddings
        now = time.time()
        endpoint.failures.append(now)
        while endpoint.failures and endpoint.failures[0] < now - self.fail_window:
            endpoint.failures.popleft()
        if len(endpoint.failures) >= self.allowed_fails:
            endpoint.failures.clear()
            endpoint.cooldown_until = now + self.cooldown
            logger.warning(
                "embedding deployment cooling down",
                extra={"deployment": endpoint.name, "detail": error.message},
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
        return await self._routed(lambda endpoint: self._create(endpoint, body))

    async def _post(self, endpoint: EmbeddingEndpoint, body: dict[str, Any]) -> httpx.Response:
        """POST {base}/embeddings at `endpoint`: its 200 answer; EmbeddingFailed
        (embedding_unavailable) when it cannot be reached, is too slow or answers otherwise."""
        try:
            response = await self.http.post(
                f"{endpoint.base_url.rstrip('/')}/embeddings",
                json=body,
                headers=endpoint.headers(),
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
        return response

    async def _create(self, endpoint: EmbeddingEndpoint, body: dict[str, Any]) -> dict[str, Any]:
        response = await self._post(endpoint, {**body, "model": self.model})
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
        return await self._routed(lambda endpoint: self._request_at(endpoint, texts))

    async def _request_at(self, endpoint: EmbeddingEndpoint, texts: list[str]) -> list[list[float]]:
        response = await self._post(endpoint, {"model": self.model, "input": texts})
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


def _endpoints(value: str | None) -> list[EmbeddingEndpoint]:
    """EMBEDDING_DEPLOYMENTS: a JSON list of {"base_url", "api_key"?, "name"?, "weight"?}."""
    if not value:
        return []
    try:
        entries = json.loads(value)
    except ValueError as exc:
        raise ValueError(f"EMBEDDING_DEPLOYMENTS is not JSON: {exc}") from exc
    if not isinstance(entries, list) or not entries:
        raise ValueError("EMBEDDING_DEPLOYMENTS must be a non-empty JSON list")
    endpoints = []
    for number, entry in enumerate(entries):
        if not isinstance(entry, dict) or not isinstance(entry.get("base_url"), str):
            raise ValueError(f"EMBEDDING_DEPLOYMENTS[{number}] needs a base_url")
        weight = entry.get("weight", 1)
        if isinstance(weight, bool) or not isinstance(weight, int | float) or weight <= 0:
            raise ValueError(f"EMBEDDING_DEPLOYMENTS[{number}]: weight must be positive")
        endpoints.append(
            EmbeddingEndpoint(
                name=str(entry.get("name") or urlsplit(entry["base_url"]).netloc),
                base_url=entry["base_url"].rstrip("/"),
                api_key=entry.get("api_key"),
                weight=float(weight),
            )
        )
    return endpoints


def _normalised(vector: list[float], invalid: EmbeddingFailed) -> list[float]:
    norm = math.sqrt(sum(x * x for x in vector))
    if not math.isfinite(norm) or norm == 0:
        raise invalid
    return [x / norm for x in vector]
