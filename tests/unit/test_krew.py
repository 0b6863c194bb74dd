"""The krew manifest installs what the wheel provides: the shim it names is in
contrib/krew, runs the wheel's `kubectl-schemagate`, and the versions agree."""

from __future__ import annotations

import tomllib
from pathlib import Path

import yaml

from schemagate import kubectl_plugin

ROOT = Path(__file__).resolve().parents[2]
KREW = ROOT / "contrib" / "krew"


def test_the_manifest_names_the_shim_and_the_wheels_entry_point() -> None:
    manifest = yaml.safe_load((KREW / "schemagate.yaml").read_text())
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert manifest["kind"] == "Plugin" and manifest["metadata"]["name"] == "schemagate"
    assert manifest["spec"]["version"] == f"v{project['version']}"
    (platform,) = manifest["spec"]["platforms"]
    assert platform["bin"] == "kubectl-schemagate"
    shipped = {f["from"] for f in platform["files"]}
    assert shipped == {"kubectl-schemagate", "schemagate-*.whl", "LICENSE"}
    shim = KREW / "kubectl-schemagate"
    assert shim.stat().st_mode & 0o111, "the shim is executable"
    assert "kubectl-schemagate" in shim.read_text().split("pipx run", 1)[1]
    entry = project["scripts"]["kubectl-schemagate"]
    module, _, function = entry.partition(":")
    assert module == kubectl_plugin.__name__ and callable(getattr(kubectl_plugin, function))
