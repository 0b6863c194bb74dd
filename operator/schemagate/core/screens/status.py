"""`kubectl schemagate status`: one screen per DatabaseSchema, from what the operator
wrote (its status, its pods' gate conditions, its Events) and the migration Job."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from schemagate.core.screens.facts import (
    JSON,
    PODS_SHOWN,
    EventLine,
    PodGate,
    condition,
    gated_pods,
    newest_events,
)
from schemagate.core.screens.paint import Paint, age, bounded, clean
from schemagate.core.wire.models import MISMATCHES_IN_STATUS, MISSING_IN_STATUS, PLACES_IN_STATUS

#: Names listed in a line of text; `-o json` carries every one the status holds, up to
#: the bounds the operator writes it with (a status may have been written by others).
NAMES_SHOWN = 10
#: Revisions read from the status, current or expected.
REVISIONS_SHOWN = 64
#: What `status.database` says of the database reached; nothing else is read from it.
DATABASE_FIELDS = ("host", "port", "database", "user", "searchPath", "serverVersion",
                   "systemIdentifier", "verifiedFrom", "verifyPod")


@dataclass(frozen=True)
class JobState:
    """The last migration Job, as the status records it and the Job itself shows it."""

    name: str
    outcome: str | None
    started_at: str | None
    finished_at: str | None
    message: str
    #: From the Job object: Running, Succeeded, Failed; Gone once deleted; None unread.
    now: str | None


@dataclass(frozen=True)
class SchemaScreen:
    namespace: str
    name: str
    ready: bool | None
    reason: str
    message: str
    stalled: bool
    #: The spec changed since the operator last looked (observedGeneration behind).
    stale: bool
    last_verified: str | None
    database: Mapping[str, Any]
    revision_current: list[str]
    revision_expected: list[str]
    revision_summary: str
    tables_declared: list[str]
    tables_missing: list[str] | None
    found_elsewhere: list[Mapping[str, Any]]
    columns_declared: int
    column_mismatches: list[Mapping[str, Any]]
    migration_run: str
    job: JobState | None
    gate: str
    pods: list[PodGate]
    pods_not_shown: int
    events: list[EventLine] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = bounded(asdict(self))
        return data


def _list(value: Any, shown: int) -> list[Any]:
    return list(value[:shown]) if isinstance(value, list) else []


def _tri(status: Any) -> bool | None:
    return {"True": True, "False": False}.get(str(status))


def job_now(job: JSON | None, read: bool) -> str | None:
    """Running, Succeeded or Failed from the Job's conditions; Gone when it was read and
    is not there any more (a TTL removed it); None when it could not be read."""
    if not read:
        return None
    if job is None:
        return "Gone"
    for c in (job.get("status") or {}).get("conditions") or []:
        if c.get("status") == "True" and c.get("type") in ("Complete", "SuccessCriteriaMet"):
            return "Succeeded"
        if c.get("status") == "True" and c.get("type") in ("Failed", "FailureTarget"):
            return "Failed"
    return "Running"


def screen(obj: JSON, pods: Sequence[JSON], events: Sequence[JSON],
           job: JSON | None = None, job_read: bool = False) -> SchemaScreen:
    """The screen of the DatabaseSchema `obj`; `pods` are its namespace's, `events` those
    about it, `job` the Job its status names (`job_read`: it was looked up)."""
    meta, spec, status = (obj.get(k) or {} for k in ("metadata", "spec", "status"))
    name = str(meta.get("name", ""))
    ready = condition(obj, "Ready")
    revision = status.get("revision") or {}
    run = status.get("migration") or {}
    gated = gated_pods(pods, name)
    return SchemaScreen(
        namespace=str(meta.get("namespace", "")), name=name,
        ready=_tri(ready.get("status")) if ready else None,
        reason=str(ready.get("reason") or "NotChecked"),
        message=str(ready.get("message") or "the operator has not checked it yet"),
        stalled=_tri(condition(obj, "Stalled").get("status")) is True,
        stale=status.get("observedGeneration") != meta.get("generation"),
        last_verified=status.get("lastVerifiedTime"),
        database={k: v for k, v in (status.get("database") or {}).items()
                  if k in DATABASE_FIELDS},
        revision_current=_list(revision.get("current"), REVISIONS_SHOWN),
        revision_expected=_list(revision.get("expected"), REVISIONS_SHOWN),
        revision_summary=str(status.get("revisionSummary") or "not read yet"),
        tables_declared=[str(t) for t in spec.get("tables") or []],
        tables_missing=None if status.get("missingTables") is None else
        _list(status.get("missingTables"), MISSING_IN_STATUS),
        found_elsewhere=_list(status.get("foundElsewhere"), PLACES_IN_STATUS),
        columns_declared=sum(len(t.get("columns") or []) for t in spec.get("columns") or []),
        column_mismatches=_list(status.get("columnMismatches"), MISMATCHES_IN_STATUS),
        migration_run=str((spec.get("migrations") or {}).get("run") or "External"),
        job=None if not run.get("job") else JobState(
            name=str(run["job"]), outcome=run.get("outcome"), started_at=run.get("startedAt"),
            finished_at=run.get("finishedAt"), message=str(run.get("message") or ""),
            now=job_now(job, job_read)),
        gate=f"schemagate.io/{name}",
        pods=gated[:PODS_SHOWN], pods_not_shown=max(0, len(gated) - PODS_SHOWN),
        events=newest_events(events))


def names(items: Sequence[str], shown: int = NAMES_SHOWN) -> str:
    listed = ", ".join(clean(i, 200) for i in items[:shown])
    return listed + (f" and {len(items) - shown} more" if len(items) > shown else "")


def _line(p: Paint, label: str, text: str) -> str:
    return f"{p.bold(f'{label}:'.ljust(12))}{text}"


def render(s: SchemaScreen, p: Paint, now: datetime) -> str:
    """The screen as text; every string from the cluster passes `clean`."""
    lines = [f"{p.bold('DatabaseSchema')} {p.name(clean(s.name))}  "
             f"{p.dim('namespace ' + clean(s.namespace))}"]
    state = "Ready" if s.ready else ("Stalled" if s.stalled else "Not ready")
    lines.append(_line(p, "Status", f"{p.state(s.ready, state)}  {clean(s.reason)}"
                       + (p.warn("  (spec changed since the last check)") if s.stale else "")))
    lines.append(" " * 12 + clean(s.message))
    lines += _database(s, p, now)
    lines += _tables(s, p)
    lines += _migration(s, p, now)
    lines += _gate(s, p)
    if s.events:
        lines.append(p.bold("Events:"))
        lines += [f"  {age(e.last_seen, now).rjust(4)}  "
                  f"{(p.warn if e.type == 'Warning' else p.dim)(clean(e.type, 10).ljust(8))}"
                  f"{clean(e.reason, 60)}: {clean(_unprefixed(e), 300)}"
                  + (f" (x{e.count})" if e.count > 1 else "") for e in s.events]
    return "\n".join(lines) + "\n"


def _unprefixed(e: EventLine) -> str:
    """The operator's Events repeat their reason at the start of the message."""
    return e.message.removeprefix(f"{e.reason}: ")


