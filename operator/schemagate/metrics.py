"""Prometheus metrics, in the reasons' vocabulary."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

from schemagate.core.status.outcome import Outcome
from schemagate.core.wire.models import GateStatus
from schemagate.core.wire.reasons import Reason

#: `schemagate_check_failures_total{reason}`: checks that could not look at the schema.
UNREACHABLE = "unreachable"  # the database did not answer (DatabaseUnreachable)
INTERNAL = "internal"  # the pass raised; logged with its exception
FAILURE_REASONS = (UNREACHABLE, INTERNAL)
GATE_STATES = ("gated", "ready", "ungated")


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        # What a Python exporter is expected to show: CPU, memory, file descriptors, GC.
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        GCCollector(registry=self.registry)
        self.verification_seconds = Histogram(
            "schemagate_verification_duration_seconds",
            "Time to verify one DatabaseSchema against its database.",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=self.registry)
        self.schema_ready = Gauge(
            "schemagate_schema_ready", "1 when the DatabaseSchema's Ready condition is True.",
            ["namespace", "name"], registry=self.registry)
        self.schema_reason = Gauge(
            "schemagate_schema_reason",
            "1 for the reason of the DatabaseSchema's latest check (one series per schema).",
            ["namespace", "name", "reason"], registry=self.registry)
        self.gate_open = Gauge(
            "schemagate_gate_open", "1 when the schema's gate lets new pods become Ready.",
            ["namespace", "name"], registry=self.registry)
        self.gate_pods = Gauge(
            "schemagate_gate_pods", "Pods carrying the schema's readiness gate, by state "
            "(gated, ready); ungated: pods the schema should hold that carry no gate.",
            ["namespace", "name", "state"], registry=self.registry)
        self.checks = Counter(
            "schemagate_checks", "Checks of a DatabaseSchema, by the reason they ended with.",
            ["reason"], registry=self.registry)
        self.check_failures = Counter(
            "schemagate_check_failures",
            "Checks that could not look at the schema: unreachable (the database did not "
            "answer) or internal (an unexpected error, logged).",
            ["reason"], registry=self.registry)
        self.api_requests = Counter(
            "schemagate_api_requests",
            "Requests the operator's own client sent to the Kubernetes API, by verb and "
            "resource (Kopf's watches and Events aside).",
            ["verb", "resource"], registry=self.registry)
        self.last_verified = Gauge(
            "schemagate_last_verified_timestamp_seconds",
            "When the database of the DatabaseSchema was last read (Unix time); status "
            "carries it only when something else changes or on a heartbeat.",
            ["namespace", "name"], registry=self.registry)
        self.leader = Gauge(
            "schemagate_leader", "1 while this replica holds the leader Lease and acts; "
            "0 while it stands by.", registry=self.registry)
        self.leader.set(1)  # without leader election every replica acts
        for failure in FAILURE_REASONS:
            self.check_failures.labels(failure)  # 0 until it happens, so rate() sees a series
        self._reasons: dict[tuple[str, str], str] = {}

    @contextmanager
    def verification_timer(self) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.verification_seconds.observe(time.perf_counter() - started)

    def observe_outcome(self, namespace: str, name: str, outcome: Outcome,
                        gate: GateStatus) -> None:
        self.schema_ready.labels(namespace, name).set(1 if outcome.verified else 0)
        self._set_reason(namespace, name, outcome.reason.value)
        self.gate_open.labels(namespace, name).set(1 if outcome.verified else 0)
        self.gate_pods.labels(namespace, name, "gated").set(gate.pods)
        self.gate_pods.labels(namespace, name, "ready").set(gate.ready)
        self.gate_pods.labels(namespace, name, "ungated").set(gate.ungated or 0)
        self.checks.labels(outcome.reason.value).inc()
        if outcome.reason is Reason.DATABASE_UNREACHABLE:
            self.check_failures.labels(UNREACHABLE).inc()

    def api_request(self, verb: str, resource: str) -> None:
        self.api_requests.labels(verb, resource).inc()

    def verified_at(self, namespace: str, name: str, unix_time: float) -> None:
        self.last_verified.labels(namespace, name).set(unix_time)

    def _set_reason(self, namespace: str, name: str, reason: str) -> None:
        previous = self._reasons.get((namespace, name))
        if previous is not None and previous != reason:
            self._remove(self.schema_reason, namespace, name, previous)
        self.schema_reason.labels(namespace, name, reason).set(1)
        self._reasons[(namespace, name)] = reason

    def leading(self, yes: bool) -> None:
        self.leader.set(1 if yes else 0)

    def internal_error(self) -> None:
        """A pass that raised (logged with its exception)."""
        self.check_failures.labels(INTERNAL).inc()

    def forget(self, namespace: str, name: str) -> None:
        for gauge in (self.schema_ready, self.gate_open, self.last_verified):
            self._remove(gauge, namespace, name)
        for state in GATE_STATES:
            self._remove(self.gate_pods, namespace, name, state)
        reason = self._reasons.pop((namespace, name), None)
        if reason is not None:
            self._remove(self.schema_reason, namespace, name, reason)

    @staticmethod
    def _remove(gauge: Gauge, *labels: str) -> None:
        try:
            gauge.remove(*labels)
        except KeyError:
            pass

    def serve(self, port: int) -> None:
        start_http_server(port, registry=self.registry)
