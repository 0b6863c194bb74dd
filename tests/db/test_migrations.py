"""`schemagate.job` against the real server: Alembic applied once, into the
declared schema, as a whole or not at all, by one migrator at a time, and a killed
migrator leaves nothing behind. Migrators in other processes are real processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest

from schemagate.core.revisions.keys import InvalidScripts, NoScripts
from schemagate.core.wire.reasons import Reason
from schemagate.job import upgrade
from schemagate.job.scripts import scripts_from_files
from schemagate.postgres import connect
from tests.support.database import Tenant
from tests.support.wait import wait_for

OPTIONS: dict[str, Any] = {"schema": "app", "version_table": "schema_version",
                           "version_table_schema": "public"}
KEY = upgrade.lock_key("public", "schema_version")

# One migrator in its own process; the URL travels in the environment, as in a Pod.
MIGRATOR = """
import json, os, sys
from pathlib import Path
from schemagate.job import upgrade
from schemagate.job.scripts import scripts_from_files
job = json.loads(sys.argv[1])
scripts = scripts_from_files(job["files"], Path(job["workdir"]))
try:
    result = upgrade.upgrade(os.environ["DATABASE_URL"], scripts, **job["options"])
except Exception as exc:
    print(json.dumps({"error": type(exc).__name__, "message": str(exc)}))
    sys.exit(1)
