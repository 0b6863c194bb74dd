"""The table of tiers in docs/development.md: written from pytest's JUnit XML, each tier
from the newest file that ran it, and the tiers not run again keep their row."""

from __future__ import annotations

import functools
import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGE = """# Development

<!-- tier-times: begin -->
| tier | run alone with | tests | time | measured |
| --- | --- | --- | --- | --- |
| unit | `make test-unit` | 1 passed | 1.0 s | 2026-01-01, old |
| cluster | `make test-cluster` | 300 passed | 15 min 0 s | from the last CI run |
<!-- tier-times: end -->

After the table.
"""


@functools.cache
def tier_times() -> ModuleType:
    spec = importlib.util.spec_from_file_location("tier_times", ROOT / "hack" / "tier_times.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def junit(path: Path, commit: str, cases: str, age: int) -> Path:
    path.write_text(f"""<?xml version="1.0" encoding="utf-8"?>
<testsuites><testsuite name="pytest" timestamp="2026-12-08T00:10:00.000000">
<properties><property name="commit" value="{commit}" /></properties>
{cases}
</testsuite></testsuites>""")
    os.utime(path, (age, age))
    return path


def test_each_tier_is_summed_from_its_newest_run_and_the_others_keep_their_rows(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    whole = junit(tmp_path / "junit-test.xml", "aaaaaaa", """
        <testcase classname="tests.unit.test_a" name="t1" time="50.0" />
        <testcase classname="tests.db.test_b" name="t2" time="70.5"><skipped /></testcase>
        <testcase classname="tests.db.test_b" name="t3" time="10.0" />
        """, age=1_000)
    unit_again = junit(tmp_path / "junit-unit.xml", "bbbbbbb", """
        <testcase classname="tests.unit.test_a" name="t1" time="2.0" />
        <testcase classname="tests.unit.test_a" name="t4" time="1.5"><failure /></testcase>
        """, age=2_000)
    page = tmp_path / "development.md"
    page.write_text(PAGE)
    module = tier_times()
    monkeypatch.setattr(module, "PAGE", page)

    assert module.main([str(unit_again), str(whole)]) == 0

    text = page.read_text()
    assert "| unit | `make test-unit` | 1 failure, 1 passed | 3.5 s | 2026-12-08, bbbbbbb |" \
        in text
    assert "| db | `make test-db` | 1 passed, 1 skipped | 1 min 20 s | 2026-12-08, aaaaaaa |" \
        in text
    assert "| cluster | `make test-cluster` | 300 passed | 15 min 0 s | from the last CI run |" \
        in text
    rows = [line.split(" | ")[0] for line in text.splitlines() if line.startswith("| ")]
    assert rows == ["| tier", "| ---", "| unit", "| db", "| cluster"]  # make test's order
    assert text.endswith("<!-- tier-times: end -->\n\nAfter the table.\n")
