"""The verify-pod step over the one fake of the Kubernetes edge: a check starts its pod
and returns; the next passes look at it until its verdict. One pod per check, never two
at once, nothing left behind, and only the pods this process created are read."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from schemagate.core.check.requirement import requirement_for
from schemagate.core.check.verdict import Fingerprint, Verdict
from schemagate.core.clone.consent import CLONE_FOR
from schemagate.core.tenancy.scrub import Scrubber
from schemagate.core.verify_pod import manifest as vp
from schemagate.core.verify_pod import progress, termination
from schemagate.core.wire.reasons import Reason
from schemagate.reconcile import verify_in_pod
from schemagate.reconcile.pods import release
from schemagate.reconcile.verify_in_pod import POLL, Checked, VerifyPods
from tests.support.fake_kube import Clock, FakeKube
from tests.unit.test_verify_pod import deployment, spec

BODY = {"metadata": {"namespace": "team", "name": "backend-schema", "uid": "u-1",
                     "generation": 1}}
VERIFIED = Verdict(verified=True, reason=Reason.VERIFIED, message="all 3 declared tables",
                   current_revisions=frozenset({"3f2a9c"}),
                   expected_revisions=frozenset({"3f2a9c"}),
                   fingerprint=Fingerprint(host="10.0.0.5", port=5432, database="app",
                                           user="backend@p.iam", search_path="public",
                                           server_version="16.4"))
TABLES_MISSING = Verdict(verified=False, reason=Reason.TABLES_MISSING,
                         message="agent_executions missing", missing_tables=("agent_executions",))
RUNNING = {"phase": "Running", "containerStatuses": [{"name": "verify",
                                                      "state": {"running": {}}}]}
UNSCHEDULABLE = {"phase": "Pending", "conditions": [{
    "type": "PodScheduled", "status": "False", "reason": "Unschedulable",
    "message": "0/1 nodes are available"}]}


def terminated(verdict: Verdict) -> dict[str, Any]:
    return {"phase": "Running", "containerStatuses": [{"name": "verify", "state": {
        "terminated": {"exitCode": 0, "message": termination.termination_message(verdict)}}}]}


def fake(*script: dict[str, Any]) -> FakeKube:
    """Each verify pod the step creates goes through `script`, one state per look."""
    kube = FakeKube(Clock())
    kube.verify_script = list(script)
    kube.deployments[("team", "backend")] = deployment()
    return kube


def check(kube: FakeKube, pods: VerifyPods, image: str | None = "schemagate:0.1.0",
          body: dict[str, Any] = BODY, schema_spec: Any = None,
          scrubber: Scrubber | None = None) -> Checked:
    """One pass's look: starts the pod, or looks at the one under way."""
    s = schema_spec or spec()
    return asyncio.run(verify_in_pod.check(body, s, requirement_for(s), kube, image,
                                           kube.clock(), pods, scrubber or Scrubber()))


def until_done(kube: FakeKube, pods: VerifyPods, **kw: Any) -> Checked:
    """Pass after pass, `POLL` seconds apart, until the check has its outcome."""
    clock: Any = kube.clock
    for _ in range(200):
        checked = check(kube, pods, **kw)
        if checked.outcome is not None:
            return checked
        clock.advance(POLL)
    raise AssertionError("the check never ended")


def test_a_check_starts_its_pod_returns_and_reads_the_verdict_on_a_later_pass() -> None:
    kube, pods = fake(RUNNING, RUNNING, terminated(VERIFIED)), VerifyPods()
    began = kube.clock()
    first = check(kube, pods)
    assert first.outcome is None and kube.verify_created == ["verify-0"]
    done = until_done(kube, pods)
    assert done.outcome is not None and done.outcome.reason is Reason.VERIFIED
    assert done.outcome.verdict == VERIFIED and done.outcome.verify_pod == "verify-0"
    assert done.started == began, "the check began when its pod was started"
    assert kube.verify_created == ["verify-0"], "followed, never doubled"


