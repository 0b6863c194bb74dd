"""The revision files laid out for Alembic, in the `run: Alembic` Job's pod.

`scripts_from_files` reads their heads and graph through the one reader of revision
files (`core.revisions.graph`), so the Job refuses exactly what the operator refuses,
lays them out beside our own `env.py`, and has Alembic load them once: a file that fails
at import (a syntax error, a module it cannot import, anything it raises) is named before
the run starts, and Alembic must find the heads the reader found. Loading runs the
files' module-level code, which is why this package runs only in the Job's pod.
"""

from __future__ import annotations

import os
import re
import tempfile
import threading
import traceback
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy.exc import DBAPIError

from schemagate.core.revisions.graph import ScriptGraph, read_graph
from schemagate.core.revisions.keys import InvalidScripts
from schemagate.core.tenancy.scrub import scrub_patterns
from schemagate.postgres.connect import driver_text, one_line

_ENV_PY = resources.files("schemagate.job") / "alembic_env" / "env.py"
_LOADING = threading.Lock()  # warnings.catch_warnings changes process-wide state


@dataclass(frozen=True)
class Scripts:
    """Revision files laid out for Alembic in `directory`; `ignored` are the keys that
    were not `.py` files."""

    directory: Path
    heads: frozenset[str]
    revisions: int
    ignored: tuple[str, ...] = ()
    #: Each revision's down revisions and dependencies: what the pod gate orders by.
    graph: Mapping[str, frozenset[str]] = field(default_factory=dict)
    #: The revisions as Alembic loaded them (each file imported once).
    loaded: ScriptDirectory | None = field(default=None, compare=False, repr=False)


def scripts_from_files(files: Mapping[str, str], workdir: Path) -> Scripts:
    """The revision files `files` (name to text) in a new directory under `workdir`,
    which the caller removes when done.

    Raises `NoScripts` when there is no revision, `InvalidScripts` when the files make no
    graph (an identifier that is not a literal, a down_revision no file declares, a
    cycle, a duplicate) or Alembic cannot load them.
    """
    read = read_graph(files)
    # A fresh directory each time: nothing left over from an earlier set of files, and
    # no stale bytecode for a file rewritten within the same second.
    directory = Path(tempfile.mkdtemp(prefix="scripts-", dir=workdir))
    (directory / "versions").mkdir()
    for name in read.files:
        (directory / "versions" / name).write_text(files[name], encoding="utf-8")
    (directory / "env.py").write_text(_ENV_PY.read_text(encoding="utf-8"), encoding="utf-8")
    loaded = _load(directory, read)
    return Scripts(directory=directory, heads=read.heads, revisions=read.revisions,
                   ignored=read.ignored, graph=read.graph, loaded=loaded)


def alembic_config(directory: Path) -> Config:
    """Alembic's configuration for the scripts in `directory`: no alembic.ini."""
    config = Config()
    # A '%' would start configparser's interpolation.
    config.set_main_option("script_location", str(directory).replace("%", "%%"))
    return config


def _load(directory: Path, read: ScriptGraph) -> ScriptDirectory:
    """Alembic loads every revision file, and finds the heads `read` found. Alembic only
    warns about a down_revision no file declares, or a duplicate revision; both fail
    here."""
    script = ScriptDirectory.from_config(alembic_config(directory))
    with _LOADING, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            heads = frozenset(script.get_heads())
            error: Exception | None = None
        except Exception as exc:  # a revision file may raise anything at import
            error = exc
    complaints = [str(w.message) for w in caught
                  if issubclass(w.category, UserWarning) and _from_alembic(w.filename)]
    if error is None and not complaints and heads != read.heads:
        complaints.append(f"Alembic finds the heads {_listed(heads)}, the files declare "
                          f"{_listed(read.heads)} (an identifier assigned at run time?)")
    if error is None and not complaints:
        return script
    # A revision file may raise anything at import, with any text in it.
    raise InvalidScripts(scrub_patterns(_load_error(error, complaints, directory / "versions",
                                                    read)))


def _load_error(error: Exception | None, complaints: list[str], versions: Path,
                read: ScriptGraph) -> str:
    if isinstance(error, SyntaxError) and error.filename:
        return f"{Path(error.filename).name}, line {error.lineno}: {error.msg}"
    detail = "; ".join(complaints) if complaints else error_text(error)
    raised_in = failing_file(error, versions)
    files = [raised_in] if raised_in else _files_declaring(detail, read)
    return f"{', '.join(files)}: {detail}" if files else detail


def _files_declaring(text: str, read: ScriptGraph) -> list[str]:
    """The files whose revision id appears in `text` (Alembic names revisions, not files)."""
    return sorted(file for revision, file in read.declared_in.items()
                  if re.search(rf"(?<!\w){re.escape(revision)}(?!\w)", text))


def _from_alembic(filename: str) -> bool:
    return f"{os.sep}alembic{os.sep}" in filename


def _listed(revisions: frozenset[str]) -> str:
    return ", ".join(sorted(revisions)) or "none"


def failing_file(exc: BaseException | None, versions: Path) -> str | None:
    """The revision file where `exc` was raised, from its traceback."""
    frames = traceback.extract_tb(exc.__traceback__) if exc is not None else []
    inside = [f.filename for f in frames if Path(f.filename).parent == versions]
    return Path(inside[-1]).name if inside else None


def error_text(exc: BaseException | None) -> str:
    """`exc` in one line: the driver's or Alembic's own words, else its class and text."""
    if isinstance(exc, DBAPIError):
        return driver_text(exc)
    if exc is None:
        return "unknown error"
    text = one_line(exc)
    if type(exc).__module__.startswith("alembic.") and text:
        return text  # Alembic's own words need no class name
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
