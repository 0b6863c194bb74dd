"""The chart's ValidatingAdmissionPolicy on the real API server: whoever writes a
DatabaseSchema must hold the rights it makes the operator use.

The tenant is `alice` of group `team-a` (a client certificate signed by the cluster's
CA), allowed to write DatabaseSchemas and create ConfigMaps in one namespace, nothing
more. Another team's Secret and Deployment live in that namespace. Attack 4 (naming the
other team's Secret), attack 2 (cloning the other team's Deployment into a Job), a
`run: Alembic` naming a ConfigMap she may not read, or one she may read without the
right to create Jobs, are refused, each with the right it lacks; granted those rights,
the same DatabaseSchemas are admitted. Setting `schemagate.io/rerun` alone is checked
as the spec is. The operator's own writes (annotations, finalizer) are never refused.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from localenv.cluster import Cluster
from tests.cluster.fixtures import Kube
from tests.cluster.identities import Identity, identity
from tests.cluster.scenario import TABLES
from tests.cluster.test_rbac import Release, installed, release_namespace
from tests.support.wait import wait_for

__all__ = ["release_namespace"]  # a fixture used here


def schema(name: str, secret: str, deployment: str | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"database": {"urlSecretRef": {"name": secret, "key": "DATABASE_URL"}},
                            "tables": TABLES}
    if deployment is not None:
        spec["migrations"] = {"run": "Job", "job": {
            "fromDeployment": {"name": deployment, "container": "app"},
            "command": ["alembic", "upgrade", "heads"]}}
    return {"apiVersion": "schemagate.io/v1alpha1", "kind": "DatabaseSchema",
            "metadata": {"name": name}, "spec": spec}


def create(who: Identity, namespace: str, manifest: dict[str, Any]) -> tuple[bool, str]:
    result = who.run("-n", namespace, "create", "-f", "-", input=json.dumps(manifest))
    return result.returncode == 0, (result.stdout + result.stderr).strip()


def alice_reads_her_own_secret(cluster: Cluster, namespace: str, alice: Identity) -> None:
    grant(cluster, namespace, "team-a-own-secret", [
        {"apiGroups": [""], "resources": ["secrets"], "resourceNames": ["team-a-db"],
         "verbs": ["get"]}])
    wait_for("alice reads her own Secret", lambda: alice.can_i(
        "get", "secret/team-a-db", "-n", namespace))


def grant(cluster: Cluster, namespace: str, name: str, rules: list[dict[str, Any]],
          group: str = "team-a") -> None:
    manifests = [
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
         "metadata": {"name": name, "namespace": namespace}, "rules": rules},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
         "metadata": {"name": name, "namespace": namespace},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
         "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group",
                       "name": group}]}]
    result = cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(manifests))
    assert result.returncode == 0, result.stderr


@pytest.fixture
def alice(cluster: Cluster, namespace: str, tmp_path: Path, crd: None) -> Identity:
    """A tenant who may write DatabaseSchemas and create ConfigMaps in `namespace`
    (the CRD installed: can-i answers no for a resource the server does not serve)."""
    grant(cluster, namespace, "team-a-schemas", [
        {"apiGroups": ["schemagate.io"], "resources": ["databaseschemas"],
         "verbs": ["get", "list", "watch", "create", "update", "patch", "delete"]},
        {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["create"]}])
    user = identity(cluster, "alice", ["team-a"], tmp_path / "alice")
    wait_for("alice's Role in force", lambda: user.can_i(
        "create", "databaseschemas.schemagate.io", "-n", namespace))
    assert not user.can_i("get", "secrets", "-n", namespace)
    assert not user.can_i("create", "pods", "-n", namespace)
    return user


@pytest.fixture
def another_team(cluster: Cluster, namespace: str) -> None:
    """Team B's database Secret and backend Deployment, in the same namespace."""
    manifests = [
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "payments-db"},
         "stringData": {"DATABASE_URL": "postgresql://payments:B-secret@10.0.0.9/payments"}},
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "payments"},
         "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "payments"}},
                  "template": {"metadata": {"labels": {"app": "payments"}},
                               "spec": {"containers": [{"name": "app", "image": "payments:1",
                                                        "command": ["serve"]}]}}}}]
    result = cluster.kubectl("-n", namespace, "apply", "-f", "-",
                             input=yaml.safe_dump_all(manifests))
    assert result.returncode == 0, result.stderr


