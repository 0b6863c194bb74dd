"""`schemagate plan`: the SQL the pending revisions would run, rendered offline, and what
it would do to the version still serving: squawk's lint, the changes to what the serving
version declares, the revisions that cannot be planned offline. It runs revision files:
like `migrate_command`, never loaded by the operator.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from schemagate import database, offline, squawk
from schemagate.core import plan as plan_
from schemagate.core import plan_report, plan_sql, serving
from schemagate.core.plan import LintLevel, Plan
from schemagate.core.scrub import Scrubber
from schemagate.core.verdict import Requirement

EXIT_CLEAN = 0
EXIT_BLOCKING = 1
EXIT_USAGE = 2
EXIT_UNREACHABLE = 3
_FORMATS = {"text": plan_report.text, "json": plan_report.to_json,
            "markdown": plan_report.markdown}


class Unusable(Exception):
    """Input the plan cannot be made from: exit status 2."""


def run(args: argparse.Namespace) -> int:
    # sqlglot says so on its logger each time it falls back to an opaque command; the plan
    # reports those statements itself.
    logging.getLogger("sqlglot").setLevel(logging.ERROR)
    scrubber = Scrubber()
    try:
        result = make_plan(args, scrubber)
    except Unusable as exc:
        print(f"schemagate plan: error: {scrubber.message(str(exc))}", file=sys.stderr)
        return EXIT_USAGE
    except database.ConnectionFailed as exc:
        print(f"schemagate plan: {exc.reason.value}: {scrubber.message(exc.message)}",
              file=sys.stderr)
        return EXIT_UNREACHABLE
    sys.stdout.write(_FORMATS[args.format](result))
    return EXIT_BLOCKING if result.blocking else EXIT_CLEAN


def make_plan(args: argparse.Namespace, scrubber: Scrubber) -> Plan:
    """The plan the options ask for. Raises `Unusable` or `database.ConnectionFailed`."""
    try:
        declared = _serving(args.serving, args.schema)
        files = offline.read_revision_files(offline.versions_folders(args.scripts))
    except offline.UnusableScripts as exc:
        raise Unusable(str(exc)) from None
    start = tuple(args.start) if args.start is not None else _current(args, scrubber)
    settings = Settings(version_table=args.version_table,
                        version_table_schema=args.version_table_schema,
                        lint=LintLevel(args.lint), lint_exclude=tuple(args.lint_exclude),
                        lint_timeout=args.lint_timeout, render_timeout=args.render_timeout)
    return plan(files, start, declared, settings)


@dataclass(frozen=True)
class Settings:
    version_table: str = "alembic_version"
    version_table_schema: str | None = None
    lint: LintLevel = LintLevel.BLOCK
    lint_exclude: tuple[str, ...] = ()
    lint_timeout: float = squawk.TIMEOUT
    render_timeout: float = offline.RENDER_TIMEOUT


def plan(files: dict[str, str], start: tuple[str, ...],
         declared: serving.ServingVersion | None, settings: Settings) -> Plan:
    """The plan of the revision files `files` (name to text) from `start` (empty or
    `base`: from nothing), checked against `declared` when given. Raises `Unusable`."""
    try:
        rendered = offline.render(
            files, tuple(r for r in start if r != "base"),
            version_table=settings.version_table,
            version_table_schema=settings.version_table_schema,
            timeout=settings.render_timeout)
        statements = plan_sql.statements(rendered.sql)
        issues = [] if settings.lint is LintLevel.OFF else squawk.lint(
            rendered.sql, exclude=[*plan_.QUIET_RULES, *settings.lint_exclude],
            timeout=settings.lint_timeout)
    except (offline.UnusableScripts, offline.TooMuchSql, offline.RenderTimeout,
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


def _serving(path: Path | None, schema: str) -> serving.ServingVersion | None:
    if path is None:
        return None
    try:
        with path.open(encoding="utf-8") as file:
            text = file.read(serving.MAX_BYTES + 1)
    except (OSError, UnicodeDecodeError) as exc:
        raise Unusable(f"cannot read --serving {path}: {exc}") from None
    try:
        return serving.parse(text, schema=schema)
    except serving.InvalidServing as exc:
        raise Unusable(f"--serving {path}: {exc}") from None


def _current(args: argparse.Namespace, scrubber: Scrubber) -> tuple[str, ...]:
    """The revisions the database's version table records, read as `verify` reads it."""
    url = os.environ.get(args.url_env, "").strip()
    if not url:
        raise Unusable(f"{args.url_env} is not set: put the database URL in the environment, "
                       "or say where to start with --from REV")
    scrubber.learn(url)
    requirement = Requirement(schema=args.schema, version_table=args.version_table,
                              version_table_schema=args.version_table_schema)
    try:
        seen = database.observe(url, requirement, connect_timeout=args.connect_timeout)
    except database.InvalidDatabaseUrl as exc:
        raise Unusable(f"the URL in {args.url_env} cannot be used: {exc}") from None
    if seen.version_table_refused:
        raise Unusable(seen.version_table_refused)
    return tuple(sorted(seen.current_revisions or ()))
