"""A `run: Job` migration that prints credentials in the shapes a tool or a shell trace
writes them (YAML `password: x`, `DEPLOY_TOKEN=x`) and fails: its output is quoted in
the schema's MigrationFailed, with both values masked (neither is the schema's Secret:
the shapes alone say they are secrets), and the victim's new pod opens."""

from __future__ import annotations

import json

import pytest

from tests.cluster.scenario import Backend
from tests.tenants.tenancy import Alive, Victim, unharmed

pytestmark = pytest.mark.tenants
SCHEMA = "leaky"
#: The values the Job prints; its command spells them in pieces, so only its output
#: holds them whole.
PASSWORD, TOKEN = "hunter-yaml-1f3c", "tok-9b2e77"
LEAK = ('p=yaml; t=tok; echo "connecting"; echo "password: hunter-$p-1f3c"; '
        'echo "DEPLOY_TOKEN=$t-9b2e77"; exit 1')


def test_a_failing_jobs_output_is_quoted_with_its_passwords_and_tokens_masked(
        hostile: Backend, victim: Victim, alive: Alive) -> None:
    hostile.secret(hostile.db.url())
    hostile.deployment(gate=SCHEMA, replicas=1)
    hostile.schema(SCHEMA, migrations={"run": "Job", "job": {
        "fromDeployment": {"name": "backend", "container": "app"},
        "command": ["sh", "-c", LEAK]}})

    failed = hostile.wait_reason("MigrationFailed", SCHEMA, timeout=90)
    applied = hostile.condition(SCHEMA, type="MigrationsApplied")
    assert applied.get("reason") == "MigrationFailed", applied
    # The output is quoted (its keys are there), its values are not.
    for message in (failed["message"], applied["message"]):
        assert "password:" in message and "DEPLOY_TOKEN=" in message, message
    events = hostile.kubectl("get", "events", "-o", "json")
    shown = json.dumps(hostile.get("dbschema", SCHEMA)) + events
    leaked = [value for value in (PASSWORD, TOKEN) if value in shown]
    assert not leaked, f"{leaked} shown in the schema or its Events: {applied['message']}"
    unharmed(victim, alive)
