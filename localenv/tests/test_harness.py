"""The local cluster and its real node (containerd, runc, kubelet, kube-proxy) behave
as schemagate's promises need: readiness gates, Jobs in real containers, the kubelet's
own logs, native sidecars, pod networking, and recovery from restarts."""

from __future__ import annotations

import ipaddress
import json
import socket
import subprocess
from typing import Any

import pytest

from localenv import cluster as local_cluster
from localenv import node as local_node
from tests.cluster.fixtures import STRATEGIC_MERGE, Kube
from tests.support.wait import wait_for

GATE = "schemagate.io/harness"


def _deployment(replicas: int) -> dict[str, Any]:
    labels = {"app": "backend"}
    return {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "backend"},
        "spec": {
            "replicas": replicas, "selector": {"matchLabels": labels},
            "strategy": {"type": "RollingUpdate",
                         "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
            "template": {"metadata": {"labels": labels}, "spec": {
                "readinessGates": [{"conditionType": GATE}],
                "containers": [{"name": "app", "image": "schemagate/backend:dev",
                                "imagePullPolicy": "Never",
                                "command": ["sleep", "infinity"]}]}}}}


def _condition(conditions: list[Any] | None, type_: str) -> Any:
    return next((c for c in conditions or [] if c.type == type_), None)


def _available(kube: Kube, namespace: str) -> str | None:
    deployment = kube.apps.read_namespaced_deployment("backend", namespace)
    condition = _condition(deployment.status.conditions, "Available")
    return None if condition is None else str(condition.status)


def _set_gate(kube: Kube, namespace: str, status: str, message: str) -> None:
    for pod in kube.core.list_namespaced_pod(namespace, label_selector="app=backend").items:
        kube.core.patch_namespaced_pod_status(
            pod.metadata.name, namespace,
            {"status": {"conditions": [{"type": GATE, "status": status, "reason": "Harness",
                                        "message": message}]}},
            _content_type=STRATEGIC_MERGE)


def _pods_ready(kube: Kube, namespace: str) -> list[tuple[str | None, str | None]]:
    """(Ready status, reason) of each backend pod whose containers are ready."""
    pods = kube.core.list_namespaced_pod(namespace, label_selector="app=backend").items
    seen = []
    for pod in pods:
        if getattr(_condition(pod.status.conditions, "ContainersReady"), "status", None) == "True":
            ready = _condition(pod.status.conditions, "Ready")
            seen.append((ready.status, ready.reason))
    return seen


def test_a_readiness_gate_holds_a_deployment_unavailable_until_its_condition_is_true(
        kube: Kube, namespace: str) -> None:
    kube.apps.create_namespaced_deployment(namespace, _deployment(replicas=2))

    # Containers run, yet the gate's condition is absent: NotReady, not Available.
    wait_for("two running pods held NotReady by their readiness gate",
             lambda: _pods_ready(kube, namespace),
             lambda seen: seen == [("False", "ReadinessGatesNotReady")] * 2, timeout=60)
    assert wait_for("the Deployment's Available condition", lambda: _available(kube, namespace),
                    lambda s: s is not None, timeout=60) == "False"

    _set_gate(kube, namespace, "True", "schema verified")
    wait_for("the Deployment to become Available once the gate is True",
             lambda: _available(kube, namespace), lambda s: s == "True", timeout=60)
    assert _pods_ready(kube, namespace) == [("True", None)] * 2

    _set_gate(kube, namespace, "False", "tables missing")
    wait_for("the Deployment to become unavailable again once the gate is False",
             lambda: _available(kube, namespace), lambda s: s == "False", timeout=60)
    # One unready pod makes the Deployment unavailable; the kubelet turns each in turn.
    wait_for("both pods NotReady again", lambda: _pods_ready(kube, namespace),
             lambda seen: seen == [("False", "ReadinessGatesNotReady")] * 2, timeout=60)
    for pod in kube.core.list_namespaced_pod(namespace, label_selector="app=backend").items:
        ready, gate = _condition(pod.status.conditions, "Ready"), \
            _condition(pod.status.conditions, GATE)
        assert (ready.status, ready.reason) == ("False", "ReadinessGatesNotReady")
        # The kubelet has written Ready after our patch, and left the gate as we set it.
        assert (gate.status, gate.reason, gate.message) == ("False", "Harness", "tables missing")


