"""A plan as `schemagate plan` prints it: text for people, JSON for tools, Markdown for a
pull-request comment (pure)."""

from __future__ import annotations

import json
import re
from typing import Any

from schemagate.core.plan.findings import Finding, Kind, Plan
from schemagate.core.tenancy.scrub import escape_controls

#: GitHub refuses a comment over 65,536 characters; the SQL is cut to stay under it.
MARKDOWN_LIMIT = 60_000
_TITLES = {Kind.SERVING: "breaks the serving version", Kind.LINT: "lint",
           Kind.UNLINTABLE: "unlintable", Kind.UNCHECKED: "unchecked"}


def summary(plan: Plan) -> str:
    if not plan.revisions:
        return f"nothing to run: already at {_names(plan.heads)}"
    blocking = plan.blocking
    counts = ", ".join(f"{sum(1 for f in plan.findings if f.kind is kind)} {_TITLES[kind]}"
                       for kind in Kind if any(f.kind is kind for f in plan.findings))
    head = f"{blocking} blocking finding{'s' if blocking != 1 else ''}" if blocking else "clean"
    more = f" (of {plan.found:,}, the first {len(plan.findings):,} shown)" \
        if plan.found > len(plan.findings) else ""
    return f"{head}{': ' + counts if counts else ''}{more}"


def text(plan: Plan) -> str:
    lines = [f"schemagate plan: {len(plan.revisions)} revision"
             f"{'s' if len(plan.revisions) != 1 else ''} from {_names(plan.start)} to "
             f"{_names(plan.heads)}, plan {plan.digest}"]
    lines += [f"  note: {note}" for note in _notes(plan)]
    for revision in plan.revisions:
        mark = f"  UNLINTABLE: {revision.unlintable}" if revision.unlintable else ""
        lines.append(f"revision {revision.revision} ({revision.file}){mark}")
        for finding in plan.findings:
            if finding.revision == revision.revision:
                lines += _finding_lines(finding)
    lines += ["", "-- the SQL that would run", plan.sql.rstrip(), "",
              f"result: {summary(plan)}"]
    return "\n".join(escape_controls(line, keep_newlines=True) for line in lines) + "\n"


def _finding_lines(finding: Finding) -> list[str]:
    level = "BLOCKING" if finding.blocking else "warning"
    rule = f" {finding.rule}" if finding.rule else ""
    lines = [f"  {level} {finding.kind.value}{rule}: {finding.message}"]
    if finding.statement:
        lines += [f"      {line}" for line in finding.statement.splitlines()]
    return lines


def to_json(plan: Plan) -> str:
    document: dict[str, Any] = {
        "plan": plan.digest,
        "from": list(plan.start),
        "to": list(plan.heads),
        "blocking": plan.blocking,
        "summary": summary(plan),
        "servingChecked": plan.serving_checked,
        "lint": plan.lint.value,
        "findingCount": plan.found,
        "findings": [finding.to_json() for finding in plan.findings],
        "revisions": [revision.to_json(plan.sql) for revision in plan.revisions],
        "sql": plan.sql,
    }
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def markdown(plan: Plan) -> str:
    icon = ":no_entry:" if plan.blocking else ":white_check_mark:"
    lines = [f"### {icon} schemagate plan: {_cell(summary(plan))}", "",
             f"{len(plan.revisions)} revision{'s' if len(plan.revisions) != 1 else ''} from "
             f"{_code(_names(plan.start))} to {_code(_names(plan.heads))}; plan "
             f"{_code(plan.digest)}"]
    lines += [f"> {_cell(note)}" for note in _notes(plan)]
    if plan.findings:
        lines += ["", "| | revision | finding | statement |", "| --- | --- | --- | --- |"]
        for f in plan.findings:
            rule = f"{_code(f.rule)} " if f.rule else ""
            lines.append(f"| {'blocking' if f.blocking else 'warning'} | {_code(f.revision)} | "
                         f"{_TITLES[f.kind]}: {rule}{_cell(f.message)} | "
                         f"{_code(f.statement[:300]) if f.statement else ''} |")
    head = "\n".join(lines)
    room = MARKDOWN_LIMIT - len(head) - 200
    sql = escape_controls(plan.sql.rstrip(), keep_newlines=True)
    cut = f"\n-- ... {len(sql) - room:,} more characters: run schemagate plan to see them" \
        if len(sql) > room else ""
    fence = "`" * max(3, _longest_run(sql, "`") + 1)
    return (f"{head}\n\n<details><summary>The SQL that would run</summary>\n\n{fence}sql\n"
            f"{sql[:max(room, 0)]}{cut}\n{fence}\n\n</details>\n")


def _notes(plan: Plan) -> list[str]:
    notes = list(plan.notes)
    if not plan.serving_checked:
        notes.append("the serving version was not checked (no --serving)")
    if plan.lint.value == "off":
        notes.append("lint is off")
    return notes


def _names(revisions: tuple[str, ...]) -> str:
    return ", ".join(revisions) if revisions else "base"


def _cell(text: str) -> str:
    """One line of a Markdown table cell: no pipe, no newline, no HTML."""
    flat = " ".join(escape_controls(text).split())
    return flat.replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")


def _code(text: str) -> str:
    flat = " ".join(escape_controls(text).split()).replace("|", "\\|")
    ticks = "`" * (_longest_run(flat, "`") + 1)
    return f"{ticks} {flat} {ticks}" if "`" in flat else f"`{flat}`"


def _longest_run(text: str, char: str) -> int:
    return max((len(run) for run in re.findall(f"{re.escape(char)}+", text)), default=0)
