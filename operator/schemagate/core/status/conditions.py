"""Conditions by the Kubernetes API conventions.

`lastTransitionTime` moves only when `status` flips (cert-manager's rule); the clock
is passed in, so the rule is tested without sleeping.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from schemagate.core.wire.models import Condition

READY = "Ready"
SCHEMA_VERIFIED = "SchemaVerified"
MIGRATIONS_APPLIED = "MigrationsApplied"
STALLED = "Stalled"
RECONCILING = "Reconciling"
#: Characters of a condition message: five conditions can repeat one message, and the
#: status must stay small (an error text may quote a whole statement).
MESSAGE_LIMIT = 4096


def bounded_message(message: str, limit: int = MESSAGE_LIMIT) -> str:
    if len(message) <= limit:
        return message
    cut = f" ... ({len(message) - limit + 40:,} more characters)"
    return message[: limit - len(cut)] + cut


def timestamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_timestamp(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


def set_condition(conditions: Sequence[Condition], *, type: str, status: bool | None, reason: str,
                  message: str, generation: int | None, now: datetime) -> list[Condition]:
    """Return `conditions` with `type` set; other conditions keep their place."""
    wire_status = "Unknown" if status is None else ("True" if status else "False")
    previous = next((c for c in conditions if c.type == type), None)
    moved = previous is None or previous.status != wire_status
    updated = Condition(
        type=type, status=wire_status, reason=reason, message=bounded_message(message),
        last_transition_time=timestamp(now) if moved or previous is None
        else previous.last_transition_time,
        observed_generation=generation,
    )
    if previous is None:
        return [*conditions, updated]
    return [updated if c.type == type else c for c in conditions]


def find(conditions: Sequence[Condition], type: str) -> Condition | None:
    return next((c for c in conditions if c.type == type), None)