@pytest.fixture
def policy(cluster: Cluster, namespace: str, release_namespace: str, tmp_path: Path
           ) -> Iterator[Release]:
    """The chart installed for `namespace`, its operator scaled to 0."""
    with installed(cluster, release_namespace, {"watchNamespaces": f"{{{namespace}}}"},
                   tmp_path / "operator") as release:
        yield release


def refused_once_in_force(who: Identity, namespace: str, manifest: dict[str, Any]) -> str:
    """The refusal of `manifest`, waiting for the API server to load the new policy
    (its informer picks a new policy up within a second or so)."""
    probe = {**manifest, "metadata": {"name": f"probe-{secrets.token_hex(3)}"}}

    def attempt() -> str | None:
        admitted, text = create(who, namespace, probe)
        if admitted:
            who.run("-n", namespace, "delete", "dbschema", probe["metadata"]["name"])
            return None
        return text

    wait_for("the policy in force", attempt, timeout=30)
    admitted, text = create(who, namespace, manifest)
    assert not admitted
    return text


def test_a_tenant_naming_another_teams_secret_is_refused(
        cluster: Cluster, namespace: str, alice: Identity, another_team: None,
        policy: Release) -> None:
    refused = refused_once_in_force(alice, namespace, schema("steal-url", "payments-db"))
    assert "denied request" in refused and "ValidatingAdmissionPolicy" in refused
    assert (f"user alice may not get Secret payments-db in namespace {namespace}: "
            "spec.database.urlSecretRef may name only a Secret the DatabaseSchema's author "
            "may read") in refused
    assert "B-secret" not in refused
    listed = cluster.kubectl("-n", namespace, "get", "dbschema", "-o", "name")
    assert listed.stdout.strip() == "", "nothing was created, nothing can leak"

    # The team's owners let alice read that Secret: she may name it.
    grant(cluster, namespace, "team-a-reads-payments-db", [
        {"apiGroups": [""], "resources": ["secrets"], "resourceNames": ["payments-db"],
         "verbs": ["get"]}])
    wait_for("the grant in force", lambda: alice.can_i("get", "secret/payments-db",
                                                       "-n", namespace))
    admitted, text = create(alice, namespace, schema("steal-url", "payments-db"))
    assert admitted, text


def test_a_tenant_cloning_another_teams_deployment_is_refused(
        cluster: Cluster, namespace: str, alice: Identity, another_team: None,
        policy: Release) -> None:
    alice_reads_her_own_secret(cluster, namespace, alice)
    attack = schema("run-as-payments", "team-a-db", deployment="payments")

    refused = refused_once_in_force(alice, namespace, attack)
    assert f"user alice may not create Jobs in namespace {namespace}" in refused, refused

    grant(cluster, namespace, "team-a-jobs", [
        {"apiGroups": ["batch"], "resources": ["jobs"], "verbs": ["create"]}])
    wait_for("alice creates Jobs", lambda: alice.can_i("create", "jobs.batch", "-n", namespace))
    admitted, refused = create(alice, namespace, attack)
    assert not admitted
    assert (f"user alice may not update Deployment payments in namespace {namespace}: "
            "migrations.job.fromDeployment may name only a Deployment its author may update "
            "(the Job runs as that Deployment)") in refused, refused

    grant(cluster, namespace, "team-a-updates-payments", [
        {"apiGroups": ["apps"], "resources": ["deployments"], "resourceNames": ["payments"],
         "verbs": ["update"]}])
    wait_for("alice updates payments", lambda: alice.can_i(
        "update", "deployment/payments", "-n", namespace))
    admitted, text = create(alice, namespace, attack)
    assert admitted, text


