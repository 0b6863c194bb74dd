"""The migration Job, built from the backend Deployment's pod template (pure).

The Job runs the named container's image with the backend's own settings, cloned by
the rules of `core.clone.pod_template` (shared with the verify pod of `verifyFrom: Pod`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from schemagate.core.clone import pod_template as template
from schemagate.core.clone.pod_template import MAX_LABEL, bounded  # noqa: F401 (callers read them here)
from schemagate.core.revisions.applied import SCHEMA_LABEL  # noqa: F401 (callers read it here)
from schemagate.core.tenancy.scrub import Scrubber
from schemagate.core.wire.models import GROUP, KIND, VERSION, JobSpec, MigrationSnapshot

JSON = dict[str, Any]
#: On the migration Job and its pod. Not `schemagate.io/schema`: that label says a pod
#: needs the schema, and the chart's gate injection would hold the migrator on itself.
MIGRATION_LABEL = f"{GROUP}/migration-of"
HASH_ANNOTATION = f"{GROUP}/migration-hash"
RERUN_ANNOTATION = f"{GROUP}/rerun"
#: The database before the run (MigrationSnapshot as JSON), on the Job itself.
SNAPSHOT_ANNOTATION = f"{GROUP}/before"

class JobState(StrEnum):
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"


class InvalidJobSource(template.InvalidPodSource):
    """The Deployment cannot give a migration Job (container missing, no containers, its
    owners did not consent)."""


def require_consent(deployment: Mapping[str, Any], schema: str) -> None:
    """The Deployment's owners consent to running this DatabaseSchema's migrations as
    their workload (`core.clone.pod_template.require_consent`)."""
    try:
        template.require_consent(deployment, schema, "migrations", "Job")
    except template.InvalidPodSource as exc:
        raise InvalidJobSource(str(exc)) from None


def pod_spec(job: JobSpec, deployment: Mapping[str, Any]) -> JSON:
    """What the migration runs: the pod spec of the Job, from the Deployment."""
    name = deployment["metadata"]["name"]
    spec = template.template_spec(deployment)
    try:
        source = template.source_container(spec, job.from_deployment.container, name)
    except template.InvalidPodSource as exc:
        raise InvalidJobSource(str(exc)) from None
    migrator = {k: v for k, v in source.items() if k not in template.NOT_FOR_A_RUN}
    migrator.update(name="migrate", command=list(job.command))
    # A kubelet writes a termination message only from /dev/termination-log unless told
    # to fall back on the output's tail: MigrationFailed quotes that message. Always:
    # the API server defaults the Deployment's container to `File`, and a message
    # written to the file still wins over the fallback.
    migrator["terminationMessagePolicy"] = "FallbackToLogsOnError"
    if job.args:
        migrator["args"] = list(job.args)
    return template.clone(spec, migrator, template.sidecars(spec, source))


def digest(spec: Mapping[str, Any], job: JobSpec, rerun: str | None) -> str:
    """A short hash of what the Job runs: a new one means a new Job."""
    material = json.dumps({"pod": spec, "backoffLimit": job.backoff_limit,
                           "deadline": job.active_deadline_seconds, "rerun": rerun},
                          sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(material.encode()).hexdigest()[:10]




def job_name(schema: str, generation: int, hash_: str) -> str:
    """`<schema>-migrate-<generation>-<hash>`, within 63 characters; a schema name cut
    short gets a hash of its own, so two long names that start alike never share a Job."""
    suffix = f"-migrate-{generation}-{hash_}"
    if len(schema) + len(suffix) <= MAX_LABEL:
        return schema + suffix
    return bounded(schema, MAX_LABEL - len(suffix)) + suffix


def owner_reference(schema: str, uid: str) -> JSON:
    """The DatabaseSchema owns its migration Jobs: they go with it."""
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": KIND, "name": schema, "uid": uid,
            "controller": True, "blockOwnerDeletion": True}


def migration_job(*, schema: str, uid: str, generation: int, job: JobSpec,
                  deployment: Mapping[str, Any], rerun: str | None) -> JSON:
    require_consent(deployment, schema)
    spec = pod_spec(job, deployment)
    hash_ = digest(spec, job, rerun)
    labels = {MIGRATION_LABEL: bounded(schema)}  # a DatabaseSchema name may have 253
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": job_name(schema, generation, hash_),
            "labels": labels,
            "annotations": {HASH_ANNOTATION: hash_},
            "ownerReferences": [owner_reference(schema, uid)],
        },
        "spec": {
            "backoffLimit": job.backoff_limit,
            "activeDeadlineSeconds": job.active_deadline_seconds,
            # Fresh labels, not the backend's: the migrator must never be a Service endpoint.
            "template": {"metadata": {"labels": labels}, "spec": spec},
        },
    }


def with_snapshot(manifest: Mapping[str, Any], before: MigrationSnapshot) -> JSON:
    """The Job manifest carrying the database's state before the run."""
    metadata = dict(manifest["metadata"])
    metadata["annotations"] = {**metadata.get("annotations", {}),
                               SNAPSHOT_ANNOTATION: before.model_dump_json(by_alias=True)}
    return {**manifest, "metadata": metadata}


