"""The readiness gate: which pods may be Ready, decided over plain data.

Fail closed for new pods, hold steady for old ones. A pod is set True only on a
schema verified at its current generation; a pod already True stays True while the
database is merely unreachable, and on drift only when `onDrift: Hold`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from schemagate.core.models import DriftPolicy, LabelSelector, SelectorOperator
from schemagate.core.reasons import CONNECTION_FAILURES, Reason

PREFIX = "schemagate.io/"
GATE_RELEASED = "GateReleased"
SCHEMA_NOT_FOUND = "DatabaseSchemaNotFound"
POD_NOT_SELECTED = "PodNotSelected"

# Reasons that say nothing about the schema itself: the operator could not look.
_CANNOT_LOOK = CONNECTION_FAILURES | {Reason.SECRET_NOT_FOUND, Reason.INVALID_SPEC}


def gate_condition_type(schema_name: str) -> str:
    return PREFIX + schema_name


def schema_names_gating(readiness_gates: Iterable[Mapping[str, str]]) -> list[str]:
    """The DatabaseSchema names a pod's `spec.readinessGates` wait for."""
    return [g["conditionType"][len(PREFIX):] for g in readiness_gates
            if g.get("conditionType", "").startswith(PREFIX)]


@dataclass(frozen=True)
class GateState:
    """What one DatabaseSchema allows, after its latest check."""

    open_new: bool  # a pod not yet Ready may be set True
    keep_open: bool  # a pod already True stays True
    reason: str
    message: str


@dataclass(frozen=True)
class PodCondition:
    status: bool
    reason: str
    message: str


def gate_state(*, verified: bool, reason: str, message: str, on_drift: DriftPolicy) -> GateState:
    if verified:
        return GateState(True, True, reason, message)
    if reason in _CANNOT_LOOK:
        return GateState(False, True, reason, message)
    return GateState(False, on_drift is DriftPolicy.HOLD, reason, message)


def released(schema_name: str) -> GateState:
    return GateState(True, True, GATE_RELEASED,
                     f"DatabaseSchema {schema_name} was deleted; its gate no longer holds pods")


def schema_missing(schema_name: str) -> GateState:
    return GateState(False, False, SCHEMA_NOT_FOUND,
                     f"no DatabaseSchema named {schema_name} in this namespace; create it or "
                     f"remove the readiness gate {gate_condition_type(schema_name)}")


def stays_released(current: Mapping[str, str] | None) -> bool:
    """A pod released when its DatabaseSchema was deleted keeps its open gate; only pods
    created after the deletion meet the missing schema (and stay closed)."""
    if current is None:
        return False
    return current.get("status") == "True" and current.get("reason") == GATE_RELEASED


def pod_condition(state: GateState, *, currently_true: bool, selected: bool,
                  selector: str) -> PodCondition:
    if not selected:
        return PodCondition(False, POD_NOT_SELECTED,
                            f"pod carries the gate but does not match gate.podSelector {selector}")
    if state.open_new:
        return PodCondition(True, state.reason, state.message)
    if currently_true and state.keep_open:
        return PodCondition(True, state.reason, "held open: " + state.message)
    return PodCondition(False, state.reason, state.message)


# ---- label selectors --------------------------------------------------------------------------


def selector_string(selector: LabelSelector) -> str:
    """The selector in the API's query syntax, e.g. `app=backend,tier in (web)`."""
    parts = [f"{k}={v}" for k, v in sorted(selector.match_labels.items())]
    for req in selector.match_expressions:
        if req.operator in (SelectorOperator.IN, SelectorOperator.NOT_IN):
            if not req.values:
                raise ValueError(f"selector expression on {req.key!r}: "
                                 f"{req.operator.value} needs at least one value")
            op = "in" if req.operator is SelectorOperator.IN else "notin"
            parts.append(f"{req.key} {op} ({','.join(req.values)})")
        elif req.values:
            raise ValueError(f"selector expression on {req.key!r}: "
                             f"{req.operator.value} takes no values")
        else:
            parts.append(req.key if req.operator is SelectorOperator.EXISTS else f"!{req.key}")
    return ",".join(parts)


def selects(selector: LabelSelector, labels: Mapping[str, str]) -> bool:
    if any(labels.get(k) != v for k, v in selector.match_labels.items()):
        return False
    for req in selector.match_expressions:
        present = req.key in labels
        match req.operator:
            case SelectorOperator.IN if not (present and labels[req.key] in req.values):
                return False
            case SelectorOperator.NOT_IN if present and labels[req.key] in req.values:
                return False
            case SelectorOperator.EXISTS if not present:
                return False
            case SelectorOperator.DOES_NOT_EXIST if present:
                return False
    return True
