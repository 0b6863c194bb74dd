"""The gate from the pod watch's index: a pod is patched when its condition would change,
once, even while the watch's copy does not show our patch yet."""

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from schemagate.core.gate import readiness as gate
from schemagate.core.gate.pods import WRITE_SETTLE
from schemagate.core.wire.models import DatabaseSchemaSpec, DriftPolicy
from schemagate.reconcile.pods import apply_gate
from schemagate.reconcile.registry import Published
from tests.support.fake_kube import FakeKube

T0 = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
SPEC = DatabaseSchemaSpec.model_validate({
    "database": {"urlSecretRef": {"name": "db", "key": "url"}}, "tables": ["t"]})


def pods(*names: str, ungated: tuple[str, ...] = ()) -> FakeKube:
    """Pods labelled for schema `s`, with its gate (but `ungated`); the watch's index is
    taken once (`FakeKube.index`), so it never shows the operator's patches."""
    kube = FakeKube()
    for name in (*names, *ungated):
        kube.add_pod("ns", name, gates=() if name in ungated else ("s",),
                     labels={"schemagate.io/schema": "s"}, created=T0 - timedelta(hours=1))
    return kube


def patched(kube: FakeKube) -> list[tuple[str, bool, str]]:
    return [(pod, status, reason) for pod, _, status, reason in kube.condition_patches]


def apply(ctx: Any, **kw: Any) -> Any:
    return asyncio.run(apply_gate(ctx, ("ns", "s"), Published(verified_check(), SPEC), **kw))


def verified_check() -> gate.Check:
    state = gate.gate_state(verified=True, reason="Verified", message="ok",
                            on_drift=DriftPolicy.HOLD)
    return gate.Check(state=state, started=T0, generation=1)


def test_a_pod_is_opened_once_though_the_watch_has_not_shown_the_patch_yet() -> None:
    kube = pods("a", "b")
    now = [T0]
    ctx = kube.context(clock=lambda: now[0], pods=kube.index())
    first = apply(ctx)
    assert sorted(patched(kube)) == [("a", True, "Verified"), ("b", True, "Verified")]
    assert first is not None and (first.status.pods, first.status.ready) == (2, 2)

    now[0] = T0 + timedelta(seconds=1)  # the index still shows both pods without it
    again = apply(ctx)
    assert len(patched(kube)) == 2
    assert again is not None and again.status.ready == 2


def test_a_condition_changed_by_someone_else_is_repaired_after_the_settle_time() -> None:
    kube = pods("a")
    now = [T0]
    ctx = kube.context(clock=lambda: now[0], pods=kube.index())
    apply(ctx)
    now[0] = T0 + WRITE_SETTLE + timedelta(seconds=1)  # the copy still says nothing: trusted
    apply(ctx)
    assert [p[0] for p in patched(kube)] == ["a", "a"]


def test_a_pass_that_may_change_no_pod_says_when_one_would_change() -> None:
    kube = pods("a")
    ctx = kube.context(clock=lambda: T0, pods=kube.index())
    assert apply(ctx, read_only=True) is None
    assert patched(kube) == []


def test_a_labelled_pod_without_the_gate_is_reported_not_patched() -> None:
    kube = pods("a", ungated=("bare",))
    ctx = kube.context(clock=lambda: T0, pods=kube.index())
    passed = apply(ctx)
    assert passed is not None and passed.ungated == ("bare",)
    assert [p[0] for p in patched(kube)] == ["a"]