def test_the_last_three_finished_pods_stay() -> None:
    kube, pods = fake(terminated(VERIFIED)), VerifyPods()
    for _ in range(6):
        until_done(kube, pods)
    assert len(kube.verify_created) == 6 and len(kube.pods) == progress.KEEP_FINISHED
    assert sorted(name for _, name in kube.pods) == kube.verify_created[-3:]


def test_a_pod_that_cannot_start_is_deleted_and_said_why() -> None:
    kube = fake({"phase": "Pending", "containerStatuses": [{"name": "verify", "state": {
        "waiting": {"reason": "ErrImagePull", "message": "pull access denied"}}}]})
    done = until_done(kube, VerifyPods())
    assert done.outcome is not None and done.outcome.reason is Reason.VERIFY_POD_FAILED
    assert "container verify is ErrImagePull: pull access denied" in done.outcome.message
    assert kube.pods == {}


def test_a_pod_past_its_deadline_is_deleted_and_said_why() -> None:
    kube = fake(UNSCHEDULABLE)
    done = until_done(kube, VerifyPods())
    assert done.outcome is not None and done.outcome.reason is Reason.VERIFY_POD_FAILED
    assert "not scheduled" in done.outcome.message and kube.pods == {}


def test_a_crash_is_no_verdict_and_its_words_are_scrubbed() -> None:
    kube = fake({"phase": "Failed", "containerStatuses": [{"name": "verify", "state": {
        "terminated": {"exitCode": 1, "message": "Traceback: postgresql://u:hunter2@db/app"}}}]})
    scrubber = Scrubber()
    scrubber.learn("postgresql://u:hunter2@db/app")
    done = until_done(kube, VerifyPods(), scrubber=scrubber)
    assert done.outcome is not None and done.outcome.reason is Reason.VERIFY_POD_FAILED
    assert "exit code 1" in done.outcome.message and "hunter2" not in done.outcome.message


def lookalike(kube: FakeKube, name: str, script: list[dict[str, Any]]) -> dict[str, Any]:
    """A pod made by someone else than the step, with the verify pod's label and
    annotations (hash included) copied from a kept one."""
    pod = vp.verify_pod(schema="backend-schema", uid="u-1", spec=spec(),
                        deployment=deployment(), image="schemagate:0.1.0")
    pod["metadata"].update(name=name, namespace="team", uid=f"uid-of-{name}")
    pod["status"] = script[0]
    kube.pods[("team", name)], kube.scripts[name] = pod, script
    return pod


def test_a_forged_verify_pod_that_says_verified_is_never_read() -> None:
    kube = fake(RUNNING, terminated(TABLES_MISSING))
    lookalike(kube, "forged", [RUNNING, terminated(VERIFIED)])
    done = until_done(kube, VerifyPods())
    assert done.outcome is not None and done.outcome.reason is Reason.TABLES_MISSING
    assert done.outcome.verify_pod == kube.verify_created[0] != "forged"
    assert "forged" not in kube.looks and ("team", "forged") in kube.pods  # ignored, kept


def test_a_pod_that_takes_the_name_of_ours_is_not_read() -> None:
    kube, pods = fake(RUNNING, terminated(VERIFIED)), VerifyPods()
    check(kube, pods)
    kube.pods[("team", "verify-0")]["metadata"]["uid"] = "uid-of-someone-else"
    done = until_done(kube, pods)
    assert done.outcome is not None and done.outcome.reason is Reason.VERIFY_POD_FAILED
    assert "replaced by a pod the operator did not create" in done.outcome.message
    assert kube.verify_deleted == []


def test_after_a_restart_an_earlier_pod_is_not_trusted_a_new_one_checks() -> None:
    kube = fake(RUNNING, terminated(TABLES_MISSING))
    lookalike(kube, "of-an-earlier-life", [RUNNING, terminated(VERIFIED)])
    done = until_done(kube, VerifyPods())  # a process that created no pod yet
    assert done.outcome is not None and done.outcome.reason is Reason.TABLES_MISSING
    assert kube.verify_created == ["verify-0"]


