"""The chart's RBAC proven on the real API server, not assumed.

The chart is installed with `helm install` (its operator scaled to 0: no image runs
here); the operator then runs as a local process holding a client certificate the
API server reads as the chart's ServiceAccount (user `system:serviceaccount:NS:NAME`,
groups `system:serviceaccounts` and `system:serviceaccounts:NS`, the names a token of
that account carries and RBAC binds). Under that identity it must pass the gate test
and leave no permission error in its log; `kubectl auth can-i`, as the same identity,
shows what it may and may not do.

Cluster-wide mode is proven by `can-i` only: an operator watching every namespace of
this shared cluster would act on other tests' resources.
"""

from __future__ import annotations

import contextlib
import re
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from localenv import operator as local_operator
from localenv.cluster import Cluster
from localenv.postgres import LocalPostgres
from tests.chart import CHART, documented_rights, helm, set_flags
from tests.cluster.fixtures import Kube
from tests.cluster.identities import Identity, identity
from tests.cluster.scenario import BACKEND_IMAGE, IMAGE_MIGRATIONS, Backend, Database
from tests.support.wait import wait_for

CRD = "crd/databaseschemas.schemagate.io"


def service_account_identity(cluster: Cluster, namespace: str, name: str,
                             directory: Path) -> Identity:
    """A client certificate for the ServiceAccount, signed by the cluster's CA."""
    return identity(cluster, f"system:serviceaccount:{namespace}:{name}",
                    ["system:serviceaccounts", f"system:serviceaccounts:{namespace}"],
                    directory)


@dataclass(frozen=True)
class Release:
    name: str
    namespace: str
    identity: Identity

    @property
    def author_rights(self) -> list[str]:
        """The operator's arguments the chart gives: its author-rights policy's binding
        (the release's name holds the chart's, so it is the full name)."""
        return ["--author-rights-binding", f"{self.name}-author-rights"]


@contextlib.contextmanager
def installed(cluster: Cluster, namespace: str, values: dict[str, str],
              directory: Path) -> Iterator[Release]:
    """The chart installed with its operator scaled to 0, then uninstalled."""
    # Cluster-scoped objects are named after the release, so each test has its own;
    # the user name (at most 64 characters in a certificate's CN) must stay short.
    name = f"schemagate-{secrets.token_hex(3)}"
    kubeconfig = ("--kubeconfig", str(cluster.kubeconfig))
    result = helm("install", name, str(CHART), "--namespace", namespace, *kubeconfig,
                  "--set", "replicaCount=0", *set_flags(values))
    try:
        assert result.returncode == 0, result.stderr
        established = cluster.kubectl("wait", "--for=condition=Established", "--timeout=30s",
                                      CRD)
        assert established.returncode == 0, established.stderr
        # The chart's full name: the release name already contains the chart's.
        identity = service_account_identity(cluster, namespace, name, directory)
        yield Release(name, namespace, identity)
    finally:
        helm("uninstall", name, "--namespace", namespace, *kubeconfig)


@pytest.fixture
def release_namespace(kube: Kube) -> Iterator[str]:
    """Where the chart is installed: not a namespace the operator watches."""
    name = f"sg-system-{secrets.token_hex(3)}"
    kube.core.create_namespace({"metadata": {"name": name,
                                             "labels": {"schemagate.io/test": "true"}}})
    yield name
    kube.core.delete_namespace(name)


@pytest.fixture
def watching_one(cluster: Cluster, namespace: str, release_namespace: str,
                 tmp_path: Path) -> Iterator[Release]:
    with installed(cluster, release_namespace, {"watchNamespaces": f"{{{namespace}}}"},
                   tmp_path / "identity") as release:
        yield release


@pytest.fixture
def watching_all(cluster: Cluster, release_namespace: str, tmp_path: Path
                 ) -> Iterator[Release]:
    with installed(cluster, release_namespace, {}, tmp_path / "identity") as release:
        yield release


