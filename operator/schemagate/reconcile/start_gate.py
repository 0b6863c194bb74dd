"""The start-up gate on the pods: remove the scheduling gate of each held pod whose
readiness gate opens now (`core.gate.start`), before its condition is written, so the
condition observes the pod's generation after that change."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from schemagate.core.gate import readiness as gate
from schemagate.core.gate import start as start_gate
from schemagate.reconcile.context import Context

#: Parallel pod patches while letting a rollout's pods start.
PATCH_WORKERS = 16


async def let_start(ctx: Context, namespace: str, schema: str, state: gate.GateState,
                    pods: Sequence[gate.PodView], wanted: Sequence[gate.PodCondition],
                    *, read_only: bool = False) -> list[gate.PodView] | None:
    """`pods` as they stand after the held ones that may start were let start.
    `read_only`: change no pod; None when some pod would start."""
    due = [i for i, (pod, want) in enumerate(zip(pods, wanted, strict=True))
           if start_gate.may_start(state, pod, want)]
    if not due:
        return list(pods)
    if read_only:
        return None
    name = start_gate.scheduling_gate(schema)

    def release(pod: gate.PodView) -> gate.PodView:
        generation = ctx.kube.release_start_gate(namespace, pod.name, pod.uid, name)
        return dataclasses.replace(pod, held=False, generation=generation or pod.generation)

    with ThreadPoolExecutor(max_workers=min(PATCH_WORKERS, len(due))) as pool:
        released = await asyncio.to_thread(
            lambda: list(pool.map(release, [pods[i] for i in due])))
    after = list(pods)
    for i, pod in zip(due, released, strict=True):
        after[i] = pod
    return after