def alembic_schema(name: str) -> dict[str, Any]:
    manifest = schema(name, "team-a-db")
    manifest["spec"]["migrations"] = {"run": "Alembic", "alembic": {
        "configMapRef": {"name": "payments-migrations"}}}
    return manifest


def alice_creates_jobs(cluster: Cluster, namespace: str, alice: Identity) -> None:
    grant(cluster, namespace, "team-a-jobs", [
        {"apiGroups": ["batch"], "resources": ["jobs"], "verbs": ["create"]}])
    wait_for("alice creates Jobs", lambda: alice.can_i("create", "jobs.batch", "-n", namespace))


def test_a_tenant_naming_a_config_map_she_may_not_read_is_refused(
        cluster: Cluster, namespace: str, alice: Identity, another_team: None,
        policy: Release) -> None:
    """run: Alembic runs the revision files of the ConfigMap it names, with the URL of
    its Secret: naming another team's migrations would run them on her database (or
    read what they hold), so the author must be able to read the ConfigMap."""
    cluster.kubectl("-n", namespace, "create", "configmap", "payments-migrations",
                    "--from-literal=0001_init.py=revision = '0001'")
    alice_reads_her_own_secret(cluster, namespace, alice)
    alice_creates_jobs(cluster, namespace, alice)
    attack = alembic_schema("run-their-migrations")

    refused = refused_once_in_force(alice, namespace, attack)
    assert (f"user alice may not get ConfigMap payments-migrations in namespace {namespace}: "
            "migrations.alembic.configMapRef may name only a ConfigMap its author may read "
            "(the Job runs its revision files)") in refused, refused

    grant(cluster, namespace, "team-a-reads-payments-migrations", [
        {"apiGroups": [""], "resources": ["configmaps"],
         "resourceNames": ["payments-migrations"], "verbs": ["get"]}])
    wait_for("alice reads the ConfigMap", lambda: alice.can_i(
        "get", "configmap/payments-migrations", "-n", namespace))
    admitted, text = create(alice, namespace, attack)
    assert admitted, text


def test_a_tenant_who_may_read_revision_files_but_not_create_jobs_may_not_run_them(
        cluster: Cluster, namespace: str, alice: Identity, another_team: None,
        policy: Release) -> None:
    """Reading a ConfigMap is not running it: run: Alembic starts a Job with the URL of
    the Secret, so its author must be able to create Jobs as for run: Job."""
    cluster.kubectl("-n", namespace, "create", "configmap", "payments-migrations",
                    "--from-literal=0001_init.py=revision = '0001'")
    alice_reads_her_own_secret(cluster, namespace, alice)
    grant(cluster, namespace, "team-a-reads-payments-migrations", [
        {"apiGroups": [""], "resources": ["configmaps"],
         "resourceNames": ["payments-migrations"], "verbs": ["get"]}])
    wait_for("alice reads the ConfigMap", lambda: alice.can_i(
        "get", "configmap/payments-migrations", "-n", namespace))
    assert not alice.can_i("create", "jobs.batch", "-n", namespace)

    refused = refused_once_in_force(alice, namespace, alembic_schema("run-as-operator"))
    assert (f"user alice may not create Jobs in namespace {namespace}: migrations.run: "
            "Alembic needs its author to hold that right") in refused, refused

    alice_creates_jobs(cluster, namespace, alice)
    admitted, text = create(alice, namespace, alembic_schema("run-as-operator"))
    assert admitted, text


