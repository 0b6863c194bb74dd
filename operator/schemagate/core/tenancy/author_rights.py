"""Whether the API server checks a DatabaseSchema author's rights before the operator
lends its own (pure).

`run: Job`, `run: Alembic` and `verifyFrom: Pod` make the operator create Jobs and pods
with rights its tenants may lack. The chart's ValidatingAdmissionPolicy refuses a
DatabaseSchema whose author could not do the same; it acts only through its binding.
Without the binding nothing checks, so these modes are refused, unless the operator
was told (`--no-author-rights`, the chart's `authorRights.enabled: false`) that the
cluster has no such policy and whoever may write DatabaseSchemas is trusted.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Any

from schemagate.core.wire.models import DatabaseSchemaSpec, MigrationRun, VerifyFrom


class Binding(StrEnum):
    """The policy binding as the operator found it."""

    ENFORCED = "enforced"
    #: It exists, but only warns or audits: nothing is refused.
    NOT_DENYING = "not denying"
    MISSING = "missing"
    #: The operator may not read it (RBAC made by hand, without this rule).
    UNREADABLE = "unreadable"


def state_of(binding: Mapping[str, Any] | None) -> Binding:
    if binding is None:
        return Binding.MISSING
    actions = (binding.get("spec") or {}).get("validationActions") or ()
    return Binding.ENFORCED if "Deny" in actions else Binding.NOT_DENYING


def borrowing(spec: DatabaseSchemaSpec) -> tuple[str, ...]:
    """The modes of `spec` that act with the operator's rights on its author's behalf."""
    modes = []
    if spec.migrations.run is MigrationRun.JOB:
        modes.append("migrations.run: Job")
    elif spec.migrations.run is MigrationRun.ALEMBIC:
        modes.append("migrations.run: Alembic")
    if spec.database.verify_from is VerifyFrom.POD:
        modes.append("database.verifyFrom: Pod")
    return tuple(modes)


_WHY = {
    Binding.NOT_DENYING: "only warns or audits (its validationActions lack Deny)",
    Binding.MISSING: "is not installed",
    Binding.UNREADABLE: "cannot be read by the operator (it needs get on "
                        "validatingadmissionpolicybindings, for that name, as the chart grants)",
}


def refusal(modes: tuple[str, ...], binding: str | None, state: Binding | None) -> str | None:
    """Why `modes` may not run, or None. `binding` None: the operator was told the
    cluster checks no author's rights, and runs them anyway."""
    if not modes or binding is None or state is Binding.ENFORCED:
        return None
    why = _WHY[state or Binding.MISSING]
    return (f"{' and '.join(modes)}: the operator would create a Job or a pod with its own "
            f"rights, and the admission policy binding {binding}, which refuses a "
            f"DatabaseSchema whose author lacks those rights, {why}: nothing runs until it "
            "is in force. Install the "
            "chart with authorRights.enabled=true (Kubernetes 1.30 and later); on a cluster "
            "without that policy, the chart's authorRights.enabled=false (schemagate run "
            "--no-author-rights) runs them for whoever may write a DatabaseSchema")
