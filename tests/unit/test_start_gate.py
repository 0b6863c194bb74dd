"""The start-up gate: a held pod starts when its readiness gate opens by the same rules,
and only then; the pass lets it start before writing its condition."""

import asyncio
from datetime import UTC, datetime
from typing import Any

from schemagate.core.gate import readiness as gate
from schemagate.core.gate import start as start_gate
from schemagate.core.gate.pods import index_entries
from schemagate.core.tenancy.scrub import Scrubber
from schemagate.core.wire.models import DatabaseSchemaSpec, DriftPolicy
from schemagate.core.wire.reasons import Reason
from schemagate.metrics import Metrics
from schemagate.reconcile import Context, Registry
from schemagate.reconcile.pods import apply_gate, release

T0 = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
SPEC = DatabaseSchemaSpec.model_validate({
    "database": {"urlSecretRef": {"name": "db", "key": "url"}}, "tables": ["t"],
    "gate": {"holdStart": True}})


class Pods:
    """The project's `kube.Kube` as far as the gates go: it records what it is asked, in
    order, and answers a released gate with the pod's next generation."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    def release_start_gate(self, namespace: str, name: str, uid: str, gate: str) -> int:
        self.calls.append(("release", name, uid, gate))
        return 2

    def set_pod_condition(self, namespace: str, pod: str, condition_type: str,
                          wanted: gate.PodCondition, transition_time: str,
                          scrubber: Scrubber, generation: int | None = None) -> None:
        self.calls.append(("condition", pod, wanted.status, generation))


def held_pod(name: str, created: str = "2026-01-01T11:00:00Z") -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": "ns", "uid": f"uid-{name}",
                         "generation": 1, "labels": {"schemagate.io/schema": "s"},
                         "creationTimestamp": created},
            "spec": {"readinessGates": [{"conditionType": "schemagate.io/s"}],
                     "schedulingGates": [{"name": "example.com/other"},
                                         {"name": "schemagate.io/s"}]},
            "status": {"phase": "Pending", "conditions": [
                {"type": "PodScheduled", "status": "False", "reason": "SchedulingGated"}]}}


def context(kube: Pods, *pods: dict[str, Any]) -> Context:
    index: dict[tuple[str, str], list[Any]] = {}
    for p in pods:
        for key, entry in index_entries(p).items():
            index.setdefault(key, []).append(entry)
    fake: Any = kube
    return Context(kube=fake, registry=Registry(), metrics=Metrics(), announce=lambda *_: None,
                   clock=lambda: T0, pods=index)


def check(verified: bool, reason: str = "Verified") -> gate.Check:
    state = gate.gate_state(verified=verified, reason=reason, message="m",
                            on_drift=DriftPolicy.HOLD)
    return gate.Check(state=state, started=T0, generation=1)


def test_a_pending_pod_on_no_node_is_indexed_as_held_with_its_generation() -> None:
    entry = index_entries(held_pod("a"))[("ns", "s")]
    view = entry.view("s")
    assert view.held and view.has_gate and view.generation == 1
    assert not entry.view("other").held


def test_a_held_pod_starts_before_its_gate_condition_is_written_true() -> None:
    kube = Pods()
    asyncio.run(apply_gate(context(kube, held_pod("a")), "ns", "s", check(True), SPEC))
    assert kube.calls == [("release", "a", "uid-a", "schemagate.io/s"),
                          ("condition", "a", True, 2)]


def test_a_held_pod_stays_held_while_the_schema_is_wrong() -> None:
    kube = Pods()
    asyncio.run(apply_gate(context(kube, held_pod("a")), "ns", "s",
                           check(False, Reason.TABLES_MISSING.value), SPEC))
    assert kube.calls == [("condition", "a", False, 1)]


def test_a_held_pod_stays_held_until_a_check_newer_than_the_pod() -> None:
    kube = Pods()
    young = held_pod("a", created="2026-01-01T12:00:00Z")  # the check started with it
    asyncio.run(apply_gate(context(kube, young), "ns", "s", check(True), SPEC))
    assert [c[0] for c in kube.calls] == ["condition"]
    assert kube.calls[0][2] is False


def test_an_idle_pass_on_the_watch_copy_releases_nothing_and_asks_for_the_api_copy() -> None:
    kube = Pods()
    result = asyncio.run(apply_gate(context(kube, held_pod("a")), "ns", "s", check(True),
                                    SPEC, read_only=True))
    assert result is None and kube.calls == []


def test_a_pod_only_held_open_does_not_start() -> None:
    """The database unreachable: an open pod stays open, but a held one never ran
    against this schema."""
    unreachable = gate.gate_state(verified=False, reason=Reason.DATABASE_UNREACHABLE.value,
                                  message="m", on_drift=DriftPolicy.HOLD)
    view = index_entries(held_pod("a"))[("ns", "s")].view("s")
    kept = gate.PodCondition(True, Reason.DATABASE_UNREACHABLE.value, "held open: m")
    assert not start_gate.may_start(unreachable, view, kept)
    verified = gate.gate_state(verified=True, reason="Verified", message="m",
                               on_drift=DriftPolicy.HOLD)
    assert not start_gate.may_start(verified, view, gate.PodCondition(
        True, gate.REVISION_NOT_APPLIED, "held open: revision 4b5c6d not applied"))
    assert start_gate.may_start(verified, view, gate.PodCondition(True, "Verified", "m"))


def test_only_schemagate_scheduling_gates_name_schemas() -> None:
    assert start_gate.held_schemas([{"name": "example.com/x"}, {"name": "schemagate.io/s"}]) \
        == frozenset({"s"})
    assert start_gate.held_schemas(None) == frozenset()


def test_an_open_pod_whose_spec_changed_gets_its_condition_again_with_its_generation() -> None:
    kube = Pods()
    changed = held_pod("a")
    changed["metadata"]["generation"] = 3
    changed["spec"]["schedulingGates"] = []
    changed["status"] = {"phase": "Running", "conditions": [
        {"type": "schemagate.io/s", "status": "True", "reason": "Verified", "message": "m",
         "observedGeneration": 1, "lastTransitionTime": "2026-01-01T11:00:05Z"}]}
    asyncio.run(apply_gate(context(kube, changed), "ns", "s", check(True), SPEC))
    assert kube.calls == [("condition", "a", True, 3)]
    kube.calls.clear()
    changed["status"]["conditions"][0]["observedGeneration"] = 3
    asyncio.run(apply_gate(context(kube, changed), "ns", "s", check(True), SPEC))
    assert kube.calls == []


def test_the_deletion_of_the_schema_lets_its_held_pods_start() -> None:
    kube = Pods()
    asyncio.run(release({"metadata": {"namespace": "ns", "name": "s"}},
                        context(kube, held_pod("a"))))
    assert kube.calls == [("release", "a", "uid-a", "schemagate.io/s"),
                          ("condition", "a", True, 2)]
