"""The SQL of the revisions that would run, rendered by Alembic in offline mode
(`alembic upgrade current:heads --sql`), revision by revision: what `schemagate plan`
reads. It runs revision files, which is why it is part of `schemagate.job`.

The files go through the one reader of revision files (`core.revisions`, by way of
`scripts.scripts_from_files`), so the plan refuses what the Job refuses, within the same
bounds, and Alembic must find the heads that reader found. No env.py of the project
runs: the offline environment is configured here, for PostgreSQL, in one transaction as
`schemagate migrate` runs them. Each revision's `upgrade()` is guarded: one that raises
offline, or that reads rows through `op.get_bind()` (a data migration: offline, its
query has no result to act on), is marked unlintable and the next revision renders on.
All of it happens in a child process, bounded in time and memory, and the rendered SQL
is bounded as it is written.
"""

from __future__ import annotations

import configparser
import functools
import io
import multiprocessing
import os
import resource
import shutil
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, cast

from alembic.config import Config
from alembic.runtime.environment import EnvironmentContext
from alembic.runtime.migration import MigrationInfo
from alembic.script import ScriptDirectory
from alembic.util import CommandError

from schemagate.core.plan import findings as plan_
from schemagate.core.revisions import keys, scan
from schemagate.core.tenancy.scrub import scrub_patterns
from schemagate.job import scripts

#: Characters of rendered SQL: a revision writing more stops the plan.
MAX_SQL = 16 * 1024 * 1024
#: Seconds the rendering may take, by default: a revision looping forever stops the plan.
RENDER_TIMEOUT = 300.0
#: Memory the rendering process may take beyond what it starts with (Linux): a revision
#: allocating more gets a MemoryError, and is unlintable.
MAX_MEMORY = 1024 * 1024 * 1024
_READING = ("select", "with", "show", "table ", "values", "explain", "fetch")


class UnusableScripts(ValueError):
    """The scripts cannot be planned: the text says which file and why."""


class TooMuchSql(Exception):
    """The revisions wrote more than `MAX_SQL` characters of SQL."""


class RenderTimeout(Exception):
    """Importing and rendering the revisions took longer than allowed."""


@dataclass(frozen=True)
class Rendered:
    sql: str
    revisions: tuple[plan_.Revision, ...]
    start: tuple[str, ...]
    heads: tuple[str, ...]


def versions_folders(path: Path) -> list[Path]:
    """Where the revision files are: an alembic.ini's `version_locations` (or its
    `script_location`'s `versions`), a script folder's `versions`, or the folder itself
    (one revision file a key, as a ConfigMap holds them)."""
    if path.is_file():
        return _from_ini(path)
    if not path.is_dir():
        raise UnusableScripts(f"{path} is neither a folder nor an alembic.ini")
    versions = path / "versions"
    return [versions if versions.is_dir() else path]


def _from_ini(ini: Path) -> list[Path]:
    parser = configparser.ConfigParser(defaults={"here": str(ini.parent.resolve())})
    try:
        parser.read(ini, encoding="utf-8")
    except (configparser.Error, UnicodeDecodeError, OSError) as exc:
        raise UnusableScripts(f"cannot read {ini}: {' '.join(str(exc).split())}") from None
    try:
        location = parser.get("alembic", "script_location")
        listed = parser.get("alembic", "version_locations", fallback="")
    except configparser.Error as exc:
        raise UnusableScripts(f"{ini}: {' '.join(str(exc).split())}") from None
    if ":" in location and not Path(location).exists():
        raise UnusableScripts(f"{ini}: script_location {location} names a package; give "
                              "the folder instead")
    folders = [_beside(ini, p) for p in listed.replace(",", " ").split()] if listed \
        else [_beside(ini, location) / "versions"]
    missing = [str(f) for f in folders if not f.is_dir()]
    if missing:
        raise UnusableScripts(f"{ini}: no folder {', '.join(missing)}")
    return folders


def _beside(ini: Path, location: str) -> Path:
    """A relative location as Alembic reads it (from the working directory), else next to
    the ini file."""
    path = Path(location)
    return path if path.is_absolute() or path.exists() else ini.parent / path


