"""squawk (`squawk-cli`, pinned with schemagate), run as a subprocess over a plan's SQL:
the lint half of `schemagate plan`. The SQL goes in on standard input; its JSON report
comes back, bounded, within a timeout."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from schemagate.core.plan.findings import MESSAGE_SHOWN, LintIssue

#: How long one squawk run may take, by default.
TIMEOUT = 60.0
#: Issues read from one report.
MAX_ISSUES = 10_000


class LintFailed(Exception):
    """squawk is missing, failed, or took too long; the text says which."""


def find() -> str | None:
    """squawk beside this Python (the venv or image it was installed into), else on PATH."""
    beside = Path(sys.executable).parent / "squawk"
    return str(beside) if os.access(beside, os.X_OK) else shutil.which("squawk")


def lint(sql: str, *, exclude: Sequence[str], binary: str | None = None,
         timeout: float = TIMEOUT) -> list[LintIssue]:
    """squawk's issues in `sql`. Raises `LintFailed`."""
    program = binary or find()
    if program is None:
        raise LintFailed("squawk is not installed: pip install squawk-cli (the version "
                         "schemagate pins), or --lint off")
    command = [program, "--reporter", "json", "--stdin-filepath", "plan.sql"]
    if exclude:
        command.append("--exclude=" + ",".join(exclude))
    try:
        done = subprocess.run(command, input=sql.encode("utf-8"), capture_output=True,  # noqa: S603
                              timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        raise LintFailed(f"squawk took longer than {timeout:g} s") from None
    except OSError as exc:
        raise LintFailed(f"cannot run {program}: {exc}") from None
    if done.returncode not in (0, 1):
        error = " ".join(done.stderr.decode("utf-8", "replace").split())[:MESSAGE_SHOWN]
        raise LintFailed(f"squawk exited with {done.returncode}: {error}")
    return issues(done.stdout.decode("utf-8", "replace"))


def issues(report: str) -> list[LintIssue]:
    """squawk's JSON report, read as issues; raises `LintFailed` for anything else."""
    try:
        entries = json.loads(report)
    except ValueError:
        raise LintFailed("squawk's report is not JSON") from None
    if not isinstance(entries, list):
        raise LintFailed("squawk's report is not a list")
    found = []
    for entry in entries[:MAX_ISSUES]:
        if not isinstance(entry, dict):
            continue
        line, column = entry.get("line"), entry.get("column")
        found.append(LintIssue(
            rule=str(entry.get("rule_name") or "squawk")[:100],
            line=line if isinstance(line, int) else 0,
            column=column if isinstance(column, int) else 0,
            message=" ".join(str(entry.get("message") or "").split())[:MESSAGE_SHOWN]))
    return found
