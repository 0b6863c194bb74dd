"""32 URLs in one namespace, each naming 4 hosts (`?host=…&port=…`, the most a URL may
name) among 8 listeners that accept a connection and never answer: the victim's new pod
still opens within seconds, and each of the 32 schemas gets a status of its own. A URL
naming all 8 is refused before any connection."""

from __future__ import annotations

import contextlib

from tests.cluster.scenario import Backend
from tests.stalling import Mode, StallingProxy
from tests.support.wait import wait_for
from tests.tenants.tenancy import Alive, Victim, reasons, taken, unharmed

URLS, LISTENERS, HOSTS = 32, 8, 4


def test_urls_naming_silent_hosts_starve_no_other_namespace(
        hostile: Backend, victim: Victim, alive: Alive) -> None:
    host = str(hostile.db.pg.pod_host)
    with contextlib.ExitStack() as stack:
        listeners = [StallingProxy((host, 0), Mode.SILENT) for _ in range(LISTENERS)]
        for listener in listeners:
            stack.callback(listener.close)
        ports = [listener.port for listener in listeners]
        def url(i: int, hosts: int) -> str:
            turn = (ports[i % LISTENERS:] + ports[:i % LISTENERS])[:hosts]  # starts elsewhere
            return (f"postgresql://tenant:pw-{i}@/app?host={','.join([host] * hosts)}"
                    f"&port={','.join(map(str, turn))}")

        urls = {f"url-{i:02d}": url(i, HOSTS) for i in range(URLS)}
        urls["every-listener"] = url(0, LISTENERS)
        hostile.apply({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "silent"},
                       "stringData": urls})
        names = [f"tenant-{i:02d}" for i in range(URLS)]
        hostile.apply_all(*(hostile.schema_manifest(name, database={
            "urlSecretRef": {"name": "silent", "key": f"url-{i:02d}"},
            "connectTimeoutSeconds": 3}) for i, name in enumerate(names)),
            hostile.schema_manifest("tenant-all", database={
                "urlSecretRef": {"name": "silent", "key": "every-listener"}}))
        taken(hostile, names, timeout=60)
        wait_for("the operator connecting to the silent hosts",
                 lambda: sum(listener.connections for listener in listeners),
                 lambda count: count >= LISTENERS, timeout=30)

        unharmed(victim, alive)
        judged = wait_for("each of the 33 schemas' own reason", lambda: reasons(hostile),
                          lambda found: len(found) == URLS + 1 and all(found.values()),
                          timeout=120)
        assert judged.pop("tenant-all") == "InvalidSpec"
        assert set(judged.values()) == {"DatabaseUnreachable"}, judged
