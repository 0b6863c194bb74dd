"""Prometheus metrics, in the reasons' vocabulary."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from schemagate.core.models import GateStatus
from schemagate.core.reasons import Reason
from schemagate.core.status import Outcome

INTERNAL_ERROR = "InternalError"


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.verification_seconds = Histogram(
            "schemagate_verification_duration_seconds",
            "Time to verify one DatabaseSchema against its database.",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=self.registry)
        self.gate_open = Gauge(
            "schemagate_gate_open", "1 when the schema's gate lets new pods become Ready.",
            ["namespace", "name"], registry=self.registry)
        self.gate_pods = Gauge(
            "schemagate_gate_pods", "Pods carrying the schema's readiness gate, by state "
            "(gated, ready); ungated: pods the schema should hold that carry no gate.",
            ["namespace", "name", "state"], registry=self.registry)
        self.reconcile_errors = Counter(
            "schemagate_reconcile_errors", "Checks that did not end Verified, by reason.",
            ["reason"], registry=self.registry)

    @contextmanager
    def verification_timer(self) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.verification_seconds.observe(time.perf_counter() - started)

    def observe_outcome(self, namespace: str, name: str, outcome: Outcome,
                        gate: GateStatus) -> None:
        self.gate_open.labels(namespace, name).set(1 if outcome.verified else 0)
        self.gate_pods.labels(namespace, name, "gated").set(gate.pods)
        self.gate_pods.labels(namespace, name, "ready").set(gate.ready)
        self.gate_pods.labels(namespace, name, "ungated").set(gate.ungated or 0)
        if outcome.reason is not Reason.VERIFIED:
            self.reconcile_errors.labels(outcome.reason.value).inc()

    def internal_error(self) -> None:
        """A pass that raised (logged with its exception); counted apart from reasons."""
        self.reconcile_errors.labels(INTERNAL_ERROR).inc()

    def forget(self, namespace: str, name: str) -> None:
        for gauge, labels in ((self.gate_open, (namespace, name)),
                              (self.gate_pods, (namespace, name, "gated")),
                              (self.gate_pods, (namespace, name, "ready")),
                              (self.gate_pods, (namespace, name, "ungated"))):
            try:
                gauge.remove(*labels)
            except KeyError:
                pass

    def serve(self, port: int) -> None:
        start_http_server(port, registry=self.registry)