def test_setting_the_rerun_annotation_needs_the_rights_of_the_spec(
        cluster: Cluster, namespace: str, alice: Identity, another_team: None,
        policy: Release, tmp_path: Path) -> None:
    """schemagate.io/rerun runs the Job's command again as the Deployment it clones. Bob
    may update DatabaseSchemas (their metadata included) and read the Secret, not create
    Jobs: he may not rerun alice's migration; other metadata he may still change."""
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
    assert not bob.can_i("create", "jobs.batch", "-n", namespace)
    # In force once bob cannot name another team's Secret.
    refused_once_in_force(bob, namespace, schema("probe", "payments-db"))
    wait_for("alice updates payments", lambda: alice.can_i(
        "update", "deployment/payments", "-n", namespace))
    admitted, text = create(alice, namespace, schema("migrate", "team-a-db", "payments"))
    assert admitted, text

    rerun = bob.run("-n", namespace, "annotate", "dbschema", "migrate",
                    "schemagate.io/rerun=by-bob")
    assert rerun.returncode != 0, rerun.stdout
    assert (f"user bob may not create Jobs in namespace {namespace}: the annotation "
            "schemagate.io/rerun runs the migration Job again, which needs its author to "
            "hold that right") in rerun.stderr, rerun.stderr
    annotations = json.loads(cluster.kubectl(
        "-n", namespace, "get", "dbschema", "migrate", "-o", "json").stdout)["metadata"].get(
        "annotations") or {}
    assert "schemagate.io/rerun" not in annotations

    labelled = bob.run("-n", namespace, "label", "dbschema", "migrate", "team=payments")
    assert labelled.returncode == 0, labelled.stderr  # other metadata: not checked
    by_alice = alice.run("-n", namespace, "annotate", "dbschema", "migrate",
                         "schemagate.io/rerun=by-alice")
    assert by_alice.returncode == 0, by_alice.stderr
    removed = bob.run("-n", namespace, "annotate", "dbschema", "migrate",
                      "schemagate.io/rerun-")
    assert removed.returncode != 0, "removing it changes the Job's hash: a rerun too"


def test_the_operators_own_writes_are_never_refused(
        cluster: Cluster, namespace: str, kube: Kube, another_team: None,
        policy: Release) -> None:
    """The operator may not update Deployments; its annotations and finalizer on a
    `run: Job` DatabaseSchema change no spec and pass."""
    created = cluster.kubectl("-n", namespace, "create", "-f", "-",
                              input=json.dumps(schema("payments", "payments-db", "payments")))
    assert created.returncode == 0, created.stderr
    operator = policy.identity
    assert not operator.can_i("update", "deployments.apps", "-n", namespace)
    patch = json.dumps({"metadata": {"annotations": {"schemagate.io/last-handled": "x"},
                                     "finalizers": ["schemagate.io/finalizer"]}})
    patched = subprocess_patch(operator, namespace, patch)
    assert patched.returncode == 0, patched.stderr
    removed = subprocess_patch(operator, namespace, json.dumps(
        {"metadata": {"finalizers": None}}))
    assert removed.returncode == 0, removed.stderr


def subprocess_patch(who: Identity, namespace: str, patch: str) -> Any:
    return who.run("-n", namespace, "patch", "dbschema", "payments", "--type=merge", "-p", patch)


def test_a_tenant_who_may_not_create_pods_may_not_verify_from_a_pod(
        cluster: Cluster, namespace: str, alice: Identity, another_team: None,
        policy: Release) -> None:
    alice_reads_her_own_secret(cluster, namespace, alice)
    in_pod = schema("verify-as-payments", "team-a-db")
    in_pod["spec"]["database"].update(verifyFrom="Pod", verifyPod={
        "fromDeployment": {"name": "payments", "container": "app"}})

    refused = refused_once_in_force(alice, namespace, in_pod)
    assert (f"user alice may not create pods in namespace {namespace}: database.verifyFrom: "
            "Pod runs a pod for its author") in refused, refused

    grant(cluster, namespace, "team-a-pods", [
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["create"]}])
    wait_for("alice creates pods", lambda: alice.can_i("create", "pods", "-n", namespace))
    admitted, text = create(alice, namespace, in_pod)
    assert admitted, text
