"""Long-running local processes that outlive whoever started them.

Each runs in its own session (so `make` ending or a Ctrl-C in the terminal does
not reach it), writes to its own log, and is found again through a pidfile that
records the command line: a pid reused by an unrelated process is not mistaken
for ours.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

# Popen objects of the daemons this process started, so they are reaped (a
# zombie would otherwise still look alive) and Python does not warn about them.
_children: dict[int, subprocess.Popen[bytes]] = {}


@dataclass(frozen=True)
class Daemon:
    name: str
    argv: list[str]
    run_dir: Path
    log_dir: Path
    env: dict[str, str] | None = field(default=None, compare=False)
    # Open files the daemon inherits (a lock it holds for its whole life).
    pass_fds: tuple[int, ...] = field(default=(), compare=False)

    @property
    def pidfile(self) -> Path:
        return self.run_dir / f"{self.name}.pid"

    @property
    def log(self) -> Path:
        return self.log_dir / f"{self.name}.log"


def _cmdline(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return None
    if state in ("Z", "X"):
        return None
    return raw.decode(errors="replace").split("\0")[:-1]


def _alive(pid: int) -> bool:
    child = _children.get(pid)
    if child is not None and child.poll() is not None:
        del _children[pid]
        return False
    return _cmdline(pid) is not None


def pid_of(daemon: Daemon) -> int | None:
    """The pid of the running daemon, if its pidfile names a live process running it."""
    try:
        recorded = json.loads(daemon.pidfile.read_text())
        pid = int(recorded["pid"])
    except (FileNotFoundError, ValueError, KeyError, TypeError):
        return None
    if pid in _children and _children[pid].poll() is not None:
        del _children[pid]
        return None
    return pid if _cmdline(pid) == recorded["argv"] else None


def start(daemon: Daemon, fresh_log: bool = False) -> int:
    """Starts the daemon detached; its output goes to `daemon.log`."""
    daemon.run_dir.mkdir(parents=True, exist_ok=True)
    daemon.log_dir.mkdir(parents=True, exist_ok=True)
    with open(daemon.log, "wb" if fresh_log else "ab") as log:
        log.write(f"--- {time.strftime('%Y-%m-%dT%H:%M:%S')} starting: "
                  f"{' '.join(daemon.argv)}\n".encode())
        log.flush()
        proc = subprocess.Popen(daemon.argv, stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True,
                                env=daemon.env, close_fds=True, pass_fds=daemon.pass_fds)
    _children[proc.pid] = proc
    # Popen returns while the kernel is still finishing the exec, when
    # /proc/PID/cmdline reads empty: wait for it, then record it as /proc shows
    # it, so `pid_of` compares like with like. `nsenter ... -- CMD` execs CMD in
    # the same pid: wait for CMD's command line.
    final = daemon.argv[daemon.argv.index("--") + 1:] if daemon.argv[0] == "nsenter" else None

    def execed() -> bool:
        shown = _cmdline(proc.pid)
        return bool(shown) and (final is None or shown == final)

    wait_until(lambda: execed() or proc.poll() is not None, 5.0, 0.005)
    argv = _cmdline(proc.pid) or daemon.argv
    daemon.pidfile.write_text(json.dumps({"pid": proc.pid, "argv": argv}))
    return proc.pid


def stop(daemon: Daemon, timeout: float = 15.0) -> bool:
    """SIGTERM, then SIGKILL after `timeout` seconds. False if it was not running."""
    pid = pid_of(daemon)
    daemon.pidfile.unlink(missing_ok=True)
    if pid is None:
        return False
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGTERM)
    if not wait_until(lambda: not _alive(pid), timeout):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
        wait_until(lambda: not _alive(pid), 5.0)
    return True


def wait_until(condition: Callable[[], bool], timeout: float, interval: float = 0.1) -> bool:
    """Polls `condition` until it holds or `timeout` seconds pass; says which."""
    deadline = time.monotonic() + timeout
    while True:
        if condition():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


def log_tail(daemon: Daemon, lines: int = 15) -> str:
    try:
        return "\n".join(daemon.log.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log)"
