"""Two `cluster-up`/`cluster-down` cycles of the real node leave nothing on the machine:
no process, mount, network namespace, link, route, nftables or iptables rule, cgroup,
or path outside the repository that was not there before.

It runs last in the session (see conftest.py): the node is one per machine, so it
first stops the session's own cluster. A cluster someone else started (`make
cluster-up`) is theirs: then the test is skipped rather than taking it down."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import pytest

from localenv import cluster as local_cluster
from localenv import node as local_node
from tests.cluster import fixtures as cluster_fixtures

pytestmark = pytest.mark.node_cycles
WATCHED = (*local_node.FOREIGN_PATHS, Path("/var/lib/containers"), Path("/etc/cni"),
           Path("/var/lib/containerd"))


def _out(*argv: str) -> list[str]:
    result = subprocess.run(list(argv), capture_output=True, text=True, check=False,
                            timeout=30)
    return result.stdout.splitlines()


def _processes(root: Path) -> list[str]:
    """Processes whose command line names the cluster's directory or the node's socket."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if str(root) in cmdline or str(local_node.RUN) in cmdline:
            found.append(f"{entry.name} {cmdline[:120]}")
    return found


def machine_state(root: Path) -> dict[str, Any]:
    cgroups = Path("/sys/fs/cgroup")
    return {
        "mounts": sorted(line.split()[4] for line in
                         Path("/proc/self/mountinfo").read_text().splitlines()),
        "netns": sorted(os.listdir("/run/netns")) if Path("/run/netns").is_dir() else None,
        "links": sorted(os.listdir("/sys/class/net")),
        "routes": sorted(_out("ip", "route", "show", "table", "all")),
        "nftables": sorted(_out("nft", "list", "tables")),
        "iptables": sorted(line for line in _out("iptables-save")
                           if not line.startswith(("#", ":"))),
        "cgroups": sorted(f"{h.name}/{c.name}" for h in cgroups.iterdir() if h.is_dir()
                          for c in h.iterdir() if c.is_dir()),
        "run": sorted(os.listdir("/run")),
        "paths": {str(p): sorted(os.listdir(p)) if p.is_dir() else p.exists()
                  for p in WATCHED},
        "processes": _processes(root),
    }


def _diff(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    return {key: {"before": before[key], "after": after[key]}
            for key in before if before[key] != after[key]}


def test_two_up_down_cycles_leave_nothing_behind(repo_root: Path,
                                                 request: pytest.FixtureRequest) -> None:
    session_root = Path(os.environ.get("SCHEMAGATE_CLUSTER_ROOT") or repo_root)
    if any(local_cluster.status(session_root).values()):
        if not cluster_fixtures.STARTED_BY_SESSION.get(str(session_root.resolve())):
            pytest.skip("a cluster started outside this session runs; it is not ours to stop")
        local_cluster.down(session_root)
    # A short root: the kubelet's unix sockets under it (pod-resources) must fit the
    # 108 bytes of a socket path, which pytest's tmp_path does not leave room for.
    root = Path(tempfile.mkdtemp(prefix="sg-cycles-", dir="/tmp"))
    request.addfinalizer(lambda: shutil.rmtree(root, ignore_errors=True))
    before = machine_state(root)
    for cycle in (1, 2):
        up = local_cluster.ensure_up(root)
        nodes = up.kubectl("get", "nodes", "-o", "json")
        assert nodes.returncode == 0, nodes.stderr
        ready = [c["status"] for c in json.loads(nodes.stdout)["items"][0]["status"]
                 ["conditions"] if c["type"] == "Ready"]
        assert ready == ["True"], f"cycle {cycle}: the node is not Ready"
        # Something really ran: a pod with a mount, a netns, a cgroup and logs.
        pod = up.kubectl("run", "probe", "--image=schemagate.local/busybox:dev",
                         "--image-pull-policy=Never", "--restart=Never", "--",
                         "sh", "-c", "echo ran; sleep 300")
        assert pod.returncode == 0, pod.stderr
        waited = up.kubectl("wait", "--for=condition=Ready", "pod/probe", "--timeout=60s")
        assert waited.returncode == 0, waited.stderr
        local_cluster.down(root)
        assert local_cluster.leftovers(root) == [], f"cycle {cycle}"
        assert _diff(before, machine_state(root)) == {}, f"cycle {cycle} left this behind"
