"""Passwords that are also ordinary words of a status (a year, "True", a database's
name) in another namespace's Secrets: the victim's timestamps, condition statuses and
messages stay as they are. Some of the URLs authenticate, some do not: either way the
operator has read them."""

from __future__ import annotations

from datetime import UTC, datetime

from tests.cluster.scenario import Backend
from tests.support.wait import wait_for
from tests.tenants.tenancy import Alive, Victim, reasons, taken, unharmed


def test_passwords_that_are_common_words_leave_the_victims_status_intact(
        hostile: Backend, victim: Victim, alive: Alive) -> None:
    db = hostile.db
    passwords = {
        "year": str(datetime.now(UTC).year),  # every lastTransitionTime holds it
        "boolean": "True",                    # every condition's status may be it
        "ci": "postgres",                     # the CI default, wrong here: no login
        "name": victim.db.name,               # the victim's messages quote it
    }
    for key, password in passwords.items():
        role = f"{db.user}_{key}"
        if key != "ci":
            db.admin(f"CREATE ROLE \"{role}\" LOGIN PASSWORD '{password}'")
            db.admin(f'GRANT CONNECT ON DATABASE "{db.name}" TO "{role}"')
        else:
            role = "postgres"
        url = db.pg.pod_url(database=db.name, user=role, password=password)
        hostile.secret(url, name=f"db-{key}")
        hostile.apply(hostile.schema_manifest(f"tenant-{key}", database={
            "urlSecretRef": {"name": f"db-{key}", "key": "DATABASE_URL"},
            "connectTimeoutSeconds": 2}))

    # The operator reads (and learns) a schema's Secret as it takes the schema up; the
    # victim's scale-up then makes it write the victim's status afresh.
    taken(hostile, [f"tenant-{key}" for key in passwords])
    unharmed(victim, alive)
    judged = wait_for("every hostile schema's own reason", lambda: reasons(hostile),
                      lambda seen: len(seen) == len(passwords) and all(seen.values()),
                      timeout=30)
    assert judged["tenant-ci"] == "AuthenticationFailed", judged
