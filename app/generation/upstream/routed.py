"""The provider every model with deployments is called through: failover before the first
token, across the model's deployments and then its fallback models (docs/upstreams.md#routing).

An attempt that fails before any content (a refused connection, a 429 or 5xx, a timeout, a
stream that ends or breaks empty) is dropped without a trace for the client, and the next
deployment is tried: by the router's choice among the untried ones, then the fallback models',
then (with attempts left) a tried one that is not cooling down. When every deployment of the
model and its fallbacks is cooling down, the reply waits for the first to return, up to
LLM_FIRST_TOKEN_TIMEOUT. The first content is preceded by a `Served` event naming the model and
deployment that answer. After it, a failure ends the reply as before: nothing is sent twice.
"""

import asyncio
from collections.abc import AsyncGenerator
from contextlib import aclosing
from typing import Any

from app.generation.errors import UpstreamError, UpstreamUnavailable
from app.generation.upstream.openai import OpenAIProvider
from app.generation.upstream.routing import (
    Attempt,
    DeploymentState,
    Router,
    worth_another_deployment,
)
from app.generation.upstream.types import (
    ChatMessage,
    ModelConfig,
    SamplingParams,
    Served,
    UpstreamEvent,
    Usage,
)

# Before trying a deployment that already failed for this reply again.
RETRY_BACKOFF_SECONDS = 0.25


class AllCoolingDown(UpstreamUnavailable):
    message = "Every server of this model is cooling down after errors; try again shortly."


