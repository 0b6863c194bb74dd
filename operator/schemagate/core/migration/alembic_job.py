"""The migration Job of `run: Alembic` (pure): the tenant's revision files run here, in a
pod of the operator's own image, never in the operator.

What the pod has: the revision files of the ConfigMap (exactly the keys the operator
read, mounted read-only), the database URL from the backend's Secret (a secretKeyRef,
never a literal in the spec or the arguments), a scratch directory, and nothing else:
a ServiceAccount without rights and no token mounted, no Service links, the
"restricted" Pod Security Standard, a memory bound and `activeDeadlineSeconds`. The
command is `schemagate migrate`, which takes the same advisory lock and timeouts the
operator took when it ran Alembic itself.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from schemagate.core.migration.job import (
    HASH_ANNOTATION,
    MIGRATION_LABEL,
    job_name,
    owner_reference,
)
from schemagate.core.wire.models import DatabaseSchemaSpec

JSON = dict[str, Any]

#: The ServiceAccount of every Alembic migration pod: created by the operator in each
#: namespace that needs it, bound to no Role, its token never mounted.
SERVICE_ACCOUNT = "schemagate-migrator"
CONTAINER = "migrate"
SCRIPTS_DIR = "/schemagate/scripts"
SCRATCH_DIR = "/tmp"
URL_ENV = "DATABASE_URL"
#: `schemagate migrate` exits so when a later attempt may pass (the lock busy, a lock
#: not granted within lock_timeout, a deadlock, the database unreachable). Any other
#: exit fails the Job at once; this one is retried, at most RETRIES times.
EXIT_RETRY = 75
RETRIES = 2
#: The advisory lock and timeouts of the run (what the operator used in process).
LOCK_WAIT_SECONDS = 10
LOCK_TIMEOUT = "5s"
STATEMENT_TIMEOUT_SECONDS = 900
#: The pod's bounds: Python, SQLAlchemy and Alembic need well under this.
MEMORY_LIMIT = "256Mi"
SCRATCH_LIMIT = "64Mi"
#: A SIGTERM ends the run at once (the server rolls the transaction back); waiting the
#: default 30 s would only keep the lock longer.
GRACE_SECONDS = 5
UID = 10001  # the image's numeric user (Dockerfile)


def scripts_digest(files: Mapping[str, str]) -> str:
    """What the Job will run, as a hash: a change to any revision file is a new Job."""
    material = json.dumps(dict(sorted(files.items())), separators=(",", ":"))
    return hashlib.sha256(material.encode()).hexdigest()


def migrate_args(spec: DatabaseSchemaSpec) -> list[str]:
    """`schemagate migrate`'s arguments: where, never who (the URL is in the env)."""
    statement_timeout = min(STATEMENT_TIMEOUT_SECONDS,
                            spec.migrations.alembic.active_deadline_seconds
                            if spec.migrations.alembic else STATEMENT_TIMEOUT_SECONDS)
    return ["--scripts-dir", SCRIPTS_DIR, "--scratch-dir", SCRATCH_DIR,
            "--url-env", URL_ENV,
            "--schema", spec.database.schema_,
            "--version-table", spec.migrations.version_table,
            "--version-table-schema", spec.version_table_schema,
            "--connect-timeout", str(spec.database.connect_timeout_seconds),
            "--lock-wait-seconds", str(LOCK_WAIT_SECONDS),
            "--lock-timeout", LOCK_TIMEOUT,
            "--statement-timeout", f"{statement_timeout}s"]


def pod_spec(spec: DatabaseSchemaSpec, config_map: str, files: list[str], image: str) -> JSON:
    ref = spec.database.url_secret_ref
    container: JSON = {
        "name": CONTAINER,
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "command": ["schemagate", "migrate"],
        "args": migrate_args(spec),
        "env": [{"name": URL_ENV, "valueFrom": {"secretKeyRef": {"name": ref.name,
                                                                 "key": ref.key}}}],
        "volumeMounts": [{"name": "scripts", "mountPath": SCRIPTS_DIR, "readOnly": True},
                         {"name": "scratch", "mountPath": SCRATCH_DIR}],
        "resources": {"requests": {"cpu": "50m", "memory": "64Mi"},
                      "limits": {"memory": MEMORY_LIMIT}},
        "securityContext": {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                            "runAsNonRoot": True, "capabilities": {"drop": ["ALL"]}},
        # `schemagate migrate` writes its report to /dev/termination-log; a revision that
        # kills the process leaves the output's tail instead.
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }
    return {
        "serviceAccountName": SERVICE_ACCOUNT,
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "restartPolicy": "Never",
        "terminationGracePeriodSeconds": GRACE_SECONDS,
        "securityContext": {"runAsNonRoot": True, "runAsUser": UID, "runAsGroup": UID,
                            "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [container],
        "volumes": [
            # Exactly the keys the operator read: nothing else of the ConfigMap appears.
            {"name": "scripts", "configMap": {"name": config_map, "defaultMode": 0o444,
                                              "items": [{"key": f, "path": f}
                                                        for f in sorted(files)]}},
            {"name": "scratch", "emptyDir": {"sizeLimit": SCRATCH_LIMIT}},
        ],
    }


def alembic_job(*, schema: str, uid: str, generation: int, spec: DatabaseSchemaSpec,
                config_map: str, files: Mapping[str, str], image: str,
                rerun: str | None) -> JSON:
    """The Job that runs `files` (the ConfigMap's revision files, key to text)."""
    alembic = spec.migrations.alembic
    deadline = alembic.active_deadline_seconds if alembic else 1200
    pod = pod_spec(spec, config_map, list(files), image)
    material = json.dumps({"pod": pod, "scripts": scripts_digest(files), "deadline": deadline,
                           "rerun": rerun}, sort_keys=True, separators=(",", ":"))
    hash_ = hashlib.sha256(material.encode()).hexdigest()[:10]
    labels = {MIGRATION_LABEL: schema}
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": job_name(schema, generation, hash_), "labels": labels,
                     "annotations": {HASH_ANNOTATION: hash_},
                     "ownerReferences": [owner_reference(schema, uid)]},
        "spec": {
            "backoffLimit": RETRIES,
            "activeDeadlineSeconds": deadline,
            # Only a run that said "try again" is tried again; a revision that raises,
            # exits or is killed fails the Job at once.
            "podFailurePolicy": {"rules": [{
                "action": "FailJob",
                "onExitCodes": {"containerName": CONTAINER, "operator": "NotIn",
                                "values": [EXIT_RETRY]}}]},
            "template": {"metadata": {"labels": labels}, "spec": pod},
        },
    }


def service_account(namespace: str) -> JSON:
    """The migration pods' ServiceAccount: no Role names it, and it mounts no token."""
    return {"apiVersion": "v1", "kind": "ServiceAccount",
            "metadata": {"name": SERVICE_ACCOUNT, "namespace": namespace,
                         "labels": {"app.kubernetes.io/managed-by": "schemagate"}},
            "automountServiceAccountToken": False}
