"""The verify pod: cloned from the backend Deployment by the rules the migration Job uses
(`core.pod_template`): its service account (Workload Identity), its sidecars (a Cloud
SQL Auth Proxy on 127.0.0.1), the named container's env, envFrom and mounts. Its one
container runs `schemagate verify --json` from the operator's own image, restricted,
without any service account token, with the URL taken by the kubelet from the
backend's Secret (never written into the pod)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import Any

from schemagate.core.clone import pod_template as template
from schemagate.core.wire.models import GROUP, KIND, VERSION, DatabaseSchemaSpec

JSON = dict[str, Any]

#: On the verify pod only. No Service selects it (a key of ours), and not
#: `schemagate.io/schema`, which would make the chart's gate injection hold it on itself.
VERIFY_LABEL = f"{GROUP}/verify-of"
HASH_ANNOTATION = f"{GROUP}/verify-hash"
#: The declared columns as `schemagate verify --columns-file` reads them, mounted into the
#: pod through the downward API (no ConfigMap to create, no extra right).
COLUMNS_ANNOTATION = f"{GROUP}/columns"
#: Annotations of an object may total 256 KiB; the columns get most of that.
COLUMNS_LIMIT = 200_000
CONTAINER = "verify"
#: Where the URL reaches the verify container: from the Secret, by the kubelet.
URL_ENV = "SCHEMAGATE_DATABASE_URL"
TERMINATION_PATH = "/dev/termination-log"
COLUMNS_DIR = "/etc/schemagate"
#: A writable directory for Python's tempfile under the read-only root filesystem.
SCRATCH_DIR = "/tmp"
SCRATCH_LIMIT = "16Mi"
TOKEN_PATH = "/var/run/secrets/kubernetes.io/serviceaccount"
#: From creation to verdict: image pulls, scheduling and a sidecar's start included. A
#: pod not done by then is diagnosed, deleted and reported (VerifyPodFailed).
DEADLINE = timedelta(seconds=120)
#: The kubelet's own bound, should the operator be away when the deadline passes.
ACTIVE_DEADLINE_SECONDS = int(DEADLINE.total_seconds()) + 30
#: Restricted Pod Security for the verify container, whatever the backend's own allow.
RESTRICTED = {"runAsNonRoot": True, "allowPrivilegeEscalation": False,
              "readOnlyRootFilesystem": True, "capabilities": {"drop": ["ALL"]},
              "seccompProfile": {"type": "RuntimeDefault"}}
RESOURCES = {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"memory": "256Mi"}}



class InvalidVerifyPod(ValueError):
    """The spec or the Deployment cannot give a verify pod; the message says why."""


def verify_args(spec: DatabaseSchemaSpec) -> list[str]:
    """`schemagate verify` for this spec; the URL only by the name of its variable."""
    args = ["verify", "--json", "--url-env", URL_ENV, "--termination-message-path",
            TERMINATION_PATH, f"--schema={spec.database.schema_}",
            f"--connect-timeout={spec.database.connect_timeout_seconds}"]
    args += [f"--table={table}" for table in spec.tables]  # `=`: a name may start with -
    run = spec.migrations
    if not run.revision_check:
        args.append("--skip-revision")
    else:
        args += [f"--version-table={run.version_table}",
                 f"--version-table-schema={spec.version_table_schema}"]
        args += [f"--expected-revision={r}" for r in run.expected_revisions or ()]
    if spec.columns:
        args.append(f"--columns-file={COLUMNS_DIR}/columns.json")
    return args


def columns_file(spec: DatabaseSchemaSpec) -> str:
    """spec.columns as `schemagate verify --columns-file` reads them (JSON)."""
    return json.dumps({"columns": [c.model_dump(by_alias=True, exclude_none=True, mode="json")
                                   for c in spec.columns]}, separators=(",", ":"))


def _verifier(spec: DatabaseSchemaSpec, source: Mapping[str, Any], image: str,
              clean: Callable[[str], bool]) -> JSON:
    ref = spec.database.url_secret_ref
    # A literal value holding a password (a URL written into the Deployment) stays
    # behind: the check has its URL from the Secret, and the pod's spec carries none.
    env = [e for e in source.get("env") or () if e.get("name") != URL_ENV
           and clean(str(e.get("value") or ""))]
    env.append({"name": URL_ENV, "valueFrom": {"secretKeyRef": {"name": ref.name,
                                                                 "key": ref.key}}})
    # An empty directory over the token's path: the ServiceAccount admission then mounts
    # no token into this container (the sidecars keep theirs, as in the backend's pod).
    mounts = [m for m in source.get("volumeMounts") or ()
              if m.get("mountPath") not in (TOKEN_PATH, COLUMNS_DIR, SCRATCH_DIR)]
    mounts.append({"name": "schemagate-no-token", "mountPath": TOKEN_PATH, "readOnly": True})
    # The root filesystem is read-only: Python's tempfile (imported on the way to a
    # verdict) needs one writable directory, or the check dies before it connects.
    mounts.append({"name": "schemagate-scratch", "mountPath": SCRATCH_DIR})
    if spec.columns:
        mounts.append({"name": "schemagate-columns", "mountPath": COLUMNS_DIR,
                       "readOnly": True})
    container: JSON = {
        "name": CONTAINER, "image": image, "command": ["schemagate"],
        "args": verify_args(spec), "env": env, "volumeMounts": mounts,
        # The verdict is written to the file; a crash's last lines come instead.
        "terminationMessagePath": TERMINATION_PATH,
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "securityContext": RESTRICTED, "resources": RESOURCES,
    }
    if source.get("envFrom"):
        container["envFrom"] = source["envFrom"]
    return container


def _own_volumes(spec: DatabaseSchemaSpec) -> list[JSON]:
    volumes: list[JSON] = [{"name": "schemagate-no-token", "emptyDir": {"sizeLimit": "1Mi"}},
                           {"name": "schemagate-scratch", "emptyDir": {"sizeLimit": SCRATCH_LIMIT}}]
    if spec.columns:
        volumes.append({"name": "schemagate-columns", "downwardAPI": {"items": [{
            "path": "columns.json",
            "fieldRef": {"fieldPath": f"metadata.annotations['{COLUMNS_ANNOTATION}']"}}]}})
    return volumes


def pod_spec(spec: DatabaseSchemaSpec, deployment: Mapping[str, Any], image: str,
             clean: Callable[[str], bool] = lambda _: True) -> JSON:
    source_ref = spec.database.verify_pod
    if source_ref is None:
        raise InvalidVerifyPod("database.verifyFrom is Pod but database.verifyPod is not set")
    name = deployment["metadata"]["name"]
    tspec = template.template_spec(deployment)
    source = template.source_container(tspec, source_ref.from_deployment.container, name)
    pod = template.clone(tspec, _verifier(spec, source, image, clean),
                         template.sidecars(tspec, source), _own_volumes(spec))
    pod["activeDeadlineSeconds"] = ACTIVE_DEADLINE_SECONDS
    pod["terminationGracePeriodSeconds"] = 5
    pod["enableServiceLinks"] = False
    return pod


def digest(pod: Mapping[str, Any], annotations: Mapping[str, str]) -> str:
    material = json.dumps({"pod": pod, "annotations": annotations}, sort_keys=True,
                          separators=(",", ":"))
    return hashlib.sha256(material.encode()).hexdigest()[:10]


def verify_pod(*, schema: str, uid: str, spec: DatabaseSchemaSpec,
               deployment: Mapping[str, Any], image: str,
               clean: Callable[[str], bool] = lambda _: True) -> JSON:
    """The verify pod's manifest (named by the API server: `generateName`). `clean` says
    whether a literal env value of the backend's container holds no secret."""
    try:
        template.require_consent(deployment, schema, "verification from its pods",
                                 "verify pod")
        pod = pod_spec(spec, deployment, image, clean)
    except template.InvalidPodSource as exc:
        raise InvalidVerifyPod(str(exc)) from None
    annotations: dict[str, str] = {}
    if spec.columns:
        annotations[COLUMNS_ANNOTATION] = columns_file(spec)
        if len(annotations[COLUMNS_ANNOTATION]) > COLUMNS_LIMIT:
            raise InvalidVerifyPod(
                f"spec.columns takes {len(annotations[COLUMNS_ANNOTATION]):,} bytes; the verify "
                f"pod carries at most {COLUMNS_LIMIT:,} (an annotation): declare fewer columns "
                "or verify them with schemagate verify --columns-file in CI")
    annotations[HASH_ANNOTATION] = digest(pod, annotations)
    prefix = schema[:40].rstrip("-.")
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {
            "generateName": f"{prefix}-verify-",
            "labels": {VERIFY_LABEL: schema},
            "annotations": annotations,
            "ownerReferences": [{"apiVersion": f"{GROUP}/{VERSION}", "kind": KIND,
                                 "name": schema, "uid": uid, "controller": True,
                                 "blockOwnerDeletion": True}],
        },
        "spec": pod,
    }
