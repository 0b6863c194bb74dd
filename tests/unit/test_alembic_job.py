"""The run: Alembic migration Job: the operator's image, the ConfigMap's revision files,
the URL from the backend's Secret, and no rights at all."""

from __future__ import annotations

import json
from typing import Any

from schemagate.cli import build_parser
from schemagate.core.migration import alembic_job
from schemagate.core.wire.models import DatabaseSchemaSpec

IMAGE = "registry.example/schemagate:1.2.3"
FILES = {"3f2a9c_billing.py": "revision = '3f2a9c'\n", "7b1e44_invoices.py": "revision = 'x'\n"}


def spec(**alembic: Any) -> DatabaseSchemaSpec:
    return DatabaseSchemaSpec.model_validate({
        "database": {"urlSecretRef": {"name": "backend-db", "key": "DATABASE_URL"},
                     "schema": "billing"},
        "tables": ["invoices"],
        "migrations": {"run": "Alembic", "versionTable": "schema_version",
                       "alembic": {"configMapRef": {"name": "backend-migrations"},
                                   **alembic}}})


def build(files: dict[str, str] = FILES, rerun: str | None = None, generation: int = 4,
          **alembic: Any) -> dict[str, Any]:
    return alembic_job.alembic_job(schema="backend-schema", uid="u-1", generation=generation,
                                   spec=spec(**alembic), config_map="backend-migrations",
                                   files=files, image=IMAGE, rerun=rerun)


def pod(job: dict[str, Any]) -> dict[str, Any]:
    spec_: dict[str, Any] = job["spec"]["template"]["spec"]
    return spec_


def test_the_pod_has_no_rights_and_no_token() -> None:
    p = pod(build())
    assert p["serviceAccountName"] == alembic_job.SERVICE_ACCOUNT
    assert p["automountServiceAccountToken"] is False
    assert p["enableServiceLinks"] is False
    account = alembic_job.service_account("team-a")
    assert account["automountServiceAccountToken"] is False
    assert account["metadata"] == {"name": alembic_job.SERVICE_ACCOUNT, "namespace": "team-a",
                                   "labels": {"app.kubernetes.io/managed-by": "schemagate"}}


def test_the_pod_meets_the_restricted_pod_security_standard() -> None:
    p = pod(build())
    assert p["securityContext"]["runAsNonRoot"] is True
    assert p["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    (container,) = p["containers"]
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
        "runAsNonRoot": True, "capabilities": {"drop": ["ALL"]}}
    assert container["resources"]["limits"]["memory"] == alembic_job.MEMORY_LIMIT
    assert {v["name"] for v in p["volumes"]} == {"scripts", "scratch"}
    assert not any("hostPath" in v for v in p["volumes"])


def test_it_runs_schemagate_migrate_of_the_operators_image_with_the_url_from_the_secret(
) -> None:
    job = build()
    (container,) = pod(job)["containers"]
    assert container["image"] == IMAGE
    assert container["command"] == ["schemagate", "migrate"]
    assert container["env"] == [{"name": "DATABASE_URL", "valueFrom": {"secretKeyRef": {
        "name": "backend-db", "key": "DATABASE_URL"}}}]
    # The URL is nowhere in the Job: only the Secret's name and key.
    assert "postgresql" not in json.dumps(job)
    args = build_parser().parse_args(["migrate", *container["args"]])
    assert (args.schema, args.version_table, args.version_table_schema) == (
        "billing", "schema_version", "billing")
    assert str(args.scripts_dir) == alembic_job.SCRIPTS_DIR
    assert (args.lock_wait_seconds, args.lock_timeout) == (10, "5s")


def test_exactly_the_keys_the_operator_read_are_mounted_read_only() -> None:
    p = pod(build())
    scripts = next(v for v in p["volumes"] if v["name"] == "scripts")["configMap"]
    assert scripts["name"] == "backend-migrations"
    assert scripts["items"] == [{"key": k, "path": k} for k in sorted(FILES)]
    (container,) = p["containers"]
    mount = next(m for m in container["volumeMounts"] if m["name"] == "scripts")
    assert mount["readOnly"] is True


def test_bounded_by_its_deadline_and_retried_only_when_it_says_so() -> None:
    job = build(activeDeadlineSeconds=30)
    assert job["spec"]["activeDeadlineSeconds"] == 30
    assert job["spec"]["backoffLimit"] == alembic_job.RETRIES == 2  # the retry cap
    (rule,) = job["spec"]["podFailurePolicy"]["rules"]
    assert rule == {"action": "FailJob", "onExitCodes": {
        "containerName": "migrate", "operator": "NotIn", "values": [alembic_job.EXIT_RETRY]}}
    assert pod(job)["restartPolicy"] == "Never"  # what podFailurePolicy requires
    assert spec().migrations.alembic is not None
    assert spec().migrations.alembic.active_deadline_seconds == 1200


def test_one_job_per_change_of_the_revision_files() -> None:
    first = build()["metadata"]["name"]
    assert build()["metadata"]["name"] == first
    changed = {**FILES, "7b1e44_invoices.py": "revision = 'y'\n"}
    assert build(changed)["metadata"]["name"] != first
    assert build(rerun="2")["metadata"]["name"] != first
    assert build(generation=5)["metadata"]["name"] != first
    assert build(activeDeadlineSeconds=60)["metadata"]["name"] != first


def test_the_job_is_owned_by_its_schema_and_never_looks_like_a_backend_pod() -> None:
    job = build()
    assert job["metadata"]["ownerReferences"][0]["name"] == "backend-schema"
    labels = job["spec"]["template"]["metadata"]["labels"]
    assert labels == {"schemagate.io/migration-of": "backend-schema"}
    assert "schemagate.io/schema" not in labels  # gate injection would hold it on itself
