"""`make demo` and `make test` print one line per build step (hack/step.sh): its time
and its log, where apt-get's and go's output goes; a failure shows the log's tail."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

from tests.chart import ROOT

NOISY = "for i in $(seq 1 100); do echo \"go: downloading example.com/m$i v1.0.0\"; done"


def step(tmp_path: Path, name: str, script: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SCHEMAGATE_BUILD_LOGS": str(tmp_path / "logs")}
    return subprocess.run(["bash", str(ROOT / "hack" / "step.sh"), name, "sh", "-c", script],
                          capture_output=True, text=True, env=env, timeout=30, check=False,
                          cwd=tmp_path)


def test_a_step_that_succeeds_prints_one_line_with_its_time_and_its_log(
        tmp_path: Path) -> None:
    result = step(tmp_path, "control plane", f"{NOISY}; echo 'apt: Unpacking' >&2")

    assert result.returncode == 0
    assert result.stderr == ""
    assert re.fullmatch(r"\[build\] control plane +\d+\.\d+s  log: logs/control-plane\.log\n",
                        result.stdout), result.stdout
    log = (tmp_path / "logs" / "control-plane.log").read_text().splitlines()
    assert len(log) == 101 and log[-1] == "apt: Unpacking"


def test_a_step_that_fails_shows_the_tail_of_its_log_and_its_exit_status(
        tmp_path: Path) -> None:
    result = step(tmp_path, "node binaries", f"{NOISY}; echo 'go: build failed' >&2; exit 7")

    assert result.returncode == 7
    assert result.stdout == ""
    said = result.stderr.splitlines()
    assert re.fullmatch(r"\[build\] node binaries +FAILED after \d+\.\d+s \(exit 7\); "
                        r"the last 40 lines of logs/node-binaries\.log:", said[0]), said[0]
    assert said[1:] == [f"    go: downloading example.com/m{i} v1.0.0" for i in range(62, 101)
                        ] + ["    go: build failed"]