def read_revision_files(folders: Sequence[Path]) -> dict[str, str]:
    """The `*.py` files of `folders` (not hidden), name to text; reading stops at the
    bounds of a ConfigMap's revision files (`core.revisions.keys`)."""
    files: dict[str, str] = {}
    total = 0
    for folder in folders:
        for path in sorted(folder.glob("*.py")):
            if path.name.startswith(".") or not path.is_file():
                continue
            if path.name in files:
                raise UnusableScripts(f"two revision files are called {path.name}")
            if len(files) >= keys.MAX_FILES:
                raise UnusableScripts(f"more than {keys.MAX_FILES:,} revision files")
            total += path.stat().st_size
            if total > keys.MAX_TOTAL_BYTES:
                raise UnusableScripts(f"more than {keys.MAX_TOTAL_BYTES:,} bytes of revision "
                                      "files")
            try:
                files[path.name] = path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                raise UnusableScripts(f"cannot read {path}: {exc}") from None
    if not files:
        raise UnusableScripts(f"no revision files (*.py) in {', '.join(map(str, folders))}")
    return files


def render(files: dict[str, str], start: Sequence[str], *, version_table: str,
           version_table_schema: str | None, timeout: float = RENDER_TIMEOUT) -> Rendered:
    """The SQL of `upgrade start:heads` in offline mode; `start` empty: from the base.

    The revision files run in a child process of their own, which may take `MAX_MEMORY`
    more memory than this one has and is killed after `timeout` seconds: whatever a file
    does (loop, catch every exception, allocate), this process only waits and reads the
    result. What the files print goes to standard error. Raises `UnusableScripts`,
    `TooMuchSql`, `RenderTimeout`.
    """
    context = multiprocessing.get_context("fork")
    receiver, sender = context.Pipe(duplex=False)
    sys.stdout.flush()
    child = context.Process(target=_render_in_child, daemon=True, args=(
        sender, files, tuple(start), version_table, version_table_schema))
    child.start()
    sender.close()
    try:
        if not receiver.poll(timeout):
            raise RenderTimeout(f"importing and rendering the revisions took longer than "
                                f"{timeout:g} s")
        try:
            kind, value = receiver.recv()
        except EOFError:
            child.join(5)
            raise UnusableScripts(f"the process rendering the revisions ended without a "
                                  f"result (exit status {child.exitcode})") from None
    finally:
        if child.is_alive():
            child.kill()
        child.join()
        receiver.close()
    if kind == "rendered":
        assert isinstance(value, Rendered)
        return value
    raise (TooMuchSql if kind == "too much" else UnusableScripts)(str(value))


def _render_in_child(sender: Connection, files: dict[str, str], start: tuple[str, ...],
                     version_table: str, version_table_schema: str | None) -> None:
    sys.stdout = sys.__stderr__  # what revision files print is theirs, not the plan's
    os.dup2(2, 1)
    _cap_memory()
    result: tuple[str, object]
    try:
        result = ("rendered", _render_here(files, start, version_table, version_table_schema))
    except TooMuchSql as exc:
        result = ("too much", str(exc))
    except UnusableScripts as exc:
        result = ("unusable", str(exc))
    except MemoryError:
        result = ("unusable", f"rendering needed more than {MAX_MEMORY:,} bytes more memory")
    except BaseException as exc:  # noqa: BLE001 - Alembic's, or a revision's, anything
        text = " ".join(str(exc).split())[:plan_.MESSAGE_SHOWN]
        result = ("unusable", scrub_patterns(f"rendering failed: {type(exc).__name__}: {text}"))
    sender.send(result)
    sender.close()


