"""The pods as the operator keeps them: the watch's index, and what it wrote itself."""

from datetime import UTC, datetime, timedelta

from schemagate.core.gate import pods
from schemagate.core.gate.readiness import PodCondition

T0 = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)


def pod(name: str = "p", labels: dict[str, str] | None = None, gates: tuple[str, ...] = (),
        conditions: list[dict[str, str]] | None = None, deleting: bool = False) -> dict:
    meta = {"name": name, "namespace": "ns", "uid": f"uid-{name}", "labels": labels or {},
            "creationTimestamp": "2026-01-01T12:00:00Z"}
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T12:01:00Z"
    return {"metadata": meta,
            "spec": {"readinessGates": [{"conditionType": f"schemagate.io/{g}"} for g in gates]},
            "status": {"conditions": conditions or []}}


def test_a_pod_is_indexed_under_each_schema_it_names_by_gate_or_label() -> None:
    entries = pods.index_entries(pod(labels={"schemagate.io/schema": "a"}, gates=("b",)))
    assert set(entries) == {("ns", "a"), ("ns", "b")}
    a, b = entries[("ns", "a")].view("a"), entries[("ns", "b")].view("b")
    assert not a.has_gate and b.has_gate  # labelled for a without its gate: reported
    assert b.created == T0


def test_a_pod_naming_no_schema_keeps_only_what_a_selector_reads() -> None:
    entries = pods.index_entries(pod(labels={"app": "x"},
                                     conditions=[{"type": "Ready", "status": "True"}]))
    (key, entry), = entries.items()
    assert key == ("ns", pods.NAMES_NONE)
    assert entry.labels == {"app": "x"} and not entry.conditions and not entry.gates


def test_only_schemagate_conditions_are_kept_and_each_gate_sees_its_own() -> None:
    entry = pods.index_entries(pod(gates=("a", "b"), conditions=[
        {"type": "Ready", "status": "False"},
        {"type": "schemagate.io/a", "status": "True", "reason": "Verified"}]))[("ns", "a")]
    assert set(entry.conditions) == {"schemagate.io/a"}
    assert entry.view("a").is_true and not entry.view("b").is_true


def test_a_pod_being_deleted_says_so() -> None:
    assert pods.index_entries(pod(gates=("a",), deleting=True))[("ns", "a")].deleting


def written(status: bool = True, at: datetime = T0) -> pods.Written:
    return pods.Written(status, "Verified", "ok", "2026-01-01T12:00:00Z", at)


def test_a_watch_copy_older_than_our_patch_is_not_believed_within_the_settle_time() -> None:
    stale = {"status": "False", "reason": "AwaitingFreshCheck", "message": "w"}
    soon = T0 + timedelta(seconds=1)
    believed = pods.believed(stale, written(), soon)
    assert believed is not None and believed["status"] == "True"
    # So the pass that follows our patch does not patch the same condition again.
    assert not pods.patch_needed(believed, PodCondition(True, "Verified", "ok"))


def test_after_the_settle_time_the_watch_copy_wins_and_someone_elses_change_is_repaired() -> None:
    changed = {"status": "False", "reason": "ByHand", "message": "x"}
    later = T0 + pods.WRITE_SETTLE + timedelta(seconds=1)
    assert pods.believed(changed, written(), later) == changed
    assert pods.patch_needed(changed, PodCondition(True, "Verified", "ok"))


def test_the_watch_copy_that_shows_our_patch_is_believed() -> None:
    shown = {"status": "True", "reason": "Verified", "message": "ok",
             "lastTransitionTime": "2026-01-01T12:00:00Z"}
    assert pods.believed(shown, written(), T0) is shown
    assert pods.believed(None, None, T0) is None


def test_a_condition_is_written_again_when_the_pod_changed_since_it_was_decided() -> None:
    """The gate condition observes the pod's metadata.generation: a condition that says
    the same of an older generation (a spec change since, or written before conditions
    carried it) is patched; one that observed a later generation than a lagging copy of
    the pod is left as it is."""
    ok = PodCondition(True, "Verified", "ok")
    said = {"status": "True", "reason": "Verified", "message": "ok"}
    assert pods.patch_needed(said, ok, generation=2)
    assert pods.patch_needed({**said, "observedGeneration": 1}, ok, generation=2)
    assert not pods.patch_needed({**said, "observedGeneration": 2}, ok, generation=2)
    assert not pods.patch_needed({**said, "observedGeneration": 3}, ok, generation=2)
    assert not pods.patch_needed(said, ok)  # a pod without generation (older API servers)


def test_a_watch_copy_of_an_older_generation_than_our_patch_is_not_believed() -> None:
    ours = pods.Written(True, "Verified", "ok", "2026-01-01T12:00:00Z", T0, generation=2)
    older = {"status": "True", "reason": "Verified", "message": "ok", "observedGeneration": 1}
    believed = pods.believed(older, ours, T0 + timedelta(seconds=1))
    assert believed is not None and believed["observedGeneration"] == 2
    assert not pods.patch_needed(believed, PodCondition(True, "Verified", "ok"), generation=2)


def test_the_transition_time_moves_only_when_the_status_flips() -> None:
    now = "2026-01-01T13:00:00Z"
    current = {"status": "True", "lastTransitionTime": "2026-01-01T12:00:00Z"}
    assert pods.transition_time(current, PodCondition(True, "Verified", "m"), now) == \
        "2026-01-01T12:00:00Z"
    assert pods.transition_time(current, PodCondition(False, "TablesMissing", "m"), now) == now
    assert pods.transition_time(None, PodCondition(False, "TablesMissing", "m"), now) == now
