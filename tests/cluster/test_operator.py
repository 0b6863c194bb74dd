"""The operator as a real process against a real API server and a real PostgreSQL.

Each test gets its own namespace, database and operator process (watching only that
namespace); the node's kubelet runs the backend's pods and keeps their status.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from localenv import operator as local_operator
from localenv.cluster import Cluster
from localenv.postgres import free_port
from tests.cluster.operator_fixtures import VerifiedBackend, start_operator, stop_operator
from tests.cluster.scenario import TABLES, Backend, Database, after_checks
from tests.support.wait import wait_for


def test_the_incident_is_held_until_the_schema_is_really_there(
        backend: Backend, db: Database, operator: local_operator.OperatorProcess) -> None:
    backend.secret(db.url())
    backend.deployment(replicas=2)
    backend.schema()
    db.migrate("alembic-empty.ini")  # exits 0, applies nothing: the incident

    held = backend.wait_reason("NoRevision")
    assert held["status"] == "False"
    for table in TABLES:
        assert table in held["message"]
    wait_for("two pods", lambda: len(backend.pods()) == 2 or None)
    pods = wait_for("gate conditions on both pods",
                    lambda: (s := backend.gate_states()) and "absent" not in s and s)
    assert pods == ["False", "False"]
    assert backend.reported_ready_states() == ["False", "False"]
    # A pod first waits for a check newer than itself (AwaitingFreshCheck), then gets its verdict.
    gate = wait_for("the gate naming the verdict", lambda: (c := backend.pod_condition(
        backend.pods()[0], "schemagate.io/backend-schema")).get("reason") == "NoRevision" and c)
    assert gate["status"] == "False" and "credit_transactions" in gate["message"]
    assert not backend.available()
    status = backend.get("dbschema", "backend-schema")["status"]
    assert sorted(status["missingTables"]) == sorted(TABLES)
    assert status["database"]["database"] == db.name and status["database"]["user"] == db.user
    assert status["gate"] == {"conditionType": "schemagate.io/backend-schema", "pods": 2,
                              "ready": 0}

    db.migrate()  # another process creates the tables
    migrated = time.monotonic()
    wait_for("both gates open", lambda: backend.gate_states() == ["True", "True"], timeout=10)
    opened_after = time.monotonic() - migrated
    wait_for("the Deployment Available", backend.available, timeout=30)
    waited = backend.kubectl("wait", "--for=condition=Ready", "dbschema/backend-schema",
                             "--timeout=20s")
    assert "condition met" in waited
    status = backend.get("dbschema", "backend-schema")["status"]
    assert status["missingTables"] == [] and status["revision"]["current"] == ["3f2a9c"]
    assert status["gate"]["ready"] == 2
    assert opened_after < 10
    everything = backend.kubectl("get", "dbschema,events,pods", "-o", "yaml")
    assert db.password not in everything


@pytest.mark.parametrize("case", [
    "TablesElsewhere", "StampedButMissing", "TablesMissing", "RevisionMismatch",
    "SecretNotFound", "DatabaseUnreachable", "AuthenticationFailed", "InvalidSpec"])
def test_each_reason_reaches_the_resource(case: str, backend: Backend, db: Database,
                                          operator: local_operator.OperatorProcess) -> None:
    url, spec = db.url(), {}
    if case == "TablesElsewhere":
        db.execute(f'CREATE SCHEMA migrator AUTHORIZATION "{db.user}"')
        db.execute("CREATE TABLE migrator.subscriptions (id int)")
        db.execute(f'ALTER TABLE migrator.subscriptions OWNER TO "{db.user}"')
    elif case == "StampedButMissing":
        db.migrate()
        db.execute("DROP TABLE credit_transactions")
    elif case == "TablesMissing":
        spec = {"migrations": {"revisionCheck": False}}
    elif case == "RevisionMismatch":
        db.migrate()
        spec = {"migrations": {"expectedRevisions": ["9e9e9e"]}}
    elif case == "DatabaseUnreachable":
        url = db.url(port=free_port())  # nothing listens there
    elif case == "AuthenticationFailed":
        url = db.url(password="not-the-password")
    elif case == "InvalidSpec":
        spec = {"gate": {"podSelector": {"matchExpressions": [
            {"key": "app", "operator": "In", "values": []}]}}}
    if case != "SecretNotFound":
        backend.secret(url)
    backend.schema(**spec)

    condition = backend.wait_reason(case)
    if case == "TablesElsewhere":
        assert "migrator" in condition["message"]
        status = backend.get("dbschema", "backend-schema")["status"]
        assert {"table": "subscriptions", "schema": "migrator",
                "database": db.name} in status["foundElsewhere"]
    stalled = backend.condition(type="Stalled")
    assert stalled["status"] == ("True" if case in ("SecretNotFound", "AuthenticationFailed",
                                                     "InvalidSpec") else "False")
    assert "not-the-password" not in backend.kubectl("get", "dbschema,events", "-o", "yaml")


def test_the_api_server_refuses_what_the_schema_forbids(backend: Backend) -> None:
    result = backend.cluster.kubectl("-n", backend.namespace, "apply", "-f", "-", input="""
apiVersion: schemagate.io/v1alpha1
kind: DatabaseSchema
metadata: {name: bad}
spec:
  database: {urlSecretRef: {name: backend-db, key: DATABASE_URL}}
  tables: []
  verifyIntervalSeconds: 1
  migrations: {run: Job}
