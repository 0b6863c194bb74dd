"""The gate on the pods: set each pod's condition from the last check (patch on change),
answer a new pod at once, release the gates of a deleted DatabaseSchema."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from schemagate import kube
from schemagate.core.gate import readiness as gate
from schemagate.core.gate.pods import NAMES_NONE, Written, believed, patch_needed, transition_time
from schemagate.core.status import conditions as cond
from schemagate.core.wire.models import DatabaseSchemaSpec, GateStatus, LabelSelector
from schemagate.reconcile.context import JSON, Context, PodIndex
from schemagate.reconcile.registry import Published
from schemagate.reconcile.schedule import serve_at
from schemagate.reconcile.start_gate import let_start

#: Parallel pod-status patches while opening or closing a gate.
PATCH_WORKERS = 16


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


async def apply_gate(ctx: Context, namespace: str, name: str, check: gate.Check,
                     spec: DatabaseSchemaSpec | None, *, read_only: bool = False
                     ) -> GatePass | None:
    """Set this schema's condition on every pod that carries its gate. Raises ValueError
    for a selector the API server could not use. `read_only`: change no pod; None when
    some pod would change."""
    condition_type = gate.gate_condition_type(name)
    selector = spec.gate.pod_selector if spec else LabelSelector()
    selector_text = gate.selector_string(selector)
    if ctx.pods is None:
        everything = await asyncio.to_thread(ctx.kube.pods, namespace, condition_type)
    else:
        everything = indexed(ctx.pods, namespace, name, selector)
    now = ctx.clock()
    # As the pod stands: the watch's copy may not show our last patch yet.
    pods = [dataclasses.replace(with_seen(ctx, p), condition=believed_condition(
        ctx, p, condition_type, now)) for p in everything if p.has_gate]
    ungated = tuple(sorted(p.name for p in everything if not p.has_gate
                           and gate.should_hold(selector, p, name)))
    selected = [gate.selects(selector, pod.labels) or gate.needs_this_schema(pod, name)
                for pod in pods]
    latest = ctx.registry.latest_generation((namespace, name))
    templates = gate.open_templates(pods)
    wanted = [gate.pod_condition(check, pod, selected=chosen, selector=selector_text,
                                 latest_generation=latest, templates=templates)
              for pod, chosen in zip(pods, selected, strict=True)]
    # START-UP GATE (spec.gate.holdStart): held pods that open now start first.
    if (started := await let_start(ctx, namespace, name, check.state, pods, wanted,
                                   read_only=read_only)) is None:
        return None
    pods = started
    patches = [(pod, want, pod.condition) for pod, want in zip(pods, wanted, strict=True)
               if patch_needed(pod.condition, want, pod.generation)]
    if patches and read_only:
        return None
    if patches:
        await asyncio.to_thread(patch_all, ctx, namespace, name, patches)
    ready = sum(w.status and chosen for w, chosen in zip(wanted, selected, strict=True))
    waiting = [gate.served_after(p, templates) or check.started or ctx.clock()
               for p, w in zip(pods, wanted, strict=True)
               if w.reason == gate.AWAITING_FRESH_CHECK]
    opened = gate.open_templates(dataclasses.replace(p, condition={"status": "True"})
                                 for p, w in zip(pods, wanted, strict=True) if w.status)
    return GatePass(GateStatus(condition_type=condition_type, pods=sum(selected), ready=ready,
                               ungated=len(ungated) or None),
                    serve_at(waiting) if ctx.economy else min(waiting, default=None),
                    ungated, opened)


def indexed(index: PodIndex, namespace: str, name: str,
            selector: LabelSelector) -> list[gate.PodView]:
    """The pods of `name`'s gate from the watch's index (on the event loop: the index
    changes under it): those naming the schema, and, for a non-empty selector, the pods
    naming none that it matches (reported when they carry no gate)."""
    views = [p.view(name) for p in index.get((namespace, name), ()) if not p.deleting]
    if selector.match_labels or selector.match_expressions:
        views += [p.view(name) for p in index.get((namespace, NAMES_NONE), ())
                  if not p.deleting and gate.selects(selector, p.labels)]
    return views


def with_seen(ctx: Context, pod: gate.PodView) -> gate.PodView:
    seen = ctx.registry.seen.get(pod.uid)
    return pod if seen is None else dataclasses.replace(pod, seen=seen)


def believed_condition(ctx: Context, pod: gate.PodView, condition_type: str,
                       now: datetime) -> Mapping[str, Any] | None:
    """The pod's condition: the watch's copy, or what we patched lately when the copy
    does not show it yet (`--no-economy`: the copy, always)."""
    if not ctx.economy:
        return pod.condition
    return believed(pod.condition, ctx.registry.last_written(pod.uid, condition_type), now)


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


async def gate_new_pod(pod: JSON, ctx: Context) -> None:
    """A pod appeared or changed: give it each of its gates' current answer."""
    namespace = pod["metadata"]["namespace"]
    seen = ctx.registry.first_seen(pod["metadata"].get("uid", ""), ctx.clock())
    for schema_name in gate.schema_names_gating(pod["spec"].get("readinessGates") or ()):
        key = (namespace, schema_name)
        condition_type = gate.gate_condition_type(schema_name)
        known = ctx.registry.gates.get(key)
        if known is None:
            if ctx.economy and key in ctx.registry.versions:
                continue  # the watch has shown it: its daemon is about to check it
            exists = await asyncio.to_thread(ctx.kube.database_schema, namespace, schema_name)
            if exists is not None:
                continue  # its daemon is about to check it; until then the pod is not Ready
            known = Published(gate.Check(gate.schema_missing(schema_name)), None)
        selector = known.spec.gate.pod_selector if known.spec else LabelSelector()
        view = kube.pod_view(pod, condition_type, seen)
        # This event may predate our own last patch of the pod: go by what we wrote.
        view = dataclasses.replace(view, condition=believed_condition(
            ctx, view, condition_type, ctx.clock()))
        if known.spec is None and gate.stays_released(view.condition):
            continue
        chosen = known.spec is None or gate.selects(selector, view.labels) or \
            gate.needs_this_schema(view, schema_name)
        wanted = gate.pod_condition(known.check, view, selected=chosen,
                                    selector=gate.selector_string(selector),
                                    latest_generation=ctx.registry.latest_generation(key),
                                    templates=known.templates)
        if (wanted.status and not view.is_true) or wanted.reason == gate.AWAITING_FRESH_CHECK:
            # The loop answers: only it opens a gate, right after its check (opened here,
            # from a check about to be replaced by one that saw drift, the pod would
            # outlive the drift), and one check that starts now serves every pod waiting.
            # A check already under way that started after the pod existed serves it too:
            # no second one (with verifyFrom: Pod, a second pod).
            if not served_by_check_under_way(ctx, key, view, known.templates):
                ctx.registry.wake(key)
            continue
        if patch_needed(view.condition, wanted, view.generation):
            await asyncio.to_thread(patch_one, ctx, namespace, schema_name, view, wanted,
                                    view.condition)
        if view.condition is None and not wanted.status:
            ctx.registry.wake(key)  # a new pod waits: its schema's loop looks more often


