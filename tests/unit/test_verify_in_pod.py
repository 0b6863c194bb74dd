"""The verify-pod step over a stand-in for `kube.Kube` (the project's own wrapper): one
pod per check, followed to its verdict, never two at once, nothing left behind."""

from __future__ import annotations

import asyncio
import copy
import itertools
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from schemagate import verify_in_pod
from schemagate.core import verify_pod as vp
from schemagate.core.check.requirement import requirement_for
from schemagate.core.check.verdict import Fingerprint, Verdict
from schemagate.core.clone.consent import CLONE_FOR
from schemagate.core.tenancy.scrub import Scrubber
from schemagate.core.wire.reasons import Reason
from schemagate.metrics import Metrics
from schemagate.reconcile import Context, Registry
from schemagate.reconcile.pods import release
from tests.unit.test_verify_pod import deployment, spec

NOW = datetime(2026, 12, 2, 5, 0, tzinfo=UTC)


class FakeTime:
    """Seconds since NOW that pass only when the step sleeps: no test waits for real."""

    def __init__(self) -> None:
        self.now = 0.0

    def clock(self) -> datetime:
        return NOW + timedelta(seconds=self.now)

    async def sleep(self, seconds: float) -> None:
        self.now += seconds
        await asyncio.sleep(0)
BODY = {"metadata": {"namespace": "team", "name": "backend-schema", "uid": "u-1"}}
VERIFIED = Verdict(verified=True, reason=Reason.VERIFIED, message="all 3 declared tables",
                   current_revisions=frozenset({"3f2a9c"}),
                   expected_revisions=frozenset({"3f2a9c"}),
                   fingerprint=Fingerprint(host="10.0.0.5", port=5432, database="app",
                                           user="backend@p.iam", search_path="public",
                                           server_version="16.4"))


class FakeKube:
    """Pods in memory; each pod the step creates runs `script` (the states it goes through,
    one per look); a pod the test puts in `pods` itself (someone else's) runs its own
    from `scripts`, or keeps its status."""

    def __init__(self, script: list[dict[str, Any]], time: FakeTime | None = None) -> None:
        self.scrubber = Scrubber()  # the schema's, as the loop passes it
        self.pods: dict[str, dict[str, Any]] = {}
        self.created: list[str] = []
        self.deleted: list[str] = []
        self.script = script
        self.scripts: dict[str, list[dict[str, Any]]] = {}
        self.looks: dict[str, int] = {}
        #: When each look happened (the fake time), and the most pods under way at once.
        self.time = time or FakeTime()
        self.looked_at: list[float] = []
        self.under_way: set[str] = set()
        self.most_under_way = 0
        self._names = (f"backend-schema-verify-{i}" for i in itertools.count())

    def deployment(self, namespace: str, name: str) -> dict[str, Any] | None:
        return deployment() if name == "backend" else None

    def verify_pods(self, namespace: str, schema: str) -> list[dict[str, Any]]:
        return [copy.deepcopy(p) for p in self.pods.values()
                if p["metadata"]["labels"].get(vp.VERIFY_LABEL) == schema]

    def create_pod(self, namespace: str, manifest: dict[str, Any]) -> dict[str, Any]:
        name = next(self._names)
        pod = copy.deepcopy(manifest)
        pod["metadata"].update(name=name, uid=f"uid-of-{name}",
                               creationTimestamp=NOW.strftime("%Y-%m-%dT%H:%M:%SZ"))
        pod["status"] = {"phase": "Pending"}
        self.pods[name] = pod
        self.scripts[name] = self.script
        self.created.append(name)
        self.under_way.add(name)
        self.most_under_way = max(self.most_under_way, len(self.under_way))
        return copy.deepcopy(pod)

    def verify_pod(self, namespace: str, name: str) -> dict[str, Any] | None:
        self.looked_at.append(self.time.now)
        pod = self.pods.get(name)
        if pod is None:
            return None
        if (script := self.scripts.get(name)) is not None:
            look = self.looks.get(name, 0)
            self.looks[name] = look + 1
            pod["status"] = script[min(look, len(script) - 1)]
            if vp.is_finished(pod):
                self.under_way.discard(name)
        return copy.deepcopy(pod)

    def delete_pod(self, namespace: str, name: str, uid: str) -> None:
        if name in self.pods and self.pods[name]["metadata"]["uid"] == uid:
            del self.pods[name]
            self.deleted.append(name)
            self.under_way.discard(name)


