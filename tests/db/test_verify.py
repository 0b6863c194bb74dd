"""The incident, replayed: the real `alembic` command against a real PostgreSQL, then
`schemagate verify` as a user runs it. Each test owns its role and database."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from localenv.postgres import free_port
from tests.db.commands import AlembicProject, schemagate_verify, tables_file
from tests.support.database import Tenant


def incident_tables(tenant: Tenant) -> list[str]:
    # Suffixed so that no other test's database on the shared server holds them.
    return [f"{name}_{tenant.suffix}"
            for name in ("credit_transactions", "agent_executions", "subscriptions")]


def table_args(tables: list[str]) -> list[str]:
    return [arg for name in tables for arg in ("--table", name)]


@pytest.fixture
def project(tmp_path: Path) -> AlembicProject:
    return AlembicProject(tmp_path / "backend")


# 1. An alembic.ini whose versions folder is empty.

def test_empty_versions_folder_upgrades_with_exit_0_and_verify_says_no_revision(
        tenant: Tenant, project: AlembicProject, tmp_path: Path) -> None:
    tables = incident_tables(tenant)
    project.alembic(tenant.url(), "upgrade", "head")  # exits 0, applies nothing

    run = schemagate_verify(tenant.url(), "--tables-file",
                            str(tables_file(tmp_path / "tables.txt", tables)))

    assert run.returncode == 1
    assert run.reason == "NoRevision"
    doc = run.document
    assert doc["verified"] is False
    assert doc["missing_tables"] == tables
    assert doc["revision"] == {"current": [], "expected": None}  # created, but empty
    assert "public.alembic_version is empty" in doc["message"]
    assert doc["database"]["database"] == tenant.database
    assert doc["database"]["user"] == tenant.role
    run.assert_never_shows(tenant.password)


# 2. Migrations applied by a role whose search_path ("$user", public) puts them elsewhere.

def test_migrating_role_with_its_own_schema_puts_tables_elsewhere(
        tenant: Tenant, project: AlembicProject) -> None:
    tables = incident_tables(tenant)
    migrator = tenant.add_role(f"migrator_{tenant.suffix}", "migrator-pw")
    tenant.admin(f"CREATE SCHEMA {migrator} AUTHORIZATION {migrator}")
    head = project.add_revision("3f2a9c", None, tables)
    project.alembic(tenant.url(role=migrator, password="migrator-pw"), "upgrade", "head")

    run = schemagate_verify(tenant.url(), *table_args(tables), "--expected-revision", head)

    assert run.returncode == 1
    assert run.reason == "TablesElsewhere"
    doc = run.document
    assert doc["missing_tables"] == tables
    assert doc["found_elsewhere"] == [
        {"table": name, "schema": migrator, "database": tenant.database} for name in tables]
    assert f"found in schema {migrator} (the migrating role's search_path?)" in doc["message"]
    run.assert_never_shows(tenant.password, "migrator-pw")

    # Through the backend's own settings: a URL whose search_path names that schema
    # reaches a session that resolves it; the declared schema is still public.
    run = schemagate_verify(tenant.url(query=f"options=-csearch_path%3D{migrator}"),
                            *table_args(tables))
    assert run.reason == "TablesElsewhere"
    assert run.document["database"]["search_path"] == migrator
    # Declaring that schema verifies, once the backend's role may read the version table.
    run = schemagate_verify(tenant.url(), *table_args(tables), "--schema", migrator)
    assert (run.returncode, run.reason) == (3, "DatabaseUnreachable")
    assert f"permission denied for schema {migrator}" in run.document["message"]
    tenant.admin(f"GRANT USAGE ON SCHEMA {migrator} TO {tenant.role}; "
                 f"GRANT SELECT ON ALL TABLES IN SCHEMA {migrator} TO {tenant.role}")
    run = schemagate_verify(tenant.url(), *table_args(tables), "--schema", migrator,
                            "--expected-revision", head)
    assert (run.returncode, run.reason) == (0, "Verified")


# 3. Migrations applied to another database on the same server.

def test_migrations_in_another_database_are_found_there(
        tenant: Tenant, project: AlembicProject) -> None:
    tables = incident_tables(tenant)
    other = tenant.add_database(f"app_{tenant.suffix}_staging")
    project.add_revision("3f2a9c", None, tables)
    project.alembic(tenant.url(database=other), "upgrade", "head")

    run = schemagate_verify(tenant.url(), *table_args(tables))

    assert run.returncode == 1
    assert run.reason == "TablesElsewhere"
    doc = run.document
    assert doc["found_elsewhere"] == [
        {"table": name, "schema": "public", "database": other} for name in tables]
    assert f"found in database {other} (schema public)" in doc["message"]
    assert "another database" in doc["message"]
    assert doc["database"]["database"] == tenant.database


# 4. The version table is stamped at head, but the tables were dropped.

def test_stamped_at_head_with_tables_dropped_is_stamped_but_missing(
        tenant: Tenant, project: AlembicProject) -> None:
    tables = incident_tables(tenant)
    head = project.add_revision("3f2a9c", None, tables)
    project.alembic(tenant.url(), "upgrade", "head")
    tenant.admin(f"DROP TABLE {tables[0]}, {tables[2]}")

    run = schemagate_verify(tenant.url(), *table_args(tables), "--expected-revision", head)

    assert run.returncode == 1
    assert run.reason == "StampedButMissing"
    doc = run.document
    assert doc["missing_tables"] == [tables[0], tables[2]]
    assert doc["revision"] == {"current": [head], "expected": [head]}
    assert "yet public.alembic_version records 3f2a9c" in doc["message"]

    # The same check in the human form says it too.
    run = schemagate_verify(tenant.url(), *table_args(tables), json_output=False)
    assert run.returncode == 1
    assert run.stdout.startswith("NOT verified (StampedButMissing): ")


def test_stamp_without_running_is_stamped_but_missing(
        tenant: Tenant, project: AlembicProject) -> None:
    tables = incident_tables(tenant)
    project.add_revision("3f2a9c", None, tables)
    project.alembic(tenant.url(), "stamp", "head")

    run = schemagate_verify(tenant.url(), *table_args(tables))

    assert (run.returncode, run.reason) == (1, "StampedButMissing")


# 5. Revisions: one differs from the expected one; two heads expected and present.

def test_tables_present_at_another_revision_is_a_revision_mismatch(
        tenant: Tenant, project: AlembicProject) -> None:
    tables = incident_tables(tenant)
    head = project.add_revision("3f2a9c", None, tables)
    project.alembic(tenant.url(), "upgrade", "head")

    run = schemagate_verify(tenant.url(), *table_args(tables), "--expected-revision", "9d1e07")

    assert run.returncode == 1
    assert run.reason == "RevisionMismatch"
    assert run.document["revision"] == {"current": [head], "expected": ["9d1e07"]}

    run = schemagate_verify(tenant.url(), *table_args(tables), "--expected-revision", head)
    assert (run.returncode, run.reason) == (0, "Verified")
    assert run.document["missing_tables"] == [] and run.document["found_elsewhere"] == []


def test_two_heads_expected_and_present_verify(tenant: Tenant,
                                               project: AlembicProject) -> None:
    tables = incident_tables(tenant)
    base = project.add_revision("a0base", None, [tables[0]])
    billing = project.add_revision("b1bill", base, [tables[1]], branch_label="billing")
    agents = project.add_revision("c2agent", base, [tables[2]], branch_label="agents")
    project.alembic(tenant.url(), "upgrade", "heads")

    run = schemagate_verify(tenant.url(), *table_args(tables),
                            "--expected-revision", agents, "--expected-revision", billing)

    assert (run.returncode, run.reason) == (0, "Verified")
    assert run.document["revision"] == {"current": [billing, agents],
                                        "expected": [billing, agents]}

    run = schemagate_verify(tenant.url(), *table_args(tables), "--expected-revision", billing)
    assert (run.returncode, run.reason) == (1, "RevisionMismatch")


# 6. Unreachable host, bad URL, wrong password: exit 3 or 2, the password never shown.

def test_wrong_password_is_authentication_failed(tenant: Tenant) -> None:
    wrong = "Wrong-Passw0rd-xyz"
    run = schemagate_verify(tenant.url(password=wrong), "--table", "t")

    assert run.returncode == 3
    assert run.reason == "AuthenticationFailed"
    assert run.document["database"] is None
    run.assert_never_shows(wrong, tenant.password)

    run = schemagate_verify(tenant.url(password=wrong), "--table", "t", json_output=False)
    assert run.returncode == 3
    assert "refused the credentials" in run.stdout
    run.assert_never_shows(wrong)


def test_closed_port_is_unreachable_at_once() -> None:
    password = "Closed-Port-Secret"
    started = time.monotonic()
    run = schemagate_verify(f"postgresql://app:{password}@127.0.0.1:{free_port()}/app",
                            "--table", "t")

    assert run.returncode == 3
    assert run.reason == "DatabaseUnreachable"
    assert "Connection refused" in run.document["message"]
    assert time.monotonic() - started < 10
    run.assert_never_shows(password)


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A loopback port that accepts TCP connections and never answers."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        yield int(listener.getsockname()[1])


def test_a_server_that_never_answers_fails_within_the_connect_timeout(
        silent_server: int) -> None:
    password = "Silent-Server-Secret"
    started = time.monotonic()
    run = schemagate_verify(f"postgresql://app:{password}@127.0.0.1:{silent_server}/app",
                            "--table", "t", timeout=30)
    elapsed = time.monotonic() - started

    assert run.returncode == 3
    assert run.reason == "DatabaseUnreachable"
    assert "timeout" in run.document["message"]
    assert elapsed < 5 + 4  # the 5 s connect timeout, plus starting Python
    run.assert_never_shows(password)


@pytest.mark.parametrize("url", [
    "postgresql://app:Bad-Url-Secret@127.0.0.1:notaport/app",
    "mysql://app:Bad-Url-Secret@127.0.0.1/app",
    "postgresql://app:Bad-Url-Secret@@127.0.0.1/app",
    "postgresql://app:Bad-Url-Secret@127.0.0.1/app?no_such_option=1",
    "postgresql://app:Bad-Url-Secret@127.0.0.1/app?sslmode=sometimes",
    "not a url Bad-Url-Secret",
])
def test_a_bad_url_is_exit_2_without_the_password(url: str) -> None:
    run = schemagate_verify(url, "--table", "t")

    assert run.returncode == 2
    assert run.reason == "InvalidSpec"
    assert "the URL in DATABASE_URL cannot be used" in run.stderr
    run.assert_never_shows("Bad-Url-Secret")


# The names, exactly as PostgreSQL stores them, and only ever as bound parameters.

def test_an_injection_attempt_is_just_a_missing_table(tenant: Tenant) -> None:
    tenant.admin("CREATE TABLE users (id int)")
    evil = "x'); drop table users; --"

    run = schemagate_verify(tenant.url(), "--table", "users", "--table", evil,
                            "--skip-revision")

    assert (run.returncode, run.reason) == (1, "TablesMissing")
    assert run.document["missing_tables"] == [evil]
    run = schemagate_verify(tenant.url(), "--table", "users", "--skip-revision")
    assert (run.returncode, run.reason) == (0, "Verified")


def test_names_are_case_and_punctuation_exact(tenant: Tenant) -> None:
    tenant.admin('CREATE TABLE "credit-transactions" (id int)')

    run = schemagate_verify(tenant.url(), "--table", "Credit-Transactions", "--skip-revision")
    assert (run.returncode, run.reason) == (1, "TablesMissing")
    assert run.document["missing_tables"] == ["Credit-Transactions"]

    run = schemagate_verify(tenant.url(), "--table", "credit-transactions", "--skip-revision")
    assert (run.returncode, run.reason) == (0, "Verified")


def test_a_table_in_another_database_is_named_with_that_database(tenant: Tenant) -> None:
    other = tenant.add_database(f"app_{tenant.suffix}_old")
    tenant.admin("CREATE SCHEMA ledger", database=other)
    tenant.admin("CREATE TABLE ledger.invoices (id int)", database=other)
    tenant.admin("CREATE SCHEMA archive; CREATE TABLE archive.invoices (id int)")
    unreachable = tenant.add_database(f"app_{tenant.suffix}_private", owner="postgres")
    tenant.admin("CREATE TABLE invoices (id int)", database=unreachable)

    run = schemagate_verify(tenant.url(), "--table", "invoices", "--skip-revision")

    assert run.reason == "TablesElsewhere"
    assert run.document["found_elsewhere"] == [
        {"table": "invoices", "schema": "archive", "database": tenant.database},
        {"table": "invoices", "schema": "ledger", "database": other},
    ]  # and not in the database this role may not connect to


# The command line itself.

def test_url_schemes_of_other_drivers_are_accepted(tenant: Tenant) -> None:
    tenant.admin("CREATE TABLE t (id int)")
    for scheme in ("postgres", "postgresql", "postgresql+psycopg2"):
        run = schemagate_verify(tenant.url(scheme=scheme), "--table", "t", "--skip-revision")
        assert (run.returncode, run.reason) == (0, "Verified"), scheme


def test_the_url_comes_only_from_the_named_environment_variable(tenant: Tenant) -> None:
    tenant.admin("CREATE TABLE t (id int)")

    run = schemagate_verify(tenant.url(), "--table", "t", "--skip-revision",
                            "--url-env", "BACKEND_DB", url_env="BACKEND_DB")
    assert (run.returncode, run.reason) == (0, "Verified")

    run = schemagate_verify(None, "--table", "t")
    assert run.returncode == 2
    assert "DATABASE_URL is not set" in run.stderr


def test_tables_file_ignores_comments_and_reads_standard_input(tenant: Tenant,
                                                               tmp_path: Path) -> None:
    tenant.admin("CREATE TABLE a (id int); CREATE TABLE b (id int)")
    path = tables_file(tmp_path / "tables.txt", ["a", "  b  "])

    run = schemagate_verify(tenant.url(), "--tables-file", str(path), "--skip-revision")
    assert (run.returncode, run.reason) == (0, "Verified")
    assert "all 2 declared tables are present" in run.document["message"]

    run = schemagate_verify(tenant.url(), "--tables-file", "-", "--skip-revision",
                            stdin="a\n# b\nc\n")
    assert run.document["missing_tables"] == ["c"]

    run = schemagate_verify(tenant.url(), "--tables-file", str(tmp_path / "absent.txt"))
    assert run.returncode == 2


def test_usage_errors_exit_2(tenant: Tenant) -> None:
    assert schemagate_verify(tenant.url()).returncode == 2  # no table at all
    run = schemagate_verify(tenant.url(), "--table", "a", "--tables-file", "f")
    assert run.returncode == 2


def test_the_termination_message_holds_the_verdict_within_4_kib(
        tenant: Tenant, project: AlembicProject, tmp_path: Path) -> None:
    """What a verify pod of verifyFrom: Pod leaves for the operator: 2,000 tables
    declared, all missing, the same verdict as --json in at most 4 KiB, whole."""
    from schemagate.core.check.verdict import Requirement
    from schemagate.core.verify_pod import termination

    tables = [f"missing_table_number_{i:04d}_{tenant.suffix}" for i in range(2_000)]
    project.add_revision("3f2a9c", None, [])
    project.alembic(tenant.url(), "upgrade", "head")
    message = tmp_path / "termination-log"
    run = schemagate_verify(tenant.url(), *table_args(tables), "--expected-revision", "3f2a9c",
                            "--termination-message-path", str(message))
    assert run.returncode == 1 and run.reason == "StampedButMissing"
    text = message.read_text()
    assert len(text.encode()) <= termination.TERMINATION_LIMIT
    back = termination.read_verdict(text, Requirement(tables=tuple(tables)))
    assert back.reason.value == run.reason and back.message == run.document["message"]
    assert back.missing_tables == tuple(tables[: len(back.missing_tables)])
    assert back.fingerprint is not None and back.fingerprint.user == run.document[
        "database"]["user"]
    assert back.current_revisions == frozenset({"3f2a9c"})
    run.assert_never_shows(tenant.password)
    assert tenant.password not in text
