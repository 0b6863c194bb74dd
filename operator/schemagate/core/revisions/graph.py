"""The heads and graph of a ConfigMap's revision files, read without running them (pure).

The operator never imports a tenant's revision file: a file runs whatever it holds at
import, and the operator holds rights its authors do not. What the gate and the
verification need (the scripts' heads, each revision's down revisions and
dependencies) is read from the files' text: the module-level literals `revision`,
`down_revision`, `depends_on` and `branch_labels`, as every file `alembic revision`
writes has them, found by `scan` in time linear in the files and memory constant
beyond them; the caller runs it off the event loop all the same. This is the one reader
of revision files: the migration Job reads its heads and graph here too, and only then
loads the files through Alembic to run them; should Alembic ever see another graph, the
database's verdict says so (`RevisionMismatch`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from schemagate.core.revisions import keys, scan
from schemagate.core.revisions.keys import InvalidScripts, NoScripts
from schemagate.core.tenancy import limits

#: Characters of a revision id shown in a message, at most.
_SHOWN = 64


@dataclass(frozen=True)
class ScriptGraph:
    heads: frozenset[str]
    #: Each revision's down revisions and dependencies: what the pod gate orders by.
    graph: Mapping[str, frozenset[str]] = field(default_factory=dict)
    #: The revision files (keys), what the migration Job is given.
    files: tuple[str, ...] = ()
    #: The keys that were not `.py` files.
    ignored: tuple[str, ...] = ()
    #: The file (key) that declares each revision.
    declared_in: Mapping[str, str] = field(default_factory=dict)

    @property
    def revisions(self) -> int:
        return len(self.graph)


@dataclass(frozen=True)
class _Declared:
    file: str
    revision: str
    down: tuple[str, ...]
    depends_on: tuple[str, ...]
    labels: tuple[str, ...]


def read_graph(files: Mapping[str, str]) -> ScriptGraph:
    """The heads and graph of the revision files among `files` (key to text).

    Raises `NoScripts` when there is no revision file, `InvalidScripts` when a file's
    identifiers are not literals, or the graph is broken (a down revision no file
    declares, a revision declared twice, a cycle)."""
    revision_files, ignored = keys.revision_files(files)
    if not revision_files:
        found = f"only {keys.listing(list(ignored))}" if ignored else "no keys at all"
        raise NoScripts(f"no revision files (*.py): {found}")
    # Alembic skips a package's __init__.py, and refuses any other file without a revision.
    declared = [_declared(name, text) for name, text in revision_files.items()
                if name != "__init__.py"]
    if not declared:
        raise NoScripts(f"no revision among {keys.listing(sorted(revision_files))}")
    by_id: dict[str, _Declared] = {}
    for d in declared:
        if d.revision in by_id:
            raise InvalidScripts(f"{by_id[d.revision].file}, {d.file}: revision "
                                 f"{_id(d.revision)} is declared more than once")
        by_id[d.revision] = d
    labels = {label: d.revision for d in declared for label in d.labels}
    graph: dict[str, frozenset[str]] = {}
    for d in declared:
        below = set()
        for down in d.down:
            if down not in by_id:
                raise InvalidScripts(f"{d.file}: down_revision {_id(down)} is declared by no "
                                     "file")
            below.add(down)
        for dependency in d.depends_on:
            resolved = dependency if dependency in by_id else labels.get(dependency)
            if resolved is None:
                raise InvalidScripts(f"{d.file}: depends_on {_id(dependency)} is neither a "
                                     "revision nor a branch label of these files")
            below.add(resolved)
        graph[d.revision] = frozenset(below)
    _refuse_cycles(graph, by_id)
    named_below = {down for d in declared for down in d.down}
    heads = frozenset(r for r in graph if r not in named_below)
    return ScriptGraph(heads=heads, graph=graph, files=tuple(sorted(revision_files)),
                       ignored=ignored, declared_in={d.revision: d.file for d in declared})


def _declared(name: str, text: str) -> _Declared:
    """The identifiers `name` declares."""
    try:
        values = scan.assignments(text)
    except scan.UnreadableFile as exc:
        where = ", " if str(exc).startswith("line ") else ": "
        raise InvalidScripts(f"{name}{where}{exc}") from None
    if "revision" not in values:
        raise InvalidScripts(f"{name}: no revision = \"...\" at the top of the file, as "
                             "every revision file Alembic writes declares it")
    revision = values["revision"]
    if not isinstance(revision, str) or not revision:
        raise InvalidScripts(f"{name}: revision must be a non-empty string")
    _refuse_long(name, "revision", revision)
    return _Declared(file=name, revision=revision,
                     down=_ids(name, "down_revision", values.get("down_revision")),
                     depends_on=_ids(name, "depends_on", values.get("depends_on")),
                     labels=_ids(name, "branch_labels", values.get("branch_labels")))


def _ids(file: str, name: str, value: object) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        ids: tuple[str, ...] = (value,) if value else ()
    elif isinstance(value, (tuple, list)) and all(isinstance(v, str) and v for v in value):
        ids = tuple(value)
    else:
        raise InvalidScripts(f"{file}: {name} must be None, a string or a tuple of strings")
    for revision in ids:
        _refuse_long(file, name, revision)
    return ids


def _refuse_long(file: str, name: str, revision: str) -> None:
    """A revision no version table could hold (Alembic's column is varchar(32)), and the
    operator reads none longer than `limits.MAX_REVISION` from one."""
    if len(revision) > limits.MAX_REVISION:
        raise InvalidScripts(f"{file}: {name} {_id(revision)} is longer than "
                             f"{limits.MAX_REVISION} characters")


def _refuse_cycles(graph: Mapping[str, frozenset[str]], by_id: Mapping[str, _Declared]) -> None:
    """Iterative depth-first search: a chain of thousands of revisions needs no stack."""
    done: set[str] = set()
    for start in graph:
        if start in done:
            continue
        path: list[str] = []
        on_path: set[str] = set()
        stack: list[tuple[str, bool]] = [(start, False)]
        while stack:
            node, leaving = stack.pop()
            if leaving:
                path.pop()
                on_path.discard(node)
                done.add(node)
                continue
            if node in done:
                continue
            if node in on_path:
                cycle = path[path.index(node):] + [node]
                raise InvalidScripts(f"{by_id[node].file}: the revisions form a cycle: "
                                     f"{' -> '.join(_id(r) for r in cycle)}")
            path.append(node)
            on_path.add(node)
            stack.append((node, True))
            stack.extend((below, False) for below in graph[node])


def _id(revision: str) -> str:
    return keys.shown(revision, _SHOWN)
