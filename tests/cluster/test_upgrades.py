"""Upgrades on the local control plane: a pod opens only on a check newer than it, for
the schema and revision it needs, whatever the apply order.

Each test watches the namespace's pods from before the change until the end
(`PodWatch`), so a pod Ready for a moment between two polls still fails the test. The
backend's next release (v2) needs the table `invoices` and revision 4b5c6d;
`annotated` says whether its pods also name that revision (schemagate.io/revision).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from localenv import operator as local_operator
from localenv.cluster import Cluster
from tests.cluster.operator_fixtures import start_operator, stop_operator
from tests.cluster.scenario import (
    IMAGE_MIGRATIONS,
    MIGRATIONS,
    TABLES,
    V1_REVISION,
    V2_REVISION,
    V2_TABLE,
    Backend,
    Database,
    PodWatch,
    after_checks,
)
from tests.cluster.test_migration_alembic import FIRST, SECOND, config_map
from tests.support.wait import wait_for

GATE = "schemagate.io/backend-schema"
V2_TABLES = [*TABLES, V2_TABLE]


def revisions(annotated: bool) -> tuple[str | None, str | None]:
    return (V1_REVISION, V2_REVISION) if annotated else (None, None)


def serving_v1(backend: Backend, db: Database, *, revision: str | None = None,
               replicas: int = 2, **spec: Any) -> set[str]:
    """v1 verified and Ready; returns its pods."""
    db.migrate()
    backend.secret(db.url())
    backend.schema(**spec)
    backend.deployment(replicas=replicas, revision=revision)
    wait_for("v1 Ready", lambda: backend.ready_states() == ["True"] * replicas, timeout=60)
    return {p["metadata"]["name"] for p in backend.pods()}


def held(backend: Backend, version: str, reasons: set[str], timeout: float = 30
         ) -> list[dict[str, Any]]:
    """Waits until every pod of `version` exists with its gate closed for one of
    `reasons` (so a check newer than the pod has answered it)."""
    seen: list[Any] = []

    def probe() -> list[dict[str, Any]] | None:
        pods = [p for p in backend.pods() if p["metadata"]["labels"].get("version") == version]
        gates = [backend.pod_condition(p, GATE) for p in pods]
        seen[:] = [(p["metadata"]["name"], g) for p, g in zip(pods, gates, strict=True)]
        return gates if pods and all(g.get("status") == "False" and g.get("reason") in reasons
                                     for g in gates) else None
    try:
        return wait_for(f"{version} pods held for {reasons}", probe, timeout=timeout)
    except AssertionError as exc:
        raise AssertionError(f"{exc}; gates: {seen}") from None


def rolled_out(backend: Backend, version: str, replicas: int = 2) -> None:
    def done() -> bool:
        pods = backend.pods()
        return len(pods) == replicas and all(
            p["metadata"]["labels"].get("version") == version for p in pods) and \
            backend.ready_states() == ["True"] * replicas
    wait_for(f"the rollout to {version}", done, timeout=90)


@pytest.mark.parametrize("annotated", [False, True], ids=["label-only", "annotated"])
def test_the_same_apply_upgrade_waits_for_its_migration(
        annotated: bool, backend: Backend, db: Database,
        operator: local_operator.OperatorProcess) -> None:
    v1_revision, v2_revision = revisions(annotated)
    v1 = serving_v1(backend, db, revision=v1_revision)
    with PodWatch(backend) as watch:
        # One apply, the Deployment first: as Helm and Argo CD send them.
        backend.apply_all(backend.deployment_manifest(version="v2", revision=v2_revision),
                          backend.schema_manifest(tables=V2_TABLES))
        gates = held(backend, "v2", {"StampedButMissing"})
        assert V2_TABLE in gates[0]["message"]
        assert not watch.ever_ready("v2"), "a v2 pod was Ready before its table existed"
        assert {p["metadata"]["name"] for p in backend.pods()} >= v1, "Hold keeps v1"

        db.migrate_v2()
        rolled_out(backend, "v2")


def test_a_deployment_applied_before_its_schema_waits_for_its_revision(
        backend: Backend, db: Database, operator: local_operator.OperatorProcess) -> None:
    serving_v1(backend, db, revision=V1_REVISION)
    with PodWatch(backend) as watch:
        backend.deployment(version="v2", revision=V2_REVISION)
        gates = held(backend, "v2", {"RevisionNotApplied"})
        assert V2_REVISION in gates[0]["message"] and V1_REVISION in gates[0]["message"]
        # The scenario: an Argo CD sync wave later (two checks of the database), the
        # DatabaseSchema.
        after_checks(operator.metrics, 2)
        backend.schema(tables=V2_TABLES)
        held(backend, "v2", {"StampedButMissing"})
        assert not watch.ever_ready("v2")

        db.migrate_v2()
        rolled_out(backend, "v2")
        assert backend.condition()["reason"] == "Verified"


@pytest.mark.parametrize("annotated", [False, True], ids=["label-only", "annotated"])
def test_a_schema_applied_first_holds_the_release_that_follows(
        annotated: bool, backend: Backend, db: Database,
        operator: local_operator.OperatorProcess) -> None:
    v1_revision, v2_revision = revisions(annotated)
    serving_v1(backend, db, revision=v1_revision)
    with PodWatch(backend) as watch:
        backend.schema(tables=V2_TABLES)
        backend.wait_reason("StampedButMissing")
        backend.deployment(version="v2", revision=v2_revision)
        held(backend, "v2", {"StampedButMissing"})
        assert not watch.ever_ready("v2")
        assert backend.ready_states().count("True") == 2, "Hold keeps v1 in service"

        db.migrate_v2()
        rolled_out(backend, "v2")


@pytest.mark.parametrize("policy", ["Hold", "Close"])
def test_a_verdict_older_than_the_pod_never_opens_it(
        policy: str, backend: Backend, db: Database,
        operator: local_operator.OperatorProcess) -> None:
    first = serving_v1(backend, db, replicas=1, verifyIntervalSeconds=300,
                       gate={"podSelector": {"matchLabels": {"app": "backend-schema"}},
                             "onDrift": policy})
    with PodWatch(backend) as watch:
        db.execute("DROP TABLE agent_executions")  # long before the next periodic check
        backend.kubectl("scale", "deployment/backend", "--replicas=2")
        held(backend, "v1", {"StampedButMissing"}) if policy == "Close" else wait_for(
            "the scaled-up pod held", lambda: sorted(backend.gate_states()) == ["False", "True"])
        backend.deployment(replicas=2, version="v2")  # a whole new ReplicaSet
        held(backend, "v2", {"StampedButMissing"})
        assert watch.ever_ready("v1") <= first, "only the pod open before the drift was Ready"
        assert not watch.ever_ready("v2")
        if policy == "Hold":
            assert backend.ready_states().count("True") == 1
        else:
            wait_for("every gate closed", lambda: "True" not in backend.gate_states())


NEXT = "/next"


def two_revision_project(backend: Backend
                         ) -> tuple[str, list[dict[str, Any]], list[dict[str, Any]]]:
    """The examples' migration and the next release's (4b5c6d: invoices), for a Job: a
    ConfigMap mounted at /next beside the image's project (env.py from the image).
    Returns the ini's path in the container, the volumes and the mounts."""
    ini = (MIGRATIONS / "alembic.ini").read_text().replace(
        "script_location = %(here)s", f"script_location = {IMAGE_MIGRATIONS}").replace(
        "version_locations = %(here)s/versions", f"version_locations = {NEXT}/versions")
    first = MIGRATIONS / "versions" / "3f2a9c_billing_and_agents.py"
    second = (
        'revision = "4b5c6d"\ndown_revision = "3f2a9c"\nbranch_labels = None\n'
        "depends_on = None\nfrom alembic import op\nimport sqlalchemy as sa\n\n"
        "def upgrade():\n"
        '    op.create_table("invoices", sa.Column("id", sa.Integer, primary_key=True))\n\n'
        "def downgrade():\n    pass\n")
    backend.apply({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "next"},
                   "data": {"alembic.ini": ini, "first.py": first.read_text(),
                            "second.py": second}})
    volumes = [{"name": "next", "configMap": {"name": "next", "items": [
        {"key": "alembic.ini", "path": "alembic.ini"},
        {"key": "first.py", "path": f"versions/{first.name}"},
        {"key": "second.py", "path": "versions/4b5c6d_invoices.py"}]}}]
    return f"{NEXT}/alembic.ini", volumes, [{"name": "next", "mountPath": NEXT}]


