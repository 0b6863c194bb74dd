"""A real node for the local cluster: containerd, runc, a kubelet and kube-proxy.

The node lives in a network namespace of its own (`schemagate-node`), joined to the
host by a veth pair: the host end has `HOST_ADDRESS`, the node end `NODE_IP`, and
nothing else is routed, so whatever a pod sends can reach the host at
`HOST_ADDRESS` and nothing beyond the machine. Pods get addresses of `POD_CIDR`
on a CNI bridge inside that namespace; the host routes `POD_CIDR` to the node.

What this machine needs (see the README): containerd with `restrict_oom_score_adj`
(no CAP_SYS_RESOURCE), runc (crun refuses the hybrid cgroup layout), the cgroupfs
driver and `failCgroupV1: false` (cgroup v1, no systemd), the daemons started with
`nsenter --net` (`ip netns exec` remounts /sys and hides the cgroups), and a
locally compiled pause image.

containerd, libcni and the kubelet use a few machine-wide paths whatever they are
told (`/run/containerd/s`, `/var/lib/cni`, `/var/log/containers`, `/run/netns`):
one real node per machine, under a lock in /run, and `teardown` removes what the
node created there, and nothing that was there before it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from localenv import daemons

NETNS = "schemagate-node"
HOST_IF = "sg-node0"
NODE_IF = "eth0"
HOST_ADDRESS = "10.213.0.1"
NODE_IP = "10.213.0.2"
LINK_PREFIX = 24
POD_CIDR = "10.214.0.0/24"
# Where a listener on the host sees the node's and the pods' connections come from.
CLIENT_NETWORKS = (f"{HOST_ADDRESS.rsplit('.', 1)[0]}.0/{LINK_PREFIX}", POD_CIDR)
BRIDGE = "sg-cni0"
CGROUP_ROOT = "schemagate-node"
NODE_NAME = "schemagate-node"
PAUSE_IMAGE = "schemagate.local/pause:dev"
RUN = Path("/run/schemagate-node")  # sockets: their paths must stay short
LOCK = Path("/run/schemagate-node.lock")
OWNER = RUN / "owner"
CGROUP_FS = Path("/sys/fs/cgroup")
# Machine-wide paths the node's programs may create whatever they are told.
FOREIGN_PATHS = (Path("/run/containerd"), Path("/var/lib/cni"), Path("/var/log/containers"),
                 Path("/run/netns"), Path("/opt/containerd"), Path("/var/lib/kubelet"),
                 Path("/var/log/pods"))
NSENTER = ["nsenter", f"--net=/run/netns/{NETNS}", "--"]


class NodeBusy(RuntimeError):
    """Another cluster on this machine runs the real node."""


@dataclass(frozen=True)
class NodeLayout:
    """The node's files under `<root>/.cluster/node`."""

    dir: Path

    @property
    def containerd_root(self) -> Path:
        return self.dir / "containerd"

    @property
    def containerd_config(self) -> Path:
        return self.dir / "containerd.toml"

    @property
    def cni_conf(self) -> Path:
        return self.dir / "cni" / "net.d"

    @property
    def cni_ipam(self) -> Path:
        return self.dir / "cni" / "ipam"

    @property
    def kubelet_root(self) -> Path:
        # Under /run, not the repository: the kubelet makes unix sockets in it, whose
        # paths must stay under 108 bytes whatever the clone's path.
        return RUN / "kubelet"

    @property
    def kubelet_config(self) -> Path:
        return self.dir / "kubelet.yaml"

    @property
    def pod_logs(self) -> Path:
        return self.dir / "pod-logs"

    @property
    def proxy_config(self) -> Path:
        return self.dir / "kube-proxy.yaml"

    @property
    def resolv_conf(self) -> Path:
        return self.dir / "resolv.conf"

    @property
    def before(self) -> Path:
        """What existed on the machine before the node came up (teardown keeps it)."""
        return self.dir / "before.json"


CONTAINERD_SOCKET = RUN / "containerd.sock"


def _run(*argv: str, check: bool = True, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout,
                            check=False, stdin=subprocess.DEVNULL)
    if check and result.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({result.returncode}): "
                           f"{result.stderr.strip() or result.stdout.strip()}")
    return result


def in_netns(*argv: str, check: bool = True, timeout: float = 30
             ) -> subprocess.CompletedProcess[str]:
    return _run(*NSENTER, *argv, check=check, timeout=timeout)


# --- the machine-wide lock -------------------------------------------------------

def lock_holder(run_dir: Path, log_dir: Path) -> daemons.Daemon:
    return daemons.Daemon("node-lock", ["sleep", "infinity"], run_dir, log_dir)