print(json.dumps({"applied": result.applied, "message": result.message}))
"""


def revision(rev: str, down: str | None, body: str) -> str:
    return textwrap.dedent(f'''\
        """{rev}"""
        import sqlalchemy as sa
        from alembic import op

        revision: str = {rev!r}
        down_revision = {down!r}
        branch_labels = None
        depends_on = None


        def upgrade() -> None:
        ''') + textwrap.indent(textwrap.dedent(body), "    ")


TWO_REVISIONS = {
    "a1_accounts.py": revision("a1", None, """\
        op.create_table("accounts", sa.Column("id", sa.BigInteger, primary_key=True))
        """),
    "b2_ledger.py": revision("b2", "a1", """\
        op.create_table("ledger", sa.Column("id", sa.BigInteger, primary_key=True),
                        sa.Column("account_id", sa.BigInteger, sa.ForeignKey("accounts.id")))
        """),
}


def rows(tenant: Tenant, sql: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(tenant.server.url(database=tenant.database, driver="postgresql"),
                         autocommit=True) as conn:
        return conn.execute(sql.encode()).fetchall()


def tables(tenant: Tenant) -> set[tuple[str, str]]:
    return set(rows(tenant, "SELECT schemaname::text, tablename::text FROM pg_tables "
                            "WHERE schemaname NOT IN ('pg_catalog', 'information_schema')"))


@pytest.fixture
def trap(tenant: Tenant) -> Tenant:
    """Schema `app` for the tables, and the search_path trap: a schema named like the
    role, first in the default `"$user", public`."""
    tenant.admin(f"CREATE SCHEMA app AUTHORIZATION {tenant.role}; "
                 f"CREATE SCHEMA {tenant.role} AUTHORIZATION {tenant.role}")
    return tenant


def start_migrator(tenant: Tenant, files: dict[str, str], workdir: Path,
                   **options: Any) -> subprocess.Popen[str]:
    workdir.mkdir(parents=True, exist_ok=True)
    job = {"files": files, "workdir": str(workdir), "options": {**OPTIONS, **options}}
    return subprocess.Popen([sys.executable, "-c", MIGRATOR, json.dumps(job)],
                            env={**os.environ, "DATABASE_URL": tenant.url()},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


# Scripts.

def test_scripts_are_read_through_alembic(tmp_path: Path) -> None:
    scripts = scripts_from_files({**TWO_REVISIONS, "README.md": "notes"}, tmp_path)

    assert scripts.heads == frozenset({"b2"})
    assert scripts.revisions == 2
    assert scripts.graph == {"a1": frozenset(), "b2": frozenset({"a1"})}  # what gates order by
    assert scripts.ignored == ("README.md",)
    assert sorted(p.name for p in (scripts.directory / "versions").glob("*.py")) == [
        "a1_accounts.py", "b2_ledger.py"]


@pytest.mark.parametrize("files", [{}, {"README.md": "no revision here"}, {"__init__.py": ""}])
def test_no_revision_at_all_is_never_a_success(tmp_path: Path, files: dict[str, str]) -> None:
    with pytest.raises(NoScripts):
        scripts_from_files(files, tmp_path)


@pytest.mark.parametrize(("broken", "says"), [
    ("def upgrade(:\n", "line"),
    (revision("b2", "zz", "pass\n"), "zz"),
    (revision("b2", "b2", "pass\n"), "b2"),
    (revision("b2", "a1", "pass\n") + "import no_such_module\n", "No module named"),
    ("down_revision = 'a1'\n", "revision"),
])
def test_files_alembic_cannot_load_are_named(tmp_path: Path, broken: str, says: str) -> None:
    files = {"a1_accounts.py": TWO_REVISIONS["a1_accounts.py"], "b2_broken.py": broken}
    with pytest.raises(InvalidScripts, match=says) as caught:
        scripts_from_files(files, tmp_path)
    assert "b2_broken.py" in str(caught.value)


def test_a_revision_declared_twice_is_invalid(tmp_path: Path) -> None:
    files = {**TWO_REVISIONS, "b2_again.py": revision("b2", "a1", "pass\n")}
    with pytest.raises(InvalidScripts, match="more than once"):
        scripts_from_files(files, tmp_path)


# Upgrade.

def test_upgrade_lands_in_the_declared_schema_and_runs_once(trap: Tenant, tmp_path: Path) -> None:
    scripts = scripts_from_files(TWO_REVISIONS, tmp_path)

    result = upgrade.upgrade(trap.url(), scripts, **OPTIONS)

    assert result.applied
    assert (result.before, result.after) == (frozenset(), frozenset({"b2"}))
    assert "a1, b2" in result.message
    assert tables(trap) == {("app", "accounts"), ("app", "ledger"),
                            ("public", "schema_version")}
    assert rows(trap, "SELECT version_num FROM public.schema_version") == [("b2",)]

    again = upgrade.upgrade(trap.url(), scripts, **OPTIONS)
    assert not again.applied
    assert again.before == again.after == frozenset({"b2"})
    assert "already at b2" in again.message


def test_a_new_revision_is_applied_on_top(trap: Tenant, tmp_path: Path) -> None:
    upgrade.upgrade(trap.url(), scripts_from_files(
        {"a1_accounts.py": TWO_REVISIONS["a1_accounts.py"]}, tmp_path), **OPTIONS)

    result = upgrade.upgrade(
        trap.url(), scripts_from_files(TWO_REVISIONS, tmp_path), **OPTIONS)

    assert result.applied and (result.before, result.after) == ({"a1"}, {"b2"})
    assert ("app", "ledger") in tables(trap)


def test_a_database_ahead_of_the_scripts_fails_and_says_why(trap: Tenant,
                                                             tmp_path: Path) -> None:
    upgrade.upgrade(trap.url(), scripts_from_files(TWO_REVISIONS, tmp_path),
                       **OPTIONS)
    older = scripts_from_files(
        {"a1_accounts.py": TWO_REVISIONS["a1_accounts.py"]}, tmp_path)

    with pytest.raises(upgrade.MigrationFailed, match="newer release"):
        upgrade.upgrade(trap.url(), older, **OPTIONS)
    assert rows(trap, "SELECT version_num FROM public.schema_version") == [("b2",)]


@pytest.mark.parametrize(("body", "error"), [
    ('op.execute("INSERT INTO nowhere VALUES (1)")\n', 'relation "nowhere" does not exist'),
    ('raise RuntimeError("the data is not as expected")\n',
     "RuntimeError: the data is not as expected"),
])
def test_a_failing_revision_rolls_back_the_whole_run(trap: Tenant, tmp_path: Path, body: str,
                                                     error: str) -> None:
    files = {"a1_accounts.py": TWO_REVISIONS["a1_accounts.py"],
             "b2_fails.py": revision("b2", "a1", body)}
    scripts = scripts_from_files(files, tmp_path)

    with pytest.raises(upgrade.MigrationFailed) as caught:
        upgrade.upgrade(trap.url(), scripts, **OPTIONS)

    assert error in caught.value.message
    assert caught.value.message.startswith("b2_fails.py: ")
    assert "rolled back" in caught.value.message
    assert not caught.value.retryable
    assert tables(trap) == set()  # neither a1's table nor the version table


def test_a_table_lock_not_granted_in_time_fails_retryably(trap: Tenant, tmp_path: Path) -> None:
    first = {"a1_accounts.py": TWO_REVISIONS["a1_accounts.py"]}
    upgrade.upgrade(trap.url(), scripts_from_files(first, tmp_path), **OPTIONS)
    scripts = scripts_from_files({**first, "b2_plan.py": revision("b2", "a1", """\
        op.add_column("accounts", sa.Column("plan", sa.Text))
        """)}, tmp_path)
    with psycopg.connect(trap.url(scheme="postgresql")) as backend:
        backend.execute("SELECT * FROM app.accounts")  # a long transaction of the backend
        started = time.monotonic()
        with pytest.raises(upgrade.MigrationFailed) as caught:
            upgrade.upgrade(trap.url(), scripts, lock_timeout="500ms", **OPTIONS)
    assert time.monotonic() - started < 5
    assert caught.value.retryable
    assert "lock_timeout 500ms" in caught.value.message
    assert rows(trap, "SELECT version_num FROM public.schema_version") == [("a1",)]


def test_four_migrators_at_once_apply_once(trap: Tenant, tmp_path: Path) -> None:
    trap.admin(f"CREATE TABLE app.runs (at timestamptz DEFAULT now()); "
               f"GRANT INSERT ON app.runs TO {trap.role}")
    files = {"a1_slow.py": revision("a1", None, """\
        op.execute("INSERT INTO runs DEFAULT VALUES")
        op.execute("SELECT pg_sleep(1)")
        op.create_table("accounts", sa.Column("id", sa.BigInteger, primary_key=True))
        """)}
    migrators = [start_migrator(trap, files, tmp_path / str(i), lock_wait_seconds=60)
                 for i in range(4)]
    outcomes = [json.loads(m.communicate(timeout=120)[0]) for m in migrators]

    assert [o.get("error") for o in outcomes] == [None] * 4, outcomes
    assert sorted(o["applied"] for o in outcomes) == [False, False, False, True]
    assert sum("already at a1" in o["message"] for o in outcomes) == 3
    assert rows(trap, "SELECT count(*) FROM app.runs") == [(1,)]


def test_a_migrator_killed_mid_statement_frees_the_lock_and_leaves_nothing(
        trap: Tenant, tmp_path: Path) -> None:
    body = """\
        op.create_table("accounts", sa.Column("id", sa.BigInteger, primary_key=True))
        op.execute("SELECT pg_sleep({seconds})")
        """
    migrator = start_migrator(trap, {"a1_slow.py": revision("a1", None, body.format(
        seconds=30))}, tmp_path / "killed")
    try:
        wait_for("the migrator holding the lock inside pg_sleep", lambda: rows(trap, f"""
            SELECT FROM pg_stat_activity a JOIN pg_locks l ON l.pid = a.pid
            WHERE a.application_name = 'schemagate-migrator' AND a.query LIKE '%pg_sleep%'
              AND l.locktype = 'advisory' AND l.granted
              AND ((l.classid::int8 << 32) | l.objid::int8) = {KEY}"""), timeout=30,
                 interval=0.05)
        migrator.send_signal(signal.SIGKILL)
        killed = time.monotonic()
        wait_for("the lock free", lambda: try_lock(trap), timeout=10, interval=0.05)
        released = time.monotonic() - killed
    finally:
        migrator.kill()
        migrator.wait()
    print(f"\nlock free {released:.2f} s after SIGKILL of a migrator inside pg_sleep(30)")

    assert released < 5
    assert tables(trap) == set()
    result = upgrade.upgrade(trap.url(), scripts_from_files(
        {"a1_slow.py": revision("a1", None, body.format(seconds=0))}, tmp_path), **OPTIONS)
    assert result.applied and result.after == {"a1"}


def test_a_busy_lock_is_reported_with_its_holder(trap: Tenant, tmp_path: Path) -> None:
    scripts = scripts_from_files(TWO_REVISIONS, tmp_path)
    with psycopg.connect(trap.url(scheme="postgresql", query="application_name=other-migrator"),
                         autocommit=True) as holder:
        holder.execute("SELECT pg_advisory_lock(%s)", (KEY,))
        started = time.monotonic()
        with pytest.raises(upgrade.MigrationLockBusy) as caught:
            upgrade.upgrade(trap.url(), scripts, lock_wait_seconds=1, **OPTIONS)
        waited = time.monotonic() - started
        holder_pid = holder.info.backend_pid

    assert 1 <= waited < 3
    message = str(caught.value)
    assert f"pid {holder_pid}" in message and "'other-migrator'" in message
    assert "connected since" in message and "retry later" in message
    assert tables(trap) == set()


def test_migrations_of_two_databases_in_one_process_stay_apart(trap: Tenant,
                                                               tmp_path: Path) -> None:
    """Alembic's `op` is process-global: two runs in threads must not cross."""
    other = trap.add_database(f"other_{trap.suffix}")
    trap.admin(f"CREATE SCHEMA app AUTHORIZATION {trap.role}", database=other)
    files = {"a1_slow.py": revision("a1", None, """\
        op.execute("SELECT pg_sleep(0.5)")
        op.create_table("accounts", sa.Column("id", sa.BigInteger, primary_key=True))
        """)}
    results: dict[str, upgrade.UpgradeResult] = {}

    def run(name: str) -> None:
        scripts = scripts_from_files(files, tmp_path)
        results[name] = upgrade.upgrade(trap.url(database=name), scripts, **OPTIONS)

    threads = [threading.Thread(target=run, args=(name,)) for name in (trap.database, other)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(results) == 2 and all(result.applied for result in results.values())
    assert tables(trap) == {("app", "accounts"), ("public", "schema_version")}
    with psycopg.connect(trap.server.url(database=other, driver="postgresql")) as conn:
        assert conn.execute("SELECT to_regclass('app.accounts') IS NOT NULL").fetchone() == (True,)


# Passwords.

def test_refused_credentials_never_show_the_password(trap: Tenant, tmp_path: Path) -> None:
    scripts = scripts_from_files(TWO_REVISIONS, tmp_path)
    wrong = "Wr0ng-P@ss w%rd"
    with pytest.raises(connect.ConnectionFailed) as caught:
        upgrade.upgrade(trap.url(password=wrong), scripts, **OPTIONS)
    assert caught.value.reason is Reason.AUTHENTICATION_FAILED
    assert wrong not in str(caught.value) and "Wr0ng" not in str(caught.value)


def test_a_failure_echoing_the_url_never_shows_the_password(trap: Tenant,
                                                           tmp_path: Path) -> None:
    echo = revision("a1", None, """\
        url = op.get_bind().engine.url.render_as_string(hide_password=False)
        raise RuntimeError(f"cannot work with {url}")
        """)
    scripts = scripts_from_files({"a1_echo.py": echo}, tmp_path)
    with pytest.raises(upgrade.MigrationFailed) as caught:
        upgrade.upgrade(trap.url(), scripts, **OPTIONS)
    assert "cannot work with" in caught.value.message
    assert trap.password not in caught.value.message


# Helpers.

def try_lock(tenant: Tenant) -> bool:
    with psycopg.connect(tenant.server.url(database=tenant.database, driver="postgresql"),
                         autocommit=True) as conn:
        got = conn.execute("SELECT pg_try_advisory_lock(%s)", (KEY,)).fetchone()
        conn.execute("SELECT pg_advisory_unlock_all()")
        return bool(got and got[0])


def test_a_version_table_no_alembic_wrote_is_read_no_further(trap: Tenant,
                                                            tmp_path: Path) -> None:
    """The migrator reads the version table as the operator does: a few short rows."""
    trap.admin("CREATE VIEW public.schema_version AS SELECT 'r' || "
               "pg_catalog.generate_series(1, 10000000) AS version_num")
    trap.admin(f"ALTER VIEW public.schema_version OWNER TO {trap.role}")
    scripts = scripts_from_files(TWO_REVISIONS, tmp_path)

    with pytest.raises(upgrade.MigrationFailed,
                       match="^the version table public.schema_version has more than 32 rows "
                             r"\(Alembic writes one per head\); nothing was run$"):
        upgrade.upgrade(trap.url(), scripts, **OPTIONS)
    assert tables(trap) == set()
