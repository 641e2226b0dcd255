"""Routing a model's requests across its deployments (docs/upstreams.md#routing).

The `Router` keeps, per deployment, what the choice needs: requests in flight, an EWMA of the
time to first token, recent failures, the cooldown, and this minute's requests and tokens. It
chooses by LLM_ROUTING among the deployments that are healthy and have room (max_parallel, rpm,
tpm), keeping a chat on the deployment that served its last turn while that one is healthy.

Health: LLM_ALLOWED_FAILS failures within LLM_FAIL_WINDOW_SECONDS cool a deployment down for
LLM_COOLDOWN_SECONDS (a 429 or 503 with Retry-After, for that long). After a cooldown the
deployment is half-open: one request (a probe) is sent to it; its success makes it healthy
again, its failure cools it down again. A model's only deployment, with no fallback model, is
cooled by a Retry-After alone: failures would only turn a flaky server into a dead one.

With REDIS_URL the cooldowns, the requests in flight and the minute's requests and tokens are
shared by every worker through `SharedRouting` (routing_shared.py), refreshed twice a second;
without it they are this worker's own.

Everything here runs on the event loop with no awaits except in `wait()`: a choice is a few
dictionary reads, no Redis round trip.
"""

import asyncio
import logging
import random
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal, Protocol

