"""kstatus and Argo CD read the DatabaseSchema as the real API server serves it."""

from __future__ import annotations

from localenv import operator as local_operator
from tests import kstatus
from tests.cluster.scenario import Backend, Database
from tests.support.wait import wait_for


def test_a_new_schema_nobody_checked_is_in_progress(backend: Backend) -> None:
    backend.schema()  # no operator runs: nothing will ever write its status
    obj = backend.get("dbschema", "backend-schema")
    assert obj["status"] == {"observedGeneration": 0}
    assert kstatus.compute(obj)[0] == kstatus.IN_PROGRESS


def test_a_missing_secret_is_stalled_and_fixing_it_makes_it_current(
        backend: Backend, db: Database, operator: local_operator.OperatorProcess) -> None:
    backend.schema()
    stalled = backend.wait_reason("SecretNotFound")
    obj = backend.get("dbschema", "backend-schema")
    assert kstatus.compute(obj) == (kstatus.FAILED, stalled["message"])
    assert all(c["observedGeneration"] == obj["metadata"]["generation"]
               for c in obj["status"]["conditions"])

    backend.secret(db.url())
    backend.wait_reason("NoRevision")
    assert kstatus.compute(backend.get("dbschema", "backend-schema"))[0] == \
        kstatus.IN_PROGRESS
    db.migrate()
    backend.wait_reason("Verified")
    wait_for("kstatus Current", lambda: kstatus.compute(
        backend.get("dbschema", "backend-schema"))[0] == kstatus.CURRENT or None)
