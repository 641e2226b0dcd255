"""Readiness of the upstream model servers: GET {base}/models, briefly cached."""

import asyncio
import time
from dataclasses import dataclass

from app.generation.upstream.registry import ModelRegistry, Providers
from app.generation.upstream.types import ModelConfig

PROBE_TIMEOUT_SECONDS = 2.0
PROBE_CACHE_SECONDS = 10.0


@dataclass(frozen=True)
class UpstreamState:
    ok: bool
    detail: str | None = None


class UpstreamProbe:
    def __init__(self, registry: ModelRegistry, providers: Providers) -> None:
        self.registry = registry
        self.providers = providers
        self._cached: tuple[float, dict[str, UpstreamState]] | None = None
        self._lock = asyncio.Lock()

    def _upstreams(self) -> dict[str, ModelConfig]:
        """One model per distinct server: probing each model of one server tells nothing more."""
        servers: dict[str, ModelConfig] = {}
        for model in self.registry.all():
            if model.base_url:
                servers.setdefault(model.base_url, model)
        return {f"upstream:{m.name}": m for m in servers.values()}

    async def _probe(self, model: ModelConfig) -> UpstreamState:
        try:
            provider = self.providers.for_model(model)
            await asyncio.wait_for(provider.list_models(model), PROBE_TIMEOUT_SECONDS)
            return UpstreamState(ok=True)
        except TimeoutError:
            return UpstreamState(ok=False, detail="timeout")
        except Exception as exc:
            return UpstreamState(ok=False, detail=getattr(exc, "code", type(exc).__name__))

    async def check(self) -> dict[str, UpstreamState]:
        """Each upstream's state, probed at most every PROBE_CACHE_SECONDS."""
        async with self._lock:
            now = time.monotonic()
            if self._cached is not None and now - self._cached[0] < PROBE_CACHE_SECONDS:
                return self._cached[1]
            upstreams = self._upstreams()
            states = await asyncio.gather(*(self._probe(m) for m in upstreams.values()))
            result = dict(zip(upstreams, states, strict=True))
            self._cached = (now, result)
            return result
