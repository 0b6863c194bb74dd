"""The steps of one pass that look: read the spec, read the URL, read the revision files,
verify, migrate. Each takes the pass (`Pass`, which carries the context) and returns
None to go on, or the seconds until the next pass to end this one there. A step that
reaches a judgement (an invalid spec, a missing Secret) says so with `Pass.judge`: the
look is over, and the pass goes on to gate the pods and write the status."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from pydantic import ValidationError

from schemagate import kube
from schemagate.bulkhead import NoAnswer
from schemagate.core.check.requirement import requirement_for
from schemagate.core.migration import judge as migration
from schemagate.core.revisions.applied import Knowledge, parse_history
from schemagate.core.status.outcome import Outcome, from_verdict, revision_history
from schemagate.core.tenancy import allowed_hosts
from schemagate.core.verify_pod.loopback import local_only, loopback_message
from schemagate.core.wire.models import (
    DatabaseSchemaSpec,
    DatabaseSchemaStatus,
    MigrationRun,
    MigrationStatus,
    SecretKeyRef,
    VerifyFrom,
)
from schemagate.core.wire.reasons import Reason
from schemagate.postgres import connect, search
from schemagate.reconcile import migrate as migration_steps
from schemagate.reconcile import verify_in_pod
from schemagate.reconcile.context import JSON, Context
from schemagate.reconcile.registry import Key, SchemaState
from schemagate.reconcile.schedule import (
    RETRY_UNREACHABLE,
    aligned,
    next_delay,
    refusals_after,
    refused_message,
    until_served,
)

if TYPE_CHECKING:
    from schemagate.reconcile.pods import GatePass

Logger = logging.Logger | logging.LoggerAdapter[Any]


class Stopped(Protocol):
    def __bool__(self) -> bool: ...


@dataclass
class Pass:
    """One pass over one schema: its context, and what its steps have found so far."""

    ctx: Context
    key: Key
    body: JSON
    #: When the check started, before the spec was read: a pod that existed by then is
    #: served by it. A verify pod's check started with the pass that created the pod.
    started: datetime
    logger: Logger
    #: The schema's state, as the pass began (a schema deleted meanwhile is not revived).
    state: SchemaState
    #: A timed pass of a settled schema: the watch's copy will do, and no pod changes.
    idle: bool = False
    #: The DatabaseSchema is being deleted, or the operator stops.
    stopped: Stopped | None = None
    generation: int = 0
    previous: DatabaseSchemaStatus = field(default_factory=DatabaseSchemaStatus)
    spec: DatabaseSchemaSpec | None = None
    url: str = ""
    scripts: migration_steps.AlembicScripts | None = None
    verified: Outcome | None = None
    #: The look's judgement and the migration's record: set, the look is over.
    found: migration.Step | None = None
    #: What the status and the gate tell (the judgement, scrubbed), and how long a
    #: schema whose credentials were refused now waits whatever wakes it (0: not held).
    outcome: Outcome | None = None
    hold: float = 0.0
    pods: GatePass | None = None

    @property
    def namespace(self) -> str:
        return self.key[0]

    @property
    def name(self) -> str:
        return self.key[1]

    def judge(self, outcome: Outcome) -> float | None:
        """The look is over with `outcome`; the pass goes on (None) to gate the pods."""
        self.found = migration.Step(outcome)
        return None


def explain_invalid(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        # A map's key is part of the place, and a tenant wrote it: quoted short.
        where = ".".join(str(p)[:64] for p in err["loc"]) or "spec"
        parts.append(f"spec.{where}: {err['msg']}")
    return "; ".join(parts)


async def read_spec(p: Pass) -> float | None:
    """The spec and status from the API server, not the watch's body: a DatabaseSchema
    applied just before its Deployment is never judged by its previous spec, and a
    migration record we wrote is never read back older. An idle pass opens no pod and
    runs nothing: the watch's copy will do, which spares one GET per interval."""
    if not p.idle:
        fresh = await asyncio.to_thread(p.ctx.kube.database_schema, p.namespace, p.name)
        if fresh is None or fresh["metadata"].get("deletionTimestamp"):
            return RETRY_UNREACHABLE  # deleted meanwhile; the delete handler releases the gate
        p.body = fresh
    p.generation = int(p.body["metadata"].get("generation") or 0)
    p.previous = DatabaseSchemaStatus.model_validate(p.body.get("status") or {})
    try:
        p.spec = DatabaseSchemaSpec.model_validate(p.body.get("spec") or {})
    except ValidationError as exc:
        return p.judge(Outcome(Reason.INVALID_SPEC, explain_invalid(exc)))
    p.ctx.registry.watch(p.key, p.spec)
    if (refused := await p.ctx.author_rights.refusal(p.spec)) is not None:
        return p.judge(Outcome(Reason.INVALID_SPEC, refused))
    return None