def served_by_check_under_way(ctx: Context, key: tuple[str, str], pod: gate.PodView,
                              templates: frozenset[str]) -> bool:
    started = ctx.registry.checking.get(key)
    after = gate.served_after(pod, templates)
    return started is not None and after is not None and started >= after


async def release(body: JSON, ctx: Context) -> int:
    """The DatabaseSchema is being deleted: open its gates for good. Returns pods released."""
    namespace, name = body["metadata"]["namespace"], body["metadata"]["name"]
    ctx.registry.forget((namespace, name))
    # verifyFrom: Pod - no verify pod of ours outlives its schema (the garbage collector
    # follows their owner reference, later); a pod we did not create is not ours to delete.
    for verifier, uid in ctx.verify_pods.forget(namespace, name).items():
        await asyncio.to_thread(ctx.kube.delete_pod, namespace, verifier, uid)
    state = gate.released(name)
    condition_type = gate.gate_condition_type(name)
    if ctx.pods is None:
        everything = await asyncio.to_thread(ctx.kube.pods, namespace, condition_type)
    else:
        everything = indexed(ctx.pods, namespace, name, LabelSelector())
    pods = [p for p in everything if p.has_gate]
    wanted = gate.PodCondition(True, state.reason, state.message)
    # START-UP GATE (spec.gate.holdStart): held pods start, their gate released.
    pods = await let_start(ctx, namespace, name, state, pods, [wanted] * len(pods)) or pods
    now = ctx.clock()
    patches = [(pod, wanted, current) for pod in pods
               if patch_needed(current := believed_condition(ctx, pod, condition_type, now),
                               wanted, pod.generation)]
    if patches:
        await asyncio.to_thread(patch_all, ctx, namespace, name, patches)
    return len(pods)
