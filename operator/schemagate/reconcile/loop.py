"""One DatabaseSchema's life in the operator: check, write status, drive the gate.

Async orchestration over the edges (`kube`, `database`, the migration steps) and the
pure core; every blocking call runs in a thread so Kopf's event loop never waits on a
socket. Kopf itself stays in `handlers`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import replace
from datetime import datetime
from typing import Any, Protocol

from pydantic import ValidationError

from schemagate import kube, verify_in_pod
from schemagate.bulkhead import NoAnswer
from schemagate.core.check.requirement import requirement_for
from schemagate.core.gate import readiness as gate
from schemagate.core.migration import judge as migration
from schemagate.core.revisions.applied import Knowledge, parse_history
from schemagate.core.status.outcome import (
    Outcome,
    from_verdict,
    next_status,
    revision_history,
    scrubbed,
    transition,
)
from schemagate.core.tenancy import allowed_hosts
from schemagate.core.tenancy.scrub import Scrubber
from schemagate.core.verify_pod import local_only, loopback_message
from schemagate.core.wire.models import (
    DatabaseSchemaSpec,
    DatabaseSchemaStatus,
    DriftPolicy,
    GateStatus,
    MigrationRun,
    MigrationStatus,
    SecretKeyRef,
    VerifyFrom,
)
from schemagate.core.wire.reasons import Reason
from schemagate.postgres import catalog, connect, search
from schemagate.reconcile import migrate
from schemagate.reconcile.context import JSON, Context
from schemagate.reconcile.liveness import PASS_BOUND
from schemagate.reconcile.pods import UNGATED_EVENT, GatePass, apply_gate, ungated_message
from schemagate.reconcile.registry import Key, Published
from schemagate.reconcile.schedule import (
    MIN_DELAY,
    RETRY_UNREACHABLE,
    aligned,
    heartbeat,
    next_delay,
    refusals_after,
    refused_message,
    until_served,
    worth_writing,
)


class Stopped(Protocol):
    def __bool__(self) -> bool: ...


def explain_invalid(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        # A map's key is part of the place, and a tenant wrote it: quoted short.
        where = ".".join(str(p)[:64] for p in err["loc"]) or "spec"
        parts.append(f"spec.{where}: {err['msg']}")
    return "; ".join(parts)


async def read_url(spec: DatabaseSchemaSpec, namespace: str, ctx: Context) -> str | Outcome:
    """The backend's database URL from its Secret, or why it cannot be had. While Secrets
    are watched, a value read is kept until its Secret changes: no GET per check."""
    ref = spec.database.url_secret_ref
    if not ctx.keep_secrets:
        return await _read_secret(namespace, ref, ctx)
    kept = (namespace, ref.name, ref.key)
    if (value := ctx.registry.secrets.get(kept)) is not None:
        return value
    # A thousand schemas that start together and share a Secret read it once.
    reading = ctx.registry.secret_reads.get(kept)
    if reading is None:
        reading = asyncio.ensure_future(_read_secret(namespace, ref, ctx))
        ctx.registry.secret_reads[kept] = reading
        changes = ctx.registry.secret_changes
        try:
            found = await asyncio.shield(reading)
        finally:
            ctx.registry.secret_reads.pop(kept, None)
        if isinstance(found, str) and ctx.registry.secret_changes == changes:
            ctx.registry.secrets[kept] = found
        return found
    return await asyncio.shield(reading)


async def _read_secret(namespace: str, ref: SecretKeyRef, ctx: Context) -> str | Outcome:
    try:
        return await asyncio.to_thread(ctx.kube.read_secret_value, namespace, ref)
    except kube.SecretNotFound as exc:
        return Outcome(Reason.SECRET_NOT_FOUND, str(exc))
    except kube.ValueTooLarge as exc:
        return Outcome(Reason.INVALID_SPEC, str(exc))


async def verify(body: JSON, spec: DatabaseSchemaSpec, url: str, ctx: Context,
                 expected: frozenset[str] | None = None, key: Key | None = None) -> Outcome:
    """Check the database: from a pod cloned from the backend (`verifyFrom: Pod`), or in
    the shared pass over its URL (`reconcile.batch`), which searches other databases only
    when the missing tables changed; `--no-economy`: on its own connection, searching
    every time."""
    requirement = requirement_for(spec, expected)
    timeout = spec.database.connect_timeout_seconds
    ref = spec.database.url_secret_ref
    if spec.database.verify_from is VerifyFrom.POD:
        with ctx.metrics.verification_timer():
            return await verify_in_pod.check(body, spec, requirement, ctx.kube,
                                             ctx.verify_image, ctx.clock, ctx.verify_pods,
                                             ctx.registry.scrubbers.of(_key(body)))
    try:
        hosts = connect.url_hosts(url)
    except connect.InvalidDatabaseUrl as exc:
        return Outcome(Reason.INVALID_SPEC, f"the URL in Secret {ref.name} key {ref.key} "
                                            f"cannot be used: {exc}")
    local = [why for host in hosts if (why := local_only(host)) is not None]
    if len(local) == len(hosts):  # no connection attempt: it would reach the operator
        return Outcome(Reason.INVALID_SPEC, loopback_message(local[0], ref.name, ref.key))
    namespace = body["metadata"]["namespace"]  # its share of the database slots
    allowed = ctx.allowed_hosts.for_namespace(namespace)
    if allowed is not None and (outside := [h for h in hosts if not allowed.allows(h)]):
        # No connection attempt: the operator's pod may reach what the tenant's may not.
        return Outcome(Reason.INVALID_SPEC, allowed_hosts.refusal(outside[0], namespace,
                                                                  allowed, ref.name, ref.key))
    try:
        with ctx.metrics.verification_timer():
            if ctx.economy:
                known = ctx.registry.elsewhere.get(key) if key else None
                verdict = await ctx.batches.verify(url, requirement, timeout, known,
                                                   namespace=namespace)
            else:
                verdict = await ctx.databases.run(
                    namespace, connect.server_of(url), catalog.check_deadline(timeout),
                    catalog.verify, url, requirement, connect_timeout=timeout)
    except NoAnswer as exc:
        return Outcome(Reason.DATABASE_UNREACHABLE, f"{exc}; the check was abandoned")
    except connect.InvalidDatabaseUrl as exc:
        return Outcome(Reason.INVALID_SPEC, f"the URL in Secret {ref.name} key {ref.key} "
                                            f"cannot be used: {exc}")
    if key is not None and (found := search.in_other_databases(verdict)) is not None:
        ctx.registry.elsewhere[key] = found
        ctx.metrics.verified_at(key[0], key[1], time.time())
    return from_verdict(verdict)


async def check_and_migrate(body: JSON, spec: DatabaseSchemaSpec, previous: MigrationStatus,
                            ctx: Context) -> migration.Step:
    """Verify, then start, follow or judge the migration as `migrations.run` says."""
    namespace = body["metadata"]["namespace"]
    key = (namespace, body["metadata"]["name"])
    if (refused := await ctx.author_rights.refusal(spec)) is not None:
        return migration.Step(Outcome(Reason.INVALID_SPEC, refused))
    url = await read_url(spec, namespace, ctx)
    if isinstance(url, Outcome):
        return migration.Step(url)
    ctx.registry.scrubbers.learn(key, url)
    if previous.outcome == migration.RUNNING:
        # A migration ran since the last look: where its tables went (another database?)
        # must be searched again, even if the same tables are still missing.
        ctx.registry.elsewhere.pop(key, None)
    run = spec.migrations
    if run.run is MigrationRun.ALEMBIC and run.alembic is not None:
        scripts = await migrate.read_scripts(namespace, run.alembic, ctx.kube)
        if isinstance(scripts, Outcome):
            return migration.Step(scripts)
        outcome = await verify(body, spec, url, ctx, scripts.heads, key)
        return await migrate.alembic_step(body, spec, scripts, outcome, previous, ctx.kube,
                                          ctx.verify_image, ctx.clock(),
                                          ctx.registry.scrubbers.of(key))
    outcome = await verify(body, spec, url, ctx, key=key)
    if run.run is MigrationRun.JOB and run.job is not None:
        return await migrate.job_step(body, spec, run.job, outcome, previous, ctx.kube,
                                      ctx.clock(), ctx.registry.scrubbers.of(key))
    return migration.Step(outcome)


async def reconcile(body: JSON, ctx: Context, logger: logging.Logger | logging.LoggerAdapter[Any],
                    idle: bool = False, stopped: Stopped | None = None) -> float:
    """One pass; returns the seconds until the next one. `idle`: a timed pass of a settled
    schema (every gated pod open, none waiting, nothing running). `stopped` (the
    DatabaseSchema is being deleted, or the operator stops) is looked at again after the
    check: a check in a pod takes seconds, and a verdict must never land on gates
    already released."""
    namespace, name = body["metadata"]["namespace"], body["metadata"]["name"]
    key = (namespace, name)
    # The check's start, before the spec is read: a pod that existed by then is served by
    # this check. The spec and status come from the API server, not from the watch's body,
    # so a DatabaseSchema applied just before its Deployment is never judged by its
    # previous spec, and a migration record we wrote is never read back older. A timed
    # pass of a settled schema opens no pod and runs nothing: the watch's copy will do,
    # which spares one GET per schema per interval.
    started = ctx.clock()
    ctx.registry.checking[key] = started
    ctx.registry.held.discard(key)
    try:
        return await _pass(body, key, started, ctx, logger, idle, stopped)
    finally:
        ctx.registry.checking.pop(key, None)


async def _pass(body: JSON, key: tuple[str, str], started: datetime, ctx: Context,
                logger: logging.Logger | logging.LoggerAdapter[Any], idle: bool,
                stopped: Stopped | None) -> float:
    namespace, name = key
    if not (idle and ctx.economy):
        fresh = await asyncio.to_thread(ctx.kube.database_schema, namespace, name)
        if fresh is None or fresh["metadata"].get("deletionTimestamp"):
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
        if stopped:
            return RETRY_UNREACHABLE
    scrubber = ctx.registry.scrubbers.of(key)
    outcome = scrubbed(step.outcome, scrubber.message)  # before pods, status, Events, logs
    outcome, hold = held_after_refusal(ctx, key, outcome)
    on_drift = spec.gate.on_drift if spec else DriftPolicy.HOLD
    state = gate.gate_state(verified=outcome.verified, reason=outcome.reason.value,
                            message=outcome.message, on_drift=on_drift,
                            migrating=step.migrating)
    check = gate.Check(state=state, started=started, generation=generation,
                       knowledge=knowledge(outcome, step, previous, spec))
    known = ctx.registry.gates.get(key)
    ctx.registry.gates[key] = Published(check, spec, known.templates if known else frozenset())
    try:
        changed = await apply_gate(ctx, namespace, name, check, spec,
                                   read_only=idle and ctx.economy)
    except ValueError as exc:  # a selector the API server cannot use
        outcome = Outcome(Reason.INVALID_SPEC, f"gate.podSelector: {exc}")
        changed = GatePass(GateStatus(condition_type=gate.gate_condition_type(name)))
    if changed is None:
        # A pass on the watch's copy changes no pod: one that would (drift, a pod whose
        # event is still on its way) is done again at once from the API server's copy.
        if known is not None:
            ctx.registry.gates[key] = known
        ctx.registry.settled[key] = False
        return MIN_DELAY
    pods = changed
    gate_status = pods.status
    ctx.registry.gates[key] = Published(check, spec, pods.templates)
    ctx.metrics.observe_outcome(namespace, name, outcome, gate_status)
    status = next_status(previous, outcome=outcome, generation=generation, gate=gate_status,
                         now=ctx.clock(), migration=scrubbed_record(step.record, scrubber),
                         graph=step.graph)
    every = heartbeat(len(ctx.registry.wakeups)) if ctx.economy else None
    if worth_writing(previous, status, spec, every):
        await asyncio.to_thread(ctx.kube.patch_status, namespace, name,
                                status.model_dump(by_alias=True, mode="json", exclude_none=True),
                                scrubber)
    if (change := transition(previous, status)) is not None:
        logger.info("%s", change)
        ctx.announce(body, outcome.reason.value, change, not outcome.verified)
    else:
        logger.debug("unchanged: %s", outcome.reason.value)
    previous_gate = previous.gate or GateStatus(condition_type=gate_status.condition_type)
    if (gate_status.ungated or 0) > (previous_gate.ungated or 0):
        ctx.announce(body, UNGATED_EVENT, ungated_message(name, pods.ungated), True)
    # Pods waiting for a newer check: the next one starts as soon as it can serve them all.
    delay = until_served(next_delay(spec, outcome, gate_status, step.sooner), pods.serve_at,
                         ctx.clock())
    ctx.registry.settled[key] = (outcome.looked and gate_status.ready >= gate_status.pods
                                 and pods.serve_at is None and step.sooner is None
                                 and step.migrating is None)
    if ctx.economy and spec is not None:
        delay = aligned(delay, float(spec.verify_interval_seconds), time.time())
    if hold:  # no pod waiting, no tick, no wake-up brings a refused attempt sooner
        ctx.registry.held.add(key)
        return hold
    return delay


def held_after_refusal(ctx: Context, key: Key, outcome: Outcome) -> tuple[Outcome, float]:
    """The outcome as the status tells it, and how long the schema now waits whatever
    wakes it (0: not held): after credentials are refused, the wait of `ctx.backoff`."""
    refusals = refusals_after(ctx.registry.refusals.get(key, 0), outcome)
    ctx.registry.refusals[key] = refusals
    if outcome.reason is not Reason.AUTHENTICATION_FAILED:
        return outcome, 0.0
    wait = ctx.backoff.after(refusals)
    return replace(outcome, message=refused_message(outcome.message, wait)), wait


def scrubbed_record(record: MigrationStatus | None, scrubber: Scrubber
                    ) -> MigrationStatus | None:
    """The migration record with its message as status shows it, before its size counts."""
    if record is None or not record.message:
        return record
    return record.model_copy(update={"message": scrubber.message(record.message)})


def _key(body: JSON) -> Key:
    return body["metadata"]["namespace"], body["metadata"]["name"]


def knowledge(outcome: Outcome, step: migration.Step, previous: DatabaseSchemaStatus,
              spec: DatabaseSchemaSpec | None) -> Knowledge:
    """What this check learned of the database's revisions, for pods that name one."""
    verdict = outcome.verdict if outcome.looked else None
    current = None if verdict is None else verdict.current_revisions
    history = [] if verdict is None else revision_history(previous, verdict, step.graph)[1]
    return Knowledge(current=current, graph=step.graph, graph_source=step.graph_source,
                     history=parse_history(history),
                     revision_check=spec.migrations.revision_check if spec else True)


async def keep_verified(body: JSON, stopped: Stopped, ctx: Context,
                        logger: logging.Logger | logging.LoggerAdapter[Any]) -> None:
    """Verify now, then every interval or as soon as something relevant changes."""
    key = (body["metadata"]["namespace"], body["metadata"]["name"])
    ctx.registry.wakeups.setdefault(key, asyncio.Event())
    idle = False
    while not stopped:
        ctx.progress.started(key, pass_bound(body))
        try:
            delay = await reconcile(body, ctx, logger, idle, stopped)
        except Exception as exc:  # noqa: BLE001 - report, then retry: never crash-loop
            ctx.metrics.internal_error()
            logger.warning("reconcile failed, retrying in %ss: %s", RETRY_UNREACHABLE,
                           kube.describe(exc))
            delay = RETRY_UNREACHABLE
            ctx.registry.settled[key] = False
        finally:
            ctx.progress.finished(key)
        woken = await ctx.registry.sleep(key, delay)
        idle = not woken and ctx.registry.settled.get(key, False)


def pass_bound(body: JSON) -> float:
    """How long one pass of this schema may take before the liveness probe calls the
    process wedged. Both migration modes run in Jobs: no pass waits for a migration."""
    return PASS_BOUND
