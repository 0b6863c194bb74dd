"""A backend that behaves as the incident's did: at start-up it checks its tables and
exits 3 when one is missing (the seed's `DeterministicStartupError`), else it serves
(idles). Its container runs the backend image's Python and psycopg."""

from __future__ import annotations

from typing import Any

from tests.cluster.scenario import BACKEND_IMAGE

EXIT_MISSING = 3
CHECK = """
import os, sys, psycopg
url = os.environ["DATABASE_URL"].replace("+psycopg", "")
with psycopg.connect(url, connect_timeout=5) as conn:
    missing = [t for t in sys.argv[1:]
               if conn.execute("select to_regclass(%s)", (t,)).fetchone()[0] is None]
if missing:
    print("tables missing:", *missing, file=sys.stderr)
    sys.exit(3)
"""


def container(tables: list[str], secret: str = "backend-db") -> dict[str, Any]:
    """The backend's container: exits 3 unless every one of `tables` exists."""
    return {"name": "app", "image": BACKEND_IMAGE, "imagePullPolicy": "Never",
            "command": ["sh", "-c", 'python -c "$CHECK" "$@" && exec sleep infinity', "backend",
                        *tables],
            "env": [{"name": "CHECK", "value": CHECK},
                    {"name": "DATABASE_URL", "valueFrom": {"secretKeyRef": {
                        "name": secret, "key": "DATABASE_URL"}}}]}


def restarts(pods: list[dict[str, Any]]) -> int:
    return sum(s.get("restartCount", 0) for p in pods
               for s in p.get("status", {}).get("containerStatuses") or ())


def held(pod: dict[str, Any], gate: str = "schemagate.io/backend-schema") -> bool:
    """The pod carries the start-up gate: Pending, on no node, no container started."""
    return any(g.get("name") == gate for g in pod["spec"].get("schedulingGates") or ())
