"""When to look again, and whether a status is worth writing (pure)."""

from __future__ import annotations

from datetime import datetime

from schemagate.core import conditions as cond
from schemagate.core.models import DatabaseSchemaSpec, DatabaseSchemaStatus, GateStatus
from schemagate.core.status import Outcome

#: How soon to look again after the database could not be reached (seconds, capped by
#: the resource's own interval): soon enough to notice recovery, rare enough not to hammer.
RETRY_UNREACHABLE = 5.0
#: While gated pods wait (schema unverified, a revision not applied), look this often: one
#: catalog round trip (about 15 ms with its connection), and every second saved is a
#: second of a rollout not waiting.
RECHECK_WHILE_PODS_WAIT = 0.5
#: The shortest sleep between two passes while pods wait for a newer check.
MIN_DELAY = 0.05


def worth_writing(previous: DatabaseSchemaStatus, status: DatabaseSchemaStatus,
                  spec: DatabaseSchemaSpec | None) -> bool:
    """Skip a write that would only move lastVerifiedTime by less than the interval.

    Fast re-checks while pods wait would otherwise write the object every second.
    """
    if previous.model_copy(update={"last_verified_time": None}) != status.model_copy(
            update={"last_verified_time": None}):
        return True
    if previous.last_verified_time is None or status.last_verified_time is None:
        return previous.last_verified_time != status.last_verified_time
    interval = spec.verify_interval_seconds if spec else 30
    elapsed = (cond.parse_timestamp(status.last_verified_time)
               - cond.parse_timestamp(previous.last_verified_time))
    return elapsed.total_seconds() >= interval


def next_delay(spec: DatabaseSchemaSpec | None, outcome: Outcome, gate_status: GateStatus
               ) -> float:
    interval = float(spec.verify_interval_seconds if spec else 30)
    if not outcome.looked:
        return min(interval, RETRY_UNREACHABLE)
    if gate_status.ready < gate_status.pods:  # unverified, or a revision not applied yet
        return min(interval, RECHECK_WHILE_PODS_WAIT)
    return interval


def until_served(delay: float, serve_at: datetime | None, now: datetime) -> float:
    """`delay`, shortened so that a check starts when the pods still waiting for a newer
    one can be served by it."""
    if serve_at is None:
        return delay
    return min(delay, max(MIN_DELAY, (serve_at - now).total_seconds()))
