"""A real local Kubernetes control plane, the way envtest builds one, plus a kubelet.

    python -m localenv.cluster up|down|status
    python -m localenv.cluster stop-apiserver|start-apiserver|stop-etcd|start-etcd

etcd, kube-apiserver and kube-controller-manager are real binaries, built once by
`hack/build-control-plane.sh`; the kubelet is the stand-in of
`localenv.kubelet`. Everything listens on 127.0.0.1 and lives under
`<root>/.cluster/`: the admin kubeconfig, the PKI, etcd's data, pidfiles and logs.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from localenv import daemons, pki

K8S_VERSION = "v1.36.3"
NODE_NAME = "schemagate-node"
SERVICE_CIDR = "10.0.0.0/24"
# What a backend needs, and no node-lifecycle controller: with no real kubelet
# posting leases it would taint the node and evict every pod.
CONTROLLERS = ("deployment-controller", "replicaset-controller", "job-controller",
               "garbage-collector-controller", "namespace-controller",
               "endpointslice-controller", "serviceaccount-controller",
               "serviceaccount-token-controller", "ttl-after-finished-controller")
COMPONENTS = ("etcd", "kube-apiserver", "kube-controller-manager", "kubelet")
START_TIMEOUT = 90.0
REPO_ROOT = Path(__file__).resolve().parents[1]
# What `down` removes; anything else under .cluster/ (the logs, a demo's
# database) belongs to someone else.
OWN_ENTRIES = ("etcd", "pki", "run", "pods", "apiserver", "kubeconfig",
               "controller-manager.kubeconfig", "images.json", "ports.json")


@dataclass(frozen=True)
class Layout:
    """The paths of one cluster, all under `<root>/.cluster`."""

    root: Path

    @property
    def dir(self) -> Path:
        return self.root / ".cluster"

    @property
    def kubeconfig(self) -> Path:
        return self.dir / "kubeconfig"

    @property
    def images(self) -> Path:
        return self.dir / "images.json"

    @property
    def ports_file(self) -> Path:
        return self.dir / "ports.json"

    @property
    def logs(self) -> Path:
        return self.dir / "logs"

    @property
    def run(self) -> Path:
        return self.dir / "run"

    def pki(self) -> pki.Pki:
        return pki.Pki(self.dir / "pki")


@dataclass(frozen=True)
class Cluster:
    """A running cluster, as its users see it."""

    root: Path
    kubeconfig: Path
    server: str
    bin_dir: Path
    images: Path  # the image map the kubelet stand-in reads

    def kubectl(self, *args: str, input: str | None = None,
                timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """Runs the pinned kubectl against this cluster; never raises on a non-zero exit."""
        return subprocess.run([str(self.bin_dir / "kubectl"), "--kubeconfig",
                               str(self.kubeconfig), *args], input=input, capture_output=True,
                              text=True, timeout=timeout, check=False)


def build_notice(root: Path = REPO_ROOT) -> str:
    """One line saying whether `ensure_up` will first spend minutes building."""
    result = subprocess.run(["bash", str(root / "hack" / "build-control-plane.sh"), "path"],
                            capture_output=True, text=True, check=False)
    where = result.stdout.strip()
    if result.returncode == 0:
        return f"      binaries cached in {where}"
    return (f"      building etcd, kube-apiserver, kube-controller-manager and kubectl from the "
            f"Go module proxy into {where}: about 6 minutes on 2 cores, once")


def build(root: Path) -> Path:
    """The directory of the cached binaries, building them first if needed."""
    result = subprocess.run(["bash", str(root / "hack" / "build-control-plane.sh"),
                             "control-plane"], stdout=subprocess.PIPE, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError("building the control plane failed (see the messages above)")
    return Path(result.stdout.strip().splitlines()[-1])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _ports(layout: Layout) -> dict[str, int]:
    # Kept for the cluster's lifetime: clients, kubeconfigs and etcd's member
    # record all name them, and a restarted component must come back on them.
    ports: dict[str, int] = {}
    if layout.ports_file.exists():
        ports = {k: int(v) for k, v in json.loads(layout.ports_file.read_text()).items()}
    missing = {"etcd", "etcd-peer", "kube-apiserver", "kubelet"} - set(ports)
    if missing:
        ports.update({name: _free_port() for name in sorted(missing)})
        layout.ports_file.write_text(json.dumps(ports))
    return ports


def _daemon(layout: Layout, name: str, bin_dir: Path) -> daemons.Daemon:
    ports = _ports(layout)
    argv = {"etcd": _etcd_argv, "kube-apiserver": _apiserver_argv,
            "kube-controller-manager": _controller_manager_argv,
            "kubelet": _kubelet_argv}[name](layout, bin_dir, ports)
    return daemons.Daemon(name, argv, layout.run, layout.logs)


def _etcd_argv(layout: Layout, bin_dir: Path, ports: dict[str, int]) -> list[str]:
    client, peer = f"http://127.0.0.1:{ports['etcd']}", f"http://127.0.0.1:{ports['etcd-peer']}"
    return [str(bin_dir / "etcd"), "--name=local", f"--data-dir={layout.dir / 'etcd'}",
            f"--listen-client-urls={client}", f"--advertise-client-urls={client}",
            f"--listen-peer-urls={peer}", f"--initial-advertise-peer-urls={peer}",
            f"--initial-cluster=local={peer}", "--unsafe-no-fsync=true", "--log-level=warn"]


def _apiserver_argv(layout: Layout, bin_dir: Path, ports: dict[str, int]) -> list[str]:
    p = layout.pki()
    return [str(bin_dir / "kube-apiserver"), f"--etcd-servers=http://127.0.0.1:{ports['etcd']}",
            "--bind-address=127.0.0.1", "--advertise-address=127.0.0.1",
            f"--secure-port={ports['kube-apiserver']}",
            f"--tls-cert-file={p.cert('apiserver')}",
            f"--tls-private-key-file={p.key('apiserver')}",
            f"--client-ca-file={p.ca}", "--authorization-mode=Node,RBAC",
            # `kubectl logs` goes through the stand-in's log endpoint (podlogs.py).
            f"--kubelet-client-certificate={p.cert('admin')}",
            f"--kubelet-client-key={p.key('admin')}", f"--kubelet-certificate-authority={p.ca}",
            "--kubelet-preferred-address-types=InternalIP",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-account-key-file={p.service_account_pub}",
            f"--service-account-signing-key-file={p.service_account_key}",
            f"--cert-dir={layout.dir / 'apiserver'}", "--allow-privileged=true",
            # The `kubernetes` Service cannot point at a loopback address (Endpoints
            # refuse 127.0.0.1); nothing in this cluster calls it from a pod.
            "--endpoint-reconciler-type=none", "--profiling=false",
            # On SIGTERM, end the watches of the controllers and the stand-in
            # instead of waiting for them to time out: a restart takes seconds.
            "--shutdown-watch-termination-grace-period=2s"]


def _controller_manager_argv(layout: Layout, bin_dir: Path, ports: dict[str, int]) -> list[str]:
    p = layout.pki()
    return [str(bin_dir / "kube-controller-manager"),
            f"--kubeconfig={layout.dir / 'controller-manager.kubeconfig'}",
            f"--controllers={','.join(CONTROLLERS)}", "--leader-elect=false",
            # One identity for every controller (see pki.py): no token requests
            # that could fail while a restarted API server warms up.
            "--use-service-account-credentials=false",
            f"--service-account-private-key-file={p.service_account_key}",
            f"--root-ca-file={p.ca}", "--secure-port=0", "--cluster-name=schemagate-local"]


def _image_map(layout: Layout) -> Path:
    """The map of a running stand-in, as it was started; else the one it would get."""
    try:
        argv = json.loads((layout.run / "kubelet.pid").read_text())["argv"]
        return Path(next(a.split("=", 1)[1] for a in argv if a.startswith("--image-map=")))
    except (FileNotFoundError, ValueError, KeyError, StopIteration):
        return Path(os.environ.get("SCHEMAGATE_IMAGE_MAP") or layout.images)


def _kubelet_argv(layout: Layout, bin_dir: Path, ports: dict[str, int]) -> list[str]:
    images = _image_map(layout)
    return [sys.executable, "-m", "localenv.kubelet",
            f"--kubeconfig={layout.kubeconfig}", f"--node-name={NODE_NAME}",
            f"--image-map={images}", f"--pods-dir={layout.dir / 'pods'}",
            f"--kubelet-version={K8S_VERSION}", f"--ready-file={layout.run / 'kubelet.ready'}",
            f"--logs-port={ports['kubelet']}", f"--pki-dir={layout.pki().dir}"]


def default_image_map(root: Path) -> dict[str, dict[str, object]]:
    """The project's virtual environment stands in for the project's images."""
    venv = root / ".venv"
    runtime: dict[str, object] = {"bin": str(venv / "bin"), "env": {"VIRTUAL_ENV": str(venv)}}
    # The example backend's image ships its Alembic project at /app/migrations.
    backend = {**runtime, "paths": {"/app": str(root / "examples" / "incident")}}
    return {"schemagate/backend:dev": backend, "schemagate:dev": runtime}


def _https_get(layout: Layout, path: str, timeout: float = 3.0) -> tuple[int, str]:
    """GET on the API server as the admin; (0, "") when nothing answers."""
    p = layout.pki()
    context = ssl.create_default_context(cafile=str(p.ca))
    context.load_cert_chain(str(p.cert("admin")), str(p.key("admin")))
    url = f"https://127.0.0.1:{_ports(layout)['kube-apiserver']}{path}"
    # No proxy, whatever the environment says: everything here is on loopback.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}),
                                         urllib.request.HTTPSHandler(context=context))
    return _read(opener, url, timeout)


def _read(opener: urllib.request.OpenerDirector, url: str, timeout: float) -> tuple[int, str]:
    try:
        with opener.open(url, timeout=timeout) as response:
            return int(response.status), response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode(errors="replace")
    except (urllib.error.URLError, OSError):
        return 0, ""


def _etcd_healthy(layout: Layout) -> bool:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    status, body = _read(opener, f"http://127.0.0.1:{_ports(layout)['etcd']}/health", 2.0)
    return status == 200 and '"health":"true"' in body


def _kubelet_ready(layout: Layout, pid: int) -> bool:
    # The stand-in writes its pid here once it has registered the node and
    # listed the pods: from then on, new pods are bound and run.
    marker = layout.run / "kubelet.ready"
    return marker.exists() and marker.read_text().strip() == str(pid)


def _ready(layout: Layout, name: str, pid: int) -> bool:
    if name == "etcd":
        return _etcd_healthy(layout)
    if name == "kube-apiserver":
        return _https_get(layout, "/readyz") == (200, "ok")
    if name == "kube-controller-manager":
        # The serviceaccount controller has run: namespaces get their `default`.
        return _https_get(layout, "/api/v1/namespaces/default/serviceaccounts/default")[0] == 200
    return _kubelet_ready(layout, pid)


def _ensure_running(layout: Layout, name: str, bin_dir: Path, fresh: bool = False) -> None:
    daemon = _daemon(layout, name, bin_dir)
    pid = daemons.pid_of(daemon)
    if pid is None:
        pid = daemons.start(daemon, fresh_log=fresh)
    if not daemons.wait_until(lambda: _ready(layout, name, pid) or daemons.pid_of(daemon) is None,
                              START_TIMEOUT, interval=0.2):
        raise RuntimeError(f"{name} not ready after {START_TIMEOUT:.0f}s; see {daemon.log}:\n"
                           + daemons.log_tail(daemon))
    if daemons.pid_of(daemon) is None:
        raise RuntimeError(f"{name} exited at start-up; see {daemon.log}:\n"
                           + daemons.log_tail(daemon))


@contextlib.contextmanager
def _locked(layout: Layout) -> Iterator[None]:
    """One `up` or `down` at a time per cluster, even across processes."""
    layout.dir.mkdir(parents=True, exist_ok=True)
    with open(layout.dir / "lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _prepare(layout: Layout) -> None:
    layout.logs.mkdir(parents=True, exist_ok=True)
    layout.run.mkdir(parents=True, exist_ok=True)
    p = pki.ensure(layout.dir / "pki")
    server = f"https://127.0.0.1:{_ports(layout)['kube-apiserver']}"
    pki.write_kubeconfig(layout.kubeconfig, server, p, "admin")
    pki.write_kubeconfig(layout.dir / "controller-manager.kubeconfig", server, p,
                         "controller-manager")
    if not layout.images.exists():
        layout.images.write_text(json.dumps(default_image_map(layout.root), indent=2) + "\n")


def _cluster(layout: Layout, bin_dir: Path) -> Cluster:
    server = f"https://127.0.0.1:{_ports(layout)['kube-apiserver']}"
    return Cluster(root=layout.root, kubeconfig=layout.kubeconfig, server=server,
                   bin_dir=bin_dir, images=_image_map(layout))


def ensure_up(root: Path) -> Cluster:
    """The cluster of `root`, started (and built) if needed; a running one is reused."""
    layout = Layout(root.resolve())
    bin_dir = build(layout.root)
    with _locked(layout):
        fresh = not (layout.dir / "etcd").exists()
        _prepare(layout)
        for name in COMPONENTS:
            _ensure_running(layout, name, bin_dir, fresh=fresh)
    return _cluster(layout, bin_dir)


def _stop(layout: Layout, name: str) -> bool:
    # Stopping needs no command line: the pidfile records what was started.
    return daemons.stop(daemons.Daemon(name, [], layout.run, layout.logs))


def down(root: Path) -> None:
    """Stops every component and forgets the cluster; the logs stay for reading."""
    layout = Layout(root.resolve())
    with _locked(layout):
        for name in reversed(COMPONENTS):
            _stop(layout, name)
        for name in OWN_ENTRIES:
            entry = layout.dir / name
            if entry.is_dir():
                shutil.rmtree(entry)
            else:
                entry.unlink(missing_ok=True)


def status(root: Path) -> dict[str, int | None]:
    """The pid of each component, None for those not running."""
    layout = Layout(root.resolve())
    return {name: daemons.pid_of(daemons.Daemon(name, [], layout.run, layout.logs))
            for name in COMPONENTS}


def is_up(root: Path) -> bool:
    return all(pid is not None for pid in status(root).values())


def stop_apiserver(root: Path) -> None:
    """Fault injection: the API server goes away; etcd, the controllers and the kubelet stay."""
    _stop(Layout(root.resolve()), "kube-apiserver")


def start_apiserver(root: Path) -> None:
    _start_one(root, "kube-apiserver")


def stop_etcd(root: Path) -> None:
    """Fault injection: storage goes away under a running API server."""
    _stop(Layout(root.resolve()), "etcd")


def start_etcd(root: Path) -> None:
    _start_one(root, "etcd")


def _start_one(root: Path, name: str) -> None:
    layout = Layout(root.resolve())
    bin_dir = build(layout.root)
    with _locked(layout):
        _ensure_running(layout, name, bin_dir)


def _print_up(cluster: Cluster, seconds: float) -> None:
    print(f"local control plane {K8S_VERSION} ready in {seconds:.1f}s at {cluster.server}")
    print(f"  kubeconfig: {cluster.kubeconfig}   (export KUBECONFIG={cluster.kubeconfig})")
    print(f"  logs:       {Layout(cluster.root).logs}/")
    print(f"  image map:  {cluster.images}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m localenv.cluster",
                                     description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("command", choices=["up", "down", "status", "stop-apiserver",
                                            "start-apiserver", "stop-etcd", "start-etcd"])
    parser.add_argument("--root", type=Path, default=REPO_ROOT,
                        help=f"the directory whose .cluster/ holds the cluster ({REPO_ROOT})")
    args = parser.parse_args(argv)
    started = time.monotonic()
    try:
        if args.command == "up":
            _print_up(ensure_up(args.root), time.monotonic() - started)
        elif args.command == "down":
            down(args.root)
            print("local control plane stopped")
        elif args.command == "status":
            pids = status(args.root)
            for name, pid in pids.items():
                print(f"{name:24} {'running, pid ' + str(pid) if pid else 'stopped'}")
            return 0 if all(pids.values()) else 1
        else:
            action, component = args.command.split("-", 1)
            fault = {"stop": {"apiserver": stop_apiserver, "etcd": stop_etcd},
                     "start": {"apiserver": start_apiserver, "etcd": start_etcd}}
            fault[action][component](args.root)
            print(f"{args.command}: done")
    except RuntimeError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
