"""docs/reference.md says what the code does: every reason, condition, status field,
option and metric, and nothing that is not there."""

from __future__ import annotations

import re
from pathlib import Path

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from schemagate import crd
from schemagate.cli import build_parser
from schemagate.core.gate import readiness as gate
from schemagate.core.migration import judge as migration
from schemagate.core.status import conditions
from schemagate.core.status.outcome import NEEDS_A_PERSON
from schemagate.core.wire.reasons import Reason
from schemagate.metrics import Metrics

ROOT = Path(__file__).resolve().parents[2]
TEXT = (ROOT / "docs" / "reference.md").read_text()


def section(title: str) -> str:
    return TEXT.split(f"## {title}\n", 1)[1].split("\n## ", 1)[0]


def first_column(title: str) -> list[str]:
    return re.findall(r"^\| `([^`]+)` \|", section(title), re.MULTILINE)


def test_every_reason_and_no_other() -> None:
    documented = first_column("Reasons")
    gate_only = {gate.SCHEMA_NOT_FOUND, gate.POD_NOT_SELECTED, gate.GATE_RELEASED,
                 migration.MIGRATION_RUNNING, migration.MIGRATION_LOCK_BUSY}
    assert set(documented) == {r.value for r in Reason} | gate_only
    stalled = dict(re.findall(r"^\| `(\w+)` \| .* \| (yes|no|once not retried) \|$",
                              section("Reasons"), re.MULTILINE))
    assert {r for r, s in stalled.items() if s == "yes"} == {r.value for r in NEEDS_A_PERSON}
    assert stalled[Reason.MIGRATION_FAILED.value] == "once not retried"


def test_every_condition_type() -> None:
    types = {v for k, v in vars(conditions).items() if k.isupper() and isinstance(v, str)}
    assert set(first_column("Conditions")) == types


def test_every_status_field_of_the_crd() -> None:
    status = crd.custom_resource_definition()["spec"]["versions"][0]["schema"][
        "openAPIV3Schema"]["properties"]["status"]
    assert set(first_column("Status")) == set(status["properties"])


def options(command: str) -> set[str]:
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    actions = sub.choices[command]._actions  # type: ignore[attr-defined]
    return {a.option_strings[0] for a in actions if a.option_strings
            and a.option_strings[0] != "-h"}


def test_every_option_of_verify_and_run() -> None:
    for command in ("verify", "run"):
        documented = {cell.split()[0] for cell in first_column(f"schemagate {command}")}
        assert documented == options(command), command


def test_every_metric_and_no_other() -> None:
    exported = {family.name for family in text_string_to_metric_families(
        generate_latest(Metrics().registry).decode())
        if family.name.startswith("schemagate_") and not family.name.endswith("_created")}
    documented = {cell.split("{")[0].removesuffix("_total")
                  for cell in first_column("Metrics")}
    assert documented == exported
