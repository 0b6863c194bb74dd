"""The Helm chart, rendered by the pinned helm: what it installs and what it refuses.

No sockets: `helm lint` and `helm template` work offline. The server-side checks
(dry-run, Pod Security admission, RBAC in force) are in tests/cluster.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from schemagate.cli import build_parser
from schemagate.core.tenancy import allowed_hosts
from schemagate.core.wire import models
from tests.chart import (
    CHART,
    ROOT,
    Manifest,
    documented_rights,
    grants,
    helm,
    of_kind,
    one,
    render,
    set_flags,
)

# What the operator does in the namespaces it watches (the chart says why, rule by rule).
# A verb added here must be one the code uses: this table is the review point.
NAMESPACED = {
    *(("schemagate.io", "databaseschemas", v) for v in ("get", "list", "watch", "patch")),
    ("schemagate.io", "databaseschemas/status", "patch"),
    ("schemagate.io", "databaseschemas/finalizers", "update"),
    *(("", "pods", v) for v in ("list", "watch", "create", "delete")),
    ("", "pods/status", "patch"),
    *(("", "secrets", v) for v in ("get", "list", "watch")),
    ("", "events", "create"),
    *(("batch", "jobs", v) for v in ("create", "get")),
    *(("apps", "deployments", v) for v in ("get", "list", "watch")),
    *(("", "configmaps", v) for v in ("get", "list", "watch")),
    ("", "serviceaccounts", "create"),
}
# Kopf's own bookkeeping, cluster-scoped: the CRDs in either mode; the namespaces only
# when it watches listed ones (it lists none when it watches them all).
CLUSTER = {("apiextensions.k8s.io", "customresourcedefinitions", v)
           for v in ("get", "list", "watch")}
# With authorRights.enabled: the policy's binding, by name, to know it is in force.
BINDING = {("admissionregistration.k8s.io", "validatingadmissionpolicybindings", "get")}
NAMESPACES = {("", "namespaces", "list"), ("", "namespaces", "watch")}
# With gateInjection.holdStart: removing the start-up gate from a held pod.
START_GATE = {("", "pods", "patch")}
TWO_NAMESPACES = {"watchNamespaces": "{team-a,team-b}"}


def test_docs_rbac_lists_exactly_the_rights_the_chart_grants() -> None:
    assert documented_rights("namespaced") == NAMESPACED
    assert documented_rights("cluster") == CLUSTER | NAMESPACES | BINDING


@pytest.mark.parametrize("values", [{}, TWO_NAMESPACES, {"gateInjection.holdStart": "true"},
                                    {"metrics.serviceMonitor.enabled": "true"},
                                    {"metrics.prometheusRule.enabled": "true",
                                     "metrics.dashboard.enabled": "true",
                                     "metrics.podMonitoring.enabled": "true"}])
def test_helm_lint_is_clean(values: dict[str, str]) -> None:
    result = helm("lint", "--strict", str(CHART), *set_flags(values))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 chart(s) failed" in result.stdout


def test_the_charts_crd_is_the_generated_one() -> None:
    generated = ROOT / "crds" / "databaseschemas.schemagate.io.yaml"
    shipped = CHART / "files" / "crds" / generated.name
    assert shipped.read_text() == generated.read_text(), "run `make crds` and commit the result"
    assert not (CHART / "crds").exists(), "a crds/ directory would install it regardless"
    assert sorted(p.name for p in (CHART / "files" / "crds").iterdir()) == \
        sorted(p.name for p in (ROOT / "crds").iterdir())


@pytest.mark.parametrize(("values", "message"), [
    ({"replicaCount": "-1"}, "at '/replicaCount': minimum: got -1, want 0"),
    ({"watchNamespaces": "team-a"}, "at '/watchNamespaces': got string, want array"),
    ({"watchNamespaces": "{team-*}"}, "at '/watchNamespaces/0': 'team-*' does not match"),
    ({"watchNamespace": "{team-a}"}, "additional properties 'watchNamespace' not allowed"),
    ({"podSecurityContext.runAsUser": "0"}, "at '/podSecurityContext/runAsUser': "
                                            "minimum: got 0, want 1"),
    ({"image.pullPolicy": "Sometimes"}, "at '/image/pullPolicy': value must be one of"),
    ({"authorRights.enabled": "yes"}, "at '/authorRights/enabled': got string, want boolean"),
])
def test_bad_values_fail_with_a_clear_message(values: dict[str, str], message: str) -> None:
    result = helm("template", "schemagate", str(CHART), *set_flags(values))
    assert result.returncode != 0
    assert "values don't meet the specifications of the schema" in result.stderr
    assert message in result.stderr, result.stderr


def test_the_deployment_runs_one_restricted_operator() -> None:
    deployment = one(render(), "Deployment")
    spec = deployment["spec"]
    assert spec["replicas"] == 1
    assert spec["strategy"] == {"type": "RollingUpdate",
                                "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}}
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
    assert grants(one(manifests, "ClusterRole")) == NAMESPACED | CLUSTER | BINDING
    assert not watching_roles(manifests)
    binding = one(manifests, "ClusterRoleBinding")
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "schemagate",
                                    "namespace": "schemagate-system"}]
    assert one(manifests, "ServiceAccount")["metadata"]["name"] == "schemagate"


def test_hold_start_adds_pod_patch_and_the_policies_that_confine_it() -> None:
    assert documented_rights("gateInjection.holdStart") == START_GATE
    assert not [m for m in render() if "start-gate" in m["metadata"]["name"]], "off by default"
    manifests = render({**TWO_NAMESPACES, "gateInjection.holdStart": "true"}, release="sg",
                       namespace="ops")
    assert all(grants(r) == NAMESPACED | START_GATE for r in watching_roles(manifests))
    names = {m["metadata"]["name"] for m in manifests}
    assert {"sg-schemagate-start-gate", "sg-schemagate-start-gate-only"} <= names
    confine = next(m for m in of_kind(manifests, "ValidatingAdmissionPolicy")
                   if m["metadata"]["name"].endswith("start-gate-only"))
    assert "system:serviceaccount:ops:sg-schemagate" in \
        confine["spec"]["matchConditions"][0]["expression"]
    binding = next(m for m in of_kind(manifests, "MutatingAdmissionPolicyBinding")
                   if m["metadata"]["name"].endswith("start-gate"))
    assert binding["spec"]["paramRef"] == {"selector": {}, "parameterNotFoundAction": "Allow"}
    assert binding["spec"]["matchResources"]["namespaceSelector"]["matchExpressions"][0][
        "values"] == ["team-a", "team-b"]


def watching_roles(manifests: list[Manifest]) -> list[Manifest]:
    return [r for r in of_kind(manifests, "Role")
            if not r["metadata"]["name"].endswith("-leader-election")]


def test_listed_namespaces_get_roles_and_nothing_namespaced_is_cluster_wide() -> None:
    manifests = render(TWO_NAMESPACES, release="sg", namespace="ops")
    assert grants(one(manifests, "ClusterRole")) == CLUSTER | NAMESPACES | BINDING
    roles = watching_roles(manifests)
    assert sorted(r["metadata"]["namespace"] for r in roles) == ["team-a", "team-b"]
    assert all(grants(r) == NAMESPACED for r in roles)
    for binding in of_kind(manifests, "RoleBinding"):
        assert binding["roleRef"]["kind"] == "Role"
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "sg-schemagate",
                                        "namespace": "ops"}]
    assert len(of_kind(manifests, "RoleBinding")) == 3  # and the leader election's


def test_two_replicas_elect_a_leader_on_one_lease_and_keep_one_through_drains() -> None:
    manifests = render({"replicaCount": "2"}, release="sg", namespace="ops")
    deployment = one(manifests, "Deployment")
    assert deployment["spec"]["replicas"] == 2
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    args = build_parser().parse_args(["run", *container["args"]])
    assert args.leader_election and args.leader_election_namespace == "ops"
    assert args.leader_election_id == "sg-schemagate-leader"
    assert args.renew_deadline < args.lease_duration
    budget = one(manifests, "PodDisruptionBudget")
    assert budget["spec"]["minAvailable"] == 1
    assert budget["spec"]["selector"]["matchLabels"].items() <= \
        deployment["spec"]["template"]["metadata"]["labels"].items()
    (role,) = [r for r in of_kind(manifests, "Role")
               if r["metadata"]["name"] == "sg-schemagate-leader-election"]
    assert role["metadata"]["namespace"] == "ops"
    assert grants(role) == {("coordination.k8s.io", "leases", v)
                            for v in ("create", "get", "update")}
    named = [rule for rule in role["rules"] if "get" in rule["verbs"]]
    assert named[0]["resourceNames"] == ["sg-schemagate-leader"]
    assert not of_kind(render(), "PodDisruptionBudget"), "one replica: nothing to keep"


def test_more_replicas_without_leader_election_are_refused() -> None:
    result = helm("template", "schemagate", str(CHART),
                  *set_flags({"replicaCount": "2", "leaderElection.enabled": "false"}))
    assert result.returncode != 0
    assert "replicaCount above 1 needs leaderElection.enabled" in result.stderr
    one_replica = one(render({"leaderElection.enabled": "false"}), "Deployment")
    assert one_replica["spec"]["strategy"] == {"type": "Recreate"}


def test_no_rule_lets_it_change_a_pod_or_a_deployment() -> None:
    for manifests in (render(), render(TWO_NAMESPACES)):
        for role in of_kind(manifests, "ClusterRole") + of_kind(manifests, "Role"):
            granted = grants(role)
            assert not any("*" in g for g in granted)
            # verifyFrom: Pod creates and deletes its verify pods; no pod is ever changed.
            assert {v for _, r, v in granted if r == "pods"} <= {"list", "watch", "create",
                                                                  "delete"}
            assert {v for _, r, v in granted if r == "deployments"} <= {"get", "list", "watch"}


def test_pods_are_created_only_in_the_watched_namespaces() -> None:
    manifests = render(TWO_NAMESPACES)
    cluster_wide = {r for role in of_kind(manifests, "ClusterRole") for _, r, _ in grants(role)}
    assert "pods" not in cluster_wide
    roles = of_kind(manifests, "Role")
    creating = {role["metadata"]["namespace"] for role in roles
                if ("", "pods", "create") in grants(role)}
    assert creating == {"team-a", "team-b"}


@pytest.mark.parametrize(("values", "image"), [
    ({"image.repository": "europe-docker.pkg.dev/p/r/schemagate", "image.tag": "0.1.0"},
     "europe-docker.pkg.dev/p/r/schemagate:0.1.0"),
    ({"image.digest": "sha256:" + "0" * 64}, "schemagate@sha256:" + "0" * 64)])
def test_the_verify_pods_run_the_operators_own_image(values: dict[str, str], image: str) -> None:
    (container,) = one(render(values), "Deployment")["spec"]["template"]["spec"]["containers"]
    assert container["image"] == image
    assert build_parser().parse_args(["run", *container["args"]]).verify_image == image


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


def test_the_crd_comes_with_the_chart_unless_told_not_to() -> None:
    crd = one(render(), "CustomResourceDefinition")
    generated = yaml.safe_load((ROOT / "crds" / "databaseschemas.schemagate.io.yaml").read_text())
    assert crd["spec"] == generated["spec"]
    assert crd["metadata"]["annotations"] == {"helm.sh/resource-policy": "keep"}
    assert crd["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "Helm"
    assert not of_kind(render({"crds.install": "false"}), "CustomResourceDefinition")


def test_chart_metadata_is_true() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    # Native sidecars in the migration Job (restartPolicy: Always init containers).
    assert chart["kubeVersion"] == ">=1.29.0-0"
    refused = helm("template", "schemagate", str(CHART), "--kube-version", "1.28.9")
    assert refused.returncode != 0 and "kubeVersion" in refused.stderr
    notes = chart["annotations"]
    assert notes["artifacthub.io/license"] == "Apache-2.0"
    assert (ROOT / "LICENSE").read_text().split()[:3] == ["Apache", "License", "Version"]
    (listed,) = yaml.safe_load(notes["artifacthub.io/crds"])
    generated = yaml.safe_load((ROOT / "crds" / "databaseschemas.schemagate.io.yaml").read_text())
    assert listed["name"] == generated["metadata"]["name"]
    assert listed["version"] == models.VERSION and listed["kind"] == models.KIND
    for example in yaml.safe_load(notes["artifacthub.io/crdsExamples"]):
        models.DatabaseSchemaSpec.model_validate(example["spec"])
    (image,) = yaml.safe_load(notes["artifacthub.io/images"])
    assert image["image"] == f"schemagate:{chart['appVersion']}"


def test_the_pod_template_carries_every_recommended_label() -> None:
    template = one(render({"podLabels.team": "platform"}), "Deployment")["spec"]["template"]
    labels = template["metadata"]["labels"]
    assert {k for k in labels if k.startswith("app.kubernetes.io/")} == {
        f"app.kubernetes.io/{k}" for k in ("name", "instance", "version", "managed-by",
                                           "component", "part-of")}
    assert labels["team"] == "platform" and labels["helm.sh/chart"] == "schemagate-0.1.0"


def test_image_by_digest_extra_env_args_and_spread() -> None:
    digest = "sha256:" + "0" * 64
    deployment = one(render({
        "image.digest": digest, "extraEnv[0].name": "HTTPS_PROXY",
        "extraEnv[0].value": "http://proxy:3128", "extraArgs[0]": "--verbose",
        "priorityClassName": "system-cluster-critical",
        "topologySpreadConstraints[0].maxSkew": "1",
        "topologySpreadConstraints[0].topologyKey": "topology.kubernetes.io/zone",
        "topologySpreadConstraints[0].whenUnsatisfiable": "ScheduleAnyway"}), "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["image"] == f"schemagate@{digest}"
    assert container["env"] == [{"name": "HTTPS_PROXY", "value": "http://proxy:3128"}]
    assert build_parser().parse_args(["run", *container["args"]]).verbose
    assert pod["priorityClassName"] == "system-cluster-critical"
    assert pod["topologySpreadConstraints"][0]["topologyKey"] == "topology.kubernetes.io/zone"
    assert one(render(), "Deployment")["spec"]["template"]["spec"]["containers"][0][
        "image"] == "schemagate:0.1.0"


def test_secrets_unwatched_are_only_read() -> None:
    manifests = render({"secrets.watch": "false"})
    (container,) = one(manifests, "Deployment")["spec"]["template"]["spec"]["containers"]
    assert build_parser().parse_args(["run", *container["args"]]).watch_secrets is False
    secrets = {v for _, r, v in grants(one(manifests, "ClusterRole")) if r == "secrets"}
    assert secrets == {"get"}
    (container,) = one(render(), "Deployment")["spec"]["template"]["spec"]["containers"]
    assert build_parser().parse_args(["run", *container["args"]]).watch_secrets is True


def test_the_network_policy_opens_metrics_to_the_listed_peers_only() -> None:
    assert not of_kind(render(), "NetworkPolicy")
    peer = "metricsFrom[0].namespaceSelector.matchLabels.name"
    policy = one(render({"networkPolicy.enabled": "true", f"networkPolicy.{peer}":
                         "monitoring"}), "NetworkPolicy")
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    metrics, healthz = policy["spec"]["ingress"]
    assert metrics["ports"] == [{"port": "metrics", "protocol": "TCP"}]
    assert metrics["from"] == [{"namespaceSelector": {"matchLabels": {"name": "monitoring"}}}]
    assert healthz["ports"] == [{"port": "healthz", "protocol": "TCP"}]


def test_helm_test_asks_the_metrics_service() -> None:
    (pod,) = [m for m in of_kind(render(), "Pod")
              if m["metadata"]["annotations"].get("helm.sh/hook") == "test"]
    (container,) = pod["spec"]["containers"]
    assert "schemagate-metrics.schemagate-system.svc:8080/metrics" in container["command"][-1]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    script = container["command"][-1]
    compile(script, "helm-test", "exec")  # the image's Python runs it


def test_log_format_json_reaches_the_operator() -> None:
    (container,) = one(render({"logFormat": "json"}), "Deployment")["spec"]["template"][
        "spec"]["containers"]
    assert build_parser().parse_args(["run", *container["args"]]).log_format == "json"


def test_the_operator_is_told_its_own_image_for_the_pods_it_runs() -> None:
    for values, image in (({"image.tag": "1.2.3"}, "schemagate:1.2.3"),
                          ({"image.repository": "registry.example/sg", "image.tag": "dev"},
                           "registry.example/sg:dev")):
        (container,) = one(render(values), "Deployment")["spec"]["template"]["spec"][
            "containers"]
        assert container["image"] == image
        assert build_parser().parse_args(["run", *container["args"]]).verify_image == image
def test_the_author_rights_policy_is_on_by_default_for_every_watched_namespace() -> None:
    manifests = render()
    policy = one(manifests, "ValidatingAdmissionPolicy")
    binding = one(manifests, "ValidatingAdmissionPolicyBinding")
    assert binding["spec"]["policyName"] == policy["metadata"]["name"]
    assert binding["spec"]["validationActions"] == ["Deny"]
    assert "matchResources" not in binding["spec"], "every namespace"
    assert policy["spec"]["failurePolicy"] == "Fail"
    checked = " ".join(v["expression"] for v in policy["spec"]["validations"])
    for right in ("resource('secrets')", "check('get')", "resource('jobs')", "check('create')",
                  "resource('deployments')", "check('update')", "resource('pods')",
                  "resource('configmaps')"):
        assert right in checked, right

    listed = one(render(TWO_NAMESPACES), "ValidatingAdmissionPolicyBinding")
    assert listed["spec"]["matchResources"]["namespaceSelector"]["matchExpressions"] == [
        {"key": "kubernetes.io/metadata.name", "operator": "In",
         "values": ["team-a", "team-b"]}]


def test_the_operator_reads_only_its_binding_and_waits_for_it() -> None:
    manifests = render(release="sg", namespace="ops")
    binding = one(manifests, "ValidatingAdmissionPolicyBinding")["metadata"]["name"]
    assert binding == "sg-schemagate-author-rights"
    [rule] = [r for r in one(manifests, "ClusterRole")["rules"]
              if "validatingadmissionpolicybindings" in r["resources"]]
    assert rule == {"apiGroups": ["admissionregistration.k8s.io"],
                    "resources": ["validatingadmissionpolicybindings"],
                    "resourceNames": [binding], "verbs": ["get"]}
    (container,) = one(manifests, "Deployment")["spec"]["template"]["spec"]["containers"]
    args = build_parser().parse_args(["run", *container["args"]])
    assert (args.author_rights_binding, args.no_author_rights) == (binding, False)


def policy_text() -> tuple[str, str]:
    """The policy's match conditions and its validations, each as one text."""
    policy = one(render(), "ValidatingAdmissionPolicy")["spec"]
    return (" ".join(c["expression"] for c in policy["matchConditions"]),
            " ".join(v["expression"] for v in policy["validations"]))


