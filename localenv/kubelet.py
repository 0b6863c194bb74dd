"""The kubelet stand-in: one Node, with its pods bound, run and reported as a kubelet would.

No scheduler and no container runtime run on this machine. This process

- registers the Node (Ready) and posts its heartbeat;
- binds every unscheduled pod to it, as the scheduler would (`pods/binding`);
- reports each pod's status like a kubelet, through strategic-merge patches of
  `pods/status` that name only a kubelet's own conditions (see `podstatus`);
- really runs a Job's pods whose image is in the local image map (see `podrun`),
  fails those with any other image, and marks other pods' containers running;
- finishes the deletion of its pods once their processes are gone.

It watches pods from a resourceVersion, relists when that version has expired,
and keeps retrying while the API server is away: a restarted API server or etcd
is followed without losing track of any pod.

    python -m localenv.kubelet --kubeconfig K --node-name N --image-map F
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import shutil
import signal
import threading
from dataclasses import dataclass
from pathlib import Path

from localenv import podenv, podlogs, podstatus
from localenv.kubejson import STRATEGIC_MERGE, Json, Kube, KubeError, path
from localenv.podrun import PodRunner, now
from localenv.podstatus import PodRun, Running, State, Terminated

log = logging.getLogger("kubelet")
HEARTBEAT_SECONDS = 20.0
WATCH_SECONDS = 60
MAX_GRACE_SECONDS = 30.0


@dataclass(frozen=True)
class Settings:
    kubeconfig: Path
    node_name: str
    image_map: Path
    pods_dir: Path
    kubelet_version: str
    ready_file: Path | None
    logs_port: int = 0  # 0: no log endpoint, `kubectl logs` answers an error
    pki_dir: Path | None = None


class _Expired(Exception):
    """The watch's resourceVersion is gone: relist."""


class WorkQueue:
    """Pod uids waiting to be synced; a uid queued twice is synced once."""

    def __init__(self) -> None:
        self._cv = threading.Condition()
        self._keys: dict[str, None] = {}

    def add(self, key: str) -> None:
        with self._cv:
            self._keys.setdefault(key)
            self._cv.notify()

    def add_after(self, key: str, delay: float) -> None:
        timer = threading.Timer(delay, self.add, [key])
        timer.daemon = True
        timer.start()

    def get(self) -> str:
        with self._cv:
            while not self._keys:
                self._cv.wait()
            key = next(iter(self._keys))
            del self._keys[key]
            return key


def node_object(settings: Settings) -> Json:
    name = settings.node_name
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": {
        "kubernetes.io/hostname": name, "kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64", "schemagate.io/kubelet-stand-in": "true"}}}


def node_status(settings: Settings) -> Json:
    stamp = now()
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 1024
    resources = {"cpu": str(os.cpu_count() or 1), "memory": f"{memory}Ki", "pods": "110",
                 "ephemeral-storage": f"{shutil.disk_usage('/').total // 1024}Ki"}
    conditions = [("Ready", "True", "KubeletReady", "kubelet stand-in is posting ready status"),
                  ("MemoryPressure", "False", "KubeletHasSufficientMemory", ""),
                  ("DiskPressure", "False", "KubeletHasNoDiskPressure", ""),
                  ("PIDPressure", "False", "KubeletHasSufficientPID", "")]
    return {"status": {
        "conditions": [{"type": t, "status": s, "reason": r, "message": m,
                        "lastHeartbeatTime": stamp} for t, s, r, m in conditions],
        "addresses": [{"type": "InternalIP", "address": podstatus.HOST_IP},
                      {"type": "Hostname", "address": settings.node_name}],
        "capacity": resources, "allocatable": resources,
        "daemonEndpoints": {"kubeletEndpoint": {"Port": settings.logs_port}},
        "nodeInfo": {"machineID": "", "systemUUID": "", "bootID": "",
                     "kernelVersion": platform.release(), "osImage": "schemagate local node",
                     "containerRuntimeVersion": "schemagate-local://0.1.0",
                     "kubeletVersion": settings.kubelet_version, "kubeProxyVersion": "",
                     "operatingSystem": "linux", "architecture": "amd64"}}}


