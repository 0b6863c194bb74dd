"""`kubectl schemagate`: the kubectl plugin (installed as `kubectl-schemagate`).

`status [NAME]`, `why pod/NAME` and `rerun NAME` read what the operator already writes
(the DatabaseSchema's status, the pods' gate conditions, Events, the migration Job) with
the person's own kubeconfig and rights; none of them reaches the database. The screens
are built and rendered by `schemagate.core.screens`; this module reads and prints.

Exit status: 0 done; 1 an error (the API refused or failed, no such object, a kubeconfig
that cannot be used); 2 bad usage; 3 shown, but a schema shown is not Ready (`status`)
or the pod is held (`why`).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, TextIO

from schemagate import kube
from schemagate.core.migration.job import RERUN_ANNOTATION
from schemagate.core.screens import status as status_screen
from schemagate.core.screens import why as why_screen
from schemagate.core.screens.facts import gated_by
from schemagate.core.screens.paint import Paint, clean

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_HELD = 3


class Failure(Exception):
    """Said on standard error, exit status 1."""


def build_parser() -> argparse.ArgumentParser:
    # The options kubectl users type anywhere on the line: on the plugin and on each
    # command, absent unless given so that a command's copy does not undo the other.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-n", "--namespace", default=argparse.SUPPRESS,
                        help="the namespace (default: the context's, else default)")
    common.add_argument("--context", default=argparse.SUPPRESS,
                        help="the kubeconfig context (default: the current one)")
    common.add_argument("--kubeconfig", default=argparse.SUPPRESS,
                        help="the kubeconfig file (default: KUBECONFIG, else ~/.kube/config)")
    common.add_argument("-o", "--output", choices=["text", "json"], default=argparse.SUPPRESS,
                        help="text (default) or json")
    common.add_argument("--color", choices=["auto", "always", "never"],
                        default=argparse.SUPPRESS,
                        help="auto (default): colour on a terminal unless NO_COLOR is set")
    parser = argparse.ArgumentParser(
        prog="kubectl schemagate", parents=[common],
        description="What schemagate holds, and why, from what the operator writes.",
        epilog="Exit status: 0 done; 1 error; 2 bad usage; 3 a schema shown is not Ready "
               "(status) or the pod is held (why).")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    status = commands.add_parser("status", parents=[common],
                                 help="one screen per DatabaseSchema (all of the namespace "
                                      "without NAME)")
    status.add_argument("name", nargs="?", metavar="NAME")
    status.set_defaults(handler=run_status)
    why = commands.add_parser("why", parents=[common],
                              help="which DatabaseSchema holds a pod, for what, what next")
    why.add_argument("pod", metavar="pod/NAME")
    why.set_defaults(handler=run_why)
    rerun = commands.add_parser("rerun", parents=[common],
                                help=f"run the migration again (sets {RERUN_ANNOTATION})")
    rerun.add_argument("name", metavar="NAME")
    rerun.set_defaults(handler=run_rerun)
    return parser


def paint_for(choice: str, stream: TextIO, environ: Any = os.environ) -> Paint:
    if choice != "auto":
        return Paint(colour=choice == "always")
    wanted = stream.isatty() and not environ.get("NO_COLOR") and environ.get("TERM") != "dumb"
    return Paint(colour=bool(wanted))


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    args = build_parser().parse_args(argv)
    out = out or sys.stdout
    try:
        api, default_namespace = kube.connect_as_person(
            getattr(args, "kubeconfig", None), getattr(args, "context", None))
        person = kube.PersonsKube(api, getattr(args, "namespace", None) or default_namespace)
        status: int = args.handler(args, person, out)
        return status
    except (Failure, kube.ConfigError) as exc:
        print(f"error: {clean(exc)}", file=sys.stderr)
    except Exception as exc:  # the API refused, or could not be reached: one line
        print(f"error: {clean(kube.describe(exc))}", file=sys.stderr)
    return EXIT_ERROR


def _json(args: argparse.Namespace) -> bool:
    return getattr(args, "output", "text") == "json"


def _paint(args: argparse.Namespace, out: TextIO) -> Paint:
    return paint_for(getattr(args, "color", "auto"), out)


def run_status(args: argparse.Namespace, person: kube.PersonsKube, out: TextIO) -> int:
    if args.name:
        found = person.database_schema(args.name)
        if found is None:
            raise Failure(f"no DatabaseSchema {args.name} in namespace {person.namespace}")
        objs = [found]
    else:
        objs = person.database_schemas()
    pods = person.pods() if objs else []
    screens = [_screen(person, obj, pods) for obj in objs]
    if _json(args):
        json.dump({"namespace": person.namespace,
                   "schemas": [s.to_json() for s in screens]}, out, indent=2)
        out.write("\n")
    elif not screens:
        out.write(f"No DatabaseSchemas in namespace {clean(person.namespace)}.\n")
    else:
        paint, now = _paint(args, out), datetime.now(UTC)
        out.write("\n".join(status_screen.render(s, paint, now) for s in screens))
    return EXIT_OK if all(s.ready for s in screens) else EXIT_HELD


def _screen(person: kube.PersonsKube, obj: dict[str, Any], pods: list[dict[str, Any]]
            ) -> status_screen.SchemaScreen:
    name = obj["metadata"]["name"]
    job_name = ((obj.get("status") or {}).get("migration") or {}).get("job")
    job, job_read = None, False
    if job_name:
        try:
            job, job_read = person.job(str(job_name)), True
        except kube.ApiError as exc:
            if exc.status != 403:  # a person who may not read Jobs sees the status's word
                raise
    try:
        events = person.events_about("DatabaseSchema", name)
    except kube.ApiError as exc:
        if exc.status != 403:  # the screen stands without them
            raise
        events = []
    return status_screen.screen(obj, pods, events, job, job_read)


def run_why(args: argparse.Namespace, person: kube.PersonsKube, out: TextIO) -> int:
    kind, _, name = args.pod.rpartition("/")
    if kind not in ("", "pod", "pods", "po") or not name:
        raise Failure(f"why takes pod/NAME, not {args.pod}")
    pod = person.pod(name)
    if pod is None:
        raise Failure(f"no pod {name} in namespace {person.namespace}")
    schemas = {schema: person.database_schema(schema) for schema in gated_by(pod)}
    answer = why_screen.answer(pod, schemas)
    if _json(args):
        json.dump(answer.to_json(), out, indent=2)
        out.write("\n")
    else:
        out.write(why_screen.render(answer, _paint(args, out)))
    return EXIT_HELD if answer.held else EXIT_OK


def run_rerun(args: argparse.Namespace, person: kube.PersonsKube, out: TextIO) -> int:
    obj = person.database_schema(args.name)
    if obj is None:
        raise Failure(f"no DatabaseSchema {args.name} in namespace {person.namespace}")
    run = ((obj.get("spec") or {}).get("migrations") or {}).get("run") or "External"
    if run == "External":
        raise Failure(f"DatabaseSchema {args.name} runs no migration itself (migrations.run: "
                      "External): run it with your own pipeline")
    # A new value each time: the operator runs the Job again when the value changes.
    value = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    person.annotate_database_schema(args.name, RERUN_ANNOTATION, value)
    if _json(args):
        json.dump({"namespace": person.namespace, "name": args.name,
                   "annotation": RERUN_ANNOTATION, "value": value}, out, indent=2)
        out.write("\n")
    else:
        out.write(f"DatabaseSchema {clean(args.name)}: {RERUN_ANNOTATION}={value}; the "
                  f"operator runs its migration (run: {clean(run)}) again. Follow it with: "
                  f"kubectl schemagate status {clean(args.name)}\n")
    return EXIT_OK
