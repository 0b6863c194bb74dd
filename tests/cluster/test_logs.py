"""`schemagate run --log-format json`: one object a line, with Cloud Logging's severity."""

from __future__ import annotations

import json
from pathlib import Path

from localenv import operator as local_operator
from localenv.cluster import Cluster
from tests.cluster.scenario import Backend


def test_json_logs_carry_severity_and_the_object(cluster: Cluster, backend: Backend,
                                                 tmp_path: Path) -> None:
    log = tmp_path / "operator.log"
    operator = local_operator.start(cluster.kubeconfig, [backend.namespace], log,
                                    extra_args=["--log-format", "json"])
    try:
        backend.schema()  # no Secret: a transition, logged at INFO
        backend.wait_reason("SecretNotFound")
    finally:
        backend.kubectl("delete", "dbschema", "--all", "--timeout=30s")
        operator.stop()
    records = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    assert records and all(r["severity"] in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}
                           for r in records)
    change = next(r for r in records if r["message"].startswith("SecretNotFound:"))
    assert change["severity"] == "INFO"
    assert change["object"]["name"] == "backend-schema"
    assert change["object"]["namespace"] == backend.namespace
