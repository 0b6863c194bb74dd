"""The thin migration step of run: Alembic over the project's own Kubernetes wrapper
(a stand-in for `kube.Kube`): it reads the ConfigMap as text, creates the
ServiceAccount and the Job once, and judges the run by the verification it is given."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from typing import Any

from schemagate.core.check.verdict import Verdict
from schemagate.core.migration.job import LastWords
from schemagate.core.status.outcome import Outcome, from_verdict
from schemagate.core.wire.models import DatabaseSchemaSpec, MigrationOutcome, MigrationStatus
from schemagate.core.wire.reasons import Reason
from schemagate.reconcile import migrate
from tests.support.fake_kube import FakeKube

NOW = datetime(2026, 12, 2, 5, 0, tzinfo=UTC)
BODY = {"metadata": {"namespace": "team-a", "name": "backend-schema", "uid": "u",
                     "generation": 1}}
SPEC = DatabaseSchemaSpec.model_validate({
    "database": {"urlSecretRef": {"name": "backend-db", "key": "DATABASE_URL"}},
    "tables": ["accounts"],
    "migrations": {"run": "Alembic", "alembic": {"configMapRef": {"name": "migrations"}}}})
HOSTILE = "import os\nos._exit(1)\nrevision = 'a1'\ndown_revision = None\n"


def with_files(data: dict[str, str]) -> FakeKube:
    kube = FakeKube()
    kube.config_maps[("team-a", "migrations")] = {"data": data}
    return kube


def verdict(verified: bool) -> Outcome:
    return from_verdict(Verdict(
        verified=verified, reason=Reason.VERIFIED if verified else Reason.NO_REVISION,
        message="m", missing_tables=() if verified else ("accounts",),
        current_revisions=frozenset({"a1"}) if verified else None))


def step(kube: Any, outcome: Outcome, previous: MigrationStatus,
         image: str | None = "schemagate:1.2") -> migrate.Step:
    async def run() -> migrate.Step:
        scripts = await migrate.read_scripts("team-a", SPEC.migrations.alembic, kube)  # type: ignore[arg-type]
        assert not isinstance(scripts, Outcome), scripts
        return await migrate.alembic_step(BODY, SPEC, scripts, outcome, previous, kube, image,
                                          NOW)
    return asyncio.run(run())


def test_a_hostile_revision_is_read_never_run_and_goes_to_its_job() -> None:
    kube = with_files({"a1.py": HOSTILE})
    started = step(kube, verdict(False), MigrationStatus())  # os._exit would end this test
    assert started.record is not None and started.record.outcome is MigrationOutcome.RUNNING
    (job,) = kube.jobs.values()
    assert [a["metadata"]["name"] for a in kube.accounts] == ["schemagate-migrator"]
    assert started.graph == {"a1": frozenset()}
    assert "os._exit" not in json.dumps(job), "the files are mounted, never copied into it"

    again = step(kube, verdict(False), started.record)
    assert len(kube.jobs) == 1 and again.record == started.record  # one Job per change

    job["status"] = {"conditions": [{"type": "Complete", "status": "True"}]}
    kube.last_words = LastWords(0, json.dumps({"outcome": "Applied", "message": "applied a1"}))
    done = step(kube, verdict(True), started.record)
    assert done.outcome.verified
    assert done.record is not None and done.record.outcome is MigrationOutcome.APPLIED


def test_without_its_image_the_operator_says_so_only_when_a_job_is_needed() -> None:
    assert step(with_files({"a1.py": HOSTILE}), verdict(True), MigrationStatus(), image=None
                ).outcome.verified
    needed = step(with_files({"a1.py": HOSTILE}), verdict(False), MigrationStatus(), image=None)
    assert needed.outcome.reason is Reason.INVALID_SPEC and "--verify-image" in \
        needed.outcome.message


def test_a_config_map_that_makes_no_graph_is_invalid() -> None:
    async def run() -> object:
        return await migrate.read_scripts("team-a", SPEC.migrations.alembic,  # type: ignore[arg-type]
                                          with_files({"a1.py": "revision = f'{x}'\n"}))
    outcome = asyncio.run(run())
    assert isinstance(outcome, Outcome) and outcome.reason is Reason.INVALID_SPEC
    assert "ConfigMap migrations: a1.py: revision is not a literal" in outcome.message
