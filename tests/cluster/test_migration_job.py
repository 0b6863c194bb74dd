"""`run: Job`: the node runs `alembic` in the Job's pod, a real container of the
backend's own image with its env; the operator judges the run by the database."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from localenv import operator as local_operator
from localenv.cluster import Cluster
from tests.cluster.operator_fixtures import start_operator, stop_operator
from tests.cluster.scenario import (
    BACKEND_IMAGE,
    IMAGE_MIGRATIONS,
    MIGRATIONS,
    TABLES,
    Backend,
    Database,
)
from tests.support.wait import wait_for

BACKEND_ENV = [{"name": "DATABASE_URL",
                "valueFrom": {"secretKeyRef": {"name": "backend-db", "key": "DATABASE_URL"}}}]


def alembic(ini: Path | str) -> list[str]:
    return ["alembic", "-c", str(ini), "upgrade", "head"]


def job_schema(backend: Backend, command: list[str], **extra: Any) -> None:
    backend.schema(migrations={"run": "Job", "job": {
        "fromDeployment": {"name": "backend", "container": "app"}, "command": command}},
        **extra)


def jobs(backend: Backend) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = json.loads(backend.kubectl("get", "jobs", "-o",
                                                             "json"))["items"]
    return items


def migration_status(backend: Backend) -> dict[str, Any]:
    status: dict[str, Any] = backend.get("dbschema", "backend-schema").get("status", {})
    return dict(status.get("migration") or {})


FAILING = "/failing"


def failing_revision(backend: Backend) -> tuple[str, list[dict[str, Any]], list[dict[str, Any]]]:
    """An Alembic project whose one revision creates a table, then fails: a ConfigMap
    mounted at /failing beside the image's project. Returns the ini's path in the
    container, the volumes and the mounts."""
    ini = (MIGRATIONS / "alembic.ini").read_text().replace(
        "script_location = %(here)s", f"script_location = {IMAGE_MIGRATIONS}").replace(
        "version_locations = %(here)s/versions", f"version_locations = {FAILING}/versions")
    revision = (
        'revision = "bad1"\ndown_revision = None\nbranch_labels = None\ndepends_on = None\n'
        "from alembic import op\n\n"
        "def upgrade():\n"
        '    op.execute("CREATE TABLE subscriptions (id int)")\n'
        '    op.execute("ALTER TABLE no_such_table ADD COLUMN x int")\n\n'
        "def downgrade():\n    pass\n")
    backend.apply({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "failing"},
                   "data": {"alembic.ini": ini, "bad1_broken.py": revision}})
    volumes = [{"name": "failing", "configMap": {"name": "failing", "items": [
        {"key": "alembic.ini", "path": "alembic.ini"},
        {"key": "bad1_broken.py", "path": "versions/bad1_broken.py"}]}}]
    return f"{FAILING}/alembic.ini", volumes, [{"name": "failing", "mountPath": FAILING}]


def test_a_job_that_applies_nothing_is_a_no_op_and_the_gate_holds(
        backend: Backend, db: Database, operator: local_operator.OperatorProcess) -> None:
    backend.secret(db.url())
    backend.deployment(replicas=1, env=BACKEND_ENV)
    job_schema(backend, alembic(f"{IMAGE_MIGRATIONS}/alembic-empty.ini"))

    noop = backend.wait_reason("MigrationNoOp", timeout=60)
    assert "unchanged" in noop["message"] and db.name in noop["message"]
    assert "NoRevision" in noop["message"]
    assert [j["status"].get("succeeded") for j in jobs(backend)] == [1]
    assert migration_status(backend)["outcome"] == "NoOp"
    assert backend.gate_states() == ["False"] and backend.reported_ready_states() == ["False"]
    assert not backend.available()


def test_a_job_that_reached_another_database_is_a_no_op_naming_it(
        backend: Backend, db: Database, operator: local_operator.OperatorProcess) -> None:
    other = f"{db.name}_other"
    db.admin(f'CREATE DATABASE "{other}" OWNER "{db.user}"')
    db.admin(f'REVOKE CONNECT ON DATABASE "{other}" FROM PUBLIC')  # other tests' roles
    backend.secret(db.url())
    # The migrating container's own URL points at another database on the same server.
    backend.deployment(replicas=1, env=[{"name": "DATABASE_URL",
                                         "value": db.url().rsplit("/", 1)[0] + f"/{other}"}])
    job_schema(backend, alembic(f"{IMAGE_MIGRATIONS}/alembic.ini"))

    noop = backend.wait_reason("MigrationNoOp", timeout=60)
    assert "TablesElsewhere" in noop["message"] and other in noop["message"]
    found = backend.get("dbschema", "backend-schema")["status"]["foundElsewhere"]
    assert {p["database"] for p in found} == {other}
    assert backend.gate_states() == ["False"]


def test_a_failing_revision_is_reported_and_changes_nothing(
        backend: Backend, db: Database, operator: local_operator.OperatorProcess) -> None:
    backend.secret(db.url())
    ini, volumes, mounts = failing_revision(backend)
    backend.deployment(replicas=1, env=BACKEND_ENV, volumes=volumes, mounts=mounts)
    job_schema(backend, alembic(ini))

    failed = backend.wait_reason("MigrationFailed", timeout=60)
    assert "no_such_table" in failed["message"]
    applied = backend.condition(type="MigrationsApplied")
    assert (applied["status"], applied["reason"]) == ("False", "MigrationFailed")
    status = backend.get("dbschema", "backend-schema")["status"]
    assert sorted(status["missingTables"]) == sorted(TABLES)  # rolled back as a whole
    assert backend.gate_states() == ["False"]


def test_a_correct_job_opens_the_gate_and_runs_once(
        cluster: Cluster, namespace: str, tmp_path: Path, backend: Backend, db: Database
) -> None:
    backend.secret(db.url())
    backend.deployment(replicas=2, env=BACKEND_ENV)
    job_schema(backend, alembic(f"{IMAGE_MIGRATIONS}/alembic.ini"))
    first = start_operator(cluster, namespace, tmp_path)
    try:
        backend.wait_reason("Verified", timeout=60)
        wait_for("the Deployment Available", backend.available, timeout=30)
        wait_for("the run judged Applied",
                 lambda: migration_status(backend).get("outcome") == "Applied")
    finally:
        first.process.terminate()
        first.process.wait(timeout=15)
    second = start_operator(cluster, namespace, tmp_path)
    try:
        backend.wait_reason("Verified")
        assert len(jobs(backend)) == 1, "a restart must not run the migration again"
        first_job = jobs(backend)[0]["metadata"]["name"]

        backend.kubectl("annotate", "dbschema/backend-schema", "schemagate.io/rerun=1")
        wait_for("a second Job after the rerun annotation", lambda: len(jobs(backend)) == 2,
                 timeout=30)
        # Job names end in a hash of what they run (paths included), so `kubectl get
        # jobs` orders the two by that hash: name the first one, never index the list.
        rerun_job = next(j["metadata"]["name"] for j in jobs(backend)
                         if j["metadata"]["name"] != first_job)
        wait_for("the rerun judged", lambda: migration_status(backend).get("outcome")
                 == "Applied" and migration_status(backend).get("job") == rerun_job, timeout=60)
    finally:
        stop_operator(cluster, namespace, second)


def test_the_backends_proxy_sidecar_comes_along_and_the_job_still_completes(
        backend: Backend, db: Database, operator: local_operator.OperatorProcess) -> None:
    backend.secret(db.url())
    backend.deployment(replicas=1, env=BACKEND_ENV)
    # A second container in the backend's pod, standing for a database proxy.
    backend.kubectl("patch", "deployment/backend", "--type=json", "-p", json.dumps([{
        "op": "add", "path": "/spec/template/spec/containers/-",
        "value": {"name": "db-proxy", "image": BACKEND_IMAGE, "imagePullPolicy": "Never",
                  "command": ["python", "-c", "import time; time.sleep(3600)"]}}]))
    job_schema(backend, alembic(f"{IMAGE_MIGRATIONS}/alembic.ini"))

    backend.wait_reason("Verified", timeout=60)
    wait_for("the Job Complete", lambda: [j["status"].get("succeeded") for j in jobs(backend)]
             == [1] or None, timeout=60)
    pod = json.loads(backend.kubectl("get", "pods", "-l",
                                     "schemagate.io/migration-of=backend-schema",
                                     "-o", "json"))["items"][0]
    sidecars = {c["name"]: c for c in pod["status"].get("initContainerStatuses", [])}
    assert "db-proxy" in sidecars, "the proxy runs beside the migration as a native sidecar"
    assert pod["spec"]["initContainers"][0]["restartPolicy"] == "Always"
    wait_for("the Deployment Available", backend.available, timeout=30)

