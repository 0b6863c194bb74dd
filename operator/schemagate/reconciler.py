"""One DatabaseSchema's life in the operator: check, write status, drive the gate.

Async orchestration over the edges (`kube`, `database`) and the pure core; every
blocking call runs in a thread so Kopf's event loop never waits on a socket. Kopf
itself stays in `handlers`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from pydantic import ValidationError

from schemagate import database, kube, run_alembic, run_job
from schemagate.core import conditions as cond
from schemagate.core import gate, migration
from schemagate.core.models import (
    DatabaseSchemaSpec,
    DatabaseSchemaStatus,
    DriftPolicy,
    GateStatus,
    LabelSelector,
    MigrationRun,
    MigrationStatus,
)
from schemagate.core.reasons import Reason
from schemagate.core.requirement import requirement_for
from schemagate.core.revisions import Knowledge, parse_history, passed_through
from schemagate.core.status import Outcome, from_verdict, next_status, transition
from schemagate.metrics import Metrics

Key = tuple[str, str]  # (namespace, name)
JSON = Mapping[str, Any]

#: How soon to look again after the database could not be reached (seconds, capped by
#: the resource's own interval): soon enough to notice recovery, rare enough not to hammer.
RETRY_UNREACHABLE = 5.0
#: While gated pods wait (schema unverified, a revision not applied), look this often: one
#: catalog round trip (about 15 ms with its connection), and every second saved is a
#: second of a rollout not waiting.
RECHECK_WHILE_PODS_WAIT = 0.5
#: The shortest sleep between two passes while pods wait for a newer check.
MIN_DELAY = 0.05
#: Parallel pod-status patches while opening or closing a gate.
PATCH_WORKERS = 16


class Stopped(Protocol):
    def __bool__(self) -> bool: ...


def explain_invalid(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        where = ".".join(str(p) for p in err["loc"]) or "spec"
        parts.append(f"spec.{where}: {err['msg']}")
    return "; ".join(parts)


#: Pods whose first sighting this process remembers (by uid); the oldest go first. A pod
#: forgotten falls back to its creationTimestamp, so the bound costs latency, never safety.
SEEN_PODS_LIMIT = 50_000


@dataclass
class Published:
    check: gate.Check
    spec: DatabaseSchemaSpec | None
    #: The templates of the pods open after the last pass: a pod of another is a release.
    templates: frozenset[str] = frozenset()


@dataclass
class Registry:
    """What this process knows between events: each schema's gate and its wake-up."""

    gates: dict[Key, Published] = field(default_factory=dict)
    #: What each schema reads besides itself: ("Secret" | "ConfigMap", namespace, name).
    references: dict[Key, frozenset[tuple[str, str, str]]] = field(default_factory=dict)
    wakeups: dict[Key, asyncio.Event] = field(default_factory=dict)
    versions: dict[Key, object] = field(default_factory=dict)
    written: dict[Key, DatabaseSchemaStatus] = field(default_factory=dict)
    #: When this process first saw each pod (uid): a moment the pod certainly existed by.
    seen: dict[str, datetime] = field(default_factory=dict)

    def first_seen(self, uid: str, now: datetime) -> datetime:
        if uid not in self.seen and len(self.seen) >= SEEN_PODS_LIMIT:
            del self.seen[next(iter(self.seen))]
        return self.seen.setdefault(uid, now)

    def pod_gone(self, uid: str) -> None:
        self.seen.pop(uid, None)

    def latest_generation(self, key: Key) -> int:
        """The newest generation the watch has shown for the schema (0: none yet)."""
        version = self.versions.get(key)
        if isinstance(version, tuple) and version and isinstance(version[0], int):
            return version[0]
        return 0

    def wake(self, key: Key) -> None:
        if key in self.wakeups:
            self.wakeups[key].set()

    def notice(self, key: Key, version: object) -> None:
        """Wake the schema's loop when what it acts on changed (generation, rerun)."""
        if self.versions.get(key, version) != version:
            self.wake(key)
        self.versions[key] = version

    def watch(self, key: Key, spec: DatabaseSchemaSpec) -> None:
        refs = {("Secret", key[0], spec.database.url_secret_ref.name)}
        if spec.migrations.alembic is not None:
            refs.add(("ConfigMap", key[0], spec.migrations.alembic.config_map_ref.name))
        self.references[key] = frozenset(refs)

    def wake_users_of(self, kind: str, namespace: str, name: str) -> None:
        for schema, refs in self.references.items():
            if (kind, namespace, name) in refs:
                self.wake(schema)

    async def sleep(self, key: Key, seconds: float) -> None:
        event = self.wakeups.setdefault(key, asyncio.Event())
        try:
            await asyncio.wait_for(event.wait(), timeout=seconds)
        except TimeoutError:
            pass
        event.clear()

    def forget(self, key: Key) -> None:
        self.gates.pop(key, None)
        self.references.pop(key, None)
        self.wakeups.pop(key, None)
        self.versions.pop(key, None)
        self.written.pop(key, None)


