"""32 URLs in one namespace, each naming 4 hosts (`?host=…&port=…`, as many as a URL
may) among 8 listeners that accept a connection and never answer: the victim's new pod
still opens within seconds, and each of the 32 schemas gets a status of its own."""

from __future__ import annotations

import contextlib

import pytest

from tests.cluster.fixtures import wait_for
from tests.cluster.scenario import Backend
from tests.stalling import Mode, StallingProxy
from tests.tenants.tenancy import Alive, Victim, reasons, taken, unharmed

pytestmark = pytest.mark.tenants
URLS, LISTENERS, HOSTS = 32, 8, 4


def test_urls_naming_silent_hosts_starve_no_other_namespace(
        hostile: Backend, victim: Victim, alive: Alive) -> None:
    host = str(hostile.db.pg.pod_host)
    with contextlib.ExitStack() as stack:
        listeners = [StallingProxy((host, 0), Mode.SILENT) for _ in range(LISTENERS)]
        for listener in listeners:
            stack.callback(listener.close)
        ports = [listener.port for listener in listeners]
        urls = {}
        for i in range(URLS):
            turn = (ports[i % LISTENERS:] + ports[:i % LISTENERS])[:HOSTS]  # each starts elsewhere
            urls[f"url-{i:02d}"] = (
                f"postgresql://tenant:pw-{i}@/app?host={','.join([host] * HOSTS)}"
                f"&port={','.join(map(str, turn))}")
        hostile.apply({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "silent"},
                       "stringData": urls})
        names = [f"tenant-{i:02d}" for i in range(URLS)]
        hostile.apply_all(*(hostile.schema_manifest(name, database={
            "urlSecretRef": {"name": "silent", "key": f"url-{i:02d}"},
            "connectTimeoutSeconds": 3}) for i, name in enumerate(names)))
        taken(hostile, names, timeout=60)
        wait_for(lambda: sum(listener.connections for listener in listeners),
                 lambda count: count >= LISTENERS, timeout=30,
                 what="the operator connecting to the silent hosts")

        unharmed(victim, alive)
        judged = wait_for(lambda: reasons(hostile), lambda found: len(found) == URLS and all(
            found.values()), timeout=120, what="each of the 32 schemas' own reason")
        assert set(judged.values()) == {"DatabaseUnreachable"}, judged
