"""`schemagate migrate`, what the run: Alembic Job's pod runs, as a real process against
the real server: it applies the files of a directory, reports in one JSON object, and
whatever a revision does (raise, exit, sys.exit), nothing is applied and nothing
secret is reported."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import psycopg
import pytest

from schemagate.core.migration.alembic_job import EXIT_RETRY
from schemagate.job import upgrade
from tests.db.test_migrations import TWO_REVISIONS, revision, tables
from tests.support.database import Tenant

HOSTILE = {
    "raises": 'print(os.environ["DATABASE_URL"])\n'
              'raise RuntimeError("leaking " + os.environ["DATABASE_URL"])\n',
    "exits": 'op.create_table("half", sa.Column("id", sa.Integer))\nos._exit(1)\n',
    "sys-exit": 'op.create_table("half", sa.Column("id", sa.Integer))\nsys.exit(0)\n',
}


def migrate(tenant: Tenant, files: dict[str, str], tmp: Path, *extra: str
            ) -> tuple[int, dict[str, Any] | None, str]:
    scripts = tmp / "scripts"
    scripts.mkdir(exist_ok=True)
    for name, text in files.items():
        (scripts / name).write_text(text)
    (scripts / "..data").mkdir(exist_ok=True)  # the kubelet's own entry in a ConfigMap volume
    report = tmp / "termination-log"
    result = subprocess.run(
        [sys.executable, "-m", "schemagate", "migrate", "--scripts-dir", str(scripts),
         "--scratch-dir", str(tmp), "--schema", "app", "--version-table-schema", "public",
         "--report-file", str(report), *extra],
        env={**os.environ, "DATABASE_URL": tenant.url()}, capture_output=True, text=True,
        timeout=60)
    said = json.loads(report.read_text()) if report.exists() else None
    return result.returncode, said, result.stdout + result.stderr


@pytest.fixture
def app(tenant: Tenant) -> Tenant:
    tenant.admin(f"CREATE SCHEMA app AUTHORIZATION {tenant.role}")
    return tenant


def test_applies_once_then_finds_nothing_to_run(app: Tenant, tmp_path: Path) -> None:
    code, said, _ = migrate(app, TWO_REVISIONS, tmp_path)
    assert code == 0 and said is not None and said["outcome"] == "Applied"
    assert "now at b2" in said["message"]
    assert {("app", "accounts"), ("app", "ledger")} <= tables(app)
    code, said, _ = migrate(app, TWO_REVISIONS, tmp_path)
    assert code == 0 and said is not None and said["outcome"] == "AlreadyApplied"


@pytest.mark.parametrize("body", sorted(HOSTILE))
def test_a_revision_that_raises_or_exits_applies_nothing_and_leaks_nothing(
        app: Tenant, tmp_path: Path, body: str) -> None:
    files = {**TWO_REVISIONS, "c3_hostile.py": "import os, sys\n" + revision(
        "c3", "b2", HOSTILE[body])}
    code, said, output = migrate(app, files, tmp_path)
    assert code == 1
    assert app.password not in output
    if body == "exits":
        assert said is None  # the process died: the kubelet keeps the output's tail
    else:
        assert said is not None and said["outcome"] == "Failed"
        assert app.password not in json.dumps(said)
        assert "nothing was applied" in said["message"]
    assert ("app", "accounts") not in tables(app) and ("app", "half") not in tables(app)


def test_a_busy_lock_asks_for_another_attempt(app: Tenant, tmp_path: Path) -> None:
    key = upgrade.lock_key("public", "alembic_version")
    with psycopg.connect(app.server.url(database=app.database, driver="postgresql"),
                         autocommit=True) as holder:
        holder.execute("SELECT pg_advisory_lock(%s)", (key,))
        code, said, _ = migrate(app, TWO_REVISIONS, tmp_path, "--lock-wait-seconds", "0.5")
    assert code == EXIT_RETRY
    assert said is not None and "held by" in said["message"]


def test_without_the_url_it_says_where_it_looks(app: Tenant, tmp_path: Path) -> None:
    code, said, _ = migrate(app, TWO_REVISIONS, tmp_path, "--url-env", "NOT_SET")
    assert code == 2 and said is not None and "NOT_SET is not set" in said["message"]
