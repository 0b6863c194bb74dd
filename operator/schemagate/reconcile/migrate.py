"""The migration step of both modes, thin: read what the run needs, let the core decide
(`core.migration.run.decide`), do what it says (create the Job, or nothing).

`run: Job` clones the backend's Deployment; `run: Alembic` runs the ConfigMap's
revision files in a Job of the operator's own image (`core.migration.alembic_job`). Either way
the step is given this pass's verification and returns a `migration.Step`: it never
calls back into the loop, and no tenant code ever runs in this process.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from schemagate import kube
from schemagate.core.migration import alembic_job
from schemagate.core.migration import job as jobs
from schemagate.core.migration import judge as migration
from schemagate.core.migration.run import Decision, ObservedJob, Situation, decide
from schemagate.core.revisions.graph import ScriptGraph, read_graph
from schemagate.core.revisions.keys import InvalidScripts, NoScripts
from schemagate.core.status.conditions import timestamp
from schemagate.core.status.outcome import Outcome
from schemagate.core.tenancy.scrub import PATTERNS, Scrubber
from schemagate.core.wire.models import AlembicSpec, DatabaseSchemaSpec, JobSpec, MigrationStatus
from schemagate.core.wire.reasons import Reason
from schemagate.reconcile.edge import KubeEdge

JSON = dict[str, Any]
Step = migration.Step
FINAL = (migration.APPLIED, migration.ALREADY_APPLIED, migration.FAILED)


@dataclass(frozen=True)
class AlembicScripts:
    """The revision files of a ConfigMap, read as text (never imported)."""

    config_map: str
    files: Mapping[str, str]
    graph: ScriptGraph

    @property
    def heads(self) -> frozenset[str]:
        return self.graph.heads


async def read_scripts(namespace: str, alembic: AlembicSpec, kube_api: KubeEdge
                       ) -> AlembicScripts | Outcome:
    ref = alembic.config_map_ref.name
    config_map = await asyncio.to_thread(kube_api.config_map, namespace, ref)
    if config_map is None:
        return Outcome(Reason.INVALID_SPEC, f"migrations.alembic.configMapRef: ConfigMap "
                                            f"{ref} not found in namespace {namespace}")
    data: Mapping[str, str] = config_map.get("data") or {}
    try:
        # Linear in the files, but up to 1 MiB of them: not on the event loop.
        graph = await asyncio.to_thread(read_graph, data)
    except (NoScripts, InvalidScripts) as exc:
        return Outcome(Reason.INVALID_SPEC, f"ConfigMap {ref}: {exc}")
    return AlembicScripts(ref, {name: data[name] for name in graph.files}, graph)


async def job_step(body: Mapping[str, Any], spec: DatabaseSchemaSpec, job: JobSpec,
                   outcome: Outcome, previous: MigrationStatus, kube_api: KubeEdge,
                   now: datetime, scrubber: Scrubber = PATTERNS) -> Step:
    """`run: Job`: start, follow or judge the Job cloned from the backend's Deployment.
    `previous` is the status.migration last written (never a body the watch may not
    have refreshed)."""
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
            job=job, deployment=deployment, rerun=_rerun(meta))
    except jobs.InvalidJobSource as exc:
        return Step(Outcome(Reason.INVALID_SPEC, f"migrations.job.fromDeployment: {exc}"))
    decision = await _decide(kube_api, namespace, manifest, outcome, previous, spec, now,
                             scrubber=scrubber)
    if decision.create is not None and \
            (refused := await _create(kube_api, namespace, manifest, decision)) is not None:
        return Step(refused)
    return _step(decision)


async def alembic_step(body: Mapping[str, Any], spec: DatabaseSchemaSpec,
                       scripts: AlembicScripts, outcome: Outcome, previous: MigrationStatus,
                       kube_api: KubeEdge, image: str | None, now: datetime,
                       scrubber: Scrubber = PATTERNS) -> Step:
    """`run: Alembic`: the same, for a Job of the operator's image (`image`) that runs
    the ConfigMap's revision files; `outcome` was verified against their heads."""
    meta = body["metadata"]
    namespace, name = meta["namespace"], meta["name"]
    graph = dict(scripts.graph.graph)
    source = f"ConfigMap {scripts.config_map}"
    if not outcome.looked or outcome.verdict is None:
        return Step(outcome, graph=graph, graph_source=source)
    manifest = alembic_job.alembic_job(
        schema=name, uid=meta["uid"], generation=int(meta.get("generation") or 0), spec=spec,
        config_map=scripts.config_map, files=scripts.files, image=image or "", rerun=_rerun(meta))
    decision = await _decide(kube_api, namespace, manifest, outcome, previous, spec, now,
                             heads=sorted(scripts.heads), scrubber=scrubber)
    if decision.create is not None:
        if not image:
            return Step(Outcome(Reason.INVALID_SPEC, NO_IMAGE), graph=graph,
                        graph_source=source)
        await asyncio.to_thread(kube_api.ensure_service_account, namespace,
                                alembic_job.service_account(namespace))
        if (refused := await _create(kube_api, namespace, manifest, decision)) is not None:
            return Step(refused)
    return _step(decision, graph, source)