def is_job_pod(pod: Json) -> bool:
    owners = pod["metadata"].get("ownerReferences") or []
    return any(o.get("kind") == "Job" for o in owners) or \
        pod["spec"].get("restartPolicy") in ("Never", "OnFailure")


def long_running(pod: Json) -> PodRun:
    """Containers that are not really run: running since first seen, init containers done
    (native sidecars running)."""
    status = pod.get("status") or {}
    reported = [*(status.get("containerStatuses") or []),
                *(status.get("initContainerStatuses") or [])]
    seen = {s["name"]: s.get("state") or {} for s in reported}
    stamp = now()

    def running(name: str) -> Running:
        return Running(seen.get(name, {}).get("running", {}).get("startedAt", stamp))

    main: dict[str, State] = {c["name"]: running(c["name"]) for c in pod["spec"]["containers"]}
    init: dict[str, State] = {}
    for c in pod["spec"].get("initContainers") or []:
        if podstatus.is_sidecar(c):
            init[c["name"]] = running(c["name"])
            continue
        done = seen.get(c["name"], {}).get("terminated", {})
        init[c["name"]] = Terminated(0, "Completed", done.get("startedAt", stamp),
                                     done.get("finishedAt", stamp))
    return PodRun(init=init, main=main)


def _has_started(pod: Json) -> bool:
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    return any({"running", "terminated"} & set(s.get("state") or {}) for s in statuses)


