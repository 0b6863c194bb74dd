"""`kubectl schemagate why pod/NAME`: which DatabaseSchema holds a pod, what its gate
waits for, and what to do next, from the pod's gate condition and the schema's status."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from schemagate.core.screens.facts import (
    JSON,
    condition,
    gated_by,
    pod_gate,
    readiness_gates,
    scheduling_gates,
)
from schemagate.core.screens.paint import Paint, bounded, clean
from schemagate.core.screens.status import names
from schemagate.core.wire.models import MISSING_IN_STATUS


@dataclass(frozen=True)
class GateAnswer:
    """One DatabaseSchema's hold on the pod."""

    schema: str
    #: The DatabaseSchema exists in the pod's namespace.
    found: bool
    #: How the pod is tied to it: readiness gate, scheduling gate, or label only.
    gates: list[str]
    open: bool | None
    reason: str
    waits_for: str
    missing_tables: list[str]
    next_step: str


@dataclass(frozen=True)
class PodAnswer:
    namespace: str
    pod: str
    phase: str
    gates: list[GateAnswer]

    @property
    def held(self) -> bool:
        return any(not g.open for g in self.gates)

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = bounded({**asdict(self), "held": self.held})
        return data


@dataclass(frozen=True)
class _Facts:
    """What the next step may name, from the schema and the pod."""

    schema: str
    spec: Mapping[str, Any]
    status: Mapping[str, Any]
    pod: JSON

    @property
    def secret(self) -> str:
        ref = (self.spec.get("database") or {}).get("urlSecretRef") or {}
        return f"Secret {ref.get('name', '?')} (key {ref.get('key', '?')})"

    @property
    def run(self) -> str:
        return str((self.spec.get("migrations") or {}).get("run") or "External")

    @property
    def job(self) -> str | None:
        job = (self.status.get("migration") or {}).get("job")
        return None if job is None else str(job)

    @property
    def interval(self) -> int:
        return int(self.spec.get("verifyIntervalSeconds") or 30)

    def migrate(self) -> str:
        """How this schema's migration is run again."""
        if self.run == "External":
            return ("apply the migration with your own pipeline (migrations.run: External); "
                    "the next check sees it")
        return f"run the migration again: kubectl schemagate rerun {self.schema}"


Step = Callable[[_Facts], str]

_STEPS: dict[str, Step] = {
    "Verified": lambda f: "nothing: the schema is verified; the gate opens on the next check",
    "TablesElsewhere": lambda f: (
        f"the tables exist, but elsewhere: point the URL in {f.secret} at the database and "
        "schema they are in (its search_path too), or migrate the database it names"),
    "NoRevision": lambda f: f.migrate() + "; no migration is recorded in this database",
    "StampedButMissing": lambda f: (
        "the version table says migrated, yet tables are missing: the migration ran against "
        "another database or schema, or was stamped; " + f.migrate()),
    "TablesMissing": lambda f: f.migrate(),
    "ColumnsMismatch": lambda f: (
        "a declared column differs: " + f.migrate() + ", or correct spec.columns"),
    "RevisionMismatch": lambda f: (
        f.migrate() + ", or correct spec.migrations.expectedRevisions"),
    "RevisionNotApplied": lambda f: (
        "the pod needs the revision in its annotation schemagate.io/revision: " + f.migrate()),
    "MigrationRunning": lambda f: (
        "wait for the migration to end" + (f": kubectl logs job/{f.job}" if f.job else "")),
    "MigrationFailed": lambda f: (
        ("read why it failed: kubectl logs job/" + f.job + "; fix it, then " if f.job else
         "fix the migration, then ") + f"kubectl schemagate rerun {f.schema}"),
    "MigrationNoOp": lambda f: (
        "the migration ended well but changed nothing: check that it reads the right "
        "revision files (alembic.ini script_location) and URL, then "
        f"kubectl schemagate rerun {f.schema}"),
    "MigrationLockBusy": lambda f: (
        "another migrator holds the migration lock: wait for it; it is looked at again soon"),
    "AwaitingFreshCheck": lambda f: (
        f"nothing: the next check (every {f.interval} s) decides; it must start after the "
        "pod was created"),
    "DatabaseUnreachable": lambda f: (
        f"the operator cannot reach the database: check the host in {f.secret}, the "
        "network policies and the server"),
    "AuthenticationFailed": lambda f: f"the server refused the credentials: fix {f.secret}",
    "SecretNotFound": lambda f: f"create {f.secret} in the pod's namespace",
    "InvalidSpec": lambda f: (
        f"correct DatabaseSchema {f.schema} as its message says: kubectl edit dbschema/"
        f"{f.schema}"),
    "VerifyPodFailed": lambda f: (
        "the verify pod did not come to a verdict: kubectl describe pod "
        + str((f.status.get("database") or {}).get("verifyPod") or
              f"-l schemagate.io/verify-of={f.schema}")),
    "DatabaseSchemaNotFound": lambda f: (
        f"create DatabaseSchema {f.schema}, or remove the gate schemagate.io/{f.schema} from "
        "the pod's template"),
    "PodNotSelected": lambda f: (
        f"the gate.podSelector of DatabaseSchema {f.schema} does not select this pod: give "
        "the pod's template the labels it selects, or widen the selector"),
    "GateReleased": lambda f: "nothing: the DatabaseSchema was deleted and its gate opened",
}


