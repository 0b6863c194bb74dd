"""Columns, not only tables: `schemagate snapshot` on a good database, then `schemagate
verify --columns-file` on what it printed, after the damage a migration or a person does.
Real PostgreSQL; each test owns its role and database."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from localenv.postgres import free_port
from tests.db.commands import Run, schemagate_snapshot, schemagate_verify, tables_file
from tests.support.database import Tenant

BILLING = """
CREATE TABLE subscriptions (id bigint PRIMARY KEY, plan_id integer NOT NULL,
                            plan_code varchar(64), started_at timestamptz);
CREATE TABLE credit_transactions (id bigint PRIMARY KEY, amount numeric(12,2) NOT NULL,
                                  note text);
"""


def as_role(tenant: Tenant, sql: str) -> None:
    """DDL as the backend's own role, so the tables are its own."""
    tenant.admin(f"SET ROLE {tenant.role}; {sql}")


def snapshot_file(tenant: Tenant, tmp_path: Path, *args: str, url: str | None = None,
                  name: str = "columns.yaml") -> Path:
    run = schemagate_snapshot(url or tenant.url(), *args)
    assert run.returncode == 0, run.stderr
    path = tmp_path / name
    path.write_text(run.stdout)
    return path


def verify_columns(tenant: Tenant, path: Path, *args: str, url: str | None = None) -> Run:
    return schemagate_verify(url or tenant.url(), "--columns-file", str(path), "--skip-revision",
                             *args)


def mismatches(run: Run) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = run.document["column_mismatches"]
    return found


def test_snapshot_prints_a_fragment_that_pastes_and_verifies_as_it_is(
        tenant: Tenant, tmp_path: Path) -> None:
    as_role(tenant, BILLING)
    run = schemagate_snapshot(tenant.url(), "--table", "subscriptions",
                              "--table", "credit_transactions")
    assert run.returncode == 0, run.stderr
    document = yaml.safe_load(run.stdout)
    assert document == {
        "tables": ["subscriptions", "credit_transactions"],
        "columns": [
            {"table": "subscriptions", "columns": [
                {"name": "id", "type": "bigint", "nullable": False},
                {"name": "plan_id", "type": "integer", "nullable": False},
                {"name": "plan_code", "type": "character varying(64)", "nullable": True},
                {"name": "started_at", "type": "timestamp with time zone", "nullable": True}]},
            {"table": "credit_transactions", "columns": [
                {"name": "id", "type": "bigint", "nullable": False},
                {"name": "amount", "type": "numeric(12,2)", "nullable": False},
                {"name": "note", "type": "text", "nullable": True}]}]}
    assert tenant.database not in run.stdout and str(tenant.server.port) not in run.stdout, \
        "a snapshot must not change with the scratch database it was taken from"
    run.assert_never_shows(tenant.password)

    path = tmp_path / "columns.yaml"
    path.write_text(run.stdout)
    verified = verify_columns(tenant, path)
    assert (verified.returncode, verified.reason) == (0, "Verified")
    assert "with all 7 declared columns" in verified.document["message"]
    assert mismatches(verified) == []

    as_json = schemagate_snapshot(tenant.url(), "--table", "subscriptions",
                                  "--table", "credit_transactions", "--format", "json")
    assert json.loads(as_json.stdout) == document
    path.write_text(as_json.stdout)
    assert verify_columns(tenant, path).reason == "Verified"


def test_a_dropped_column_is_named_with_its_table(tenant: Tenant, tmp_path: Path) -> None:
    as_role(tenant, BILLING)
    path = snapshot_file(tenant, tmp_path, "--table", "subscriptions",
                         "--table", "credit_transactions")
    as_role(tenant, "ALTER TABLE subscriptions DROP COLUMN plan_id")

    run = verify_columns(tenant, path)

    assert (run.returncode, run.reason) == (1, "ColumnsMismatch")
    assert run.document["missing_tables"] == []
    assert mismatches(run) == [{
        "table": "subscriptions", "column": "plan_id",
        "expected": {"type": "integer", "nullable": False}, "found": None, "similar": []}]
    assert "subscriptions.plan_id missing" in run.document["message"]
    assert f"schema public of database {tenant.database}" in run.document["message"]
    human = schemagate_verify(tenant.url(), "--columns-file", str(path), "--skip-revision",
                              json_output=False)
    assert "column      subscriptions.plan_id missing" in human.stdout


