"""The tenancy tier: one operator installed by the chart (its default resources, the
384Mi memory limit included) watches a victim namespace and one namespace per finding.
Each test puts a hostile input in its own namespace and checks that the victim never
notices: its new pod opens within seconds, its status stays intact, and the operator
neither restarts nor stops answering /healthz.

One chart install and one victim serve the whole package; a test that leaves the
operator restarted or deaf gets it mended (a new pod) after its hostile input is gone,
so the next test starts from a healthy operator."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator

import pytest

from localenv.cluster import Cluster
from localenv.postgres import LocalPostgres
from tests.chart import CHART, helm
from tests.cluster.fixtures import Kube
from tests.cluster.scenario import Backend, Database
from tests.support.wait import wait_for
from tests.tenants.tenancy import VICTIM_SCHEMA, Alive, ChartOperator, Victim

#: One namespace per test module (test_<finding>.py), all watched from the start.
FINDINGS = ("passwords", "scrubbing", "downgrade", "stalled_hosts", "forged_verify_pod",
            "revision_file", "selector", "version_table", "control_characters",
            "migration_output", "dr_cutover", "password_guessing")


def _create_namespace(kube: Kube, name: str) -> None:
    kube.core.create_namespace({"metadata": {"name": name,
                                             "labels": {"schemagate.io/test": "true"}}})


def _release_schemas(cluster: Cluster, namespace: str) -> None:
    """Delete the namespace's DatabaseSchemas while the operator can still lift its
    finalizer; one it cannot lift in time (a frozen operator) is dropped by hand, or the
    namespace would stay Terminating."""
    cluster.kubectl("-n", namespace, "delete", "dbschema", "--all", "--timeout=30s",
                    timeout=45)
    for name in cluster.kubectl("-n", namespace, "get", "dbschema", "-o", "name").stdout.split():
        cluster.kubectl("-n", namespace, "patch", name, "--type=merge", "-p",
                        '{"metadata":{"finalizers":null}}')


@pytest.fixture(scope="package")
def tenant_namespaces(kube: Kube, cluster: Cluster) -> Iterator[dict[str, str]]:
    """The victim's namespace and one per finding, keyed by finding ("victim" too)."""
    suffix = secrets.token_hex(3)
    names = {key: f"tenant-{key.replace('_', '-')}-{suffix}" for key in ("victim", *FINDINGS)}
    for name in names.values():
        _create_namespace(kube, name)
    def accounts() -> list[str]:
        return [kube.core.read_namespaced_service_account("default", name).metadata.name
                for name in names.values()]
    wait_for("the default ServiceAccount of every namespace", accounts, timeout=30)
    yield names
    for name in names.values():
        cluster.kubectl("delete", "namespace", name, "--wait=false")


@pytest.fixture(scope="package")
def chart_operator(cluster: Cluster, kube: Kube, tenant_namespaces: dict[str, str]
                   ) -> Iterator[ChartOperator]:
    """The chart installed once, with its default resources, watching the tier's
    namespaces; uninstalled after the tier, its schemas released first."""
    namespace = f"sg-tenants-{secrets.token_hex(3)}"
    _create_namespace(kube, namespace)
    release = f"schemagate-{secrets.token_hex(3)}"
    kubeconfig = ("--kubeconfig", str(cluster.kubeconfig))
    watched = ",".join(tenant_namespaces.values())
    result = helm("install", release, str(CHART), "--namespace", namespace, *kubeconfig,
                  "--set", "image.repository=schemagate", "--set", "image.tag=dev",
                  "--set", "image.pullPolicy=Never", "--set", f"watchNamespaces={{{watched}}}",
                  "--wait", "--timeout", "3m", timeout=240)
    try:
        assert result.returncode == 0, result.stderr
        operator = ChartOperator(cluster, release, namespace)
        wait_for("the operator's /healthz", operator.healthz, lambda code: code == 200, timeout=60)
        yield operator
    finally:
        for watched_namespace in tenant_namespaces.values():
            _release_schemas(cluster, watched_namespace)
        helm("uninstall", release, "--namespace", namespace, *kubeconfig, "--wait")
        cluster.kubectl("delete", "namespace", namespace, "--wait=false")


@pytest.fixture(scope="package")
def victim(cluster: Cluster, postgres: LocalPostgres, tenant_namespaces: dict[str, str],
           chart_operator: ChartOperator) -> Victim:
    """A backend on its migrated database, verified, one pod open."""
    db = Database(postgres)
    db.migrate()
    backend = Backend(cluster, tenant_namespaces["victim"], db)
    backend.secret(db.url())
    backend.schema(VICTIM_SCHEMA)
    backend.deployment(gate=VICTIM_SCHEMA, replicas=1)
    backend.wait_reason("Verified", VICTIM_SCHEMA, timeout=90)
    wait_for("the victim's first pod open", lambda: backend.gate_states(VICTIM_SCHEMA),
             lambda gates: gates == ["True"], timeout=60)
    return Victim(backend, db)


FAILED = pytest.StashKey[bool]()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]
                              ) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    if report.when == "call":
        item.stash[FAILED] = report.failed


@pytest.fixture
def alive(request: pytest.FixtureRequest, chart_operator: ChartOperator, victim: Victim
          ) -> Iterator[Alive]:
    """The operator's restart count and /healthz as the test starts. After a test that
    failed or left it restarted or deaf, once that test's namespace is emptied, the
    operator gets a new pod (what it learned or froze on stays behind with the old one)
    and the victim is verified again, so the next test starts from a healthy operator."""
    found = Alive(chart_operator)
    yield found
    if request.node.stash.get(FAILED, False) or found.problems():
        chart_operator.mend()
        # A status the old operator garbled is written afresh by the new one.
        victim.backend.kubectl("patch", f"dbschema/{VICTIM_SCHEMA}", "--subresource=status",
                               "--type=merge", "-p", '{"status":null}')
        wait_for("the victim verified by the mended operator", victim.restored, timeout=60)


@pytest.fixture
def hostile(request: pytest.FixtureRequest, cluster: Cluster, postgres: LocalPostgres,
            tenant_namespaces: dict[str, str], alive: Alive) -> Iterator[Backend]:
    """The namespace of the test's finding (named after its module), with a database of
    its own; emptied after the test, before the operator is mended."""
    finding = request.module.__name__.rsplit(".", 1)[-1].removeprefix("test_")
    backend = Backend(cluster, tenant_namespaces[finding], Database(postgres))
    yield backend
    started = time.monotonic()
    _release_schemas(cluster, backend.namespace)
    for kind in ("deployments", "pods", "jobs", "secrets", "configmaps"):
        cluster.kubectl("-n", backend.namespace, "delete", kind, "--all", "--wait=false")
    print(f"namespace {backend.namespace} emptied in {time.monotonic() - started:.1f} s")
