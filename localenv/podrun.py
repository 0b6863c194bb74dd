"""Runs a Job's pod as local processes, the way a container runtime would run it.

The image map (JSON) says which images can run here and with what: an image name
maps to a runtime, either a directory (a virtualenv or a `bin` directory,
prepended to PATH) or an object:

    {"schemagate/backend:dev": {"bin": "/repo/.venv/bin",
                                "env": {"VIRTUAL_ENV": "/repo/.venv"},
                                "workingDir": "/repo/backend",
                                "paths": {"/app": "/repo/backend"}}}

`workingDir` is the image's default working directory; `paths` maps directories
of the image to directories of this machine, rewritten like volume mounts.
Init containers run one after another, then the containers together; their
output goes to `<sandbox>/logs/<container>.log` and its tail becomes the
termination message. A native sidecar (an init container with `restartPolicy:
Always`) is started in its turn and the next init container starts once its
process runs; it runs beside the containers and, once they have all ended, gets
SIGTERM, then SIGKILL after the pod's grace period. It is not restarted if it exits.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from localenv import podenv
from localenv.podstatus import PodRun, Running, State, Terminated, Waiting, is_sidecar

Json = dict[str, Any]
BASE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
TAIL_LINES, TAIL_BYTES = 20, 4096
CONFIG_RETRY_SECONDS = 2.0
MAX_GRACE_SECONDS = 30.0


def grace_seconds(pod: Json) -> float:
    """The pod's termination grace period (default 30 s), at most MAX_GRACE_SECONDS."""
    grace = pod["spec"].get("terminationGracePeriodSeconds")
    return min(float(30 if grace is None else grace), MAX_GRACE_SECONDS)


@dataclass(frozen=True)
class Runtime:
    bin: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    working_dir: str | None = None
    paths: dict[str, str] = field(default_factory=dict)


def load_image_map(path: Path) -> dict[str, Runtime]:
    """Read on every pod start, so an edited map applies without a restart."""
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    images = {}
    for image, spec in raw.items():
        if isinstance(spec, str):
            directory = Path(spec)
            bin_dir = directory / "bin" if (directory / "bin").is_dir() else directory
            images[image] = Runtime(bin=str(bin_dir))
        else:
            images[image] = Runtime(bin=spec.get("bin"), env=dict(spec.get("env") or {}),
                                    working_dir=spec.get("workingDir"),
                                    paths=dict(spec.get("paths") or {}))
    return images


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def output_tail(log: Path) -> str:
    """The last lines of a container's output, as a termination message."""
    try:
        with open(log, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 4 * TAIL_BYTES))
            data = f.read()
    except FileNotFoundError:
        return ""
    lines = data.decode(errors="replace").rstrip("\n").splitlines()[-TAIL_LINES:]
    return "\n".join(lines)[-TAIL_BYTES:]


class _Stopped(Exception):
    """The pod is being deleted: start nothing more."""


@dataclass
class Prepared:
    """A container ready to start: what to run, where, with what."""

    name: str
    argv: list[str]
    cwd: str
    env: dict[str, str]
    log: Path


def prepare(pod: Json, container: Json, runtime: Runtime, sandbox: Path,
            lookup: podenv.Lookup) -> Prepared:
    """Resolves everything before starting; raises ConfigError or Unsupported."""
    declared = podenv.container_env(pod, container, lookup)
    paths = {**runtime.paths, **podenv.mounts(pod, container, sandbox, lookup)}
    env = {"PATH": f"{runtime.bin}:{BASE_PATH}" if runtime.bin else BASE_PATH,
           "HOME": str(sandbox), "HOSTNAME": pod["metadata"]["name"], "LANG": "C.UTF-8",
           **runtime.env}
    env.update({k: podenv.relocate(v, paths) for k, v in declared.items()})
    cwd = podenv.relocate(container.get("workingDir") or runtime.working_dir or str(sandbox),
                          paths)
    if not Path(cwd).is_dir():
        raise podenv.Unsupported(f"workingDir {cwd} does not exist on this machine; map it "
                                 "with \"paths\" or \"workingDir\" in the image map")
    argv = podenv.command_line(container, declared, paths)
    log = sandbox / "logs" / f"{container['name']}.log"
    return Prepared(container["name"], argv, cwd, env, log)


