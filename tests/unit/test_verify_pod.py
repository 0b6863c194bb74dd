"""verifyFrom: Pod - the verify pod is the backend's pod with our check in it, and what it
says comes back whole within Kubernetes' 4 KiB."""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from pydantic import ValidationError

from schemagate import cli
from schemagate.core.check.columns import ColumnMismatch, ColumnRequirement, FoundColumn
from schemagate.core.check.requirement import requirement_for
from schemagate.core.check.verdict import Fingerprint, Place, Verdict
from schemagate.core.clone.consent import CLONE_FOR
from schemagate.core.revisions.applied import SCHEMA_LABEL
from schemagate.core.status.outcome import Outcome
from schemagate.core.verify_pod import loopback, manifest, progress, termination
from schemagate.core.wire.models import DatabaseSchemaSpec, GateStatus
from schemagate.core.wire.reasons import Reason
from schemagate.reconcile import Registry
from schemagate.reconcile import loop as reconcile_loop
from schemagate.reconcile.batch import Batches
from schemagate.reconcile.schedule import RECHECK_IN_POD, RECHECK_WHILE_PODS_WAIT, next_delay
from tests.support.fake_kube import FakeKube

NOW = datetime(2026, 12, 2, 5, 0, tzinfo=UTC)
IMAGE = "europe-docker.pkg.dev/p/r/schemagate:0.1.0"


def spec(**database: Any) -> DatabaseSchemaSpec:
    body: dict[str, Any] = {
        "database": {"urlSecretRef": {"name": "backend-db", "key": "DATABASE_URL"},
                     "verifyFrom": "Pod",
                     "verifyPod": {"fromDeployment": {"name": "backend", "container": "app"}},
                     **database},
        "tables": ["credit_transactions", "agent_executions", "subscriptions"],
        "migrations": {"expectedRevisions": ["3f2a9c"]}}
    return DatabaseSchemaSpec.model_validate(body)


def deployment(opted_in: bool = True) -> dict[str, Any]:
    """A gated backend (the schema label on it and on its pods); `opted_in`: its owners'
    consent to the verify pods, the annotation on the Deployment."""
    annotations = {CLONE_FOR: "backend-schema"} if opted_in else {}
    return {"metadata": {"name": "backend", "labels": {SCHEMA_LABEL: "backend-schema"},
                         "annotations": annotations}, "spec": {"template": {
        "metadata": {"labels": {"app": "backend", SCHEMA_LABEL: "backend-schema"}},
        "spec": {
            "serviceAccountName": "backend",
            "securityContext": {"runAsNonRoot": True, "runAsUser": 1000},
            "readinessGates": [{"conditionType": "schemagate.io/backend-schema"}],
            "initContainers": [
                {"name": "wait-for-schema", "image": "busybox"},
                {"name": "cloud-sql-proxy", "image": "cloud-sql-proxy:2", "restartPolicy": "Always",
                 "startupProbe": {"httpGet": {"path": "/startup", "port": 9090}}}],
            "containers": [
                {"name": "app", "image": "backend:1.2", "command": ["gunicorn"],
                 "envFrom": [{"configMapRef": {"name": "backend-settings"}}],
                 "env": [{"name": "DATABASE_URL", "valueFrom": {"secretKeyRef": {
                     "name": "backend-db", "key": "DATABASE_URL"}}},
                         {"name": "PGSSLMODE", "value": "disable"}],
                 "volumeMounts": [{"name": "certs", "mountPath": "/certs"}],
                 "readinessProbe": {"httpGet": {"path": "/healthz", "port": 8000}},
                 "ports": [{"containerPort": 8000}]},
                {"name": "metrics", "image": "exporter", "readinessProbe": {"tcpSocket": {}}}],
            "volumes": [{"name": "certs", "secret": {"secretName": "certs"}},
                        {"name": "cache", "emptyDir": {}}]}}}}


def build(s: DatabaseSchemaSpec | None = None, d: dict[str, Any] | None = None) -> dict[str, Any]:
    return manifest.verify_pod(schema="backend-schema", uid="u-1", spec=s or spec(),
                         deployment=d or deployment(), image=IMAGE)