async def read_url(p: Pass) -> float | None:
    assert p.spec is not None
    url = await secret_url(p.spec, p.namespace, p.ctx)
    if isinstance(url, Outcome):
        return p.judge(url)
    p.url = url
    p.ctx.registry.scrubbers.learn(p.key, url)
    if p.previous.migration is not None and p.previous.migration.outcome == migration.RUNNING:
        # A migration ran since the last look: where its tables went (another database?)
        # must be searched again, even if the same tables are still missing.
        p.state.elsewhere = None
    return None


async def read_scripts(p: Pass) -> float | None:
    """`run: Alembic`: the ConfigMap's revision files, whose heads the check expects."""
    assert p.spec is not None
    alembic = p.spec.migrations.alembic
    if p.spec.migrations.run is not MigrationRun.ALEMBIC or alembic is None:
        return None
    scripts = await migration_steps.read_scripts(p.namespace, alembic, p.ctx.kube)
    if isinstance(scripts, Outcome):
        return p.judge(scripts)
    p.scripts = scripts
    return None


async def verify(p: Pass) -> float | None:
    """Check the database: from a pod cloned from the backend (`verifyFrom: Pod`; while
    its pod runs, the pass ends and the next one looks at it), or in the shared pass over
    its URL (`reconcile.batch`)."""
    assert p.spec is not None
    requirement = requirement_for(p.spec, p.scripts.heads if p.scripts else None)
    if p.spec.database.verify_from is VerifyFrom.POD:
        checked = await verify_in_pod.check(
            p.body, p.spec, requirement, p.ctx.kube, p.ctx.verify_image, p.started,
            p.ctx.verify_pods, p.ctx.registry.scrubbers.of(p.key))
        if checked.outcome is None:
            return verify_in_pod.POLL  # its pod's own event wakes the loop sooner
        p.started, p.verified = checked.started, checked.outcome
        p.ctx.metrics.verification_seconds.observe((p.ctx.clock() - p.started).total_seconds())
    else:
        p.verified = await verify_over_url(p, requirement)
    return RETRY_UNREACHABLE if p.stopped else None  # never a verdict on released gates


async def verify_over_url(p: Pass, requirement: Any) -> Outcome:
    """One check in the shared pass over the URL, which searches other databases only
    when the missing tables changed; no connection to a host the namespace may not name,
    nor to one that would reach the operator itself."""
    assert p.spec is not None
    ref = p.spec.database.url_secret_ref
    try:
        hosts = connect.url_hosts(p.url)
    except connect.InvalidDatabaseUrl as exc:
        return Outcome(Reason.INVALID_SPEC, f"the URL in Secret {ref.name} key {ref.key} "
                                            f"cannot be used: {exc}")
    local = [why for host in hosts if (why := local_only(host)) is not None]
    if len(local) == len(hosts):  # no connection attempt: it would reach the operator
        return Outcome(Reason.INVALID_SPEC, loopback_message(local[0], ref.name, ref.key))
    allowed = p.ctx.allowed_hosts.for_namespace(p.namespace)
    if allowed is not None and (outside := [h for h in hosts if not allowed.allows(h)]):
        # No connection attempt: the operator's pod may reach what the tenant's may not.
        return Outcome(Reason.INVALID_SPEC, allowed_hosts.refusal(
            outside[0], p.namespace, allowed, ref.name, ref.key))
    try:
        with p.ctx.metrics.verification_timer():
            verdict = await p.ctx.batches.verify(
                p.url, requirement, p.spec.database.connect_timeout_seconds,
                p.state.elsewhere, namespace=p.namespace)
    except NoAnswer as exc:
        return Outcome(Reason.DATABASE_UNREACHABLE, f"{exc}; the check was abandoned")
    except connect.InvalidDatabaseUrl as exc:
        return Outcome(Reason.INVALID_SPEC, f"the URL in Secret {ref.name} key {ref.key} "
                                            f"cannot be used: {exc}")
    if (found := search.in_other_databases(verdict)) is not None:
        p.state.elsewhere = found
        p.ctx.metrics.verified_at(p.namespace, p.name, time.time())
    return from_verdict(verdict)


