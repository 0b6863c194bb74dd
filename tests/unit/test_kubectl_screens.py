"""What `kubectl schemagate` prints, from objects as the API serves them: the screens,
in colour and without, and as JSON; cluster text never reaches the terminal raw."""

from __future__ import annotations

import io
import json
import re
from datetime import UTC, datetime
from typing import Any

import pytest

from schemagate import kubectl_plugin
from schemagate.core.screens import status, why
from schemagate.core.screens.paint import Paint

NOW = datetime(2026, 12, 7, 12, 0, 0, tzinfo=UTC)
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def schema(run: str = "Job", **status_: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "observedGeneration": 1,
        "conditions": [
            {"type": "Ready", "status": "False", "reason": "NoRevision",
             "message": "credit_transactions missing from schema public of database app on "
                        "10.0.0.5:5432"},
            {"type": "Stalled", "status": "False", "reason": "NoRevision"}],
        "missingTables": ["credit_transactions"],
        "database": {"host": "10.0.0.5", "port": 5432, "database": "app", "user": "backend",
                     "searchPath": '"$user", public', "serverVersion": "16.4",
                     "systemIdentifier": "7312345678901234567", "verifiedFrom": "Operator"},
        "revisionSummary": "no version table",
        "lastVerifiedTime": "2026-12-07T11:59:30Z",
        "migration": {"job": "backend-schema-migrate-1a2b", "outcome": "Failed",
                      "startedAt": "2026-12-07T11:50:00Z", "finishedAt": "2026-12-07T11:51:00Z",
                      "message": "alembic: relation already exists"},
    }
    body.update(status_)
    return {"apiVersion": "schemagate.io/v1alpha1", "kind": "DatabaseSchema",
            "metadata": {"name": "backend-schema", "namespace": "shop", "generation": 1},
            "spec": {"database": {"urlSecretRef": {"name": "backend-db", "key": "DATABASE_URL"}},
                     "tables": ["credit_transactions", "subscriptions"],
                     "migrations": {"run": run}},
            "status": body}


def pod(name: str, *, gate: str | None = "False", reason: str = "NoRevision",
        message: str = "credit_transactions missing from schema public",
        scheduling: bool = False, readiness: bool = True) -> dict[str, Any]:
    spec: dict[str, Any] = {}
    if readiness:
        spec["readinessGates"] = [{"conditionType": "schemagate.io/backend-schema"}]
    if scheduling:
        spec["schedulingGates"] = [{"name": "schemagate.io/backend-schema"}]
    conditions = [] if gate is None else [{"type": "schemagate.io/backend-schema",
                                           "status": gate, "reason": reason,
                                           "message": message}]
    return {"metadata": {"name": name, "namespace": "shop",
                         "labels": {"schemagate.io/schema": "backend-schema"}},
            "spec": spec, "status": {"phase": "Running", "conditions": conditions}}


PODS = [pod("backend-2", gate="True", reason="Verified", message="ok"),
        pod("backend-1"),
        pod("backend-3", gate=None, scheduling=True, readiness=False),
        {"metadata": {"name": "unrelated"}, "spec": {}, "status": {}}]
EVENTS = [{"type": "Warning", "reason": "NoRevision",
           "message": "NoRevision: no migration recorded",
           "count": 4, "lastTimestamp": "2026-12-07T11:58:00Z"}]
JOB = {"status": {"conditions": [{"type": "Failed", "status": "True"}]}}


def text(screen: status.SchemaScreen, colour: bool = False) -> str:
    return status.render(screen, Paint(colour), NOW)