def test_the_verify_pod_runs_our_check_with_the_backends_identity_sidecars_and_env() -> None:
    pod = build()
    body = pod["spec"]
    assert body["serviceAccountName"] == "backend"
    assert [c["name"] for c in body["initContainers"]] == ["cloud-sql-proxy", "metrics"]
    assert all(c["restartPolicy"] == "Always" for c in body["initContainers"])
    assert "startupProbe" in body["initContainers"][0], "the check waits for the proxy"
    (verify,) = body["containers"]
    assert verify["image"] == IMAGE and verify["command"] == ["schemagate"]
    assert verify["args"][:2] == ["verify", "--json"]
    assert "--table=credit_transactions" in verify["args"]
    assert "--expected-revision=3f2a9c" in verify["args"]
    assert verify["envFrom"] == [{"configMapRef": {"name": "backend-settings"}}]
    assert {"name": "PGSSLMODE", "value": "disable"} in verify["env"]
    assert {"name": "certs", "mountPath": "/certs"} in verify["volumeMounts"]
    assert [v["name"] for v in body["volumes"]] == ["certs", "schemagate-no-token",
                                                  "schemagate-scratch"]
    assert body["restartPolicy"] == "Never" and body["activeDeadlineSeconds"] > 120


def test_the_verify_pod_connects_with_the_specs_own_timeout() -> None:
    (verify,) = build(spec(connectTimeoutSeconds=17))["spec"]["containers"]
    assert "--connect-timeout=17" in verify["args"]
    assert "--connect-timeout=5" in build()["spec"]["containers"][0]["args"]


def test_the_url_comes_from_the_secret_and_never_into_the_pod() -> None:
    (verify,) = build()["spec"]["containers"]
    url = next(e for e in verify["env"] if e["name"] == manifest.URL_ENV)
    assert url == {"name": manifest.URL_ENV, "valueFrom": {"secretKeyRef": {
        "name": "backend-db", "key": "DATABASE_URL"}}}
    args = verify["args"]
    assert args[args.index("--url-env") + 1] == manifest.URL_ENV
    assert not any("postgres" in a for a in args)


def test_a_password_written_into_the_deployment_stays_behind() -> None:
    from schemagate.core.tenancy.scrub import Scrubber

    scrubber = Scrubber()
    scrubber.learn("postgresql://backend:hunter2@10.0.0.5/app")
    d = deployment()
    d["spec"]["template"]["spec"]["containers"][0]["env"].append(
        {"name": "LEGACY_URL", "value": "postgresql://backend:hunter2@10.0.0.5/app"})
    pod = manifest.verify_pod(schema="backend-schema", uid="u", spec=spec(), deployment=d,
                        image=IMAGE, clean=lambda v: scrubber.scrub(v) == v)
    assert "hunter2" not in json.dumps(pod)
    assert {"name": "PGSSLMODE", "value": "disable"} in pod["spec"]["containers"][0]["env"]