@pytest.mark.parametrize("annotated", [False, True], ids=["label-only", "annotated"])
def test_pods_of_a_release_wait_for_its_migration_job_to_end(
        annotated: bool, backend: Backend, db: Database,
        operator: local_operator.OperatorProcess) -> None:
    env = [{"name": "DATABASE_URL",
            "valueFrom": {"secretKeyRef": {"name": "backend-db", "key": "DATABASE_URL"}}}]
    v1_revision, v2_revision = revisions(annotated)
    serving_v1(backend, db, revision=v1_revision)
    ini, volumes, mounts = two_revision_project(backend)
    job = {"fromDeployment": {"name": "backend", "container": "app"},
           "command": ["sh", "-c", f"sleep 8 && alembic -c {ini} upgrade head"]}
    with PodWatch(backend) as watch:
        # The declared tables are unchanged: the old schema verifies while the Job runs.
        backend.apply_all(
            backend.deployment_manifest(version="v2", revision=v2_revision, env=env,
                                        volumes=volumes, mounts=mounts),
            backend.schema_manifest(migrations={"run": "Job", "job": job}))
        held(backend, "v2", {"MigrationRunning"})
        migration = backend.get("dbschema", "backend-schema")["status"]["migration"]
        assert migration["outcome"] == "Running"
        assert not watch.ever_ready("v2"), "a v2 pod opened while its migration ran"

        rolled_out(backend, "v2")
        status = backend.get("dbschema", "backend-schema")["status"]
        assert status["migration"]["outcome"] == "Applied"
        assert status["revision"]["current"] == [V2_REVISION]


