"""Writes the table of test tiers and their measured times into docs/development.md,
from the JUnit XML files pytest wrote (`make test` writes build/junit-test.xml, each
`make test-TIER` build/junit-TIER.xml).

A tier's time is the sum of its tests' times, set-up and tear-down included (the
session's cluster or PostgreSQL is set up inside its first test). Tiers absent from the
files keep the row they had, so one tier can be measured again alone; a tier in several
files is taken from the newest.
Run: `make tier-times` (every build/junit-*.xml), or
`python hack/tier_times.py FILE...`.
"""

from __future__ import annotations

import re
import sys
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "development.md"
BEGIN, END = "<!-- tier-times: begin -->", "<!-- tier-times: end -->"
#: Tier, the module prefix of its tests in JUnit's classname, and its make target; in
#: the order `make test` runs them.
TIERS = [("unit", "tests.unit.", "make test-unit"), ("chart", "tests.chart.", "make test-chart"),
         ("db", "tests.db.", "make test-db"), ("image", "tests.image.", "make test-image"),
         ("cluster", "tests.cluster.", "make test-cluster"),
         ("tenants", "tests.tenants.", "make test-tenants"),
         ("chaos", "tests.chaos.", "make test-chaos"),
         ("localenv", "localenv.tests.", "make test-localenv")]
HEADER = ["| tier | run alone with | tests | time | measured |", "| --- | --- | --- | --- | --- |"]


@dataclass
class Tier:
    day: str
    commit: str
    seconds: float = 0.0
    counts: dict[str, int] = field(default_factory=dict)

    def add(self, case: ElementTree.Element) -> None:
        self.seconds += float(case.get("time") or 0)
        outcome = next((child.tag for child in case
                        if child.tag in ("failure", "error", "skipped")), "passed")
        self.counts[outcome] = self.counts.get(outcome, 0) + 1


def tier_of(classname: str) -> str | None:
    return next((name for name, prefix, _ in TIERS if classname.startswith(prefix)), None)


def measured(path: Path) -> dict[str, Tier]:
    tiers: dict[str, Tier] = {}
    for suite in ElementTree.parse(path).getroot().iter("testsuite"):
        day = (suite.get("timestamp") or "")[:10]
        tested = next((p.get("value") for p in suite.iter("property")
                       if p.get("name") == "commit"), None) or "commit not recorded"
        for case in suite.iter("testcase"):
            name = tier_of(case.get("classname") or "")
            if name is not None:
                tiers.setdefault(name, Tier(day=day, commit=tested)).add(case)
    return tiers


def newest(paths: list[Path]) -> dict[str, Tier]:
    """Each tier as the newest file that ran it measured it."""
    tiers: dict[str, Tier] = {}
    for path in sorted(paths, key=lambda path: path.stat().st_mtime):
        tiers.update(measured(path))
    return tiers


def duration(seconds: float) -> str:
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest} s" if minutes else f"{seconds:.1f} s"


def row(name: str, tier: Tier) -> str:
    target = next(make for tier_name, _, make in TIERS if tier_name == name)
    counts = ", ".join(f"{n} {outcome}" for outcome, n in sorted(tier.counts.items()))
    when = f"{tier.day}, {tier.commit}"
    return f"| {name} | `{target}` | {counts} | {duration(tier.seconds)} | {when} |"


def kept_rows(page: str) -> dict[str, str]:
    """The rows the table has now, by tier."""
    inside = page.split(BEGIN, 1)[1].split(END, 1)[0]
    return {found.group(1): line for line in inside.splitlines()
            if (found := re.match(r"\| (\w+) \| `make", line))}


def table(page: str, tiers: dict[str, Tier]) -> str:
    rows = kept_rows(page)
    rows.update({name: row(name, tier) for name, tier in tiers.items()})
    ordered = [rows[name] for name, _, _ in TIERS if name in rows]
    return "\n".join([BEGIN, *HEADER, *ordered, END])


def main(arguments: list[str]) -> int:
    paths = [Path(argument) for argument in arguments]
    if not paths:
        print("usage: tier_times.py JUNIT_XML...", file=sys.stderr)
        return 2
    page = PAGE.read_text()
    start, end = page.index(BEGIN), page.index(END) + len(END)
    new = table(page, newest(paths))
    PAGE.write_text(page[:start] + new + page[end:])
    print(new)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