#: Posts a Kubernetes Event about the object: (body, reason, message, warning).
Announce = Callable[[JSON, str, str, bool], None]


@dataclass
class Context:
    kube: kube.Kube
    registry: Registry
    metrics: Metrics
    announce: Announce
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)


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
    """Verify, and run or judge migrations as `migrations.run` says."""
    namespace = body["metadata"]["namespace"]
    url = await read_url(spec, namespace, ctx)
    if isinstance(url, Outcome):
        return migration.Step(url)
    run = spec.migrations
    if run.run is MigrationRun.ALEMBIC and run.alembic is not None:
        return await run_alembic.alembic_step(
            namespace, spec, run.alembic, previous, url,
            lambda heads: verify(spec, url, ctx, heads), ctx.kube, ctx.clock())
    outcome = await verify(spec, url, ctx)
    if run.run is MigrationRun.JOB and run.job is not None:
        return await run_job.job_step(body, spec, run.job, outcome, previous, ctx.kube,
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
    outcome = step.outcome
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
        ctx.registry.written[key] = status
    if (change := transition(previous, status)) is not None:
        logger.info("%s", change)
        ctx.announce(body, outcome.reason.value, change, not outcome.verified)
    else:
        logger.debug("unchanged: %s", outcome.reason.value)
    previous_gate = previous.gate or GateStatus(condition_type=gate_status.condition_type)
    if (gate_status.ungated or 0) > (previous_gate.ungated or 0):
        ctx.announce(body, UNGATED_EVENT, ungated_message(name, pods.ungated), True)
    delay = next_delay(spec, outcome, gate_status)
    if pods.serve_at is not None:  # pods wait for a newer check: one serves them all
        delay = min(delay, max(MIN_DELAY, (pods.serve_at - ctx.clock()).total_seconds()))
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


#: The Warning Event on a DatabaseSchema whose pods carry no gate for it.
UNGATED_EVENT = "PodWithoutGate"
#: Pods named in that Event; the count says the rest.
UNGATED_NAMED = 5


@dataclass(frozen=True)
class GatePass:
    status: GateStatus
    serve_at: datetime | None = None  # when a check may serve the pods still waiting
    ungated: tuple[str, ...] = ()
    templates: frozenset[str] = frozenset()


def ungated_message(name: str, pods: tuple[str, ...]) -> str:
    shown = ", ".join(pods[:UNGATED_NAMED]) + (
        f" and {len(pods) - UNGATED_NAMED} more" if len(pods) > UNGATED_NAMED else "")
    return (f"{len(pods)} pod(s) match DatabaseSchema {name} but carry no readiness gate "
            f"{gate.gate_condition_type(name)}, so nothing holds them: {shown}; enable the "
            "chart's gateInjection (label schemagate.io/schema) or add the gate to the pod "
            "template")


def apply_gate(ctx: Context, namespace: str, name: str, check: gate.Check,
               spec: DatabaseSchemaSpec | None) -> GatePass:
    """Set this schema's condition on every pod that carries its gate (blocking)."""
    condition_type = gate.gate_condition_type(name)
    selector = spec.gate.pod_selector if spec else LabelSelector()
    selector_text = gate.selector_string(selector)
    everything = ctx.kube.pods(namespace, condition_type)
    pods = [with_seen(ctx, p) for p in everything if p.has_gate]
    ungated = tuple(sorted(p.name for p in everything if not p.has_gate
                           and gate.should_hold(selector, p, name)))
    selected = [gate.selects(selector, pod.labels) or gate.needs_this_schema(pod, name)
                for pod in pods]
    latest = ctx.registry.latest_generation((namespace, name))
    templates = gate.open_templates(pods)
    wanted = [gate.pod_condition(check, pod, selected=chosen, selector=selector_text,
                                 latest_generation=latest, templates=templates)
              for pod, chosen in zip(pods, selected, strict=True)]
    # A rollout of a hundred pods should open in one round of patches, not a hundred.
    with ThreadPoolExecutor(max_workers=PATCH_WORKERS) as pool:
        list(pool.map(lambda p, w: set_if_changed(ctx, namespace, p, condition_type, w),
                      pods, wanted))
    ready = sum(w.status and chosen for w, chosen in zip(wanted, selected, strict=True))
    waiting = [gate.served_after(p, templates) or check.started or ctx.clock()
               for p, w in zip(pods, wanted, strict=True)
               if w.reason == gate.AWAITING_FRESH_CHECK]
    opened = gate.open_templates(dataclasses.replace(p, condition={"status": "True"})
                                 for p, w in zip(pods, wanted, strict=True) if w.status)
    return GatePass(GateStatus(condition_type=condition_type, pods=sum(selected), ready=ready,
                               ungated=len(ungated) or None),
                    min(waiting, default=None), ungated, opened)


def with_seen(ctx: Context, pod: gate.PodView) -> gate.PodView:
    seen = ctx.registry.seen.get(pod.uid)
    return pod if seen is None else dataclasses.replace(pod, seen=seen)


def set_if_changed(ctx: Context, namespace: str, pod: gate.PodView, condition_type: str,
                   wanted: gate.PodCondition) -> None:
    current = pod.condition or {}
    wire = "True" if wanted.status else "False"
    if (current.get("status"), current.get("reason"), current.get("message")) == (
            wire, wanted.reason, wanted.message):
        return
    moved = current.get("status") != wire or not current.get("lastTransitionTime")
    when = cond.timestamp(ctx.clock()) if moved else str(current["lastTransitionTime"])
    ctx.kube.set_pod_condition(namespace, pod.name, condition_type, wanted, when)


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


async def gate_new_pod(pod: JSON, ctx: Context) -> None:
    """A pod appeared or changed: give it each of its gates' current answer."""
    namespace = pod["metadata"]["namespace"]
    seen = ctx.registry.first_seen(pod["metadata"].get("uid", ""), ctx.clock())
    for schema_name in gate.schema_names_gating(pod["spec"].get("readinessGates") or ()):
        key = (namespace, schema_name)
        condition_type = gate.gate_condition_type(schema_name)
        known = ctx.registry.gates.get(key)
        if known is None:
            exists = await asyncio.to_thread(ctx.kube.database_schema, namespace, schema_name)
            if exists is not None:
                continue  # its daemon is about to check it; until then the pod is not Ready
            known = Published(gate.Check(gate.schema_missing(schema_name)), None)
        selector = known.spec.gate.pod_selector if known.spec else LabelSelector()
        view = kube.pod_view(pod, condition_type, seen)
        if known.spec is None and gate.stays_released(view.condition):
            continue
        chosen = known.spec is None or gate.selects(selector, view.labels) or \
            gate.needs_this_schema(view, schema_name)
        wanted = gate.pod_condition(known.check, view, selected=chosen,
                                    selector=gate.selector_string(selector),
                                    latest_generation=ctx.registry.latest_generation(key),
                                    templates=known.templates)
        await asyncio.to_thread(set_if_changed, ctx, namespace, view, condition_type, wanted)
        if wanted.reason == gate.AWAITING_FRESH_CHECK or (
                view.condition is None and not wanted.status):
            # A pod waits: one check that starts now serves it (and every other waiting).
            ctx.registry.wake(key)


async def release(body: JSON, ctx: Context) -> int:
    """The DatabaseSchema is being deleted: open its gates for good. Returns pods released."""
    namespace, name = body["metadata"]["namespace"], body["metadata"]["name"]
    ctx.registry.forget((namespace, name))
    state = gate.released(name)
    condition_type = gate.gate_condition_type(name)
    pods = [p for p in await asyncio.to_thread(ctx.kube.pods, namespace, condition_type)
            if p.has_gate]
    for pod in pods:
        wanted = gate.PodCondition(True, state.reason, state.message)
        await asyncio.to_thread(set_if_changed, ctx, namespace, pod, condition_type, wanted)
    return len(pods)
