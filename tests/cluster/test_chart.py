"""The rendered chart against the real API server: every object is accepted, and the
operator's pod is admitted under Pod Security Standards "restricted"."""

from __future__ import annotations

import copy
import json
import re

import pytest
import yaml

from localenv.cluster import Cluster
from tests.chart import ROOT, Manifest, one, render, render_text


@pytest.mark.parametrize("mode", ["all-namespaces", "watch-namespaces"])
def test_the_rendered_chart_passes_a_server_side_dry_run(cluster: Cluster, namespace: str,
                                                         mode: str) -> None:
    values = {"watchNamespaces": f"{{{namespace}}}"} if mode == "watch-namespaces" else {}
    text = render_text(values, release="dry", namespace=namespace, include_crds=True)
    # Server-side apply: the CRD may already be there, applied the same way by other tests.
    result = cluster.kubectl("apply", "--server-side", "--force-conflicts", "--dry-run=server",
                             "-f", "-", input=text)
    assert result.returncode == 0, result.stderr
    applied = set(re.findall(r"^(\S+) \S+ \(server dry run\)$", result.stdout, re.MULTILINE))
    kinds = {f"{m['kind'].lower()}" for m in yaml.safe_load_all(text) if m}
    assert {name.split(".")[0].split("/")[0] for name in applied} == kinds, result.stdout
    assert "Warning" not in result.stderr, result.stderr


def _as_pod(deployment: Manifest, name: str) -> Manifest:
    template = copy.deepcopy(deployment["spec"]["template"])
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "labels": template["metadata"]["labels"]},
            "spec": template["spec"]}


def test_the_operator_pod_is_admitted_under_restricted(cluster: Cluster, namespace: str
                                                       ) -> None:
    labelled = cluster.kubectl("label", "namespace", namespace,
                               "pod-security.kubernetes.io/enforce=restricted",
                               "pod-security.kubernetes.io/enforce-version=latest")
    assert labelled.returncode == 0, labelled.stderr
    manifests = render(namespace=namespace)
    deployment = one(manifests, "Deployment")
    account = cluster.kubectl("apply", "-f", "-",
                              input=json.dumps(one(manifests, "ServiceAccount")))
    assert account.returncode == 0, account.stderr  # admission looks the pod's account up

    pod = cluster.kubectl("-n", namespace, "create", "--dry-run=server", "-o", "json",
                          "-f", "-", input=json.dumps(_as_pod(deployment, "operator")))
    assert pod.returncode == 0, pod.stderr
    assert json.loads(pod.stdout)["spec"]["containers"][0]["securityContext"][
        "readOnlyRootFilesystem"] is True
    workload = cluster.kubectl("-n", namespace, "apply", "--dry-run=server", "-f", "-",
                               input=json.dumps(deployment))
    assert workload.returncode == 0 and "would violate" not in workload.stderr, workload.stderr

    # The control: the same pod, its container's hardening dropped, is refused.
    loose = _as_pod(deployment, "loose")
    del loose["spec"]["containers"][0]["securityContext"]
    refused = cluster.kubectl("-n", namespace, "create", "--dry-run=server", "-f", "-",
                              input=json.dumps(loose))
    assert refused.returncode != 0
    assert 'violates PodSecurity "restricted:latest"' in refused.stderr
    assert "allowPrivilegeEscalation != false" in refused.stderr


def test_the_gated_deployment_example_is_accepted(cluster: Cluster, namespace: str) -> None:
    crd = cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f",
                          str(ROOT / "crds"))
    assert crd.returncode == 0, crd.stderr
    cluster.kubectl("wait", "--for=condition=Established", "--timeout=30s",
                    "crd/databaseschemas.schemagate.io")
    example = ROOT / "examples" / "gate-a-deployment"
    result = cluster.kubectl("-n", namespace, "apply", "--dry-run=server", "-f", str(example))
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("(server dry run)") == 3, result.stdout
