"""`verifyFrom: Pod`: one check as one short-lived pod cloned from the backend.

The pure rules (the manifest, the verdict in the termination message, what a pod's
state means, which pods go) are in `core.verify_pod`; this step performs them: it
starts the pod, follows it until its verify container has ended or its deadline has
passed, reads the verdict, and deletes what is no longer needed. The schema's loop
runs one pass at a time, so one schema never has two verify pods under way.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from schemagate import kube
from schemagate.core import verify_pod as vp
from schemagate.core.models import DatabaseSchemaSpec
from schemagate.core.reasons import Reason
from schemagate.core.scrub import PATTERNS, Scrubber
from schemagate.core.status import Outcome, from_verdict
from schemagate.core.verdict import Requirement

#: How often a verify pod under way is looked at (one `list` by name).
POLL = 0.25


def _failed(message: str, pod: str | None = None) -> Outcome:
    return Outcome(Reason.VERIFY_POD_FAILED, message, verify_pod=pod)


async def check(body: Mapping[str, Any], spec: DatabaseSchemaSpec, requirement: Requirement,
                kube_api: kube.Kube, image: str | None, clock: Callable[[], datetime],
                scrubber: Scrubber = PATTERNS) -> Outcome:
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

    existing = await asyncio.to_thread(kube_api.verify_pods, namespace, name)
    current = vp.adoptable(existing, manifest)  # an earlier life's pod running this check
    for stale in vp.to_delete(existing, current=current, keep=vp.KEEP_FINISHED - 1):
        await asyncio.to_thread(kube_api.delete_pod, namespace, stale)
    if current is None:
        created = await asyncio.to_thread(kube_api.create_pod, namespace, manifest)
        current = str(created["metadata"]["name"])
    try:
        return await _follow(namespace, current, requirement, kube_api, clock, scrubber)
    except asyncio.CancelledError:  # the schema is being deleted, or the operator stops
        await asyncio.shield(asyncio.to_thread(kube_api.delete_pod, namespace, current))
        raise


async def _follow(namespace: str, pod_name: str, requirement: Requirement,
                  kube_api: kube.Kube, clock: Callable[[], datetime], scrubber: Scrubber
                  ) -> Outcome:
    while True:
        pod = await asyncio.to_thread(kube_api.verify_pod, namespace, pod_name)
        if pod is None or pod["metadata"].get("deletionTimestamp"):
            return _failed(f"verify pod {pod_name} was deleted before its check ended", pod_name)
        where = vp.progress(pod, clock())
        if where.running:
            await asyncio.sleep(POLL)
            continue
        if where.failed is not None:
            # A pod that cannot start would go on pulling or waiting: it goes now, its
            # reason is in the condition.
            await asyncio.to_thread(kube_api.delete_pod, namespace, pod_name)
            return _failed(scrubber.message(where.failed), pod_name)
        verdict, why = vp.outcome_of(pod_name, where, requirement, scrubber.scrub_tail)
        if verdict is None:
            return _failed(why, pod_name)
        outcome = from_verdict(verdict)
        return Outcome(outcome.reason, scrubber.message(outcome.message), verdict,
                       verify_pod=pod_name)