def _job(name: str, command: list[str], image: str = "schemagate:dev",
         env: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    container = {"name": "main", "image": image, "imagePullPolicy": "Never",
                 "command": command, "env": env or [],
                 "terminationMessagePolicy": "FallbackToLogsOnError"}
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name},
            "spec": {"backoffLimit": 0, "template": {"spec": {
                "restartPolicy": "Never", "terminationGracePeriodSeconds": 2,
                "containers": [container]}}}}


def _job_outcome(kube: Kube, namespace: str, name: str) -> str | None:
    job = kube.batch.read_namespaced_job(name, namespace)
    for type_ in ("Complete", "Failed"):
        condition = _condition(job.status.conditions, type_)
        if condition is not None and condition.status == "True":
            return type_
    return None


def _pod(kube: Kube, namespace: str, job: str) -> Any:
    return kube.core.list_namespaced_pod(namespace, label_selector=f"job-name={job}").items[0]


def _terminated(kube: Kube, namespace: str, job: str) -> Any:
    return _pod(kube, namespace, job).status.container_statuses[0].state.terminated


def test_a_job_runs_in_a_real_container_with_env_from_a_secret_and_its_own_logs(
        cluster: local_cluster.Cluster, kube: Kube, namespace: str) -> None:
    kube.core.create_namespaced_secret(namespace, {
        "metadata": {"name": "backend-db"},
        "stringData": {"DATABASE_URL": "postgresql://backend@db.example/app"}})
    script = ("import os, sys; print('migrating', os.environ['DATABASE_URL']); "
              "print('python', sys.executable, 'uid', os.getuid())")
    env = [{"name": "DATABASE_URL",
            "valueFrom": {"secretKeyRef": {"name": "backend-db", "key": "DATABASE_URL"}}}]
    kube.batch.create_namespaced_job(namespace, _job("migrate", ["python", "-c", script],
                                                     env=env))

    assert wait_for("the Job to finish", lambda: _job_outcome(kube, namespace, "migrate"),
                    timeout=90) == "Complete"
    assert _terminated(kube, namespace, "migrate").exit_code == 0
    # The image's own Python and user (the Dockerfile's), read back through the kubelet.
    logs = cluster.kubectl("-n", namespace, "logs", "job/migrate")
    assert logs.returncode == 0, logs.stderr
    assert logs.stdout.splitlines() == ["migrating postgresql://backend@db.example/app",
                                        "python /opt/schemagate/bin/python uid 10001"]


def test_a_failing_job_fails_with_the_tail_of_its_output(
        cluster: local_cluster.Cluster, kube: Kube, namespace: str) -> None:
    noisy = "for i in $(seq 1 50); do echo step $i; done; echo 'relation missing' >&2; exit 3"
    kube.batch.create_namespaced_job(namespace, _job("migrate", ["sh", "-c", noisy]))

    assert wait_for("the Job to finish", lambda: _job_outcome(kube, namespace, "migrate"),
                    timeout=90) == "Failed"
    terminated = _terminated(kube, namespace, "migrate")
    assert (terminated.exit_code, terminated.reason) == (3, "Error")
    # containerd copies stdout and stderr from two pipes at once: each stream keeps its
    # order in the log, but a line of one may land anywhere among the other's. The
    # kubelet's fallback keeps the log's last 80 lines: all 51 here.
    message = terminated.message.splitlines()
    assert {"step 50", "relation missing"} <= set(message) and len(message) == 51
    logs = cluster.kubectl("-n", namespace, "logs", "job/migrate")
    assert logs.returncode == 0, logs.stderr
    lines = logs.stdout.splitlines()
    assert [line for line in lines if line.startswith("step ")] == \
        [f"step {i}" for i in range(1, 51)]
    assert lines.count("relation missing") == 1 and len(lines) == 51


def test_an_image_the_node_does_not_have_is_never_pulled(
        kube: Kube, namespace: str) -> None:
    kube.batch.create_namespaced_job(namespace, _job("other", ["true"], image="busybox:1.36"))

    def waiting_reason() -> str | None:
        statuses = _pod(kube, namespace, "other").status.container_statuses or []
        waiting = statuses[0].state.waiting if statuses else None
        return waiting.reason if waiting else None

    assert wait_for("the pod to wait on an image it may not pull", waiting_reason,
                    lambda r: r == "ErrImageNeverPull", timeout=60) == "ErrImageNeverPull"


