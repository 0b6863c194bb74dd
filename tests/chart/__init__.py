"""The chart tier: the Helm chart, the shipped alerts and dashboard, and the workflows,
checked by the pinned helm and actionlint. Here, the chart as the tests see it: the
pinned helm, rendering, and the rendered objects.

helm and actionlint are built once from the Go module proxy by
`hack/build-control-plane.sh` (`make test-chart` and `make test` build them first) and
cached beside the control plane.
"""

from __future__ import annotations

import functools
import os
import subprocess
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "schemagate"
Manifest = dict[str, Any]


@functools.cache
def helm_binary() -> Path:
    result = subprocess.run(["bash", str(ROOT / "hack" / "build-control-plane.sh"), "helm"],
                            stdout=subprocess.PIPE, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError("building helm failed (see the messages above)")
    return Path(result.stdout.strip().splitlines()[-1])


@functools.cache
def _helm_home() -> Path:
    # helm keeps repositories, plugins and caches under these; none of the user's apply here.
    return Path(tempfile.mkdtemp(prefix="schemagate-helm-"))


def helm(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Runs the pinned helm; never raises on a non-zero exit."""
    home = _helm_home()
    env = {**os.environ, "HELM_CACHE_HOME": str(home / "cache"),
           "HELM_CONFIG_HOME": str(home / "config"), "HELM_DATA_HOME": str(home / "data")}
    return subprocess.run([str(helm_binary()), *args], capture_output=True, text=True,
                          env=env, timeout=timeout, check=False)


def set_flags(values: dict[str, str] | None) -> list[str]:
    return [flag for key, value in (values or {}).items() for flag in ("--set", f"{key}={value}")]


def render_text(values: dict[str, str] | None = None, *, release: str = "schemagate",
                namespace: str = "schemagate-system", include_crds: bool = False) -> str:
    args = ["template", release, str(CHART), "--namespace", namespace, *set_flags(values)]
    result = helm(*args, *(["--include-crds"] if include_crds else []))
    assert result.returncode == 0, result.stderr
    return result.stdout


def render(values: dict[str, str] | None = None, **kwargs: Any) -> list[Manifest]:
    return [doc for doc in yaml.safe_load_all(render_text(values, **kwargs)) if doc]


def of_kind(manifests: Iterable[Manifest], kind: str) -> list[Manifest]:
    return [m for m in manifests if m["kind"] == kind]


def one(manifests: Iterable[Manifest], kind: str) -> Manifest:
    found = of_kind(manifests, kind)
    assert len(found) == 1, f"expected one {kind}, rendered {len(found)}"
    return found[0]


def grants(role: Manifest) -> set[tuple[str, str, str]]:
    """(API group, resource, verb) for every rule of a Role or ClusterRole."""
    return {(group, resource, verb) for rule in role["rules"]
            for group in rule["apiGroups"] for resource in rule["resources"]
            for verb in rule["verbs"]}


def documented_rights(scope: str) -> set[tuple[str, str, str]]:
    """(API group, resource, verb) for each row of docs/rbac.md's table whose scope
    starts with `scope` ("namespaced" or "cluster")."""
    rights = set()
    for line in (ROOT / "docs" / "rbac.md").read_text().splitlines():
        cells = [c.strip().strip("`") for c in line.strip().strip("|").split("|")]
        if len(cells) != 5 or cells[0] in ("API group", "---"):
            continue
        group, resource, verbs, where = cells[0], cells[1], cells[2], cells[3]
        if where.startswith(scope):
            rights |= {("" if group == "core" else group, resource, verb.strip())
                       for verb in verbs.split(",")}
    return rights
