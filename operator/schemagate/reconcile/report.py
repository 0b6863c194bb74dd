"""What the operator tells people: the DatabaseSchema's status and its Events. The one
writer of both: the pass's last step, `write_status`, and the release of the gates."""

from __future__ import annotations

import asyncio

from schemagate.core.gate import readiness as gate
from schemagate.core.status.outcome import next_status, transition
from schemagate.core.tenancy.scrub import Scrubber
from schemagate.core.wire.models import GateStatus, MigrationStatus
from schemagate.reconcile.context import JSON, Context
from schemagate.reconcile.schedule import heartbeat, worth_writing
from schemagate.reconcile.steps import Logger, Pass

#: The Warning Event on a DatabaseSchema whose pods carry no gate for it.
UNGATED_EVENT = "PodWithoutGate"
#: Pods named in that Event; the count says the rest.
UNGATED_NAMED = 5


async def write_status(p: Pass) -> float | None:
    """The status, when something a user sees changed (or its heartbeat is due); an
    Event for each transition, and for pods that match the schema but carry no gate."""
    assert p.found is not None and p.outcome is not None and p.pods is not None
    ctx, outcome, gate_status = p.ctx, p.outcome, p.pods.status
    scrubber = ctx.registry.scrubbers.of(p.key)
    ctx.metrics.observe_outcome(p.namespace, p.name, outcome, gate_status)
    status = next_status(p.previous, outcome=outcome, generation=p.generation,
                         gate=gate_status, now=ctx.clock(),
                         migration=scrubbed_record(p.found.record, scrubber),
                         graph=p.found.graph)
    if worth_writing(p.previous, status, p.spec, heartbeat(ctx.registry.loops())):
        await asyncio.to_thread(ctx.kube.patch_status, p.namespace, p.name,
                                status.model_dump(by_alias=True, mode="json", exclude_none=True),
                                scrubber)
    if (change := transition(p.previous, status)) is not None:
        p.logger.info("%s", change)
        ctx.announce(p.body, outcome.reason.value, change, not outcome.verified)
    else:
        p.logger.debug("unchanged: %s", outcome.reason.value)
    previous_gate = p.previous.gate or GateStatus(condition_type=gate_status.condition_type)
    if (gate_status.ungated or 0) > (previous_gate.ungated or 0):
        ctx.announce(p.body, UNGATED_EVENT, ungated_message(p.name, p.pods.ungated), True)
    return None


def released(ctx: Context, body: JSON, pods: int, logger: Logger) -> None:
    """The Event of a DatabaseSchema's deletion: its gates released."""
    message = f"released the gate of {pods} pod(s): the DatabaseSchema is being deleted"
    logger.info("%s", message)
    ctx.announce(body, gate.GATE_RELEASED, message, False)


def ungated_message(name: str, pods: tuple[str, ...]) -> str:
    shown = ", ".join(pods[:UNGATED_NAMED]) + (
        f" and {len(pods) - UNGATED_NAMED} more" if len(pods) > UNGATED_NAMED else "")
    return (f"{len(pods)} pod(s) match DatabaseSchema {name} but carry no readiness gate "
            f"{gate.gate_condition_type(name)}, so nothing holds them: {shown}; enable the "
            "chart's gateInjection (label schemagate.io/schema) or add the gate to the pod "
            "template")


def scrubbed_record(record: MigrationStatus | None, scrubber: Scrubber
                    ) -> MigrationStatus | None:
    """The migration record with its message as status shows it, before its size counts."""
    if record is None or not record.message:
        return record
    return record.model_copy(update={"message": scrubber.message(record.message)})