def snapshot_of(job: Mapping[str, Any]) -> MigrationSnapshot | None:
    """The snapshot a Job was created with, or None (created before snapshots rode on it)."""
    text = ((job.get("metadata") or {}).get("annotations") or {}).get(SNAPSHOT_ANNOTATION)
    if not text:
        return None
    try:
        return MigrationSnapshot.model_validate_json(text)
    except ValueError:
        return None


def job_state(job: Mapping[str, Any]) -> JobState:
    """Running, Succeeded or Failed, from the Job's conditions."""
    for c in (job.get("status") or {}).get("conditions") or ():
        if c.get("status") != "True":
            continue
        if c.get("type") in ("Complete", "SuccessCriteriaMet"):
            return JobState.SUCCEEDED
        if c.get("type") in ("Failed", "FailureTarget"):
            return JobState.FAILED
    return JobState.RUNNING


def job_failure(job: Mapping[str, Any]) -> str:
    """Why Kubernetes failed the Job, when it says more than "the pod failed": the
    deadline (`DeadlineExceeded`), or the retries spent (`BackoffLimitExceeded`)."""
    for c in (job.get("status") or {}).get("conditions") or ():
        if c.get("type") in ("Failed", "FailureTarget") and c.get("status") == "True":
            reason = c.get("reason") or ""
            if reason == "DeadlineExceeded":
                deadline = (job.get("spec") or {}).get("activeDeadlineSeconds")
                return f"stopped by Kubernetes after activeDeadlineSeconds ({deadline} s)"
            if reason == "BackoffLimitExceeded":
                return "its retries are spent (backoffLimit)"
    return ""


@dataclass(frozen=True)
class LastWords:
    """How the newest ended container of a Job's pods ended."""

    exit_code: int
    message: str  # the termination message, through the scrubber


def last_words(pods: list[Mapping[str, Any]], scrubber: Scrubber) -> LastWords | None:
    """The newest ended container among a Job's `pods`; its message passes the schema's
    `scrubber`: it is the tenant's output."""
    for pod in sorted(pods, key=lambda p: p["metadata"]["creationTimestamp"], reverse=True):
        for status in (pod.get("status") or {}).get("containerStatuses") or ():
            terminated = (status.get("state") or {}).get("terminated")
            if terminated is not None:
                return LastWords(int(terminated.get("exitCode") or 0),
                                 _scrubbed((terminated.get("message") or "").strip(), scrubber))
    return None


def _scrubbed(text: str, scrubber: Scrubber) -> str:
    """`text` scrubbed: the migrator's report (a JSON object) field by field as well,
    since its encoding (`\u00a0`, `\"`) would hide a password from a scrubber reading
    the raw text and show it again once decoded; anything else as the tail of a log,
    which may begin inside a URL."""
    scrub = scrubber.scrub
    try:
        data = json.loads(text)
    except ValueError:
        return scrubber.scrub_tail(text)
    if not isinstance(data, dict):
        return scrubber.scrub_tail(text)
    fields = {key: scrub(value) if isinstance(value, str) else value
              for key, value in data.items()}
    return scrub(json.dumps(fields, ensure_ascii=False))


def describe(words: LastWords | None) -> str:
    """A failed container's last words as a message quotes them."""
    if words is None:
        return ""
    return f"exit code {words.exit_code}" + (f": {words.message}" if words.message else "")

