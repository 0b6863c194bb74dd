"""The kubelet stand-in's decisions, over plain pod data: no API server, no process."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from localenv import kubelet, podenv, podlogs, podrun, podstatus
from localenv.podstatus import PodRun, Running, Terminated, Waiting

GATE = "schemagate.io/backend-schema"
T0, T1 = "2026-01-01T00:00:00Z", "2026-01-01T00:05:00Z"


def _pod(conditions: list[dict[str, Any]] | None = None, **spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": "backend-1", "namespace": "prod", "uid": "0123abcd-ef",
                         "labels": {"app": "backend"}},
            "spec": {"nodeName": "n", "containers": [{"name": "app", "image": "x"}], **spec},
            "status": {"conditions": conditions or []}}


def _by_type(status: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in status["conditions"]}


def test_running_containers_are_ready_only_when_every_gate_is_true() -> None:
    running = PodRun(main={"app": Running(T0)})
    gated = _pod(readinessGates=[{"conditionType": GATE}])

    ready = _by_type(podstatus.desired(gated, running, T0))["Ready"]
    assert (ready["status"], ready["reason"]) == ("False", "ReadinessGatesNotReady")
    assert f'"{GATE}" does not exist' in ready["message"]

    opened = _pod([{"type": GATE, "status": "True"}], readinessGates=[{"conditionType": GATE}])
    conditions = _by_type(podstatus.desired(opened, running, T0))
    assert conditions["Ready"]["status"] == conditions["ContainersReady"]["status"] == "True"
    # A True condition drops the reason it had while False.
    assert conditions["Ready"]["reason"] is None


def test_the_patch_never_names_a_condition_the_kubelet_does_not_own() -> None:
    pod = _pod([{"type": GATE, "status": "False"}], readinessGates=[{"conditionType": GATE}])
    status = podstatus.desired(pod, PodRun(main={"app": Running(T0)}), T0)
    assert [c["type"] for c in status["conditions"]] == list(podstatus.KUBELET_CONDITIONS)


def test_last_transition_time_moves_only_when_the_status_flips() -> None:
    before = podstatus.desired(_pod(), PodRun(main={"app": Running(T0)}), T0)
    pod = _pod(before["conditions"])
    pod["status"].update(before)

    unchanged = podstatus.desired(pod, PodRun(main={"app": Running(T0)}), T1)
    assert _by_type(unchanged)["Ready"]["lastTransitionTime"] == T0
    assert podstatus.covers(pod["status"], unchanged)  # nothing to patch

    done = PodRun(main={"app": Terminated(0, "Completed", T0, T1)})
    flipped = podstatus.desired(pod, done, T1)
    assert _by_type(flipped)["Ready"]["lastTransitionTime"] == T1
    assert flipped["phase"] == "Succeeded"
    assert not podstatus.covers(pod["status"], flipped)


@pytest.mark.parametrize(("run", "phase"), [
    (PodRun(), "Pending"),
    (PodRun(main={"app": Waiting("CreateContainerConfigError", "secret missing")}), "Pending"),
    (PodRun(main={"app": Running(T0)}), "Running"),
    (PodRun(main={"app": Terminated(3, "Error", T0, T1)}), "Failed"),
    (PodRun(failure=("ImageNotInLocalMap", "busybox"), failed_at=T0), "Failed"),
])
def test_phase_follows_the_containers(run: PodRun, phase: str) -> None:
    assert podstatus.phase(_pod(), run) == phase


def test_a_failed_pod_ends_its_containers_with_the_pods_reason() -> None:
    run = PodRun(failure=("ImageNotInLocalMap", 'image "busybox" is not in the map'),
                 failed_at=T0)
    status = podstatus.desired(_pod(), run, T1)
    terminated = status["containerStatuses"][0]["state"]["terminated"]
    assert (terminated["reason"], terminated["finishedAt"]) == ("ImageNotInLocalMap", T0)
    assert status["reason"] == "ImageNotInLocalMap"


def test_variable_references_expand_like_kubernetes() -> None:
    env = {"USER": "backend", "HOST": "db"}
    assert podenv.expand("postgresql://$(USER)@$(HOST)/$(DB)", env) == \
        "postgresql://backend@db/$(DB)"
    assert podenv.expand("echo $$$$ $$(USER)", env) == "echo $$ $(USER)"


def test_env_comes_from_secrets_config_maps_and_fields_in_order() -> None:
    objects = {("Secret", "backend-db"): {"DATABASE_URL": "postgresql://u:p@h/app"},
               ("ConfigMap", "settings"): {"LOG_LEVEL": "debug", "bad key": "skipped"}}
    container = {"name": "app",
                 "envFrom": [{"configMapRef": {"name": "settings"}, "prefix": "APP_"}],
                 "env": [{"name": "URL", "valueFrom": {"secretKeyRef": {
                             "name": "backend-db", "key": "DATABASE_URL"}}},
                         {"name": "POD", "valueFrom": {"fieldRef": {
                             "fieldPath": "metadata.name"}}},
                         {"name": "APP", "valueFrom": {"fieldRef": {
                             "fieldPath": "metadata.labels['app']"}}},
                         {"name": "DSN", "value": "$(URL)?app=$(POD)"}]}

    env = podenv.container_env(_pod(), container, lambda kind, _ns, name: objects.get((kind, name)))
    assert env == {"APP_LOG_LEVEL": "debug", "URL": "postgresql://u:p@h/app", "POD": "backend-1",
                   "APP": "backend", "DSN": "postgresql://u:p@h/app?app=backend-1"}


def test_a_missing_secret_is_a_config_error_unless_optional() -> None:
    ref = {"name": "URL", "valueFrom": {"secretKeyRef": {"name": "gone", "key": "k"}}}
    with pytest.raises(podenv.ConfigError, match='secret "gone" not found'):
        podenv.container_env(_pod(), {"name": "app", "env": [ref]}, lambda *_: None)
    ref["valueFrom"]["secretKeyRef"]["optional"] = True
    assert podenv.container_env(_pod(), {"name": "app", "env": [ref]}, lambda *_: None) == {}


def test_mount_paths_are_rewritten_as_whole_path_components() -> None:
    paths = {"/etc/app": "/sandbox/volumes/config", "/app": "/srv/backend"}
    assert podenv.relocate("--config=/etc/app/alembic.ini", paths) == \
        "--config=/sandbox/volumes/config/alembic.ini"
    assert podenv.relocate("/app", paths) == "/srv/backend"
    assert podenv.relocate("/etc/application /mnt/app", paths) == "/etc/application /mnt/app"


def test_configmap_volumes_are_materialised_with_their_items(tmp_path: Path) -> None:
    pod = _pod(volumes=[{"name": "scripts", "configMap": {
        "name": "migrations", "items": [{"key": "ini", "path": "conf/alembic.ini"}]}}])
    container = {"name": "app", "volumeMounts": [{"name": "scripts", "mountPath": "/m"}]}
    mounts = podenv.mounts(pod, container, tmp_path, lambda *_: {"ini": "[alembic]"})
    assert mounts == {"/m": str(tmp_path / "volumes" / "scripts")}
    assert (tmp_path / "volumes/scripts/conf/alembic.ini").read_text() == "[alembic]"


def test_logs_are_found_by_exact_pod_name_and_cut_like_kubectl_asks(tmp_path: Path) -> None:
    for sandbox in ("migrate-abc-1234abcd", "migrate-5678ef90"):
        (tmp_path / "prod" / sandbox / "logs").mkdir(parents=True)
        (tmp_path / "prod" / sandbox / "logs" / "main.log").write_text(f"{sandbox}\n")
    found = podlogs.find_log(tmp_path, "prod", "migrate", "main")
    assert found is not None and found.read_text() == "migrate-5678ef90\n"
    assert podlogs.find_log(tmp_path, "prod", "..", "main") is None
    assert podlogs.select(b"a\nb\nc\n", tail_lines=2, limit_bytes=None) == b"b\nc\n"
    assert podlogs.select(b"a\nb\nc\n", tail_lines=None, limit_bytes=3) == b"a\nb"


def _with_sidecar() -> dict[str, Any]:
    return _pod(initContainers=[{"name": "proxy", "image": "x", "restartPolicy": "Always"},
                                {"name": "init", "image": "x"}])


def test_a_started_native_sidecar_initialises_the_pod_and_runs_beside_its_containers() -> None:
    pod = _with_sidecar()
    starting = PodRun(init={"proxy": Running(T0), "init": Running(T0)})
    assert _by_type(podstatus.desired(pod, starting, T0))["Initialized"]["message"] == \
        "containers with incomplete status: [init]"

    running = PodRun(init={"proxy": Running(T0), "init": Terminated(0, "Completed", T0, T0)},
                     main={"app": Running(T1)})
    status = podstatus.desired(pod, running, T1)
    conditions = _by_type(status)
    assert conditions["Initialized"]["status"] == conditions["Ready"]["status"] == "True"
    assert status["phase"] == "Running"
    proxy, init = status["initContainerStatuses"]
    assert (proxy["ready"], proxy["started"], proxy["state"]) == \
        (True, True, {"running": {"startedAt": T0}})
    assert (init["ready"], init["started"]) == (True, False)


@pytest.mark.parametrize(("app_exit", "phase"), [(0, "Succeeded"), (3, "Failed")])
def test_a_pod_with_a_sidecar_ends_once_the_sidecar_is_stopped_whatever_its_exit_code(
        app_exit: int, phase: str) -> None:
    pod = _with_sidecar()
    init = {"init": Terminated(0, "Completed", T0, T0)}
    app = Terminated(app_exit, "Error" if app_exit else "Completed", T0, T1)
    stopping = PodRun(init={**init, "proxy": Running(T0)}, main={"app": app})
    assert podstatus.phase(pod, stopping) == "Running"

    stopped = PodRun(init={**init, "proxy": Terminated(143, "Error", T0, T1)}, main={"app": app})
    status = podstatus.desired(pod, stopped, T1)
    assert status["phase"] == phase
    assert _by_type(status)["Initialized"]["status"] == "True"
    assert status["initContainerStatuses"][0]["state"]["terminated"]["exitCode"] == 143


def test_a_failed_ordinary_init_container_fails_the_pod_once_the_sidecar_is_stopped() -> None:
    pod = _with_sidecar()
    failed = Terminated(1, "Error", T0, T0)
    assert podstatus.phase(pod, PodRun(init={"proxy": Running(T0), "init": failed})) == "Pending"
    stopped = PodRun(init={"proxy": Terminated(143, "Error", T0, T1), "init": failed})
    assert podstatus.phase(pod, stopped) == "Failed"


def test_the_sidecars_of_a_pod_that_is_not_run_are_reported_running() -> None:
    run = kubelet.long_running(_with_sidecar())
    assert isinstance(run.init["proxy"], Running) and isinstance(run.main["app"], Running)
    assert isinstance(run.init["init"], Terminated) and run.init["init"].exit_code == 0


def test_the_grace_period_of_a_sidecar_stop_is_the_pods_at_most_30_seconds() -> None:
    assert podrun.grace_seconds(_pod()) == 30.0
    assert podrun.grace_seconds(_pod(terminationGracePeriodSeconds=0)) == 0.0
    assert podrun.grace_seconds(_pod(terminationGracePeriodSeconds=600)) == 30.0
