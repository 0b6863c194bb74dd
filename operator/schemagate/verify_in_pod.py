"""`verifyFrom: Pod`: one check as one short-lived pod cloned from the backend.

The pure rules (the manifest, the verdict in the termination message, what a pod's
state means, which pods go) are in `core.verify_pod`; this step performs them: it
starts the pod, follows it until its verify container has ended or its deadline has
passed, reads the verdict, and deletes what is no longer needed. The schema's loop
runs one pass at a time, so one schema never has two verify pods under way.

Only the pods this process created are trusted: each is known by the uid its create
answered, and a pod that merely looks like one (same label, same annotations, a
"verified" termination message) is never read, followed or deleted. After a restart
the earlier pods are not known, so a check starts a pod of its own; the garbage
collector takes the earlier ones with their DatabaseSchema (their owner).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from schemagate import kube
from schemagate.core import verify_pod as vp
from schemagate.core.check.verdict import Requirement
from schemagate.core.status.outcome import Outcome, from_verdict
from schemagate.core.tenancy.scrub import PATTERNS, Scrubber
from schemagate.core.wire.models import DatabaseSchemaSpec
from schemagate.core.wire.reasons import Reason

#: How often a verify pod under way is looked at (one `list` by name): a check takes a
#: few seconds, a verdict comes at most this much later, and a namespace's verify pods
#: cost the API server at most PER_NAMESPACE / POLL requests a second.
POLL = 2.0
#: Verify pods of one namespace under way at once; a check beyond waits its turn.
PER_NAMESPACE = 4
#: How long a check waits for its turn before it says so (VerifyPodFailed) and tries
#: again at its next interval: about one verify pod's deadline.
TURN_WAIT = vp.DEADLINE.total_seconds()


@dataclass
class VerifyPods:
    """What this process knows of its verify pods: the uid of each it created, and the
    turns each namespace's checks take."""

    per_namespace: int = PER_NAMESPACE
    turn_wait: float = TURN_WAIT
    #: How the step waits between two looks at a pod.
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    #: (namespace, schema) -> pod name -> uid, as the API server answered our create.
    created: dict[tuple[str, str], dict[str, str]] = field(default_factory=dict)
    _turns: dict[str, asyncio.Semaphore] = field(default_factory=dict)

    def turns(self, namespace: str) -> asyncio.Semaphore:
        return self._turns.setdefault(namespace, asyncio.Semaphore(self.per_namespace))

    def forget(self, namespace: str, schema: str) -> dict[str, str]:
        """The schema is deleted: its pods as they were known (to delete them). A copy: the
        check being cancelled still drops its pod from the dictionary it holds."""
        return dict(self.created.pop((namespace, schema), {}))


def _failed(message: str, pod: str | None = None) -> Outcome:
    return Outcome(Reason.VERIFY_POD_FAILED, message, verify_pod=pod)


async def check(body: Mapping[str, Any], spec: DatabaseSchemaSpec, requirement: Requirement,
                kube_api: kube.Kube, image: str | None, clock: Callable[[], datetime],
                pods: VerifyPods, scrubber: Scrubber = PATTERNS) -> Outcome:
    """Run `schemagate verify` in a verify pod and return what it found; what the pod
    says passes the schema's `scrubber`."""
    meta = body["metadata"]
    namespace, name = meta["namespace"], meta["name"]
    if image is None:
        return _failed("database.verifyFrom: Pod needs an image for its verify pods: run the "
                       "operator with --verify-image IMAGE, its own image (the chart passes it)")
    assert spec.database.verify_pod is not None  # the model requires it for Pod
    source = spec.database.verify_pod.from_deployment.name
    deployment = await asyncio.to_thread(kube_api.deployment, namespace, source)
    if deployment is None:
        return Outcome(Reason.INVALID_SPEC, f"database.verifyPod.fromDeployment: Deployment "
                                            f"{source} not found in namespace {namespace}")
    try:
        manifest = vp.verify_pod(schema=name, uid=meta["uid"], spec=spec,
                                 deployment=deployment, image=image,
                                 clean=lambda v: scrubber.scrub(v) == v)
    except vp.InvalidVerifyPod as exc:
        return Outcome(Reason.INVALID_SPEC, f"database.verifyPod.fromDeployment: {exc}")
    turns = pods.turns(namespace)
    try:
        await asyncio.wait_for(turns.acquire(), pods.turn_wait)
    except TimeoutError:
        return _failed(f"namespace {namespace} already has {pods.per_namespace} verify pods "
                       f"under way, the most one namespace may have at once: this check "
                       f"waited {pods.turn_wait:g} s for one of them to end, and is tried "
                       "again at its next interval")
    try:
        return await _run(namespace, name, manifest, requirement, kube_api, clock, pods,
                          scrubber)
    finally:
        turns.release()


async def _run(namespace: str, name: str, manifest: vp.JSON,
               requirement: Requirement, kube_api: kube.Kube,
               clock: Callable[[], datetime], pods: VerifyPods,
               scrubber: Scrubber) -> Outcome:
    listed = await asyncio.to_thread(kube_api.verify_pods, namespace, name)
    ours = vp.created_here(listed, pods.created.get((namespace, name), {}))
    known = pods.created[(namespace, name)] = {
        p["metadata"]["name"]: p["metadata"]["uid"] for p in ours}  # the gone ones forgotten
    current = vp.adoptable(ours, manifest)  # an earlier pass's pod running this check
    for stale in vp.to_delete(ours, current=current, keep=vp.KEEP_FINISHED - 1):
        await asyncio.to_thread(kube_api.delete_pod, namespace, stale, known.pop(stale))
    if current is None:
        created = await asyncio.to_thread(kube_api.create_pod, namespace, manifest)
        current = str(created["metadata"]["name"])
        known[current] = str(created["metadata"]["uid"])
    uid = known[current]
    try:
        return await _follow(namespace, current, uid, requirement, kube_api, clock, pods.sleep,
                             scrubber)
    except asyncio.CancelledError:  # the schema is being deleted, or the operator stops
        await asyncio.shield(asyncio.to_thread(kube_api.delete_pod, namespace, current, uid))
        known.pop(current, None)
        raise


async def _follow(namespace: str, pod_name: str, uid: str, requirement: Requirement,
                  kube_api: kube.Kube, clock: Callable[[], datetime],
                  sleep: Callable[[float], Awaitable[None]],
                  scrubber: Scrubber) -> Outcome:
    while True:
        await sleep(POLL)  # a pod just created has not finished either
        pod = await asyncio.to_thread(kube_api.verify_pod, namespace, pod_name)
        if pod is None or pod["metadata"].get("deletionTimestamp"):
            return _failed(f"verify pod {pod_name} was deleted before its check ended", pod_name)
        if not vp.is_created(pod, uid):
            return _failed(f"verify pod {pod_name} was replaced by a pod the operator did not "
                           "create; nothing it says is read", pod_name)
        where = vp.progress(pod, clock())
        if where.running:
            continue
        if where.failed is not None:
            # A pod that cannot start would go on pulling or waiting: it goes now, its
            # reason is in the condition.
            await asyncio.to_thread(kube_api.delete_pod, namespace, pod_name, uid)
            return _failed(scrubber.message(where.failed), pod_name)
        verdict, why = vp.outcome_of(pod_name, where, requirement, scrubber.scrub_tail)
        if verdict is None:
            return _failed(why, pod_name)
        outcome = from_verdict(verdict)
        return Outcome(outcome.reason, scrubber.message(outcome.message), verdict,
                       verify_pod=pod_name)
