"""The gate on the pods. The pass's step `gate_pods` sets each pod's condition from the
check just made (patch on change, or when the pod's generation moved past the one the
condition observed): only it opens a gate, and it lets a pod held by the start-up gate
start first (`reconcile.start_gate`). A pod event records the pod, writes a closed
condition on a pod that has none, and wakes the schema's loop; an event of the verify
pod a check waits for wakes it too. The deletion of a DatabaseSchema releases its gates
for good, held pods included."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from schemagate.core.gate import readiness as gate
from schemagate.core.gate.pods import (
    NAMES_NONE,
    Written,
    believed,
    index_entries,
    patch_needed,
    transition_time,
)
from schemagate.core.status import conditions as cond
from schemagate.core.status.outcome import Outcome, scrubbed
from schemagate.core.verify_pod.manifest import VERIFY_LABEL
from schemagate.core.wire.models import DriftPolicy, GateStatus, LabelSelector
from schemagate.core.wire.reasons import Reason
from schemagate.reconcile import report
from schemagate.reconcile.context import JSON, Context, PodIndex
from schemagate.reconcile.registry import Key, Published
from schemagate.reconcile.schedule import MIN_DELAY, serve_at
from schemagate.reconcile.start_gate import let_start
from schemagate.reconcile.steps import Logger, Pass, held_after_refusal, knowledge

#: Parallel pod-status patches while opening or closing a gate.
PATCH_WORKERS = 16


@dataclass(frozen=True)
class GatePass:
    status: GateStatus
    serve_at: datetime | None = None  # when a check may serve the pods still waiting
    ungated: tuple[str, ...] = ()
    templates: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Answers:
    """What a pod's condition for one gate is worked out from, assembled once."""

    published: Published
    schema: str
    latest_generation: int
    #: The templates of the pods open now: a pod of one of them is no new release.
    templates: frozenset[str]

    @property
    def selector(self) -> LabelSelector:
        return self.published.spec.gate.pod_selector if self.published.spec else LabelSelector()

    def selected(self, pod: gate.PodView) -> bool:
        return self.published.spec is None or gate.selects(self.selector, pod.labels) or \
            gate.needs_this_schema(pod, self.schema)

    def condition(self, pod: gate.PodView) -> gate.PodCondition:
        return gate.pod_condition(self.published.check, pod, selected=self.selected(pod),
                                  selector=gate.selector_string(self.selector),
                                  latest_generation=self.latest_generation,
                                  templates=self.templates)


async def gate_pods(p: Pass) -> float | None:
    """Gate the pods by this pass's judgement; the one place `published` is written. A
    pass on the watch's copy changes no pod: one that would (drift, a pod whose event is
    still on its way) ends, and the next pass, at once, reads the API server's copy."""
    assert p.found is not None
    scrubber = p.ctx.registry.scrubbers.of(p.key)
    outcome = scrubbed(p.found.outcome, scrubber.message)  # before pods, status, Events, logs
    p.outcome, p.hold = held_after_refusal(p.state, p.ctx, outcome)
    on_drift = p.spec.gate.on_drift if p.spec else DriftPolicy.HOLD
    state = gate.gate_state(verified=p.outcome.verified, reason=p.outcome.reason.value,
                            message=p.outcome.message, on_drift=on_drift,
                            migrating=p.found.migrating)
    check = gate.Check(state=state, started=p.started, generation=p.generation,
                       knowledge=knowledge(p.outcome, p.found, p.previous, p.spec))
    try:
        pods = await apply_gate(p.ctx, p.key, Published(check, p.spec), read_only=p.idle)
    except ValueError as exc:  # a selector the API server cannot use
        p.outcome = Outcome(Reason.INVALID_SPEC, f"gate.podSelector: {exc}")
        pods = GatePass(GateStatus(condition_type=gate.gate_condition_type(p.name)))
    if pods is None:
        p.state.settled = False
        return MIN_DELAY
    p.state.published = Published(check, p.spec, pods.templates)
    p.pods = pods
    return None


