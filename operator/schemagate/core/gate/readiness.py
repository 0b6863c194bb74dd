"""The readiness gate: which pods may be Ready, decided over plain data.

Fail closed for new pods, hold steady for old ones. A pod not yet open is set True
only on a check that started after the pod was created, read against the
DatabaseSchema's latest generation, that verified the schema and, where the pod names
revisions (`schemagate.io/revision`), found them applied (`core.revisions.applied`). A pod
already True stays True while the database is merely unreachable, and on drift only
under `onDrift: Hold`: so Hold keeps open exactly the pods that were open before the
drift was seen, and a pod created after it stays closed under Hold as under Close.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from schemagate.core.revisions.applied import (
    SCHEMA_LABEL,
    Knowledge,
    missing_revisions,
    needed_revisions,
)
from schemagate.core.wire import reasons
from schemagate.core.wire.models import DriftPolicy, LabelSelector, SelectorOperator
from schemagate.core.wire.reasons import GateReason

PREFIX = "schemagate.io/"
GATE_RELEASED = GateReason.GATE_RELEASED.value
SCHEMA_NOT_FOUND = GateReason.DATABASE_SCHEMA_NOT_FOUND.value
POD_NOT_SELECTED = GateReason.POD_NOT_SELECTED.value
MIGRATION_RUNNING = GateReason.MIGRATION_RUNNING.value
REVISION_NOT_APPLIED = GateReason.REVISION_NOT_APPLIED.value
AWAITING_FRESH_CHECK = GateReason.AWAITING_FRESH_CHECK.value
#: creationTimestamp has whole seconds: a pod stamped 12:00:00 may be 12:00:00.9 old.
_TIMESTAMP_GRAIN = timedelta(seconds=1)
#: A pod of a template no open pod has (a new release) and naming no revision waits this
#: long after it existed for its check: in one `kubectl apply` or Helm release the
#: DatabaseSchema lands after the Deployment, and the Deployment controller creates the
#: first pod before it (0.2 s measured on the local control plane, test_upgrades; more
#: than 2 s seen on a loaded 2-core machine, so 5 s). A longer gap (sync waves) needs
#: the pod's schemagate.io/revision.
NEW_RELEASE_SETTLE = timedelta(seconds=5)
#: The labels that tell a pod's template: Deployments, then StatefulSets and DaemonSets.
TEMPLATE_LABELS = ("pod-template-hash", "controller-revision-hash")

# Reasons that say nothing about the schema itself: the operator could not look.
_CANNOT_LOOK = reasons.COULD_NOT_LOOK


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
    #: A pod already True whose own revision is no longer applied: drift, as onDrift says.
    hold_on_drift: bool = True


@dataclass(frozen=True)
class Check:
    """The latest check a pod's gate may lean on."""

    state: GateState
    #: When the check started (before the spec was read); None when no check is involved
    #: (the DatabaseSchema is missing or released), so freshness does not apply.
    started: datetime | None = None
    generation: int = 0  # the DatabaseSchema generation the check read
    knowledge: Knowledge = field(default_factory=lambda: Knowledge(current=None))


@dataclass(frozen=True)
class PodView:
    """What a pod says about itself, for one gate."""

    name: str
    uid: str = ""
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)
    created: datetime | None = None  # metadata.creationTimestamp (whole seconds)
    condition: Mapping[str, Any] | None = None  # this gate's pod condition, as the API shows it
    seen: datetime | None = None  # when this operator process first saw the pod
    has_gate: bool = True
    generation: int | None = None  # metadata.generation: the gate condition observes it
    held: bool = False  # carries this schema's scheduling gate: not started yet

    @property
    def is_true(self) -> bool:
        return self.condition is not None and self.condition.get("status") == "True"

    @property
    def template(self) -> str | None:
        return next((self.labels[k] for k in TEMPLATE_LABELS if k in self.labels), None)

    def existed_by(self) -> datetime | None:
        """A moment by which the pod certainly existed: when this process saw it, or the
        end of its creation second, whichever is earlier."""
        bounds = [t for t in (self.seen, self.created and self.created + _TIMESTAMP_GRAIN) if t]
        return min(bounds) if bounds else None


@dataclass(frozen=True)
class PodCondition:
    status: bool
    reason: str
    message: str


