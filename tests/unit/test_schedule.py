"""When the operator looks again, and when a status is worth a write."""

from datetime import UTC, datetime, timedelta

from schemagate.core.status import conditions as cond
from schemagate.core.status.outcome import Outcome
from schemagate.core.wire.models import DatabaseSchemaSpec, DatabaseSchemaStatus, GateStatus
from schemagate.core.wire.reasons import Reason
from schemagate.reconcile import schedule

T0 = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
SPEC = DatabaseSchemaSpec.model_validate({
    "database": {"urlSecretRef": {"name": "db", "key": "url"}}, "tables": ["t"],
    "verifyIntervalSeconds": 60})


def gate(pods: int, ready: int) -> GateStatus:
    return GateStatus(condition_type="schemagate.io/s", pods=pods, ready=ready)


def test_a_verified_schema_with_every_pod_open_waits_the_interval() -> None:
    assert schedule.next_delay(SPEC, Outcome(Reason.VERIFIED, "ok"), gate(2, 2)) == 60


def test_waiting_pods_are_rechecked_soon_verified_or_not() -> None:
    for reason in (Reason.VERIFIED, Reason.TABLES_MISSING):  # Verified: a revision waits
        assert schedule.next_delay(SPEC, Outcome(reason, "m"), gate(2, 1)) == \
            schedule.RECHECK_WHILE_PODS_WAIT


def test_an_unreachable_database_is_retried_within_seconds() -> None:
    delay = schedule.next_delay(SPEC, Outcome(Reason.DATABASE_UNREACHABLE, "m"), gate(0, 0))
    assert delay == schedule.RETRY_UNREACHABLE


def test_an_invalid_spec_is_looked_at_on_its_interval_not_every_few_seconds() -> None:
    """A thousand schemas whose URL is refused (a loopback host) cost a GET each every
    5 s (12,076 a minute, measured by bench/scale.py) if retried like an outage; an edit
    of the spec or of its Secret wakes the schema at once anyway."""
    assert schedule.next_delay(None, Outcome(Reason.INVALID_SPEC, "m"), gate(0, 0)) == 30
    assert schedule.next_delay(SPEC, Outcome(Reason.INVALID_SPEC, "m"), gate(2, 0)) == 60
    assert schedule.next_delay(SPEC, Outcome(Reason.SECRET_NOT_FOUND, "m"), gate(0, 0)) == \
        schedule.RETRY_UNREACHABLE  # a Secret created just after its schema


def test_pods_waiting_for_a_newer_check_bring_it_forward_not_into_a_spin() -> None:
    assert schedule.until_served(60, T0 + timedelta(seconds=1.5), T0) == 1.5
    assert schedule.until_served(60, T0 - timedelta(seconds=3), T0) == schedule.MIN_DELAY
    assert schedule.until_served(0.5, T0 + timedelta(seconds=2), T0) == 0.5
    assert schedule.until_served(60, None, T0) == 60


def status(verified_at: datetime | None, ready: int = 1) -> DatabaseSchemaStatus:
    return DatabaseSchemaStatus(
        observed_generation=1, gate=gate(1, ready),
        last_verified_time=None if verified_at is None else cond.timestamp(verified_at))


def test_a_write_that_only_moves_the_last_verified_time_waits_for_the_interval() -> None:
    before = status(T0)
    assert not schedule.worth_writing(before, status(T0 + timedelta(seconds=5)), SPEC)
    assert schedule.worth_writing(before, status(T0 + timedelta(seconds=60)), SPEC)


def test_any_other_change_is_written_at_once() -> None:
    assert schedule.worth_writing(status(T0), status(T0, ready=0), SPEC)
    assert schedule.worth_writing(status(None), status(T0), SPEC)


def test_a_status_that_only_moves_the_last_verified_time_waits_for_the_heartbeat() -> None:
    before = status(T0)
    every = schedule.heartbeat(10)
    assert every == schedule.HEARTBEAT
    assert not schedule.worth_writing(before, status(T0 + timedelta(seconds=120)), SPEC, every)
    assert schedule.worth_writing(before, status(T0 + timedelta(seconds=every)), SPEC, every)
    # Whatever a user sees is written at once, heartbeat or not.
    assert schedule.worth_writing(before, status(T0 + timedelta(seconds=1), ready=0), SPEC,
                                  every)


def test_many_schemas_spread_their_heartbeats_to_a_bounded_rate() -> None:
    assert schedule.heartbeat(1000) == 2000.0  # 1,000 writes in 33 minutes: 30 a minute
    assert 1000 / (schedule.heartbeat(1000) / 60) <= schedule.HEARTBEATS_PER_MINUTE


def test_idle_waits_end_on_a_shared_tick_so_one_database_sees_one_connection() -> None:
    # Two schemas that last looked at different moments wake on the same tick.
    assert 100.0 + schedule.aligned(30, 30, 100.0) == 120.0
    assert 119.0 + schedule.aligned(30, 30, 119.0) == 120.0
    assert 0 < schedule.aligned(30, 30, 120.0) <= 30  # on the tick: the next one
    # A shorter wait (pods waiting, a retry) is kept.
    assert schedule.aligned(0.5, 30, 100.0) == 0.5


def test_pods_created_together_wait_for_one_check_that_serves_them_all() -> None:
    first, second = T0, T0 + timedelta(seconds=0.03)
    assert schedule.serve_at([first, second]) == second
    # A pod much later is served by a check of its own; the first is not kept waiting.
    assert schedule.serve_at([first, T0 + timedelta(seconds=5)]) == first
    assert schedule.serve_at([]) is None
