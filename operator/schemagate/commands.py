"""The operator's subcommands of `schemagate`: `run` and `crd`."""

from __future__ import annotations

import argparse
import sys
from typing import Any

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
    run.set_defaults(handler=run_operator)


def run_operator(args: argparse.Namespace) -> int:
    settings = Settings(
        namespaces=tuple(args.namespaces or ()),
        all_namespaces=bool(args.all_namespaces),
        metrics_port=args.metrics_port or None,
        liveness_port=args.liveness_port or None,
        kubeconfig=args.kubeconfig,
        verbose=args.verbose,
    )
    from schemagate import handlers  # imports Kopf, which only `run` needs

    handlers.run(settings)
    return 0


def add_crd(commands: Subparsers) -> None:
    crd = commands.add_parser("crd", help="print the CustomResourceDefinition YAML")
    crd.set_defaults(handler=print_crd)


def print_crd(args: argparse.Namespace) -> int:
    from schemagate import crd

    sys.stdout.write(crd.render())
    return 0