async def apply_gate(ctx: Context, key: Key, published: Published, *, read_only: bool = False
                     ) -> GatePass | None:
    """Set this schema's condition on every pod that carries its gate. Raises ValueError
    for a selector the API server could not use. `read_only`: change no pod; None when
    some pod would change."""
    namespace, name = key
    condition_type = gate.gate_condition_type(name)
    now = ctx.clock()
    selector = published.spec.gate.pod_selector if published.spec else LabelSelector()
    gate.selector_string(selector)  # unusable: the schema's InvalidSpec, with or without pods
    everything = indexed(ctx, namespace, name, selector)
    pods = [as_it_stands(ctx, p, condition_type, now) for p in everything if p.has_gate]
    ungated = tuple(sorted(p.name for p in everything if not p.has_gate
                           and gate.should_hold(selector, p, name)))
    answers = Answers(published, name, ctx.registry.latest_generation(key),
                      gate.open_templates(pods))
    wanted = [answers.condition(pod) for pod in pods]
    # START-UP GATE (spec.gate.holdStart): held pods that open now start first.
    if (started := await let_start(ctx, namespace, name, published.check.state, pods, wanted,
                                   read_only=read_only)) is None:
        return None
    pods = started
    patches = [(pod, want, pod.condition) for pod, want in zip(pods, wanted, strict=True)
               if patch_needed(pod.condition, want, pod.generation)]
    if patches and read_only:
        return None
    if patches:
        await asyncio.to_thread(patch_all, ctx, namespace, name, patches)
    selected = [answers.selected(pod) for pod in pods]
    ready = sum(w.status and chosen for w, chosen in zip(wanted, selected, strict=True))
    waiting = [gate.served_after(p, answers.templates) or published.check.started or now
               for p, w in zip(pods, wanted, strict=True)
               if w.reason == gate.AWAITING_FRESH_CHECK]
    opened = gate.open_templates(dataclasses.replace(p, condition={"status": "True"})
                                 for p, w in zip(pods, wanted, strict=True) if w.status)
    return GatePass(GateStatus(condition_type=condition_type, pods=sum(selected), ready=ready,
                               ungated=len(ungated) or None),
                    serve_at(waiting), ungated, opened)


def indexed(ctx: Context, namespace: str, name: str,
            selector: LabelSelector) -> list[gate.PodView]:
    """The pods of `name`'s gate from the watch's index (on the event loop: the index
    changes under it): those naming the schema, and, for a non-empty selector, the pods
    naming none that it matches (reported when they carry no gate)."""
    index: PodIndex = ctx.pods
    entries = [p for p in index.get((namespace, name), ()) if not p.deleting]
    if selector.match_labels or selector.match_expressions:
        entries += [p for p in index.get((namespace, NAMES_NONE), ())
                    if not p.deleting and gate.selects(selector, p.labels)]
    return [p.view(name, ctx.registry.seen.get(p.uid)) for p in entries]


def as_it_stands(ctx: Context, pod: gate.PodView, condition_type: str,
                 now: datetime) -> gate.PodView:
    """The pod with its condition as it stands: the watch's copy, or what we patched
    lately when the copy does not show it yet."""
    written = ctx.registry.last_written(pod.uid, condition_type)
    return dataclasses.replace(pod, condition=believed(pod.condition, written, now))


def patch_all(ctx: Context, namespace: str, schema: str,
              patches: list[tuple[gate.PodView, gate.PodCondition, Mapping[str, Any] | None]]
              ) -> None:
    """Patch each pod's condition for `schema`'s gate (blocking); many at once in
    parallel."""
    if len(patches) == 1:
        patch_one(ctx, namespace, schema, *patches[0])
        return
    # A rollout of a hundred pods should open in one round of patches, not a hundred.
    with ThreadPoolExecutor(max_workers=min(PATCH_WORKERS, len(patches))) as pool:
        list(pool.map(lambda p: patch_one(ctx, namespace, schema, *p), patches))


def patch_one(ctx: Context, namespace: str, schema: str, pod: gate.PodView,
              wanted: gate.PodCondition, current: Mapping[str, Any] | None) -> None:
    now = ctx.clock()
    condition_type = gate.gate_condition_type(schema)
    when = transition_time(current, wanted, cond.timestamp(now))
    scrubber = ctx.registry.scrubbers.of((namespace, schema))
    ctx.kube.set_pod_condition(namespace, pod.name, condition_type, wanted, when, scrubber,
                               generation=pod.generation)
    if pod.uid:
        ctx.registry.wrote(pod.uid, condition_type, Written(
            wanted.status, wanted.reason, scrubber.message(wanted.message), when, now,
            pod.generation))


