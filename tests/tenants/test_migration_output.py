"""A `run: Job` migration whose output holds credentials in the shapes a shell trace and
a tool write them (`+ DEPLOY_TOKEN=x cmd` from `sh -x`, YAML `password: x`) and fails:
its output is quoted in the schema's MigrationFailed and MigrationsApplied, with both
values masked (neither is the schema's Secret: the shapes alone say they are secrets),
and the victim's new pod opens."""

from __future__ import annotations

import json

from tests.cluster.scenario import Backend
from tests.tenants.tenancy import Alive, Victim, unharmed

SCHEMA = "leaky"
#: The values the Job's output holds; its command spells them in pieces, so only the
#: output (the trace of `sh -x`, then what it prints) holds them whole. One stream: the
#: kubelet may take the termination message before the other stream's last lines.
PASSWORD, TOKEN = "hunter-yaml-1f3c", "tok-9b2e77"
LEAK = ('exec 2>&1; p=yaml; t=tok; set -x; DEPLOY_TOKEN=$t-9b2e77 true; set +x; '
        'echo "password: hunter-$p-1f3c"; exit 1')


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
