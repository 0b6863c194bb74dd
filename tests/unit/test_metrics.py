"""What /metrics shows (the shipped alerts and dashboard are checked in tests/chart)."""

from __future__ import annotations

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from schemagate.core.status.outcome import Outcome
from schemagate.core.wire.models import GateStatus
from schemagate.core.wire.reasons import Reason
from schemagate.metrics import Metrics

GATE = GateStatus(condition_type="schemagate.io/s", pods=3, ready=1)


def scraped(metrics: Metrics) -> dict[str, set[str]]:
    """Every sample name /metrics shows, with the label names it carries."""
    names: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(generate_latest(metrics.registry).decode()):
        for sample in family.samples:
            names.setdefault(sample.name, set()).update(sample.labels)
    return names


def exported() -> dict[str, set[str]]:
    metrics = Metrics()
    with metrics.verification_timer():
        pass
    metrics.observe_outcome("team-a", "backend-schema",
                            Outcome(Reason.MIGRATION_FAILED, "boom"), GATE)
    metrics.internal_error()
    return scraped(metrics)


def test_a_waiting_check_is_counted_as_a_check_not_a_failure() -> None:
    metrics = Metrics()
    for _ in range(3):
        metrics.observe_outcome("a", "s", Outcome(Reason.NO_REVISION, "waiting"), GATE)
    metrics.observe_outcome("a", "s", Outcome(Reason.DATABASE_UNREACHABLE, "timeout"), GATE)
    value = metrics.registry.get_sample_value
    assert value("schemagate_checks_total", {"reason": "NoRevision"}) == 3
    assert value("schemagate_check_failures_total", {"reason": "unreachable"}) == 1
    assert value("schemagate_check_failures_total", {"reason": "internal"}) == 0
    assert "schemagate_reconcile_errors_total" not in scraped(metrics)


def test_schema_ready_and_its_one_reason_follow_the_latest_check() -> None:
    metrics = Metrics()
    metrics.observe_outcome("a", "s", Outcome(Reason.NO_REVISION, "waiting"), GATE)
    metrics.observe_outcome("a", "s", Outcome(Reason.VERIFIED, "ok"), GATE)
    value = metrics.registry.get_sample_value
    assert value("schemagate_schema_ready", {"namespace": "a", "name": "s"}) == 1
    assert value("schemagate_schema_reason",
                 {"namespace": "a", "name": "s", "reason": "Verified"}) == 1
    assert value("schemagate_schema_reason",
                 {"namespace": "a", "name": "s", "reason": "NoRevision"}) is None
    metrics.forget("a", "s")
    assert not any(labels.get("name") == "s" for family in metrics.registry.collect()
                   for _, labels, *_ in family.samples)


def test_process_and_python_collectors_are_back() -> None:
    names = exported()
    assert {"process_resident_memory_bytes", "process_cpu_seconds_total", "python_info",
            "python_gc_objects_collected_total"} <= set(names)


def test_requests_are_counted_by_verb_and_resource() -> None:
    from schemagate import kube

    assert kube.resource_of("/api/v1/namespaces/ns/pods/p/status") == "pods/status"
    assert kube.resource_of("/api/v1/namespaces/ns/pods") == "pods"
    assert kube.resource_of("/api/v1/namespaces/ns/secrets/db") == "secrets"
    assert kube.resource_of(
        "/apis/schemagate.io/v1alpha1/namespaces/ns/databaseschemas/s/status") == \
        "databaseschemas/status"
    assert kube.resource_of("/apis/coordination.k8s.io/v1/namespaces/ns/leases/l") == "leases"
    counted = kube.RequestCounter()
    counted("PATCH", "https://10.0.0.1:6443/api/v1/namespaces/ns/pods/p/status")
    counted("PATCH", "https://10.0.0.1:6443/api/v1/namespaces/ns/pods/q/status")
    counted("GET", "https://10.0.0.1:6443/api/v1/namespaces/ns/pods?labelSelector=a%3Db")
    counted("GET", "https://10.0.0.1:6443/api/v1/namespaces/ns/secrets/db")
    assert counted.counts == {("patch", "pods/status"): 2, ("list", "pods"): 1,
                              ("get", "secrets"): 1}
