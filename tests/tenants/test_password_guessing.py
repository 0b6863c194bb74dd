"""Guessing a database's password through the operator: after credentials are refused,
the next attempt waits 10 s whatever the tenant does. Five rewrites of the Secret, each
a new wrong password, within that wait bring no attempt sooner: the connections a proxy
in front of the database counts are 10 s apart, and the second refusal's message says
the wait doubled (two refusals, nothing in between)."""

from __future__ import annotations

import time

from tests.cluster.scenario import Backend
from tests.stalling import PLAIN, StallingProxy
from tests.support.wait import wait_for
from tests.tenants.tenancy import Alive, Victim, unharmed

SCHEMA = "guessing"
FIRST_WAIT, REWRITES = 10.0, 5


def test_rewriting_a_refused_secret_brings_no_attempt_before_the_backoff_ends(
        hostile: Backend, victim: Victim, alive: Alive) -> None:
    db = hostile.db
    proxy = StallingProxy((str(db.pg.pod_host), db.pg.port))
    try:
        def guess(n: int) -> None:
            url = db.url(password=f"guess-{n}", port=proxy.port)
            hostile.secret(f"{url}?{PLAIN}")

        guess(0)
        hostile.schema(SCHEMA)
        refused = wait_for("the first refusal", lambda: hostile.condition(SCHEMA),
                           lambda c: c.get("reason") == "AuthenticationFailed", timeout=60)
        assert f"next attempt in {FIRST_WAIT:g} s" in refused["message"], refused
        attempts = len(proxy.accepted_at)
        assert attempts >= 1, "the refusal came from no connection"

        for n in range(1, REWRITES + 1):
            guess(n)
        rewritten = time.monotonic()
        assert rewritten - proxy.accepted_at[attempts - 1] < FIRST_WAIT, \
            "the rewrites took longer than the wait; nothing is shown"

        wait_for("the attempt after the wait", lambda: len(proxy.accepted_at),
                 lambda seen: seen > attempts, timeout=FIRST_WAIT + 20)
        gap = proxy.accepted_at[attempts] - proxy.accepted_at[attempts - 1]
        assert gap >= FIRST_WAIT - 0.5, \
            f"an attempt {gap:.1f} s after the refusal: a Secret write brought it sooner"
        doubled = wait_for("the second refusal's message", lambda: hostile.condition(SCHEMA),
                           lambda c: "next attempt in" in c.get("message", "")
                           and f"in {FIRST_WAIT:g} s" not in c["message"], timeout=30)
        assert f"next attempt in {2 * FIRST_WAIT:g} s" in doubled["message"], doubled
    finally:
        proxy.close()
    unharmed(victim, alive)
