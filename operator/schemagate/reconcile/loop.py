"""One DatabaseSchema's life in the operator: check, write status, drive the gate.

Async orchestration over the edges (`kube`, `database`, the migration steps) and the
pure core; every blocking call runs in a thread so Kopf's event loop never waits on a
socket. Kopf itself stays in `handlers`.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Protocol

from pydantic import ValidationError

from schemagate import database, kube
from schemagate.core import gate, migration
from schemagate.core.models import (
    DatabaseSchemaSpec,
    DatabaseSchemaStatus,
    DriftPolicy,
    GateStatus,
    MigrationRun,
    MigrationStatus,
)
from schemagate.core.reasons import Reason
from schemagate.core.requirement import requirement_for
from schemagate.core.revisions import Knowledge, parse_history, passed_through
from schemagate.core.status import Outcome, from_verdict, next_status, scrubbed, transition
from schemagate.reconcile import migrate
from schemagate.reconcile.context import JSON, Context
from schemagate.reconcile.pods import UNGATED_EVENT, GatePass, apply_gate, ungated_message
from schemagate.reconcile.registry import Published
from schemagate.reconcile.schedule import RETRY_UNREACHABLE, next_delay, until_served, worth_writing


class Stopped(Protocol):
    def __bool__(self) -> bool: ...


def explain_invalid(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        where = ".".join(str(p) for p in err["loc"]) or "spec"
        parts.append(f"spec.{where}: {err['msg']}")
    return "; ".join(parts)


async def read_url(spec: DatabaseSchemaSpec, namespace: str, ctx: Context) -> str | Outcome:
    """The backend's database URL from its Secret, or why it cannot be had."""
    try:
        return await asyncio.to_thread(ctx.kube.read_secret_value, namespace,
                                       spec.database.url_secret_ref)
    except kube.SecretNotFound as exc:
        return Outcome(Reason.SECRET_NOT_FOUND, str(exc))


async def verify(spec: DatabaseSchemaSpec, url: str, ctx: Context,
                 expected: frozenset[str] | None = None) -> Outcome:
    requirement = requirement_for(spec, expected)
    try:
        with ctx.metrics.verification_timer():
            verdict = await asyncio.to_thread(
                database.verify, url, requirement,
                connect_timeout=spec.database.connect_timeout_seconds)
    except database.InvalidDatabaseUrl as exc:
        ref = spec.database.url_secret_ref
        return Outcome(Reason.INVALID_SPEC, f"the URL in Secret {ref.name} key {ref.key} "
                                            f"cannot be used: {exc}")
    return from_verdict(verdict)


async def check_and_migrate(body: JSON, spec: DatabaseSchemaSpec, previous: MigrationStatus,
                            ctx: Context) -> migration.Step:
    """Verify, then start, follow or judge the migration as `migrations.run` says."""
    namespace = body["metadata"]["namespace"]
    url = await read_url(spec, namespace, ctx)
    if isinstance(url, Outcome):
        return migration.Step(url)
    run = spec.migrations
    if run.run is MigrationRun.ALEMBIC and run.alembic is not None:
        scripts = await migrate.read_scripts(namespace, run.alembic, ctx.kube)
        if isinstance(scripts, Outcome):
            return migration.Step(scripts)
        outcome = await verify(spec, url, ctx, scripts.heads)
        return await migrate.alembic_step(body, spec, scripts, outcome, previous, ctx.kube,
                                          ctx.verify_image, ctx.clock())
    outcome = await verify(spec, url, ctx)
    if run.run is MigrationRun.JOB and run.job is not None:
        return await migrate.job_step(body, spec, run.job, outcome, previous, ctx.kube,
                                      ctx.clock())
    return migration.Step(outcome)


