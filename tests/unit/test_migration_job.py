"""The migration Job runs with the backend's own settings, and only what it needs."""

from typing import Any

import pytest

from schemagate.core.clone.consent import CLONE_FOR
from schemagate.core.migration import job as jobs
from schemagate.core.wire.models import JobSpec


def deployment() -> dict[str, Any]:
    # Its owners consent to migrations by backend-schema (the annotation).
    opted_in = {"name": "backend", "labels": {jobs.SCHEMA_LABEL: "backend-schema"},
                "annotations": {CLONE_FOR: "backend-schema"}}
    return {"metadata": opted_in, "spec": {"template": {
        "metadata": {"labels": {"app": "backend"}},
        "spec": {
            "serviceAccountName": "backend",
            "initContainers": [{"name": "wait-for-schema", "image": "busybox"},
                               {"name": "proxy", "image": "cloud-sql-proxy",
                                "restartPolicy": "Always"}],
            "containers": [
                {"name": "app", "image": "backend:1.2", "command": ["gunicorn"],
                 "envFrom": [{"secretRef": {"name": "backend-db"}}],
                 "env": [{"name": "MODE", "value": "web"}],
                 "volumeMounts": [{"name": "config", "mountPath": "/etc/app"}],
                 "readinessProbe": {"httpGet": {"path": "/healthz", "port": 8000}},
                 "ports": [{"containerPort": 8000}]},
                {"name": "metrics", "image": "exporter", "readinessProbe": {"tcpSocket": {}}},
            ],
            "volumes": [{"name": "config", "configMap": {"name": "app"}},
                        {"name": "cache", "emptyDir": {}}]}}}}


def spec(**kw: Any) -> JobSpec:
    return JobSpec.model_validate({"fromDeployment": {"name": "backend", "container": "app"},
                                   "command": ["alembic", "upgrade", "heads"], **kw})


def build(rerun: str | None = None, **kw: Any) -> dict[str, Any]:
    return jobs.migration_job(schema="backend-schema", uid="u-1", generation=3, job=spec(**kw),
                              deployment=deployment(), rerun=rerun)


def test_the_migrator_is_the_backend_container_with_the_spec_command() -> None:
    pod = build()["spec"]["template"]["spec"]
    (migrator,) = pod["containers"]
    assert migrator["image"] == "backend:1.2"
    assert migrator["command"] == ["alembic", "upgrade", "heads"]
    assert migrator["envFrom"] == [{"secretRef": {"name": "backend-db"}}]
    assert "readinessProbe" not in migrator and "ports" not in migrator
    assert pod["serviceAccountName"] == "backend" and pod["restartPolicy"] == "Never"
    assert [v["name"] for v in pod["volumes"]] == ["config"]


def test_sidecars_come_along_and_init_waiters_stay_behind() -> None:
    pod = build()["spec"]["template"]["spec"]
    names = [c["name"] for c in pod["initContainers"]]
    assert names == ["proxy", "metrics"]
    assert all(c["restartPolicy"] == "Always" for c in pod["initContainers"])


def test_the_job_never_carries_the_backend_labels() -> None:
    job = build()
    assert job["spec"]["template"]["metadata"]["labels"] == {jobs.MIGRATION_LABEL:
                                                             "backend-schema"}
    assert job["metadata"]["ownerReferences"][0]["uid"] == "u-1"


def test_one_job_per_change() -> None:
    assert build()["metadata"]["name"] == build()["metadata"]["name"]
    assert build(rerun="1")["metadata"]["name"] != build()["metadata"]["name"]
    assert build(backoffLimit=2)["metadata"]["name"] != build()["metadata"]["name"]
    assert build()["metadata"]["name"].startswith("backend-schema-migrate-3-")
    long = jobs.job_name("x" * 80, 12, "abcdef0123")
    assert len(long) <= 63 and long.endswith("-migrate-12-abcdef0123")


def test_a_missing_container_is_named() -> None:
    with pytest.raises(jobs.InvalidJobSource, match="no container worker .*app, metrics"):
        jobs.migration_job(schema="backend-schema", uid="u", generation=1,
                           deployment=deployment(),
                           job=JobSpec.model_validate({
                               "fromDeployment": {"name": "backend", "container": "worker"},
                               "command": ["x"]}), rerun=None)