def test_run_alembic_needs_its_author_to_create_jobs() -> None:
    _, checked = policy_text()
    assert ("!(variables.runsJob || variables.runsAlembic) || "
            "authorizer.group('batch').resource('jobs')") in checked


def test_setting_the_rerun_annotation_is_checked_as_a_written_spec_is() -> None:
    matched, _ = policy_text()
    assert "object.spec != oldObject.spec" in matched
    assert matched.count("['schemagate.io/rerun']") == 2  # its value before and after


def test_the_author_rights_policy_can_be_turned_off_and_says_what_it_needs() -> None:
    off = render({"authorRights.enabled": "false"})
    assert not of_kind(off, "ValidatingAdmissionPolicy")
    assert not of_kind(off, "ValidatingAdmissionPolicyBinding")
    assert grants(one(off, "ClusterRole")) == NAMESPACED | CLUSTER
    (container,) = one(off, "Deployment")["spec"]["template"]["spec"]["containers"]
    assert build_parser().parse_args(["run", *container["args"]]).no_author_rights
    old = helm("template", "schemagate", str(CHART), "--kube-version", "1.29.0")
    assert old.returncode != 0
    assert "authorRights.enabled needs ValidatingAdmissionPolicy" in old.stderr
    assert "set authorRights.enabled=false" in old.stderr
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