from app.core.metrics import Metrics
from app.generation.errors import (
    UpstreamError,
    UpstreamHTTPError,
    UpstreamIncomplete,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from app.generation.upstream.types import Deployment, ModelConfig

logger = logging.getLogger("parley.routing")

Strategy = Literal["weighted", "least-busy", "latency", "usage"]
State = Literal["healthy", "cooldown", "half_open"]

# The EWMA's weight of the newest time to first token.
EWMA_ALPHA = 0.3
# Statuses that say the request itself is wrong: the same request fails on every deployment.
REQUEST_ERRORS = frozenset({400, 413, 422})


def failure_kind(error: UpstreamError) -> str:
    """A failure's kind, for metrics and the admin view."""
    if isinstance(error, UpstreamHTTPError):
        status = error.upstream_status
        return "http_429" if status == 429 else f"http_{status // 100}xx"
    if isinstance(error, UpstreamUnavailable):
        return "unavailable"
    if isinstance(error, UpstreamTimeout):
        return "timeout"
    if isinstance(error, UpstreamIncomplete):
        return "incomplete"
    return error.code.removeprefix("upstream_")


def worth_another_deployment(error: UpstreamError) -> bool:
    """Whether a failure before the first token is the deployment's (try another) rather than
    the request's (a 400: every deployment would refuse it)."""
    return not (isinstance(error, UpstreamHTTPError) and error.upstream_status in REQUEST_ERRORS)


@dataclass
class DeploymentState:
    """What the router knows of one deployment of one model."""

    model: str
    deployment: Deployment
    in_flight: int = 0  # this worker's attempts streaming now
    in_flight_elsewhere: int = 0  # the other workers' (REDIS_URL)
    ewma_ttft_ms: float | None = None
    failures: deque[float] = field(default_factory=deque)  # times of recent failures
    outcomes: deque[tuple[float, bool]] = field(default_factory=deque)  # (time, ok) in the window
    cooldown_until: float = 0.0  # wall-clock seconds
    cooled_elsewhere_until: float = 0.0  # what the other workers say (REDIS_URL)
    probing: bool = False  # the half-open probe is in flight
    half_open: bool = False  # the cooldown ended and no probe has succeeded yet
    minute: int = 0
    requests_this_minute: int = 0  # this worker's
    tokens_this_minute: int = 0
    requests_elsewhere: int = 0  # the other workers' this minute (REDIS_URL)
    tokens_elsewhere: int = 0
    last_error: str | None = None
    last_error_at: datetime | None = None

    @property
    def key(self) -> str:
        return f"{self.model}/{self.deployment.name}"

    def cooling_until(self) -> float:
        return max(self.cooldown_until, self.cooled_elsewhere_until)

    def state(self, now: float) -> State:
        if self.cooling_until() > now:
            return "cooldown"
        return "half_open" if self.half_open else "healthy"

    def roll_minute(self, now: float) -> None:
        minute = int(now // 60)
        if minute != self.minute:
            self.minute = minute
            self.requests_this_minute = self.tokens_this_minute = 0
            self.requests_elsewhere = self.tokens_elsewhere = 0

    def busy(self) -> int:
        return self.in_flight + self.in_flight_elsewhere

    def headroom(self) -> float:
        """The share of the rpm and tpm still free this minute (1.0 without limits)."""
        shares = [1.0]
        d = self.deployment
        if d.rpm:
            shares.append(1 - (self.requests_this_minute + self.requests_elsewhere) / d.rpm)
        if d.tpm:
            shares.append(1 - (self.tokens_this_minute + self.tokens_elsewhere) / d.tpm)
        return min(shares)

    def has_room(self, tokens: int) -> bool:
        d = self.deployment
        if d.max_parallel is not None and self.busy() >= d.max_parallel:
            return False
        if d.rpm is not None and self.requests_this_minute + self.requests_elsewhere >= d.rpm:
            return False
        used = self.tokens_this_minute + self.tokens_elsewhere
        return d.tpm is None or used == 0 or used + tokens <= d.tpm

    def error_rate(self, now: float, window: float) -> float:
        while self.outcomes and self.outcomes[0][0] < now - window:
            self.outcomes.popleft()
        if not self.outcomes:
            return 0.0
        return sum(1 for _, ok in self.outcomes if not ok) / len(self.outcomes)


class SharedState(Protocol):
    """Where routing state goes for the other workers (routing_shared.py, with REDIS_URL)."""

    def cooled(self, state: DeploymentState, until: float) -> None: ...


@dataclass
class Attempt:
    """One attempt on one deployment: released exactly once, whatever ends it."""

    state: DeploymentState
    started: float  # perf_counter
    probe: bool
    released: bool = False


class Router:
    """Chooses a deployment for each attempt and keeps their health (one per app instance)."""

    def __init__(
        self,
        models: Iterable[ModelConfig],
        *,
        strategy: Strategy = "weighted",
        fallbacks: dict[str, list[str]] | None = None,
        allowed_fails: int = 3,
        fail_window: float = 60.0,
        cooldown: float = 10.0,
        max_attempts: int = 3,
        metrics: Metrics | None = None,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
    ) -> None:
        self.strategy: Strategy = strategy
        self.fallbacks = fallbacks or {}
        self.allowed_fails = allowed_fails
        self.fail_window = fail_window
        self.cooldown = cooldown
        self.max_attempts = max_attempts
        self.metrics = metrics
        self.clock = clock
        self.rng = rng or random.Random()  # noqa: S311 - spreading load, not secrets
        self.shared: SharedState | None = None
        self.states: dict[str, list[DeploymentState]] = {
            model.name: [DeploymentState(model.name, d) for d in model.deployments]
            for model in models
            if model.deployments
        }
        # Set whenever a deployment may have become usable (an attempt ended, a cooldown was
        # lifted elsewhere): replies waiting for one look again.
        self._changed = asyncio.Event()

    # --- choosing ------------------------------------------------------------------------------

    def deployments(self, model: str) -> list[DeploymentState]:
        return self.states.get(model, [])

    def find(self, model: str, deployment: str) -> DeploymentState | None:
        return next((s for s in self.deployments(model) if s.deployment.name == deployment), None)

    def usable(self, state: DeploymentState, now: float, tokens: int) -> bool:
        current = state.state(now)
        if current == "cooldown" or (current == "half_open" and state.probing):
            return False
        state.roll_minute(now)
        return state.has_room(tokens)

    def choose(
        self,
        model: str,
        *,
        exclude: set[str] = frozenset(),  # type: ignore[assignment]
        sticky: str | None = None,
        tokens: int = 0,
    ) -> DeploymentState | None:
        """A usable deployment of `model` not in `exclude`: the sticky one if it is healthy,
        else one by the strategy; None when none is usable now."""
        now = self.clock()
        candidates = [
            s
            for s in self.deployments(model)
            if s.deployment.name not in exclude and self.usable(s, now, tokens)
        ]
        if not candidates:
            return None
        if sticky is not None:
            for state in candidates:
                if state.deployment.name == sticky and state.state(now) == "healthy":
                    return state
        if len(candidates) == 1:
            return candidates[0]
        # A half-open deployment gets its probe before anything else: it returns sooner.
        for state in candidates:
            if state.state(now) == "half_open":
                return state
        match self.strategy:
            case "least-busy":
                fewest = min(s.busy() for s in candidates)
                return self._weighted([s for s in candidates if s.busy() == fewest])
            case "latency":
                untried = [s for s in candidates if s.ewma_ttft_ms is None]
                if untried:
                    return self._weighted(untried)
                return min(candidates, key=lambda s: s.ewma_ttft_ms or 0.0)
            case "usage":
                return max(candidates, key=lambda s: (s.headroom(), -s.busy()))
            case _:
                return self._weighted(candidates)

    def _weighted(self, candidates: list[DeploymentState]) -> DeploymentState:
        if len(candidates) == 1:
            return candidates[0]
        weights = [s.deployment.weight for s in candidates]
        return self.rng.choices(candidates, weights=weights)[0]

    def next_change(self, models: Iterable[str]) -> float | None:
        """When the first cooling deployment of `models` returns (wall clock), if any cools."""
        now = self.clock()
        ends = [
            s.cooling_until()
            for model in models
            for s in self.deployments(model)
            if s.cooling_until() > now
        ]
        return min(ends) if ends else None

    async def wait(self, seconds: float) -> None:
        """Waits up to `seconds` for a deployment to become usable (an attempt ended, a cooldown
        ended or was lifted)."""
        self._changed.clear()
        try:
            async with asyncio.timeout(max(0.0, seconds)):
                await self._changed.wait()
        except TimeoutError:
            pass

    # --- attempts ------------------------------------------------------------------------------

    def begin(self, state: DeploymentState, tokens: int) -> Attempt:
        now = self.clock()
        probe = state.state(now) == "half_open"
        if probe:
            state.probing = True
        state.in_flight += 1
        state.roll_minute(now)
        state.requests_this_minute += 1
        state.tokens_this_minute += tokens
        if self.metrics is not None:
            labels = (state.model, state.deployment.name)
            self.metrics.deployment_requests.labels(*labels).inc()
            self.metrics.deployment_in_flight.labels(*labels).inc()
        return Attempt(state, time.perf_counter(), probe)

    def first_token(self, attempt: Attempt) -> None:
        """The attempt's first content came: it answers; its deployment is healthy."""
        state = attempt.state
        ttft = (time.perf_counter() - attempt.started) * 1000
        state.ewma_ttft_ms = (
            ttft
            if state.ewma_ttft_ms is None
            else EWMA_ALPHA * ttft + (1 - EWMA_ALPHA) * state.ewma_ttft_ms
        )
        self._outcome(state, ok=True)
        if attempt.probe or state.half_open:
            state.half_open = state.probing = False
            state.cooldown_until = 0.0
            state.failures.clear()
            logger.info("deployment healthy again", extra={"deployment": state.key})
            self._publish_state(state)
        if self.metrics is not None:
            self.metrics.deployment_ttft.labels(state.model, state.deployment.name).observe(
                ttft / 1000
            )

    def failed(self, attempt: Attempt, error: UpstreamError) -> None:
        """The attempt failed (before or after its first token): counted against its
        deployment, which cools down after too many, or at once for a probe or a Retry-After."""
        state = attempt.state
        now = self.clock()
        kind = failure_kind(error)
        state.last_error = f"{kind}: {error.message}"
        state.last_error_at = datetime.now(UTC)
        self._outcome(state, ok=False)
        if self.metrics is not None:
            self.metrics.deployment_failures.labels(state.model, state.deployment.name, kind).inc()
        logger.warning(
            "deployment attempt failed",
            extra={"deployment": state.key, "kind": kind, "detail": error.message},
        )
        state.failures.append(now)
        while state.failures and state.failures[0] < now - self.fail_window:
            state.failures.popleft()
        retry_after = getattr(error, "retry_after", None)
        if retry_after is not None and retry_after > 0:
            self._cool(state, now + min(retry_after, 3600.0), reason=f"Retry-After {retry_after}")
        elif self._has_alternatives(state.model) and (
            attempt.probe or len(state.failures) >= self.allowed_fails
        ):
            self._cool(state, now + self.cooldown, reason=kind)

    def _has_alternatives(self, model: str) -> bool:
        """Whether cooling a deployment of `model` down leaves somewhere else to go: a lone
        deployment with no fallback is never cooled by failures (only a Retry-After), as that
        would turn a flaky server into a dead one."""
        return len(self.deployments(model)) > 1 or bool(self.fallbacks.get(model))

    def release(self, attempt: Attempt, *, tokens: int = 0) -> None:
        """The attempt ended (however): frees its place; `tokens` its usage beyond the
        prompt's estimate already counted."""
        if attempt.released:
            return
        attempt.released = True
        state = attempt.state
        state.in_flight -= 1
        if attempt.probe:
            state.probing = False
        if tokens > 0:
            state.roll_minute(self.clock())
            state.tokens_this_minute += tokens
        if self.metrics is not None:
            self.metrics.deployment_in_flight.labels(state.model, state.deployment.name).dec()
        self._changed.set()

    def _outcome(self, state: DeploymentState, *, ok: bool) -> None:
        now = self.clock()
        state.outcomes.append((now, ok))
        while state.outcomes and state.outcomes[0][0] < now - self.fail_window:
            state.outcomes.popleft()

    def _cool(self, state: DeploymentState, until: float, *, reason: str) -> None:
        state.cooldown_until = max(state.cooldown_until, until)
        state.half_open = True
        state.failures.clear()
        logger.warning(
            "deployment cooling down",
            extra={
                "deployment": state.key,
                "seconds": round(until - self.clock(), 1),
                "why": reason,
            },
        )
        if self.shared is not None:
            self.shared.cooled(state, state.cooldown_until)
        self._publish_state(state)
        loop = asyncio.get_running_loop()
        loop.call_later(max(0.0, until - self.clock()) + 0.001, self._cooldown_over, state)

    def _cooldown_over(self, state: DeploymentState) -> None:
        self._publish_state(state)
        self._changed.set()

    def shared_changed(self) -> None:
        """The other workers' view was read (routing_shared.py): look again."""
        for states in self.states.values():
            for state in states:
                self._publish_state(state)
        self._changed.set()

    def _publish_state(self, state: DeploymentState) -> None:
        if self.metrics is None:
            return
        value = {"healthy": 0, "half_open": 1, "cooldown": 2}[state.state(self.clock())]
        self.metrics.deployment_state.labels(state.model, state.deployment.name).set(value)

    # --- reading -------------------------------------------------------------------------------

    def available(self, model: str) -> bool:
        """Whether `model` has a deployment that is not cooling down (models without
        deployments, echo, always)."""
        states = self.deployments(model)
        now = self.clock()
        return not states or any(s.state(now) != "cooldown" for s in states)

    def healthy(self, model: str) -> bool:
        """Whether `model` has a healthy deployment (not cooling down, not half-open)."""
        states = self.deployments(model)
        now = self.clock()
        return not states or any(s.state(now) == "healthy" for s in states)

    def view(self) -> list[dict[str, object]]:
        """Every model's deployments as operators see them (never a key)."""
        now = self.clock()
        models = []
        for model, states in self.states.items():
            deployments = []
            for s in states:
                current = s.state(now)
                until = s.cooling_until()
                deployments.append(
                    {
                        "name": s.deployment.name,
                        "base_url": s.deployment.base_url,
                        "model": s.deployment.upstream_model,
                        "weight": s.deployment.weight,
                        "rpm": s.deployment.rpm,
                        "tpm": s.deployment.tpm,
                        "max_parallel": s.deployment.max_parallel,
                        "state": current,
                        "cooldown_until": (
                            datetime.fromtimestamp(until, UTC) if current == "cooldown" else None
                        ),
                        "in_flight": s.busy(),
                        "ewma_ttft_ms": (
                            round(s.ewma_ttft_ms, 1) if s.ewma_ttft_ms is not None else None
                        ),
                        "error_rate": round(s.error_rate(now, self.fail_window), 3),
                        "last_error": s.last_error,
                        "last_error_at": s.last_error_at,
                    }
                )
            models.append(
                {
                    "model": model,
                    "fallbacks": self.fallbacks.get(model, []),
                    "available": self.available(model),
                    "deployments": deployments,
                }
            )
        return models