async def pod_seen(pod: JSON, ctx: Context) -> None:
    """A pod with a readiness gate appeared or changed: remember when it was first seen,
    write a closed condition on each of its gates that has none, and wake the schema's
    loop when the pod waits for a check (new, or told so) that no check under way serves.
    Only the loop opens a gate, right after its check: one check that starts now serves
    every pod waiting, and a pod closed for a reason is looked at again by the loop's own
    schedule (often, while pods wait)."""
    namespace = pod["metadata"]["namespace"]
    seen = ctx.registry.first_seen(pod["metadata"].get("uid", ""), ctx.clock())
    for (_, schema), entry in index_entries(pod).items():
        if schema not in entry.gates:
            continue  # named by its label only: nothing to write, the loop reports it
        key = (namespace, schema)
        view = as_it_stands(ctx, entry.view(schema, seen), gate.gate_condition_type(schema),
                            ctx.clock())
        new = view.condition is None
        if new:
            closed = await closed_condition(ctx, key, view)
            await asyncio.to_thread(patch_one, ctx, namespace, schema, view, closed, None)
        waits = new or (view.condition or {}).get("reason") == gate.AWAITING_FRESH_CHECK
        if waits and not view.is_true and not served_by_check_under_way(ctx, key, view):
            ctx.registry.wake(key)


def verify_pod_seen(pod: JSON, ctx: Context) -> None:
    """A verify pod appeared or changed: when it is the pod a check waits for, the
    schema's loop looks at it now rather than at its next poll. Any other (one whose
    verdict was read and that is winding down, one of an earlier life of the operator)
    wakes nothing: a wake-up is a check, and a check is a pod."""
    meta = pod["metadata"]
    key = (meta["namespace"], (meta.get("labels") or {}).get(VERIFY_LABEL, ""))
    if ctx.verify_pods.follows(key, meta["name"]):
        ctx.registry.wake(key)


async def closed_condition(ctx: Context, key: Key, pod: gate.PodView) -> gate.PodCondition:
    """What a pod with no condition yet is told: why the last check keeps it closed, or
    that it waits for the next; a schema that does not exist says so."""
    state = ctx.registry.schemas.get(key)
    published = state.published if state is not None else None
    if published is None and not ctx.registry.shown(key) and \
            await asyncio.to_thread(ctx.kube.database_schema, *key) is None:
        published = Published(gate.Check(gate.schema_missing(key[1])), None)
    if published is not None:
        answer = Answers(published, key[1], ctx.registry.latest_generation(key),
                         published.templates).condition(pod)
        if not answer.status:
            return answer
    return gate.PodCondition(False, gate.AWAITING_FRESH_CHECK, (
        f"waiting for a check of DatabaseSchema {key[1]} newer than this pod: the operator "
        "opens the gate right after that check"))


def served_by_check_under_way(ctx: Context, key: Key, pod: gate.PodView) -> bool:
    state = ctx.registry.schemas.get(key)
    under_way = ctx.verify_pods.under_way.get(key)  # verifyFrom: Pod, between passes
    started = under_way.started if under_way else state.checking if state else None
    templates = state.published.templates if state and state.published else frozenset()
    after = gate.served_after(pod, templates)
    return started is not None and after is not None and started >= after


async def release(body: JSON, ctx: Context, logger: Logger) -> int:
    """The DatabaseSchema is being deleted: open its gates for good. Returns pods released."""
    namespace, name = body["metadata"]["namespace"], body["metadata"]["name"]
    ctx.registry.forget((namespace, name))
    # verifyFrom: Pod - no verify pod of ours outlives its schema (the garbage collector
    # follows their owner reference, later); a pod we did not create is not ours to delete.
    for verifier, uid in ctx.verify_pods.forget(namespace, name).items():
        await asyncio.to_thread(ctx.kube.delete_pod, namespace, verifier, uid)
    state = gate.released(name)
    condition_type = gate.gate_condition_type(name)
    now = ctx.clock()
    pods = [as_it_stands(ctx, p, condition_type, now)
            for p in indexed(ctx, namespace, name, LabelSelector()) if p.has_gate]
    wanted = gate.PodCondition(True, state.reason, state.message)
    # START-UP GATE (spec.gate.holdStart): held pods start, their gate released.
    pods = await let_start(ctx, namespace, name, state, pods, [wanted] * len(pods)) or pods
    patches = [(pod, wanted, pod.condition) for pod in pods
               if patch_needed(pod.condition, wanted, pod.generation)]
    if patches:
        await asyncio.to_thread(patch_all, ctx, namespace, name, patches)
    report.released(ctx, body, len(pods), logger)
    return len(pods)
