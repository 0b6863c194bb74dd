"""The pass, the pod path and the release over the one fake of the Kubernetes edge: what
a user would see on the pods, in status and in Events."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from schemagate.core.check.verdict import Verdict
from schemagate.core.gate.readiness import NEW_RELEASE_SETTLE
from schemagate.core.verify_pod import termination
from schemagate.core.wire.reasons import Reason
from schemagate.postgres import catalog
from schemagate.reconcile import Context, pod_seen, release
from schemagate.reconcile.batch import Batches
from schemagate.reconcile.loop import reconcile
from schemagate.reconcile.schedule import MIN_DELAY
from schemagate.reconcile.verify_in_pod import POLL
from tests.support.fake_kube import Clock, FakeKube
from tests.unit.test_verify_pod import deployment

NS, NAME = "team", "backend-schema"
KEY = (NS, NAME)
URL = "postgresql://app:hunter2@10.0.0.5/app"
SPEC = {"database": {"urlSecretRef": {"name": "db", "key": "url"}}, "tables": ["accounts"]}
IN_POD = {"database": {"urlSecretRef": {"name": "db", "key": "url"}, "verifyFrom": "Pod",
                       "verifyPod": {"fromDeployment": {"name": "backend", "container": "app"}}},
          "tables": ["accounts"]}
V1 = {"app": "backend", "pod-template-hash": "v1"}
LOG = logging.getLogger("test")


def verdict(reason: Reason) -> Verdict:
    return Verdict(verified=reason is Reason.VERIFIED, reason=reason,
                   message="all 1 declared tables" if reason is Reason.VERIFIED
                   else "accounts missing from schema public",
                   missing_tables=() if reason is Reason.VERIFIED else ("accounts",))


class Database:
    """Stands for `catalog.verify_many`: each ask answered with `reason`, checks counted."""

    def __init__(self, reason: Reason = Reason.VERIFIED) -> None:
        self.reason = reason
        self.checks = 0

    def __call__(self, url: str, asked: Sequence[catalog.Asked], timeout: float
                 ) -> list[Verdict]:
        self.checks += 1
        return [verdict(self.reason) for _ in asked]


def world(reason: Reason = Reason.VERIFIED, spec: dict[str, Any] | None = None
          ) -> tuple[FakeKube, Context, Database, Clock]:
    clock = Clock()
    kube = FakeKube(clock)
    kube.add_schema(NS, NAME, spec or SPEC)
    kube.add_secret(NS, "db", url=URL)
    kube.deployments[(NS, "backend")] = deployment()
    db = Database(reason)
    ctx = kube.context(batches=Batches(run=db, quiet=0, gather_at_most=0),
                       verify_image="schemagate:dev")
    return kube, ctx, db, clock


def one_pass(kube: FakeKube, ctx: Context, idle: bool = False) -> float:
    body = kube.database_schema(NS, NAME)
    assert body is not None
    return asyncio.run(reconcile(body, ctx, LOG, idle))


def ready(kube: FakeKube) -> dict[str, Any]:
    return next(c for c in kube.status(NS, NAME)["conditions"] if c["type"] == "Ready")


def gate_of(kube: FakeKube, pod: str) -> tuple[str, str] | None:
    condition = kube.condition(NS, pod, NAME)
    return None if condition is None else (condition["status"], condition["reason"])


def seen(kube: FakeKube, ctx: Context, pod: str) -> None:
    """The pod watch's event for `pod`, as `handlers.pod_changed` passes it on."""
    asyncio.run(pod_seen(kube.pods[(NS, pod)], ctx))


# ---- the pass -------------------------------------------------------------------------------


def test_a_verified_schema_opens_the_pods_that_existed_before_its_check() -> None:
    kube, ctx, db, clock = world()
    kube.add_pod(NS, "a", gates=(NAME,), labels=V1, created=clock.advance(-60))
    clock.advance(60)
    one_pass(kube, ctx)
    assert gate_of(kube, "a") == ("True", "Verified")
    assert ready(kube)["status"] == "True" and kube.status(NS, NAME)["gate"]["ready"] == 1


def test_the_status_says_why_and_each_transition_is_one_event() -> None:
    kube, ctx, db, clock = world(Reason.TABLES_MISSING)
    kube.add_pod(NS, "a", gates=(NAME,), labels=V1, created=clock.advance(-60))
    clock.advance(60)
    for _ in range(3):
        one_pass(kube, ctx)
        clock.advance(1)
    assert (ready(kube)["status"], ready(kube)["reason"]) == ("False", "TablesMissing")
    assert "accounts missing" in ready(kube)["message"]
    assert [e[1] for e in kube.events] == ["TablesMissing"]  # once, though checked 3 times
    assert len(kube.statuses) == 1 and db.checks == 3
    assert gate_of(kube, "a") == ("False", "TablesMissing")


