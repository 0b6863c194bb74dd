"""The start-up gate: a held pod starts when its readiness gate opens by the same rules,
and only then; the pass's step `gate_pods` lets it start before writing its condition,
which then observes the pod's generation after that change."""

import asyncio
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from schemagate.core.gate import readiness as gate
from schemagate.core.gate import start as start_gate
from schemagate.core.gate.pods import index_entries
from schemagate.core.wire.models import DatabaseSchemaSpec, DriftPolicy
from schemagate.core.wire.reasons import Reason
from schemagate.reconcile.pods import apply_gate, release
from schemagate.reconcile.registry import Published
from tests.support.fake_kube import FakeKube

T0 = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
SPEC = DatabaseSchemaSpec.model_validate({
    "database": {"urlSecretRef": {"name": "db", "key": "url"}}, "tables": ["t"],
    "gate": {"holdStart": True}})
GATE = "schemagate.io/s"


def held(*names: str, created: datetime = T0 - timedelta(hours=1)) -> FakeKube:
    """Pods of schema `s` as its admission policy makes them: both gates, Pending."""
    kube = FakeKube(clock=lambda: T0)
    for name in names:
        kube.add_pod("ns", name, gates=("s",), held=("s",), created=created,
                     labels={"schemagate.io/schema": "s"})
        kube.pods[("ns", name)]["spec"]["schedulingGates"].insert(
            0, {"name": "example.com/other"})
    return kube


def check(verified: bool, reason: str = "Verified") -> gate.Check:
    state = gate.gate_state(verified=verified, reason=reason, message="m",
                            on_drift=DriftPolicy.HOLD)
    return gate.Check(state=state, started=T0, generation=1)


def apply(kube: FakeKube, verdict: gate.Check, **kw: Any) -> Any:
    return asyncio.run(apply_gate(kube.context(), ("ns", "s"), Published(verdict, SPEC), **kw))


def scheduling_gates(kube: FakeKube, name: str) -> list[str]:
    return [g["name"] for g in kube.pods[("ns", name)]["spec"]["schedulingGates"]]


def test_a_pending_pod_on_no_node_is_indexed_as_held_with_its_generation() -> None:
    entry = index_entries(held("a").pods[("ns", "a")])[("ns", "s")]
    view = entry.view("s")
    assert view.held and view.has_gate and view.generation == 1
    assert not entry.view("other").held


def test_a_held_pod_starts_before_its_gate_condition_is_written_true() -> None:
    kube = held("a")
    apply(kube, check(True))
    assert kube.calls == [("release", "a", "uid-a", GATE), ("condition", "a", True, 2)]
    assert scheduling_gates(kube, "a") == ["example.com/other"]
    condition = kube.condition("ns", "a", "s")
    assert condition is not None and condition["observedGeneration"] == 2


def test_a_held_pod_stays_held_while_the_schema_is_wrong() -> None:
    kube = held("a")
    apply(kube, check(False, Reason.TABLES_MISSING.value))
    assert kube.calls == [("condition", "a", False, 1)]
    assert GATE in scheduling_gates(kube, "a")


def test_a_held_pod_stays_held_until_a_check_newer_than_the_pod() -> None:
    kube = held("a", created=T0)  # the check started with it
    apply(kube, check(True))
    assert [c[:3] for c in kube.calls] == [("condition", "a", False)]
    assert GATE in scheduling_gates(kube, "a")


def test_an_idle_pass_on_the_watch_copy_releases_nothing_and_asks_for_the_api_copy() -> None:
    kube = held("a")
    assert apply(kube, check(True), read_only=True) is None
    assert kube.calls == []


def test_a_pod_only_held_open_does_not_start() -> None:
    """The database unreachable: an open pod stays open, but a held one never ran
    against this schema."""
    unreachable = gate.gate_state(verified=False, reason=Reason.DATABASE_UNREACHABLE.value,
                                  message="m", on_drift=DriftPolicy.HOLD)
    view = index_entries(held("a").pods[("ns", "a")])[("ns", "s")].view("s")
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
    kube = held("a")
    apply(kube, check(True))
    kube.calls.clear()
    kube.pods[("ns", "a")]["metadata"]["generation"] = 5  # e.g. a resize in place
    apply(kube, check(True))
    assert kube.calls == [("condition", "a", True, 5)]
    kube.calls.clear()
    apply(kube, check(True))
    assert kube.calls == []


def test_the_deletion_of_the_schema_lets_its_held_pods_start() -> None:
    kube = held("a")
    body = {"metadata": {"namespace": "ns", "name": "s"}}
    asyncio.run(release(body, kube.context(), logging.getLogger("test")))
    assert kube.calls == [("release", "a", "uid-a", GATE), ("condition", "a", True, 2)]
    condition = kube.condition("ns", "a", "s")
    assert condition is not None and condition["reason"] == gate.GATE_RELEASED
