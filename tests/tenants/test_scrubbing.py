"""A 96 KB Secret value shaped to make a regular expression backtrack ("a-a-a-…", and
the same after `password=`): the operator refuses it as that schema's InvalidSpec, in
well under a second, and every other namespace goes on as before."""

from __future__ import annotations

import re

from tests.cluster.scenario import Backend
from tests.support.wait import wait_for
from tests.tenants.tenancy import Alive, Victim, reasons, taken, unharmed

SIZE = 96 * 1024


def test_a_96_kb_secret_value_is_the_hostile_schemas_invalid_spec_and_nobody_elses_delay(
        hostile: Backend, victim: Victim, alive: Alive) -> None:
    dashes = ("a-" * SIZE)[:SIZE]
    values = {"dashes": dashes, "keyed": "password=" + dashes}
    for key, value in values.items():
        hostile.secret(value, name=f"db-{key}")
        hostile.apply(hostile.schema_manifest(f"tenant-{key}", database={
            "urlSecretRef": {"name": f"db-{key}", "key": "DATABASE_URL"},
            "connectTimeoutSeconds": 2}))
    # One taken is enough to go on: a frozen operator never takes the other.
    taken(hostile, [f"tenant-{key}" for key in values], every=False)

    unharmed(victim, alive)
    judged = wait_for("each hostile schema's own reason", lambda: reasons(hostile),
                      lambda found: all(found.values()), timeout=30)
    assert set(judged.values()) == {"InvalidSpec"}, judged
    for key in values:
        message = hostile.condition(f"tenant-{key}")["message"]
        assert re.search(r"\d[\d,]*\s*(KiB|bytes|characters)", message), message
        assert "a-a-a-a-" not in message, "the value itself is never quoted"
