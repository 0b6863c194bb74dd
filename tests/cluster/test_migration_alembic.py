"""`run: Alembic`: the operator runs the revision files of a ConfigMap itself."""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from localenv import operator as local_operator
from localenv.cluster import Cluster
from tests.cluster.operator_fixtures import start_operator, stop_operator
from tests.cluster.scenario import MIGRATIONS, Backend, Database, wait_for

FIRST = (MIGRATIONS / "versions" / "3f2a9c_billing_and_agents.py").read_text()
SECOND = '''"""invoices"""
import sqlalchemy as sa
from alembic import op

revision = "7b1e44"
down_revision = "3f2a9c"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("SELECT pg_sleep(%(sleep)s)")
    op.create_table("invoices", sa.Column("id", sa.BigInteger, primary_key=True))


def downgrade() -> None:
    op.drop_table("invoices")
'''


def config_map(backend: Backend, files: dict[str, str], name: str = "backend-migrations"
               ) -> None:
    backend.apply({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name},
                   "data": files})


def alembic_schema(backend: Backend, name: str = "backend-schema",
                   tables: list[str] | None = None) -> None:
    extra: dict[str, Any] = {"tables": tables} if tables else {}
    backend.schema(name=name, migrations={"run": "Alembic", "alembic": {
        "configMapRef": {"name": "backend-migrations"}}}, **extra)


def migration(backend: Backend, name: str = "backend-schema") -> dict[str, Any]:
    return dict(backend.get("dbschema", name).get("status", {}).get("migration") or {})


def test_scripts_from_a_config_map_are_applied_once_and_updates_follow(
        backend: Backend, db: Database, operator: local_operator.OperatorProcess) -> None:
    backend.secret(db.url())
    config_map(backend, {"3f2a9c_billing_and_agents.py": FIRST})
    alembic_schema(backend)
    verified = backend.wait_reason("Verified", timeout=60)
    assert "3f2a9c" in verified["message"]
    assert migration(backend)["outcome"] == "Applied"
    assert backend.get("dbschema", "backend-schema")["status"]["revision"]["expected"] == \
        ["3f2a9c"]

    config_map(backend, {"3f2a9c_billing_and_agents.py": FIRST,
                         "7b1e44_invoices.py": SECOND % {"sleep": 0}})
    wait_for("the new head applied",
             lambda: backend.get("dbschema", "backend-schema")["status"]["revision"][
                 "current"] == ["7b1e44"], timeout=30)
    assert migration(backend)["heads"] == ["7b1e44"]


def test_an_empty_config_map_is_invalid_never_a_success(
        backend: Backend, db: Database, operator: local_operator.OperatorProcess) -> None:
    backend.secret(db.url())
    config_map(backend, {"README": "no revisions here"})
    alembic_schema(backend)
    invalid = backend.wait_reason("InvalidSpec")
    assert "no revision files" in invalid["message"]
    assert backend.condition(type="Stalled")["status"] == "True"


def test_four_schemas_on_one_database_migrate_it_once(
        backend: Backend, db: Database, operator: local_operator.OperatorProcess) -> None:
    backend.secret(db.url())
    config_map(backend, {"3f2a9c_billing_and_agents.py": FIRST,
                         "7b1e44_invoices.py": SECOND % {"sleep": 1}})
    names = [f"schema-{i}" for i in range(4)]
    for name in names:
        alembic_schema(backend, name=name)
    for name in names:
        backend.wait_reason("Verified", name=name, timeout=90)
    outcomes = sorted(migration(backend, name).get("outcome", "") for name in names)
    assert outcomes.count("Applied") == 1, outcomes
    assert set(outcomes) <= {"Applied", "AlreadyApplied"}, outcomes
    for name in names:
        assert backend.condition(name, "MigrationsApplied")["status"] == "True"


def test_a_migrator_killed_mid_statement_leaves_the_database_as_before(
        cluster: Cluster, namespace: str, tmp_path: Path, backend: Backend, db: Database
) -> None:
    db.migrate()  # at 3f2a9c; the next revision sleeps 30 s before creating its table
    backend.secret(db.url())
    config_map(backend, {"3f2a9c_billing_and_agents.py": FIRST,
                         "7b1e44_invoices.py": SECOND % {"sleep": 30}})
    alembic_schema(backend)
    first = start_operator(cluster, namespace, tmp_path)
    engine = sa.create_engine(db.pg.url(database=db.name), poolclass=sa.pool.NullPool)

    def migrators() -> int:
        with engine.connect() as conn:
            return int(conn.execute(sa.text(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = "
                "'schemagate-migrator' AND datname = :db"), {"db": db.name}).scalar_one())

    try:
        wait_for("the migrator mid-statement", lambda: migrators() == 1 or None, timeout=60)
        first.process.send_signal(signal.SIGKILL)
        first.process.wait(timeout=10)
        killed = time.monotonic()
        wait_for("the server to drop the dead migrator", lambda: migrators() == 0, timeout=10)
        released_after = time.monotonic() - killed
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT version_num FROM alembic_version")
                                ).scalars().all() == ["3f2a9c"]
            assert conn.execute(sa.text("SELECT to_regclass('invoices')")).scalar() is None
        assert released_after < 5
    finally:
        engine.dispose()
        if first.process.poll() is None:
            first.stop(kill=True)

    config_map(backend, {"3f2a9c_billing_and_agents.py": FIRST,
                         "7b1e44_invoices.py": SECOND % {"sleep": 0}})
    second = start_operator(cluster, namespace, tmp_path)
    try:
        wait_for("the next attempt applied",
                 lambda: backend.get("dbschema", "backend-schema").get("status", {}).get(
                     "revision", {}).get("current") == ["7b1e44"], timeout=60)
    finally:
        stop_operator(cluster, namespace, second)
