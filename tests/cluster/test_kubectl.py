"""What `kubectl get` and `kubectl apply` show a person, on a real API server."""

from __future__ import annotations

import yaml

from localenv import operator as local_operator
from tests.cluster.scenario import TABLES, Backend, Database
from tests.support.wait import wait_for


def test_columns_say_what_is_missing_and_how_many_pods_are_open(
        backend: Backend, db: Database, operator: local_operator.OperatorProcess) -> None:
    backend.secret(db.url())
    backend.deployment(replicas=2)
    backend.schema()
    backend.wait_reason("NoRevision")
    wait_for("both pods gated", lambda: backend.gate_states() == ["False", "False"])

    def row(*args: str) -> str:
        return backend.kubectl("get", *args, "backend-schema", "--no-headers")

    wide = wait_for("the gate column", lambda: "0/2" in (r := row("dbschema", "-o", "wide"))
                    and r)
    missing = f"3 tables: {', '.join(TABLES)}"  # in the order declared
    assert missing in wide and "no version table" in wide
    assert "[" not in wide, "no JSON arrays in the columns"
    assert "0/2" not in row("dbschema"), "the gate is a wide column"
    header = backend.kubectl("get", "dbschema", "-o", "wide").splitlines()[0].split()
    assert header == ["NAME", "READY", "REASON", "MISSING", "REVISION", "GATE", "AGE"]
    # `kubectl get schemagate` lists the project's kinds.
    assert "backend-schema" in backend.kubectl("get", "schemagate")

    db.migrate()
    backend.wait_reason("Verified")
    done = wait_for("the verified row", lambda: "2/2" in (r := row("dbschema", "-o", "wide"))
                    and r)
    assert "none" in done and "3f2a9c" in done


def test_a_name_too_long_for_the_gate_is_refused(backend: Backend) -> None:
    manifest = {"apiVersion": "schemagate.io/v1alpha1", "kind": "DatabaseSchema",
                "metadata": {"name": "x" * 64},
                "spec": {"database": {"urlSecretRef": {"name": "db", "key": "URL"}},
                         "tables": ["t"]}}
    result = backend.cluster.kubectl("-n", backend.namespace, "create", "-f", "-",
                                     input=yaml.safe_dump(manifest))
    assert result.returncode != 0
    assert "metadata.name must be at most 63 characters" in result.stderr
    manifest["metadata"]["name"] = "x" * 63
    backend.apply(manifest)
