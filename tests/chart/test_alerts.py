"""The shipped alerts and dashboard, rendered by the pinned helm, read only metrics and
labels the operator really exports."""

from __future__ import annotations

import functools
import json
import re

import pytest

from schemagate.core.wire.reasons import Reason
from tests.chart import CHART, of_kind, one, render
from tests.unit.test_metrics import exported

#: Series Prometheus adds to every target; the alerts may use them too.
SCRAPE_SERIES = {"up": {"job", "namespace", "instance", "pod"}}
#: Labels the scrape adds to every series of the target.
TARGET_LABELS = {"job", "namespace", "instance", "pod", "le"}
PROMQL_WORDS = {"sum", "count", "rate", "by", "on", "ignoring", "and", "or", "absent",
                "vector", "histogram_quantile", "label_values", "max", "min", "increase"}


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


#: The alerts the chart promises; rendered only when a test runs, so that collecting the
#: tests (`pytest -m unit` included) never needs helm.
ALERTS = ["SchemagateSchemaNotReady", "SchemagateMigrationFailed", "SchemagateGatedPodsWaiting",
          "SchemagateOperatorDown"]


@functools.cache
def alert_rules() -> dict[str, dict[str, str]]:
    rule = one(render({"metrics.prometheusRule.enabled": "true"}), "PrometheusRule")
    return {r["alert"]: r for group in rule["spec"]["groups"] for r in group["rules"]}


def test_the_alerts_are_the_four_promised() -> None:
    rules = alert_rules()
    assert sorted(rules) == sorted(ALERTS)
    assert (rules["SchemagateSchemaNotReady"]["for"],
            rules["SchemagateGatedPodsWaiting"]["for"]) == ("10m", "15m")
    assert 'reason="MigrationFailed"' in rules["SchemagateMigrationFailed"]["expr"]
    assert Reason.MIGRATION_FAILED.value == "MigrationFailed"


@pytest.mark.parametrize("alert", ALERTS)
def test_each_alert_reads_metrics_the_operator_exports(alert: str) -> None:
    assert_reads_exported(alert_rules()[alert]["expr"], exported())


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
