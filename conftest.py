"""Fixtures shared by every tier: the product's tests in tests/ and the local
environment's own tests in localenv/tests/. Each test is marked with its tier, the
directory it lives in, so that `-m` selects tiers (`-m unit`, `-m "not node"`)."""

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

pytest_plugins = ["tests.support.database", "tests.cluster.fixtures",
                  "tests.cluster.operator_fixtures"]

ROOT = Path(__file__).resolve().parent
#: Directory -> its tier's marker. The tiers on the real node (one per machine) also get
#: `node`.
TIERS = {"tests/unit": "unit", "tests/chart": "chart", "tests/db": "db",
         "tests/image": "image", "tests/cluster": "cluster", "tests/tenants": "tenants",
         "tests/chaos": "chaos", "localenv/tests": "localenv"}
ON_THE_NODE = {"cluster", "tenants", "chaos", "localenv"}


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return ROOT


@pytest.fixture(scope="session", autouse=True)
def commit_in_the_report(record_testsuite_property: Callable[[str, object], None]) -> None:
    """The commit tested, in the JUnit XML (hack/tier_times.py names it in its table)."""
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                          capture_output=True, text=True, check=False).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                           capture_output=True, text=True, check=False).stdout.strip()
    record_testsuite_property("commit", f"{head}{' with changes' if dirty else ''}")


def tier_of(path: Path) -> str | None:
    relative = path.resolve().relative_to(ROOT).as_posix()
    return next((tier for folder, tier in TIERS.items()
                 if relative.startswith(folder + "/")), None)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        tier = tier_of(item.path)
        if tier is not None:
            item.add_marker(tier)
        if tier in ON_THE_NODE:
            item.add_marker("node")
    # The up/down cycles stop the session's cluster (one real node per machine): last.
    cycles = [item for item in items if item.get_closest_marker("node_cycles")]
    items[:] = [item for item in items if item not in cycles] + cycles
