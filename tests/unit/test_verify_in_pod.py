"""The verify-pod step over a stand-in for `kube.Kube` (the project's own wrapper): one
pod per check, followed to its verdict, never two at once, nothing left behind."""

from __future__ import annotations

import asyncio
import copy
import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from schemagate import verify_in_pod
from schemagate.core import verify_pod as vp
from schemagate.core.reasons import Reason
from schemagate.core.requirement import requirement_for
from schemagate.core.scrub import Scrubber
from schemagate.core.verdict import Fingerprint, Verdict
from tests.unit.test_verify_pod import deployment, spec

NOW = datetime(2026, 12, 2, 5, 0, tzinfo=UTC)
BODY = {"metadata": {"namespace": "team", "name": "backend-schema", "uid": "u-1"}}
VERIFIED = Verdict(verified=True, reason=Reason.VERIFIED, message="all 3 declared tables",
                   current_revisions=frozenset({"3f2a9c"}),
                   expected_revisions=frozenset({"3f2a9c"}),
                   fingerprint=Fingerprint(host="10.0.0.5", port=5432, database="app",
                                           user="backend@p.iam", search_path="public",
                                           server_version="16.4"))


class FakeKube:
    """Pods in memory; each created pod runs `script` (the states it goes through, one
    per look)."""

    def __init__(self, script: list[dict[str, Any]]) -> None:
        self.scrubber = Scrubber()  # the schema's, as the loop passes it
        self.pods: dict[str, dict[str, Any]] = {}
        self.created: list[str] = []
        self.deleted: list[str] = []
        self.script = script
        self.looks: dict[str, int] = {}
        self._names = (f"backend-schema-verify-{i}" for i in itertools.count())

    def deployment(self, namespace: str, name: str) -> dict[str, Any] | None:
        return deployment() if name == "backend" else None

    def verify_pods(self, namespace: str, schema: str) -> list[dict[str, Any]]:
        return [copy.deepcopy(p) for p in self.pods.values()]

    def create_pod(self, namespace: str, manifest: dict[str, Any]) -> dict[str, Any]:
        name = next(self._names)
        pod = copy.deepcopy(manifest)
        pod["metadata"].update(name=name, creationTimestamp=NOW.strftime("%Y-%m-%dT%H:%M:%SZ"))
        pod["status"] = {"phase": "Pending"}
        self.pods[name] = pod
        self.created.append(name)
        return pod

    def verify_pod(self, namespace: str, name: str) -> dict[str, Any] | None:
        pod = self.pods.get(name)
        if pod is None:
            return None
        look = self.looks.get(name, 0)
        self.looks[name] = look + 1
        pod["status"] = self.script[min(look, len(self.script) - 1)]
        return copy.deepcopy(pod)

    def delete_pod(self, namespace: str, name: str) -> None:
        self.pods.pop(name, None)
        self.deleted.append(name)


def terminated(verdict: Verdict) -> dict[str, Any]:
    return {"phase": "Running", "containerStatuses": [{"name": "verify", "state": {
        "terminated": {"exitCode": 0, "message": vp.termination_message(verdict)}}}]}


RUNNING = {"phase": "Running", "containerStatuses": [{"name": "verify",
                                                      "state": {"running": {}}}]}


def check(kube: FakeKube, image: str | None = "schemagate:0.1.0",
          clock: Any = lambda: NOW) -> Any:
    s = spec()
    return asyncio.run(verify_in_pod.check(BODY, s, requirement_for(s), kube,  # type: ignore[arg-type]
                                           image, clock, kube.scrubber))


@pytest.fixture(autouse=True)
def fast_polls(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(verify_in_pod, "POLL", 0.001)


def test_one_pod_per_check_and_its_verdict_with_where_it_ran() -> None:
    kube = FakeKube([RUNNING, RUNNING, terminated(VERIFIED)])
    outcome = check(kube)
    assert outcome.reason is Reason.VERIFIED and outcome.verdict == VERIFIED
    assert outcome.verify_pod == "backend-schema-verify-0" and kube.created == [outcome.verify_pod]


def test_the_last_three_finished_pods_stay() -> None:
    kube = FakeKube([terminated(VERIFIED)])
    for _ in range(6):
        check(kube)
    assert len(kube.created) == 6 and len(kube.pods) == vp.KEEP_FINISHED
    assert sorted(kube.pods) == kube.created[-3:]


def test_a_pod_that_cannot_start_is_deleted_and_said_why() -> None:
    kube = FakeKube([{"phase": "Pending", "containerStatuses": [{"name": "verify", "state": {
        "waiting": {"reason": "ErrImagePull", "message": "pull access denied"}}}]}])
    outcome = check(kube)
    assert outcome.reason is Reason.VERIFY_POD_FAILED
    assert "container verify is ErrImagePull: pull access denied" in outcome.message
    assert kube.pods == {}


def test_a_pod_past_its_deadline_is_deleted_and_said_why() -> None:
    times = iter([NOW, NOW + timedelta(seconds=5), NOW + vp.DEADLINE])
    kube = FakeKube([{"phase": "Pending", "conditions": [{
        "type": "PodScheduled", "status": "False", "reason": "Unschedulable",
        "message": "0/1 nodes are available"}]}])
    outcome = check(kube, clock=lambda: next(times))
    assert outcome.reason is Reason.VERIFY_POD_FAILED and "not scheduled" in outcome.message
    assert kube.pods == {}


def test_a_crash_is_no_verdict_and_its_words_are_scrubbed() -> None:
    kube = FakeKube([{"phase": "Failed", "containerStatuses": [{"name": "verify", "state": {
        "terminated": {"exitCode": 1, "message": "Traceback: postgresql://u:hunter2@db/app"}}}]}])
    kube.scrubber.learn("postgresql://u:hunter2@db/app")
    outcome = check(kube)
    assert outcome.reason is Reason.VERIFY_POD_FAILED and "exit code 1" in outcome.message
    assert "hunter2" not in outcome.message


def test_an_earlier_lifes_pod_of_the_same_check_is_followed_not_doubled() -> None:
    kube = FakeKube([RUNNING, terminated(VERIFIED)])
    earlier = kube.create_pod("team", vp.verify_pod(
        schema="backend-schema", uid="u-1", spec=spec(), deployment=deployment(),
        image="schemagate:0.1.0"))
    outcome = check(kube)
    assert outcome.verify_pod == earlier["metadata"]["name"] and len(kube.created) == 1


def test_a_check_cancelled_midway_deletes_its_pod() -> None:
    kube = FakeKube([RUNNING])

    async def cancelled() -> None:
        s = spec()
        task = asyncio.create_task(verify_in_pod.check(
            BODY, s, requirement_for(s), kube, "schemagate:0.1.0", lambda: NOW))  # type: ignore[arg-type]
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