def test_a_rollback_without_the_scripts_stays_closed_and_says_what_to_do(
        backend: Backend, db: Database, operator: local_operator.OperatorProcess) -> None:
    serving_v1(backend, db, revision=V1_REVISION)
    db.migrate_v2()
    wait_for("the operator to see 4b5c6d", lambda: backend.get("dbschema", "backend-schema")
             .get("status", {}).get("revision", {}).get("current") == [V2_REVISION])
    backend.deployment(version="v2", revision=V2_REVISION)
    rolled_out(backend, "v2")
    # Seen at 3f2a9c, then at 4b5c6d: a database downgraded from ahead of both to
    # 4b5c6d looks the same, so without the scripts nothing before it is trusted.
    revision = backend.get("dbschema", "backend-schema")["status"]["revision"]
    assert revision["history"] == [V2_REVISION]
    assert revision["historyOf"].endswith(f"/{db.name}")

    backend.deployment(version="v1", revision=V1_REVISION)  # the previous image, DB ahead
    gates = held(backend, "v1", {"RevisionNotApplied"})
    assert "cannot tell" in gates[0]["message"]
    assert "migrations.run: Alembic" in gates[0]["message"]


def test_a_revision_the_operator_cannot_order_stays_closed_and_says_what_to_do(
        backend: Backend, db: Database, operator: local_operator.OperatorProcess) -> None:
    db.migrate()
    db.migrate_v2()  # before schemagate ever looked: it never saw 3f2a9c
    backend.secret(db.url())
    backend.schema()
    backend.deployment(replicas=1, revision=V1_REVISION)
    gates = held(backend, "v1", {"RevisionNotApplied"})
    assert "cannot tell" in gates[0]["message"]
    assert "migrations.run: Alembic" in gates[0]["message"]
    assert backend.reported_ready_states() == ["False"]


@pytest.mark.parametrize("annotated", [False, True], ids=["label-only", "annotated"])
def test_an_operator_restart_mid_rollout_opens_nothing_early(
        annotated: bool, cluster: Cluster, namespace: str, tmp_path: Path, backend: Backend,
        db: Database) -> None:
    v1_revision, v2_revision = revisions(annotated)
    first = start_operator(cluster, namespace, tmp_path)
    try:
        serving_v1(backend, db, revision=v1_revision)
    finally:
        first.stop()
    with PodWatch(backend) as watch:
        backend.apply_all(backend.deployment_manifest(version="v2", revision=v2_revision),
                          backend.schema_manifest(tables=V2_TABLES))
        second = start_operator(cluster, namespace, tmp_path)
        try:
            held(backend, "v2", {"StampedButMissing"}, timeout=60)
        finally:
            second.stop()  # and again, with v2 waiting
        third = start_operator(cluster, namespace, tmp_path)
        try:
            held(backend, "v2", {"StampedButMissing"}, timeout=60)
            assert not watch.ever_ready("v2")
            db.migrate_v2()
            rolled_out(backend, "v2")
        finally:
            stop_operator(cluster, namespace, third)


def alembic_schema(backend: Backend, tables: list[str] = TABLES) -> dict[str, Any]:
    return backend.schema_manifest(tables=tables, migrations={
        "run": "Alembic", "alembic": {"configMapRef": {"name": "backend-migrations"}}})


def migrator_running(db: Database) -> bool:
    engine = sa.create_engine(db.pg.url())
    with engine.connect() as conn:
        rows = conn.execute(sa.text(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = "
            "'schemagate-migrator' AND state = 'active' AND datname = :db"),
            {"db": db.name}).scalar_one()
    engine.dispose()
    return bool(rows)


