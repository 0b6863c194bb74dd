"""The demo backend (localenv/backend.py, the CMD of schemagate/backend:dev) refuses to
start without its tables, as the incident's backend did: exit 3, naming what is missing
where its own connection looks."""

from __future__ import annotations

import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

from tests.db.conftest import Tenant

BACKEND = Path(__file__).resolve().parents[2] / "localenv" / "backend.py"
TABLES = ("credit_transactions", "agent_executions", "subscriptions")


def start(tenant: Tenant, tmp_path: Path) -> subprocess.Popen[str]:
    """`python /app/backend.py` as the image runs it: alone in its directory (beside
    localenv/operator.py it would shadow the standard library's `operator`)."""
    app = tmp_path / "app"
    app.mkdir()
    shutil.copy2(BACKEND, app / "backend.py")
    return subprocess.Popen([sys.executable, str(app / "backend.py"), "--port", "0"],
                            env={"DATABASE_URL": tenant.url(scheme="postgresql"),
                                 "PATH": "/usr/bin:/bin"},
                            stderr=subprocess.PIPE, text=True)


def test_an_empty_database_stops_the_backend_with_exit_3_naming_every_table(
        tenant: Tenant, tmp_path: Path) -> None:
    backend = start(tenant, tmp_path)
    _, said = backend.communicate(timeout=60)

    assert backend.returncode == 3
    assert "DeterministicStartupError: tables missing: " + ", ".join(TABLES) in said
    assert f"database {tenant.database}" in said and f"as {tenant.role}" in said
    assert tenant.password not in said


def test_a_table_outside_the_search_path_is_missing_to_the_backend(
        tenant: Tenant, tmp_path: Path) -> None:
    tenant.admin(f"CREATE SCHEMA migrator AUTHORIZATION {tenant.role}")
    for name in TABLES:
        schema = "migrator" if name == "credit_transactions" else "public"
        tenant.admin(f"CREATE TABLE {schema}.{name} (id bigint)")
    backend = start(tenant, tmp_path)
    _, said = backend.communicate(timeout=60)

    assert backend.returncode == 3
    assert "tables missing: credit_transactions (" in said


def test_with_its_tables_the_backend_serves(tenant: Tenant, tmp_path: Path) -> None:
    for name in TABLES:
        tenant.admin(f"CREATE TABLE {name} (id bigint)")
    backend = start(tenant, tmp_path)
    try:
        assert backend.stderr is not None
        said = [backend.stderr.readline() for _ in range(2)]
        assert said[0].startswith("backend: tables present: "), said
        port = int(said[1].removeprefix("backend: serving on port ").strip())
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as answer:
            assert answer.read() == b"backend: serving\n"
    finally:
        backend.terminate()
        backend.wait(timeout=10)
