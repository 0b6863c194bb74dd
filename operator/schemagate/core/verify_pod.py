"""`verifyFrom: Pod`: the check run where the backend stands (pure).

The verify pod is cloned from the backend Deployment by the rules the migration Job
uses (`core.clone.pod_template`): its service account (Workload Identity), its sidecars (a
Cloud SQL Auth Proxy on 127.0.0.1), the named container's env, envFrom and mounts. Its
one container runs `schemagate verify --json` from the operator's own image, restricted,
without any service account token, with the URL taken by the kubelet from the backend's
Secret (never written into the pod). The verdict comes back through the container's
termination message: Kubernetes keeps at most 4 KiB of it, so `termination_message`
writes counts and the first names, always as whole JSON, never a truncated one.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from schemagate.core.check.columns import ColumnMismatch, ColumnRequirement, FoundColumn
from schemagate.core.check.verdict import Fingerprint, Place, Requirement, Verdict
from schemagate.core.clone import pod_template as template
from schemagate.core.wire.models import GROUP, KIND, VERSION, DatabaseSchemaSpec
from schemagate.core.wire.reasons import Reason

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
#: What the kubelet keeps of a termination message.
TERMINATION_LIMIT = 4096
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
#: Finished verify pods kept for `kubectl logs`; older ones are deleted.
KEEP_FINISHED = 3
#: Waiting reasons after which a container will not start by itself soon.
CANNOT_START = frozenset({"ErrImagePull", "ImagePullBackOff", "ErrImageNeverPull",
                          "InvalidImageName", "CreateContainerConfigError",
                          "CreateContainerError", "RunContainerError", "CrashLoopBackOff"})
#: Kubelet messages quoted in a reason are cut here.
QUOTED = 400
#: Restricted Pod Security for the verify container, whatever the backend's own allow.
RESTRICTED = {"runAsNonRoot": True, "allowPrivilegeEscalation": False,
              "readOnlyRootFilesystem": True, "capabilities": {"drop": ["ALL"]},
              "seccompProfile": {"type": "RuntimeDefault"}}
RESOURCES = {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"memory": "256Mi"}}


class InvalidVerifyPod(ValueError):
    """The spec or the Deployment cannot give a verify pod; the message says why."""


# ---- where a URL can be reached from ---------------------------------------------------------


def local_only(host: str | None) -> str | None:
    """Why `host` means the operator's own pod when the operator connects (a loopback
    address, `localhost`, a Unix socket directory), or None for a host it may reach."""
    if not host:
        return "names no host (a local Unix socket)"
    if host.startswith("/"):
        return f"names the Unix socket directory {host}"
    name = host.strip("[]").lower().rstrip(".")
    if name == "localhost" or name.endswith(".localhost") or name.startswith("ip6-local"):
        return f"names {host}, the loopback host"
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        return None
    return f"names {host}, a loopback address" if address.is_loopback else None


def loopback_message(why: str, secret: str, key: str) -> str:
    return (f"the database URL in Secret {secret} key {key} {why}: from the operator's pod "
            "that is the operator itself, so this database can only be reached from the "
            "backend's own pods (a proxy sidecar such as the Cloud SQL Auth Proxy). Set "
            "spec.database.verifyFrom: Pod and verifyPod.fromDeployment to the backend's "
            "Deployment: the check then runs in a pod cloned from it")


# ---- the pod ----------------------------------------------------------------------------------


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


# ---- the verdict through the termination message ------------------------------------------------


def termination_message(verdict: Verdict, limit: int = TERMINATION_LIMIT) -> str:
    """The verdict as one JSON object of at most `limit` bytes: counts and the first
    names; lists and the message shrink until it fits, the JSON is never cut."""
    fp = verdict.fingerprint
    shown = max(len(verdict.missing_tables), len(verdict.found_elsewhere),
                len(verdict.column_mismatches), 1)
    message_length = len(verdict.message)
    while True:
        body = {
            "v": 1, "verified": verdict.verified, "reason": verdict.reason.value,
            "message": _cut(verdict.message, message_length),
            "missing": {"count": len(verdict.missing_tables),
                        "first": list(verdict.missing_tables[:shown])},
            "elsewhere": {"count": len(verdict.found_elsewhere),
                          "first": [[p.table, p.schema, p.database]
                                    for p in verdict.found_elsewhere[:shown]]},
            "columns": {"count": len(verdict.column_mismatches),
                        "first": [_mismatch(m) for m in verdict.column_mismatches[:shown]]},
            "revision": {"current": _sorted(verdict.current_revisions),
                         "expected": _sorted(verdict.expected_revisions)},
            "database": None if fp is None else _fingerprint(fp, message_length),
            "duration_ms": round(verdict.duration_ms, 1),
        }
        text = json.dumps(body, separators=(",", ":"), ensure_ascii=False)
        if len(text.encode()) <= limit:
            return text
        if shown > 1:
            shown //= 2
        elif message_length > 200:
            message_length //= 2
        elif shown:
            shown = 0
        else:
            body["revision"] = {"current": None, "expected": None, "cut": True}
            body["database"] = None
            message_length = min(message_length, 100)
            body["message"] = _cut(verdict.message, message_length)
            return json.dumps(body, separators=(",", ":"), ensure_ascii=False)


def _cut(text: str, length: int) -> str:
    return text if len(text) <= length else text[: max(length - 1, 0)] + "…"


def _sorted(revisions: frozenset[str] | None) -> list[str] | None:
    return None if revisions is None else sorted(revisions)


def _mismatch(m: ColumnMismatch) -> list[Any]:
    found = m.found
    return [m.declared.table, m.declared.name, None if found is None else found.type,
            None if found is None else found.nullable]


def _fingerprint(fp: Fingerprint, length: int) -> JSON:
    return {"host": fp.host, "port": fp.port, "database": fp.database, "user": fp.user,
            "search_path": _cut(fp.search_path, min(length, 200)),
            "server_version": fp.server_version, "system_identifier": fp.system_identifier}


class NoVerdict(ValueError):
    """The termination message holds no verdict (the container crashed, or is not ours)."""


def read_verdict(text: str, requirement: Requirement) -> Verdict:
    """The verdict a verify pod wrote (`termination_message`); the declared columns come
    from `requirement`, the rest from the message."""
    try:
        body = json.loads(text)
        if not isinstance(body, dict) or body.get("v") != 1:
            raise NoVerdict("not a verdict of schemagate verify")
        reason = Reason(body["reason"])
        declared = {(c.table, c.name): c for c in requirement.columns}
        db = body.get("database")
        revision = body.get("revision") or {}
        return Verdict(
            verified=bool(body["verified"]) and reason is Reason.VERIFIED,
            reason=reason, message=str(body.get("message") or ""),
            missing_tables=tuple(str(t) for t in body["missing"]["first"]),
            found_elsewhere=tuple(Place(table=t, schema=s, database=d)
                                  for t, s, d in body["elsewhere"]["first"]),
            current_revisions=_revision_set(revision.get("current")),
            expected_revisions=_revision_set(revision.get("expected")),
            fingerprint=None if db is None else Fingerprint(
                host=db.get("host"), port=db.get("port"), database=str(db["database"]),
                user=str(db["user"]), search_path=str(db.get("search_path") or ""),
                server_version=str(db.get("server_version") or ""),
                system_identifier=db.get("system_identifier")),
            duration_ms=float(body.get("duration_ms") or 0.0),
            column_mismatches=tuple(
                ColumnMismatch(declared=declared.get((t, c), ColumnRequirement(t, c)),
                               found=None if ty is None else FoundColumn(ty, bool(nul)))
                for t, c, ty, nul in body["columns"]["first"]),
        )
    except NoVerdict:
        raise
    except (ValueError, KeyError, TypeError) as exc:
        raise NoVerdict(f"not a verdict of schemagate verify ({type(exc).__name__})") from None


def _revision_set(value: Sequence[str] | None) -> frozenset[str] | None:
    return None if value is None else frozenset(str(v) for v in value)


# ---- following the pod ------------------------------------------------------------------------


@dataclass(frozen=True)
class Progress:
    """Where a verify pod is: `running`, or `done` with the verify container's exit code
    and termination message, or `failed` with why it cannot give a verdict."""

    running: bool = False
    exit_code: int | None = None
    message: str = ""
    failed: str | None = None


def _created(pod: Mapping[str, Any]) -> datetime | None:
    text = pod["metadata"].get("creationTimestamp")
    return datetime.fromisoformat(text.replace("Z", "+00:00")) if text else None


def _statuses(pod: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    status = pod.get("status") or {}
    return [*(status.get("initContainerStatuses") or ()),
            *(status.get("containerStatuses") or ())]


def progress(pod: Mapping[str, Any], now: datetime) -> Progress:
    """Where the verify pod `pod` is at `now` (its deadline counted from its creation)."""
    name = pod["metadata"]["name"]
    status = pod.get("status") or {}
    for s in status.get("containerStatuses") or ():
        terminated = (s.get("state") or {}).get("terminated")
        if s.get("name") == CONTAINER and terminated:
            return Progress(exit_code=int(terminated.get("exitCode") or 0),
                            message=str(terminated.get("message") or ""))
    if status.get("phase") in ("Failed", "Succeeded"):
        why = ": ".join(str(x) for x in (status.get("reason"), status.get("message")) if x)
        return Progress(failed=f"verify pod {name} ended before its check ran"
                               + (f" ({_cut(why, QUOTED)})" if why else ""))
    for s in _statuses(pod):
        waiting = (s.get("state") or {}).get("waiting") or {}
        if waiting.get("reason") in CANNOT_START:
            return Progress(failed=f"verify pod {name} cannot start: container {s.get('name')} "
                                   f"is {waiting['reason']}"
                                   + _quoted(waiting.get("message")))
    created = _created(pod)
    if created is not None and now - created >= DEADLINE:
        return Progress(failed=f"verify pod {name} gave no verdict within "
                               f"{int(DEADLINE.total_seconds())} s: {_stuck(pod)}")
    return Progress(running=True)


def _quoted(text: str | None) -> str:
    return f": {_cut(' '.join(text.split()), QUOTED)}" if text else ""


def _stuck(pod: Mapping[str, Any]) -> str:
    """Why a pod past its deadline has not finished, in the kubelet's and scheduler's words."""
    status = pod.get("status") or {}
    for c in status.get("conditions") or ():
        if c.get("type") == "PodScheduled" and c.get("status") != "True":
            return f"not scheduled ({c.get('reason') or 'Pending'}{_quoted(c.get('message'))})"
    for s in status.get("initContainerStatuses") or ():
        if not s.get("started") and not (s.get("state") or {}).get("terminated"):
            return (f"sidecar {s.get('name')} has not started (its startup probe has not "
                    "passed), so the check never began")
    for s in _statuses(pod):
        waiting = (s.get("state") or {}).get("waiting") or {}
        if waiting:
            return (f"container {s.get('name')} is waiting ({waiting.get('reason')}"
                    f"{_quoted(waiting.get('message'))})")
    return "the check is still running (a database that accepts connections but never answers?)"


def outcome_of(name: str, done: Progress, requirement: Requirement,
               scrub: Callable[[str], str]) -> tuple[Verdict | None, str]:
    """The verdict of a finished pod, or None with why there is none (scrubbed)."""
    try:
        return read_verdict(done.message, requirement), ""
    except NoVerdict:
        tail = scrub(done.message.strip())[-QUOTED:]
        return None, (f"verify pod {name} ended with exit code {done.exit_code} without a "
                      "verdict" + (f": {tail}" if tail else ""))


def is_finished(pod: Mapping[str, Any]) -> bool:
    status = pod.get("status") or {}
    if status.get("phase") in ("Succeeded", "Failed"):
        return True
    return any(s.get("name") == CONTAINER and (s.get("state") or {}).get("terminated")
               for s in status.get("containerStatuses") or ())


def to_delete(pods: Sequence[Mapping[str, Any]], keep: int = KEEP_FINISHED,
              current: str | None = None) -> list[str]:
    """The verify pods to delete: every unfinished one but `current` (never two at once),
    and the finished ones older than the newest `keep`."""
    live = [p for p in pods if not p["metadata"].get("deletionTimestamp")]
    newest_first = sorted(live, key=lambda p: (p["metadata"].get("creationTimestamp") or "",
                                               p["metadata"]["name"]), reverse=True)
    finished = [p["metadata"]["name"] for p in newest_first if is_finished(p)]
    unfinished = [p["metadata"]["name"] for p in newest_first if not is_finished(p)
                  and p["metadata"]["name"] != current]
    return unfinished + finished[keep:]


def created_here(pods: Sequence[Mapping[str, Any]], created: Mapping[str, str]
                 ) -> list[Mapping[str, Any]]:
    """The verify pods among `pods` that this process created: `created` holds the name
    and uid of each, as the API server answered its create. Whoever may create pods in
    the namespace can copy a verify pod's labels and annotations, never its uid: a pod
    not created here is neither read, followed nor deleted."""
    return [p for p in pods if is_created(p, created.get(p["metadata"]["name"]))]


def is_created(pod: Mapping[str, Any], uid: str | None) -> bool:
    """`pod` is the one whose create answered `uid` (a pod of the same name made since
    is not)."""
    return uid is not None and pod["metadata"].get("uid") == uid


def adoptable(pods: Sequence[Mapping[str, Any]], manifest: Mapping[str, Any]) -> str | None:
    """An unfinished verify pod that runs exactly this check (one an earlier pass left
    behind when the API failed it): followed instead of starting a second one."""
    wanted = manifest["metadata"]["annotations"][HASH_ANNOTATION]
    for pod in pods:
        meta = pod["metadata"]
        if not meta.get("deletionTimestamp") and not is_finished(pod) and \
                (meta.get("annotations") or {}).get(HASH_ANNOTATION) == wanted:
            return str(meta["name"])
    return None
