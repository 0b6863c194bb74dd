"""One DatabaseSchema's life in the operator: wake, pass, sleep.

A pass is a short list of named steps (`STEPS`), each over the one `steps.Pass` it is
given: read the spec, read the URL, read the revision files, verify, migrate (the look),
then gate the pods and write the status. One convention ends a pass early: a step
returns the seconds until the next pass. A step that judges (`Pass.judge`) ends the
look only; the pods are gated and the status written by that judgement. Every blocking
call runs in a thread, so Kopf's event loop never waits on a socket; Kopf itself stays
in `handlers`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from schemagate import kube
from schemagate.reconcile.context import JSON, Context
from schemagate.reconcile.pods import gate_pods
from schemagate.reconcile.report import write_status
from schemagate.reconcile.schedule import RETRY_UNREACHABLE
from schemagate.reconcile.steps import (
    Logger,
    Pass,
    Stopped,
    migrate,
    read_scripts,
    read_spec,
    read_url,
    verify,
    when_next,
)

Step = Callable[[Pass], Awaitable[float | None]]
#: The look: skipped from the step after a judgement on.
LOOK: tuple[Step, ...] = (read_spec, read_url, read_scripts, verify, migrate)
STEPS: tuple[Step, ...] = (*LOOK, gate_pods, write_status)


async def reconcile(body: JSON, ctx: Context, logger: Logger, idle: bool = False,
                    stopped: Stopped | None = None) -> float:
    """One pass; returns the seconds until the next one. `idle`: a timed pass of a settled
    schema (every gated pod open, none waiting, nothing running). `stopped` (the
    DatabaseSchema is being deleted, or the operator stops) is looked at again after the
    check: a verdict must never land on gates already released."""
    key = (body["metadata"]["namespace"], body["metadata"]["name"])
    state = ctx.registry.of(key)
    # The check's start, before the spec is read: a pod that existed by then is served
    # by this check.
    started = state.checking = ctx.clock()
    state.held = False
    try:
        return await _pass(Pass(ctx, key, body, started, logger, state, idle, stopped))
    finally:
        state.checking = None


async def _pass(p: Pass) -> float:
    for step in STEPS:
        if p.found is not None and step in LOOK:
            continue
        if (after := await step(p)) is not None:
            return after
    return when_next(p)


async def keep_verified(body: JSON, stopped: Stopped, ctx: Context, logger: Logger) -> None:
    """Verify now, then every interval or as soon as something relevant changes."""
    key = (body["metadata"]["namespace"], body["metadata"]["name"])
    ctx.registry.looping(key)
    idle = False
    while not stopped:
        ctx.progress.started(key)
        try:
            delay = await reconcile(body, ctx, logger, idle, stopped)
        except Exception as exc:  # noqa: BLE001 - report, then retry: never crash-loop
            ctx.metrics.internal_error()
            logger.warning("reconcile failed, retrying in %ss: %s", RETRY_UNREACHABLE,
                           kube.describe(exc))
            delay = RETRY_UNREACHABLE
            if (state := ctx.registry.schemas.get(key)) is not None:
                state.settled = False
        finally:
            ctx.progress.finished(key)
        woken = await ctx.registry.sleep(key, delay)
        idle = not woken and (state := ctx.registry.schemas.get(key)) is not None and \
            state.settled