def test_the_operator_holds_and_opens_the_gate_as_its_service_account(
        cluster: Cluster, namespace: str, watching_one: Release, postgres: LocalPostgres,
        tmp_path: Path) -> None:
    db = Database(postgres)
    backend = Backend(cluster, namespace, db)
    assert watching_one.identity.can_i("get", "secrets", "-n", namespace)
    log = tmp_path / "operator.log"
    operator = local_operator.start(watching_one.identity.kubeconfig, [namespace], log)
    try:
        backend.secret(db.url())
        backend.deployment(replicas=2)
        backend.schema()
        db.migrate("alembic-empty.ini")  # the incident: exits 0, applies nothing
        backend.wait_reason("NoRevision")
        wait_for("both gates closed", lambda: backend.gate_states() == ["False", "False"])
        assert not backend.available()

        db.migrate()
        wait_for("both gates open", lambda: backend.gate_states() == ["True", "True"],
                 timeout=20)
        wait_for("the Deployment Available", backend.available, timeout=30)
        waited = backend.kubectl("wait", "--for=condition=Ready", "dbschema/backend-schema",
                                 "--timeout=20s")
        assert "condition met" in waited
        reasons = {e["reason"] for e in backend.events()
                   if e["involvedObject"].get("kind") == "DatabaseSchema"}
        assert {"NoRevision", "Verified"} <= reasons, "the operator's Events were posted"
    finally:
        operator.stop()
    refused = [line for line in log.read_text().splitlines()
               if re.search(r"\b403\b|Forbidden|forbidden|permission", line)]
    assert refused == [], "\n".join(refused)


def test_a_migration_job_runs_from_the_backends_deployment_as_its_service_account(
        cluster: Cluster, namespace: str, watching_one: Release, postgres: LocalPostgres,
        tmp_path: Path) -> None:
    db = Database(postgres)
    backend = Backend(cluster, namespace, db)
    log = tmp_path / "operator.log"
    # As the chart runs it: the Job waits for the binding, read with the chart's rights.
    operator = local_operator.start(watching_one.identity.kubeconfig, [namespace], log,
                                    extra_args=watching_one.author_rights)
    try:
        backend.secret(db.url())
        backend.apply({  # the backend, its URL from its Secret; the Job copies this
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "backend",
                         "annotations": {"schemagate.io/clone-for": "backend-schema"}},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "backend-schema"}},
                     "template": {
                         "metadata": {"labels": {"app": "backend-schema"}},
                         "spec": {"readinessGates": [
                             {"conditionType": "schemagate.io/backend-schema"}],
                             "containers": [{
                                 "name": "app", "image": BACKEND_IMAGE,
                                 "imagePullPolicy": "Never", "command": ["sleep", "infinity"],
                                 "envFrom": [{"secretRef": {"name": "backend-db"}}]}]}}}})
        backend.schema(migrations={"run": "Job", "job": {
            "fromDeployment": {"name": "backend", "container": "app"},
            "command": ["alembic", "-c", f"{IMAGE_MIGRATIONS}/alembic.ini", "upgrade", "head"]}})
        backend.wait_reason("Verified", timeout=90)
        wait_for("the gate open", lambda: backend.gate_states() == ["True"], timeout=20)
        # The schema may verify before the operator has judged the finished Job.
        wait_for("the Job judged Applied", lambda: backend.get("dbschema", "backend-schema")[
            "status"].get("migration", {}).get("outcome") == "Applied", timeout=30)
    finally:
        operator.stop()
    refused = [line for line in log.read_text().splitlines()
               if re.search(r"\b403\b|Forbidden|forbidden|permission", line)]
    assert refused == [], "\n".join(refused)


def test_an_alembic_migration_job_runs_with_what_the_chart_grants(
        cluster: Cluster, namespace: str, watching_one: Release, postgres: LocalPostgres,
        tmp_path: Path) -> None:
    """run: Alembic as the chart's ServiceAccount: it creates the migrators'
    ServiceAccount and the Job (create only), and nothing is refused."""
    from tests.cluster.test_migration_alembic import FIRST, alembic_schema, config_map

    db = Database(postgres)
    backend = Backend(cluster, namespace, db)
    log = tmp_path / "operator.log"
    operator = local_operator.start(watching_one.identity.kubeconfig, [namespace], log,
                                    extra_args=watching_one.author_rights)
    try:
        backend.secret(db.url())
        config_map(backend, {"3f2a9c_billing_and_agents.py": FIRST})
        alembic_schema(backend)
        backend.wait_reason("Verified", timeout=90)
        wait_for("the Job judged Applied", lambda: backend.get("dbschema", "backend-schema")[
            "status"].get("migration", {}).get("outcome") == "Applied", timeout=30)
        assert backend.get("serviceaccount", "schemagate-migrator")
    finally:
        operator.stop()
    refused = [line for line in log.read_text().splitlines()
               if re.search(r"\b403\b|Forbidden|forbidden|permission", line)]
    assert refused == [], "\n".join(refused)