def test_status_says_where_the_check_went_what_is_missing_and_who_is_held() -> None:
    out = text(status.screen(schema(), PODS, EVENTS, JOB, job_read=True))
    assert "\x1b" not in out  # plain when piped
    assert "DatabaseSchema backend-schema" in out and "Not ready  NoRevision" in out
    assert "app on 10.0.0.5:5432 as backend" in out
    assert "fingerprint: PostgreSQL 16.4, system identifier 7312345678901234567" in out
    assert "checked 30s ago by the operator" in out
    assert "Revision:   no version table" in out
    assert "2 declared, 1 missing: credit_transactions" in out
    assert "Job backend-schema-migrate-1a2b Failed, started 10m ago, ended 9m ago" in out
    assert "the Job now: Failed" in out and "relation already exists" in out
    assert "1 of 3 pods open" in out
    assert re.search(r"backend-1 +Running +held: NoRevision", out)
    assert re.search(r"backend-2 +Running +open", out)
    assert re.search(r"backend-3 +Running +held before start", out)
    assert "unrelated" not in out
    assert "Warning NoRevision: no migration recorded (x4)" in out


def test_a_pods_own_message_is_shown_and_the_schemas_is_said_once() -> None:
    ready = schema()["status"]["conditions"][0]["message"]
    own = "needs revision 9d1e07 (schemagate.io/revision); the database has 3f2a9c"
    out = text(status.screen(schema(), [pod("backend-1", message=ready),
                                        pod("backend-2", reason="RevisionNotApplied",
                                            message=own)], []))
    assert out.count(ready) == 1
    assert re.search(r"backend-2 +Running +held: RevisionNotApplied\n +needs revision 9d1e07",
                     out)


def test_colour_on_a_terminal_says_the_same_words() -> None:
    screen = status.screen(schema(), PODS, EVENTS, JOB, job_read=True)
    coloured = text(screen, colour=True)
    assert "\x1b[31mNot ready\x1b[0m" in coloured  # red
    assert "\x1b[32mopen\x1b[0m" in coloured  # green
    assert ANSI.sub("", coloured) == text(screen)


def test_cluster_text_cannot_drive_the_terminal() -> None:
    """A pod's condition message, a table name and an Event are written by others: their
    control characters print as escapes, in colour or not."""
    hostile = "\x1b[2J\x1b]0;owned\x07\rforged line"
    screen = status.screen(schema(missingTables=[hostile]),
                           [pod("backend-1", message=hostile)],
                           [{**EVENTS[0], "message": hostile}])
    for colour in (False, True):
        out = ANSI.sub("", text(screen, colour))  # our own colours removed
        assert "\x1b" not in out and "\r" not in out and "\x07" not in out
        assert "\\x1b[2J" in out
    answer = why.answer(pod("backend-1", message=hostile), {"backend-schema": schema()})
    assert "\x1b" not in ANSI.sub("", why.render(answer, Paint(True)))


def test_json_carries_the_same_facts() -> None:
    screen = status.screen(schema(), PODS, EVENTS, JOB, job_read=True)
    data = json.loads(json.dumps(screen.to_json()))
    assert data["ready"] is False and data["reason"] == "NoRevision"
    assert data["tables_missing"] == ["credit_transactions"]
    assert data["database"]["systemIdentifier"] == "7312345678901234567"
    assert data["job"]["name"] == "backend-schema-migrate-1a2b"
    assert data["job"]["now"] == "Failed"
    assert [(p["pod"], p["open"]) for p in data["pods"]] == [
        ("backend-1", False), ("backend-2", True), ("backend-3", None)]


def test_a_schema_not_checked_yet_says_so() -> None:
    fresh = schema()
    fresh["status"] = {}
    out = text(status.screen(fresh, [], []))
    assert "NotChecked" in out and "not reached yet" in out and "not read yet" in out


def test_why_names_the_schema_the_missing_table_and_the_next_step() -> None:
    answer = why.answer(pod("backend-1"), {"backend-schema": schema()})
    out = why.render(answer, Paint())
    assert answer.held
    assert "Gated by    DatabaseSchema backend-schema (readiness gate): held, NoRevision" in out
    assert "Missing     credit_transactions" in out
    assert "Next step   run the migration again: kubectl schemagate rerun backend-schema" in out
    external = why.render(why.answer(pod("backend-1"), {"backend-schema": schema("External")}),
                          Paint())
    assert "apply the migration with your own pipeline" in external