class Kubelet:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.kube = Kube(settings.kubeconfig)
        self._watch_kube = Kube(settings.kubeconfig)  # its connection stays busy
        self.queue = WorkQueue()
        self.stopped = threading.Event()
        self._lock = threading.Lock()
        self._pods: dict[str, Json] = {}
        self._runners: dict[str, PodRunner] = {}
        self._stopping: set[str] = set()
        self._deleted: set[str] = set()
        self._failures: dict[str, int] = {}

    # --- the node ---------------------------------------------------------------

    def register_node(self) -> None:
        try:
            self.kube.request("POST", "/api/v1/nodes", node_object(self.settings))
            log.info("registered node %s", self.settings.node_name)
        except KubeError as error:
            if error.status != 409:
                raise
        self.kube.request("PATCH", path("api", "v1", "nodes", self.settings.node_name, "status"),
                          node_status(self.settings), content_type=STRATEGIC_MERGE)

    def heartbeat_loop(self) -> None:
        while not self.stopped.wait(HEARTBEAT_SECONDS):
            try:
                self.register_node()  # also brings the Node back if it was deleted
            except Exception as error:
                log.warning("node heartbeat failed: %s", error)

    # --- the watch --------------------------------------------------------------

    def watch_loop(self) -> None:
        version: str | None = None
        delay = 0.5
        while not self.stopped.is_set():
            try:
                if version is None:
                    version = self._relist()
                version = self._watch(version)
                delay = 0.5
            except _Expired as error:
                log.info("watch expired (%s); relisting", error)
                version = None
            except Exception as error:  # the API server is away: keep trying, quietly
                log.warning("API server unreachable (%s); retrying in %.1fs",
                            str(error).splitlines()[0][:160], delay)
                self.stopped.wait(delay)
                delay = min(delay * 2, 5.0)

    def _relist(self) -> str:
        listed = self._watch_kube.request("GET", "/api/v1/pods")
        pods = {p["metadata"]["uid"]: p for p in listed["items"]}
        with self._lock:
            gone = set(self._pods) - set(pods)
            self._pods = pods
        for uid in [*gone, *pods]:
            self.queue.add(uid)
        if self.settings.ready_file:
            self.settings.ready_file.write_text(str(os.getpid()))
        return str(listed["metadata"]["resourceVersion"])

    def _watch(self, version: str) -> str:
        query = {"resourceVersion": version, "allowWatchBookmarks": "true",
                 "timeoutSeconds": str(WATCH_SECONDS)}
        try:
            for event in self._watch_kube.watch("/api/v1/pods", query, (3.0, WATCH_SECONDS + 15)):
                obj = event["object"]
                if event["type"] == "ERROR":
                    raise _Expired(obj.get("message", "watch error"))
                version = obj["metadata"]["resourceVersion"]
                if event["type"] == "BOOKMARK":
                    continue
                uid = obj["metadata"]["uid"]
                with self._lock:
                    if event["type"] == "DELETED":
                        self._pods.pop(uid, None)
                    else:
                        self._pods[uid] = obj
                self.queue.add(uid)
        except KubeError as error:
            if error.status == 410:
                raise _Expired(str(error)) from error
            raise
        return version

    # --- the pods ---------------------------------------------------------------

    def work_loop(self) -> None:
        while True:
            uid = self.queue.get()
            try:
                self.sync(uid)
                self._failures.pop(uid, None)
            except Exception as error:
                count = self._failures[uid] = self._failures.get(uid, 0) + 1
                delay = min(0.25 * 2 ** count, 10.0)
                log.warning("syncing pod %s failed (%s); retrying in %.1fs", uid,
                            str(error).splitlines()[0][:160], delay)
                self.queue.add_after(uid, delay)

    def sync(self, uid: str) -> None:
        with self._lock:
            pod = self._pods.get(uid)
        if pod is None:
            self._forget(uid)
            return
        node = pod["spec"].get("nodeName")
        if node and node != self.settings.node_name:
            return
        if pod["metadata"].get("deletionTimestamp"):
            if node:
                self._finish_deletion(pod)
            return
        if not node:
            if pod["spec"].get("schedulerName", "default-scheduler") == "default-scheduler":
                self._bind(pod)
            return
        run = self._run_state(pod)
        if run is None:
            return
        status = podstatus.desired(pod, run, now())
        if podstatus.covers(pod.get("status") or {}, status):
            return
        try:
            self.kube.request("PATCH", _pod_path(pod, "status"), {"status": status},
                              content_type=STRATEGIC_MERGE)
        except KubeError as error:
            if error.status != 404:  # deleted meanwhile: its DELETED event follows
                raise

    def _bind(self, pod: Json) -> None:
        meta = pod["metadata"]
        binding = {"apiVersion": "v1", "kind": "Binding",
                   "metadata": {"name": meta["name"], "uid": meta["uid"]},
                   "target": {"apiVersion": "v1", "kind": "Node",
                              "name": self.settings.node_name}}
        try:
            self.kube.request("POST", _pod_path(pod, "binding"), binding)
            log.info("bound pod %s/%s", meta["namespace"], meta["name"])
        except KubeError as error:
            if error.status not in (404, 409):  # gone, or bound meanwhile
                raise

    def _run_state(self, pod: Json) -> PodRun | None:
        if not is_job_pod(pod):
            return long_running(pod)
        uid = pod["metadata"]["uid"]
        runner = self._runners.get(uid)
        if runner is not None:
            return runner.state
        if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
            return None
        if _has_started(pod):
            return PodRun(failure=("ProcessLost", "the kubelet stand-in restarted while this "
                                   "pod ran; its processes are no longer watched"),
                          failed_at=now())
        runner = PodRunner(pod, self.settings.image_map, self._sandbox(pod), self._lookup,
                           lambda: self.queue.add(uid))
        self._runners[uid] = runner
        runner.start()
        log.info("running pod %s/%s in %s", pod["metadata"]["namespace"],
                 pod["metadata"]["name"], runner.sandbox)
        return runner.state

    def _lookup(self, kind: str, namespace: str, name: str) -> dict[str, str] | None:
        plural = {"Secret": "secrets", "ConfigMap": "configmaps"}[kind]
        try:
            obj = self.kube.request("GET", path("api", "v1", "namespaces", namespace, plural, name))
        except KubeError as error:
            if error.status == 404:
                return None
            raise podenv.ConfigError(f"reading {kind} {namespace}/{name}: {error}") from error
        except Exception as error:  # unreachable API server: retried like a missing Secret
            raise podenv.ConfigError(f"reading {kind} {namespace}/{name}: {error}") from error
        return podenv.decoded(kind, obj)

    def _sandbox(self, pod: Json) -> Path:
        meta = pod["metadata"]
        name = f"{meta['name']}-{meta['uid'][:8]}"
        return Path(self.settings.pods_dir, meta["namespace"], name)

    def _finish_deletion(self, pod: Json) -> None:
        """No real kubelet will finalise the deletion: stop the processes, then delete
        with grace 0, as a kubelet does once its containers are gone."""
        uid = pod["metadata"]["uid"]
        runner = self._runners.get(uid)
        if runner is not None and not runner.done.is_set():
            if uid not in self._stopping:
                self._stopping.add(uid)
                grace = min(float(pod["metadata"].get("deletionGracePeriodSeconds") or 30),
                            MAX_GRACE_SECONDS)
                threading.Thread(target=self._stop_runner, args=(runner, uid, grace),
                                 daemon=True).start()
            return
        if uid in self._deleted:
            return
        try:
            self.kube.request("DELETE", _pod_path(pod), {
                "apiVersion": "v1", "kind": "DeleteOptions", "gracePeriodSeconds": 0,
                "preconditions": {"uid": uid}})
        except KubeError as error:
            if error.status not in (404, 409):
                raise
        self._deleted.add(uid)
        log.info("deleted pod %s/%s", pod["metadata"]["namespace"], pod["metadata"]["name"])

    def _stop_runner(self, runner: PodRunner, uid: str, grace: float) -> None:
        runner.stop(grace)
        self.queue.add(uid)

    def _forget(self, uid: str) -> None:
        runner = self._runners.pop(uid, None)
        if runner is not None:
            if not runner.done.is_set():
                threading.Thread(target=runner.stop, args=(0.0,), daemon=True).start()
            shutil.rmtree(runner.sandbox, ignore_errors=True)
        self._stopping.discard(uid)
        self._deleted.discard(uid)
        self._failures.pop(uid, None)

    def shutdown(self) -> None:
        """Stops every process this node runs, as a node going down would."""
        self.stopped.set()
        runners = list(self._runners.values())
        threads = [threading.Thread(target=r.stop, args=(2.0,)) for r in runners]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(10)