def _mismatches(identity: Identity, expected: dict[str, bool]) -> list[str]:
    wrong = []
    for question, allowed in expected.items():
        if identity.can_i(*question.split()) != allowed:
            wrong.append(f"{identity.user} can-i {question}: expected "
                         f"{'yes' if allowed else 'no'}")
    return wrong


def test_watching_listed_namespaces_it_may_do_only_what_it_uses(
        namespace: str, watching_one: Release) -> None:
    ns, own = f"-n {namespace}", f"-n {watching_one.namespace}"
    expected = {
        f"patch pods --subresource=status {ns}": True,
        f"watch pods {ns}": True,
        f"watch secrets {ns}": True,
        f"patch databaseschemas.schemagate.io {ns}": True,
        f"patch databaseschemas.schemagate.io --subresource=status {ns}": True,
        f"update databaseschemas.schemagate.io --subresource=finalizers {ns}": True,
        f"create events {ns}": True,
        f"create jobs.batch {ns}": True,
        f"get jobs.batch {ns}": True,
        f"get deployments.apps {ns}": True,
        f"watch deployments.apps {ns}": True,
        # database.verifyFrom: Pod - its verify pods, in the watched namespaces only.
        f"create pods {ns}": True,
        f"delete pods {ns}": True,
        f"watch configmaps {ns}": True,
        f"create serviceaccounts {ns}": True,  # schemagate-migrator, for run: Alembic
        "watch customresourcedefinitions.apiextensions.k8s.io": True,
        # What it may not do.
        f"delete jobs.batch {ns}": False,
        f"get pods --subresource=status {ns}": False,
        f"create rolebindings.rbac.authorization.k8s.io {ns}": False,
        f"escalate roles.rbac.authorization.k8s.io {ns}": False,
        # A token for any ServiceAccount (`serviceaccounts/token` alone would ask about
        # a ServiceAccount named "token"), or a change to one.
        f"create serviceaccounts --subresource=token {ns}": False,
        f"get serviceaccounts {ns}": False,
        f"update serviceaccounts {ns}": False,
        f"delete serviceaccounts {ns}": False,
        "list secrets --all-namespaces": False,
        "get secrets -n default": False,
        f"get secrets {own}": False,
        "list pods --all-namespaces": False,
        f"update pods {ns}": False,
        f"patch pods {ns}": False,
        "create pods -n default": False,
        f"create pods {own}": False,
        "delete pods -n default": False,
        f"get pods {ns}": False,
        f"update pods --subresource=status {ns}": False,
        f"patch deployments.apps {ns}": False,
        f"delete databaseschemas.schemagate.io {ns}": False,
        f"update databaseschemas.schemagate.io {ns}": False,
        f"update secrets {ns}": False,
        f"delete events {ns}": False,
        "watch namespaces": True,
        "get namespaces": False,
        "create customresourcedefinitions.apiextensions.k8s.io": False,
        # Its own author-rights binding, read only; no other, and no change to any.
        "get validatingadmissionpolicybindings.admissionregistration.k8s.io/"
        f"{watching_one.name}-author-rights": True,
        "get validatingadmissionpolicybindings.admissionregistration.k8s.io/other": False,
        "list validatingadmissionpolicybindings.admissionregistration.k8s.io": False,
        "delete validatingadmissionpolicybindings.admissionregistration.k8s.io/"
        f"{watching_one.name}-author-rights": False,
        "update validatingadmissionpolicies.admissionregistration.k8s.io": False,
        "* *": False,
    }
    assert _mismatches(watching_one.identity, expected) == []


def test_watching_every_namespace_it_may_read_everywhere_and_change_only_gates(
        namespace: str, watching_all: Release) -> None:
    expected = {
        "list secrets --all-namespaces": True,
        "patch pods --subresource=status --all-namespaces": True,
        "watch databaseschemas.schemagate.io --all-namespaces": True,
        f"create jobs.batch -n {namespace}": True,
        f"get deployments.apps -n {namespace}": True,
        "watch customresourcedefinitions.apiextensions.k8s.io": True,
        "update pods --all-namespaces": False,
        # Watching every namespace, its verify pods may be in any of them.
        "create pods --all-namespaces": True,
        "patch pods --all-namespaces": False,
        "patch deployments.apps --all-namespaces": False,
        "delete secrets --all-namespaces": False,
        "list namespaces": False,
        "* *": False,
    }
    assert _mismatches(watching_all.identity, expected) == []


