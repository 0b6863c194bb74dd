"""How GitOps tools read a DatabaseSchema: kstatus (Flux, kpt) and Argo CD's Lua check.

The objects are what the operator writes (`next_status`), served the way the API server
serves them (the CRD's status default on an object not yet checked).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import lupa
import pytest
import yaml

from schemagate import crd
from schemagate.core.migration import judge as migration
from schemagate.core.status import conditions as cond
from schemagate.core.status.outcome import Outcome, next_status
from schemagate.core.wire.models import DatabaseSchemaStatus, GateStatus
from schemagate.core.wire.reasons import Reason
from tests import kstatus

ROOT = Path(__file__).resolve().parents[2]
HEALTH_LUA = ROOT / "contrib" / "argocd" / "health.lua"
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
GATE = GateStatus(condition_type="schemagate.io/backend-schema", pods=2, ready=0)


def served(status: dict[str, Any] | None, generation: int = 1) -> dict[str, Any]:
    """The object as `kubectl get -o json` shows it: the CRD's defaults filled in."""
    obj: dict[str, Any] = {"apiVersion": "schemagate.io/v1alpha1", "kind": "DatabaseSchema",
                           "metadata": {"name": "backend-schema", "namespace": "team-a",
                                        "generation": generation}}
    if status is None:
        schema = crd.custom_resource_definition()["spec"]["versions"][0]["schema"]
        status = dict(schema["openAPIV3Schema"]["properties"]["status"]["default"])
    obj["status"] = status
    return obj


def written(outcome: Outcome, generation: int = 1,
            previous: DatabaseSchemaStatus | None = None) -> DatabaseSchemaStatus:
    return next_status(previous or DatabaseSchemaStatus(), outcome=outcome,
                       generation=generation, gate=GATE, now=T0)


def wire(status: DatabaseSchemaStatus) -> dict[str, Any]:
    out: dict[str, Any] = status.model_dump(by_alias=True, mode="json", exclude_none=True)
    return out


def argocd_health(obj: dict[str, Any]) -> dict[str, str]:
    """Runs health.lua the way Argo CD does: `obj` global, a table returned."""
    runtime = lupa.LuaRuntime(unpack_returned_tuples=True)
    runtime.globals().obj = _to_lua(runtime, obj)
    result = runtime.execute(HEALTH_LUA.read_text())
    return {"status": str(result["status"]), "message": str(result["message"])}


def _to_lua(runtime: Any, value: Any) -> Any:
    if isinstance(value, dict):
        return runtime.table_from({k: _to_lua(runtime, v) for k, v in value.items()})
    if isinstance(value, list):
        return runtime.table_from([_to_lua(runtime, v) for v in value])
    return value


VERIFIED = Outcome(Reason.VERIFIED, "3 declared tables in schema public, revision 3f2a9c")
NEEDS_A_PERSON = {
    "InvalidSpec": Outcome(Reason.INVALID_SPEC, "spec.tables: Field required"),
    "SecretNotFound": Outcome(Reason.SECRET_NOT_FOUND, "Secret backend-db not found"),
    "AuthenticationFailed": Outcome(Reason.AUTHENTICATION_FAILED,
                                    "password authentication failed for user backend"),
    "MigrationNoOp": Outcome(Reason.MIGRATION_NO_OP,
                             "migration Job m reported success but the database is unchanged"),
    "MigrationFailed": migration.failed("alembic upgrade heads", "syntax error", None),
}
WILL_GET_BETTER = {
    "TablesMissing": Outcome(Reason.TABLES_MISSING, "subscriptions missing from public"),
    "NoRevision": Outcome(Reason.NO_REVISION, "no migration recorded"),
    "DatabaseUnreachable": Outcome(Reason.DATABASE_UNREACHABLE, "timeout"),
}


def test_a_new_object_with_no_status_is_in_progress_not_current() -> None:
    obj = served(None)
    assert kstatus.compute(obj)[0] == kstatus.IN_PROGRESS
    health = argocd_health(obj)
    assert health["status"] == "Progressing"
    assert "first check" in health["message"]
    # The operator's first write replaces the default.
    assert DatabaseSchemaStatus.model_validate(obj["status"]).conditions == []