def test_a_job_reads_its_configmap_volume_at_the_mount_path(
        kube: Kube, namespace: str) -> None:
    kube.core.create_namespaced_config_map(namespace, {
        "metadata": {"name": "migrations"}, "data": {"alembic.ini": "[alembic]\n"}})
    job = _job("read", ["sh", "-c", "pwd; cat alembic.ini"])
    pod_spec = job["spec"]["template"]["spec"]
    pod_spec["volumes"] = [{"name": "scripts", "configMap": {"name": "migrations"}}]
    pod_spec["containers"][0].update(
        workingDir="/migrations", volumeMounts=[{"name": "scripts", "mountPath": "/migrations"}])
    kube.batch.create_namespaced_job(namespace, job)

    assert wait_for("the Job to finish", lambda: _job_outcome(kube, namespace, "read"),
                    timeout=90) == "Complete"
    pod = _pod(kube, namespace, "read").metadata.name
    assert kube.core.read_namespaced_pod_log(pod, namespace).splitlines() == [
        "/migrations", "[alembic]"]


def test_pods_have_their_own_addresses_reach_the_host_and_nothing_beyond(
        cluster: local_cluster.Cluster, kube: Kube, namespace: str) -> None:
    # A listener on the host at the cluster's host address, as the tests' PostgreSQL is.
    with socket.socket() as listener:
        listener.bind((cluster.host_address, 0))
        listener.listen()
        port = listener.getsockname()[1]
        probe = ("import socket\n"
                 f"socket.create_connection(('{cluster.host_address}', {port}), 5).close()\n"
                 "print('host reached')\n"
                 "try:\n"
                 "    socket.create_connection(('1.1.1.1', 80), 3)\n"
                 "    print('outside reached')\n"
                 "except OSError as error:\n"
                 "    print('outside unreachable', error.errno)\n")
        kube.batch.create_namespaced_job(namespace, _job("net", ["python", "-c", probe]))
        listener.settimeout(60)
        peer, (address, _) = listener.accept()
        peer.close()
    assert wait_for("the Job to finish", lambda: _job_outcome(kube, namespace, "net"),
                    timeout=60) == "Complete"
    pod = _pod(kube, namespace, "net")
    assert ipaddress.ip_address(pod.status.pod_ip) in ipaddress.ip_network(local_node.POD_CIDR)
    assert address == pod.status.pod_ip, "the host sees the pod's own address"
    out = kube.core.read_namespaced_pod_log(pod.metadata.name, namespace).splitlines()
    assert out[0] == "host reached" and out[1].startswith("outside unreachable"), out


def _kubectl_in_repo(cluster: local_cluster.Cluster,
                     *args: str) -> subprocess.CompletedProcess[str]:
    # Exactly what a user types at the repository root.
    kubectl = str(cluster.bin_dir / "kubectl")
    return subprocess.run([kubectl, "--kubeconfig", ".cluster/kubeconfig", *args],
                          cwd=cluster.root, capture_output=True, text=True, timeout=30,
                          check=False)


def test_kubectl_reaches_a_ready_api_server_of_the_pinned_version(
        cluster: local_cluster.Cluster) -> None:
    readyz = _kubectl_in_repo(cluster, "get", "--raw", "/readyz")
    assert (readyz.returncode, readyz.stdout.strip()) == (0, "ok"), readyz.stderr

    version = _kubectl_in_repo(cluster, "get", "--raw", "/version")
    assert json.loads(version.stdout)["gitVersion"] == local_cluster.K8S_VERSION


def test_the_cluster_recovers_when_the_api_server_restarts(
        cluster: local_cluster.Cluster, kube: Kube, namespace: str) -> None:
    kube.core.create_namespaced_config_map(namespace, {
        "metadata": {"name": "before"}, "data": {"written": "before the restart"}})

    local_cluster.stop_apiserver(cluster.root)
    try:
        down = cluster.kubectl("get", "--raw", "/readyz", timeout=30)
        assert down.returncode != 0
    finally:
        local_cluster.start_apiserver(cluster.root)

    # The same client reconnects, and what was written before is still there.
    survived = wait_for("the ConfigMap written before the restart",
                        lambda: kube.core.read_namespaced_config_map("before", namespace),
                        timeout=60)
    assert survived.data == {"written": "before the restart"}
    # The controllers, the scheduler and the kubelet reconnected too: a new Job runs.
    kube.batch.create_namespaced_job(namespace, _job("after", ["python", "-c", "print('ok')"]))
    assert wait_for("the Job created after the restart to finish",
                    lambda: _job_outcome(kube, namespace, "after"), timeout=90) == "Complete"


