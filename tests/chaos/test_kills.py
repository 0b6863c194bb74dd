"""SIGKILL in every phase of the work: while a check waits on the database, the moment a
migration Job is created, while it runs, and while gates open. The next operator picks
up where the last one died, and never reports what did not happen."""

from __future__ import annotations

import time

from tests.chaos.conftest import Backend, Database, Operator, healthy, through
from tests.cluster.scenario import IMAGE_MIGRATIONS, TABLES
from tests.cluster.test_migration_job import BACKEND_ENV, alembic, job_schema, jobs
from tests.stalling import StallingProxy
from tests.support.wait import wait_for


def test_killed_while_checking(backend: Backend, db: Database, path: StallingProxy,
                               chaos_operator: Operator) -> None:
    healthy(backend, db, TABLES)
    backend.secret(through(db, path))
    path.freeze()  # every check hangs in the database
    backend.schema()
    backend.deployment(replicas=1)
    chaos_operator.start()
    wait_for("a check in flight, stuck in the database", lambda: path.stalled,
             lambda n: n >= 1, timeout=30)
    chaos_operator.kill()

    path.thaw()
    restarted = time.monotonic()
    chaos_operator.start()
    wait_for("the gate after the restart", lambda: backend.gate_states() == ["True"],
             timeout=30)
    assert backend.condition()["reason"] == "Verified"
    assert time.monotonic() - restarted < 15


def test_killed_the_moment_the_job_is_created_a_no_op_is_still_a_no_op(
        backend: Backend, db: Database, chaos_operator: Operator) -> None:
    backend.secret(db.url())
    backend.deployment(replicas=1, env=BACKEND_ENV)
    job_schema(backend, alembic(f"{IMAGE_MIGRATIONS}/alembic-empty.ini"))
    chaos_operator.start()
    wait_for("the migration Job", lambda: jobs(backend), timeout=60, interval=0.02)
    chaos_operator.kill()  # before it could write status.migration

    chaos_operator.start()
    noop = backend.wait_reason("MigrationNoOp", timeout=90)
    assert "unchanged" in noop["message"]
    migration = backend.get("dbschema", "backend-schema")["status"]["migration"]
    assert migration["outcome"] == "NoOp", migration
    applied = backend.condition(type="MigrationsApplied")
    assert applied["status"] == "False" and applied["reason"] == "MigrationNoOp"
    assert backend.gate_states() == ["False"]
    assert len(jobs(backend)) == 1


def test_killed_while_the_job_runs(backend: Backend, db: Database,
                                   chaos_operator: Operator) -> None:
    backend.secret(db.url())
    backend.deployment(replicas=1, env=BACKEND_ENV)
    upgrade = " ".join(alembic(f"{IMAGE_MIGRATIONS}/alembic.ini"))
    job_schema(backend, ["sh", "-c", f"sleep 6 && {upgrade}"])
    chaos_operator.start()
    wait_for("the migration Job's pod to run", lambda: "Running" in backend.kubectl(
        "get", "pods", "-l", "schemagate.io/migration-of=backend-schema",
        "-o", "jsonpath={.items[*].status.phase}"), timeout=90)
    chaos_operator.kill()

    chaos_operator.start()
    backend.wait_reason("Verified", timeout=90)
    # The tables are there once Alembic commits; the Job ends a moment after that.
    migration = wait_for("the Job's end recorded", lambda: (m := backend.get(
        "dbschema", "backend-schema")["status"]["migration"])["outcome"] != "Running" and m,
        timeout=60)
    assert migration["outcome"] == "Applied", migration
    assert len(jobs(backend)) == 1, "a restart must not run the migration again"
    wait_for("the gate", lambda: backend.gate_states() == ["True"], timeout=30)


def test_killed_while_gates_open(backend: Backend, db: Database,
                                 chaos_operator: Operator) -> None:
    backend.secret(db.url())
    backend.schema()
    backend.deployment(replicas=3)
    chaos_operator.start()
    wait_for("three closed gates", lambda: backend.gate_states() == ["False"] * 3, timeout=90)
    healthy(backend, db, TABLES)
    wait_for("the first gate to open", lambda: "True" in backend.gate_states(), timeout=30,
             interval=0.02)
    chaos_operator.kill()

    restarted = time.monotonic()
    chaos_operator.start()
    wait_for("every gate", lambda: backend.gate_states() == ["True"] * 3, timeout=30)
    assert time.monotonic() - restarted < 10
