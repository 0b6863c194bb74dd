"""Columns on the local cluster: a backend upgrade whose new version needs a new column
is held until the column exists, and a column retyped under running pods is drift."""

from __future__ import annotations

from typing import Any

import pytest

from localenv import operator as local_operator
from tests.cluster.operator_fixtures import VerifiedBackend
from tests.cluster.scenario import Backend, Database
from tests.support.wait import wait_for

#: What `schemagate snapshot --table subscriptions` prints after the incident's migration.
V1_COLUMNS = [{"table": "subscriptions", "columns": [
    {"name": "id", "type": "bigint", "nullable": False},
    {"name": "plan", "type": "text", "nullable": False}]}]
#: Version 2 of the backend reads subscriptions.plan_id too.
V2_COLUMNS = [{"table": "subscriptions", "columns": [
    *V1_COLUMNS[0]["columns"], {"name": "plan_id", "type": "bigint", "nullable": True}]}]
GATE = {"podSelector": {"matchLabels": {"app": "backend-schema"}}, "onDrift": "Hold"}


def version(pod: dict[str, Any]) -> str:
    env = pod["spec"]["containers"][0].get("env") or []
    return next((e["value"] for e in env if e["name"] == "BACKEND_VERSION"), "?")


def gates_by_version(backend: Backend) -> list[tuple[str, str]]:
    return sorted((version(p), backend.pod_condition(p, "schemagate.io/backend-schema")
                   .get("status", "absent")) for p in backend.pods())


def test_an_upgrade_that_needs_a_new_column_is_held_until_the_column_exists(
        backend: Backend, db: Database, operator: local_operator.OperatorProcess) -> None:
    db.migrate()
    backend.secret(db.url())
    backend.deployment(replicas=2, env=[{"name": "BACKEND_VERSION", "value": "1"}])
    backend.schema(columns=V1_COLUMNS, gate=GATE)
    wait_for("version 1 serving", lambda: gates_by_version(backend) == [("1", "True")] * 2,
             timeout=30)
    wait_for("the Deployment Available", backend.available, timeout=30)

    # The upgrade: the new version's declaration and the new pod template, together.
    backend.schema(columns=V2_COLUMNS, gate=GATE)
    backend.deployment(replicas=2, env=[{"name": "BACKEND_VERSION", "value": "2"}])

    held = backend.wait_reason("ColumnsMismatch", timeout=30)
    assert held["status"] == "False"
    assert "subscriptions.plan_id missing" in held["message"]
    status = backend.get("dbschema", "backend-schema")["status"]
    assert status["columnMismatches"] == [{"table": "subscriptions", "column": "plan_id",
                                           "expected": {"type": "bigint", "nullable": True}}]
    assert status["missingTables"] == []
    wait_for("the new pod created and held closed",
             lambda: gates_by_version(backend) == [("1", "True"), ("1", "True"), ("2", "False")],
             timeout=30)

    def judged() -> dict[str, Any] | None:
        # A release's first pod waits a moment for a DatabaseSchema applied with it
        # (AwaitingFreshCheck) before a check answers it.
        new_pod = next(p for p in backend.pods() if version(p) == "2")
        gate = backend.pod_condition(new_pod, "schemagate.io/backend-schema")
        return None if gate.get("reason") == "AwaitingFreshCheck" else gate
    gate = wait_for("a check newer than the new pod", judged, timeout=30)
    new_pod = next(p for p in backend.pods() if version(p) == "2")
    assert gate["reason"] == "ColumnsMismatch" and "plan_id" in gate["message"]
    assert backend.pod_condition(new_pod, "Ready")["status"] == "False"
    assert backend.available(), "the old version keeps serving while the new one waits"

    db.execute("ALTER TABLE subscriptions ADD COLUMN plan_id bigint")  # the migration lands

    backend.wait_reason("Verified", timeout=30)
    wait_for("version 2 serving alone",
             lambda: gates_by_version(backend) == [("2", "True")] * 2, timeout=60)
    wait_for("the Deployment Available", backend.available, timeout=30)
    status = backend.get("dbschema", "backend-schema")["status"]
    assert status["columnMismatches"] == []
    assert db.password not in backend.kubectl("get", "dbschema,events,pods", "-o", "yaml")


@pytest.mark.parametrize(("policy", "after_drift"), [("Hold", "True"), ("Close", "False")])
def test_a_retyped_column_is_drift(policy: str, after_drift: str, db: Database,
                                   verified_backend: VerifiedBackend) -> None:
    backend = verified_backend(columns=V1_COLUMNS, gate={**GATE, "onDrift": policy})

    db.execute("ALTER TABLE subscriptions ALTER COLUMN plan TYPE varchar(32)")
    drift = backend.wait_reason("ColumnsMismatch", timeout=20)
    assert "subscriptions.plan is character varying(32), declared text" in drift["message"]
    wait_for(f"the gate {after_drift}", lambda: backend.gate_states() == [after_drift])
    backend.kubectl("scale", "deployment/backend", "--replicas=2")
    wait_for("a new pod held closed",
             lambda: sorted(backend.gate_states()) == sorted([after_drift, "False"]) or None,
             timeout=30)
