"""`verifyFrom: Pod`: one check as one short-lived pod cloned from the backend, in the
migration's shape: a pass starts the pod and returns; the next passes look at it (woken
by the pod's own event, or every `POLL` seconds) until its verify container has ended or
its deadline has passed, then read the verdict. The pure rules (the manifest, the
verdict in the termination message, what a pod's state means, which pods go) are in
`core.verify_pod`. A schema has at most one verify pod under way.

Only the pods this process created are trusted: each is known by the uid its create
answered, and a pod that merely looks like one (same label, same annotations, a
"verified" termination message) is never read, followed or deleted. After a restart
the earlier pods are not known, so a check starts a pod of its own; the garbage
collector takes the earlier ones with their DatabaseSchema (their owner).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from schemagate.core.check.verdict import Requirement
from schemagate.core.status.outcome import Outcome, from_verdict
from schemagate.core.tenancy.scrub import PATTERNS, Scrubber
from schemagate.core.verify_pod import manifest as vp
from schemagate.core.verify_pod import progress
from schemagate.core.wire.models import DatabaseSchemaSpec
from schemagate.core.wire.reasons import Reason
from schemagate.reconcile.edge import KubeEdge

Key = tuple[str, str]

#: How often a verify pod under way is looked at (one `list` by name) when no event of
#: its own came sooner: a verdict comes at most this much later, and a namespace's
#: verify pods cost the API server at most PER_NAMESPACE / POLL requests a second.
POLL = 2.0
#: Verify pods of one namespace under way at once; a check beyond waits its turn.
PER_NAMESPACE = 4
#: How long a check waits for its turn before it says so (VerifyPodFailed) and tries
#: again at its next interval: about one verify pod's deadline.
TURN_WAIT = vp.DEADLINE.total_seconds()


@dataclass(frozen=True)
class UnderWay:
    """A verify pod this process started, and the check it runs."""

    pod: str
    uid: str
    #: When the check began (the start of the pass that created the pod): a pod of the
    #: backend that existed by then is served by its verdict.
    started: datetime
    generation: int


@dataclass(frozen=True)
class Checked:
    """A check's outcome, and when the check began; outcome None: its pod still runs."""

    outcome: Outcome | None
    started: datetime


@dataclass
class VerifyPods:
    """What this process knows of its verify pods: the uid of each it created, the one
    under way for each schema, and how long a schema has waited for its turn."""

    per_namespace: int = PER_NAMESPACE
    turn_wait: float = TURN_WAIT
    #: (namespace, schema) -> pod name -> uid, as the API server answered our create.
    created: dict[Key, dict[str, str]] = field(default_factory=dict)
    under_way: dict[Key, UnderWay] = field(default_factory=dict)
    #: When each schema first found its namespace's turns all taken.
    waiting: dict[Key, datetime] = field(default_factory=dict)

    def turn_free(self, namespace: str) -> bool:
        return sum(1 for key in self.under_way if key[0] == namespace) < self.per_namespace

    def forget(self, namespace: str, schema: str) -> dict[str, str]:
        """The schema is deleted: its pods as they were known (to delete them)."""
        self.under_way.pop((namespace, schema), None)
        self.waiting.pop((namespace, schema), None)
        return dict(self.created.pop((namespace, schema), {}))


def _failed(message: str, pod: str | None = None) -> Outcome:
    return Outcome(Reason.VERIFY_POD_FAILED, message, verify_pod=pod)


async def check(body: Mapping[str, Any], spec: DatabaseSchemaSpec, requirement: Requirement,
                kube_api: KubeEdge, image: str | None, now: datetime, pods: VerifyPods,
                scrubber: Scrubber = PATTERNS) -> Checked:
    """Look at the schema's verify pod under way, or start one; `now` is this pass's
    start. What a pod says passes the schema's `scrubber`."""
    meta = body["metadata"]
    key = (meta["namespace"], meta["name"])
    generation = int(meta.get("generation") or 0)
    under_way = pods.under_way.get(key)
    if under_way is not None and under_way.generation == generation:
        return await _observe(key, under_way, requirement, kube_api, now, pods, scrubber)
    if under_way is not None:  # the spec changed since it started: its verdict is stale
        await _drop(key, under_way, kube_api, pods)
    return Checked(await _start(body, spec, kube_api, image, now, pods, scrubber), now)


