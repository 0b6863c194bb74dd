"""SIGTERM stops the operator within 10 s whatever is in flight."""

from __future__ import annotations

import signal
import time

from tests.chaos.conftest import Backend, Database, Operator, healthy, through
from tests.cluster.scenario import TABLES
from tests.stalling import StallingProxy
from tests.support.wait import wait_for


def test_sigterm_with_checks_stuck_in_a_silent_database(
        backend: Backend, db: Database, stalled: StallingProxy,
        chaos_operator: Operator) -> None:
    healthy(backend, db, TABLES)
    backend.secret(through(db, stalled), name="stalled-db")
    for index in range(10):
        manifest = backend.schema_manifest(f"stuck-{index}")
        manifest["spec"]["database"]["urlSecretRef"]["name"] = "stalled-db"
        manifest["spec"]["database"]["connectTimeoutSeconds"] = 60  # the longest there is
        backend.apply(manifest)
    process = chaos_operator.start()
    wait_for("checks stuck in the database", lambda: stalled.stalled, lambda n: n >= 1,
             timeout=30)

    started = time.monotonic()
    process.process.send_signal(signal.SIGTERM)
    process.process.wait(timeout=30)
    assert time.monotonic() - started < 10
