"""`schemagate plan`: where the revision files are, where to start (`--from`, or the
database's version table read as `verify` reads it) and what the serving version
declares (`--serving`), handed to `plan.plan`; the plan printed as text, JSON or
Markdown. Like all of `schemagate.job`, never loaded by the operator.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from schemagate.core.check.verdict import Requirement
from schemagate.core.plan import report as plan_report
from schemagate.core.plan import serving
from schemagate.core.plan.findings import LintLevel, Plan
from schemagate.core.tenancy.scrub import Scrubber
from schemagate.job import render
from schemagate.job.plan import Settings, Unusable, plan
from schemagate.postgres import catalog
from schemagate.postgres.connect import ConnectionFailed, InvalidDatabaseUrl

EXIT_CLEAN = 0
EXIT_BLOCKING = 1
EXIT_USAGE = 2
EXIT_UNREACHABLE = 3
_FORMATS = {"text": plan_report.text, "json": plan_report.to_json,
            "markdown": plan_report.markdown}


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
    except ConnectionFailed as exc:
        print(f"schemagate plan: {exc.reason.value}: {scrubber.message(exc.message)}",
              file=sys.stderr)
        return EXIT_UNREACHABLE
    sys.stdout.write(_FORMATS[args.format](result))
    return EXIT_BLOCKING if result.blocking else EXIT_CLEAN


def make_plan(args: argparse.Namespace, scrubber: Scrubber) -> Plan:
    """The plan the options ask for. Raises `Unusable` or `ConnectionFailed`."""
    try:
        declared = _serving(args.serving, args.schema)
        files = render.read_revision_files(render.versions_folders(args.scripts))
    except render.UnusableScripts as exc:
        raise Unusable(str(exc)) from None
    start = tuple(args.start) if args.start is not None else _current(args, scrubber)
    settings = Settings(version_table=args.version_table,
                        version_table_schema=args.version_table_schema,
                        lint=LintLevel(args.lint), lint_exclude=tuple(args.lint_exclude),
                        lint_timeout=args.lint_timeout, render_timeout=args.render_timeout)
    return plan(files, start, declared, settings)


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
        seen = catalog.observe(url, requirement, connect_timeout=args.connect_timeout)
    except InvalidDatabaseUrl as exc:
        raise Unusable(f"the URL in {args.url_env} cannot be used: {exc}") from None
    if seen.version_table_refused:
        raise Unusable(seen.version_table_refused)
    return tuple(sorted(seen.current_revisions or ()))