async def _start(body: Mapping[str, Any], spec: DatabaseSchemaSpec, kube_api: KubeEdge,
                 image: str | None, now: datetime, pods: VerifyPods,
                 scrubber: Scrubber) -> Outcome | None:
    """Starts the check's pod (None), or says why none starts."""
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
    if not pods.turn_free(namespace):
        return _wait_for_turn((namespace, name), now, pods)
    pods.waiting.pop((namespace, name), None)
    await _tidy((namespace, name), kube_api, pods)
    created = await asyncio.to_thread(kube_api.create_pod, namespace, manifest)
    pod, uid = str(created["metadata"]["name"]), str(created["metadata"]["uid"])
    pods.created.setdefault((namespace, name), {})[pod] = uid
    pods.under_way[(namespace, name)] = UnderWay(pod, uid, now, int(meta.get("generation") or 0))
    return None


def _wait_for_turn(key: Key, now: datetime, pods: VerifyPods) -> Outcome | None:
    since = pods.waiting.setdefault(key, now)
    if (now - since).total_seconds() < pods.turn_wait:
        return None  # looked at again in POLL seconds, like a pod under way
    pods.waiting.pop(key, None)
    return _failed(f"namespace {key[0]} already has {pods.per_namespace} verify pods under "
                   f"way, the most one namespace may have at once: this check waited "
                   f"{pods.turn_wait:g} s for one of them to end, and is tried again at its "
                   "next interval")


async def _tidy(key: Key, kube_api: KubeEdge, pods: VerifyPods) -> None:
    """Before a new pod: our unfinished ones go, and the finished ones beyond the newest
    few kept for `kubectl logs`."""
    listed = await asyncio.to_thread(kube_api.verify_pods, *key)
    ours = progress.created_here(listed, pods.created.get(key, {}))
    known = pods.created[key] = {p["metadata"]["name"]: p["metadata"]["uid"]
                                 for p in ours}  # the gone ones forgotten
    for stale in progress.to_delete(ours, keep=progress.KEEP_FINISHED - 1):
        await asyncio.to_thread(kube_api.delete_pod, key[0], stale, known.pop(stale))


async def _observe(key: Key, under_way: UnderWay, requirement: Requirement,
                   kube_api: KubeEdge, now: datetime, pods: VerifyPods,
                   scrubber: Scrubber) -> Checked:
    name = under_way.pod
    pod = await asyncio.to_thread(kube_api.verify_pod, key[0], name)
    if pod is None or pod["metadata"].get("deletionTimestamp"):
        return _ended(key, pods, _failed(f"verify pod {name} was deleted before its check "
                                         "ended", name))
    if not progress.is_created(pod, under_way.uid):
        return _ended(key, pods, _failed(f"verify pod {name} was replaced by a pod the "
                                         "operator did not create; nothing it says is "
                                         "read", name))
    where = progress.progress(pod, now)
    if where.running:
        return Checked(None, under_way.started)
    if where.failed is not None:
        # A pod that cannot start would go on pulling or waiting: it goes now, its reason
        # is in the condition.
        await _drop(key, under_way, kube_api, pods)
        return Checked(_failed(scrubber.message(where.failed), name), under_way.started)
    verdict, why = progress.outcome_of(name, where, requirement, scrubber.scrub_tail)
    if verdict is None:
        return _ended(key, pods, _failed(why, name))
    outcome = from_verdict(verdict)
    return _ended(key, pods, Outcome(outcome.reason, scrubber.message(outcome.message), verdict,
                                     verify_pod=name))


def _ended(key: Key, pods: VerifyPods, outcome: Outcome) -> Checked:
    under_way = pods.under_way.pop(key)
    return Checked(outcome, under_way.started)


async def _drop(key: Key, under_way: UnderWay, kube_api: KubeEdge, pods: VerifyPods) -> None:
    pods.under_way.pop(key, None)
    await asyncio.to_thread(kube_api.delete_pod, key[0], under_way.pod, under_way.uid)
    pods.created.get(key, {}).pop(under_way.pod, None)