class PodRunner:
    """One Job pod's processes. Reports every change of state through `changed`."""

    def __init__(self, pod: Json, images: Path, sandbox: Path, lookup: podenv.Lookup,
                 changed: Callable[[], None]) -> None:
        self.pod, self._images, self.sandbox = pod, images, sandbox
        self._lookup, self._changed = lookup, changed
        self._lock = threading.Lock()
        self._run = PodRun()
        self._procs: dict[str, subprocess.Popen[bytes]] = {}
        self._sidecars: list[tuple[subprocess.Popen[bytes], threading.Thread]] = []
        self._stopping = threading.Event()
        self.done = threading.Event()
        self._thread = threading.Thread(target=self._main, daemon=True,
                                        name=f"pod-{pod['metadata']['name']}")

    @property
    def state(self) -> PodRun:
        with self._lock:
            return self._run

    def start(self) -> None:
        self._thread.start()

    def _set(self, **changes: Any) -> None:
        with self._lock:
            self._run = replace(self._run, **changes)
        self._changed()

    def _fail(self, reason: str, message: str) -> None:
        self._set(failure=(reason, message), failed_at=now())

    def _set_container(self, init: bool, name: str, state: State) -> None:
        with self._lock:
            if init:
                self._run = replace(self._run, init={**self._run.init, name: state})
            else:
                self._run = replace(self._run, main={**self._run.main, name: state})
        self._changed()

    def _main(self) -> None:
        try:
            self._run_pod()
        except _Stopped:
            pass
        except Exception as error:  # a bug here must still fail the pod, visibly
            self._fail("StartError", f"kubelet stand-in: {error!r}")
        finally:
            self.done.set()
            self._changed()

    def _runtime(self, container: Json) -> Runtime | None:
        image = container.get("image", "")
        runtime = load_image_map(self._images).get(image)
        if runtime is None:
            self._fail("ImageNotInLocalMap",
                       f'image "{image}" of container "{container["name"]}" is not in the '
                       f"local image map {self._images}; only the images listed there can "
                       "run on this node")
        return runtime

    def _run_pod(self) -> None:
        spec = self.pod["spec"]
        init = [(c, True) for c in spec.get("initContainers") or []]
        containers = [*init, *((c, False) for c in spec["containers"])]
        runtimes = [self._runtime(c) for c, _ in containers]
        if any(r is None for r in runtimes):
            return
        (self.sandbox / "logs").mkdir(parents=True, exist_ok=True)
        prepared = []
        for (container, is_init), runtime in zip(containers, runtimes, strict=True):
            assert runtime is not None
            item = self._prepare(container, is_init, runtime)
            if item is None:
                return
            prepared.append(item)
        try:
            for item, (container, _) in zip(prepared, init, strict=False):
                if is_sidecar(container):
                    if not self._start_sidecar(item):
                        return
                elif self._execute([item], init=True) != [0]:
                    return
            self._execute(prepared[len(init):], init=False)
        finally:
            self._stop_sidecars(grace_seconds(self.pod))

    def _prepare(self, container: Json, init: bool, runtime: Runtime) -> Prepared | None:
        """None when the pod cannot run (its failure is recorded) or is being stopped."""
        while not self._stopping.is_set():
            try:
                return prepare(self.pod, container, runtime, self.sandbox, self._lookup)
            except podenv.ConfigError as error:
                self._set_container(init, container["name"],
                                    Waiting("CreateContainerConfigError", str(error)))
                self._stopping.wait(CONFIG_RETRY_SECONDS)
            except podenv.Unsupported as error:
                self._fail("StartError", str(error))
                return None
        return None

    def _execute(self, group: list[Prepared], init: bool) -> list[int]:
        """Starts the group together and waits for all; their exit codes."""
        started = [(item, self._spawn(item, init), now()) for item in group]
        return [self._wait(item, proc, started_at, init) for item, proc, started_at in started]

    def _wait(self, item: Prepared, proc: subprocess.Popen[bytes] | None, started_at: str,
              init: bool) -> int:
        """Waits for the process to end and records how; its exit code."""
        if proc is None:
            code, reason = 128, "StartError"
            message = (f'exec: "{item.argv[0]}": executable file not found in $PATH '
                       f'(PATH={item.env["PATH"]})')
        else:
            code = proc.wait()
            code = 128 - code if code < 0 else code  # killed by signal N: 128 + N
            reason = "Completed" if code == 0 else "Error"
            message = output_tail(item.log)
        self._set_container(init, item.name, Terminated(code, reason, started_at, now(), message))
        return code

    def _start_sidecar(self, item: Prepared) -> bool:
        """Starts a native sidecar and watches it; False when it could not start, which
        fails the pod (no container is restarted here)."""
        started_at = now()
        proc = self._spawn(item, True)
        if proc is None:
            self._wait(item, None, started_at, True)
            self._fail("StartError", f'sidecar container "{item.name}" could not start')
            return False
        watcher = threading.Thread(target=self._wait, args=(item, proc, started_at, True),
                                   daemon=True, name=f"{self._thread.name}-{item.name}")
        watcher.start()
        self._sidecars.append((proc, watcher))
        return True

    def _stop_sidecars(self, grace: float) -> None:
        """Once the containers have ended: SIGTERM to the sidecars, latest first, then
        SIGKILL after `grace` seconds; returns when their ends are recorded."""
        procs = [proc for proc, _ in reversed(self._sidecars)]
        _terminate(procs, grace)
        for _, watcher in self._sidecars:
            watcher.join()

    def _spawn(self, item: Prepared, init: bool) -> subprocess.Popen[bytes] | None:
        # Under the lock, so `stop` either sees the process or we see `stop`.
        with self._lock, open(item.log, "ab") as log:
            if self._stopping.is_set():
                raise _Stopped
            try:
                proc = subprocess.Popen(item.argv, cwd=item.cwd, env=item.env, stdout=log,
                                        stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                        start_new_session=True)
            except (FileNotFoundError, PermissionError):
                return None
            self._procs[item.name] = proc
        self._set_container(init, item.name, Running(now()))
        return proc

    def stop(self, grace: float) -> None:
        """Like a kubelet deleting the pod: SIGTERM, then SIGKILL after `grace` seconds."""
        self._stopping.set()
        with self._lock:
            procs = list(self._procs.values())
        _terminate(procs, grace)
        self.done.wait(5)


def _terminate(procs: list[subprocess.Popen[bytes]], grace: float) -> None:
    """SIGTERM to each process's group, then SIGKILL to those still running after `grace`."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for proc in procs:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, sig)
        deadline = time.monotonic() + grace
        while any(p.poll() is None for p in procs) and time.monotonic() < deadline:
            time.sleep(0.05)