def test_a_fix_is_one_more_event_and_opens_the_gate() -> None:
    kube, ctx, db, clock = world(Reason.TABLES_MISSING)
    kube.add_pod(NS, "a", gates=(NAME,), labels=V1, created=clock.advance(-60))
    clock.advance(60)
    one_pass(kube, ctx)
    db.reason = Reason.VERIFIED
    one_pass(kube, ctx)
    assert [e[1] for e in kube.events] == ["TablesMissing", "Verified"]
    assert ready(kube)["reason"] == "Verified" and gate_of(kube, "a") == ("True", "Verified")


def test_an_invalid_spec_is_said_in_status_and_reads_no_secret() -> None:
    kube, ctx, db, _ = world(spec={"database": {"urlSecretRef": {"name": "db"}}, "tables": []})
    one_pass(kube, ctx)
    assert ready(kube)["reason"] == "InvalidSpec" and "spec.database.urlSecretRef.key" in \
        ready(kube)["message"]
    assert kube.secret_reads == 0 and db.checks == 0


def test_a_missing_secret_is_said_and_no_database_is_checked() -> None:
    kube, ctx, db, _ = world()
    del kube.secrets[(NS, "db")]
    one_pass(kube, ctx)
    assert ready(kube)["reason"] == "SecretNotFound" and db.checks == 0


def test_the_url_never_reaches_status_events_or_pods() -> None:
    kube, ctx, db, clock = world(Reason.TABLES_MISSING)
    db.reason = Reason.TABLES_MISSING
    kube.add_pod(NS, "a", gates=(NAME,), labels=V1, created=clock.advance(-60))
    clock.advance(60)
    ctx.batches.run = lambda url, asked, timeout: [Verdict(
        verified=False, reason=Reason.TABLES_MISSING, message=f"missing at {url}",
        missing_tables=("accounts",)) for _ in asked]
    one_pass(kube, ctx)
    assert "hunter2" not in str(kube.statuses) + str(kube.events) + str(kube.pods)
    assert "missing at" in ready(kube)["message"]


def test_a_pass_on_the_watchs_copy_changes_no_pod_and_asks_for_a_full_pass_at_once() -> None:
    kube, ctx, db, clock = world()
    kube.add_pod(NS, "a", gates=(NAME,), labels=V1, created=clock.advance(-60))
    clock.advance(60)
    assert one_pass(kube, ctx, idle=True) == MIN_DELAY
    assert gate_of(kube, "a") is None and kube.statuses == []


# ---- the pod path ---------------------------------------------------------------------------


def test_a_new_pod_stays_closed_until_a_check_newer_than_it() -> None:
    kube, ctx, db, clock = world()
    kube.add_pod(NS, "a", gates=(NAME,), labels=V1, created=clock.advance(-60))
    clock.advance(60)
    one_pass(kube, ctx)
    wakeup = ctx.registry.looping(KEY)
    kube.add_pod(NS, "b", gates=(NAME,), labels=V1, created=clock.advance(1))  # a scale-up
    seen(kube, ctx, "b")
    assert gate_of(kube, "b") == ("False", "AwaitingFreshCheck")  # told, never opened
    assert wakeup.is_set()  # the loop checks at once for it
    clock.advance(1)
    one_pass(kube, ctx)
    assert gate_of(kube, "b") == ("True", "Verified")


def test_a_pod_created_while_the_check_runs_is_not_served_by_it() -> None:
    kube, ctx, db, clock = world()
    kube.add_pod(NS, "a", gates=(NAME,), labels=V1, created=clock.advance(-60))
    clock.advance(60)
    one_pass(kube, ctx)
    answer = ctx.batches.run

    def slow_check(url: str, asked: Sequence[catalog.Asked], timeout: float) -> list[Verdict]:
        kube.add_pod(NS, "b", gates=(NAME,), labels=V1, created=clock.advance(1))
        clock.advance(1)  # the database answers a second after the pod appeared
        return answer(url, asked, timeout)

    ctx.batches.run = slow_check
    one_pass(kube, ctx)
    assert gate_of(kube, "a") == ("True", "Verified")
    assert gate_of(kube, "b") != ("True", "Verified"), "opened by a check older than it"


def test_the_first_pods_of_a_release_wait_for_a_check_after_they_settle() -> None:
    kube, ctx, db, clock = world()
    kube.add_pod(NS, "a", gates=(NAME,), labels=V1, created=clock.advance(-60))
    clock.advance(60)
    one_pass(kube, ctx)
    created = clock.advance(1)
    kube.add_pod(NS, "v2", gates=(NAME,), labels={**V1, "pod-template-hash": "v2"},
                 created=created)
    seen(kube, ctx, "v2")
    opened_at = None
    for _ in range(40):  # the loop, its clock moved by each pass's delay
        started = clock.now
        delay = one_pass(kube, ctx)
        if gate_of(kube, "v2") == ("True", "Verified"):
            opened_at = started
            break
        assert gate_of(kube, "v2") == ("False", "AwaitingFreshCheck")
        clock.advance(delay)
    # A DatabaseSchema applied with the release has these seconds to be read first.
    assert opened_at is not None and created + NEW_RELEASE_SETTLE <= opened_at
    assert opened_at <= created + NEW_RELEASE_SETTLE + timedelta(seconds=1)


