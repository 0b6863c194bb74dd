"""Leader election on a `coordination.k8s.io` Lease, decided over plain data.

The rules of client-go's leader election: a Lease not renewed for its duration may be
taken; expiry is judged by how long the record has stayed unchanged as this process saw
it (its own monotonic clock), never by comparing another machine's timestamps; the
leader ends itself when it could not renew for `renew_deadline`, which is shorter than
the duration, so it is gone before anyone else may take over (fencing).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any


@dataclass(frozen=True)
class LeaseTiming:
    #: A Lease not renewed for this long may be taken by another replica.
    duration: float = 10.0
    #: The leader ends its process when it could not renew for this long.
    renew_deadline: float = 7.0
    #: How often the leader renews and a standby looks.
    retry_period: float = 1.0

    def __post_init__(self) -> None:
        if not 0 < self.retry_period < self.renew_deadline < self.duration:
            raise ValueError("lease timing needs 0 < retry period < renew deadline < duration "
                             f"(got {self.retry_period}, {self.renew_deadline}, "
                             f"{self.duration})")


@dataclass(frozen=True)
class LeaseSettings:
    """Which Lease, and who this process is (unique per process, as client-go does it)."""

    namespace: str
    name: str
    identity: str
    timing: LeaseTiming = LeaseTiming()


@dataclass(frozen=True)
class LeaseRecord:
    """What a Lease says, as plain data."""

    holder: str | None
    duration_seconds: int | None
    acquire_time: str | None
    renew_time: str | None
    transitions: int
    resource_version: str | None

    @classmethod
    def from_json(cls, lease: dict[str, Any]) -> LeaseRecord:
        spec = lease.get("spec") or {}
        return cls(holder=spec.get("holderIdentity") or None,
                   duration_seconds=spec.get("leaseDurationSeconds"),
                   acquire_time=spec.get("acquireTime"), renew_time=spec.get("renewTime"),
                   transitions=int(spec.get("leaseTransitions") or 0),
                   resource_version=(lease.get("metadata") or {}).get("resourceVersion"))

    @property
    def seen(self) -> tuple[str | None, str | None, str | None]:
        """What changes when its holder renews it: unchanged means nobody renewed."""
        return self.holder, self.renew_time, self.resource_version


class Action(StrEnum):
    CREATE = "create"  # no Lease yet
    RENEW = "renew"  # ours
    TAKE = "take"  # released, or expired
    WAIT = "wait"  # another replica leads


def decide(record: LeaseRecord | None, me: str, *, unchanged_for: float,
           timing: LeaseTiming) -> Action:
    if record is None:
        return Action.CREATE
    if record.holder == me:
        return Action.RENEW
    if record.holder is None:
        return Action.TAKE
    duration = record.duration_seconds if record.duration_seconds else timing.duration
    return Action.TAKE if unchanged_for >= duration else Action.WAIT


def micro_time(moment: datetime) -> str:
    """A `MicroTime` as the API wants it."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def lease_spec(record: LeaseRecord | None, me: str, timing: LeaseTiming,
               now: datetime) -> dict[str, Any]:
    """The spec to write when this process creates, renews or takes the Lease."""
    ours = record is not None and record.holder == me
    transitions = 0 if record is None else record.transitions + (0 if ours else 1)
    return {
        "holderIdentity": me,
        "leaseDurationSeconds": math.ceil(timing.duration),
        "acquireTime": record.acquire_time if ours and record is not None
        and record.acquire_time else micro_time(now),
        "renewTime": micro_time(now),
        "leaseTransitions": transitions,
    }


def released_spec(record: LeaseRecord, now: datetime) -> dict[str, Any]:
    """Given up on shutdown: the next replica may take it at once (client-go's
    ReleaseOnCancel)."""
    return {"holderIdentity": "", "leaseDurationSeconds": 1,
            "acquireTime": record.acquire_time, "renewTime": micro_time(now),
            "leaseTransitions": record.transitions}
