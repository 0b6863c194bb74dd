"""`plan`: the revision files rendered offline from a start, the SQL read and linted,
and the findings. What `schemagate plan` prints; it takes plain values, so that the
`run: Alembic` Job can plan with the same code before it applies. Rendering runs the
revision files (in a child process, `render`), so it is never loaded by the operator.
"""

from __future__ import annotations

from dataclasses import dataclass

from schemagate.core.plan import findings as plan_
from schemagate.core.plan import serving
from schemagate.core.plan import sql as plan_sql
from schemagate.core.plan.findings import LintLevel, Plan
from schemagate.job import render, squawk


class Unusable(Exception):
    """Input the plan cannot be made from (`schemagate plan` exits with 2)."""


@dataclass(frozen=True)
class Settings:
    version_table: str = "alembic_version"
    version_table_schema: str | None = None
    lint: LintLevel = LintLevel.BLOCK
    lint_exclude: tuple[str, ...] = ()
    lint_timeout: float = squawk.TIMEOUT
    render_timeout: float = render.RENDER_TIMEOUT


def plan(files: dict[str, str], start: tuple[str, ...],
         declared: serving.ServingVersion | None, settings: Settings) -> Plan:
    """The plan of the revision files `files` (name to text) from `start` (empty or
    `base`: from nothing), checked against `declared` when given. Raises `Unusable`."""
    try:
        rendered = render.render(
            files, tuple(r for r in start if r != "base"),
            version_table=settings.version_table,
            version_table_schema=settings.version_table_schema,
            timeout=settings.render_timeout)
        statements = plan_sql.statements(rendered.sql)
        issues = [] if settings.lint is LintLevel.OFF else squawk.lint(
            rendered.sql, exclude=[*plan_.QUIET_RULES, *settings.lint_exclude],
            timeout=settings.lint_timeout)
    except (render.UnusableScripts, render.TooMuchSql, render.RenderTimeout,
            plan_sql.TooManyStatements, squawk.LintFailed) as exc:
        raise Unusable(str(exc)) from None
    revision_at = plan_.RevisionAt(rendered.revisions)
    findings = plan_.unlintable_findings(rendered.revisions)
    if declared is not None:
        findings += plan_.serving_findings(statements, declared, revision_at)
    findings += plan_.lint_findings(issues, rendered.sql, statements, revision_at,
                                    version_table=settings.version_table, level=settings.lint)
    findings += plan_.unchecked_findings(statements, revision_at)
    kept, found = plan_.bounded(findings)
    return Plan(sql=rendered.sql, revisions=rendered.revisions, start=rendered.start,
                heads=rendered.heads, findings=kept, found=found,
                serving_checked=declared is not None, lint=settings.lint)
