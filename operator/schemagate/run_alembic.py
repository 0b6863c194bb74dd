"""`run: Alembic`: the operator runs `upgrade heads` itself, from revision files in a
ConfigMap, only when the scripts' heads are not already applied."""

from __future__ import annotations

import asyncio
import dataclasses
import shutil
import tempfile
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path

from schemagate import database, kube, migrations
from schemagate.core import migration
from schemagate.core.conditions import timestamp
from schemagate.core.models import AlembicSpec, DatabaseSchemaSpec, MigrationStatus
from schemagate.core.reasons import Reason
from schemagate.core.status import Outcome

#: After `MigrationLockBusy`: another migrator is at work; look again soon.
LOCK_BUSY_RETRY = 5.0
RUNNER = "alembic upgrade heads"

Verify = Callable[[frozenset[str]], Awaitable[Outcome]]
Step = migration.Step


async def alembic_step(namespace: str, spec: DatabaseSchemaSpec, alembic: AlembicSpec,
                       previous: MigrationStatus, url: str, verify: Verify,
                       kube_api: kube.Kube, now: datetime) -> Step:
    ref = alembic.config_map_ref.name
    config_map = await asyncio.to_thread(kube_api.config_map, namespace, ref)
    if config_map is None:
        return Step(Outcome(Reason.INVALID_SPEC, f"migrations.alembic.configMapRef: ConfigMap "
                                                 f"{ref} not found in namespace {namespace}"))
    workdir = Path(tempfile.mkdtemp(prefix="schemagate-alembic-"))
    try:
        try:
            scripts = await asyncio.to_thread(migrations.scripts_from_files,
                                              config_map.get("data") or {}, workdir)
        except (migrations.NoScripts, migrations.InvalidScripts) as exc:
            return Step(Outcome(Reason.INVALID_SPEC, f"ConfigMap {ref}: {exc}"))
        step = await _step(spec, scripts, previous, url, verify, now)
        return dataclasses.replace(step, graph=scripts.graph, graph_source=f"ConfigMap {ref}")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


async def _step(spec: DatabaseSchemaSpec, scripts: migrations.Scripts,
                previous: MigrationStatus, url: str, verify: Verify, now: datetime) -> Step:
    heads = sorted(scripts.heads)
    same_scripts = previous.heads == heads
    outcome = await verify(scripts.heads)
    if outcome.verified or not outcome.looked or outcome.verdict is None:
        record = previous if same_scripts else MigrationStatus(
            outcome=migration.ALREADY_APPLIED, heads=heads, finished_at=timestamp(now))
        return Step(migration.judged(outcome), record if outcome.verified else None)
    if migration.gives_up(previous, heads):
        failed = migration.failed(RUNNER, f"{previous.message} (not retried after "
                                          f"{previous.failures} failures: fix the revision "
                                          "files in the ConfigMap)", outcome.verdict)
        return Step(migration.judged(failed), previous)
    declared = len(spec.tables)
    before = migration.snapshot(outcome.verdict, declared)
    started = timestamp(now)
    try:
        result = await asyncio.to_thread(
            migrations.upgrade, url, scripts, schema=spec.database.schema_,
            version_table=spec.migrations.version_table,
            version_table_schema=spec.version_table_schema,
            connect_timeout=spec.database.connect_timeout_seconds)
    except migrations.MigrationLockBusy as exc:
        busy = migration.with_migrations(outcome, None, migration.MIGRATION_LOCK_BUSY, str(exc))
        return Step(busy, None, LOCK_BUSY_RETRY)
    except migrations.MigrationFailed as exc:
        failures = migration.failures_after_one_more(previous, heads)
        record = MigrationStatus(started_at=started, finished_at=timestamp(now),
                                 outcome=migration.FAILED, message=exc.message, heads=heads,
                                 before=before, failures=failures)
        failed = migration.failed(RUNNER, exc.message, outcome.verdict,
                                  retries_left=failures < migration.MAX_FAILURES)
        return Step(migration.judged(failed), record)
    except database.ConnectionFailed as exc:
        return Step(Outcome(exc.reason, exc.message))
    after = await verify(scripts.heads)
    if after.verdict is None:
        return Step(after)
    judged, word = migration.judge_success(RUNNER, after.verdict, before, declared)
    record = MigrationStatus(started_at=started, finished_at=timestamp(now),
                             outcome=word if result.applied else migration.ALREADY_APPLIED,
                             message=result.message, heads=heads, before=before)
    return Step(migration.judged(judged), record)