def _pod_path(pod: Json, *sub: str) -> str:
    meta = pod["metadata"]
    return path("api", "v1", "namespaces", meta["namespace"], "pods", meta["name"], *sub)


def parse(argv: list[str] | None) -> Settings:
    parser = argparse.ArgumentParser(prog="python -m localenv.kubelet",
                                     description="the kubelet stand-in of the local cluster")
    parser.add_argument("--kubeconfig", type=Path, required=True)
    parser.add_argument("--node-name", default="schemagate-node")
    parser.add_argument("--image-map", type=Path, required=True)
    parser.add_argument("--pods-dir", type=Path, required=True)
    parser.add_argument("--kubelet-version", default="v0.0.0")
    parser.add_argument("--ready-file", type=Path)
    parser.add_argument("--logs-port", type=int, default=0)
    parser.add_argument("--pki-dir", type=Path, help="ca.crt, kubelet.crt and kubelet.key")
    args = parser.parse_args(argv)
    return Settings(args.kubeconfig, args.node_name, args.image_map.resolve(),
                    args.pods_dir.resolve(), args.kubelet_version, args.ready_file,
                    args.logs_port, args.pki_dir)


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(threadName)s %(message)s")
    # Each failed connection attempt is already reported once by the loop retrying it.
    logging.getLogger("urllib3").setLevel(logging.ERROR)
    settings = parse(argv)
    kubelet = Kubelet(settings)
    if settings.logs_port and settings.pki_dir:
        podlogs.serve(settings.pods_dir, settings.logs_port, settings.pki_dir / "kubelet.crt",
                      settings.pki_dir / "kubelet.key", settings.pki_dir / "ca.crt")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    while not stop.is_set():
        try:
            kubelet.register_node()
            break
        except Exception as error:
            log.warning("registering the node failed (%s); retrying", error)
            stop.wait(1.0)
    for target in (kubelet.watch_loop, kubelet.work_loop, kubelet.heartbeat_loop):
        threading.Thread(target=target, name=target.__name__, daemon=True).start()
    while not stop.wait(1.0):
        pass
    log.info("stopping: ending every pod process")
    kubelet.shutdown()


if __name__ == "__main__":
    main()
