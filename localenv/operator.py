"""Run the operator as a real process against the local control plane (tests, demo)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from localenv.images import OPERATOR_IMAGE
from localenv.postgres import free_port


@dataclass
class OperatorProcess:
    process: subprocess.Popen[bytes]
    log: Path
    metrics_port: int
    liveness_port: int

    def metrics(self) -> str:
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as response:
            return str(response.read().decode())

    def stop(self, kill: bool = False) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start(kubeconfig: Path, namespaces: list[str], log: Path, *,
          ready_timeout: float = 30.0, extra_args: Sequence[str] = ()) -> OperatorProcess:
    """Start `schemagate run` and wait until its liveness endpoint answers (a standby of
    leader election answers it too). The pods it runs use the node's `schemagate:dev`,
    as the chart passes its own image. No chart installed the author-rights policy, so
    the operator is told there is none unless `extra_args` name its binding."""
    metrics_port, liveness_port = free_port(), free_port()
    rights = [] if any(a.startswith("--author-rights-binding") for a in extra_args) \
        else ["--no-author-rights"]
    args = [sys.executable, "-m", "schemagate", "run", "--kubeconfig", str(kubeconfig),
            "--metrics-port", str(metrics_port), "--liveness-port", str(liveness_port),
            "--verify-image", OPERATOR_IMAGE, *rights, *extra_args]
    for ns in namespaces:
        args += ["--namespace", ns]
    log.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with log.open("ab") as out:
        process = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=env,
                                   stdin=subprocess.DEVNULL)
    running = OperatorProcess(process, log, metrics_port, liveness_port)
    deadline = time.monotonic() + ready_timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the operator exited with {process.returncode}; see {log}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{liveness_port}/healthz", timeout=1):
                return running
        except OSError:
            time.sleep(0.2)
    running.stop(kill=True)
    raise RuntimeError(f"the operator did not become live within {ready_timeout}s; see {log}")