def test_a_pod_event_leaves_an_open_pod_alone_and_does_not_wake_the_loop() -> None:
    kube, ctx, db, clock = world()
    kube.add_pod(NS, "a", gates=(NAME,), labels=V1, created=clock.advance(-60))
    clock.advance(60)
    one_pass(kube, ctx)
    patches, wakeup = len(kube.condition_patches), ctx.registry.looping(KEY)
    seen(kube, ctx, "a")  # e.g. the kubelet's status update of a running pod
    assert len(kube.condition_patches) == patches and not wakeup.is_set()


def test_a_pod_gated_on_a_schema_that_does_not_exist_is_told_so() -> None:
    kube, ctx, db, clock = world()
    kube.add_pod(NS, "orphan", gates=("no-such-schema",))
    seen(kube, ctx, "orphan")
    condition = kube.condition(NS, "orphan", "no-such-schema")
    assert condition is not None and condition["status"] == "False"
    assert condition["reason"] == "DatabaseSchemaNotFound"


# ---- the release ----------------------------------------------------------------------------


def test_deleting_the_schema_opens_its_gates_for_good_and_says_so_once() -> None:
    kube, ctx, db, clock = world(Reason.TABLES_MISSING)
    for pod in ("a", "b"):
        kube.add_pod(NS, pod, gates=(NAME,), labels=V1, created=clock.advance(-60))
        clock.advance(60)
    one_pass(kube, ctx)
    body = kube.schemas.pop(KEY)
    assert asyncio.run(release(body, ctx, LOG)) == 2
    assert gate_of(kube, "a") == gate_of(kube, "b") == ("True", "GateReleased")
    assert [e[1] for e in kube.events] == ["TablesMissing", "GateReleased"]
    patches = len(kube.condition_patches)
    seen(kube, ctx, "a")  # a released pod's later events: it stays released
    assert len(kube.condition_patches) == patches and KEY not in ctx.registry.schemas


# ---- verifyFrom: Pod ------------------------------------------------------------------------


def finished(reason: Reason) -> dict[str, Any]:
    return {"phase": "Running", "containerStatuses": [{"name": "verify", "state": {
        "terminated": {"exitCode": 0, "message": termination.termination_message(
            verdict(reason))}}}]}


RUNNING = {"phase": "Running", "containerStatuses": [{"name": "verify", "state": {"running": {}}}]}


def test_a_check_in_a_pod_starts_it_returns_and_reads_it_on_a_later_pass() -> None:
    kube, ctx, db, clock = world(spec=IN_POD)
    kube.verify_script = [RUNNING, finished(Reason.VERIFIED)]
    kube.add_pod(NS, "a", gates=(NAME,), labels=V1, created=clock.advance(-60))
    clock.advance(60)
    assert one_pass(kube, ctx) == POLL  # started: the pass does not wait for it
    assert kube.verify_created == ["verify-0"] and kube.statuses == []
    clock.advance(2)
    assert one_pass(kube, ctx) == POLL  # still running
    clock.advance(2)
    one_pass(kube, ctx)
    assert kube.verify_created == ["verify-0"], "one pod for the check, never two"
    assert gate_of(kube, "a") == ("True", "Verified")
    assert ready(kube)["reason"] == "Verified" and db.checks == 0


def test_a_check_in_a_pod_serves_only_the_pods_that_existed_when_it_began() -> None:
    kube, ctx, db, clock = world(spec=IN_POD)
    kube.verify_script = [RUNNING] * 5 + [finished(Reason.VERIFIED)]
    kube.add_pod(NS, "a", gates=(NAME,), labels=V1, created=clock.advance(-60))
    clock.advance(60)
    one_pass(kube, ctx)  # the check begins
    kube.add_pod(NS, "b", gates=(NAME,), labels=V1, created=clock.advance(2))
    seen(kube, ctx, "b")
    while one_pass(kube, ctx) == POLL:  # its pod runs for longer than b takes to settle
        clock.advance(POLL)
    assert gate_of(kube, "a") == ("True", "Verified")
    assert gate_of(kube, "b") == ("False", "AwaitingFreshCheck"), "its verdict predates b"
    assert len(kube.verify_created) == 1


def test_a_verify_pod_under_way_when_the_schema_is_deleted_is_deleted_with_it() -> None:
    kube, ctx, db, clock = world(spec=IN_POD)
    kube.verify_script = [RUNNING]
    one_pass(kube, ctx)
    assert kube.under_way() == ["verify-0"]
    asyncio.run(release(kube.schemas.pop(KEY), ctx, LOG))
    assert kube.under_way() == [] and kube.verify_deleted == ["verify-0"]