NO_IMAGE = ("migrations.run: Alembic runs the revision files in a Job of the operator's own "
            "image, and this operator was started without --verify-image IMAGE (the chart "
            "passes its own image)")


def _rerun(meta: Mapping[str, Any]) -> str | None:
    return (meta.get("annotations") or {}).get(jobs.RERUN_ANNOTATION)


async def _decide(kube_api: KubeEdge, namespace: str, manifest: JSON, outcome: Outcome,
                  previous: MigrationStatus, spec: DatabaseSchemaSpec, now: datetime,
                  heads: list[str] | None = None, scrubber: Scrubber = PATTERNS
                  ) -> Decision:
    name = manifest["metadata"]["name"]
    # A run judged for good needs no more of its pods' words: one list call less a pass.
    judged = previous.job == name and previous.outcome in FINAL
    observed = await _observe(kube_api, namespace, name, scrubber, words=not judged)
    return decide(Situation(job=name, outcome=outcome, previous=previous, observed=observed,
                            declared=len(spec.tables), now=timestamp(now), heads=heads))


async def _observe(kube_api: KubeEdge, namespace: str, name: str, scrubber: Scrubber, *,
                   words: bool) -> ObservedJob | None:
    job = await asyncio.to_thread(kube_api.job, namespace, name)
    if job is None:
        return None
    state = jobs.job_state(job)
    # While it runs, an attempt that ended says why it is tried again (the lock busy).
    ended = (job.get("status") or {}).get("failed") or state is not jobs.JobState.RUNNING
    said = await asyncio.to_thread(kube_api.job_last_words, namespace, name, scrubber) \
        if words and ended else None
    return ObservedJob(state, jobs.snapshot_of(job), said, jobs.job_failure(job))


async def _create(kube_api: KubeEdge, namespace: str, manifest: JSON,
                  decision: Decision) -> Outcome | None:
    """Creates the Job; a Job the API server refuses as written (422, 403) comes back as
    the `InvalidSpec` that says so, not as a retry loop."""
    assert decision.create is not None
    # The snapshot rides on the Job too: an operator that dies before writing status
    # still judges the run against it (a no-op is never taken for an applied run).
    try:
        await asyncio.to_thread(kube_api.create_job, namespace,
                                jobs.with_snapshot(manifest, decision.create))
    except kube.ApiError as exc:
        if exc.status is None or exc.status >= 500 or exc.status == 429:
            raise  # the API server's trouble: the loop retries
        return Outcome(Reason.INVALID_SPEC, f"the API server refused migration Job "
                                            f"{manifest['metadata']['name']}: {kube.describe(exc)}")
    return None


def _step(decision: Decision, graph: Mapping[str, frozenset[str]] | None = None,
          source: str = "") -> Step:
    return Step(decision.outcome, decision.record, decision.sooner, graph=graph,
                graph_source=source)
