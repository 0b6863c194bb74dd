"""A real local Kubernetes cluster of one node: control plane, containerd, kubelet.

    python -m localenv.cluster up|down|status
    python -m localenv.cluster stop-apiserver|start-apiserver|stop-etcd|start-etcd

etcd, kube-apiserver, kube-controller-manager, kube-scheduler, the kubelet and
kube-proxy are real binaries, built once by `hack/build-control-plane.sh`; containerd
and runc come from Debian (`hack/bootstrap-node.sh`). etcd listens on 127.0.0.1; the
API server on the host's end of the node's link (`node.HOST_ADDRESS`), which the
host and the pods both reach; the node runs in a network namespace of its own
(`localenv.node`). Everything lives under `<root>/.cluster/`: the kubeconfigs, the
PKI, etcd's data, the node's state, pidfiles and logs.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
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

from localenv import daemons, images, node, pki

K8S_VERSION = "v1.36.3"
NODE_NAME = node.NODE_NAME
SERVICE_CIDR = "10.0.0.0/24"
# What a backend needs; the node-lifecycle controller lifts the not-ready taint a
# new node is registered with, and the root CA publisher fills `kube-root-ca.crt`,
# which every projected service-account token volume mounts.
CONTROLLERS = ("deployment-controller", "replicaset-controller", "job-controller",
               "garbage-collector-controller", "namespace-controller",
               "endpointslice-controller", "serviceaccount-controller",
               "serviceaccount-token-controller", "ttl-after-finished-controller",
               "node-lifecycle-controller", "root-ca-certificate-publisher-controller",
               "pod-garbage-collector-controller")
CONTROL_PLANE = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler")
NODE = ("containerd", "kubelet", "kube-proxy")
COMPONENTS = (*CONTROL_PLANE, *NODE)
START_TIMEOUT = 90.0
REPO_ROOT = Path(__file__).resolve().parents[1]
# What `down` removes; anything else under .cluster/ (the logs, a demo's
# database) belongs to someone else.
OWN_ENTRIES = ("etcd", "pki", "run", "node", "apiserver", "kubeconfig", "kubelet.kubeconfig",
               "controller-manager.kubeconfig", "ports.json", "host-address")


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
    def host_address(self) -> Path:
        return self.dir / "host-address"

    def node(self) -> node.NodeLayout:
        return node.NodeLayout(self.dir / "node")

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
    host_address: str  # where pods reach a listener on the host

    def kubectl(self, *args: str, input: str | None = None,
                timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """Runs the pinned kubectl against this cluster; never raises on a non-zero exit."""
        return subprocess.run([str(self.bin_dir / "kubectl"), "--kubeconfig",
                               str(self.kubeconfig), *args], input=input, capture_output=True,
                              text=True, timeout=timeout, check=False)


def build_notice(root: Path = REPO_ROOT) -> str:
    """One line saying whether `ensure_up` will first spend minutes building."""
    del root
    script = str(REPO_ROOT / "hack" / "build-control-plane.sh")
    result = subprocess.run(["bash", script, "path"], capture_output=True, text=True,
                            check=False)
    node_bins = subprocess.run(["bash", script, "node-path"], capture_output=True, text=True,
                               check=False)
    where = result.stdout.strip()
    if result.returncode == 0 and node_bins.returncode == 0:
        return f"      binaries cached in {where} and {node_bins.stdout.strip()}"
    return (f"      building etcd, the Kubernetes control plane, kubelet, kube-proxy and "
            f"kubectl from the Go module proxy into {where}: about 7 minutes on 2 cores, once")


def build(root: Path = REPO_ROOT, what: str = "control-plane") -> Path:
    """The directory of the cached binaries, building them first if needed (with this
    checkout's script, whichever directory holds the cluster)."""
    del root
    result = subprocess.run(["bash", str(REPO_ROOT / "hack" / "build-control-plane.sh"), what],
                            stdout=subprocess.PIPE, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"building the {what} binaries failed (see the messages above)")
    return Path(result.stdout.strip().splitlines()[-1])


def bootstrap() -> None:
    """The Debian packages of the node (containerd, runc, CNI plugins, buildah, ...)."""
    result = subprocess.run(["bash", str(REPO_ROOT / "hack" / "bootstrap-node.sh")], check=False,
                            stdin=subprocess.DEVNULL)
    if result.returncode != 0:
        raise RuntimeError("installing the node's Debian packages failed (see above)")


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
    missing = {"etcd", "etcd-peer", "kube-apiserver"} - set(ports)
    if missing:
        ports.update({name: _free_port() for name in sorted(missing)})
        layout.ports_file.write_text(json.dumps(ports))
    return ports


def _daemon(layout: Layout, name: str, bin_dir: Path) -> daemons.Daemon:
    ports = _ports(layout)
    node_bin = build(layout.root, "node") if name in ("kube-scheduler", *NODE) else bin_dir
    nl = layout.node()
    argv = {"etcd": lambda: _etcd_argv(layout, bin_dir, ports),
            "kube-apiserver": lambda: _apiserver_argv(layout, bin_dir, ports),
            "kube-controller-manager": lambda: _controller_manager_argv(layout, bin_dir, ports),
            "kube-scheduler": lambda: _scheduler_argv(layout, node_bin),
            "containerd": lambda: node.containerd_argv(nl),
            "kubelet": lambda: node.kubelet_argv(nl, node_bin, layout.dir / "kubelet.kubeconfig"),
            "kube-proxy": lambda: node.proxy_argv(nl, node_bin),
            }[name]()
    return daemons.Daemon(name, argv, layout.run, layout.logs)


def _scheduler_argv(layout: Layout, bin_dir: Path) -> list[str]:
    return [str(bin_dir / "kube-scheduler"), f"--kubeconfig={layout.kubeconfig}",
            "--leader-elect=false", "--secure-port=0"]


def _etcd_argv(layout: Layout, bin_dir: Path, ports: dict[str, int]) -> list[str]:
    client, peer = f"http://127.0.0.1:{ports['etcd']}", f"http://127.0.0.1:{ports['etcd-peer']}"
    return [str(bin_dir / "etcd"), "--name=local", f"--data-dir={layout.dir / 'etcd'}",
            f"--listen-client-urls={client}", f"--advertise-client-urls={client}",
            f"--listen-peer-urls={peer}", f"--initial-advertise-peer-urls={peer}",
            f"--initial-cluster=local={peer}", "--unsafe-no-fsync=true", "--log-level=warn"]


def _apiserver_argv(layout: Layout, bin_dir: Path, ports: dict[str, int]) -> list[str]:
    p = layout.pki()
    return [str(bin_dir / "kube-apiserver"), f"--etcd-servers=http://127.0.0.1:{ports['etcd']}",
            # The host's end of the node's link: the host, the kubelet and (through
            # the `kubernetes` Service) the pods all reach it there.
            f"--bind-address={node.HOST_ADDRESS}", f"--advertise-address={node.HOST_ADDRESS}",
            f"--secure-port={ports['kube-apiserver']}",
            f"--tls-cert-file={p.cert('apiserver')}",
            f"--tls-private-key-file={p.key('apiserver')}",
            f"--client-ca-file={p.ca}", "--authorization-mode=Node,RBAC",
            # `kubectl logs/exec` go to the kubelet, whose certificate our CA signed.
            f"--kubelet-client-certificate={p.cert('admin')}",
            f"--kubelet-client-key={p.key('admin')}", f"--kubelet-certificate-authority={p.ca}",
            "--kubelet-preferred-address-types=InternalIP",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-account-key-file={p.service_account_pub}",
            f"--service-account-signing-key-file={p.service_account_key}",
            f"--cert-dir={layout.dir / 'apiserver'}", "--allow-privileged=true",
            "--profiling=false",
            # On SIGTERM, end the watches of the controllers and the kubelet
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


def _https_get(layout: Layout, path: str, timeout: float = 3.0) -> tuple[int, str]:
    """GET on the API server as the admin; (0, "") when nothing answers."""
    p = layout.pki()
    context = ssl.create_default_context(cafile=str(p.ca))
    context.load_cert_chain(str(p.cert("admin")), str(p.key("admin")))
    url = f"https://{node.HOST_ADDRESS}:{_ports(layout)['kube-apiserver']}{path}"
    # No proxy, whatever the environment says: everything here is on this machine.
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


def _node_ready(layout: Layout) -> bool:
    status, body = _https_get(layout, f"/api/v1/nodes/{NODE_NAME}")
    if status != 200:
        return False
    obj = json.loads(body)
    conditions = obj.get("status", {}).get("conditions", [])
    taints = obj.get("spec", {}).get("taints") or []
    return not taints and any(c["type"] == "Ready" and c["status"] == "True"
                              for c in conditions)


def _ready(layout: Layout, name: str, pid: int) -> bool:
    if name == "etcd":
        return _etcd_healthy(layout)
    if name == "kube-apiserver":
        return _https_get(layout, "/readyz") == (200, "ok")
    if name == "kube-controller-manager":
        # The serviceaccount controller has run: namespaces get their `default`.
        return _https_get(layout, "/api/v1/namespaces/default/serviceaccounts/default")[0] == 200
    if name == "kube-scheduler":
        return True
    if name == "containerd":
        return node.containerd_ready()
    if name == "kubelet":
        # Registered, Ready (its CNI configuration found) and untainted.
        return _node_ready(layout)
    return node.proxy_ready()


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


def _server(layout: Layout) -> str:
    return f"https://{node.HOST_ADDRESS}:{_ports(layout)['kube-apiserver']}"


def _prepare(layout: Layout) -> None:
    layout.logs.mkdir(parents=True, exist_ok=True)
    layout.run.mkdir(parents=True, exist_ok=True)
    p = pki.ensure(layout.dir / "pki")
    server = _server(layout)
    pki.write_kubeconfig(layout.kubeconfig, server, p, "admin")
    pki.write_kubeconfig(layout.dir / "controller-manager.kubeconfig", server, p,
                         "controller-manager")
    # The kubelet as `system:node:schemagate-node`: the Node authorizer decides what
    # it may read (the Secrets and ConfigMaps of its own pods).
    pki.write_kubeconfig(layout.dir / "kubelet.kubeconfig", server, p, "kubelet")
    nl = layout.node()
    node.record_before(nl)
    node.setup_network()
    node.make_cgroups()
    node.write_configs(nl, p.dir, layout.kubeconfig)
    layout.host_address.write_text(node.HOST_ADDRESS + "\n")


def _cluster(layout: Layout, bin_dir: Path) -> Cluster:
    return Cluster(root=layout.root, kubeconfig=layout.kubeconfig, server=_server(layout),
                   bin_dir=bin_dir, host_address=node.HOST_ADDRESS)


def host_address() -> str:
    """Where pods reach a listener on the host; fixed, so known before the cluster is up."""
    return node.HOST_ADDRESS


def ensure_up(root: Path) -> Cluster:
    """The cluster of `root`, started (and built) if needed; a running one is reused."""
    layout = Layout(root.resolve())
    bootstrap()
    bin_dir = build(layout.root)
    build(layout.root, "node")
    images.ensure_all()
    with _locked(layout):
        node.acquire(layout.run, layout.logs, layout.dir)
        fresh = not (layout.dir / "etcd").exists()
        try:
            _prepare(layout)
            for name in COMPONENTS:
                _ensure_running(layout, name, bin_dir, fresh=fresh)
                if name == "containerd":
                    images.import_into(node.ctr, layout.node().dir / "imported")
        except BaseException:
            if fresh:
                _down(layout)
            raise
    return _cluster(layout, bin_dir)


def _stop(layout: Layout, name: str) -> bool:
    # Stopping needs no command line: the pidfile records what was started.
    return daemons.stop(daemons.Daemon(name, [], layout.run, layout.logs))


def down(root: Path) -> None:
    """Stops every component, removes what the node made on the machine and forgets
    the cluster; the logs stay for reading."""
    layout = Layout(root.resolve())
    with _locked(layout):
        _down(layout)


def _down(layout: Layout) -> None:
    nl = layout.node()
    owns_node = node.held_here(layout.run, layout.logs)
    for name in ("kube-proxy", "kubelet"):
        _stop(layout, name)
    if owns_node:
        # The containers, then the runtime, then what they leave: mounts, the
        # namespace (its links, routes and nftables rules), cgroups, paths.
        node.kill_workloads()
    _stop(layout, "containerd")
    for name in reversed(CONTROL_PLANE):
        _stop(layout, name)
    if owns_node:
        node.unmount_under([str(nl.dir), str(node.RUN), "/run/containerd"])
        node.teardown_network()
        node.remove_cgroups()
        node.remove_foreign_paths(nl)
    else:
        node.unmount_under([str(nl.dir)])
    node.release(layout.run, layout.logs)
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


def leftovers(root: Path) -> list[str]:
    """What of this cluster's node is still on the machine (empty once it is down)."""
    return node.leftovers(Layout(root.resolve()).node())


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
    print(f"local cluster {K8S_VERSION} and node {NODE_NAME} ready in {seconds:.1f}s "
          f"at {cluster.server}")
    print(f"  kubeconfig:   {cluster.kubeconfig}   (export KUBECONFIG={cluster.kubeconfig})")
    print(f"  logs:         {Layout(cluster.root).logs}/")
    print(f"  host address: {cluster.host_address}   (pods reach the host here)")


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
            print("local cluster stopped, its node removed")
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
