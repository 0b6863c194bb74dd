"""`kubectl schemagate`, run as a person runs it: the pinned kubectl finds the plugin
`kubectl-schemagate` on PATH (the virtual environment's bin), on the real cluster."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from localenv import operator as local_operator
from localenv.cluster import Cluster
from tests.cluster.identities import Identity, identity
from tests.cluster.scenario import TABLES, Backend, Database
from tests.cluster.test_admission import (
    alice,
    alice_creates_jobs,
    alice_reads_her_own_secret,
    another_team,
    create,
    grant,
    policy,
    refused_once_in_force,
    schema,
)
from tests.cluster.test_rbac import Release, release_namespace
from tests.support.wait import wait_for

__all__ = ["alice", "another_team", "policy", "release_namespace"]  # fixtures used here

#: Where `pip install` put the plugin: beside this interpreter.
PLUGIN_BIN = Path(sys.executable).parent


def plugin(cluster: Cluster, *args: str, kubeconfig: Path | None = None
           ) -> subprocess.CompletedProcess[str]:
    """`kubectl schemagate ARGS`, output piped; the admin's KUBECONFIG unless a person's
    kubeconfig is given with --kubeconfig."""
    env = {**os.environ, "PATH": f"{PLUGIN_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
           "KUBECONFIG": str(cluster.kubeconfig)}
    env.pop("NO_COLOR", None)
    extra = ("--kubeconfig", str(kubeconfig)) if kubeconfig is not None else ()
    return subprocess.run([str(cluster.bin_dir / "kubectl"), "schemagate", *args, *extra],
                          env=env, capture_output=True, text=True, timeout=60, check=False)


def test_status_of_a_ready_schema(backend: Backend, db: Database,
                                  operator: local_operator.OperatorProcess) -> None:
    db.migrate()
    backend.secret(db.url())
    backend.deployment(replicas=1)
    backend.schema()
    backend.wait_reason("Verified")
    wait_for("the pod open", lambda: backend.gate_states() == ["True"])

    shown = wait_for("a Ready screen", lambda: (r := plugin(
        backend.cluster, "status", "backend-schema", "-n", backend.namespace)).returncode == 0
        and r)
    assert isinstance(shown, subprocess.CompletedProcess)
    out = shown.stdout
    print(out)  # the sample in docs/kubectl-plugin.md
    assert "\x1b" not in out, "piped: no colour"
    assert "Ready  Verified" in out
    assert f"{db.name} on " in out and f" as {db.user}" in out
    assert "system identifier" in out
    assert "3f2a9c" in out and f"{len(TABLES)} declared, all present" in out
    assert "1 of 1 pods open" in out

    as_json = plugin(backend.cluster, "status", "-n", backend.namespace, "-o", "json")
    assert as_json.returncode == 0, as_json.stderr
    (only,) = json.loads(as_json.stdout)["schemas"]
    assert only["name"] == "backend-schema" and only["ready"] is True
    assert only["database"]["database"] == db.name and only["tables_missing"] == []

    coloured = plugin(backend.cluster, "status", "backend-schema", "-n", backend.namespace,
                      "--color", "always")
    assert "\x1b[32mReady\x1b[0m" in coloured.stdout  # green, as on a terminal
    for output in (out, as_json.stdout, coloured.stdout):
        assert db.password not in output


def test_a_missing_table_holds_the_pods_and_why_names_it(
        backend: Backend, db: Database, operator: local_operator.OperatorProcess) -> None:
    db.migrate()
    db.execute("DROP TABLE subscriptions CASCADE")  # stamped at head, one table gone
    backend.secret(db.url())
    backend.deployment(replicas=2)
    backend.schema()
    backend.wait_reason("StampedButMissing")
    # A pod seen before a check newer than it is closed as AwaitingFreshCheck first; the
    # screen is read once both carry the check's own reason.
    wait_for("both pods held by the missing table", lambda: [
        (c.get("status"), c.get("reason")) for c in
        (backend.pod_condition(p, "schemagate.io/backend-schema") for p in backend.pods())]
        == [("False", "StampedButMissing")] * 2)

    status = plugin(backend.cluster, "status", "backend-schema", "-n", backend.namespace)
    print(status.stdout)
    assert status.returncode == 3, status.stderr  # shown, not Ready
    assert "Not ready  StampedButMissing" in status.stdout
    assert "3 declared, 1 missing: subscriptions" in status.stdout
    assert "0 of 2 pods open" in status.stdout
    pods = sorted(p["metadata"]["name"] for p in backend.pods())
    for name in pods:
        assert f"{name}  " in status.stdout
    assert status.stdout.count("held: StampedButMissing") == 2

    why = plugin(backend.cluster, "why", f"pod/{pods[0]}", "-n", backend.namespace)
    print(why.stdout)
    assert why.returncode == 3, why.stderr  # the pod is held
    assert "DatabaseSchema backend-schema (readiness gate): held, StampedButMissing" in why.stdout
    assert "subscriptions" in why.stdout.split("Waits for", 1)[1]
    assert "Missing     subscriptions" in why.stdout
    assert "Next step" in why.stdout
    as_json = json.loads(plugin(backend.cluster, "why", f"pod/{pods[0]}", "-n",
                                backend.namespace, "-o", "json").stdout)
    assert as_json["held"] is True
    assert as_json["gates"][0]["missing_tables"] == ["subscriptions"]

    assert db.password not in status.stdout + why.stdout

    absent = plugin(backend.cluster, "why", "pod/no-such-pod", "-n", backend.namespace)
    assert absent.returncode == 1 and "no pod no-such-pod" in absent.stderr


def test_rerun_sets_the_annotation_and_is_checked_as_the_spec(
        cluster: Cluster, namespace: str, alice: Identity, another_team: None,
        policy: Release, tmp_path: Path) -> None:
    """Alice holds the rights her `run: Job` spec lends; bob may patch DatabaseSchemas but
    not create Jobs: the admission policy refuses his rerun, in his own name."""
    alice_reads_her_own_secret(cluster, namespace, alice)
    alice_creates_jobs(cluster, namespace, alice)
    grant(cluster, namespace, "team-a-updates-payments", [
        {"apiGroups": ["apps"], "resources": ["deployments"], "resourceNames": ["payments"],
         "verbs": ["update"]}])
    grant(cluster, namespace, "team-b-schemas", [
        {"apiGroups": ["schemagate.io"], "resources": ["databaseschemas"],
         "verbs": ["get", "list", "create", "update", "patch"]},
        {"apiGroups": [""], "resources": ["secrets"], "resourceNames": ["team-a-db"],
         "verbs": ["get"]}], group="team-b")
    bob = identity(cluster, "bob", ["team-b"], tmp_path / "bob")
    wait_for("bob's Role in force", lambda: bob.can_i("get", "secret/team-a-db",
                                                      "-n", namespace))
    refused_once_in_force(bob, namespace, schema("probe", "payments-db"))
    wait_for("alice updates payments", lambda: alice.can_i(
        "update", "deployment/payments", "-n", namespace))
    admitted, text = create(alice, namespace, schema("migrate", "team-a-db", "payments"))
    assert admitted, text

    def rerun_value() -> str | None:
        obj: dict[str, Any] = json.loads(cluster.kubectl(
            "-n", namespace, "get", "dbschema", "migrate", "-o", "json").stdout)
        value = (obj["metadata"].get("annotations") or {}).get("schemagate.io/rerun")
        return None if value is None else str(value)

    refused = plugin(cluster, "rerun", "migrate", "-n", namespace, kubeconfig=bob.kubeconfig)
    print(refused.stderr)
    assert refused.returncode == 1, refused.stdout
    assert (f"user bob may not create Jobs in namespace {namespace}: the annotation "
            "schemagate.io/rerun runs the migration Job again") in refused.stderr
    assert rerun_value() is None

    first = plugin(cluster, "rerun", "migrate", "-n", namespace, kubeconfig=alice.kubeconfig)
    print(first.stdout)
    assert first.returncode == 0, first.stderr
    value = rerun_value()
    assert value is not None and f"schemagate.io/rerun={value}" in first.stdout
    again = plugin(cluster, "rerun", "migrate", "-n", namespace, "-o", "json",
                   kubeconfig=alice.kubeconfig)
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["value"] == rerun_value() != value


def test_the_kubeconfig_and_context_are_the_persons(backend: Backend, tmp_path: Path) -> None:
    """--context names a context of the kubeconfig; one that is not there is an error,
    exit 1; a person who may not list DatabaseSchemas is told so by the API server."""
    backend.schema()
    unknown = plugin(backend.cluster, "status", "--context", "nowhere")
    assert unknown.returncode == 1 and "nowhere" in unknown.stderr
    nobody = identity(backend.cluster, "nobody", [], tmp_path / "nobody")
    forbidden = plugin(backend.cluster, "status", "-n", backend.namespace,
                       kubeconfig=nobody.kubeconfig)
    assert forbidden.returncode == 1
    assert "403" in forbidden.stderr and "nobody" in forbidden.stderr
    usage = plugin(backend.cluster, "why")
    assert usage.returncode == 2
