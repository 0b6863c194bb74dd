"""What /metrics shows, and that the shipped alerts and dashboard read only metrics and
labels the operator really exports."""

from __future__ import annotations

import json
import re

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from schemagate.core.status.outcome import Outcome
from schemagate.core.wire.models import GateStatus
from schemagate.core.wire.reasons import Reason
from schemagate.metrics import Metrics
from tests.chart import CHART, of_kind, one, render

GATE = GateStatus(condition_type="schemagate.io/s", pods=3, ready=1)
#: Series Prometheus adds to every target; the alerts may use them too.
SCRAPE_SERIES = {"up": {"job", "namespace", "instance", "pod"}}
#: Labels the scrape adds to every series of the target.
TARGET_LABELS = {"job", "namespace", "instance", "pod", "le"}
PROMQL_WORDS = {"sum", "count", "rate", "by", "on", "ignoring", "and", "or", "absent",
                "vector", "histogram_quantile", "label_values", "max", "min", "increase"}


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


def selectors(expr: str) -> list[tuple[str, set[str]]]:
    """(metric name, label names matched) for each series selector in a PromQL expression."""
    expr = re.sub(r'"[^"]*"', '""', expr)  # label values and strings
    expr = re.sub(r"\b(?:by|on|ignoring|without)\s*\([^)]*\)", " ", expr)  # label lists
    expr = re.sub(r"\[[^\]]*\]", "", expr)  # range selectors
    found = []
    for match in re.finditer(r"\b([a-zA-Z_:][\w:]*)\s*(\{[^}]*\})?", expr):
        name, matchers = match.group(1), match.group(2) or ""
        following = expr[match.end():].lstrip()
        if name in PROMQL_WORDS or following.startswith("("):
            continue
        labels = set(re.findall(r"(\w+)\s*(?:=~|!=|!~|=)", matchers))
        found.append((name, labels))
    return found


def label_grouping(expr: str) -> set[str]:
    return {label.strip() for group in re.findall(r"\b(?:by|on|ignoring)\s*\(([^)]*)\)", expr)
            for label in group.split(",") if label.strip()}


def assert_reads_exported(expr: str, names: dict[str, set[str]]) -> None:
    known = {**names, **SCRAPE_SERIES}
    chosen = selectors(expr)
    assert chosen, expr
    for name, labels in chosen:
        assert name in known, f"{expr}: the operator exports no {name}"
        assert labels <= known[name] | TARGET_LABELS, f"{expr}: {name} has no {labels}"
    carried = set().union(*(known[n] for n, _ in chosen)) | TARGET_LABELS
    assert label_grouping(expr) <= carried, expr


def alert_rules() -> list[dict[str, str]]:
    rule = one(render({"metrics.prometheusRule.enabled": "true"}), "PrometheusRule")
    return [r for group in rule["spec"]["groups"] for r in group["rules"]]


def test_the_alerts_are_the_four_promised() -> None:
    rules = {r["alert"]: r for r in alert_rules()}
    assert set(rules) == {"SchemagateSchemaNotReady", "SchemagateMigrationFailed",
                          "SchemagateGatedPodsWaiting", "SchemagateOperatorDown"}
    assert (rules["SchemagateSchemaNotReady"]["for"],
            rules["SchemagateGatedPodsWaiting"]["for"]) == ("10m", "15m")
    assert 'reason="MigrationFailed"' in rules["SchemagateMigrationFailed"]["expr"]
    assert Reason.MIGRATION_FAILED.value == "MigrationFailed"


@pytest.mark.parametrize("rule", alert_rules(), ids=lambda r: r["alert"])
def test_each_alert_reads_metrics_the_operator_exports(rule: dict[str, str]) -> None:
    assert_reads_exported(rule["expr"], exported())


def test_the_operator_down_alert_names_the_job_of_the_scrape() -> None:
    manifests = render({"metrics.prometheusRule.enabled": "true",
                        "metrics.podMonitoring.enabled": "true"}, namespace="ops")
    expr = next(r["expr"] for g in one(manifests, "PrometheusRule")["spec"]["groups"]
                for r in g["rules"] if r["alert"] == "SchemagateOperatorDown")
    service = one(manifests, "Service")["metadata"]["name"]  # a ServiceMonitor's job
    pod_monitoring = one(manifests, "PodMonitoring")["metadata"]["name"]
    assert service == pod_monitoring
    assert f'job="{service}"' in expr and 'namespace="ops"' in expr


def dashboard_exprs() -> list[str]:
    data = json.loads((CHART / "dashboards" / "schemagate.json").read_text())
    return [t["expr"] for p in data["panels"] for t in p["targets"]]


@pytest.mark.parametrize("expr", dashboard_exprs())
def test_each_dashboard_panel_reads_metrics_the_operator_exports(expr: str) -> None:
    assert_reads_exported(expr.replace("$job", ".*"), exported())


def test_the_dashboard_ships_in_a_config_map_for_the_sidecar() -> None:
    assert not of_kind(render(), "ConfigMap")
    config_map = one(render({"metrics.dashboard.enabled": "true"}), "ConfigMap")
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    shipped = json.loads(config_map["data"]["schemagate.json"])
    assert shipped == json.loads((CHART / "dashboards" / "schemagate.json").read_text())


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