def acquire(run_dir: Path, log_dir: Path, owner: Path) -> None:
    """Takes the machine's node lock for `owner` (a cluster directory), held by a small
    process until `release`; NodeBusy names the cluster that holds it."""
    holder = lock_holder(run_dir, log_dir)
    if daemons.pid_of(holder) is not None:
        return
    while True:
        fd = os.open(LOCK, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            try:
                other = OWNER.read_text().strip()
            except FileNotFoundError:
                other = "another cluster"
            raise NodeBusy(f"a real node already runs on this machine, for {other} "
                           f"(lock {LOCK}); run `make cluster-down` there first") from None
        # The lock file may have been removed by a `release` between open and flock.
        if os.path.exists(LOCK) and os.stat(LOCK).st_ino == os.fstat(fd).st_ino:
            break
        os.close(fd)
    try:
        daemons.start(daemons.Daemon("node-lock", ["sleep", "infinity"], run_dir, log_dir,
                                     pass_fds=(fd,)))
    finally:
        os.close(fd)
    RUN.mkdir(parents=True, exist_ok=True)
    OWNER.write_text(f"{owner}\n")


def release(run_dir: Path, log_dir: Path) -> None:
    holder = lock_holder(run_dir, log_dir)
    if daemons.pid_of(holder) is None:
        return
    # Unlinked while still held: whoever opens it next makes a new one.
    LOCK.unlink(missing_ok=True)
    daemons.stop(holder, timeout=5)


def held_here(run_dir: Path, log_dir: Path) -> bool:
    return daemons.pid_of(lock_holder(run_dir, log_dir)) is not None


# --- network -----------------------------------------------------------------------

def _netns_exists() -> bool:
    return Path(f"/run/netns/{NETNS}").exists()


def setup_network() -> None:
    """The node's namespace, its link to the host and the route to its pods."""
    if _netns_exists() and in_netns("ip", "-4", "addr", "show", NODE_IF,
                                    check=False).stdout.count(NODE_IP):
        return
    if _netns_exists():
        _run("ip", "netns", "delete", NETNS, check=False)
    _run("ip", "netns", "add", NETNS)
    _run("ip", "link", "add", HOST_IF, "type", "veth", "peer", "name", NODE_IF,
         "netns", NETNS)
    _run("ip", "addr", "add", f"{HOST_ADDRESS}/{LINK_PREFIX}", "dev", HOST_IF)
    _run("ip", "link", "set", HOST_IF, "up")
    in_netns("ip", "addr", "add", f"{NODE_IP}/{LINK_PREFIX}", "dev", NODE_IF)
    in_netns("ip", "link", "set", NODE_IF, "up")
    in_netns("ip", "link", "set", "lo", "up")
    # No default route in the node: nothing a pod sends leaves the machine.
    _run("ip", "route", "add", POD_CIDR, "via", NODE_IP, "dev", HOST_IF)
    for key, value in (("net.ipv4.ip_forward", "1"),
                       ("net.bridge.bridge-nf-call-iptables", "1")):
        in_netns("sysctl", "-qw", f"{key}={value}", check=False)


def teardown_network() -> None:
    # The veth pair, the route through it and every nftables rule kube-proxy and
    # the CNI plugins wrote inside the namespace go with it.
    if _netns_exists():
        _run("ip", "netns", "delete", NETNS, check=False)
    if Path(f"/sys/class/net/{HOST_IF}").exists():
        _run("ip", "link", "delete", HOST_IF, check=False)


# --- configuration -----------------------------------------------------------------

def write_configs(node: NodeLayout, pki_dir: Path, kubeconfig: Path) -> None:
    for d in (node.dir, node.cni_conf, node.cni_ipam, node.kubelet_root, node.pod_logs):
        d.mkdir(parents=True, exist_ok=True)
    RUN.mkdir(parents=True, exist_ok=True)
    node.containerd_config.write_text(f"""version = 2
root = "{node.containerd_root}"
state = "{RUN / 'containerd'}"
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",
                    "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs",
                    "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]

[grpc]
  address = "{CONTAINERD_SOCKET}"

[metrics]
  address = ""

[plugins."io.containerd.internal.v1.opt"]
  path = "{node.dir / 'opt'}"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{PAUSE_IMAGE}"
  # The VM withholds CAP_SYS_RESOURCE: runc cannot give the pause container -998.
  restrict_oom_score_adj = true
  disable_apparmor = true
  enable_selinux = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        BinaryName = "/usr/sbin/runc"
        Root = "{RUN / 'runc'}"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "{node.cni_conf}"
""")
    (node.cni_conf / "10-schemagate.conflist").write_text(json.dumps({
        "cniVersion": "1.0.0", "name": "schemagate",
        "plugins": [{"type": "bridge", "bridge": BRIDGE, "isGateway": True, "ipMasq": False,
                     "hairpinMode": True,
                     "ipam": {"type": "host-local", "ranges": [[{"subnet": POD_CIDR}]],
                              "routes": [{"dst": "0.0.0.0/0"}],
                              "dataDir": str(node.cni_ipam)}}]}, indent=2))
    # Pods never ask the VM's resolver; there is no cluster DNS either.
    node.resolv_conf.write_text("nameserver 127.0.0.1\n")
    node.kubelet_config.write_text(json.dumps({
        "apiVersion": "kubelet.config.k8s.io/v1beta1", "kind": "KubeletConfiguration",
        "failCgroupV1": False, "cgroupDriver": "cgroupfs", "cgroupRoot": f"/{CGROUP_ROOT}",
        "failSwapOn": False, "readOnlyPort": 0, "address": NODE_IP, "port": 10250,
        "healthzBindAddress": "127.0.0.1", "healthzPort": 10248,
        "containerRuntimeEndpoint": f"unix://{CONTAINERD_SOCKET}",
        "resolvConf": str(node.resolv_conf), "podLogsDir": str(node.pod_logs),
        "tlsCertFile": str(pki_dir / "kubelet.crt"),
        "tlsPrivateKeyFile": str(pki_dir / "kubelet.key"),
        "authentication": {"anonymous": {"enabled": False}, "webhook": {"enabled": False},
                           "x509": {"clientCAFile": str(pki_dir / "ca.crt")}},
        "authorization": {"mode": "AlwaysAllow"},
        "evictionHard": {"memory.available": "1Mi", "nodefs.available": "1%",
                         "imagefs.available": "1%", "nodefs.inodesFree": "1%"},
        "imageGCHighThresholdPercent": 100, "imageGCLowThresholdPercent": 99,
        "serializeImagePulls": False, "syncFrequency": "10s",
        "fileCheckFrequency": "0s", "staticPodPath": "",
    }, indent=2))
    node.proxy_config.write_text(json.dumps({
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1", "kind": "KubeProxyConfiguration",
        "mode": "nftables", "hostnameOverride": NODE_NAME, "clusterCIDR": POD_CIDR,
        "clientConnection": {"kubeconfig": str(kubeconfig)},
        "conntrack": {"maxPerCore": 0, "min": 0, "tcpEstablishedTimeout": "0s",
                      "tcpCloseWaitTimeout": "0s"},
        "metricsBindAddress": "127.0.0.1:10249", "healthzBindAddress": "127.0.0.1:10256",
        # Replies of a pod to a pod on the same bridge come back through the node.
        "nftables": {"masqueradeAll": True},
    }, indent=2))


def make_cgroups() -> None:
    """The kubelet's cgroup root, in every v1 hierarchy (the kubelet wants it to exist)."""
    for hierarchy in _hierarchies():
        (hierarchy / CGROUP_ROOT).mkdir(exist_ok=True)


def _hierarchies() -> list[Path]:
    return [h for h in sorted(CGROUP_FS.iterdir())
            if h.is_dir() and not h.is_symlink() and (h / "cgroup.procs").exists()]


def containerd_argv(node: NodeLayout) -> list[str]:
    return [*NSENTER, "/usr/bin/containerd", "--config", str(node.containerd_config)]


def kubelet_argv(node: NodeLayout, node_bin: Path, kubeconfig: Path) -> list[str]:
    return [*NSENTER, str(node_bin / "kubelet"), f"--config={node.kubelet_config}",
            f"--kubeconfig={kubeconfig}", f"--root-dir={node.kubelet_root}",
            f"--hostname-override={NODE_NAME}", f"--node-ip={NODE_IP}", "--v=1"]


def proxy_argv(node: NodeLayout, node_bin: Path) -> list[str]:
    return [*NSENTER, str(node_bin / "kube-proxy"), f"--config={node.proxy_config}", "--v=1"]


def ctr(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return _run("ctr", "--address", str(CONTAINERD_SOCKET), "-n", "k8s.io", *args,
                timeout=timeout)


def containerd_ready() -> bool:
    if not CONTAINERD_SOCKET.exists():
        return False
    return _run("ctr", "--address", str(CONTAINERD_SOCKET), "version", check=False,
                timeout=5).returncode == 0


def proxy_ready() -> bool:
    return in_netns("nft", "list", "table", "ip", "kube-proxy", check=False,
                    timeout=10).returncode == 0


def record_before(node: NodeLayout) -> None:
    """Remembers which machine-wide paths and netns existed before the node, once."""
    if node.before.exists():
        return
    netns = sorted(os.listdir("/run/netns")) if Path("/run/netns").is_dir() else []
    links = (sorted(os.listdir("/var/log/containers"))
             if Path("/var/log/containers").is_dir() else [])
    node.dir.mkdir(parents=True, exist_ok=True)
    node.before.write_text(json.dumps({
        "paths": [str(p) for p in FOREIGN_PATHS if p.exists()],
        "containerd_s": Path("/run/containerd/s").exists(),
        "netns": netns, "container_logs": links}))


# --- teardown ----------------------------------------------------------------------

def _pids_in_cgroups() -> set[int]:
    pids: set[int] = set()
    for hierarchy in _hierarchies():
        root = hierarchy / CGROUP_ROOT
        if not root.is_dir():
            continue
        for procs in root.rglob("cgroup.procs"):
            with contextlib.suppress(OSError):
                pids.update(int(p) for p in procs.read_text().split())
    return pids


def _shim_pids() -> set[int]:
    """containerd's shims for this node: they name its socket on their command line."""
    pids = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv and argv[0].endswith(b"containerd-shim-runc-v2") and \
                str(CONTAINERD_SOCKET).encode() in argv:
            pids.add(int(entry.name))
    return pids


def kill_workloads() -> None:
    """SIGKILL to every container process of the node and to containerd's shims."""
    for _ in range(50):
        pids = _pids_in_cgroups() | _shim_pids()
        if not pids:
            return
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.1)


def _mounts_under(prefixes: list[str]) -> list[str]:
    points = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].replace("\\040", " ")
        if any(point == p or point.startswith(p.rstrip("/") + "/") for p in prefixes):
            points.append(point)
    return points