def test_the_verify_container_is_restricted_and_holds_no_token() -> None:
    (verify,) = build()["spec"]["containers"]
    assert verify["securityContext"] == {
        "runAsNonRoot": True, "allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "RuntimeDefault"}}
    assert {"name": "schemagate-no-token", "mountPath": manifest.TOKEN_PATH, "readOnly": True} in \
        verify["volumeMounts"]
    assert build()["spec"]["securityContext"] == {"runAsNonRoot": True, "runAsUser": 1000}


def test_no_service_selects_it_and_no_gate_holds_it() -> None:
    pod = build()
    assert pod["metadata"]["labels"] == {manifest.VERIFY_LABEL: "backend-schema"}
    assert "readinessGates" not in pod["spec"]
    assert pod["metadata"]["generateName"] == "backend-schema-verify-"
    assert pod["metadata"]["ownerReferences"][0]["uid"] == "u-1"


def test_the_same_check_is_the_same_hash() -> None:
    first, again = build(), build()
    assert first["metadata"]["annotations"] == again["metadata"]["annotations"]
    changed = deployment()
    changed["spec"]["template"]["spec"]["initContainers"][1]["image"] = "cloud-sql-proxy:3"
    assert build(d=changed)["metadata"]["annotations"][manifest.HASH_ANNOTATION] != \
        first["metadata"]["annotations"][manifest.HASH_ANNOTATION]


def test_the_deployment_must_have_consented() -> None:
    with pytest.raises(manifest.InvalidVerifyPod, match="has not consented to verification"):
        build(d=deployment(opted_in=False))


def test_a_missing_container_is_named() -> None:
    s = spec(verifyPod={"fromDeployment": {"name": "backend", "container": "worker"}})
    with pytest.raises(manifest.InvalidVerifyPod, match="no container worker .*app, metrics"):
        build(s)


def test_declared_columns_ride_in_an_annotation_read_through_the_downward_api() -> None:
    s = DatabaseSchemaSpec.model_validate({
        **spec().model_dump(by_alias=True, exclude_none=True),
        "columns": [{"table": "subscriptions", "columns": [{"name": "id", "type": "bigint"}]}]})
    pod = build(s)
    (verify,) = pod["spec"]["containers"]
    assert f"--columns-file={manifest.COLUMNS_DIR}/columns.json" in verify["args"]
    declared = json.loads(pod["metadata"]["annotations"][manifest.COLUMNS_ANNOTATION])
    assert declared == {"columns": [{"table": "subscriptions",
                                     "columns": [{"name": "id", "type": "bigint"}]}]}


def test_verify_from_pod_needs_its_pod_and_no_operator_side_migrations() -> None:
    with pytest.raises(ValidationError, match="verifyPod is not set"):
        DatabaseSchemaSpec.model_validate({"database": {
            "urlSecretRef": {"name": "s", "key": "k"}, "verifyFrom": "Pod"}, "tables": ["t"]})
    with pytest.raises(ValidationError, match="run: Alembic runs the migrations from the"):
        DatabaseSchemaSpec.model_validate({
            **spec().model_dump(by_alias=True, exclude_none=True),
            "migrations": {"run": "Alembic", "alembic": {"configMapRef": {"name": "m"}}}})


FINGERPRINT = Fingerprint(host="10.0.0.5", port=5432, database="app", user="backend@p.iam",
                          search_path='"$user", public', server_version="16.4",
                          system_identifier="7300000000000000001")


def test_ten_thousand_missing_tables_fit_in_4_kib_as_whole_json() -> None:
    missing = tuple(f"table_with_a_rather_long_name_{i:05d}" for i in range(10_000))
    verdict = Verdict(verified=False, reason=Reason.NO_REVISION, message="x" * 20_000,
                      missing_tables=missing, current_revisions=frozenset(),
                      found_elsewhere=tuple(Place(t, "migrator", "app") for t in missing),
                      fingerprint=FINGERPRINT)
    text = termination.termination_message(verdict)
    assert len(text.encode()) <= termination.TERMINATION_LIMIT
    body = json.loads(text)
    assert body["missing"]["count"] == 10_000 and body["elsewhere"]["count"] == 10_000
    assert body["missing"]["first"][0] == missing[0] and body["missing"]["first"]
    assert body["revision"] == {"current": [], "expected": None}
    assert body["database"]["user"] == "backend@p.iam"


def test_the_verdict_comes_back_as_it_was() -> None:
    s = spec()
    requirement = requirement_for(s)
    verdict = Verdict(verified=True, reason=Reason.VERIFIED, message="all 3 declared tables",
                      current_revisions=frozenset({"3f2a9c"}),
                      expected_revisions=frozenset({"3f2a9c"}), fingerprint=FINGERPRINT,
                      duration_ms=12.5)
    text = termination.termination_message(verdict)
    assert termination.read_verdict(text, requirement) == verdict


def test_column_mismatches_come_back_against_the_declaration() -> None:
    declared = ColumnRequirement("subscriptions", "id", "bigint", False)
    s = DatabaseSchemaSpec.model_validate({
        **spec().model_dump(by_alias=True, exclude_none=True),
        "columns": [{"table": "subscriptions",
                     "columns": [{"name": "id", "type": "bigint", "nullable": False}]}]})
    verdict = Verdict(verified=False, reason=Reason.COLUMNS_MISMATCH, message="m",
                      column_mismatches=(ColumnMismatch(declared, FoundColumn("integer", False)),),
                      fingerprint=FINGERPRINT)
    back = termination.read_verdict(termination.termination_message(verdict), requirement_for(s))
    assert back.column_mismatches == verdict.column_mismatches


@pytest.mark.parametrize("text", ["", "Traceback (most recent call last):", '{"v": 2}',
                                  '{"v": 1, "reason": "Nonsense"}'])
def test_anything_else_is_no_verdict(text: str) -> None:
    with pytest.raises(termination.NoVerdict):
        termination.read_verdict(text, requirement_for(spec()))


def pod(created: datetime = NOW, **status: Any) -> dict[str, Any]:
    return {"metadata": {"name": "backend-schema-verify-x7k2p",
                         "creationTimestamp": created.strftime("%Y-%m-%dT%H:%M:%SZ")},
            "status": status}


def test_a_finished_check_is_done_with_its_message() -> None:
    done = progress.progress(pod(containerStatuses=[{"name": "verify", "state": {"terminated": {
        "exitCode": 1, "message": '{"v":1}'}}}]), NOW)
    assert (done.running, done.exit_code, done.message) == (False, 1, '{"v":1}')


def test_an_image_that_cannot_be_pulled_fails_at_once_naming_the_container() -> None:
    waiting = pod(containerStatuses=[{"name": "verify", "state": {"waiting": {
        "reason": "ImagePullBackOff", "message": 'Back-off pulling image "schemagate:nope"'}}}])
    failed = progress.progress(waiting, NOW + timedelta(seconds=3)).failed
    assert failed is not None
    assert "cannot start: container verify is ImagePullBackOff" in failed
    assert "schemagate:nope" in failed


def test_an_unschedulable_pod_ends_at_the_deadline_with_the_schedulers_words() -> None:
    pending = pod(phase="Pending", conditions=[{
        "type": "PodScheduled", "status": "False", "reason": "Unschedulable",
        "message": "0/3 nodes are available: 3 Insufficient memory."}])
    assert progress.progress(pending, NOW + timedelta(seconds=30)).running
    failed = progress.progress(pending, NOW + manifest.DEADLINE).failed
    assert failed is not None and "within 120 s: not scheduled (Unschedulable" in failed
    assert "Insufficient memory" in failed


def test_a_sidecar_that_never_starts_is_named_at_the_deadline() -> None:
    stuck = pod(phase="Pending", conditions=[{"type": "PodScheduled", "status": "True"}],
                initContainerStatuses=[{"name": "cloud-sql-proxy", "started": False,
                                        "state": {"running": {}}}],
                containerStatuses=[{"name": "verify", "state": {"waiting": {
                    "reason": "PodInitializing"}}}])
    failed = progress.progress(stuck, NOW + manifest.DEADLINE).failed
    assert failed is not None and "sidecar cloud-sql-proxy has not started" in failed


def test_a_pod_failed_by_the_kubelet_says_so() -> None:
    failed = progress.progress(pod(phase="Failed", reason="DeadlineExceeded",
                             message="Pod was active on the node longer than allowed"), NOW)
    assert failed.failed is not None and "DeadlineExceeded" in failed.failed


def named(name: str, minute: int, finished: bool) -> dict[str, Any]:
    state = {"terminated": {"exitCode": 0}} if finished else {"running": {}}
    return {"metadata": {"name": name, "creationTimestamp": f"2026-12-02T05:{minute:02d}:00Z"},
            "status": {"containerStatuses": [{"name": "verify", "state": state}]}}


def test_the_last_few_finished_pods_stay_and_no_second_one_runs() -> None:
    pods = [named(f"p{i}", i, finished=True) for i in range(6)] + [named("live", 7, False),
                                                                    named("other", 8, False)]
    assert progress.to_delete(pods, current="live") == ["other", "p2", "p1", "p0"]
    assert progress.to_delete(pods[:6], keep=2) == ["p3", "p2", "p1", "p0"]


@pytest.mark.parametrize("host", ["127.0.0.1", "127.9.8.7", "::1", "[::1]", "localhost",
                                  "LOCALHOST.", "db.localhost", "/cloudsql/p:r:i", None, ""])
def test_addresses_only_the_backends_pod_reaches(host: str | None) -> None:
    assert loopback.local_only(host) is not None


@pytest.mark.parametrize("host", ["10.0.0.5", "db.example.com", "2001:db8::1", "localhostx"])
def test_addresses_the_operator_may_reach(host: str) -> None:
    assert loopback.local_only(host) is None


@pytest.mark.parametrize("url", ["postgresql://backend@127.0.0.1:5432/app",
                                 "postgresql://backend@localhost/app",
                                 "postgresql://backend@/app?host=/cloudsql/p:r:i"])
def test_a_loopback_url_checked_from_the_operator_fails_at_once_naming_verify_from_pod(
        url: str) -> None:
    kube = FakeKube()
    body = kube.add_schema("team", "backend-schema", {
        "database": {"urlSecretRef": {"name": "backend-db", "key": "DATABASE_URL"}},
        "tables": ["t"]})
    kube.add_secret("team", "backend-db", DATABASE_URL=url)
    connections: list[str] = []
    ctx = kube.context(batches=Batches(run=lambda url, *_: connections.append(url) or []))
    asyncio.run(reconcile_loop.reconcile(body, ctx, logging.getLogger("test")))
    ready = kube.status("team", "backend-schema")["conditions"][0]
    assert ready["reason"] == Reason.INVALID_SPEC.value and connections == []
    assert "only be reached from the backend's own pods" in ready["message"]
    assert "verifyFrom: Pod" in ready["message"]


def test_checks_in_pods_are_not_started_twice_a_second_while_pods_wait() -> None:
    waiting = GateStatus(condition_type="schemagate.io/backend-schema", pods=2, ready=0)
    verdict = Outcome(Reason.NO_REVISION, "m")
    operator_side = DatabaseSchemaSpec.model_validate({
        "database": {"urlSecretRef": {"name": "s", "key": "k"}}, "tables": ["t"]})
    assert next_delay(operator_side, verdict, waiting) == RECHECK_WHILE_PODS_WAIT
    assert next_delay(spec(), verdict, waiting) == RECHECK_IN_POD
    assert next_delay(spec(), verdict, waiting, sooner=2.0) == RECHECK_IN_POD
    assert next_delay(spec(), Outcome(Reason.VERIFIED, "m"),
                      GateStatus(condition_type="c", pods=2, ready=2)) == 30
    assert next_delay(spec(), Outcome(Reason.VERIFY_POD_FAILED, "m"), waiting) == 30


def test_only_a_new_generation_of_a_cloned_deployment_wakes_its_schema() -> None:
    registry = Registry()
    key = ("team", "backend-schema")
    wakeup = registry.looping(key)
    registry.watch(key, spec())
    registry.deployment_seen("team", "backend", 4)
    registry.deployment_seen("team", "backend", 4)  # a rollout's status updates
    registry.deployment_seen("team", "other", 1)
    registry.deployment_seen("team", "other", 2)
    assert not wakeup.is_set()
    registry.deployment_seen("team", "backend", 5)
    assert wakeup.is_set()


def test_a_cloned_deployment_created_after_its_schema_wakes_it_but_not_the_first_listing(
        ) -> None:
    """A schema whose Deployment does not exist yet is InvalidSpec, looked at again only on
    its interval: the Deployment's creation must wake it. An operator that starts lists
    every Deployment: that wakes nothing (it would start a verify pod per schema)."""
    registry = Registry()
    key = ("team", "backend-schema")
    wakeup = registry.looping(key)
    registry.watch(key, spec())
    registry.deployment_seen("team", "backend", (1, None))  # listed at start
    assert not wakeup.is_set()
    registry.deployment_seen("team", "backend", None)  # deleted
    registry.deployment_seen("team", "backend", (1, None), created=True)
    assert wakeup.is_set()


def test_consenting_on_the_deployment_of_a_migration_job_wakes_its_schema() -> None:
    registry = Registry()
    key = ("team", "backend-schema")
    wakeup = registry.looping(key)
    registry.watch(key, DatabaseSchemaSpec.model_validate({
        "database": {"urlSecretRef": {"name": "s", "key": "k"}}, "tables": ["t"],
        "migrations": {"run": "Job", "job": {"fromDeployment": {"name": "backend"},
                                             "command": ["alembic", "upgrade", "head"]}}}))
    registry.deployment_seen("team", "backend", (3, None))
    assert not wakeup.is_set()
    registry.deployment_seen("team", "backend", (3, "backend-schema"))
    assert wakeup.is_set()


def test_verify_writes_its_verdict_for_the_kubelet_even_on_bad_input(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SCHEMAGATE_DATABASE_URL", raising=False)
    message = tmp_path / "termination-log"
    status = cli.main(["verify", "--json", "--url-env", "SCHEMAGATE_DATABASE_URL",
                       "--termination-message-path", str(message), "--table", "t"])
    assert status == cli.EXIT_USAGE
    body = json.loads(message.read_text())
    assert body["reason"] == "InvalidSpec" and "SCHEMAGATE_DATABASE_URL is not set" in \
        body["message"]


def test_the_gke_example_gives_a_verify_pod_with_the_proxy_and_the_iam_identity() -> None:
    import yaml

    folder = Path(__file__).resolve().parents[2] / "examples" / "gke-cloudsql"
    schema = yaml.safe_load((folder / "databaseschema.yaml").read_text())
    backend = yaml.safe_load((folder / "deployment.yaml").read_text())
    s = DatabaseSchemaSpec.model_validate(schema["spec"])
    pod = manifest.verify_pod(schema=schema["metadata"]["name"], uid="u", spec=s,
                              deployment=backend, image=IMAGE)["spec"]
    assert pod["serviceAccountName"] == "backend"
    assert [c["name"] for c in pod["initContainers"]] == ["cloud-sql-proxy"]
    url = yaml.safe_load((folder / "secret.yaml").read_text())["stringData"]["DATABASE_URL"]
    parts = urlsplit(url)
    assert loopback.local_only(parts.hostname) is not None and parts.password is None