def _cap_memory() -> None:
    """At most `MAX_MEMORY` more address space than the process has now (Linux; where
    /proc does not say how much that is, no cap)."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    limit = pages * resource.getpagesize() + MAX_MEMORY
    for bound in (soft, hard):
        if bound != resource.RLIM_INFINITY:
            limit = min(limit, bound)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))


def _render_here(files: dict[str, str], start: tuple[str, ...], version_table: str,
                 version_table_schema: str | None) -> Rendered:
    workdir = Path(tempfile.mkdtemp(prefix="schemagate-plan-"))
    try:
        try:
            laid_out = scripts.scripts_from_files(files, workdir)
        except (keys.NoScripts, keys.InvalidScripts) as exc:
            raise UnusableScripts(str(exc)) from None
        script = laid_out.loaded
        assert script is not None  # scripts_from_files has Alembic load them
        branching = {sc.revision for sc in script.walk_revisions()
                     if scan.mentions_offline_mode(files.get(Path(sc.path).name, ""))}
        return _render(scripts.alembic_config(laid_out.directory), script, start, branching,
                       version_table, version_table_schema)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


class _Runs:
    """Which revision is running, what each wrote, and why one is unlintable."""

    def __init__(self, script: ScriptDirectory, buffer: io.StringIO,
                 branching: set[str]) -> None:
        self.script, self.buffer = script, buffer
        self.running = ""
        self.unlintable: dict[str, str] = dict.fromkeys(
            branching, "it branches on offline mode (context.is_offline_mode() or as_sql), so "
                       "its offline SQL is not what runs")
        self.revisions: list[plan_.Revision] = []

    def guard(self, revision: str, upgrade: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(upgrade)  # Alembic's "-- Running" line names the function
        def guarded(*args: Any, **kwargs: Any) -> Any:
            self.running = revision
            try:
                return upgrade(*args, **kwargs)
            except TooMuchSql:
                raise
            except (Exception, SystemExit) as exc:  # anything a revision raises offline
                text = " ".join(str(exc).split())[:plan_.MESSAGE_SHOWN]
                self.unlintable.setdefault(revision, scrub_patterns(
                    f"it raised {type(exc).__name__}{': ' + text if text else ''} when run "
                    "offline"))
            return None
        return guarded

    def read(self) -> None:
        self.unlintable.setdefault(self.running, "it reads rows through op.get_bind() (a "
                                                 "data migration): offline there are none")

    def applied(self, *, step: MigrationInfo, **_: Any) -> None:
        start = self.revisions[-1].end if self.revisions else 0
        revision = step.up_revision_id or ""
        path = self.script.get_revision(revision).path if revision else ""
        self.revisions.append(plan_.Revision(
            revision=revision, down_revisions=tuple(step.down_revision_ids),
            file=Path(path).name, start=start, end=self.buffer.tell(),
            unlintable=self.unlintable.get(revision)))


def _render(config: Config, script: ScriptDirectory, start: tuple[str, ...], branching: set[str],
            version_table: str, version_table_schema: str | None) -> Rendered:
    buffer = _Bounded()
    runs = _Runs(script, buffer, branching)
    for sc in script.walk_revisions():
        module: Any = sc.module
        if callable(getattr(module, "upgrade", None)):
            module.upgrade = runs.guard(sc.revision, module.upgrade)
    try:
        with EnvironmentContext(
                config, script, as_sql=True, starting_rev=list(start) or None,
                destination_rev="heads",
                fn=lambda rev, _: script._upgrade_revs("heads", rev)) as env:
            env.configure(dialect_name="postgresql", output_buffer=buffer, literal_binds=True,
                          version_table=version_table,
                          version_table_schema=version_table_schema,
                          transaction_per_migration=False,
                          on_version_apply=cast(Any, runs.applied))
            context = env.get_context()
            watched = _Watched(context.connection, runs.read)
            context.connection = context.impl.connection = watched  # type: ignore[assignment]
            with env.begin_transaction():
                env.run_migrations()
    except TooMuchSql:
        raise
    except CommandError as exc:
        raise UnusableScripts(scrub_patterns(_start_unknown(exc, start))) from None
    return Rendered(sql=buffer.getvalue(), revisions=tuple(runs.revisions), start=start,
                    heads=tuple(sorted(script.get_heads())))


def _start_unknown(exc: Exception, start: tuple[str, ...]) -> str:
    text = " ".join(str(exc).split())
    return (f"cannot start from {', '.join(start) or 'base'}: {text} (does the database "
            "run a release newer than these scripts?)")


class _Bounded(io.StringIO):
    def write(self, text: str) -> int:
        if self.tell() + len(text) > MAX_SQL:
            raise TooMuchSql(f"the revisions wrote more than {MAX_SQL:,} characters of SQL")
        return super().write(text)


class _Watched:
    """Alembic's offline connection, noticing statements that read rows."""

    def __init__(self, connection: Any, on_read: Callable[[], None]) -> None:
        self._connection, self._on_read = connection, on_read

    def __getattr__(self, name: str) -> Any:
        return getattr(self._connection, name)

    def execute(self, statement: Any, *args: Any, **kwargs: Any) -> Any:
        if getattr(statement, "is_select", False) or _reads(str(statement)):
            self._on_read()
        return self._connection.execute(statement, *args, **kwargs)

    def exec_driver_sql(self, statement: str, *args: Any, **kwargs: Any) -> Any:
        if _reads(statement):
            self._on_read()
        return self._connection.exec_driver_sql(statement, *args, **kwargs)

    def scalar(self, *args: Any, **kwargs: Any) -> Any:
        self._on_read()
        return None

    def scalars(self, *args: Any, **kwargs: Any) -> Any:
        self._on_read()
        return iter(())


def _reads(statement: str) -> bool:
    text = statement.lstrip().lower()
    return text.startswith(_READING) or " returning " in text