def _database(s: SchemaScreen, p: Paint, now: datetime) -> list[str]:
    d = s.database
    if not d:
        return [_line(p, "Database", p.warn("not reached yet"))]
    host = clean(d.get("host"), 253)
    at = "the local socket" if not host else \
        f"{f'[{host}]' if ':' in host else host}:{clean(d.get('port') or 5432, 5)}"
    where = f"{clean(d.get('database'))} on {at} as {clean(d.get('user'))}"
    print_ = (f"fingerprint: PostgreSQL {clean(d.get('serverVersion') or '?', 100)}, system "
              f"identifier {clean(d.get('systemIdentifier') or 'not readable', 40)}, "
              f"search_path {clean(d.get('searchPath') or '?')}")
    by = "the operator" if d.get("verifiedFrom") != "Pod" else \
        f"verify pod {clean(d.get('verifyPod') or '')}".strip()
    when = f"checked {age(s.last_verified, now)} ago by {by}" if s.last_verified else \
        f"checked by {by}"
    return [_line(p, "Database", where), " " * 12 + print_, " " * 12 + p.dim(when)]


def _tables(s: SchemaScreen, p: Paint) -> list[str]:
    lines = [_line(p, "Revision", clean(s.revision_summary))]
    declared = f"{len(s.tables_declared)} declared"
    if s.tables_missing is None:
        lines.append(_line(p, "Tables", f"{declared}; {p.warn('not read yet')}"))
    elif s.tables_missing:
        lines.append(_line(p, "Tables", f"{declared}, {p.bad(f'{len(s.tables_missing)} missing')}"
                           f": {names(s.tables_missing)}"))
    else:
        lines.append(_line(p, "Tables", f"{declared}, {p.good('all present')}"))
    for place in s.found_elsewhere[:NAMES_SHOWN]:
        lines.append(" " * 12 + f"{clean(place.get('table'))} found in schema "
                     f"{clean(place.get('schema'))} of database {clean(place.get('database'))}")
    if s.columns_declared:
        if not s.column_mismatches:
            lines.append(_line(p, "Columns", f"{s.columns_declared} declared, "
                               + p.good("all as declared")))
        else:
            lines.append(_line(p, "Columns", f"{s.columns_declared} declared, "
                               + p.bad(f"{len(s.column_mismatches)} differ")))
            lines += [" " * 12 + _mismatch(m) for m in s.column_mismatches[:NAMES_SHOWN]]
    return lines


