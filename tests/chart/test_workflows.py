"""The release workflow does what it says, and actionlint would catch it if it did not;
the pull-request workflow of contrib/github (`schemagate plan`) passes it too."""

from __future__ import annotations

import functools
import subprocess
from pathlib import Path

import yaml

from tests.chart import ROOT

WORKFLOWS = ROOT / ".github" / "workflows"


@functools.cache
def actionlint() -> Path:
    result = subprocess.run(["bash", str(ROOT / "hack" / "build-control-plane.sh"),
                             "actionlint"], stdout=subprocess.PIPE, text=True, check=True)
    return Path(result.stdout.strip().splitlines()[-1])


def lint(*paths: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(actionlint()), "-shellcheck=", "-pyflakes=", "-no-color",
                           *map(str, paths)], capture_output=True, text=True, timeout=60,
                          check=False)


def test_the_workflows_pass_actionlint() -> None:
    result = lint(*sorted(WORKFLOWS.glob("*.yaml")))
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_migration_plan_workflow_for_users_passes_actionlint() -> None:
    result = lint(ROOT / "contrib" / "github" / "migration-plan.yaml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_actionlint_refuses_a_broken_workflow(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text((WORKFLOWS / "release.yaml").read_text().replace(
        "needs: image", "needs: imagez"))
    result = lint(broken)
    assert result.returncode != 0 and "imagez" in result.stdout


def test_release_builds_both_architectures_and_pushes_the_chart_on_tags() -> None:
    text = (WORKFLOWS / "release.yaml").read_text()
    workflow = yaml.safe_load(text)
    assert workflow[True] == {"push": {"tags": ["v*.*.*"]}}  # YAML reads `on` as True
    build = next(s for s in workflow["jobs"]["image"]["steps"] if s.get("id") == "build")
    assert build["with"]["platforms"] == "linux/amd64,linux/arm64"
    assert "helm push" in text and "oci://" in text