def test_integer_to_bigint_is_a_type_change(tenant: Tenant, tmp_path: Path) -> None:
    as_role(tenant, BILLING)
    path = snapshot_file(tenant, tmp_path, "--table", "subscriptions")
    as_role(tenant, "ALTER TABLE subscriptions ALTER COLUMN plan_id TYPE bigint")

    run = verify_columns(tenant, path)

    assert (run.returncode, run.reason) == (1, "ColumnsMismatch")
    assert mismatches(run) == [{
        "table": "subscriptions", "column": "plan_id",
        "expected": {"type": "integer", "nullable": False},
        "found": {"type": "bigint", "nullable": False}, "similar": []}]
    assert "subscriptions.plan_id is bigint, declared integer" in run.document["message"]


def test_varchar_64_against_varchar_32(tenant: Tenant, tmp_path: Path) -> None:
    as_role(tenant, BILLING)
    path = snapshot_file(tenant, tmp_path, "--table", "subscriptions")
    as_role(tenant, "ALTER TABLE subscriptions ALTER COLUMN plan_code TYPE varchar(32)")

    run = verify_columns(tenant, path)

    assert run.reason == "ColumnsMismatch"
    assert ("subscriptions.plan_code is character varying(32), declared character "
            "varying(64)") in run.document["message"]
    # A type written as the user would say it never matches: format_type's words count.
    declared = tmp_path / "typed.yaml"
    declared.write_text("columns:\n- table: subscriptions\n  columns:\n"
                        "  - {name: plan_code, type: varchar(32)}\n")
    run = verify_columns(tenant, declared)
    assert run.reason == "ColumnsMismatch"
    assert "is character varying(32), declared varchar(32)" in run.document["message"]


def test_a_nullable_change_either_way(tenant: Tenant, tmp_path: Path) -> None:
    as_role(tenant, BILLING)
    path = snapshot_file(tenant, tmp_path, "--table", "subscriptions",
                         "--table", "credit_transactions")
    as_role(tenant, "ALTER TABLE subscriptions ALTER COLUMN plan_id DROP NOT NULL; "
                    "ALTER TABLE credit_transactions ALTER COLUMN note SET NOT NULL")

    run = verify_columns(tenant, path)

    assert run.reason == "ColumnsMismatch"
    assert [(m["table"], m["column"], m["found"]) for m in mismatches(run)] == [
        ("subscriptions", "plan_id", {"type": "integer", "nullable": True}),
        ("credit_transactions", "note", {"type": "text", "nullable": False})]
    message = run.document["message"]
    assert message.startswith("2 declared columns of 2 tables differ")
    assert "subscriptions.plan_id is nullable, declared NOT NULL" in message
    assert "credit_transactions.note is NOT NULL, declared nullable" in message
    # Nullability not declared is not checked.
    loose = tmp_path / "loose.yaml"
    loose.write_text("tables: [subscriptions]\ncolumns:\n- table: subscriptions\n"
                     "  columns: [{name: plan_id, type: integer}]\n")
    assert verify_columns(tenant, loose).reason == "Verified"


