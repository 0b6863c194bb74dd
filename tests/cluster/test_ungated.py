"""A pod its DatabaseSchema should hold but that carries no gate is never silently
ignored: a Warning Event, a count in status.gate, a metric."""

from __future__ import annotations

from typing import Any

from localenv import operator as local_operator
from tests.cluster.scenario import Backend, Database
from tests.support.wait import wait_for


def without_gate(manifest: dict[str, Any]) -> dict[str, Any]:
    del manifest["spec"]["template"]["spec"]["readinessGates"]
    return manifest


def test_a_pod_without_the_gate_is_reported(
        backend: Backend, db: Database, operator: local_operator.OperatorProcess) -> None:
    db.migrate()
    backend.secret(db.url())
    backend.schema()
    backend.apply(without_gate(backend.deployment_manifest(replicas=2)))
    status = wait_for("status.gate.ungated", lambda: (g := backend.get(
        "dbschema", "backend-schema").get("status", {}).get("gate", {})).get("ungated") == 2
        and g)
    assert status["pods"] == 0
    event = wait_for("the Warning Event", lambda: next(
        (e for e in backend.events() if e["reason"] == "PodWithoutGate"), None))
    assert event["type"] == "Warning"
    assert "2 pod(s)" in event["message"] and "gateInjection" in event["message"]
    assert event["involvedObject"]["name"] == "backend-schema"
    text = wait_for("the metric", lambda: (t := operator.metrics()) and
                    'state="ungated"' in t and t)
    assert (f'schemagate_gate_pods{{name="backend-schema",namespace="{backend.namespace}",'
            'state="ungated"} 2.0') in text
