"""Declared columns, decided over plain data: precedence, messages, the spec, the gate,
status and the snapshot file. No sockets."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import yaml
from pydantic import ValidationError

from schemagate.core.check import snapshot as snap
from schemagate.core.check.columns import (
    ColumnFinding,
    ColumnMismatch,
    ColumnRequirement,
    FoundColumn,
)
from schemagate.core.check.requirement import requirement_for
from schemagate.core.check.verdict import Fingerprint, Observation, Requirement, Verdict, decide
from schemagate.core.gate import readiness as gate
from schemagate.core.status.outcome import from_verdict, next_status
from schemagate.core.wire.models import (
    MISMATCHES_IN_STATUS,
    DatabaseSchemaSpec,
    DatabaseSchemaStatus,
    DriftPolicy,
    GateStatus,
)
from schemagate.core.wire.reasons import SCHEMA_NOT_AS_DECLARED, Reason
from tests.unit.test_gate import check, pod
from tests.unit.test_gate import decide as gate_decision

FP = Fingerprint(host="10.0.0.5", port=5432, database="app", user="app",
                 search_path="public", server_version="18.1")
PLAN_ID = ColumnRequirement("subscriptions", "plan_id", "integer", False)
AMOUNT = ColumnRequirement("credit_transactions", "amount", "numeric(12,2)", False)
NOTE = ColumnRequirement("credit_transactions", "note")


def requirement(*columns: ColumnRequirement, **kw: object) -> Requirement:
    return Requirement(**{"tables": ("subscriptions", "credit_transactions"),  # type: ignore
                          "columns": columns or (PLAN_ID, AMOUNT, NOTE), **kw})


def observation(*findings: ColumnFinding, present: tuple[str, ...] = (
        "subscriptions", "credit_transactions"), revisions: set[str] | None = None
                ) -> Observation:
    return Observation(present_tables=frozenset(present),
                       current_revisions=None if revisions is None else frozenset(revisions),
                       found_elsewhere=(), fingerprint=FP, column_findings=findings)


def finding(column: ColumnRequirement, type_: str | None, nullable: bool = True,
            similar: tuple[str, ...] = ()) -> ColumnFinding:
    found = None if type_ is None else FoundColumn(type_, nullable)
    return ColumnFinding(column.table, column.name, found, similar)


def test_columns_as_declared_verify_and_say_so() -> None:
    verdict = decide(requirement(), observation(revisions={"3f2a9c"}))
    assert verdict.reason is Reason.VERIFIED
    assert verdict.column_mismatches == ()
    assert "all 2 declared tables are present in schema public of database app on " \
           "10.0.0.5:5432, with all 3 declared columns" in verdict.message


def test_a_missing_column_is_a_columns_mismatch_naming_table_and_column() -> None:
    verdict = decide(requirement(), observation(finding(PLAN_ID, None), revisions={"3f2a9c"}))
    assert verdict.reason is Reason.COLUMNS_MISMATCH and not verdict.verified
    assert verdict.message == (
        "1 declared column of 1 table differs in schema public of database app on "
        "10.0.0.5:5432: subscriptions.plan_id missing; public.alembic_version records 3f2a9c "
        "(a migration stamped without these columns, or a change made by hand?)")
    assert verdict.to_json()["column_mismatches"] == [{
        "table": "subscriptions", "column": "plan_id",
        "expected": {"type": "integer", "nullable": False}, "found": None, "similar": []}]


@pytest.mark.parametrize(("found", "says"), [
    (("bigint", False), "subscriptions.plan_id is bigint, declared integer"),
    (("integer", True), "subscriptions.plan_id is nullable, declared NOT NULL"),
    (("bigint", True), "subscriptions.plan_id is bigint nullable, declared integer NOT NULL"),
])
def test_type_and_nullability_say_what_was_found_instead(found: tuple[str, bool],
                                                         says: str) -> None:
    verdict = decide(requirement(revision_check=False),
                     observation(finding(PLAN_ID, *found)))
    assert verdict.reason is Reason.COLUMNS_MISMATCH
    assert says in verdict.message
    assert verdict.message.endswith("(revision not checked)")


def test_what_was_not_declared_is_not_checked() -> None:
    # NOTE declares neither type nor nullability; a finding that matches is no mismatch.
    verdict = decide(requirement(revision_check=False), observation(
        finding(NOTE, "character varying(8)", False), finding(PLAN_ID, "integer", False)))
    assert verdict.reason is Reason.VERIFIED


def test_findings_for_undeclared_columns_or_missing_tables_do_not_count() -> None:
    stray = ColumnFinding("subscriptions", "undeclared", None)
    verdict = decide(requirement(revision_check=False), observation(stray))
    assert verdict.reason is Reason.VERIFIED
    verdict = decide(requirement(revision_check=False),
                     observation(finding(AMOUNT, None), present=("subscriptions",)))
    assert verdict.reason is Reason.TABLES_MISSING
    assert verdict.column_mismatches == ()


def test_missing_tables_come_first_and_the_columns_are_still_said() -> None:
    verdict = decide(requirement(), observation(finding(PLAN_ID, "bigint", False),
                                                present=("subscriptions",),
                                                revisions={"3f2a9c"}))
    assert verdict.reason is Reason.STAMPED_BUT_MISSING
    assert verdict.missing_tables == ("credit_transactions",)
    assert [m.declared for m in verdict.column_mismatches] == [PLAN_ID]
    assert verdict.message.endswith(
        "; columns also differ: subscriptions.plan_id is bigint, declared integer")


def test_columns_come_before_the_revision_and_name_it() -> None:
    pending = decide(requirement(expected_revisions=frozenset({"4b1d07"})),
                     observation(finding(PLAN_ID, None), revisions={"3f2a9c"}))
    assert pending.reason is Reason.COLUMNS_MISMATCH
    assert pending.message.endswith(
        "public.alembic_version records 3f2a9c, expected 4b1d07 (migrations pending?)")
    unrecorded = decide(requirement(), observation(finding(PLAN_ID, None), revisions=None))
    assert unrecorded.reason is Reason.COLUMNS_MISMATCH
    assert unrecorded.message.endswith(
        "no migration is recorded: public.alembic_version does not exist")
    assert Reason.COLUMNS_MISMATCH in SCHEMA_NOT_AS_DECLARED  # exit status 1, drift


def test_case_differences_are_named_and_identifiers_quoted() -> None:
    column = ColumnRequirement("Billing", "planid")
    verdict = decide(Requirement(columns=(column,), revision_check=False),
                     Observation(present_tables=frozenset({"Billing"}), current_revisions=None,
                                 found_elsewhere=(), fingerprint=FP,
                                 column_findings=(finding(column, None, similar=("PlanId",)),)))
    assert ('"Billing".planid missing (the table has "PlanId": names match exactly, case '
            "included)") in verdict.message


def test_many_mismatches_keep_the_message_short_and_the_fields_whole() -> None:
    columns = tuple(ColumnRequirement(f"t{i:05d}", "amount", "integer") for i in range(10_000))
    present = frozenset(c.table for c in columns)
    verdict = decide(Requirement(columns=columns, revision_check=False),
                     Observation(present_tables=present, current_revisions=None,
                                 found_elsewhere=(), fingerprint=FP,
                                 column_findings=tuple(finding(c, "t" * 256) for c in columns)))
    assert len(verdict.column_mismatches) == 10_000
    assert verdict.message.startswith("10,000 declared columns of 10,000 tables differ")
    assert "and 9,995 more" in verdict.message
    assert len(verdict.message) < 1_000


def test_tables_named_by_columns_count_as_declared() -> None:
    req = Requirement(tables=("a",), columns=(ColumnRequirement("b", "x"),
                                              ColumnRequirement("a", "y")))
    assert req.tables == ("a", "b")
    with pytest.raises(ValueError, match="declared twice"):
        Requirement(columns=(ColumnRequirement("b", "x"), ColumnRequirement("b", "x")))
    with pytest.raises(ValueError):
        Requirement(columns=(ColumnRequirement("b", ""),))


SPEC = {"database": {"urlSecretRef": {"name": "db", "key": "URL"}},
        "tables": ["subscriptions"]}


def test_the_spec_declares_columns_per_table() -> None:
    spec = DatabaseSchemaSpec.model_validate({**SPEC, "columns": [
        {"table": "subscriptions", "columns": [
            {"name": "plan_id", "type": "integer", "nullable": False}, {"name": "plan"}]},
        {"table": "credit_transactions", "columns": [{"name": "amount"}]}]})
    req = requirement_for(spec)
    assert req.tables == ("subscriptions", "credit_transactions")
    assert req.columns == (ColumnRequirement("subscriptions", "plan_id", "integer", False),
                           ColumnRequirement("subscriptions", "plan"),
                           ColumnRequirement("credit_transactions", "amount"))
    assert requirement_for(DatabaseSchemaSpec.model_validate(SPEC)).columns == ()


@pytest.mark.parametrize(("columns", "says"), [
    ([{"table": "t", "columns": [{"name": "a"}, {"name": "a"}]}], "declared twice"),
    ([{"table": "t", "columns": [{"name": "a"}]}, {"table": "t", "columns": [{"name": "b"}]}],
     "appears twice"),
    ([{"table": "t", "columns": []}], "at least 1"),
    ([{"table": "t", "columns": [{"name": "a", "type": ""}]}], "at least 1"),
    ([{"table": "t", "columns": [{"name": "a" * 64}]}], "at most 63"),
])
def test_a_spec_that_cannot_be_checked_is_refused(columns: object, says: str) -> None:
    with pytest.raises(ValidationError, match=says):
        DatabaseSchemaSpec.model_validate({**SPEC, "columns": columns})


@pytest.mark.parametrize(("policy", "held_open"), [(DriftPolicy.HOLD, True),
                                                    (DriftPolicy.CLOSE, False)])
def test_a_column_drift_is_drift(policy: DriftPolicy, held_open: bool) -> None:
    state = gate.gate_state(verified=False, reason=Reason.COLUMNS_MISMATCH.value,
                            message="1 declared column differs", on_drift=policy)
    new_pod = gate_decision(check(state), pod(open_=False))
    old_pod = gate_decision(check(state), pod(open_=True))
    assert new_pod.status is False and new_pod.reason == "ColumnsMismatch"
    assert old_pod.status is held_open


def test_status_carries_a_bounded_list_of_mismatches() -> None:
    columns = tuple(ColumnRequirement("t", f"c{i}", "integer") for i in range(500))
    verdict = decide(Requirement(columns=columns, revision_check=False),
                     Observation(present_tables=frozenset({"t"}), current_revisions=None,
                                 found_elsewhere=(), fingerprint=FP,
                                 column_findings=tuple(finding(c, None) for c in columns)))
    status = next_status(DatabaseSchemaStatus(), outcome=from_verdict(verdict), generation=1,
                         gate=GateStatus(condition_type="schemagate.io/x"),
                         now=datetime(2026, 3, 1, tzinfo=UTC))
    wire = status.model_dump(by_alias=True, mode="json", exclude_none=True)
    assert len(wire["columnMismatches"]) == MISMATCHES_IN_STATUS
    assert wire["columnMismatches"][0] == {"table": "t", "column": "c0",
                                           "expected": {"type": "integer"}}
    assert "500 declared columns of 1 table differ" in wire["conditions"][0]["message"]


WEIRD = ["id", "PlanId", "on", "null", "plan id", 'a"b', "Ünïcode", "yes", "x: y", "a#b",
         "-", "1abc", "[x]", "tab\there"]


@pytest.mark.parametrize("output", ["yaml", "json"])
def test_what_snapshot_prints_reads_back_as_it_was(output: snap.Format) -> None:
    types = ["character varying(64)", "numeric(12,2)", "text[]", '"MyType"', "bigint"]
    columns = tuple(ColumnRequirement("On" if i % 2 else "weird, table", name,
                                      types[i % len(types)], i % 3 == 0)
                    for i, name in enumerate(WEIRD))
    taken = snap.Snapshot("public", ("weird, table", "On", "empty"), columns, (), FP)
    text = snap.render(taken, output)
    assert yaml.safe_load(text) == snap.document(taken)
    fragment = snap.parse(text)
    assert fragment.tables == ["weird, table", "On", "empty"]
    assert [(c.name, c.type, c.nullable) for entry in fragment.columns
            for c in entry.columns] == [(c.name, c.type, c.nullable) for c in
                                        sorted(columns, key=lambda c: c.table != "weird, table")]
    assert "10.0.0.5" not in text and "18.1" not in text  # nothing of the server's


def test_a_migration_that_fixed_some_columns_is_no_no_op() -> None:
    from schemagate.core.migration import judge as migration
    from schemagate.core.wire.models import MigrationSnapshot

    def columns_differ(count: int) -> Verdict:
        return Verdict(verified=False, reason=Reason.COLUMNS_MISMATCH, message="m",
                       current_revisions=frozenset({"r1"}), fingerprint=FP,
                       column_mismatches=tuple(ColumnMismatch(PLAN_ID, None)
                                               for _ in range(count)))

    before = migration.snapshot(columns_differ(2), declared=2)
    assert before == MigrationSnapshot(revision=["r1"], tables_present=2, column_mismatches=2)
    unchanged, word = migration.judge_success("Job j", columns_differ(2), before, declared=2)
    assert (unchanged.reason, word) == (Reason.MIGRATION_NO_OP, migration.NO_OP)
    assert "2 declared columns differing" in unchanged.message
    partial, word = migration.judge_success("Job j", columns_differ(1), before, declared=2)
    assert (partial.reason, word) == (Reason.COLUMNS_MISMATCH, migration.APPLIED)


def test_what_render_wrote_is_read_without_pyyaml_and_as_pyyaml_reads_it() -> None:
    columns = tuple(ColumnRequirement("t", name, "numeric(12,2)" if i % 2 else "text[]",
                                      i % 2 == 0) for i, name in enumerate(WEIRD))
    text = snap.render(snap.Snapshot("public", ("t", "On"), columns, (), FP))
    assert snap.read_rendered(text) == yaml.safe_load(text)
    # Edited by hand: another layout goes to PyYAML, and reads the same.
    edited = text.replace("  - {name: id, type: text[], nullable: true}",
                          '  - name: id\n    type: "text[]"\n    nullable: true')
    edited = edited.replace('  - {name: id, type: "text[]", nullable: true}',
                            '  - name: id\n    type: "text[]"\n    nullable: true')
    assert edited != text and snap.read_rendered(edited) is None
    assert snap.parse(edited) == snap.parse(text)
    for broken in ("tables:\n- yes\n", "tables:\n- a\ncolumns:\n- table: a\n  columns:\n"
                   "  - {name: x, nullable: maybe}\n", "tables:\n- a  \n"):
        assert snap.read_rendered(broken) is None, broken
