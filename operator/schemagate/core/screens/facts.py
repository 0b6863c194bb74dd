"""The facts both screens read, taken from the objects as the API serves them (camelCase
JSON) and bounded: a namespace may hold thousands of pods, and a pod's fields are
written by whoever may create pods."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from schemagate.core.gate.readiness import PREFIX, gate_condition_type
from schemagate.core.revisions.applied import SCHEMA_LABEL

JSON = Mapping[str, Any]

#: Pods listed per schema; the count says how many more there are.
PODS_SHOWN = 50
#: The newest Events shown per schema.
EVENTS_SHOWN = 5


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _map(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


@dataclass(frozen=True)
class PodGate:
    """One pod as one DatabaseSchema's gate sees it."""

    pod: str
    phase: str
    #: The gate's pod condition: True open, False held, None not written yet.
    open: bool | None
    reason: str
    message: str
    #: The pod carries the scheduling gate: it is held before it starts.
    held_before_start: bool
    #: The pod carries the readiness gate (the condition counts for its Ready).
    has_readiness_gate: bool


def readiness_gates(pod: JSON) -> list[str]:
    """The DatabaseSchema names whose readiness gate the pod carries."""
    gates = _list(_map(pod.get("spec")).get("readinessGates"))
    return [str(g["conditionType"])[len(PREFIX):] for g in gates
            if isinstance(g, Mapping) and str(g.get("conditionType", "")).startswith(PREFIX)]


def scheduling_gates(pod: JSON) -> list[str]:
    """The DatabaseSchema names whose scheduling gate holds the pod before it starts."""
    gates = _list(_map(pod.get("spec")).get("schedulingGates"))
    return [str(g["name"])[len(PREFIX):] for g in gates
            if isinstance(g, Mapping) and str(g.get("name", "")).startswith(PREFIX)]


def schema_label(pod: JSON) -> str | None:
    label = _map(_map(pod.get("metadata")).get("labels")).get(SCHEMA_LABEL)
    return label if isinstance(label, str) else None


def gated_by(pod: JSON) -> list[str]:
    """Every DatabaseSchema the pod is gated by or asks for, in a stable order."""
    names = [*readiness_gates(pod), *scheduling_gates(pod)]
    if (label := schema_label(pod)) is not None:
        names.append(label)
    return list(dict.fromkeys(names))


def pod_gate(pod: JSON, schema: str) -> PodGate:
    kind = gate_condition_type(schema)
    status = _map(pod.get("status"))
    condition = next((c for c in _list(status.get("conditions"))
                      if isinstance(c, Mapping) and c.get("type") == kind), None)
    state = None if condition is None else {"True": True, "False": False}.get(
        str(condition.get("status")))
    return PodGate(
        pod=str(_map(pod.get("metadata")).get("name", "")),
        phase=str(status.get("phase") or "Unknown"),
        open=state,
        reason=str((condition or {}).get("reason") or ""),
        message=str((condition or {}).get("message") or ""),
        held_before_start=schema in scheduling_gates(pod),
        has_readiness_gate=schema in readiness_gates(pod))


def gated_pods(pods: Sequence[JSON], schema: str) -> list[PodGate]:
    """The pods `schema` gates (by either gate) or that ask for it by label, not being
    deleted, by name."""
    chosen = [p for p in pods if schema in gated_by(p)
              and not _map(p.get("metadata")).get("deletionTimestamp")]
    return sorted((pod_gate(p, schema) for p in chosen), key=lambda g: g.pod)


def condition(obj: JSON, type: str) -> Mapping[str, Any]:
    found = next((c for c in _list(_map(obj.get("status")).get("conditions"))
                  if isinstance(c, Mapping) and c.get("type") == type), None)
    return found or {}


@dataclass(frozen=True)
class EventLine:
    type: str
    reason: str
    message: str
    count: int
    last_seen: str | None


def newest_events(events: Sequence[JSON], shown: int = EVENTS_SHOWN) -> list[EventLine]:
    """The newest `shown` Events, newest first."""
    def when(e: JSON) -> str:
        return str(e.get("lastTimestamp") or e.get("eventTime") or
                   _map(e.get("metadata")).get("creationTimestamp") or "")

    ordered = sorted(events, key=when, reverse=True)[:shown]
    return [EventLine(type=str(e.get("type") or ""), reason=str(e.get("reason") or ""),
                      message=str(e.get("message") or ""),
                      count=int(e.get("count") or 1), last_seen=when(e) or None)
            for e in ordered]
