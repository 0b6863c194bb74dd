"""The pods as the operator keeps them between checks (pure).

The operator's pod watch keeps an index (Kopf's `kopf.index`): every pod of a watched
namespace under `(namespace, schema)` for each DatabaseSchema it names, by a readiness
gate `schemagate.io/<schema>` or the label `schemagate.io/schema`, and under
`(namespace, NAMES_NONE)` when it names none (a pod a non-empty `gate.podSelector` may
match without its gate, which is reported). A check reads its pods from there: no LIST,
whose bytes grow with every pod of the namespace, per check.

What the operator wrote on a pod is remembered too: the watch's copy of a pod lags our
own patch by the watch's latency, and a check that compared against that copy would
patch the same condition again.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from schemagate.core.gate.readiness import PREFIX, PodCondition, PodView, schema_names_gating
from schemagate.core.gate.start import held_schemas
from schemagate.core.revisions.applied import SCHEMA_LABEL

#: The index key of pods that name no DatabaseSchema (a schema name is never empty).
NAMES_NONE = ""
#: How long our own patch may take to show in the watch's copy of the pod. Within it, a
#: copy that differs from what we wrote is taken as not caught up yet; after it, as a
#: change by someone else (a person, another controller), which the next check repairs.
WRITE_SETTLE = timedelta(seconds=10)

Key = tuple[str, str]


@dataclass(frozen=True)
class IndexedPod:
    """What the gate needs of a pod: its identity, labels, readiness gates and the
    schemagate conditions on it. Values of the index; compared, never hashed."""

    name: str
    uid: str = ""
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)
    created: datetime | None = None
    gates: frozenset[str] = frozenset()  # the schema names of its schemagate gates
    conditions: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    deleting: bool = False
    generation: int | None = None
    held: frozenset[str] = frozenset()  # the schema names of its schemagate scheduling gates

    def view(self, schema_name: str, seen: datetime | None = None) -> PodView:
        """The pod as one gate sees it."""
        return PodView(name=self.name, uid=self.uid, labels=self.labels,
                       annotations=self.annotations, created=self.created,
                       condition=self.conditions.get(PREFIX + schema_name), seen=seen,
                       has_gate=schema_name in self.gates, generation=self.generation,
                       held=schema_name in self.held)


def index_entries(pod: Mapping[str, Any]) -> dict[Key, IndexedPod]:
    """The index entries of one pod as the API serves it (camelCase JSON)."""
    meta = pod.get("metadata") or {}
    namespace = meta.get("namespace") or ""
    labels = dict(meta.get("labels") or {})
    gates = frozenset(schema_names_gating((pod.get("spec") or {}).get("readinessGates") or ()))
    named = set(gates)
    if labels.get(SCHEMA_LABEL):
        named.add(labels[SCHEMA_LABEL])
    deleting = bool(meta.get("deletionTimestamp"))
    if not named:
        # Only what a selector reads: these pods are many, and most never matter.
        return {(namespace, NAMES_NONE): IndexedPod(name=meta.get("name", ""),
                                                    uid=meta.get("uid", ""), labels=labels,
                                                    deleting=deleting)}
    created = meta.get("creationTimestamp")
    conditions = {c["type"]: dict(c) for c in (pod.get("status") or {}).get("conditions") or ()
                  if str(c.get("type", "")).startswith(PREFIX)}
    entry = IndexedPod(name=meta.get("name", ""), uid=meta.get("uid", ""), labels=labels,
                       annotations=dict(meta.get("annotations") or {}),
                       created=parse_time(created) if created else None, gates=gates,
                       conditions=conditions, deleting=deleting,
                       generation=_generation(meta.get("generation")),
                       held=held_schemas((pod.get("spec") or {}).get("schedulingGates")))
    return {(namespace, schema): entry for schema in named}


def _generation(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


@dataclass(frozen=True)
class Written:
    """A pod condition the operator patched, and when."""

    status: bool
    reason: str
    message: str
    transition_time: str
    at: datetime
    generation: int | None = None  # the pod's metadata.generation it observed

    def as_condition(self) -> dict[str, Any]:
        condition: dict[str, Any] = {
            "status": "True" if self.status else "False", "reason": self.reason,
            "message": self.message, "lastTransitionTime": self.transition_time}
        if self.generation is not None:
            condition["observedGeneration"] = self.generation
        return condition


def shows(condition: Mapping[str, Any] | None, status: bool, reason: str, message: str,
          generation: int | None = None) -> bool:
    """The condition says this, and observed the pod's `generation` (or a later one: a
    copy of the pod older than the condition must not take it back)."""
    if condition is None:
        return False
    if (condition.get("status"), condition.get("reason"), condition.get("message")) != (
            "True" if status else "False", reason, message):
        return False
    if generation is None:
        return True
    observed = condition.get("observedGeneration")
    return isinstance(observed, int) and observed >= generation


def believed(seen: Mapping[str, Any] | None, written: Written | None,
             now: datetime) -> Mapping[str, Any] | None:
    """The pod's condition as it stands: the watch's copy, unless we patched it lately
    and the copy does not show that patch yet."""
    if written is None or shows(seen, written.status, written.reason, written.message,
                                written.generation):
        return seen
    if now - written.at < WRITE_SETTLE:
        return written.as_condition()
    return seen


def patch_needed(current: Mapping[str, Any] | None, wanted: PodCondition,
                 generation: int | None = None) -> bool:
    """The condition says otherwise, or observed an older `generation` of the pod (a
    change of its spec, or a condition written before conditions carried it)."""
    return not shows(current, wanted.status, wanted.reason, wanted.message, generation)


def transition_time(current: Mapping[str, Any] | None, wanted: PodCondition,
                    now_stamp: str) -> str:
    """`lastTransitionTime` moves only when the status flips."""
    current = current or {}
    moved = current.get("status") != ("True" if wanted.status else "False")
    if moved or not current.get("lastTransitionTime"):
        return now_stamp
    return str(current["lastTransitionTime"])