ALLOWED_HOSTS = {"team-a": ["db.team-a.svc.cluster.local", "10.20.0.0/16"],
                 "*": ["*.shared.internal"]}


def render_file(tmp_path: Path, values: dict[str, object]) -> list[Manifest]:
    path = tmp_path / "values.yaml"
    path.write_text(yaml.safe_dump(values))
    result = helm("template", "schemagate", str(CHART), "-f", str(path))
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def test_allowed_hosts_reach_the_operator_as_a_mounted_file(tmp_path: Path) -> None:
    manifests = render_file(tmp_path, {"tenancy": {"allowedHosts": ALLOWED_HOSTS}})
    config_map = one(manifests, "ConfigMap")
    (text,) = config_map["data"].values()
    allowed = allowed_hosts.load(text)  # what the operator reads at start-up
    team_a, other = allowed.for_namespace("team-a"), allowed.for_namespace("team-b")
    assert team_a is not None and team_a.allows("10.20.0.9") and not team_a.allows("x.io")
    assert other is not None and other.allows("pg.shared.internal")
    pod = one(manifests, "Deployment")["spec"]["template"]
    (container,) = pod["spec"]["containers"]
    path = Path(build_parser().parse_args(["run", *container["args"]]).allowed_hosts_file)
    (mount,) = [m for m in container["volumeMounts"] if m["mountPath"] == str(path.parent)]
    assert mount["readOnly"] is True
    (volume,) = [v for v in pod["spec"]["volumes"] if v["name"] == mount["name"]]
    assert volume["configMap"]["name"] == config_map["metadata"]["name"]
    assert path.name in config_map["data"]
    # Read at start-up only: a change of the value rolls the operator.
    changed = render_file(tmp_path, {"tenancy": {"allowedHosts": {"team-a": ["db"]}}})
    annotation = "schemagate.io/allowed-hosts-sha256"
    assert pod["metadata"]["annotations"][annotation] != one(changed, "Deployment")[
        "spec"]["template"]["metadata"]["annotations"][annotation]


def test_without_allowed_hosts_any_host_and_no_config_map() -> None:
    manifests = render()
    assert not [m for m in of_kind(manifests, "ConfigMap") if "allowed-hosts" in str(m)]
    (container,) = one(manifests, "Deployment")["spec"]["template"]["spec"]["containers"]
    assert build_parser().parse_args(["run", *container["args"]]).allowed_hosts_file is None


def test_allowed_hosts_must_be_lists_of_patterns(tmp_path: Path) -> None:
    path = tmp_path / "values.yaml"
    path.write_text(yaml.safe_dump({"tenancy": {"allowedHosts": {"team-a": "db"}}}))
    result = helm("template", "schemagate", str(CHART), "-f", str(path))
    assert result.returncode != 0
    assert "/tenancy/allowedHosts/team-a" in result.stderr
