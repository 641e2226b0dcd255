"""Prometheus metrics, one registry per app instance (several apps can share a test process).

With several worker processes, set PROMETHEUS_MULTIPROC_DIR to an empty directory shared by
the workers: prometheus-client then writes values there and /metrics sums every worker's.
"""

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
TTFT_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60)


class Metrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "parley_http_requests", "HTTP requests", ["method", "route", "status"], registry=r
        )
        self.latency = Histogram(
            "parley_http_request_duration_seconds",
            "Time to the last byte of the response",
            ["method", "route"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.active_streams = Gauge(
            "parley_active_streams",
            "Replies being generated now",
            registry=r,
            multiprocess_mode="livesum",
        )
        self.time_to_first_token = Histogram(
            "parley_time_to_first_token_seconds",
            "From calling the upstream to its first token",
            ["model"],
            buckets=TTFT_BUCKETS,
            registry=r,
        )
        self.tokens = Counter(
            "parley_tokens", "Tokens in prompts and replies", ["model", "direction"], registry=r
        )
        self.upstream_errors = Counter(
            "parley_upstream_errors", "Failed replies by kind", ["kind"], registry=r
        )
        # Routing across a model's deployments (app/generation/upstream/routing.py).
        self.deployment_requests = Counter(
            "parley_deployment_requests",
            "Attempts sent to a model's deployment",
            ["model", "deployment"],
            registry=r,
        )
        self.deployment_failures = Counter(
            "parley_deployment_failures",
            "Failed attempts by kind (unavailable, timeout, http_429, http_5xx, incomplete, ...)",
            ["model", "deployment", "kind"],
            registry=r,
        )
        self.deployment_ttft = Histogram(
            "parley_deployment_time_to_first_token_seconds",
            "From sending an attempt to its first token",
            ["model", "deployment"],
            buckets=TTFT_BUCKETS,
            registry=r,
        )
        self.deployment_in_flight = Gauge(
            "parley_deployment_in_flight",
            "Attempts streaming from a deployment now",
            ["model", "deployment"],
            registry=r,
            multiprocess_mode="livesum",
        )
        self.deployment_state = Gauge(
            "parley_deployment_state",
            "0 healthy, 1 half-open, 2 cooling down",
            ["model", "deployment"],
            registry=r,
            multiprocess_mode="livemax",
        )
        self.rate_limited = Counter(
            "parley_rate_limited",
            "Requests refused by a rate limit or quota",
            ["scope"],
            registry=r,
        )
        self.guardrail_events = Counter(
            "parley_guardrail_events",
            "What the guardrails did, by point (input, untrusted, output), check and action "
            "(block, redact, flag, fail_open)",
            ["point", "check", "action"],
            registry=r,
        )
        # Retrieval's optional reranker (app/knowledge/retrieval.py).
        self.rerank_fallbacks = Counter(
            "parley_rerank_fallbacks",
            "Searches that kept the fused order because the reranker failed, by reason "
            "(timeout, unavailable, invalid)",
            ["reason"],
            registry=r,
        )
        self.credential_checks = Counter(
            "parley_credential_checks",
            "Password and second-factor checks by outcome: passed, failed, or refused (locked: "
            "no check ran)",
            ["factor", "outcome"],
            registry=r,
        )

    def render(self) -> bytes:
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            registry = CollectorRegistry()
            MultiProcessCollector(registry)
            return generate_latest(registry)
        return generate_latest(self.registry)