def test_quoted_and_mixed_case_column_names_match_exactly(tenant: Tenant,
                                                          tmp_path: Path) -> None:
    as_role(tenant, 'CREATE TABLE "Billing" ("PlanId" integer, "plan id" text, "on" boolean, '
                    '"null" text, "Ünïcode" date, "a""quote" int)')
    path = snapshot_file(tenant, tmp_path, "--table", "Billing")
    document = yaml.safe_load(path.read_text())
    assert document["tables"] == ["Billing"]
    assert [c["name"] for c in document["columns"][0]["columns"]] == [
        "PlanId", "plan id", "on", "null", "Ünïcode", 'a"quote']
    assert verify_columns(tenant, path).reason == "Verified"

    lower = tmp_path / "lower.yaml"
    lower.write_text('columns:\n- table: Billing\n  columns: [{name: planid}, {name: "plan id"}]\n')
    run = verify_columns(tenant, lower)
    assert run.reason == "ColumnsMismatch"
    assert mismatches(run) == [{"table": "Billing", "column": "planid",
                                "expected": {"type": None, "nullable": None}, "found": None,
                                "similar": ["PlanId"]}]
    assert ('"Billing".planid missing (the table has "PlanId": names match exactly, case '
            'included)') in run.document["message"]


def test_a_same_named_column_in_another_schema_on_the_search_path_does_not_count(
        tenant: Tenant, tmp_path: Path) -> None:
    as_role(tenant, BILLING)
    path = snapshot_file(tenant, tmp_path, "--table", "subscriptions")
    as_role(tenant, "CREATE SCHEMA shadow; "
                    "CREATE TABLE shadow.subscriptions (id bigint, plan_id integer NOT NULL); "
                    "ALTER TABLE public.subscriptions DROP COLUMN plan_id")
    shadowed = tenant.url(query="options=-csearch_path%3Dshadow,public")

    run = verify_columns(tenant, path, url=shadowed)

    assert run.document["database"]["search_path"] == "shadow,public"
    assert run.reason == "ColumnsMismatch"
    assert [(m["table"], m["column"], m["found"]) for m in mismatches(run)] == [
        ("subscriptions", "plan_id", None)]
    # And a snapshot through that search_path reads public's table, not shadow's.
    again = schemagate_snapshot(shadowed, "--table", "subscriptions")
    names = [c["name"] for c in yaml.safe_load(again.stdout)["columns"][0]["columns"]]
    assert names == ["id", "plan_code", "started_at"]


def test_missing_tables_come_before_columns(tenant: Tenant, tmp_path: Path) -> None:
    as_role(tenant, BILLING)
    path = snapshot_file(tenant, tmp_path, "--table", "subscriptions",
                         "--table", "credit_transactions")
    as_role(tenant, "DROP TABLE credit_transactions; "
                    "ALTER TABLE subscriptions ALTER COLUMN plan_id TYPE bigint")

    run = verify_columns(tenant, path)

    assert run.reason == "TablesMissing"
    assert run.document["missing_tables"] == ["credit_transactions"]
    assert [m["column"] for m in mismatches(run)] == ["plan_id"]
    assert "columns also differ: subscriptions.plan_id is bigint" in run.document["message"]


def test_the_revision_is_named_beside_the_columns(tenant: Tenant, tmp_path: Path) -> None:
    as_role(tenant, BILLING)
    as_role(tenant, "CREATE TABLE alembic_version (version_num varchar(32) PRIMARY KEY); "
                    "INSERT INTO alembic_version VALUES ('3f2a9c')")
    path = snapshot_file(tenant, tmp_path, "--table", "subscriptions")
    as_role(tenant, "ALTER TABLE subscriptions DROP COLUMN plan_code")

    run = schemagate_verify(tenant.url(), "--columns-file", str(path),
                            "--expected-revision", "4b1d07")
    assert run.reason == "ColumnsMismatch"
    assert run.document["message"].endswith(
        "public.alembic_version records 3f2a9c, expected 4b1d07 (migrations pending?)")
    run = schemagate_verify(tenant.url(), "--columns-file", str(path), "--table", "alembic_version")
    assert run.reason == "ColumnsMismatch"
    assert "stamped without these columns, or a change made by hand?" in run.document["message"]


