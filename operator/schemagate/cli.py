"""The `schemagate` command: `verify`, `snapshot`, `run`, `migrate`, `plan` and `crd`.
`run`, `migrate` and `plan` import Kopf or the Alembic runner inside their handlers, so no
other loads them.

Each subcommand registers its parser in `build_parser` and sets `handler` to a
function taking the parsed arguments and returning the exit status.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import socket
import sys
import tempfile
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from schemagate.core.check import snapshot as snapshot_
from schemagate.core.check.columns import describe_mismatch
from schemagate.core.check.requirement import column_requirements
from schemagate.core.check.verdict import Requirement, Verdict, names
from schemagate.core.leader import LeaseSettings, LeaseTiming
from schemagate.core.migration.alembic_job import EXIT_RETRY
from schemagate.core.tenancy import allowed_hosts
from schemagate.core.tenancy.scrub import Scrubber, escape_controls
from schemagate.core.verify_pod.termination import termination_message
from schemagate.core.wire.reasons import CONNECTION_FAILURES, SCHEMA_NOT_AS_DECLARED, Reason
from schemagate.postgres import catalog, connect, snapshot
from schemagate.settings import Settings

EXIT_VERIFIED = 0
EXIT_NOT_AS_DECLARED = 1
EXIT_USAGE = 2
EXIT_UNREACHABLE = 3

#: `schemagate verify` has no option for it; the resource's default.
CONNECT_TIMEOUT = 5.0
#: A DatabaseSchema's bound on `spec.tables`; a snapshot beyond it could not be pasted.
MAX_TABLES = 10_000
#: Places listed in the human output; `--json` carries them all.
FOUND_SHOWN = 20


class UsageError(Exception):
    """Bad input from the user: exit status 2, the message on standard error."""


def exit_code(reason: Reason) -> int:
    """The exit status for a verdict's reason: 0 verified, 1 not as declared, 3 the
    database unreachable or the credentials refused."""
    if reason is Reason.VERIFIED:
        return EXIT_VERIFIED
    if reason in SCHEMA_NOT_AS_DECLARED:
        return EXIT_NOT_AS_DECLARED
    if reason in CONNECTION_FAILURES:
        return EXIT_UNREACHABLE
    return EXIT_USAGE


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="schemagate",
        description="Hold a backend's pods NotReady until its database schema is really there.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_verify(commands)
    _add_snapshot(commands)
    _add_run(commands)
    _add_migrate(commands)
    _add_plan(commands)
    _add_crd(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    status: int = args.handler(args)
    return status


# schemagate verify

def _add_verify(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    verify = commands.add_parser(
        "verify", help="check the declared tables and Alembic revision in the database",
        description="Check, through the backend's own database URL, that the declared tables "
                    "are in the schema and the Alembic version table records the expected "
                    "revision. Exit status: 0 verified; 1 the schema is not as declared; "
                    "2 bad usage or input; 3 database unreachable or credentials refused.")
    _add_target(verify, required=False)
    verify.add_argument("--columns-file", metavar="F", type=Path,
                        help="columns the tables must have, as `schemagate snapshot` prints "
                             "them (YAML or JSON); its tables count as declared; - reads "
                             "standard input")
    verify.add_argument("--expected-revision", metavar="R", action="append", default=[],
                        help="a revision the version table must record; repeat for several "
                             "heads (compared as a set)")
    verify.add_argument("--version-table", metavar="NAME", default="alembic_version",
                        help="Alembic's version table (default alembic_version)")
    verify.add_argument("--version-table-schema", metavar="S",
                        help="schema of the version table (default: --schema)")
    verify.add_argument("--skip-revision", action="store_true",
                        help="only the tables count; the version table is not read")
    verify.add_argument("--connect-timeout", metavar="S", type=_seconds, default=CONNECT_TIMEOUT,
                        help="how long the connection may take, in seconds (default 5); "
                             "longer is exit status 3")
    verify.add_argument("--json", action="store_true", help="print one JSON object")
    verify.add_argument("--termination-message-path", metavar="FILE", type=Path,
                        help="also write the verdict to FILE as one JSON object of at most "
                             "4 KiB (counts and the first names), as Kubernetes keeps a "
                             "container's termination message; the verify pods of "
                             "verifyFrom: Pod use /dev/termination-log")
    verify.set_defaults(handler=run_verify)


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not 0 < value <= 600:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds in (0, 600]")
    return value


def _add_target(parser: argparse.ArgumentParser, *, required: bool) -> None:
    """The URL, schema and tables options `verify` and `snapshot` share."""
    parser.add_argument("--url-env", metavar="VAR", default="DATABASE_URL",
                        help="environment variable holding the database URL (default "
                             "DATABASE_URL); the URL is never taken from the command line")
    parser.add_argument("--schema", metavar="S", default="public",
                        help="schema the tables must be in (default public)")
    tables = parser.add_mutually_exclusive_group(required=required)
    tables.add_argument("--table", metavar="T", action="append", dest="tables",
                        help="a declared table; repeat for each")
    tables.add_argument("--tables-file", metavar="F", type=Path,
                        help="file of declared tables, one per line; blank lines and lines "
                             "starting with # are ignored; - reads standard input")


def run_verify(args: argparse.Namespace) -> int:
    # What verify prints may be read back by the operator (a verify pod's output): it
    # passes the scrubber, which knows the URL it was given.
    scrubber = Scrubber()
    try:
        url = _url_from_environment(args.url_env)
        scrubber.learn(url)
        requirement = _requirement(args)
        verdict = catalog.verify(url, requirement, connect_timeout=args.connect_timeout)
    except UsageError as exc:
        return _usage_error(scrubber.message(str(exc)), as_json=args.json,
                            termination=args.termination_message_path)
    except connect.InvalidDatabaseUrl as exc:
        return _usage_error(scrubber.message(f"the URL in {args.url_env} cannot be used: {exc}"),
                            as_json=args.json, termination=args.termination_message_path)
    # The message is the free text; the rest of the verdict (names, revisions, counts) is
    # printed as it is, with control characters escaped in the text form.
    verdict = dataclasses.replace(verdict, message=scrubber.message(verdict.message))
    if args.termination_message_path is not None:
        _write_termination_message(args.termination_message_path, verdict)
    if args.json:
        print(json.dumps(verdict.to_json(), indent=2))
    else:
        print_verdict(verdict, sys.stdout)
    return exit_code(verdict.reason)


def _url_from_environment(variable: str) -> str:
    url = os.environ.get(variable, "").strip()
    if not url:
        raise UsageError(f"{variable} is not set: put the backend's database URL in the "
                         "environment (the URL is never read from the command line)")
    return url


def _requirement(args: argparse.Namespace) -> Requirement:
    if args.tables is None and args.tables_file is None and args.columns_file is None:
        raise UsageError("declare tables: --table T ..., --tables-file F or --columns-file F")
    tables = _tables(args) if args.tables is not None or args.tables_file is not None else []
    declared = None if args.columns_file is None else read_columns_file(args.columns_file)
    if declared is not None:
        tables = [*tables, *declared.tables]
        if not tables and not declared.columns:
            raise UsageError(f"no tables declared in {args.columns_file}")
    try:
        return Requirement(
            schema=args.schema,
            tables=tuple(tables),
            revision_check=not args.skip_revision,
            version_table=args.version_table,
            version_table_schema=args.version_table_schema,
            expected_revisions=frozenset(args.expected_revision) or None,
            columns=column_requirements(declared.columns) if declared else (),
        )
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def _tables(args: argparse.Namespace) -> list[str]:
    tables: list[str] = args.tables if args.tables is not None else \
        read_tables_file(args.tables_file)
    if not tables:
        raise UsageError(f"no tables declared in {args.tables_file}")
    return tables


def _read_text(path: Path) -> str:
    try:
        return sys.stdin.read() if str(path) == "-" else path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read {path}: {exc}") from None


def read_columns_file(path: Path) -> snapshot_.SchemaFragment:
    """What `schemagate snapshot` printed: `tables` and `columns`, YAML or JSON."""
    try:
        return snapshot_.parse(_read_text(path))
    except snapshot_.InvalidFragment as exc:
        raise UsageError(f"{path} is not what `schemagate snapshot` prints: {exc}") from None


def read_tables_file(path: Path) -> list[str]:
    """Declared tables from `path` (`-` for standard input): one per line, surrounding
    blanks stripped, blank lines and `#` comment lines ignored."""
    lines = (line.strip() for line in _read_text(path).splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def _usage_error(message: str, *, as_json: bool, command: str = "verify",
                 termination: Path | None = None) -> int:
    print(f"schemagate {command}: error: {message}", file=sys.stderr)
    verdict = Verdict(verified=False, reason=Reason.INVALID_SPEC, message=message)
    if as_json:
        print(json.dumps(verdict.to_json(), indent=2))
    if termination is not None:
        _write_termination_message(termination, verdict)
    return EXIT_USAGE


def _write_termination_message(path: Path, verdict: Verdict) -> None:
    try:
        path.write_text(termination_message(verdict), encoding="utf-8")
    except OSError as exc:
        print(f"schemagate verify: cannot write {path}: {exc}", file=sys.stderr)


def print_verdict(verdict: Verdict, out: TextIO) -> None:
    """The human form: the reason and message first, then what was seen."""
    head = "verified" if verdict.verified else "NOT verified"
    out.write(f"{head} ({verdict.reason.value}): {escape_controls(verdict.message)}\n")
    rows: list[tuple[str, str]] = []
    fp = verdict.fingerprint
    if fp is not None:
        server = f"{fp.where} as {fp.user}, PostgreSQL {fp.server_version}"
        if fp.system_identifier:
            server += f", system identifier {fp.system_identifier}"
        rows.append(("reached", server))
        path = fp.search_path
        if fp.effective_search_path:
            path += f" (resolves to {', '.join(fp.effective_search_path)})"
        rows.append(("search_path", path))
    if verdict.current_revisions is not None or verdict.expected_revisions is not None:
        current = _revision_list(verdict.current_revisions, absent="no version table")
        expected = _revision_list(verdict.expected_revisions, absent="any")
        rows.append(("revision", f"{current} (expected: {expected})"))
    if verdict.missing_tables:
        rows.append(("missing", names(verdict.missing_tables)))
    for mismatch in verdict.column_mismatches[:FOUND_SHOWN]:
        rows.append(("column", describe_mismatch(mismatch)))
    if len(verdict.column_mismatches) > FOUND_SHOWN:
        rows.append(("column", f"... and {len(verdict.column_mismatches) - FOUND_SHOWN:,} "
                               "more (--json lists them all)"))
    shown = verdict.found_elsewhere[:FOUND_SHOWN]
    for place in shown:
        rows.append(("found", f"{place.table} in schema {place.schema} of database "
                              f"{place.database}"))
    if len(verdict.found_elsewhere) > len(shown):
        rows.append(("found", f"... and {len(verdict.found_elsewhere) - len(shown):,} more "
                              "(--json lists them all)"))
    rows.append(("took", f"{verdict.duration_ms:.1f} ms"))
    for label, value in rows:
        out.write(f"  {label:<12}{escape_controls(value)}\n")


# schemagate snapshot

def _add_snapshot(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    snapshot = commands.add_parser(
        "snapshot", help="print the columns of tables as a DatabaseSchema fragment",
        description="Read the columns of the named tables from a database known to be good "
                    "(a scratch database right after the migrations ran) and print spec.tables "
                    "and spec.columns to paste into a DatabaseSchema, or to check with "
                    "`schemagate verify --columns-file`. Exit status: 0 printed; 1 a table is "
                    "missing (nothing printed); 2 bad usage or input; 3 database unreachable "
                    "or credentials refused.")
    _add_target(snapshot, required=True)
    snapshot.add_argument("--format", choices=("yaml", "json"), default="yaml",
                          help="output format (default yaml)")
    snapshot.set_defaults(handler=run_snapshot)


def run_snapshot(args: argparse.Namespace) -> int:
    try:
        url = _url_from_environment(args.url_env)
        tables = _tables(args)
        if any(not table for table in tables) or not args.schema:
            raise UsageError("a table or schema name is empty")
        if len(set(tables)) > MAX_TABLES:
            raise UsageError(f"{len(set(tables)):,} tables: a DatabaseSchema declares at most "
                             f"{MAX_TABLES:,}")
        taken = snapshot.snapshot(url, args.schema, tables, connect_timeout=CONNECT_TIMEOUT)
    except UsageError as exc:
        return _usage_error(str(exc), as_json=False, command="snapshot")
    except connect.InvalidDatabaseUrl as exc:
        return _usage_error(f"the URL in {args.url_env} cannot be used: {exc}", as_json=False,
                            command="snapshot")
    except connect.ConnectionFailed as exc:
        print(f"schemagate snapshot: {exc.reason.value}: {exc.message}", file=sys.stderr)
        return EXIT_UNREACHABLE
    if taken.missing_tables:
        print(f"schemagate snapshot: {taken.missing_message()}; nothing printed",
              file=sys.stderr)
        return EXIT_NOT_AS_DECLARED
    sys.stdout.write(snapshot_.render(taken, args.format))
    return EXIT_VERIFIED


def _revision_list(revisions: frozenset[str] | None, *, absent: str) -> str:
    if revisions is None:
        return absent
    return ", ".join(sorted(revisions)) or "none recorded"



# schemagate run

def _add_run(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    run = commands.add_parser(
        "run", help="run the operator",
        description="Watch DatabaseSchema resources, verify them through the backends' own "
                    "Secrets, and drive the readiness gates of their pods.")
    scope = run.add_mutually_exclusive_group(required=True)
    scope.add_argument("--namespace", "-n", action="append", dest="namespaces", metavar="NS",
                       help="watch this namespace (repeatable)")
    scope.add_argument("--all-namespaces", "-A", action="store_true",
                       help="watch every namespace")
    run.add_argument("--metrics-port", type=int, default=8080, metavar="P",
                     help="serve Prometheus /metrics on this port (0: off; default 8080)")
    run.add_argument("--liveness-port", type=int, default=8081, metavar="P",
                     help="serve Kopf's liveness probe at /healthz (0: off; default 8081)")
    run.add_argument("--kubeconfig", metavar="FILE",
                     help="kubeconfig to use outside a cluster (default: in-cluster, then "
                          "KUBECONFIG)")
    run.add_argument("--verbose", "-v", action="store_true", help="log at DEBUG")
    run.add_argument("--log-format", choices=("text", "json"), default="text",
                     help="text (default), or json: one object a line with `severity` "
                          "and the object's reference, as Cloud Logging reads it")
    run.add_argument("--verify-image", metavar="IMAGE",
                     help="the operator's own image, for the pods it runs: the migration "
                          "Job of run: Alembic and the verify pods of verifyFrom: Pod (the "
                          "chart passes its own image)")
    run.add_argument("--watch-secrets", action=argparse.BooleanOptionalAction, default=True,
                     help="watch Secrets to re-check a schema as soon as its Secret changes "
                          "(needs list and watch on Secrets; default on). --no-watch-secrets "
                          "reads only the Secrets the schemas name, at every check (get only)")
    run.add_argument("--allowed-hosts-file", metavar="FILE", type=Path,
                     help="YAML mapping each namespace (or * for the others) to the "
                          "database hosts its URLs may name: host names, *.suffix, IP "
                          "networks; a URL naming another host is its schema's InvalidSpec, "
                          "with no connection attempted (default: any host)")
    _add_author_rights(run)
    _add_leader_election(run)
    run.set_defaults(handler=run_operator)


def _add_author_rights(run: argparse.ArgumentParser) -> None:
    rights = run.add_mutually_exclusive_group()
    rights.add_argument("--author-rights-binding", metavar="NAME",
                        default="schemagate-author-rights",
                        help="the ValidatingAdmissionPolicyBinding that refuses a "
                             "DatabaseSchema whose author lacks the rights it lends (the chart "
                             "passes its own); run: Job, run: Alembic and verifyFrom: Pod are "
                             "refused while it is missing")
    rights.add_argument("--no-author-rights", action="store_true",
                        help="the cluster has no such policy (the chart's "
                             "authorRights.enabled=false): run those modes for whoever may "
                             "write a DatabaseSchema")


def _add_leader_election(run: argparse.ArgumentParser) -> None:
    timing = LeaseTiming()
    group = run.add_argument_group(
        "leader election", "With more than one replica, only the holder of a "
        "coordination.k8s.io Lease acts; a leader that cannot renew it exits.")
    group.add_argument("--leader-election", action="store_true",
                       help="act only while holding the Lease")
    group.add_argument("--leader-election-namespace", metavar="NS",
                       help="namespace of the Lease (required with --leader-election)")
    group.add_argument("--leader-election-id", metavar="NAME", default="schemagate-leader",
                       help="name of the Lease (default schemagate-leader)")
    group.add_argument("--lease-duration", type=float, metavar="S", default=timing.duration,
                       help="a Lease not renewed for this long is taken over "
                            f"(default {timing.duration:g})")
    group.add_argument("--renew-deadline", type=float, metavar="S",
                       default=timing.renew_deadline,
                       help="the leader exits when it could not renew for this long "
                            f"(default {timing.renew_deadline:g})")
    group.add_argument("--retry-period", type=float, metavar="S", default=timing.retry_period,
                       help="how often the leader renews and a standby looks "
                            f"(default {timing.retry_period:g})")


def _lease(args: argparse.Namespace) -> LeaseSettings | None:
    if not args.leader_election:
        return None
    if not args.leader_election_namespace:
        raise ValueError("--leader-election needs --leader-election-namespace")
    timing = LeaseTiming(duration=args.lease_duration, renew_deadline=args.renew_deadline,
                         retry_period=args.retry_period)
    # The pod's name, and a suffix of its own: a restarted container is another holder.
    identity = f"{socket.gethostname()}_{uuid.uuid4().hex[:8]}"
    return LeaseSettings(namespace=args.leader_election_namespace,
                         name=args.leader_election_id, identity=identity, timing=timing)


def _allowed_hosts(path: Path | None) -> allowed_hosts.AllowedHosts:
    if path is None:
        return allowed_hosts.AllowedHosts()
    try:
        with path.open(encoding="utf-8") as file:  # no more than the loader would accept
            text = file.read(allowed_hosts.LARGEST_FILE + 1)
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"cannot read --allowed-hosts-file {path}: {exc}") from None
    return allowed_hosts.load(text, str(path))


def run_operator(args: argparse.Namespace) -> int:
    try:
        lease = _lease(args)
        allowed = _allowed_hosts(args.allowed_hosts_file)
    except ValueError as exc:
        print(f"schemagate run: error: {exc}", file=sys.stderr)
        return 2
    settings = Settings(
        namespaces=tuple(args.namespaces or ()),
        all_namespaces=bool(args.all_namespaces),
        metrics_port=args.metrics_port or None,
        liveness_port=args.liveness_port or None,
        kubeconfig=args.kubeconfig,
        verbose=args.verbose,
        log_format=args.log_format,
        watch_secrets=args.watch_secrets,
        verify_image=args.verify_image or None,
        lease=lease,
        allowed_hosts=allowed,
        author_rights_binding=None if args.no_author_rights else args.author_rights_binding,
    )
    from schemagate import handlers  # imports Kopf, which only `run` needs

    handlers.run(settings)
    return 0


# schemagate migrate

def _add_migrate(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    migrate = commands.add_parser(
        "migrate", help="run Alembic revision files (what a run: Alembic Job runs)",
        description="Apply the Alembic revision files of a directory (upgrade heads, one "
                    "transaction, under the database's migration lock) to the database "
                    "whose URL is in the environment. The report, one JSON object, goes to "
                    "--report-file and standard output. Exit status: 0 applied or nothing "
                    f"to apply; 1 failed; 2 bad usage; {EXIT_RETRY} a later attempt may "
                    "pass (lock busy, lock_timeout, deadlock, database unreachable).")
    migrate.add_argument("--scripts-dir", type=Path, required=True, metavar="DIR",
                         help="the revision files, one per file (a mounted ConfigMap)")
    migrate.add_argument("--scratch-dir", type=Path, default=Path(tempfile.gettempdir()),
                         metavar="DIR", help="a writable directory for Alembic's layout")
    migrate.add_argument("--url-env", default="DATABASE_URL", metavar="VAR",
                         help="environment variable holding the database URL (default "
                              "DATABASE_URL); never taken from the command line")
    migrate.add_argument("--schema", default="public", metavar="S",
                         help="the search_path of the run (default public)")
    migrate.add_argument("--version-table", default="alembic_version", metavar="NAME")
    migrate.add_argument("--version-table-schema", metavar="S",
                         help="default: --schema")
    migrate.add_argument("--connect-timeout", type=float, default=5, metavar="S")
    migrate.add_argument("--lock-wait-seconds", type=float, default=10, metavar="S",
                         help="how long to wait for the migration lock (default 10)")
    migrate.add_argument("--lock-timeout", default="5s", metavar="T",
                         help="PostgreSQL lock_timeout of the run (default 5s)")
    migrate.add_argument("--statement-timeout", default="15min", metavar="T",
                         help="PostgreSQL statement_timeout of the run (default 15min)")
    migrate.add_argument("--report-file", type=Path, default=Path("/dev/termination-log"),
                         metavar="F", help="where the report goes besides standard output "
                                           "(default /dev/termination-log)")
    migrate.set_defaults(handler=run_migrate)


def run_migrate(args: argparse.Namespace) -> int:
    from schemagate.job import command  # SQLAlchemy and Alembic: only this needs them

    return command.run(args)


# schemagate plan

def _add_plan(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    plan = commands.add_parser(
        "plan", help="render the pending Alembic revisions offline and check them",
        description="Render the SQL of every revision that would run (offline, "
                    "current:heads), print it, and report what it would do: squawk's lint "
                    "(locks, rewrites, breaking changes), changes to what the serving "
                    "version declares (--serving), and revisions that cannot be planned "
                    "offline. Exit status: 0 clean; 1 a blocking finding; 2 bad usage or "
                    "input; 3 database unreachable or credentials refused.")
    plan.add_argument("scripts", type=Path, metavar="SCRIPTS",
                      help="the Alembic scripts: an alembic.ini, a script folder (with "
                           "versions/), or a folder of revision files")
    start = plan.add_mutually_exclusive_group(required=True)
    start.add_argument("--from", dest="start", action="append", metavar="REV",
                       help="start after this revision (base: from nothing); repeat for "
                            "several heads")
    start.add_argument("--url-env", metavar="VAR",
                       help="start where the database is: the environment variable holding "
                            "its URL (never argv); its version table is read as verify "
                            "reads it")
    plan.add_argument("--serving", type=Path, metavar="FILE",
                      help="what the serving version declares: `schemagate snapshot` output "
                           "or a DatabaseSchema manifest")
    plan.add_argument("--schema", default="public", metavar="S",
                      help="the schema of the tables and of a snapshot's names (default "
                           "public)")
    plan.add_argument("--version-table", default="alembic_version", metavar="NAME")
    plan.add_argument("--version-table-schema", metavar="S", help="default: --schema")
    plan.add_argument("--connect-timeout", type=float, default=5, metavar="S")
    plan.add_argument("--lint", choices=("block", "warn", "off"), default="block",
                      help="squawk's findings block (default), only warn, or squawk is not "
                           "run")
    plan.add_argument("--lint-exclude", action="append", default=[], metavar="RULE",
                      help="a squawk rule to leave out, besides the style and timeout rules "
                           "left out by default; repeat for each")
    plan.add_argument("--lint-timeout", type=float, default=60, metavar="S",
                      help="how long squawk may take (default 60)")
    plan.add_argument("--render-timeout", type=float, default=300, metavar="S",
                      help="how long importing and rendering the revisions may take "
                           "(default 300)")
    plan.add_argument("--format", choices=("text", "json", "markdown"), default="text",
                      help="text (default), json, or markdown for a pull-request comment")
    plan.set_defaults(handler=run_plan)


def run_plan(args: argparse.Namespace) -> int:
    from schemagate.job import plan_command  # Alembic, sqlglot, revision files: only this

    return plan_command.run(args)


# schemagate crd

def _add_crd(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    crd = commands.add_parser("crd", help="print the CustomResourceDefinition YAML")
    crd.set_defaults(handler=print_crd)


def print_crd(args: argparse.Namespace) -> int:
    from schemagate import crd

    sys.stdout.write(crd.render())
    return 0


if __name__ == "__main__":
    sys.exit(main())
