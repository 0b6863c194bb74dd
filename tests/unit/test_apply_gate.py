"""The gate from the pod watch's index: a pod is patched when its condition would change,
once, even while the watch's copy does not show our patch yet."""

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from schemagate.core.gate import readiness as gate
from schemagate.core.gate.pods import WRITE_SETTLE, index_entries
from schemagate.core.tenancy.scrub import Scrubber
from schemagate.core.wire.models import DatabaseSchemaSpec, DriftPolicy
from schemagate.metrics import Metrics
from schemagate.reconcile import Context, Registry
from schemagate.reconcile.pods import apply_gate

T0 = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
SPEC = DatabaseSchemaSpec.model_validate({
    "database": {"urlSecretRef": {"name": "db", "key": "url"}}, "tables": ["t"]})


class PodStatusOnly:
    """The project's `kube.Kube` as far as pod conditions go: it records each patch."""

    def __init__(self) -> None:
        self.patched: list[tuple[str, bool, str]] = []

    def set_pod_condition(self, namespace: str, pod: str, condition_type: str,
                          wanted: gate.PodCondition, transition_time: str,
                          scrubber: Scrubber, generation: int | None = None) -> None:
        self.patched.append((pod, wanted.status, wanted.reason))


def pod(name: str, labels: dict[str, str] | None = None, gated: bool = True) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": "ns", "uid": f"uid-{name}",
                         "labels": labels or {"schemagate.io/schema": "s"},
                         "creationTimestamp": "2026-01-01T11:00:00Z"},
            "spec": {"readinessGates": [{"conditionType": "schemagate.io/s"}] if gated else []},
            "status": {"conditions": []}}


def index(*pods: dict[str, Any]) -> dict[tuple[str, str], list[Any]]:
    built: dict[tuple[str, str], list[Any]] = {}
    for p in pods:
        for key, entry in index_entries(p).items():
            built.setdefault(key, []).append(entry)
    return built


def verified_check() -> gate.Check:
    state = gate.gate_state(verified=True, reason="Verified", message="ok",
                            on_drift=DriftPolicy.HOLD)
    return gate.Check(state=state, started=T0, generation=1)


def test_a_pod_is_opened_once_though_the_watch_has_not_shown_the_patch_yet() -> None:
    kube = PodStatusOnly()
    now = [T0]
    fake: Any = kube
    ctx = Context(kube=fake, registry=Registry(), metrics=Metrics(), announce=lambda *_: None,
                  clock=lambda: now[0], pods=index(pod("a"), pod("b")))
    first = asyncio.run(apply_gate(ctx, "ns", "s", verified_check(), SPEC))
    assert sorted(kube.patched) == [("a", True, "Verified"), ("b", True, "Verified")]
    assert first is not None and (first.status.pods, first.status.ready) == (2, 2)

    now[0] = T0 + timedelta(seconds=1)  # the index still shows both pods without it
    again = asyncio.run(apply_gate(ctx, "ns", "s", verified_check(), SPEC))
    assert len(kube.patched) == 2
    assert again is not None and again.status.ready == 2


def test_a_condition_changed_by_someone_else_is_repaired_after_the_settle_time() -> None:
    kube = PodStatusOnly()
    now = [T0]
    fake: Any = kube
    ctx = Context(kube=fake, registry=Registry(), metrics=Metrics(), announce=lambda *_: None,
                  clock=lambda: now[0], pods=index(pod("a")))
    asyncio.run(apply_gate(ctx, "ns", "s", verified_check(), SPEC))
    now[0] = T0 + WRITE_SETTLE + timedelta(seconds=1)  # the copy still says nothing: trusted
    asyncio.run(apply_gate(ctx, "ns", "s", verified_check(), SPEC))
    assert [p[0] for p in kube.patched] == ["a", "a"]


def test_a_pass_that_may_change_no_pod_says_when_one_would_change() -> None:
    kube = PodStatusOnly()
    fake: Any = kube
    ctx = Context(kube=fake, registry=Registry(), metrics=Metrics(), announce=lambda *_: None,
                  clock=lambda: T0, pods=index(pod("a")))
    assert asyncio.run(apply_gate(ctx, "ns", "s", verified_check(), SPEC,
                                  read_only=True)) is None
    assert kube.patched == []


def test_a_labelled_pod_without_the_gate_is_reported_not_patched() -> None:
    kube = PodStatusOnly()
    fake: Any = kube
    ctx = Context(kube=fake, registry=Registry(), metrics=Metrics(), announce=lambda *_: None,
                  clock=lambda: T0, pods=index(pod("a"), pod("bare", gated=False)))
    passed = asyncio.run(apply_gate(ctx, "ns", "s", verified_check(), SPEC))
    assert passed is not None and passed.ungated == ("bare",)
    assert [p[0] for p in kube.patched] == ["a"]
