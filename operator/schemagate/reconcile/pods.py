"""The gate on the pods: set each pod's condition from the last check (patch on change),
answer a new pod at once, release the gates of a deleted DatabaseSchema."""

from __future__ import annotations

import asyncio
import dataclasses
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime

from schemagate import kube
from schemagate.core import conditions as cond
from schemagate.core import gate
from schemagate.core.models import DatabaseSchemaSpec, GateStatus, LabelSelector
from schemagate.reconcile.context import JSON, Context
from schemagate.reconcile.registry import Published

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
        if (wanted.status and not view.is_true) or wanted.reason == gate.AWAITING_FRESH_CHECK:
            # The loop answers: only it opens a gate, right after its check (opened here,
            # from a check about to be replaced by one that saw drift, the pod would
            # outlive the drift), and one check that starts now serves every pod waiting.
            ctx.registry.wake(key)
            continue
        await asyncio.to_thread(set_if_changed, ctx, namespace, view, condition_type, wanted)
        if view.condition is None and not wanted.status:
            ctx.registry.wake(key)  # a new pod waits: its schema's loop looks more often


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