def gate_state(*, verified: bool, reason: str, message: str, on_drift: DriftPolicy,
               migrating: str | None = None) -> GateState:
    """`migrating`: a migration is under way (its message); new pods wait for its end."""
    hold = on_drift is DriftPolicy.HOLD
    if reason in _CANNOT_LOOK:
        return GateState(False, True, reason, message, hold)
    if migrating is not None:
        return GateState(False, verified or hold, MIGRATION_RUNNING,
                         f"{migrating}; new pods open once it has ended and the database "
                         "verifies", hold)
    if verified:
        return GateState(True, True, reason, message, hold)
    return GateState(False, hold, reason, message, hold)


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


def open_templates(pods: Iterable[PodView]) -> frozenset[str]:
    """The templates of the pods already open: a pod of one of them is no new release."""
    return frozenset(t for p in pods if p.is_true and (t := p.template) is not None)


def served_after(pod: PodView, templates: frozenset[str]) -> datetime | None:
    """The earliest start of a check that may open `pod` (None: any check)."""
    existed = pod.existed_by()
    if existed is None:
        return None
    new_release = pod.template not in templates and needed_revisions(pod.annotations) is None
    return existed + NEW_RELEASE_SETTLE if new_release else existed


def is_fresh(check: Check, pod: PodView, latest_generation: int = 0,
             templates: frozenset[str] = frozenset()) -> bool:
    """The check started after the pod existed (and, for the first pods of a release,
    after its DatabaseSchema had time to follow) and read the latest spec known."""
    if check.started is None:
        return True
    if check.generation < latest_generation:
        return False
    after = served_after(pod, templates)
    return after is None or check.started >= after


def needs_this_schema(pod: PodView, schema_name: str) -> bool:
    return pod.labels.get(SCHEMA_LABEL) == schema_name


def should_hold(selector: LabelSelector, pod: PodView, schema_name: str) -> bool:
    """The pod is one this gate is for: it names the schema, or a non-empty
    gate.podSelector matches it (an empty selector matches every pod, so says nothing)."""
    chosen = bool(selector.match_labels or selector.match_expressions) and \
        selects(selector, pod.labels)
    return chosen or needs_this_schema(pod, schema_name)


def pod_condition(check: Check, pod: PodView, *, selected: bool, selector: str,
                  latest_generation: int = 0, templates: frozenset[str] = frozenset()
                  ) -> PodCondition:
    """`templates`: those of the pods already open (`open_templates`)."""
    state = check.state
    if not selected:
        return PodCondition(False, POD_NOT_SELECTED,
                            f"pod carries the gate but does not match gate.podSelector {selector}")
    needed = needed_revisions(pod.annotations)
    missing = None if needed is None or check.started is None else \
        missing_revisions(needed, check.knowledge)
    if pod.is_true:
        if not state.keep_open:
            return PodCondition(False, state.reason, state.message)
        if missing is not None and state.open_new:
            if state.hold_on_drift:
                return PodCondition(True, REVISION_NOT_APPLIED, "held open: " + missing)
            return PodCondition(False, REVISION_NOT_APPLIED, missing)
        if state.open_new:
            return PodCondition(True, state.reason, state.message)
        return PodCondition(True, state.reason, "held open: " + state.message)
    if not is_fresh(check, pod, latest_generation, templates):
        return PodCondition(False, AWAITING_FRESH_CHECK,
                            _awaiting(check, pod, latest_generation, templates))
    if not state.open_new:
        return PodCondition(False, state.reason, state.message)
    if missing is not None:
        return PodCondition(False, REVISION_NOT_APPLIED, missing)
    return PodCondition(True, state.reason, state.message)


def _awaiting(check: Check, pod: PodView, latest_generation: int,
              templates: frozenset[str]) -> str:
    if check.generation < latest_generation:
        why = (f"the DatabaseSchema changed (generation {latest_generation}) since the last "
               f"check (generation {check.generation})")
    elif pod.template not in templates and needed_revisions(pod.annotations) is None:
        why = (f"the first pods of a release wait {NEW_RELEASE_SETTLE.seconds} s for a "
               "DatabaseSchema applied with them; name the revision the pod needs "
               "(schemagate.io/revision) to make the order irrelevant")
    else:
        why = "the last check started before this pod was created"
    return f"waiting for a check newer than this pod: {why}; it found {check.state.reason}"


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