async def migrate(p: Pass) -> float | None:
    """Start, follow or judge the migration, given this pass's verification."""
    assert p.spec is not None and p.verified is not None
    run, scrubber = p.spec.migrations, p.ctx.registry.scrubbers.of(p.key)
    previous = p.previous.migration or MigrationStatus()
    if p.scripts is not None:
        p.found = await migration_steps.alembic_step(
            p.body, p.spec, p.scripts, p.verified, previous, p.ctx.kube, p.ctx.verify_image,
            p.ctx.clock(), scrubber)
    elif run.run is MigrationRun.JOB and run.job is not None:
        p.found = await migration_steps.job_step(p.body, p.spec, run.job, p.verified, previous,
                                                 p.ctx.kube, p.ctx.clock(), scrubber)
    else:
        p.found = migration.Step(p.verified)
    return None


async def secret_url(spec: DatabaseSchemaSpec, namespace: str, ctx: Context) -> str | Outcome:
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


def held_after_refusal(state: SchemaState, ctx: Context, outcome: Outcome
                       ) -> tuple[Outcome, float]:
    """The outcome as the status tells it, and how long the schema now waits whatever
    wakes it (0: not held): after credentials are refused, the wait of `ctx.backoff`."""
    state.refusals = refusals_after(state.refusals, outcome)
    if outcome.reason is not Reason.AUTHENTICATION_FAILED:
        return outcome, 0.0
    wait = ctx.backoff.after(state.refusals)
    return replace(outcome, message=refused_message(outcome.message, wait)), wait


def knowledge(outcome: Outcome, step: migration.Step, previous: DatabaseSchemaStatus,
              spec: DatabaseSchemaSpec | None) -> Knowledge:
    """What this check learned of the database's revisions, for pods that name one."""
    verdict = outcome.verdict if outcome.looked else None
    current = None if verdict is None else verdict.current_revisions
    history = [] if verdict is None else revision_history(previous, verdict, step.graph)[1]
    return Knowledge(current=current, graph=step.graph, graph_source=step.graph_source,
                     history=parse_history(history),
                     revision_check=spec.migrations.revision_check if spec else True)


def when_next(p: Pass) -> float:
    """The seconds until the next pass: sooner while pods wait for a newer check (as soon
    as one can serve them all) or a migration runs; an idle wait ends on the interval's
    tick, shared by the schemas of one database. Also whether the schema is now settled."""
    assert p.found is not None and p.outcome is not None and p.pods is not None
    gate_status, step = p.pods.status, p.found
    delay = until_served(next_delay(p.spec, p.outcome, gate_status, step.sooner),
                         p.pods.serve_at, p.ctx.clock())
    p.state.settled = (p.outcome.looked and gate_status.ready >= gate_status.pods
                       and p.pods.serve_at is None and step.sooner is None
                       and step.migrating is None)
    if p.spec is not None:
        delay = aligned(delay, float(p.spec.verify_interval_seconds), time.time())
    if p.hold:  # no pod waiting, no tick, no wake-up brings a refused attempt sooner
        p.state.held = True
        return p.hold
    return delay