@pytest.mark.parametrize("annotated", [False, True], ids=["label-only", "annotated"])
def test_a_new_revision_in_the_config_map_holds_the_pods_that_need_it(
        annotated: bool, backend: Backend, db: Database,
        operator: local_operator.OperatorProcess) -> None:
    backend.secret(db.url())
    config_map(backend, {"3f2a9c_billing_and_agents.py": FIRST})
    backend.apply(alembic_schema(backend))
    backend.deployment(revision=V1_REVISION if annotated else None)
    wait_for("v1 Ready", lambda: backend.ready_states() == ["True", "True"], timeout=60)
    with PodWatch(backend) as watch:
        config_map(backend, {"3f2a9c_billing_and_agents.py": FIRST,
                             "7b1e44_invoices.py": SECOND % {"sleep": 8}})
        backend.apply_all(
            backend.deployment_manifest(version="v2", revision="7b1e44" if annotated else None),
            alembic_schema(backend, V2_TABLES))
        wait_for("the operator's migration under way", lambda: migrator_running(db),
                 timeout=30)
        wait_for("a v2 pod", lambda: any(p["metadata"]["labels"].get("version") == "v2"
                                         for p in backend.pods()))
        assert migrator_running(db), "the migration must still run for this to prove anything"
        assert not watch.ever_ready("v2"), "a v2 pod opened before its revision was applied"
        rolled_out(backend, "v2")
    assert backend.get("dbschema", "backend-schema")["status"]["revision"]["current"] == \
        ["7b1e44"]


def test_a_rollback_opens_by_the_scripts_graph_on_a_database_ahead(
        backend: Backend, db: Database, operator: local_operator.OperatorProcess) -> None:
    backend.secret(db.url())
    # Both revisions in one run: the operator never sees the database at 3f2a9c.
    config_map(backend, {"3f2a9c_billing_and_agents.py": FIRST,
                         "7b1e44_invoices.py": SECOND % {"sleep": 0}})
    backend.apply(alembic_schema(backend, V2_TABLES))
    backend.deployment(version="v2", revision="7b1e44")
    rolled_out(backend, "v2")
    status = backend.get("dbschema", "backend-schema")["status"]
    assert status["revision"]["history"] == ["7b1e44"]

    backend.deployment(version="v1", revision=V1_REVISION)  # the previous image
    rolled_out(backend, "v1")


@pytest.mark.parametrize("job_gone", [False, True], ids=["job-still-there", "job-deleted"])
def test_an_operator_restart_mid_job_says_what_happened_in_status_migration(
        job_gone: bool, cluster: Cluster, namespace: str, tmp_path: Path, backend: Backend,
        db: Database) -> None:
    env = [{"name": "DATABASE_URL",
            "valueFrom": {"secretKeyRef": {"name": "backend-db", "key": "DATABASE_URL"}}}]
    backend.secret(db.url())
    backend.deployment(replicas=1, env=env)
    job = {"fromDeployment": {"name": "backend", "container": "app"},
           "command": ["sh", "-c", f"sleep 6 && alembic -c {IMAGE_MIGRATIONS}/alembic.ini "
                                   "upgrade head"]}
    backend.schema(migrations={"run": "Job", "job": job})
    first = start_operator(cluster, namespace, tmp_path)
    try:
        wait_for("the Job running", lambda: backend.get("dbschema", "backend-schema")
                 .get("status", {}).get("migration", {}).get("outcome") == "Running",
                 timeout=60)
    finally:
        first.stop(kill=True)  # mid-Job, without a goodbye
    name = backend.get("dbschema", "backend-schema")["status"]["migration"]["job"]
    wait_for("the Job to end", lambda: backend.get("job", name).get("status", {})
             .get("succeeded") == 1, timeout=60)
    if job_gone:
        backend.kubectl("delete", "job", name, "--cascade=foreground", "--timeout=30s")
    second = start_operator(cluster, namespace, tmp_path)
    try:
        migration = wait_for("status.migration to say how the run ended", lambda: (
            m := backend.get("dbschema", "backend-schema")["status"]["migration"])
            .get("outcome") != "Running" and m, timeout=60)
        assert migration["outcome"] == "Applied" and migration["finishedAt"]
        if job_gone:
            assert "gone" in migration["message"] and name in migration["message"]
        backend.wait_reason("Verified")
        wait_for("the pod open", lambda: backend.ready_states() == ["True"])
    finally:
        stop_operator(cluster, namespace, second)