def _column(state: Mapping[str, Any] | None) -> str:
    if not state:
        return "missing"
    nullable = state.get("nullable")
    null = "" if nullable is None else (" NULL" if nullable else " NOT NULL")
    return f"{clean(state.get('type') or 'any type', 100)}{null}"


def _mismatch(m: Mapping[str, Any]) -> str:
    return (f"{clean(m.get('table'))}.{clean(m.get('column'))}: declared "
            f"{_column(m.get('expected'))}, found {_column(m.get('found'))}")


def _migration(s: SchemaScreen, p: Paint, now: datetime) -> list[str]:
    if s.job is None:
        text = "none run by the operator" if s.migration_run != "External" else \
            "run: External (applied by your own pipeline, judged by the database)"
        return [_line(p, "Migration", p.dim(text))]
    j = s.job
    ok = {"Applied": True, "AlreadyApplied": True, "Failed": False,
          "NoOp": False}.get(str(j.outcome))
    outcome = p.state(ok, clean(j.outcome or "running"))
    when = f"started {age(j.started_at, now)} ago" + (
        f", ended {age(j.finished_at, now)} ago" if j.finished_at else "")
    lines = [_line(p, "Migration", f"run: {clean(s.migration_run)}, Job {p.name(clean(j.name))}"
                   f" {outcome}, {when}")]
    if j.now is not None:
        lines.append(" " * 12 + p.dim(f"the Job now: {j.now}"))
    if j.message:
        lines.append(" " * 12 + clean(j.message))
    return lines


def _gate(s: SchemaScreen, p: Paint) -> list[str]:
    opened = sum(1 for g in s.pods if g.open)
    total = len(s.pods) + s.pods_not_shown
    lines = [_line(p, "Gate", f"{clean(s.gate)}: {opened} of {total} pods open")]
    width = max((len(clean(g.pod, 253)) for g in s.pods), default=0)
    for g in s.pods:
        lines.append(f"  {p.name(clean(g.pod, 253).ljust(width))}  {clean(g.phase, 20):<9}  "
                     f"{p.state(g.open, held_text(g))}")
        if not g.open and g.message and g.message not in s.message:  # said once above
            lines.append("      " + clean(g.message))
    if s.pods_not_shown:
        lines.append(f"  and {s.pods_not_shown} more pods (-o json lists the first "
                     f"{PODS_SHOWN})")
    return lines


def held_text(g: PodGate) -> str:
    """`open`, `held: TablesMissing`, `held before start: ...`, or why nothing is known."""
    if g.open:
        return "open"
    where = "held before start" if g.held_before_start else "held"
    if g.open is None:
        if not g.has_readiness_gate and not g.held_before_start:
            return "not gated: asks for this schema by label but carries no gate"
        return f"{where}: the operator has not written its gate yet"
    return f"{where}: {clean(g.reason, 60)}"