@pytest.mark.parametrize("annotations", [{}, {CLONE_FOR: "other-schema"},
                                         {"app": "backend-schema"}])
def test_a_deployment_whose_owners_did_not_consent_runs_no_job(
        annotations: dict[str, str]) -> None:
    source = deployment()  # the schema label on it and on its pods: no consent
    source["metadata"]["annotations"] = annotations
    source["spec"]["template"]["metadata"]["labels"][jobs.SCHEMA_LABEL] = "backend-schema"
    with pytest.raises(jobs.InvalidJobSource) as refused:
        jobs.migration_job(schema="backend-schema", uid="u", generation=1, deployment=source,
                           job=spec(), rerun=None)
    assert str(refused.value).startswith(
        "Deployment backend has not consented to migrations by DatabaseSchema backend-schema")
    assert "deployment/backend schemagate.io/clone-for=" in str(refused.value)


@pytest.mark.parametrize(("conditions", "state"), [
    ([], "Running"),
    ([{"type": "Complete", "status": "True"}], "Succeeded"),
    ([{"type": "Failed", "status": "True"}], "Failed"),
    ([{"type": "FailureTarget", "status": "True"}], "Failed"),
])
def test_job_state(conditions: list[dict[str, str]], state: str) -> None:
    assert jobs.job_state({"status": {"conditions": conditions}}) == state


def test_the_snapshot_before_the_run_rides_on_the_job() -> None:
    from schemagate.core.wire.models import MigrationSnapshot

    before = MigrationSnapshot(revision=None, tables_present=1)
    manifest = jobs.with_snapshot({"metadata": {"name": "j", "annotations": {"a": "b"}}},
                                  before)
    assert manifest["metadata"]["annotations"]["a"] == "b"
    assert jobs.snapshot_of(manifest) == before
    assert jobs.snapshot_of({"metadata": {"annotations": {jobs.SNAPSHOT_ANNOTATION: "{"}}}) \
        is None
    assert jobs.snapshot_of({"metadata": {}}) is None
def test_a_failing_migrator_leaves_its_last_words_even_with_the_servers_default_policy(
) -> None:
    # The API server defaults every container to `File`: a failed alembic writes no file.
    source = deployment()
    source["spec"]["template"]["spec"]["containers"][0]["terminationMessagePolicy"] = "File"
    pod = jobs.migration_job(schema="backend-schema", uid="u-1", generation=3, job=spec(),
                             deployment=source, rerun=None)["spec"]["template"]["spec"]
    assert pod["containers"][0]["terminationMessagePolicy"] == "FallbackToLogsOnError"


def opted_in(schema: str) -> dict[str, Any]:
    source = deployment()
    source["metadata"]["annotations"] = {CLONE_FOR: schema}
    return source


def test_a_long_schema_name_gets_a_job_and_labels_the_api_server_accepts() -> None:
    long_a, long_b = "a" * 70 + "-one", "a" * 70 + "-two"
    with pytest.raises(jobs.InvalidJobSource, match=f"{CLONE_FOR}=backend-schema,{long_a}\\)"):
        jobs.migration_job(schema=long_a, uid="u", generation=3, job=spec(),
                           deployment=deployment(), rerun=None)
    job_a = jobs.migration_job(schema=long_a, uid="u", generation=3, job=spec(),
                               deployment=opted_in(long_a), rerun=None)
    job_b = jobs.migration_job(schema=long_b, uid="u", generation=3, job=spec(),
                               deployment=opted_in(long_b), rerun=None)
    names = [job_a["metadata"]["name"], job_b["metadata"]["name"]]
    labels = [job_a["metadata"]["labels"][jobs.MIGRATION_LABEL],
              job_b["spec"]["template"]["metadata"]["labels"][jobs.MIGRATION_LABEL]]
    for value in names + labels:
        assert len(value) <= 63 and value[0].isalnum() and value[-1].isalnum()
    assert names[0] != names[1] and labels[0] != labels[1]
    short = jobs.migration_job(schema="backend-schema", uid="u", generation=3, job=spec(),
                               deployment=deployment(), rerun=None)
    assert short["metadata"]["labels"][jobs.MIGRATION_LABEL] == "backend-schema"
