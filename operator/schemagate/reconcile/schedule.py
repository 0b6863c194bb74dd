"""When to look again, and whether a status is worth writing (pure)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime

from schemagate.core.status import conditions as cond
from schemagate.core.status.outcome import Outcome
from schemagate.core.wire.models import (
    DatabaseSchemaSpec,
    DatabaseSchemaStatus,
    GateStatus,
    VerifyFrom,
)
from schemagate.core.wire.reasons import Reason

#: How soon to look again after the database could not be reached (seconds, capped by
#: the resource's own interval): soon enough to notice recovery, rare enough not to hammer.
RETRY_UNREACHABLE = 5.0
#: While gated pods wait (schema unverified, a revision not applied), look this often: one
#: catalog round trip (about 15 ms with its connection), and every second saved is a
#: second of a rollout not waiting.
RECHECK_WHILE_PODS_WAIT = 0.5
#: The shortest sleep between two passes while pods wait for a newer check.
MIN_DELAY = 0.05
#: A status in which nothing a user sees changed is written only to move lastVerifiedTime,
#: at most this often (seconds) ...
HEARTBEAT = 300.0
#: ... and, with many schemas, so that these writes cost at most this many API requests a
#: minute for the whole operator: with 1,000 schemas, every 33 minutes. The metric
#: `schemagate_last_verified_timestamp_seconds` tells every check, at no API cost.
HEARTBEATS_PER_MINUTE = 30


def heartbeat(schemas: int) -> float:
    """Seconds between two writes of a status that only move lastVerifiedTime."""
    return max(HEARTBEAT, 60.0 * schemas / HEARTBEATS_PER_MINUTE)


#: verifyFrom: Pod - every check is a pod. While gated pods wait on a schema that does
#: not verify yet, look this often rather than twice a second; pods waiting for a check
#: newer than themselves, and changes to the spec, Secret or Deployment, still start one
#: at once.
RECHECK_IN_POD = 5.0


def worth_writing(previous: DatabaseSchemaStatus, status: DatabaseSchemaStatus,
                  spec: DatabaseSchemaSpec | None, every: float | None = None) -> bool:
    """Write when something a user sees changed; a write that would only move
    lastVerifiedTime waits `every` seconds (`heartbeat`; None: the schema's interval).

    Fast re-checks while pods wait, and every idle check, would otherwise write the object.
    """
    if previous.model_copy(update={"last_verified_time": None}) != status.model_copy(
            update={"last_verified_time": None}):
        return True
    if previous.last_verified_time is None or status.last_verified_time is None:
        return previous.last_verified_time != status.last_verified_time
    interval = every if every is not None else spec.verify_interval_seconds if spec else 30
    elapsed = (cond.parse_timestamp(status.last_verified_time)
               - cond.parse_timestamp(previous.last_verified_time))
    return elapsed.total_seconds() >= interval


def in_pod(spec: DatabaseSchemaSpec | None) -> bool:
    return spec is not None and spec.database.verify_from is VerifyFrom.POD


def next_delay(spec: DatabaseSchemaSpec | None, outcome: Outcome, gate_status: GateStatus,
               sooner: float | None = None) -> float:
    """`sooner`: what a migration step asks for (a Job under way is looked at often)."""
    interval = float(spec.verify_interval_seconds if spec else 30)
    if outcome.reason in (Reason.VERIFY_POD_FAILED, Reason.INVALID_SPEC):
        # A pod that cannot start is not tried again every few seconds. A spec that cannot
        # be acted on is fixed by an edit of it, its Secret, ConfigMap or Deployment, each
        # of which wakes the schema at once: polling it sooner would only cost a GET.
        delay = interval
    elif not outcome.looked:
        delay = min(interval, RETRY_UNREACHABLE)
    elif gate_status.ready < gate_status.pods:  # unverified, or a revision not applied yet
        delay = min(interval, RECHECK_IN_POD if in_pod(spec) else RECHECK_WHILE_PODS_WAIT)
    else:
        delay = interval
    if sooner is not None:
        delay = min(delay, max(sooner, RECHECK_IN_POD) if in_pod(spec) else sooner)
    return delay


def aligned(delay: float, interval: float, now: float) -> float:
    """An idle wait of a whole `interval`, shortened to end on the next multiple of it (of
    the epoch, `now` in seconds): the schemas of one database with the same interval then
    look together, in one connection (`reconcile.batch`), rather than each at its own
    phase. Never longer than `delay`; a shorter wait (pods waiting, a retry) is kept."""
    if delay < interval or interval <= 0:
        return delay
    tick = math.floor(now / interval + 1) * interval
    return min(delay, max(MIN_DELAY, tick - now))


#: Pods that a check may serve within this of the first of them wait for one check that
#: serves them all (the 3 pods of a ReplicaSet are created a few ms apart), not for one
#: check each.
SERVE_TOGETHER = 0.5


def serve_at(times: list[datetime]) -> datetime | None:
    """When to start the check that serves the pods still waiting, whose checks may start
    at `times`: the latest of those within SERVE_TOGETHER of the first."""
    if not times:
        return None
    first = min(times)
    return max(t for t in times if (t - first).total_seconds() <= SERVE_TOGETHER)


def until_served(delay: float, serve_at: datetime | None, now: datetime) -> float:
    """`delay`, shortened so that a check starts when the pods still waiting for a newer
    one can be served by it."""
    if serve_at is None:
        return delay
    return min(delay, max(MIN_DELAY, (serve_at - now).total_seconds()))


@dataclass(frozen=True)
class Backoff:
    """How long a schema whose credentials were refused waits before the next attempt.

    From the operator's pod, a refusal answers a question a tenant may not be allowed to
    ask (is this the password of a database only the operator reaches?), and a write of
    the Secret would ask it again at once. After each refusal in a row the wait doubles,
    from `first` up to `cap`, and nothing shortens it: not a change of the Secret, the
    spec or the Deployment, nor a new pod. The cap is not the schema's interval, which
    its author may set to 5 s; it is short enough that a password fixed is picked up
    within minutes."""

    first: float = 10.0
    cap: float = 300.0

    def after(self, refusals: int) -> float:
        """The wait after `refusals` refusals in a row (0: none)."""
        if refusals <= 0:
            return 0.0
        return min(self.cap, self.first * 2.0 ** min(refusals - 1, 32))


def refusals_after(refusals: int, outcome: Outcome) -> int:
    """Refusals in a row once `outcome` is known: one more for a refusal, none once a
    check got past the credentials (it read the database); an outcome that never reached
    the database (unreachable, no Secret, an invalid spec) leaves the count as it was, so
    that pointing the Secret elsewhere in between does not start the doubling over."""
    if outcome.reason is Reason.AUTHENTICATION_FAILED:
        return refusals + 1
    return 0 if outcome.looked else refusals


def refused_message(message: str, wait: float) -> str:
    """The refusal's message, saying when the next attempt is (whole seconds)."""
    return (f"{message}; credentials refused: next attempt in {wait:g} s, not sooner "
            "even if the Secret changes")