def next_step(reason: str, facts: _Facts) -> str:
    step = _STEPS.get(reason)
    return step(facts) if step is not None else "read the message above; it says what to do"


def answer(pod: JSON, schemas: Mapping[str, JSON | None]) -> PodAnswer:
    """Why `pod` is held; `schemas` maps each name the pod is gated by (`gated_by`) to its
    DatabaseSchema, or None when there is none."""
    meta = pod.get("metadata") or {}
    gates = [_gate_answer(pod, name, schemas.get(name)) for name in gated_by(pod)]
    return PodAnswer(namespace=str(meta.get("namespace", "")), pod=str(meta.get("name", "")),
                     phase=str((pod.get("status") or {}).get("phase") or "Unknown"),
                     gates=gates)


def _gate_answer(pod: JSON, name: str, obj: JSON | None) -> GateAnswer:
    g = pod_gate(pod, name)
    ties = [kind for kind, held in (("readiness gate", name in readiness_gates(pod)),
                                    ("scheduling gate", name in scheduling_gates(pod))) if held]
    status = (obj or {}).get("status") or {}
    facts = _Facts(name, (obj or {}).get("spec") or {}, status, pod)
    if obj is None:
        reason = "DatabaseSchemaNotFound"
        waits = f"no DatabaseSchema named {name} in this namespace"
    elif not ties:
        reason, waits = "NotGated", ("the pod asks for it by its label schemagate.io/schema, "
                                     "but carries no gate: nothing holds it")
    elif g.open is None:
        ready = condition(obj, "Ready")
        reason = str(ready.get("reason") or "NotChecked")
        waits = ("the operator has not written this pod's gate yet; the schema says: "
                 + str(ready.get("message") or "not checked yet"))
    else:
        reason, waits = g.reason, g.message
    step = next_step(reason, facts) if not g.open else "nothing: the gate is open"
    if reason == "NotGated":
        step = ("recreate the pod with the chart's gate injection on (gateInjection.enabled), "
                f"or add the readiness gate schemagate.io/{name} to its template")
    elif g.open is None and obj is not None and ties:
        step = ("is the operator running? It writes the gate within one check; "
                + next_step(reason, facts))
    return GateAnswer(schema=name, found=obj is not None, gates=ties, open=g.open,
                      reason=reason, waits_for=waits,
                      missing_tables=[str(t) for t in
                                      (status.get("missingTables") or [])[:MISSING_IN_STATUS]],
                      next_step=step)


def render(a: PodAnswer, p: Paint) -> str:
    lines = [f"{p.bold('Pod')} {p.name(clean(a.pod))}  {p.dim('namespace ' + clean(a.namespace))}"
             f"  {clean(a.phase, 20)}"]
    if not a.gates:
        lines.append("No DatabaseSchema gates this pod: it carries no schemagate.io/ gate "
                     "and no label schemagate.io/schema.")
    for g in a.gates:
        lines += _render_gate(g, p)
    return "\n".join(lines) + "\n"


def _render_gate(g: GateAnswer, p: Paint) -> list[str]:
    state = "open" if g.open else "held"
    how = " and ".join(g.gates) or "label only"
    lines = [f"{p.bold('Gated by')}    DatabaseSchema {p.name(clean(g.schema))} ({how}): "
             f"{p.state(g.open, state)}" + (f", {clean(g.reason, 60)}" if not g.open else "")]
    if not g.open:
        lines.append(f"{p.bold('Waits for')}   {clean(g.waits_for)}")
        if g.missing_tables:
            lines.append(f"{p.bold('Missing')}     {names(g.missing_tables)}")
    lines.append(f"{p.bold('Next step')}   {clean(g.next_step)}")
    return lines


def exit_held(answers: Sequence[PodAnswer]) -> bool:
    return any(a.held for a in answers)
