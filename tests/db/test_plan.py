"""`schemagate plan --url-env` as a real process against the real server: it starts where
the database's version table says (read as `verify` reads it), renders the rest of the
revisions offline, and finds in each of the table of revisions what it must."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from localenv.postgres import free_port
from tests.db.commands import BIN, AlembicProject, Run, environment, schemagate_snapshot
from tests.plan_revisions import CASES, SERVING, Case, write_scripts
from tests.support.database import Tenant


def schemagate_plan(url: str, *args: str) -> Run:
    result = subprocess.run([str(BIN / "schemagate"), "plan", *args, "--url-env", "APP_DB"],
                            env=environment(APP_DB=url), capture_output=True, text=True,
                            timeout=120)
    return Run(result.returncode, result.stdout, result.stderr)


def project_at_a1(tenant: Tenant, root: Path, case: Case) -> AlembicProject:
    """An Alembic project with the case's revision, whose database ran only `a1`."""
    project = AlembicProject(root)
    write_scripts(project.versions, case)
    project.alembic(tenant.url(), "upgrade", "a1")
    return project


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_each_revision_gives_its_findings_from_where_the_database_is(
        case: Case, tenant: Tenant, tmp_path: Path) -> None:
    project = project_at_a1(tenant, tmp_path / "project", case)
    (tmp_path / "serving.yaml").write_text(SERVING)
    run = schemagate_plan(tenant.url(), str(project.ini), "--serving",
                          str(tmp_path / "serving.yaml"), "--format", "json")
    document = run.document
    assert document["from"] == ["a1"] and document["to"] == ["b2"]
    findings = document["findings"]
    assert sorted(f["message"].split(",")[0] for f in findings if f["kind"] == "serving") \
        == sorted(case.serving)
    assert {f["rule"] for f in findings if f["kind"] == "lint"} == case.lint
    assert any(f["kind"] == "unlintable" for f in findings) is case.unlintable
    assert run.returncode == case.exit_status, run.stderr
    run.assert_never_shows(tenant.password)


def test_the_serving_version_as_snapshot_printed_it(tenant: Tenant, tmp_path: Path) -> None:
    project = project_at_a1(tenant, tmp_path / "project", CASES[0])
    snapshot = schemagate_snapshot(tenant.url(), "--table", "accounts")
    assert snapshot.returncode == 0, snapshot.stderr
    (tmp_path / "serving.yaml").write_text(snapshot.stdout)
    run = schemagate_plan(tenant.url(), str(project.ini), "--serving",
                          str(tmp_path / "serving.yaml"))
    assert run.returncode == 1
    assert "BLOCKING serving: drops column accounts.legacy_code, which the serving version " \
           "declares" in run.stdout


def test_a_database_without_a_version_table_plans_from_the_base(
        tenant: Tenant, tmp_path: Path) -> None:
    project = AlembicProject(tmp_path)
    write_scripts(project.versions, CASES[5])
    run = schemagate_plan(tenant.url(), str(project.ini), "--format", "json")
    assert run.document["from"] == [] and run.returncode == 0, run.stderr
    assert [r["revision"] for r in run.document["revisions"]] == ["a1", "b2"]


def test_a_database_at_the_head_has_nothing_to_run(tenant: Tenant, tmp_path: Path) -> None:
    project = project_at_a1(tenant, tmp_path, CASES[0])
    project.alembic(tenant.url(), "upgrade", "head")
    run = schemagate_plan(tenant.url(), str(project.ini))
    assert run.returncode == 0 and "nothing to run: already at b2" in run.stdout


def test_an_unreachable_database_is_exit_3(tenant: Tenant, tmp_path: Path) -> None:
    project = AlembicProject(tmp_path)
    write_scripts(project.versions, CASES[5])
    url = tenant.url().replace(f":{tenant.server.port}/", f":{free_port()}/")
    run = schemagate_plan(url, str(project.ini))
    assert run.returncode == 3 and "DatabaseUnreachable" in run.stderr
    run.assert_never_shows(tenant.password)