""")
    assert result.returncode != 0
    assert "spec.tables" in result.stderr and "verifyIntervalSeconds" in result.stderr
    assert "migrations.run is Job but migrations.job is not set" in result.stderr


@pytest.mark.parametrize(("policy", "after_drift"), [("Hold", "True"), ("Close", "False")])
def test_drift_follows_on_drift(policy: str, after_drift: str, db: Database,
                                verified_backend: VerifiedBackend) -> None:
    backend = verified_backend(gate={"podSelector": {"matchLabels": {"app": "backend-schema"}},
                                     "onDrift": policy})

    db.execute("DROP TABLE agent_executions")
    drift = backend.wait_reason("StampedButMissing", timeout=20)
    assert "agent_executions" in drift["message"]
    wait_for(f"the gate {after_drift}", lambda: backend.gate_states() == [after_drift])
    # Ready follows the gate at the kubelet's next status sync.
    wait_for(f"Ready {after_drift}", lambda: backend.ready_states() == [after_drift])


def test_unreachable_after_verification_holds_open_gates_and_new_pods_closed(
        db: Database, operator: local_operator.OperatorProcess,
        verified_backend: VerifiedBackend) -> None:
    backend = verified_backend(gate={"podSelector": {"matchLabels": {"app": "backend-schema"}},
                                     "onDrift": "Close"})

    backend.secret(db.url(port=free_port()))  # the database goes away
    ready = backend.wait_reason("DatabaseUnreachable", timeout=20)
    assert ready["status"] == "Unknown"
    backend.kubectl("scale", "deployment/backend", "--replicas=2")
    wait_for("a second pod with its gate set",
             lambda: sorted(backend.gate_states()) == ["False", "True"] or None, timeout=20)
    after_checks(operator.metrics, 3)  # the old pod must stay open across several checks
    assert sorted(backend.gate_states()) == ["False", "True"]


def test_a_secret_change_is_noticed_without_waiting_for_the_interval(
        backend: Backend, db: Database, operator: local_operator.OperatorProcess) -> None:
    db.migrate()
    backend.secret(db.url(password="wrong"))
    backend.schema(verifyIntervalSeconds=3600)
    backend.wait_reason("AuthenticationFailed")
    backend.secret(db.url())
    # Not the interval (an hour): the end of the 10 s wait that follows a refusal, which
    # no Secret write shortens (the password oracle, docs/rbac.md).
    backend.wait_reason("Verified", timeout=25)


def test_gates_without_a_schema_and_release_on_delete(
        backend: Backend, db: Database, operator: local_operator.OperatorProcess) -> None:
    backend.deployment(name="orphan", gate="no-such-schema", replicas=1)
    orphan = wait_for("the orphan's gate", lambda: (p := backend.pods("no-such-schema")) and
                      backend.pod_condition(p[0], "schemagate.io/no-such-schema") or None)
    assert orphan["status"] == "False" and orphan["reason"] == "DatabaseSchemaNotFound"

    backend.secret(db.url())
    backend.deployment(replicas=1)
    backend.schema()
    backend.wait_reason("NoRevision")
    backend.kubectl("delete", "dbschema", "backend-schema", "--timeout=30s")
    released = wait_for("the released gate", lambda: (p := backend.pods()) and (
        c := backend.pod_condition(p[0], "schemagate.io/backend-schema")) and
        c.get("reason") == "GateReleased" and c)
    assert released["status"] == "True"
    reasons = [e["reason"] for e in backend.events()]
    assert "GateReleased" in reasons


def test_an_operator_restart_keeps_what_was_right_and_repairs_what_it_missed(
        cluster: Cluster, namespace: str, tmp_path: Path, backend: Backend, db: Database
) -> None:
    db.migrate()
    backend.secret(db.url())
    backend.deployment(replicas=1)
    backend.schema()
    first = start_operator(cluster, namespace, tmp_path)
    try:
        wait_for("the gate open", lambda: backend.gate_states() == ["True"], timeout=30)
    finally:
        first.stop()
    first_pod = backend.pods()[0]
    before = backend.pod_condition(first_pod, "schemagate.io/backend-schema")

    backend.kubectl("scale", "deployment/backend", "--replicas=2")  # missed while down
    wait_for("a second pod", lambda: len(backend.pods()) == 2 or None)
    assert sorted(backend.gate_states()) == ["True", "absent"]

    second = start_operator(cluster, namespace, tmp_path)
    try:
        wait_for("both gates open", lambda: backend.gate_states() == ["True", "True"])
        wait_for("the Deployment Available", backend.available)
        again = backend.pod_condition(backend.get("pod", first_pod["metadata"]["name"]),
                                      "schemagate.io/backend-schema")
        assert again == before, "a restart must not touch a pod that was right"
        transitions = [e for e in backend.events() if e["reason"] == "Verified"]
        assert len(transitions) == 1, "a restart on a verified schema is not a transition"
    finally:
        stop_operator(cluster, namespace, second)


def test_metrics_describe_verifications_gates_and_errors(
        backend: Backend, db: Database, operator: local_operator.OperatorProcess) -> None:
    backend.secret(db.url())
    backend.deployment(replicas=1)
    backend.schema()
    backend.wait_reason("NoRevision")
    wait_for("the gate set", lambda: backend.gate_states() == ["False"])
    text = wait_for("metrics", lambda: (t := operator.metrics()) and
                    'schemagate_gate_pods{' in t and t)
    assert "schemagate_verification_duration_seconds_count" in text
    assert f'schemagate_gate_open{{name="backend-schema",namespace="{backend.namespace}"}} 0.0' \
        in text
    assert f'schemagate_schema_ready{{name="backend-schema",namespace="{backend.namespace}"}} 0.0' \
        in text
    assert 'schemagate_checks_total{reason="NoRevision"}' in text
    assert 'schemagate_check_failures_total{reason="unreachable"} 0.0' in text
    assert "schemagate_reconcile_errors" not in text, "waiting is not an error"
    assert "process_resident_memory_bytes" in text and "python_info" in text
