"""A database proxy for pods: a small TCP forwarder on 127.0.0.1:5432 inside the pod,
to PostgreSQL at the cluster's host address, standing in for the Cloud SQL Auth Proxy
(tests/cluster/test_verify_pod.py, bench/verify_pod.py). It runs from any image with
Python (the operator's), as a native sidecar whose startup probe passes once it listens.
"""

from __future__ import annotations

from typing import Any

FORWARDER = """
import signal, socket, sys, threading
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
target = (sys.argv[1], int(sys.argv[2]))
server = socket.create_server(("127.0.0.1", 5432))

def pipe(a, b):
    try:
        while data := a.recv(65536):
            b.sendall(data)
    except OSError:
        pass
    finally:
        for s in (a, b):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

def serve(client):
    try:
        upstream = socket.create_connection(target, timeout=5)
    except OSError:
        client.close()
        return
    upstream.settimeout(None)
    threading.Thread(target=pipe, args=(client, upstream), daemon=True).start()
    pipe(upstream, client)

while True:
    client, _ = server.accept()
    threading.Thread(target=serve, args=(client,), daemon=True).start()
"""
PROBE = "import socket; socket.create_connection(('127.0.0.1', 5432), timeout=1).close()"


def sidecar(host: str, port: int, image: str = "schemagate:dev") -> dict[str, Any]:
    """The proxy as a native sidecar (restartPolicy: Always), restricted."""
    return {
        "name": "db-proxy", "image": image, "imagePullPolicy": "Never",
        "restartPolicy": "Always", "command": ["python", "-c", FORWARDER],
        "args": [host, str(port)],
        "securityContext": {"allowPrivilegeEscalation": False,
                            "capabilities": {"drop": ["ALL"]}},
        # An exec probe: a tcpSocket probe would knock on the pod's IP, where the proxy,
        # like the Cloud SQL Auth Proxy by default, does not listen.
        "startupProbe": {"exec": {"command": ["python", "-c", PROBE]}, "periodSeconds": 1,
                         "failureThreshold": 30}}
