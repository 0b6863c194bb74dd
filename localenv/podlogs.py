"""The kubelet's log endpoint, so `kubectl logs` works for the pods the stand-in runs.

kubectl asks the API server, which asks the node's kubelet endpoint (the Node's
InternalIP and `daemonEndpoints.kubeletEndpoint.Port`) for
`/containerLogs/<namespace>/<pod>/<container>`. This serves the output files of
the processes under `<pods-dir>/<namespace>/<pod>-<uid>/logs/`, over TLS, to
clients holding a certificate of the cluster's CA (the API server does).
`tailLines` and `limitBytes` are honoured; `follow` returns what is there.
"""

from __future__ import annotations

import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlparse


def find_log(pods_dir: Path, namespace: str, pod: str, container: str) -> Path | None:
    if any("/" in part or part in ("", ".", "..") for part in (namespace, pod, container)):
        return None
    matches = sorted((pods_dir / namespace).glob(f"{pod}-*/logs/{container}.log"),
                     key=lambda p: p.stat().st_mtime)
    # `<pod>-*` also matches pods whose name merely starts with ours: keep exact ones.
    exact = [m for m in matches if m.parent.parent.name.rsplit("-", 1)[0] == pod]
    return exact[-1] if exact else None


def select(data: bytes, tail_lines: int | None, limit_bytes: int | None) -> bytes:
    if tail_lines is not None:
        lines = data.splitlines(keepends=True)
        data = b"".join(lines[-tail_lines:]) if tail_lines > 0 else b""
    if limit_bytes is not None:
        data = data[:limit_bytes]
    return data


class _Handler(BaseHTTPRequestHandler):
    pods_dir: Path

    def do_GET(self) -> None:  # noqa: N802 (the name http.server dispatches to)
        url = urlparse(self.path)
        parts = [unquote(p) for p in url.path.strip("/").split("/")]
        if len(parts) != 4 or parts[0] != "containerLogs":
            self._reply(404, b"only /containerLogs/ is served by the kubelet stand-in\n")
            return
        log = find_log(self.pods_dir, *parts[1:])
        if log is None:  # 400, not 404: the API server passes a 400's text on to kubectl
            self._reply(400, f"no output recorded for container {parts[3]} of pod "
                             f"{parts[1]}/{parts[2]}: the stand-in runs only Job pods\n".encode())
            return
        query = parse_qs(url.query)

        def number(name: str) -> int | None:
            return int(query[name][0]) if name in query else None

        self._reply(200, select(log.read_bytes(), number("tailLines"), number("limitBytes")))

    def _reply(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass  # the API server's audit of `kubectl logs` is enough


def serve(pods_dir: Path, port: int, cert: Path, key: Path, ca: Path) -> ThreadingHTTPServer:
    """Starts serving on 127.0.0.1:`port` in a daemon thread."""
    handler = type("Handler", (_Handler,), {"pods_dir": pods_dir})
    server = ThreadingHTTPServer(("127.0.0.1", port), handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(cert), str(key))
    context.load_verify_locations(str(ca))
    context.verify_mode = ssl.CERT_REQUIRED
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, name="podlogs", daemon=True).start()
    return server