async def reconcile(body: JSON, ctx: Context, logger: logging.Logger | logging.LoggerAdapter[Any]
                    ) -> float:
    """One pass; returns the seconds until the next one."""
    namespace, name = body["metadata"]["namespace"], body["metadata"]["name"]
    key = (namespace, name)
    # The check's start, before the spec is read: a pod that existed by then is served by
    # this check. The spec and status come from the API server, not from the watch's body,
    # so a DatabaseSchema applied just before its Deployment is never judged by its
    # previous spec, and a migration record we wrote is never read back older.
    started = ctx.clock()
    fresh = await asyncio.to_thread(ctx.kube.database_schema, namespace, name)
    if fresh is None:
        return RETRY_UNREACHABLE  # deleted meanwhile; the delete handler releases the gate
    body = fresh
    generation = int(body["metadata"].get("generation") or 0)
    previous = DatabaseSchemaStatus.model_validate(body.get("status") or {})
    try:
        spec: DatabaseSchemaSpec | None = DatabaseSchemaSpec.model_validate(body.get("spec") or {})
    except ValidationError as exc:
        spec = None
        step = migration.Step(Outcome(Reason.INVALID_SPEC, explain_invalid(exc)))
    if spec is not None:
        ctx.registry.watch(key, spec)
        step = await check_and_migrate(body, spec, previous.migration or MigrationStatus(), ctx)
    outcome = scrubbed(step.outcome, ctx.kube.scrubber.scrub)  # before pods, status, Events, logs
    on_drift = spec.gate.on_drift if spec else DriftPolicy.HOLD
    state = gate.gate_state(verified=outcome.verified, reason=outcome.reason.value,
                            message=outcome.message, on_drift=on_drift,
                            migrating=step.migrating)
    check = gate.Check(state=state, started=started, generation=generation,
                       knowledge=knowledge(outcome, step, previous, spec))
    known = ctx.registry.gates.get(key)
    ctx.registry.gates[key] = Published(check, spec, known.templates if known else frozenset())
    try:
        pods = await asyncio.to_thread(apply_gate, ctx, namespace, name, check, spec)
    except ValueError as exc:  # a selector the API server cannot use
        outcome = Outcome(Reason.INVALID_SPEC, f"gate.podSelector: {exc}")
        pods = GatePass(GateStatus(condition_type=gate.gate_condition_type(name)))
    gate_status = pods.status
    ctx.registry.gates[key] = Published(check, spec, pods.templates)
    ctx.metrics.observe_outcome(namespace, name, outcome, gate_status)
    status = next_status(previous, outcome=outcome, generation=generation, gate=gate_status,
                         now=ctx.clock(), migration=step.record)
    if worth_writing(previous, status, spec):
        await asyncio.to_thread(ctx.kube.patch_status, namespace, name,
                                status.model_dump(by_alias=True, mode="json", exclude_none=True))
    if (change := transition(previous, status)) is not None:
        logger.info("%s", change)
        ctx.announce(body, outcome.reason.value, change, not outcome.verified)
    else:
        logger.debug("unchanged: %s", outcome.reason.value)
    previous_gate = previous.gate or GateStatus(condition_type=gate_status.condition_type)
    if (gate_status.ungated or 0) > (previous_gate.ungated or 0):
        ctx.announce(body, UNGATED_EVENT, ungated_message(name, pods.ungated), True)
    # Pods waiting for a newer check: the next one starts as soon as it can serve them all.
    delay = until_served(next_delay(spec, outcome, gate_status), pods.serve_at, ctx.clock())
    return delay if step.sooner is None else min(delay, step.sooner)


def knowledge(outcome: Outcome, step: migration.Step, previous: DatabaseSchemaStatus,
              spec: DatabaseSchemaSpec | None) -> Knowledge:
    """What this check learned of the database's revisions, for pods that name one."""
    verdict = outcome.verdict
    seen = previous.revision.history if previous.revision else None
    current = verdict.current_revisions if verdict is not None and outcome.looked else None
    return Knowledge(current=current, graph=step.graph, graph_source=step.graph_source,
                     history=parse_history(passed_through(seen or [], current)),
                     revision_check=spec.migrations.revision_check if spec else True)


async def keep_verified(body: JSON, stopped: Stopped, ctx: Context,
                        logger: logging.Logger | logging.LoggerAdapter[Any]) -> None:
    """Verify now, then every interval or as soon as something relevant changes."""
    key = (body["metadata"]["namespace"], body["metadata"]["name"])
    ctx.registry.wakeups.setdefault(key, asyncio.Event())
    while not stopped:
        try:
            delay = await reconcile(body, ctx, logger)
        except Exception as exc:  # noqa: BLE001 - report, then retry: never crash-loop
            ctx.metrics.internal_error()
            logger.warning("reconcile failed, retrying in %ss: %s", RETRY_UNREACHABLE, exc)
            delay = RETRY_UNREACHABLE
        await ctx.registry.sleep(key, delay)
