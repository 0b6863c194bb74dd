"""The Helm chart, rendered by the pinned helm: what it installs and what it refuses.

No sockets: `helm lint` and `helm template` work offline. The server-side checks
(dry-run, Pod Security admission, RBAC in force) are in tests/cluster.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from schemagate.cli import build_parser
from tests.chart import CHART, ROOT, grants, helm, of_kind, one, render, set_flags

# What the operator does in the namespaces it watches (the chart says why, rule by rule).
# A verb added here must be one the code uses: this table is the review point.
NAMESPACED = {
    *(("schemagate.io", "databaseschemas", v) for v in ("get", "list", "watch", "patch")),
    *(("schemagate.io", "databaseschemas/status", v) for v in ("get", "patch")),
    ("schemagate.io", "databaseschemas/finalizers", "update"),
    *(("", "pods", v) for v in ("get", "list", "watch")),
    ("", "pods/status", "patch"),
    *(("", "secrets", v) for v in ("get", "list", "watch")),
    ("", "events", "create"),
    *(("batch", "jobs", v) for v in ("create", "get", "list", "watch", "delete")),
    ("apps", "deployments", "get"),
    *(("", "configmaps", v) for v in ("get", "list", "watch")),
}
# Kopf's own bookkeeping, cluster-scoped: the CRDs in either mode; the namespaces only
# when it watches listed ones (it lists none when it watches them all).
CLUSTER = {("apiextensions.k8s.io", "customresourcedefinitions", v)
           for v in ("get", "list", "watch")}
NAMESPACES = {("", "namespaces", "list"), ("", "namespaces", "watch")}
TWO_NAMESPACES = {"watchNamespaces": "{team-a,team-b}"}


@pytest.mark.parametrize("values", [{}, TWO_NAMESPACES,
                                    {"metrics.serviceMonitor.enabled": "true"}])
def test_helm_lint_is_clean(values: dict[str, str]) -> None:
    result = helm("lint", "--strict", str(CHART), *set_flags(values))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 chart(s) failed" in result.stdout


def test_the_charts_crd_is_the_generated_one() -> None:
    generated = ROOT / "crds" / "databaseschemas.schemagate.io.yaml"
    shipped = CHART / "crds" / generated.name
    assert shipped.read_text() == generated.read_text(), "run `make crds` and commit the result"
    assert sorted(p.name for p in (CHART / "crds").iterdir()) == \
        sorted(p.name for p in (ROOT / "crds").iterdir())


@pytest.mark.parametrize(("values", "message"), [
    ({"replicaCount": "2"}, "at '/replicaCount': value must be one of 0, 1"),
    ({"watchNamespaces": "team-a"}, "at '/watchNamespaces': got string, want array"),
    ({"watchNamespaces": "{team-*}"}, "at '/watchNamespaces/0': 'team-*' does not match"),
    ({"watchNamespace": "{team-a}"}, "additional properties 'watchNamespace' not allowed"),
    ({"podSecurityContext.runAsUser": "0"}, "at '/podSecurityContext/runAsUser': "
                                            "minimum: got 0, want 1"),
    ({"image.pullPolicy": "Sometimes"}, "at '/image/pullPolicy': value must be one of"),
])
def test_bad_values_fail_with_a_clear_message(values: dict[str, str], message: str) -> None:
    result = helm("template", "schemagate", str(CHART), *set_flags(values))
    assert result.returncode != 0
    assert "values don't meet the specifications of the schema" in result.stderr
    assert message in result.stderr, result.stderr


def test_the_deployment_runs_one_restricted_operator() -> None:
    deployment = one(render(), "Deployment")
    spec = deployment["spec"]
    assert spec["replicas"] == 1 and spec["strategy"] == {"type": "Recreate"}
    pod = spec["template"]["spec"]
    (container,) = pod["containers"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 10001
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert container["securityContext"] == {
        "runAsNonRoot": True, "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True, "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"}}
    assert container["resources"]["requests"] and container["resources"]["limits"]["memory"]
    assert "command" not in container, "the image's entrypoint is `schemagate run`"
    assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]


@pytest.mark.parametrize(("values", "namespaces"), [({}, ()),
                                                    (TWO_NAMESPACES, ("team-a", "team-b"))])
def test_the_arguments_are_what_schemagate_run_accepts(values: dict[str, str],
                                                       namespaces: tuple[str, ...]) -> None:
    values = {**values, "livenessPort": "9091", "metrics.port": "9090"}
    (container,) = one(render(values), "Deployment")["spec"]["template"]["spec"]["containers"]
    args = build_parser().parse_args(["run", *container["args"]])
    assert tuple(args.namespaces or ()) == namespaces
    assert args.all_namespaces is (not namespaces)
    assert (args.metrics_port, args.liveness_port) == (9090, 9091)
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"metrics": 9090, "healthz": 9091}
    probe = container["livenessProbe"]["httpGet"]
    assert probe == {"path": "/healthz", "port": "healthz"}


def test_watching_every_namespace_takes_one_cluster_role() -> None:
    manifests = render()
    assert grants(one(manifests, "ClusterRole")) == NAMESPACED | CLUSTER
    assert not of_kind(manifests, "Role") and not of_kind(manifests, "RoleBinding")
    binding = one(manifests, "ClusterRoleBinding")
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "schemagate",
                                    "namespace": "schemagate-system"}]
    assert one(manifests, "ServiceAccount")["metadata"]["name"] == "schemagate"


def test_listed_namespaces_get_roles_and_nothing_namespaced_is_cluster_wide() -> None:
    manifests = render(TWO_NAMESPACES, release="sg", namespace="ops")
    assert grants(one(manifests, "ClusterRole")) == CLUSTER | NAMESPACES
    roles = of_kind(manifests, "Role")
    assert sorted(r["metadata"]["namespace"] for r in roles) == ["team-a", "team-b"]
    assert all(grants(r) == NAMESPACED for r in roles)
    for binding in of_kind(manifests, "RoleBinding"):
        assert binding["roleRef"]["kind"] == "Role"
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "sg-schemagate",
                                        "namespace": "ops"}]
    assert len(of_kind(manifests, "RoleBinding")) == 2


def test_no_rule_lets_it_change_a_pod_or_a_deployment() -> None:
    for manifests in (render(), render(TWO_NAMESPACES)):
        for role in of_kind(manifests, "ClusterRole") + of_kind(manifests, "Role"):
            granted = grants(role)
            assert not any("*" in g for g in granted)
            assert {v for _, r, v in granted if r == "pods"} <= {"get", "list", "watch"}
            assert {v for _, r, v in granted if r == "deployments"} <= {"get"}


def test_metrics_service_and_optional_service_monitor() -> None:
    manifests = render()
    assert not of_kind(manifests, "ServiceMonitor")
    service = one(manifests, "Service")
    pod_labels = one(manifests, "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    assert service["spec"]["ports"] == [{"name": "metrics", "port": 8080,
                                         "targetPort": "metrics", "protocol": "TCP"}]
    manifests = render({"metrics.serviceMonitor.enabled": "true",
                        "metrics.serviceMonitor.labels.release": "prometheus"})
    monitor = one(manifests, "ServiceMonitor")
    assert monitor["metadata"]["labels"]["release"] == "prometheus"
    assert monitor["spec"]["selector"]["matchLabels"].items() <= \
        one(manifests, "Service")["metadata"]["labels"].items()
    assert monitor["spec"]["endpoints"][0]["port"] == "metrics"


def test_the_image_and_the_chart_agree() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    user = re.findall(r"^USER (\d+):(\d+)$", dockerfile, re.MULTILINE)
    pod = one(render(), "Deployment")["spec"]["template"]["spec"]
    assert user == [(str(pod["securityContext"]["runAsUser"]),
                     str(pod["securityContext"]["runAsGroup"]))]
    assert 'ENTRYPOINT ["schemagate", "run"]' in dockerfile


def test_the_chart_version_follows_the_package() -> None:
    chart = (CHART / "Chart.yaml").read_text()
    version = re.search(r'^version = "(.+)"$', (ROOT / "pyproject.toml").read_text(),
                        re.MULTILINE)
    assert version and f'appVersion: "{version.group(1)}"' in chart



@pytest.mark.parametrize("values", sorted((ROOT / "examples" / "helm").glob("*.yaml")),
                         ids=lambda p: p.name)
def test_the_example_values_render(values: Path) -> None:
    result = helm("template", "schemagate", str(CHART), "-f", str(values))
    assert result.returncode == 0, result.stderr


def test_gate_injection_is_on_by_default_and_bound_where_the_operator_watches() -> None:
    everywhere = render()
    policy = one(everywhere, "MutatingAdmissionPolicy")
    assert policy["spec"]["failurePolicy"] == "Fail"
    assert policy["spec"]["matchConstraints"]["resourceRules"][0]["operations"] == ["CREATE"]
    assert "matchResources" not in one(everywhere, "MutatingAdmissionPolicyBinding")["spec"]

    scoped = one(render({"watchNamespaces": "{team-a,team-b}"}),
                 "MutatingAdmissionPolicyBinding")
    selector = scoped["spec"]["matchResources"]["namespaceSelector"]["matchExpressions"][0]
    assert selector["values"] == ["team-a", "team-b"]

    off = render({"gateInjection.enabled": "false"})
    assert not of_kind(off, "MutatingAdmissionPolicy")
    assert not of_kind(off, "MutatingAdmissionPolicyBinding")


def test_gate_injection_takes_only_a_boolean() -> None:
    refused = helm("template", "x", str(CHART), "--set", "gateInjection.enabled=maybe")
    assert refused.returncode != 0 and "gateInjection" in refused.stderr
