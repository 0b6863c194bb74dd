"""The start-up gate: when a pod held before its start may start (pure).

With `spec.gate.holdStart: true`, the chart's admission policy gives each new pod
labelled `schemagate.io/schema: <name>` the scheduling gate `schemagate.io/<name>`
besides its readiness gate. The scheduler leaves the pod Pending (no node, no container)
until the gate is removed, so a backend that exits when its tables are missing never
starts, crashes and backs off. The gate goes when the readiness gate opens the pod by
the same rules (fresh check, latest generation, revisions applied).
"""

from __future__ import annotations

from schemagate.core.gate.readiness import (
    PREFIX,
    REVISION_NOT_APPLIED,
    GateState,
    PodCondition,
    PodView,
)


def scheduling_gate(schema_name: str) -> str:
    """The scheduling gate's name: the same as the readiness gate's condition type."""
    return PREFIX + schema_name


def may_start(state: GateState, pod: PodView, wanted: PodCondition) -> bool:
    """The held pod's readiness gate opens now, by a check that opens new pods. A pod only
    held open (the database unreachable, drift under onDrift: Hold) stays held: it never
    ran against this schema."""
    return pod.held and wanted.status and state.open_new and \
        wanted.reason != REVISION_NOT_APPLIED


def held_schemas(scheduling_gates: object) -> frozenset[str]:
    """The DatabaseSchema names a pod's `spec.schedulingGates` hold it for."""
    if not isinstance(scheduling_gates, list):
        return frozenset()
    return frozenset(g["name"][len(PREFIX):] for g in scheduling_gates
                     if isinstance(g, dict) and str(g.get("name", "")).startswith(PREFIX))
