"""What a pod's `schemagate.io/revision` asks for, and whether the database has it (pure).

"Applied" means the database is at that revision or past it:

- the revision is one of the database's current heads; or
- `run: Alembic`: the scripts' graph (from the ConfigMap, through Alembic) shows it is
  an ancestor of a current head, so a rollback to the previous image, or an old
  ReplicaSet scaled up mid-rollout, opens on a database that is ahead of it; or
- otherwise: the database was seen at that revision and then moved on. The operator
  keeps the head sets it saw, oldest first, in `status.revision.history` (bounded), for
  one database: `status.revision.historyOf` names it (the server's system identifier
  and the database name), and another database, or one that cannot be told apart,
  starts a new history. A move back to an earlier entry drops what followed it (a
  downgrade undid it). A head set never seen before is kept after the others only
  when the scripts' graph shows it descends from the last one: without the graph, a
  database that went from A to C and back to B (a downgrade, a restored backup) looks
  exactly like one that went from A to B to C, so nothing before it is trusted.

Where neither tells (a revision older than anything the operator saw, or a
`revisionCheck: false` schema that never reads the version table), the pod stays
closed and the message says what would open it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum

from schemagate.core.wire.models import GROUP

SCHEMA_LABEL = f"{GROUP}/schema"
REVISION_ANNOTATION = f"{GROUP}/revision"
#: The head sets kept in status.revision.history: enough for the rollouts a person rolls
#: back across, small enough for the object.
HISTORY_LIMIT = 20
#: A pod annotation names at most this many revisions, each at most 64 characters (the
#: expectedRevisions bound); more is not a revision list.
MAX_POD_REVISIONS = 16

#: A revision's down revisions and dependencies, as the scripts declare them.
Graph = Mapping[str, frozenset[str]]


class Applied(Enum):
    YES = "yes"
    NO = "no"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class Knowledge:
    """What one check learned of the database's revisions."""

    current: frozenset[str] | None  # None: the version table was not read
    graph: Graph | None = None  # run: Alembic, from the ConfigMap's scripts
    graph_source: str = ""  # e.g. "ConfigMap backend-migrations", for messages
    history: tuple[frozenset[str], ...] = field(default_factory=tuple)
    revision_check: bool = True


def needed_revisions(annotations: Mapping[str, str]) -> frozenset[str] | None:
    """The revisions a pod's annotation names, or None when it names none."""
    text = annotations.get(REVISION_ANNOTATION)
    if text is None:
        return None
    revisions = frozenset(r.strip() for r in text.split(",") if r.strip())
    if not revisions:
        return None
    return frozenset(sorted(r[:64] for r in revisions)[:MAX_POD_REVISIONS])


def history_key(heads: Iterable[str]) -> str:
    return ",".join(sorted(heads))


def parse_history(entries: Sequence[str]) -> tuple[frozenset[str], ...]:
    return tuple(frozenset(e.split(",")) for e in entries if e)


def database_identity(system_identifier: str | None, database: str) -> str | None:
    """Which database a history belongs to, `7312345678901234567/app`; None when the
    server's system identifier could not be read (the role may not call
    `pg_control_system()`), so one server cannot be told from another."""
    return None if system_identifier is None else f"{system_identifier}/{database}"


def history_kept_for(identity: str | None, history: Sequence[str], recorded: str | None
                     ) -> list[str]:
    """The history to go on from: `history` when it was kept for this database, else
    none (another database, a status written before the identity was recorded, or a
    database that cannot be told apart)."""
    return list(history) if identity is not None and recorded == identity else []


def passed_through(history: Sequence[str], current: frozenset[str] | None,
                   graph: Graph | None = None) -> list[str]:
    """`status.revision.history` of one database after a check that saw `current`."""
    entries = list(history)
    if current is None:  # not read: nothing learned
        return entries
    if not current:  # an empty version table: everything was undone, or nothing ran yet
        return []
    key = history_key(current)
    if entries and entries[-1] == key:
        return entries
    if key in entries:  # back to an earlier revision: what followed is undone
        return entries[: entries.index(key) + 1]
    if entries and not descends(current, frozenset(entries[-1].split(",")), graph):
        return [key]  # an upgrade, or a move back to a point never seen: start over
    return [*entries, key][-HISTORY_LIMIT:]


def descends(heads: frozenset[str], earlier: frozenset[str], graph: Graph | None) -> bool:
    """Whether the scripts' graph shows `heads` at or past every head of `earlier`."""
    return graph is not None and earlier <= _below(heads, graph)


def _below(heads: Iterable[str], graph: Graph) -> set[str]:
    """Every revision at or below `heads` in `graph`."""
    seen: set[str] = set()
    todo = [h for h in heads if h in graph]
    while todo:
        revision = todo.pop()
        if revision not in seen:
            seen.add(revision)
            todo.extend(graph.get(revision, ()))
    return seen


def applied(revision: str, knowledge: Knowledge) -> Applied:
    current = knowledge.current
    if current is None:
        return Applied.UNKNOWN
    if revision in current:
        return Applied.YES
    if not current:
        return Applied.NO  # an empty version table: nothing is applied
    graph = knowledge.graph
    if graph is not None and revision in graph and any(h in graph for h in current):
        return Applied.YES if revision in _below(current, graph) else Applied.NO
    if any(revision in entry for entry in knowledge.history[:-1]):
        return Applied.YES
    if graph is not None and revision in graph:
        return Applied.NO  # in the scripts, but the database's heads are not: not reached
    return Applied.UNKNOWN


def _names(revisions: Iterable[str]) -> str:
    return ", ".join(sorted(revisions)) or "none"


def missing_revisions(needed: frozenset[str], knowledge: Knowledge) -> str | None:
    """None when every needed revision is applied; else what is missing and what to do."""
    answers = {r: applied(r, knowledge) for r in sorted(needed)}
    not_yet = [r for r, a in answers.items() if a is Applied.NO]
    unknown = [r for r, a in answers.items() if a is Applied.UNKNOWN]
    if not not_yet and not unknown:
        return None
    if knowledge.current is None:
        if not knowledge.revision_check:
            return (f"the pod needs revision {_names(needed)}, but migrations.revisionCheck is "
                    "false, so the version table is not read: turn the revision check on, or "
                    "remove the pod's schemagate.io/revision annotation")
        return (f"the pod needs revision {_names(needed)}; the database's version table "
                "could not be read")
    at = f"the database is at {_names(knowledge.current)}"
    if not_yet:
        where = f" in the scripts of {knowledge.graph_source}" if knowledge.graph else ""
        return (f"revision {_names(not_yet)} is not applied yet: {at}, behind it{where}; "
                "the pod opens once the migration has run")
    seen = "; ".join(_names(e) for e in knowledge.history) or "none"
    return (f"revision {_names(unknown)} is not applied: {at}. If its migration is still to "
            "run, the pod opens once it has. If the pod's code is older than the database, "
            f"schemagate cannot tell (it saw the database at: {seen}): set the pod's "
            "schemagate.io/revision to a revision the database has passed, or use "
            "migrations.run: Alembic so the scripts order them")
