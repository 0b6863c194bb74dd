"""The Dockerfile read as data, and its build stage run without Docker.

A build stage made of ENV, WORKDIR, COPY (from the context) and RUN can be replayed
on this machine: the image's filesystem becomes a directory, the paths the stage
names are rewritten into it, and `python` is this machine's Python 3.11 (the base
image's). What the final stage copies from the build stage is what the test checks.
"""

from __future__ import annotations

import fnmatch
import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# What a clean environment must not inherit from the one running the tests.
UNSET = ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "PIP_REQUIRE_VIRTUALENV")


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [args for kw, args in self.instructions if kw == keyword]


def logical_lines(text: str) -> list[str]:
    lines, pending = [], ""
    for raw in text.splitlines():
        stripped = raw.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if stripped.startswith("#"):
            continue  # a comment inside a continued instruction
        if stripped.endswith("\\"):
            pending += stripped[:-1].rstrip() + " "
            continue
        lines.append(pending + stripped)
        pending = ""
    return lines


def stages(text: str) -> tuple[dict[str, str], list[Stage]]:
    """The ARGs before the first FROM (with their defaults), and the stages."""
    args: dict[str, str] = {}
    found: list[Stage] = []
    for line in logical_lines(text):
        keyword, _, rest = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            words = rest.split()
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            found.append(Stage(base=words[0], name=name))
        elif not found and keyword == "ARG":
            key, _, default = rest.partition("=")
            args[key.strip()] = default.strip()
        else:
            found[-1].instructions.append((keyword, rest.strip()))
    return args, found


def dockerignore_allows(path: str, ignore: Path) -> bool:
    """Docker's rule: the last pattern that matches decides; `!` re-includes."""
    allowed = True
    for line in ignore.read_text().splitlines():
        pattern = line.strip()
        if not pattern or pattern.startswith("#"):
            continue
        negated = pattern.startswith("!")
        pattern = pattern.lstrip("!").rstrip("/")
        if fnmatch.fnmatch(path.rstrip("/"), pattern):
            allowed = negated
    return allowed


def _python311() -> str:
    base = getattr(sys, "_base_executable", sys.executable)
    if sys.version_info[:2] == (3, 11):
        return str(base)
    return shutil.which("python3.11") or str(base)


@dataclass
class BuildRun:
    root: Path  # stands for the build stage's filesystem
    env: dict[str, str]
    output: str

    def path(self, container_path: str) -> Path:
        return self.root / container_path.lstrip("/")


def run_build_stage(stage: Stage, outputs: list[str], work: Path,
                    context: Path = ROOT) -> BuildRun:
    """Replays `stage`; `outputs` are the paths the final stage copies out of it."""
    root, home, bin_dir = work / "image", work / "home", work / "bin"
    for d in (root, home, bin_dir):
        d.mkdir(parents=True, exist_ok=True)
    (bin_dir / "python").symlink_to(_python311())
    env = {k: v for k, v in os.environ.items() if k not in UNSET}
    env.update(HOME=str(home), PATH=f"{bin_dir}:/usr/bin:/bin")
    workdir, output = "/", []
    for keyword, args in stage.instructions:
        if keyword == "ENV":
            env.update(word.split("=", 1) for word in shlex.split(args))
        elif keyword == "WORKDIR":
            workdir = args
            (root / workdir.lstrip("/")).mkdir(parents=True, exist_ok=True)
        elif keyword == "COPY":
            *sources, dest = shlex.split(args)
            assert not any(s.startswith("--") for s in sources), f"COPY {args}"
            for source in sources:
                _copy(context, source, root / workdir.lstrip("/") / dest)
        elif keyword == "RUN":
            names = sorted({*outputs, workdir} - {"/"}, key=len, reverse=True)
            pattern = "|".join(re.escape(n) for n in names)
            command = re.sub(rf"(?<![\w./-])({pattern})(?=[/\s]|$)",
                             lambda m: str(root) + m.group(1), args)
            result = subprocess.run(["sh", "-c", command], cwd=root / workdir.lstrip("/"),
                                    env=env, capture_output=True, text=True, timeout=540,
                                    check=False)
            output.append(result.stdout + result.stderr)
            assert result.returncode == 0, f"RUN {args}\n{result.stdout}{result.stderr}"
        else:
            raise AssertionError(f"the build stage's {keyword} cannot be replayed here")
    return BuildRun(root, env, "".join(output))


def _copy(context: Path, source: str, dest: Path) -> None:
    assert dockerignore_allows(source, context / ".dockerignore"), \
        f"COPY {source}: excluded by .dockerignore"
    src = context / source
    ignored = shutil.ignore_patterns("__pycache__", "*.egg-info", "*.pyc")
    if src.is_dir():
        shutil.copytree(src, dest, ignore=ignored, dirs_exist_ok=True)
    else:
        shutil.copy2(src, dest / src.name if dest.is_dir() else dest)
