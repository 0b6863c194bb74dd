"""The largest spec the CRD admits (10,000 tables of 63 characters) can be created,
verified and deleted, and a TablesElsewhere of megabytes stays a small status."""

from __future__ import annotations

import json
import time

import yaml

from tests.chaos.conftest import Backend, Database, Operator, superuser_sql
from tests.cluster.scenario import IMAGE_MIGRATIONS
from tests.cluster.test_migration_job import BACKEND_ENV, alembic, jobs
from tests.support.wait import wait_for

TABLES = [f"t{i:05d}_".ljust(63, "x") for i in range(10_000)]
CREATE_MANY = """
DO $$ BEGIN
  FOR i IN 0..9999 LOOP
    EXECUTE format('CREATE TABLE %I.%I ()', '{schema}',
                   rpad('t' || lpad(i::text, 5, '0') || '_', 63, 'x'));
  END LOOP;
END $$
"""


STAMP_MIGRATOR = ("CREATE TABLE migrator.alembic_version (version_num varchar(32) PRIMARY KEY); "
                  "INSERT INTO migrator.alembic_version VALUES ('3f2a9c')")


def create_tables(db: Database, schema: str, database: str | None = None) -> None:
    """10,000 tables of 63 characters in `schema`, owned by the backend's role."""
    sql = f'CREATE SCHEMA IF NOT EXISTS {schema} AUTHORIZATION "{db.user}";' \
        if schema != "public" else ""
    superuser_sql(db, sql + f'SET ROLE "{db.user}";' + CREATE_MANY.replace("{schema}", schema),
                  database=database)


def test_the_largest_spec_is_created_verified_and_deleted_and_a_huge_elsewhere_stays_small(
        backend: Backend, db: Database, chaos_operator: Operator) -> None:
    # Where a migration that ran with the wrong search_path, and against the wrong
    # database, put all 10,000 tables: 20,000 places, about 4 MB of status unbounded.
    create_tables(db, "migrator")
    other = f"{db.name}_old"
    db.admin(f'CREATE DATABASE "{other}" OWNER "{db.user}"')
    db.admin(f'REVOKE CONNECT ON DATABASE "{other}" FROM PUBLIC')
    create_tables(db, "public", database=other)
    # Stamped where the tables went: the version table moves with them below.
    superuser_sql(db, f'SET ROLE "{db.user}"; ' + STAMP_MIGRATOR)
    backend.secret(db.url())
    manifest = backend.schema_manifest(tables=TABLES)
    size = len(json.dumps(manifest))
    assert size > 600_000
    # Not `kubectl apply`: its own last-applied annotation would pass 256 KiB by itself.
    backend.kubectl("create", "-f", "-", input=yaml.safe_dump(manifest))
    chaos_operator.start()

    condition = backend.wait_reason("TablesElsewhere", timeout=60)
    status = backend.get("dbschema", "backend-schema")["status"]
    assert len(json.dumps(status)) < 64 * 1024
    assert status["missingSummary"].startswith("10000 tables: ")
    assert len(status["missingTables"]) <= 100 and len(status["foundElsewhere"]) <= 100
    assert "schema migrator" in condition["message"] and other in condition["message"]
    assert "and 9,990 more" in condition["message"]
    annotations = backend.get("dbschema", "backend-schema")["metadata"]["annotations"]
    assert sum(len(k) + len(v) for k, v in annotations.items()) < 4096

    # The migration rerun into the right place: verified, all 10,000.
    superuser_sql(db, 'DROP SCHEMA public CASCADE; ALTER SCHEMA migrator RENAME TO public')
    verified = backend.wait_reason("Verified", timeout=60)
    assert "all 10,000 declared tables are present" in verified["message"]

    started = time.monotonic()
    backend.kubectl("delete", "dbschema", "backend-schema", "--timeout=60s")
    wait_for("the DatabaseSchema to be gone", lambda: "NotFound" in backend.kubectl(
        "get", "dbschema", "backend-schema", check=False), timeout=30)
    assert time.monotonic() - started < 30
    assert "HTTP response headers" not in chaos_operator.log()


def test_a_job_mode_schema_with_the_longest_name_gets_a_status_and_its_job(
        backend: Backend, db: Database, chaos_operator: Operator) -> None:
    # The longest name the CRD admits: its Job, `<name>-migrate-<digest>`, would not be.
    name = "a-backend-schema-whose-name-is-as-long-as-the-crd-admits".ljust(63, "x")
    assert len(name) == 63
    backend.secret(db.url())
    backend.deployment(replicas=1, env=BACKEND_ENV, opt_in=False)
    backend.schema(name, migrations={"run": "Job", "job": {
        "fromDeployment": {"name": "backend", "container": "app"},
        "command": alembic(f"{IMAGE_MIGRATIONS}/alembic.ini")}})
    chaos_operator.start()
    refused = backend.wait_reason("InvalidSpec", name=name, timeout=60)
    consent = f"schemagate.io/clone-for={name}"
    assert f"kubectl annotate -n {backend.namespace} deployment/backend {consent}" in \
        refused["message"]  # an annotation takes the whole name

    backend.kubectl("annotate", "deployment/backend", consent)
    backend.wait_reason("Verified", name=name, timeout=120)
    [job] = jobs(backend)
    assert len(job["metadata"]["name"]) <= 63
    # The tables are there once Alembic commits; the Job ends a moment after that.
    status = wait_for("the Job's end recorded", lambda: (s := backend.get(
        "dbschema", name)["status"])["migration"]["outcome"] != "Running" and s, timeout=60)
    assert status["migration"]["outcome"] == "Applied"
    log = chaos_operator.log()
    assert "HTTP response headers" not in log and "HTTP response body" not in log