def test_ten_thousand_tables_snapshot_and_verify_in_one_statement(
        tenant: Tenant, tmp_path: Path) -> None:
    tables = [f"t_{i:05d}" for i in range(10_000)]
    for start in range(0, len(tables), 1_000):
        as_role(tenant, "; ".join(
            f"CREATE TABLE {name} (id bigint NOT NULL, code varchar(16), amount integer)"
            for name in tables[start:start + 1_000]))
    listed = tables_file(tmp_path / "tables.txt", tables)
    path = snapshot_file(tenant, tmp_path, "--tables-file", str(listed))
    fragment = yaml.safe_load(path.read_text())
    assert len(fragment["tables"]) == 10_000
    assert sum(len(entry["columns"]) for entry in fragment["columns"]) == 30_000
    assert verify_columns(tenant, path).reason == "Verified"

    as_role(tenant, "ALTER TABLE t_09999 ALTER COLUMN amount TYPE bigint; "
                    "ALTER TABLE t_00042 DROP COLUMN code")
    run = verify_columns(tenant, path)
    assert run.reason == "ColumnsMismatch"
    assert run.document["message"].startswith(
        "2 declared columns of 2 tables differ in schema public")
    assert "t_00042.code missing; t_09999.amount is bigint, declared integer" \
        in run.document["message"]

    # Every column retyped in the declaration: all listed in --json, the message bounded.
    wrong = tmp_path / "wrong.yaml"
    wrong.write_text(path.read_text().replace("type: integer", "type: smallint"))
    run = verify_columns(tenant, wrong)
    assert run.reason == "ColumnsMismatch"
    assert len(mismatches(run)) == 10_001  # and t_00042.code, still missing
    message = run.document["message"]
    assert message.startswith("10,001 declared columns of 10,000 tables differ")
    assert "and 9,996 more" in message and len(message) < 1_000


def test_snapshot_exit_codes_match_verify(tenant: Tenant) -> None:
    as_role(tenant, BILLING)
    missing = schemagate_snapshot(tenant.url(), "--table", "subscriptions",
                                  "--table", "agent_executions")
    assert missing.returncode == 1 and missing.stdout == ""
    assert "agent_executions is missing from schema public" in missing.stderr

    no_url = schemagate_snapshot(None, "--table", "subscriptions")
    assert no_url.returncode == 2 and "DATABASE_URL is not set" in no_url.stderr
    other_var = schemagate_snapshot(tenant.url(), "--url-env", "BACKEND_DB",
                                    "--table", "subscriptions", url_env="BACKEND_DB")
    assert other_var.returncode == 0
    no_tables = schemagate_snapshot(tenant.url())
    assert no_tables.returncode == 2

    refused = schemagate_snapshot(tenant.url(password="not-the-password"),
                                  "--table", "subscriptions")
    assert refused.returncode == 3 and "AuthenticationFailed" in refused.stderr
    refused.assert_never_shows("not-the-password")
    unreachable = schemagate_snapshot(
        tenant.url().replace(f":{tenant.server.port}/", f":{free_port()}/"),
        "--table", "subscriptions")
    assert unreachable.returncode == 3 and "DatabaseUnreachable" in unreachable.stderr
    unreachable.assert_never_shows(tenant.password)


def test_a_columns_file_that_is_not_a_snapshot_is_exit_2(tenant: Tenant, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    for text, says in [
        ("- subscriptions\n", "expected a mapping"),
        ("columns:\n- table: t\n  columns: [{name: a}, {name: a}]\n", "declared twice"),
        ("columns:\n- {table: t, columns: [{name: a, typ: int}]}\n", "typ"),
        ("tables: [t]\ncolumns: [\n", "not YAML or JSON"),
    ]:
        bad.write_text(text)
        run = verify_columns(tenant, bad)
        assert run.returncode == 2, text
        assert says in run.stderr, (text, run.stderr)