def test_the_service_account_may_hold_its_own_lease_and_no_other(
        watching_all: Release) -> None:
    identity, ns = watching_all.identity, watching_all.namespace
    lease = f"leases/{watching_all.name}-leader"
    assert identity.can_i("create", "leases", "-n", ns)
    assert identity.can_i("get", lease, "-n", ns) and identity.can_i("update", lease, "-n", ns)
    assert not identity.can_i("update", "leases/kube-controller-manager", "-n", ns)
    assert not identity.can_i("delete", lease, "-n", ns)
    assert not identity.can_i("create", "leases", "-n", "kube-system")


def test_unwatched_secrets_and_leader_election_work_with_what_the_chart_grants(
        cluster: Cluster, namespace: str, release_namespace: str, postgres: LocalPostgres,
        tmp_path: Path) -> None:
    values = {"watchNamespaces": f"{{{namespace}}}", "secrets.watch": "false"}
    with installed(cluster, release_namespace, values, tmp_path / "identity") as release:
        assert release.identity.can_i("get", "secrets", "-n", namespace)
        assert not release.identity.can_i("list", "secrets", "-n", namespace)
        assert not release.identity.can_i("watch", "secrets", "-n", namespace)
        db = Database(postgres)
        backend = Backend(cluster, namespace, db)
        log = tmp_path / "operator.log"
        operator = local_operator.start(release.identity.kubeconfig, [namespace], log,
                                        extra_args=[
                                            "--no-watch-secrets", "--leader-election",
                                            "--leader-election-namespace", release_namespace,
                                            "--leader-election-id", f"{release.name}-leader"])
        try:
            db.migrate()
            backend.schema()
            backend.wait_reason("SecretNotFound")
            backend.secret(db.url(password="wrong"))
            backend.wait_reason("AuthenticationFailed")
            backend.secret(db.url())  # read again at the next check, not watched
            backend.wait_reason("Verified", timeout=30)
        finally:
            backend.kubectl("delete", "dbschema", "--all", "--timeout=30s")
            operator.stop()
    # The timestamp's milliseconds can read 403: only the message counts.
    messages = [re.sub(r"^\[[^]]*\]", "", line) for line in log.read_text().splitlines()]
    refused = [m for m in messages if re.search(r"\b403\b|Forbidden|forbidden|permission", m)]
    assert refused == [], "\n".join(refused)
    assert "took the Lease" in log.read_text()
def _granted(cluster: Cluster, release: Release, namespace: str, directory: Path
             ) -> set[tuple[str, str, str]]:
    """What the chart's ServiceAccount holds in `namespace` beyond what any
    ServiceAccount holds (discovery, self-reviews): another account of the same
    namespace, bound to nothing, is the baseline."""
    nobody = service_account_identity(cluster, release.namespace, "nobody", directory)
    return release.identity.rules(namespace) - nobody.rules(namespace)


def test_nothing_is_granted_but_what_docs_rbac_lists_watching_listed_namespaces(
        cluster: Cluster, namespace: str, watching_one: Release, tmp_path: Path) -> None:
    namespaced, cluster_wide = documented_rights("namespaced"), documented_rights("cluster")
    assert _granted(cluster, watching_one, namespace, tmp_path / "nobody") == \
        namespaced | cluster_wide
    # The release's own namespace is not watched: there it holds the cluster rules and
    # its Lease only.
    assert _granted(cluster, watching_one, watching_one.namespace, tmp_path / "nobody") == \
        cluster_wide | documented_rights("release namespace")


def test_nothing_is_granted_but_what_docs_rbac_lists_watching_every_namespace(
        cluster: Cluster, namespace: str, watching_all: Release, tmp_path: Path) -> None:
    crds_and_binding = {r for r in documented_rights("cluster")
                        if r[1] in ("customresourcedefinitions",
                                    "validatingadmissionpolicybindings")}
    for where in (namespace, "default"):
        assert _granted(cluster, watching_all, where, tmp_path / "nobody") == \
            documented_rights("namespaced") | crds_and_binding, where