def test_why_for_an_open_pod_a_missing_schema_and_a_pod_without_a_gate() -> None:
    opened = why.answer(pod("backend-2", gate="True", reason="Verified"),
                        {"backend-schema": schema()})
    assert not opened.held and "nothing: the gate is open" in why.render(opened, Paint())
    missing = why.render(why.answer(pod("backend-1"), {"backend-schema": None}), Paint())
    assert "no DatabaseSchema named backend-schema in this namespace" in missing
    assert "create DatabaseSchema backend-schema" in missing
    bare = pod("backend-4", gate=None, readiness=False)
    unguarded = why.render(why.answer(bare, {"backend-schema": schema()}), Paint())
    assert "label only" in unguarded and "gateInjection.enabled" in unguarded
    plain = {"metadata": {"name": "web"}, "spec": {}, "status": {}}
    assert "No DatabaseSchema gates this pod" in why.render(why.answer(plain, {}), Paint())


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(("choice", "environ", "tty", "colour"), [
    ("auto", {}, True, True),
    ("auto", {}, False, False),  # piped
    ("auto", {"NO_COLOR": "1"}, True, False),
    ("auto", {"TERM": "dumb"}, True, False),
    ("always", {"NO_COLOR": "1"}, False, True),
    ("never", {}, True, False),
])
def test_colour_only_on_a_terminal_that_wants_it(choice: str, environ: dict[str, str],
                                                 tty: bool, colour: bool) -> None:
    stream = _Terminal() if tty else io.StringIO()
    assert kubectl_plugin.paint_for(choice, stream, environ).colour is colour


def test_bad_usage_exits_2() -> None:
    with pytest.raises(SystemExit) as exited:
        kubectl_plugin.main(["status", "-o", "yaml"])
    assert exited.value.code == kubectl_plugin.EXIT_USAGE


def test_no_password_reaches_the_screen_or_the_json() -> None:
    """The plugin never reads a Secret, but a message may quote a URL or a DSN: its
    password is masked in every output, whoever wrote the text."""
    leak = "could not connect to postgresql://backend:hunter2@10.0.0.5/app password=s3cret"
    hostile = schema(migration={"job": "m", "outcome": "Failed", "message": leak})
    hostile["status"]["conditions"][0]["message"] = leak
    hostile["status"]["database"]["password"] = "hunter2"  # not a field the screen reads
    pods = [pod("backend-1", message=leak)]
    screen = status.screen(hostile, pods, [{**EVENTS[0], "message": leak}])
    answer = why.answer(pods[0], {"backend-schema": hostile})
    outputs = [text(screen), text(screen, colour=True), json.dumps(screen.to_json()),
               why.render(answer, Paint()), json.dumps(answer.to_json())]
    for out in outputs:
        assert "hunter2" not in out and "s3cret" not in out
        assert "postgresql://backend:***@10.0.0.5/app" in out


def test_what_is_printed_from_a_status_is_bounded() -> None:
    """A status holds at most what the operator writes; one written by others is cut to
    the same bounds, and the text lists the first names with a count."""
    many = [f"table_{i:05}" for i in range(5000)]
    long = schema(missingTables=many)
    long["status"]["conditions"][0]["message"] = "x" * 100_000
    screen = status.screen(long, [], [])
    data = screen.to_json()
    assert len(data["tables_missing"]) == 100 and len(data["message"]) <= 2003
    out = text(screen)
    assert "table_00000, table_00001" in out and "and 90 more" in out
    assert all(len(line) < 2100 for line in out.splitlines())
    answer = why.answer(pod("backend-1", message="y" * 100_000),
                        {"backend-schema": schema(missingTables=many)})
    as_json = answer.to_json()
    assert len(as_json["gates"][0]["missing_tables"]) == 100
    assert len(as_json["gates"][0]["waits_for"]) <= 2003


def test_an_ipv6_server_is_written_as_an_address_and_port() -> None:
    s = schema()
    s["status"]["database"]["host"] = "fd00::5"
    assert "app on [fd00::5]:5432 as backend" in text(status.screen(s, [], []))