def test_a_verified_schema_is_current_and_healthy() -> None:
    obj = served(wire(written(VERIFIED)))
    assert kstatus.compute(obj)[0] == kstatus.CURRENT
    assert argocd_health(obj) == {"status": "Healthy",
                                  "message": f"{VERIFIED.message}; 0 of 2 gated pods open"}


@pytest.mark.parametrize("case", NEEDS_A_PERSON)
def test_what_needs_a_person_is_stalled_failed_and_degraded(case: str) -> None:
    outcome = NEEDS_A_PERSON[case]
    obj = served(wire(written(outcome)))
    assert kstatus.compute(obj) == (kstatus.FAILED, outcome.message)
    health = argocd_health(obj)
    assert health["status"] == "Degraded"
    assert health["message"] == f"{outcome.reason.value}: {outcome.message}"


@pytest.mark.parametrize("case", WILL_GET_BETTER)
def test_what_may_get_better_by_itself_is_in_progress(case: str) -> None:
    outcome = WILL_GET_BETTER[case]
    obj = served(wire(written(outcome)))
    assert kstatus.compute(obj) == (kstatus.IN_PROGRESS, outcome.message)
    health = argocd_health(obj)
    assert health["status"] == "Progressing"
    assert health["message"].startswith(f"{outcome.reason.value}: {outcome.message}")


def test_a_spec_not_yet_checked_is_in_progress_whatever_the_conditions_say() -> None:
    obj = served(wire(written(VERIFIED, generation=1)), generation=2)
    assert kstatus.compute(obj) == (
        kstatus.IN_PROGRESS, "DatabaseSchema generation is 2, but latest observed generation is 1")
    assert argocd_health(obj)["status"] == "Progressing"
    stalled = served(wire(written(NEEDS_A_PERSON["InvalidSpec"], generation=1)), generation=2)
    assert kstatus.compute(stalled)[0] == kstatus.IN_PROGRESS
    assert argocd_health(stalled)["status"] == "Progressing"


def test_fixed_by_a_person_leaves_stalled() -> None:
    stalled = written(NEEDS_A_PERSON["SecretNotFound"])
    fixed = written(VERIFIED, generation=1, previous=stalled)
    obj = served(wire(fixed))
    assert kstatus.compute(obj)[0] == kstatus.CURRENT
    assert argocd_health(obj)["status"] == "Healthy"
    assert cond.find(fixed.conditions, cond.STALLED).status == "False"  # type: ignore[union-attr]


@pytest.mark.parametrize("outcome", [VERIFIED, *NEEDS_A_PERSON.values(),
                                     *WILL_GET_BETTER.values()], ids=lambda o: o.reason.value)
def test_status_and_every_condition_carry_the_observed_generation(outcome: Outcome) -> None:
    status = wire(written(outcome, generation=7))
    assert status["observedGeneration"] == 7
    assert {c["type"] for c in status["conditions"]} == {
        "Ready", "SchemaVerified", "MigrationsApplied", "Stalled", "Reconciling"}
    assert all(c["observedGeneration"] == 7 for c in status["conditions"])


def test_the_shipped_crd_carries_the_status_default() -> None:
    shipped = yaml.safe_load((ROOT / "crds" / "databaseschemas.schemagate.io.yaml").read_text())
    status = shipped["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["status"]
    assert status["default"] == {"observedGeneration": 0}


def test_the_argocd_cm_snippet_in_the_docs_is_the_shipped_lua() -> None:
    text = (ROOT / "docs" / "gitops.md").read_text()
    block = text.split("```yaml\n", 1)[1].split("```", 1)[0]
    config_map = yaml.safe_load(block)
    assert config_map["metadata"]["name"] == "argocd-cm"
    key = "resource.customizations.health.schemagate.io_DatabaseSchema"
    assert config_map["data"][key] == HEALTH_LUA.read_text()