class RoutedProvider:
    """Streams a model's replies through the router; `sticky` is the deployment that served the
    chat's last turn (kept while it is healthy, so upstream prompt caches keep working)."""

    def __init__(
        self,
        inner: OpenAIProvider,
        router: Router,
        models: dict[str, ModelConfig],
        *,
        first_token_timeout: float,
        sticky: str | None = None,
    ) -> None:
        self.inner = inner
        self.router = router
        self.models = models
        self.first_token_timeout = first_token_timeout
        self.sticky = sticky

    def with_sticky(self, deployment: str | None) -> "RoutedProvider":
        """This provider for one chat's reply, preferring `deployment`."""
        if deployment is None:
            return self
        return RoutedProvider(
            self.inner,
            self.router,
            self.models,
            first_token_timeout=self.first_token_timeout,
            sticky=deployment,
        )

    async def list_models(self, model: ModelConfig) -> list[str]:
        """The first reachable deployment's model list."""
        error: UpstreamError | None = None
        for deployment in model.deployments or ():
            try:
                return await self.inner.list_models(model.at(deployment))
            except UpstreamError as exc:
                error = exc
        if error is not None:
            raise error
        return await self.inner.list_models(model)

    def _chain(self, model: ModelConfig) -> list[ModelConfig]:
        chain = [model]
        for name in self.router.fallbacks.get(model.name, []):
            fallback = self.models.get(name)
            if fallback is not None and fallback not in chain:
                chain.append(fallback)
        return chain

    async def _next(
        self,
        chain: list[ModelConfig],
        tried: dict[str, set[str]],
        attempts: dict[str, int],
        deadline: float,
        tokens: int,
        last_error: UpstreamError | None,
    ) -> tuple[ModelConfig, DeploymentState]:
        """The next attempt's model and deployment, waiting while all are cooling down."""
        router = self.router
        loop = asyncio.get_running_loop()
        while True:
            open_models = [m for m in chain if attempts[m.name] < router.max_attempts]
            if not open_models:
                break
            for config in open_models:  # an untried deployment, the model first
                sticky = self.sticky if config is chain[0] else None
                state = router.choose(
                    config.name, exclude=tried[config.name], sticky=sticky, tokens=tokens
                )
                if state is not None:
                    return config, state
            for config in open_models:  # then one tried already, after a pause
                state = router.choose(config.name, tokens=tokens)
                if state is not None:
                    await asyncio.sleep(RETRY_BACKOFF_SECONDS)
                    if router.usable(state, router.clock(), tokens):
                        return config, state
            # Nothing usable now: every deployment cools down or is full. Wait for a change.
            left = deadline - loop.time()
            if left <= 0:
                break
            returns = router.next_change(m.name for m in open_models)
            if returns is not None:
                left = min(left, returns - router.clock() + 0.001)
            await router.wait(left)
        if last_error is not None:
            raise last_error
        raise AllCoolingDown()

    async def stream(
        self, model: ModelConfig, messages: list[ChatMessage], params: SamplingParams
    ) -> AsyncGenerator[UpstreamEvent, None]:
        if not model.deployments:
            async with aclosing(self.inner.stream(model, messages, params)) as events:
                async for event in events:
                    yield event
            return
        router = self.router
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.first_token_timeout
        chain = self._chain(model)
        tried: dict[str, set[str]] = {m.name: set() for m in chain}
        attempts = dict.fromkeys(tried, 0)
        tokens = _estimate_tokens(messages)
        last_error: UpstreamError | None = None
        while True:
            config, state = await self._next(chain, tried, attempts, deadline, tokens, last_error)
            tried[config.name].add(state.deployment.name)
            attempts[config.name] += 1
            attempt = router.begin(state, tokens)
            answering = False
            usage = 0
            try:
                events = self.inner.stream(config.at(state.deployment), messages, params)
                async with aclosing(events) as upstream:
                    async for event in upstream:
                        if not answering:  # it answers: no other deployment is tried now
                            answering = True
                            router.first_token(attempt)
                            yield Served(config.name, state.deployment.name)
                        if isinstance(event, Usage):
                            usage = event.prompt_tokens + event.completion_tokens
                        yield event
                return
            except UpstreamError as exc:
                if worth_another_deployment(exc):
                    router.failed(attempt, exc)
                if answering or not worth_another_deployment(exc):
                    raise
                last_error = exc
            finally:
                router.release(attempt, tokens=max(0, usage - tokens))

    # --- the guard model: whole answers, with the same failover ---------------------------------

    async def complete(
        self,
        model: ModelConfig,
        messages: list[ChatMessage],
        *,
        max_tokens: int,
        extra: dict[str, Any] | None = None,
    ) -> str:
        async def call(target: ModelConfig) -> str:
            return await self.inner.complete(target, messages, max_tokens=max_tokens, extra=extra)

        return await self._whole(model, call)

    async def moderate(self, model: ModelConfig, text: str) -> dict[str, Any]:
        async def call(target: ModelConfig) -> dict[str, Any]:
            return await self.inner.moderate(target, text)

        return await self._whole(model, call)

    async def _whole(self, model: ModelConfig, call: Any) -> Any:
        if not model.deployments:
            return await call(model)
        router = self.router
        deadline = asyncio.get_running_loop().time() + self.first_token_timeout
        chain = [model]
        tried: dict[str, set[str]] = {model.name: set()}
        attempts = {model.name: 0}
        last_error: UpstreamError | None = None
        while True:
            config, state = await self._next(chain, tried, attempts, deadline, 0, last_error)
            tried[config.name].add(state.deployment.name)
            attempts[config.name] += 1
            attempt: Attempt = router.begin(state, 0)
            try:
                answer = await call(config.at(state.deployment))
            except UpstreamError as exc:
                if not worth_another_deployment(exc):
                    raise
                router.failed(attempt, exc)
                last_error = exc
            else:
                router.first_token(attempt)
                return answer
            finally:
                router.release(attempt)


def _estimate_tokens(messages: list[ChatMessage]) -> int:
    """About four characters a token, text parts only: what the tpm window is charged upfront."""
    chars = 0
    for message in messages:
        content = message.get("content")
        if isinstance(content, str):
            chars += len(content)
        elif isinstance(content, list):
            chars += sum(len(part.get("text") or "") for part in content if isinstance(part, dict))
    return chars // 4 + 1