def test_a_spec_changed_while_its_pod_runs_starts_a_check_of_the_new_one() -> None:
    kube, pods = fake(RUNNING), VerifyPods()
    check(kube, pods)
    newer = {"metadata": {**BODY["metadata"], "generation": 2}}
    assert check(kube, pods, body=newer).outcome is None
    assert kube.verify_created == ["verify-0", "verify-1"]
    assert kube.verify_deleted == ["verify-0"] and kube.under_way() == ["verify-1"]


def opted_in(schema: str) -> dict[str, Any]:
    source = deployment()
    source["metadata"].update(name=schema)
    source["metadata"]["annotations"][CLONE_FOR] = schema
    return source


def body_of(schema: str, namespace: str = "team") -> dict[str, Any]:
    return {"metadata": {"namespace": namespace, "name": schema, "uid": f"u-{schema}",
                         "generation": 1}}


def spec_of(schema: str) -> Any:
    return spec(verifyPod={"fromDeployment": {"name": schema, "container": "app"}})


def test_a_namespace_has_at_most_four_verify_pods_under_way() -> None:
    kube, pods = fake(RUNNING, RUNNING, terminated(VERIFIED)), VerifyPods()
    schemas = [f"s{i}" for i in range(10)]
    for name in schemas:
        kube.deployments[("team", name)] = opted_in(name)
    outcomes: dict[str, Any] = {}
    most = 0
    clock: Any = kube.clock
    while len(outcomes) < len(schemas):  # every loop passes, POLL seconds apart
        for name in [s for s in schemas if s not in outcomes]:
            checked = check(kube, pods, body=body_of(name), schema_spec=spec_of(name))
            if checked.outcome is not None:
                outcomes[name] = checked.outcome
            most = max(most, len(kube.under_way()))
        clock.advance(POLL)
    assert all(o.reason is Reason.VERIFIED for o in outcomes.values())
    assert len(kube.verify_created) == 10 and most == verify_in_pod.PER_NAMESPACE == 4


def test_a_check_past_its_namespace_share_waits_and_says_so_another_namespace_does_not(
        ) -> None:
    kube = fake(RUNNING)  # never ends
    for name in ("s0", "s1", "s2"):
        kube.deployments[("team", name)] = opted_in(name)
        kube.deployments[("other", name)] = opted_in(name)
    pods = VerifyPods(per_namespace=1, turn_wait=10)
    clock: Any = kube.clock

    def one(schema: str, namespace: str = "team") -> Checked:
        return check(kube, pods, body=body_of(schema, namespace), schema_spec=spec_of(schema))

    assert one("s0").outcome is None and kube.verify_created == ["verify-0"]
    assert one("s1").outcome is None  # waits its turn ...
    clock.advance(11)
    waited = one("s1").outcome  # ... for as long as a verify pod may take, then says so
    assert waited is not None and waited.reason is Reason.VERIFY_POD_FAILED
    assert "namespace team already has 1 verify pods under way" in waited.message
    assert one("s2", "other").outcome is None and len(kube.verify_created) == 2


def test_without_an_image_no_pod_is_made() -> None:
    kube = fake(RUNNING)
    checked = check(kube, VerifyPods(), image=None)
    assert checked.outcome is not None and checked.outcome.reason is Reason.VERIFY_POD_FAILED
    assert "--verify-image" in checked.outcome.message and kube.verify_created == []


def test_a_missing_deployment_is_an_invalid_spec() -> None:
    kube = fake(RUNNING)
    kube.deployments.clear()
    checked = check(kube, VerifyPods())
    assert checked.outcome is not None and checked.outcome.reason is Reason.INVALID_SPEC
    assert "Deployment backend not found" in checked.outcome.message


def test_deleting_the_schema_deletes_its_verify_pods_but_not_a_lookalike() -> None:
    kube = fake(terminated(VERIFIED))
    ctx = kube.context(pods={})
    until_done(kube, ctx.verify_pods)
    check(kube, ctx.verify_pods)  # the next check's pod, under way
    lookalike(kube, "someone-elses", [RUNNING])
    asyncio.run(release(BODY, ctx, logging.getLogger("test")))
    assert kube.verify_deleted == kube.verify_created == ["verify-0", "verify-1"]
    assert list(kube.pods) == [("team", "someone-elses")]
