"""Who leads, decided over plain data: the rules of client-go's leader election."""

from datetime import UTC, datetime

import pytest

from schemagate.core.leader import (
    Action,
    LeaseRecord,
    LeaseTiming,
    decide,
    lease_spec,
    released_spec,
)

T = LeaseTiming(duration=10, renew_deadline=7, retry_period=1)
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def held_by(holder: str | None, transitions: int = 3) -> LeaseRecord:
    return LeaseRecord(holder=holder, duration_seconds=10,
                       acquire_time="2026-03-01T11:00:00.000000Z",
                       renew_time="2026-03-01T11:59:59.000000Z", transitions=transitions,
                       resource_version="42")


def test_a_lease_renewed_by_another_is_waited_on_until_it_expires() -> None:
    assert decide(held_by("b"), "a", unchanged_for=9.9, timing=T) is Action.WAIT
    assert decide(held_by("b"), "a", unchanged_for=10.0, timing=T) is Action.TAKE


def test_no_lease_is_created_ours_renewed_released_taken_at_once() -> None:
    assert decide(None, "a", unchanged_for=0, timing=T) is Action.CREATE
    assert decide(held_by("a"), "a", unchanged_for=60, timing=T) is Action.RENEW
    assert decide(held_by(None), "a", unchanged_for=0, timing=T) is Action.TAKE


def test_taking_over_counts_a_transition_renewing_keeps_the_acquire_time() -> None:
    taken = lease_spec(held_by("b"), "a", T, NOW)
    assert taken["holderIdentity"] == "a" and taken["leaseTransitions"] == 4
    assert taken["acquireTime"] == taken["renewTime"] == "2026-03-01T12:00:00.000000Z"
    renewed = lease_spec(held_by("a"), "a", T, NOW)
    assert renewed["leaseTransitions"] == 3
    assert renewed["acquireTime"] == "2026-03-01T11:00:00.000000Z"
    assert lease_spec(None, "a", T, NOW)["leaseTransitions"] == 0
    assert lease_spec(None, "a", T, NOW)["leaseDurationSeconds"] == 10


def test_a_released_lease_names_nobody() -> None:
    released = released_spec(held_by("a"), NOW)
    assert released["holderIdentity"] == ""
    assert LeaseRecord.from_json({"spec": released}).holder is None


def test_the_leader_gives_up_before_anyone_may_take_over() -> None:
    with pytest.raises(ValueError, match="renew deadline < duration"):
        LeaseTiming(duration=10, renew_deadline=10, retry_period=1)
    default = LeaseTiming()
    assert default.retry_period < default.renew_deadline < default.duration
