"""The operator's subcommands of `schemagate`: `run`, `migrate`, `plan` and `crd`."""

from __future__ import annotations

import argparse
import socket
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

from schemagate.core import allowed_hosts
from schemagate.core.alembic_job import EXIT_RETRY
from schemagate.core.leader import LeaseSettings, LeaseTiming
from schemagate.settings import Settings

Subparsers = Any  # argparse._SubParsersAction, private in typeshed's eyes


def add_run(commands: Subparsers) -> None:
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
    run.add_argument("--economy", action=argparse.BooleanOptionalAction, default=True,
                     help="the savings at scale (default on): pods from the pod watch's "
                          "index, pod conditions and status written only on change, one "
                          "connection per database per pass. --no-economy checks each "
                          "schema on its own, as before (for make bench-scale)")
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
        economy=args.economy,
        lease=lease,
        allowed_hosts=allowed,
        author_rights_binding=None if args.no_author_rights else args.author_rights_binding,
    )
    from schemagate import handlers  # imports Kopf, which only `run` needs

    handlers.run(settings)
    return 0


def add_migrate(commands: Subparsers) -> None:
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
    from schemagate import migrate_command  # SQLAlchemy and Alembic: only this needs them

    return migrate_command.run(args)


def add_plan(commands: Subparsers) -> None:
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
    from schemagate import plan_command  # Alembic, sqlglot and revision files: only this

    return plan_command.run(args)


def add_crd(commands: Subparsers) -> None:
    crd = commands.add_parser("crd", help="print the CustomResourceDefinition YAML")
    crd.set_defaults(handler=print_crd)


def print_crd(args: argparse.Namespace) -> int:
    from schemagate import crd

    sys.stdout.write(crd.render())
    return 0
