from datetime import UTC, datetime, timedelta

from schemagate.core.status import conditions as cond

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def test_transition_time_moves_only_when_status_flips() -> None:
    c = cond.set_condition([], type="Ready", status=False, reason="NoRevision", message="a",
                           generation=1, now=T0)
    later = T0 + timedelta(minutes=5)
    c = cond.set_condition(c, type="Ready", status=False, reason="TablesMissing", message="b",
                           generation=2, now=later)
    ready = cond.find(c, "Ready")
    assert ready is not None
    assert ready.last_transition_time == "2026-01-01T00:00:00Z"
    assert (ready.reason, ready.message, ready.observed_generation) == ("TablesMissing", "b", 2)
    c = cond.set_condition(c, type="Ready", status=True, reason="Verified", message="",
                           generation=2, now=later)
    assert cond.find(c, "Ready").last_transition_time == "2026-01-01T00:05:00Z"  # type: ignore[union-attr]


def test_other_conditions_keep_their_place() -> None:
    c = cond.set_condition([], type="A", status=True, reason="r", message="", generation=1, now=T0)
    c = cond.set_condition(c, type="B", status=None, reason="r", message="", generation=1, now=T0)
    c = cond.set_condition(c, type="A", status=False, reason="r", message="", generation=1, now=T0)
    assert [(x.type, x.status) for x in c] == [("A", "False"), ("B", "Unknown")]
