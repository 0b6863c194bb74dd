"""`run: Job`: one migration Job per change, cloned from the backend, judged by the database."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from schemagate import kube
from schemagate.core import migration
from schemagate.core import migration_job as jobs
from schemagate.core.conditions import timestamp
from schemagate.core.models import DatabaseSchemaSpec, JobSpec, MigrationStatus
from schemagate.core.reasons import Reason
from schemagate.core.status import Outcome

#: How often to look at a running migration Job.
RUNNING_RECHECK = 2.0

Step = migration.Step


def _running(outcome: Outcome, name: str) -> Outcome:
    return migration.with_migrations(outcome, None, migration.MIGRATION_RUNNING,
                                     f"migration Job {name} is running")


async def job_step(body: Mapping[str, Any], spec: DatabaseSchemaSpec, job: JobSpec,
                   outcome: Outcome, previous: MigrationStatus, kube_api: kube.Kube,
                   now: datetime) -> Step:
    """Start, watch or judge the migration Job of the current change. `previous` is the
    status.migration last written (never a body the watch may not have refreshed)."""
    if not outcome.looked or outcome.verdict is None:
        return Step(outcome)  # no run without a "before" to judge it against
    meta = body["metadata"]
    namespace, name = meta["namespace"], meta["name"]
    source = job.from_deployment.name
    deployment = await asyncio.to_thread(kube_api.deployment, namespace, source)
    if deployment is None:
        return Step(Outcome(Reason.INVALID_SPEC, f"migrations.job.fromDeployment: Deployment "
                                                 f"{source} not found in namespace {namespace}"))
    try:
        manifest = jobs.migration_job(
            schema=name, uid=meta["uid"], generation=int(meta.get("generation") or 0),
            job=job, deployment=deployment,
            rerun=(meta.get("annotations") or {}).get(jobs.RERUN_ANNOTATION))
    except jobs.InvalidJobSource as exc:
        return Step(Outcome(Reason.INVALID_SPEC, f"migrations.job.fromDeployment: {exc}"))
    job_name = manifest["metadata"]["name"]
    record = previous if previous.job == job_name else None
    observed = await asyncio.to_thread(kube_api.job, namespace, job_name)
    declared = len(spec.tables)

    if observed is None and record is None:  # a new change: snapshot, then run
        before = migration.snapshot(outcome.verdict, declared)
        # The snapshot rides on the Job too: an operator that dies before writing status
        # still judges the run against it (a no-op is never taken for an applied run).
        await asyncio.to_thread(kube_api.create_job, namespace,
                                jobs.with_snapshot(manifest, before))
        started = MigrationStatus(job=job_name, started_at=timestamp(now),
                                  outcome=migration.RUNNING, before=before)
        return Step(_running(outcome, job_name), started, RUNNING_RECHECK)
    record = record or MigrationStatus(
        job=job_name, started_at=timestamp(now), outcome=migration.RUNNING,
        before=jobs.snapshot_of(observed) if observed is not None else None,
        message="the operator restarted before recording this Job; following it again")
    # A Job deleted after it finished (TTL, a person) is judged by what we recorded.
    state = jobs.job_state(observed) if observed is not None else (
        "Failed" if record.outcome == migration.FAILED else "Succeeded")
    if state == "Running":
        return Step(_running(outcome, job_name), record, RUNNING_RECHECK)
    finished = record.finished_at or timestamp(now)
    runner = f"migration Job {job_name}"
    if state == "Failed":
        message = record.message if record.outcome == migration.FAILED else \
            await asyncio.to_thread(kube_api.job_termination_message, namespace, job_name)
        failed = migration.failed(runner, message or "", outcome.verdict)
        return Step(migration.judged(failed), record.model_copy(update={
            "outcome": migration.FAILED, "finished_at": finished, "message": message}))
    note = None
    if record.outcome in (migration.RUNNING, migration.NO_OP):
        judged, word = migration.judge_success(runner, outcome.verdict, record.before, declared)
        if observed is None and record.outcome == migration.RUNNING:
            # The operator was away while the Job ended and someone (a TTL) deleted it.
            note = (f"{runner} is gone: it ended while the operator was not watching and "
                    "was deleted; judged by the database")
    else:  # judged applied before: what follows is the schema's own story (drift, repair)
        judged, word = outcome, str(record.outcome)
        note = record.message
    return Step(migration.judged(judged), record.model_copy(update={
        "outcome": word, "finished_at": finished, "message": note}))
