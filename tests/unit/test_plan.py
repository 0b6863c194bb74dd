"""`schemagate plan` over real Alembic script folders (no database: `--from`): the table
of revisions with the findings each must give, the output formats, and the bounds."""

from __future__ import annotations

import json
import stat
from pathlib import Path
from typing import Any

import pytest

from schemagate import cli
from schemagate.core.plan import serving
from schemagate.core.plan import sql as plan_sql
from schemagate.core.plan.sql import ChangeKind
from schemagate.core.revisions import keys
from schemagate.job import render, squawk
from tests.plan_revisions import CASES, REVISION, SERVING, Case, write_scripts
from tests.unit.test_reference import ROOT, first_column, options


def plan(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    status = cli.main(["plan", *args])
    out, err = capsys.readouterr()
    return status, out, err


def plan_json(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict[str, Any]]:
    status, out, err = plan(capsys, *args, "--format", "json")
    assert out, err
    document: dict[str, Any] = json.loads(out)
    return status, document


@pytest.fixture
def serving_file(tmp_path: Path) -> Path:
    path = tmp_path / "serving.yaml"
    path.write_text(SERVING)
    return path


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_each_revision_gives_its_findings(case: Case, tmp_path: Path, serving_file: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    write_scripts(tmp_path / "scripts" / "versions", case)
    status, document = plan_json(capsys, str(tmp_path / "scripts"), "--from", "a1",
                                 "--serving", str(serving_file))
    findings = document["findings"]
    assert sorted(f["message"].split(",")[0] for f in findings if f["kind"] == "serving") \
        == sorted(case.serving)
    assert {f["rule"] for f in findings if f["kind"] == "lint"} == case.lint
    assert any(f["kind"] == "unlintable" for f in findings) is case.unlintable
    assert all(f["revision"] == "b2" for f in findings)
    assert status == case.exit_status
    assert [r["revision"] for r in document["revisions"]] == ["b2"]


def test_a_finding_names_its_rule_and_statement(tmp_path: Path, serving_file: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    write_scripts(tmp_path / "versions", CASES[0])
    _, document = plan_json(capsys, str(tmp_path), "--from", "a1", "--serving",
                            str(serving_file))
    lint = next(f for f in document["findings"] if f["kind"] == "lint")
    assert lint["rule"] == "ban-drop-column"
    assert lint["statement"] == "ALTER TABLE accounts DROP COLUMN legacy_code;"
    assert document["plan"].startswith("sha256:")
    assert "ALTER TABLE accounts DROP COLUMN legacy_code;" in document["sql"]


def test_without_serving_only_lint_speaks(tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    write_scripts(tmp_path / "versions", CASES[0])
    status, document = plan_json(capsys, str(tmp_path), "--from", "a1")
    assert {f["kind"] for f in document["findings"]} == {"lint"}
    assert document["servingChecked"] is False
    assert status == 1


def test_lint_warn_does_not_block_but_the_serving_version_does(
        tmp_path: Path, serving_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_scripts(tmp_path / "versions", CASES[1])  # a column nobody declares
    status, document = plan_json(capsys, str(tmp_path), "--from", "a1", "--lint", "warn")
    assert status == 0 and document["findings"][0]["blocking"] is False
    write_scripts(tmp_path / "versions", CASES[0])  # a declared one
    status, _ = plan_json(capsys, str(tmp_path), "--from", "a1", "--lint", "off",
                          "--serving", str(serving_file))
    assert status == 1


def test_from_base_plans_every_revision(tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    write_scripts(tmp_path / "versions", CASES[5])
    status, document = plan_json(capsys, str(tmp_path), "--from", "base")
    assert [r["revision"] for r in document["revisions"]] == ["a1", "b2"]
    assert "CREATE TABLE accounts" in document["revisions"][0]["sql"]
    assert status == 0


def test_nothing_to_run_is_clean(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_scripts(tmp_path / "versions", CASES[0])
    status, out, _ = plan(capsys, str(tmp_path), "--from", "b2")
    assert status == 0 and "nothing to run: already at b2" in out


def test_an_alembic_ini_names_the_scripts(tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    write_scripts(tmp_path / "migrations" / "versions", CASES[6])
    (tmp_path / "alembic.ini").write_text("[alembic]\nscript_location = %(here)s/migrations\n")
    status, document = plan_json(capsys, str(tmp_path / "alembic.ini"), "--from", "a1")
    assert {f["rule"] for f in document["findings"]} == {"require-concurrent-index-creation"}
    assert status == 1


def test_text_prints_the_sql_and_markdown_a_comment(
        tmp_path: Path, serving_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_scripts(tmp_path / "versions", CASES[0])
    args = (str(tmp_path), "--from", "a1", "--serving", str(serving_file))
    _, text, _ = plan(capsys, *args)
    assert "BLOCKING serving: drops column accounts.legacy_code" in text
    assert "ALTER TABLE accounts DROP COLUMN legacy_code;" in text.split("-- the SQL")[1]
    _, markdown, _ = plan(capsys, *args, "--format", "markdown")
    assert markdown.startswith("### :no_entry: schemagate plan: 2 blocking findings")
    assert "| blocking | `b2` | lint: `ban-drop-column` " in markdown
    assert "<details><summary>The SQL that would run</summary>" in markdown


def test_what_a_revision_prints_stays_out_of_the_report(
        tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    write_scripts(tmp_path / "versions", Case("prints", (
        '    print("hello from b2")\n    import os\n    os.write(1, b"and from fd 1")')))
    status, out, err = plan(capfd, str(tmp_path), "--from", "a1", "--format", "json")
    assert json.loads(out)["findings"] == [] and status == 0
    assert "hello from b2" in err and "and from fd 1" in err


# Unusable input: exit status 2, the reason on standard error.

def test_a_start_the_scripts_do_not_know(tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    write_scripts(tmp_path / "versions", CASES[5])
    status, out, err = plan(capsys, str(tmp_path), "--from", "f00d")
    assert status == 2 and out == "" and "cannot start from f00d" in err


def test_scripts_that_do_not_load(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "broken.py").write_text("revision = 'x'\ndown_revision = None\ndef upgrade(:\n")
    status, _, err = plan(capsys, str(tmp_path), "--from", "base")
    assert status == 2 and "broken.py, line 3" in err


def test_the_plan_refuses_what_the_job_refuses(tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    write_scripts(tmp_path / "versions", CASES[5])
    (tmp_path / "versions" / "c3_computed.py").write_text(REVISION.format(
        revision="c3", down="b2", body="    pass").replace("revision = 'c3'",
                                                       "revision = 'c' + '3'"))
    status, out, err = plan(capsys, str(tmp_path), "--from", "a1")
    assert status == 2 and out == ""
    assert "c3_computed.py" in err and "revision" in err


def test_offline_mode_named_only_in_a_comment_or_string_is_lintable(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_scripts(tmp_path / "versions", Case(
        "mentions", '    # not context.is_offline_mode(): this renders as it runs\n'
                    '    op.add_column("accounts", sa.Column("as_sql", sa.Text))'))
    status, document = plan_json(capsys, str(tmp_path), "--from", "a1")
    assert status == 0 and document["findings"] == []


def test_a_serving_file_that_declares_nothing(tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    write_scripts(tmp_path / "versions", CASES[5])
    (tmp_path / "serving.yaml").write_text("tables: []\n")
    status, _, err = plan(capsys, str(tmp_path), "--from", "a1", "--serving",
                          str(tmp_path / "serving.yaml"))
    assert status == 2 and "declares no table" in err


def test_too_much_sql_stops_the_plan(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(render, "MAX_SQL", 100_000)
    write_scripts(tmp_path / "versions", Case(
        "floods", "    while True:\n        op.execute('SELECT 1')"))
    status, _, err = plan(capsys, str(tmp_path), "--from", "a1")
    assert status == 2 and "more than 100,000 characters of SQL" in err


def test_too_many_statements_stop_the_plan(tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str],
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(plan_sql, "MAX_STATEMENTS", 50)
    write_scripts(tmp_path / "versions", Case(
        "many", "    for n in range(60):\n        op.execute(f'COMMENT ON TABLE accounts IS "
                "{chr(39)}{n}{chr(39)}')"))
    status, _, err = plan(capsys, str(tmp_path), "--from", "a1", "--lint", "off")
    assert status == 2 and "more than 50 statements" in err


def test_too_many_revision_files(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(keys, "MAX_FILES", 3)
    for n in range(4):
        (tmp_path / f"r{n}.py").write_text(REVISION.format(
            revision=f"r{n}", down=f"r{n - 1}" if n else None, body="    pass"))
    status, _, err = plan(capsys, str(tmp_path), "--from", "base")
    assert status == 2 and "more than 3 revision files" in err


def test_squawk_has_a_timeout(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                              monkeypatch: pytest.MonkeyPatch) -> None:
    stuck = tmp_path / "squawk"
    stuck.write_text("#!/bin/sh\nexec sleep 30\n")
    stuck.chmod(stuck.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setattr(squawk, "find", lambda: str(stuck))
    write_scripts(tmp_path / "versions", CASES[5])
    status, _, err = plan(capsys, str(tmp_path), "--from", "a1", "--lint-timeout", "0.5")
    assert status == 2 and "squawk took longer than 0.5 s" in err


def test_without_squawk_the_plan_says_how_to_get_it(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(squawk, "find", lambda: None)
    write_scripts(tmp_path / "versions", CASES[5])
    status, _, err = plan(capsys, str(tmp_path), "--from", "a1")
    assert status == 2 and "pip install squawk-cli" in err
    status, _, _ = plan(capsys, str(tmp_path), "--from", "a1", "--lint", "off")
    assert status == 0


# The pure parts, without Alembic.

@pytest.mark.parametrize(("sql", "kind", "subject"), [
    ('ALTER TABLE app.accounts DROP COLUMN "Legacy"', ChangeKind.DROP_COLUMN,
     "accounts.Legacy"),
    ("ALTER TABLE Accounts RENAME COLUMN a TO b", ChangeKind.RENAME_COLUMN, "accounts.a"),
    ("ALTER TABLE accounts RENAME TO people", ChangeKind.RENAME_TABLE, "accounts"),
    ("DROP TABLE IF EXISTS accounts CASCADE", ChangeKind.DROP_TABLE, "accounts"),
    ("DROP VIEW accounts", ChangeKind.DROP_TABLE, "accounts"),
    ("ALTER TABLE accounts ALTER COLUMN n TYPE bigint USING n::bigint",
     ChangeKind.RETYPE_COLUMN, "accounts.n"),
])
def test_sqlglot_reads_the_changes(sql: str, kind: ChangeKind, subject: str) -> None:
    [statement] = plan_sql.statements(sql + ";")
    assert [(c.kind, c.subject) for c in statement.changes] == [(kind, subject)]


@pytest.mark.parametrize("sql", [
    "ALTER TABLE a ADD COLUMN c int NOT NULL DEFAULT 0",
    "ALTER TABLE a ADD COLUMN c bigserial NOT NULL",
    "ALTER TABLE a ADD COLUMN c int GENERATED ALWAYS AS IDENTITY NOT NULL",
    "ALTER TABLE a ALTER COLUMN c DROP NOT NULL",
    "CREATE INDEX ix ON a (c)",
])
def test_what_an_older_version_does_not_notice(sql: str) -> None:
    [statement] = plan_sql.statements(sql)
    assert statement.changes == () and statement.read


def test_a_statement_sqlglot_cannot_read_is_kept_unread() -> None:
    found = plan_sql.statements("DO $$ BEGIN ALTER TABLE a DROP COLUMN b; END $$; SELECT 1;")
    assert [s.read for s in found] == [False, True]
    assert found[0].text == "DO $$ BEGIN ALTER TABLE a DROP COLUMN b; END $$;"


def test_a_database_schema_manifest_declares_the_serving_version() -> None:
    declared = serving.parse("""\
apiVersion: v1
kind: ConfigMap
metadata: {name: other}
---
apiVersion: schemagate.io/v1alpha1
kind: DatabaseSchema
metadata: {name: backend}
spec:
  database: {schema: app, secretRef: {name: db, key: url}}
  tables: [accounts]
  columns:
  - table: ledger
    columns: [{name: amount, type: numeric}]
""")
    assert declared.schema == "app" and declared.tables == {"accounts", "ledger"}
    assert declared.declared_column("app", "ledger", "amount") is not None
    assert declared.declared_column(None, "ledger", "amount") is not None
    assert declared.declared_column("public", "ledger", "amount") is None
    assert not declared.declares_table("other", "accounts")


# What the docs say.

def test_reference_lists_every_option_of_plan() -> None:
    documented = {cell.split()[0] for cell in first_column("schemagate plan")}
    assert documented - {"SCRIPTS"} == options("plan")


def test_the_ci_example_is_the_contrib_workflow() -> None:
    workflow = ROOT / "contrib" / "github" / "migration-plan.yaml"
    assert f"```yaml\n{workflow.read_text()}```" in (ROOT / "docs" / "verify.md").read_text()


def test_a_revision_that_never_ends_stops_the_plan(tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    write_scripts(tmp_path / "versions", Case("loops", "    while True:\n        pass"))
    status, _, err = plan(capsys, str(tmp_path), "--from", "a1", "--render-timeout", "1")
    assert status == 2 and "took longer than 1 s" in err


def test_a_revision_that_asks_for_too_much_memory_is_unlintable(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_scripts(tmp_path / "versions", Case(
        "hoards", "    hoard = bytearray(4 * 1024 ** 3)\n    op.drop_column('accounts', 'notes')"))
    status, document = plan_json(capsys, str(tmp_path), "--from", "a1")
    assert status == 1
    assert [f["message"] for f in document["findings"] if f["kind"] == "unlintable"] == [
        "cannot be planned offline: it raised MemoryError when run offline; review it by "
        "hand"]


def test_markdown_keeps_a_hostile_statement_in_its_cell(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_scripts(tmp_path / "versions", Case("hostile", (
        "    op.execute('ALTER TABLE accounts DROP COLUMN notes "
        "/* | ``` <script> \\x1b[31m */')")))
    status, markdown, _ = plan(capsys, str(tmp_path), "--from", "a1", "--format", "markdown")
    row = next(line for line in markdown.splitlines() if "ban-drop-column" in line)
    # The statement is one code span, longer-fenced than any backticks in it: GitHub
    # shows what is inside as text, `<script>` included.
    assert row.count(" | ") == 3 and "\\|" in row
    assert row.endswith("| ```` ALTER TABLE accounts DROP COLUMN notes /* \\| ``` <script> "
                        "\\x1b[31m */; ```` |")
    assert "\x1b" not in markdown and status == 1
    sql = markdown.split("<details>")[1]
    assert "````sql\n" in sql and sql.rstrip().endswith("````\n\n</details>")


def test_a_revision_swallowing_the_timeout_still_stops(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_scripts(tmp_path / "versions", Case("stubborn", (
        "    while True:\n        try:\n            while True:\n                pass\n"
        "        except BaseException:\n            pass")))
    status, _, err = plan(capsys, str(tmp_path), "--from", "a1", "--render-timeout", "0.5")
    assert status == 2 and "took longer than 0.5 s" in err