def test_the_cluster_recovers_when_etcd_restarts(
        cluster: local_cluster.Cluster, kube: Kube, namespace: str) -> None:
    kube.core.create_namespaced_config_map(namespace, {
        "metadata": {"name": "kept"}, "data": {"key": "value"}})

    local_cluster.stop_etcd(cluster.root)
    try:
        wait_for("the API server to report not ready without etcd",
                 lambda: cluster.kubectl("get", "--raw", "/readyz", timeout=30).returncode,
                 lambda code: code != 0, timeout=60)
    finally:
        local_cluster.start_etcd(cluster.root)

    wait_for("the API server to be ready again",
             lambda: cluster.kubectl("get", "--raw", "/readyz").stdout.strip(),
             lambda out: out == "ok", timeout=60)
    assert kube.core.read_namespaced_config_map("kept", namespace).data == {"key": "value"}
    kube.batch.create_namespaced_job(namespace, _job("after", ["true"]))
    assert wait_for("a Job after the etcd restart to finish",
                    lambda: _job_outcome(kube, namespace, "after"), timeout=90) == "Complete"


SIDECAR = """
import os, pathlib, signal, time
if {ignore_sigterm}:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
tmp = pathlib.Path('/shared/sidecar.tmp')
tmp.write_text(str(os.getpid()))
tmp.replace('/shared/sidecar.pid')
time.sleep(3600)
"""
WAIT_FOR_SIDECAR = """
import os, pathlib, sys, time
pid_file, deadline = pathlib.Path('/shared/sidecar.pid'), time.monotonic() + 30
while not pid_file.exists() and time.monotonic() < deadline:
    time.sleep(0.1)
pid = int(pid_file.read_text())
os.kill(pid, 0)  # raises, and fails this container, unless the sidecar runs
print('sidecar', pid)
sys.exit({code})
"""


@pytest.mark.parametrize(("main_exit", "ignore_sigterm", "outcome", "sidecar_exit"), [
    (0, False, "Complete", 128 + 15),  # SIGTERM
    (3, True, "Failed", 128 + 9),      # SIGTERM ignored: SIGKILL after the grace period
])
def test_a_native_sidecar_runs_beside_the_job_and_is_stopped_once_it_ends(
        kube: Kube, namespace: str, main_exit: int, ignore_sigterm: bool,
        outcome: str, sidecar_exit: int) -> None:
    shared = [{"name": "shared", "mountPath": "/shared"}]
    job = _job("migrate", ["python", "-c", WAIT_FOR_SIDECAR.format(code=main_exit)],
               image="schemagate/backend:dev")
    # The pods share a process namespace, so the main container can see the sidecar's.
    job["spec"]["template"]["spec"]["shareProcessNamespace"] = True
    pod_spec = job["spec"]["template"]["spec"]
    pod_spec["terminationGracePeriodSeconds"] = 2
    pod_spec["volumes"] = [{"name": "shared", "emptyDir": {}}]
    pod_spec["containers"][0]["volumeMounts"] = shared
    pod_spec["initContainers"] = [
        {"name": "proxy", "image": "schemagate/backend:dev", "restartPolicy": "Always",
         "imagePullPolicy": "Never",
         "command": ["python", "-c", SIDECAR.format(ignore_sigterm=ignore_sigterm)],
         "volumeMounts": shared},
        # An ordinary init container after the sidecar starts once the sidecar runs.
        {"name": "init", "image": "schemagate/backend:dev", "imagePullPolicy": "Never",
         "command": ["python", "-c", WAIT_FOR_SIDECAR.format(code=0)], "volumeMounts": shared}]
    kube.batch.create_namespaced_job(namespace, job)

    assert wait_for("the Job to finish", lambda: _job_outcome(kube, namespace, "migrate"),
                    timeout=60) == outcome
    pod = kube.core.list_namespaced_pod(namespace, label_selector="job-name=migrate").items[0]
    main = pod.status.container_statuses[0].state.terminated
    assert main.exit_code == main_exit, main.message
    name = pod.metadata.name
    said = kube.core.read_namespaced_pod_log(name, namespace, container="main").split()
    pid = int(said[-1])
    proxy, init = pod.status.init_container_statuses
    assert (proxy.name, proxy.state.terminated.exit_code) == ("proxy", sidecar_exit)
    assert (init.name, init.state.terminated.exit_code) == ("init", 0)
    # The init container started once the sidecar ran, and saw the same process.
    assert kube.core.read_namespaced_pod_log(name, namespace, container="init").strip() == \
        f"sidecar {pid}"
    assert pod.status.phase == ("Succeeded" if main_exit == 0 else "Failed")
    assert _condition(pod.status.conditions, "Initialized").status == "True"