def terminated(verdict: Verdict) -> dict[str, Any]:
    return {"phase": "Running", "containerStatuses": [{"name": "verify", "state": {
        "terminated": {"exitCode": 0, "message": vp.termination_message(verdict)}}}]}


RUNNING = {"phase": "Running", "containerStatuses": [{"name": "verify",
                                                      "state": {"running": {}}}]}


def check(kube: FakeKube, image: str | None = "schemagate:0.1.0", clock: Any = None,
          pods: verify_in_pod.VerifyPods | None = None) -> Any:
    s = spec()
    known = pods or verify_in_pod.VerifyPods(sleep=kube.time.sleep)
    return asyncio.run(verify_in_pod.check(BODY, s, requirement_for(s), kube,  # type: ignore[arg-type]
                                           image, clock or kube.time.clock, known,
                                           kube.scrubber))


def test_one_pod_per_check_and_its_verdict_with_where_it_ran() -> None:
    kube = FakeKube([RUNNING, RUNNING, terminated(VERIFIED)])
    outcome = check(kube)
    assert outcome.reason is Reason.VERIFIED and outcome.verdict == VERIFIED
    assert outcome.verify_pod == "backend-schema-verify-0" and kube.created == [outcome.verify_pod]


def test_the_last_three_finished_pods_stay() -> None:
    kube = FakeKube([terminated(VERIFIED)])
    pods = verify_in_pod.VerifyPods(sleep=kube.time.sleep)
    for _ in range(6):
        check(kube, pods=pods)
    assert len(kube.created) == 6 and len(kube.pods) == vp.KEEP_FINISHED
    assert sorted(kube.pods) == kube.created[-3:]


def test_a_pod_that_cannot_start_is_deleted_and_said_why() -> None:
    kube = FakeKube([{"phase": "Pending", "containerStatuses": [{"name": "verify", "state": {
        "waiting": {"reason": "ErrImagePull", "message": "pull access denied"}}}]}])
    outcome = check(kube)
    assert outcome.reason is Reason.VERIFY_POD_FAILED
    assert "container verify is ErrImagePull: pull access denied" in outcome.message
    assert kube.pods == {}


UNSCHEDULABLE = {"phase": "Pending", "conditions": [{
    "type": "PodScheduled", "status": "False", "reason": "Unschedulable",
    "message": "0/1 nodes are available"}]}


def test_a_pod_past_its_deadline_is_deleted_and_said_why() -> None:
    kube = FakeKube([UNSCHEDULABLE])
    outcome = check(kube)
    assert outcome.reason is Reason.VERIFY_POD_FAILED and "not scheduled" in outcome.message
    assert kube.pods == {}


def test_a_pod_is_looked_at_no_more_than_every_two_seconds() -> None:
    kube = FakeKube([UNSCHEDULABLE])  # followed for its whole deadline
    check(kube)
    looks = kube.looked_at
    assert min(b - a for a, b in zip([0.0, *looks], looks, strict=False)) >= 2.0
    assert len(looks) <= vp.DEADLINE.total_seconds() / 2 + 1  # a look every 0.25 s: 480


def test_a_crash_is_no_verdict_and_its_words_are_scrubbed() -> None:
    kube = FakeKube([{"phase": "Failed", "containerStatuses": [{"name": "verify", "state": {
        "terminated": {"exitCode": 1, "message": "Traceback: postgresql://u:hunter2@db/app"}}}]}])
    kube.scrubber.learn("postgresql://u:hunter2@db/app")
    outcome = check(kube)
    assert outcome.reason is Reason.VERIFY_POD_FAILED and "exit code 1" in outcome.message
    assert "hunter2" not in outcome.message


TABLES_MISSING = Verdict(verified=False, reason=Reason.TABLES_MISSING,
                        message="agent_executions missing", missing_tables=("agent_executions",))


def lookalike(kube: FakeKube, name: str, script: list[dict[str, Any]]) -> dict[str, Any]:
    """A pod made by someone else than the step, with the verify pod's label and
    annotations (hash included) copied from a kept one."""
    pod = vp.verify_pod(schema="backend-schema", uid="u-1", spec=spec(),
                        deployment=deployment(), image="schemagate:0.1.0")
    pod["metadata"].update(name=name, uid=f"uid-of-{name}")
    pod["status"] = script[0]
    kube.pods[name], kube.scripts[name] = pod, script
    return pod