def unmount_under(prefixes: list[str]) -> None:
    for _ in range(5):
        points = _mounts_under(prefixes)
        if not points:
            return
        for point in sorted(points, key=len, reverse=True):
            _run("umount", "-l", point, check=False)


def remove_cgroups() -> None:
    for hierarchy in _hierarchies():
        root = hierarchy / CGROUP_ROOT
        if not root.is_dir():
            continue
        # Deepest first; a cgroup directory is removed with rmdir, never its files.
        for directory in sorted((p for p in root.rglob("*") if p.is_dir()),
                                key=lambda p: len(p.parts), reverse=True):
            with contextlib.suppress(OSError):
                directory.rmdir()
        with contextlib.suppress(OSError):
            root.rmdir()


def remove_foreign_paths(node: NodeLayout) -> None:
    """What the node created outside the repository, and nothing that was there before."""
    try:
        before = json.loads(node.before.read_text())
    except (FileNotFoundError, ValueError):
        before = {"paths": [str(p) for p in FOREIGN_PATHS if p.exists()],
                  "containerd_s": True, "netns": None, "container_logs": None}
    logs = Path("/var/log/containers")
    if logs.is_dir():
        for link in logs.iterdir():
            with contextlib.suppress(OSError):
                if link.is_symlink() and str(node.pod_logs) in os.readlink(link):
                    link.unlink()
    netns_dir = Path("/run/netns")
    if netns_dir.is_dir() and before.get("netns") is not None:
        for name in os.listdir(netns_dir):
            if re.fullmatch(r"cni-[0-9a-f-]+", name) and name not in before["netns"]:
                _run("umount", "-l", str(netns_dir / name), check=False)
                with contextlib.suppress(OSError):
                    (netns_dir / name).unlink()
    if not before.get("containerd_s"):
        shutil.rmtree("/run/containerd/s", ignore_errors=True)
    for path in FOREIGN_PATHS:
        if str(path) in before["paths"] or not path.exists():
            continue
        if path in (netns_dir, logs):
            if path == netns_dir and not os.listdir(path):
                # `ip netns add` made /run/netns a shared mount point of its own.
                unmount_under([str(path)])
            with contextlib.suppress(OSError):
                path.rmdir()  # only if empty: someone else's entries stay
        else:
            shutil.rmtree(path, ignore_errors=True)
    with contextlib.suppress(FileNotFoundError):
        OWNER.unlink()
    shutil.rmtree(RUN, ignore_errors=True)


def leftovers(node: NodeLayout) -> list[str]:
    """What of the node is still on the machine (empty after a clean teardown)."""
    found = [f"mount {m}" for m in _mounts_under([str(node.dir), str(RUN), "/run/containerd"])]
    if _netns_exists():
        found.append(f"netns {NETNS}")
    if Path(f"/sys/class/net/{HOST_IF}").exists():
        found.append(f"link {HOST_IF}")
    found += [f"cgroup {h / CGROUP_ROOT}" for h in _hierarchies() if (h / CGROUP_ROOT).exists()]
    found += [f"process {pid}" for pid in _pids_in_cgroups() | _shim_pids()]
    if RUN.exists():
        found.append(f"path {RUN}")
    return found