def test_a_forged_verify_pod_that_says_verified_is_never_read() -> None:
    kube = FakeKube([RUNNING, terminated(TABLES_MISSING)])
    lookalike(kube, "forged", [RUNNING, terminated(VERIFIED)])
    outcome = check(kube)
    assert outcome.reason is Reason.TABLES_MISSING and not outcome.verified
    assert outcome.verify_pod == kube.created[0] != "forged"
    assert "forged" not in kube.looks and "forged" in kube.pods  # ignored, not deleted


def test_a_pod_that_takes_the_name_of_ours_is_not_read() -> None:
    kube = FakeKube([RUNNING, terminated(VERIFIED)])
    create = kube.create_pod

    def then_replaced(namespace: str, manifest: dict[str, Any]) -> dict[str, Any]:
        answer = create(namespace, manifest)  # ours is deleted, another takes its name
        kube.pods[answer["metadata"]["name"]]["metadata"]["uid"] = "uid-of-someone-else"
        return answer

    kube.create_pod = then_replaced  # type: ignore[method-assign]
    outcome = check(kube)
    assert outcome.reason is Reason.VERIFY_POD_FAILED and not outcome.verified
    assert "replaced by a pod the operator did not create" in outcome.message
    assert kube.deleted == []


def test_after_a_restart_an_earlier_pod_is_not_trusted_a_new_one_checks() -> None:
    kube = FakeKube([RUNNING, terminated(TABLES_MISSING)])
    lookalike(kube, "of-an-earlier-life", [RUNNING, terminated(VERIFIED)])
    outcome = check(kube)  # a process that created no pod yet
    assert outcome.reason is Reason.TABLES_MISSING
    assert outcome.verify_pod == kube.created[0] and len(kube.created) == 1


def test_a_pod_left_by_an_earlier_pass_is_followed_not_doubled() -> None:
    kube = FakeKube([RUNNING, RUNNING, terminated(VERIFIED)])
    pods = verify_in_pod.VerifyPods(sleep=kube.time.sleep)
    earlier = kube.create_pod("team", vp.verify_pod(
        schema="backend-schema", uid="u-1", spec=spec(), deployment=deployment(),
        image="schemagate:0.1.0"))
    pods.created[("team", "backend-schema")] = {earlier["metadata"]["name"]:
                                                earlier["metadata"]["uid"]}
    outcome = check(kube, pods=pods)
    assert outcome.verify_pod == earlier["metadata"]["name"] and len(kube.created) == 1
    assert outcome.reason is Reason.VERIFIED


def opted_in(schema: str) -> dict[str, Any]:
    source = deployment()
    source["metadata"]["annotations"][CLONE_FOR] = schema
    return source


def body_of(schema: str, namespace: str = "team") -> dict[str, Any]:
    return {"metadata": {"namespace": namespace, "name": schema, "uid": f"u-{schema}"}}


def spec_of(schema: str) -> Any:
    return spec(verifyPod={"fromDeployment": {"name": schema, "container": "app"}})


def test_a_namespace_has_at_most_four_verify_pods_under_way() -> None:
    kube = FakeKube([RUNNING, RUNNING, RUNNING, terminated(VERIFIED)])
    kube.deployment = lambda namespace, name: opted_in(name)  # type: ignore[method-assign]
    pods = verify_in_pod.VerifyPods(sleep=kube.time.sleep)

    async def ten_schemas() -> list[Any]:
        return await asyncio.gather(*(verify_in_pod.check(
            body_of(f"s{i}"), spec_of(f"s{i}"), requirement_for(spec_of(f"s{i}")), kube,  # type: ignore[arg-type]
            "schemagate:0.1.0", kube.time.clock, pods) for i in range(10)))

    outcomes = asyncio.run(ten_schemas())
    assert all(o.reason is Reason.VERIFIED for o in outcomes) and len(kube.created) == 10
    assert kube.most_under_way == verify_in_pod.PER_NAMESPACE == 4


def test_a_check_past_its_namespace_share_waits_and_says_so_another_namespace_does_not(
        ) -> None:
    kube = FakeKube([RUNNING])  # never ends: the clock below stands still
    kube.deployment = lambda namespace, name: opted_in(name)  # type: ignore[method-assign]
    pods = verify_in_pod.VerifyPods(per_namespace=1, turn_wait=0.05, sleep=kube.time.sleep)

    def one(schema: str, namespace: str) -> Any:
        return verify_in_pod.check(body_of(schema, namespace), spec_of(schema),
                                   requirement_for(spec_of(schema)), kube,  # type: ignore[arg-type]
                                   "schemagate:0.1.0", lambda: NOW, pods)

    async def scenario() -> tuple[Any, Any]:
        holder = asyncio.create_task(one("s0", "team"))
        while not kube.created:
            await asyncio.sleep(0)
        waited = await one("s1", "team")
        kube.script = [terminated(VERIFIED)]  # the next pods made end at once
        other = await one("s2", "other")
        holder.cancel()
        await asyncio.gather(holder, return_exceptions=True)
        return waited, other

    waited, other = asyncio.run(scenario())
    assert waited.reason is Reason.VERIFY_POD_FAILED
    assert "namespace team already has 1 verify pods under way" in waited.message
    assert other.reason is Reason.VERIFIED


def test_a_check_cancelled_midway_deletes_its_pod() -> None:
    kube = FakeKube([RUNNING])

    async def cancelled() -> None:
        s = spec()
        task = asyncio.create_task(verify_in_pod.check(
            BODY, s, requirement_for(s), kube, "schemagate:0.1.0", lambda: NOW,  # type: ignore[arg-type]
            verify_in_pod.VerifyPods(sleep=kube.time.sleep)))
        while not kube.created:
            await asyncio.sleep(0.001)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(cancelled())
    assert kube.created and kube.pods == {}


def test_without_an_image_no_pod_is_made() -> None:
    kube = FakeKube([RUNNING])
    outcome = check(kube, image=None)
    assert outcome.reason is Reason.VERIFY_POD_FAILED and "--verify-image" in outcome.message
    assert kube.created == []


def test_a_missing_deployment_is_an_invalid_spec() -> None:
    kube = FakeKube([RUNNING])
    kube.deployment = lambda namespace, name: None  # type: ignore[method-assign]
    outcome = check(kube)
    assert outcome.reason is Reason.INVALID_SPEC and "Deployment backend not found" in \
        outcome.message


def test_deleting_the_schema_deletes_its_verify_pods_but_not_a_lookalike() -> None:
    kube = FakeKube([terminated(VERIFIED)])
    pods = verify_in_pod.VerifyPods(sleep=kube.time.sleep)
    check(kube, pods=pods)
    lookalike(kube, "someone-elses", [RUNNING])
    fake: Any = kube
    ctx = Context(kube=fake, registry=Registry(), metrics=Metrics(), announce=lambda *_: None,
                  pods={}, verify_pods=pods)
    asyncio.run(release(BODY, ctx))
    assert kube.deleted == kube.created and list(kube.pods) == ["someone-elses"]


def test_deleting_the_schema_while_its_check_follows_a_pod_releases_it() -> None:
    """Kopf cancels the schema's check while the deletion handler runs: the check deletes
    its pod on the way out, and the release must not trip over it (it once failed with
    "dictionary changed size during iteration" and Kopf retried the deletion a minute later)."""
    kube = FakeKube([RUNNING])
    pods = verify_in_pod.VerifyPods(sleep=kube.time.sleep)
    fake: Any = kube
    ctx = Context(kube=fake, registry=Registry(), metrics=Metrics(), announce=lambda *_: None,
                  pods={}, verify_pods=pods)
    deleting, calls, check_ended = kube.delete_pod, [], threading.Event()

    def delete_once_the_check_ended(namespace: str, name: str, uid: str) -> None:
        calls.append(name)
        if len(calls) == 1:  # the release's: on a busy API server, slower than the check
            check_ended.wait(timeout=5)
        deleting(namespace, name, uid)

    fake.delete_pod = delete_once_the_check_ended

    async def delete_while_checking() -> int:
        s = spec()
        checking = asyncio.create_task(verify_in_pod.check(
            BODY, s, requirement_for(s), fake, "schemagate:0.1.0", kube.time.clock, pods,
            kube.scrubber))
        while not kube.looked_at:  # following its pod
            await asyncio.sleep(0)
        checking.add_done_callback(lambda _: check_ended.set())
        checking.cancel()  # as Kopf stops the schema's daemon when it is deleted
        released = await release(BODY, ctx)
        await asyncio.gather(checking, return_exceptions=True)
        return released

    asyncio.run(delete_while_checking())
    assert kube.created and not kube.pods
