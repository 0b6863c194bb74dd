"""The Kubernetes API as plain JSON, for the kubelet stand-in.

The stand-in reads and writes pods as dictionaries (strategic-merge patches with
explicit nulls, watch events as sent), so it uses the official client only for
what it does well: reading the kubeconfig, TLS, authentication, connection pools.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

from kubernetes.config import kube_config
from kubernetes.watch.watch import iter_resp_lines

Json = dict[str, Any]
STRATEGIC_MERGE = "application/strategic-merge-patch+json"


class KubeError(Exception):
    """The API server answered with an error status (0: it did not answer)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status


def path(*segments: str) -> str:
    return "/" + "/".join(quote(s, safe="") for s in segments)


class Kube:
    def __init__(self, kubeconfig: Path) -> None:
        self._api = kube_config.new_client_from_config(config_file=str(kubeconfig))

    def _call(self, method: str, resource: str, body: Json | None, query: dict[str, str] | None,
              content_type: str, timeout: tuple[float, float]) -> Any:
        request = self._api.param_serialize(
            method, resource, query_params=list((query or {}).items()),
            header_params={"Accept": "application/json", "Content-Type": content_type},
            body=body, auth_settings=["BearerToken"])
        return self._api.call_api(*request, _request_timeout=timeout)

    def request(self, method: str, resource: str, body: Json | None = None,
                query: dict[str, str] | None = None, content_type: str = "application/json",
                timeout: tuple[float, float] = (3.0, 15.0)) -> Json:
        response = self._call(method, resource, body, query, content_type, timeout)
        data = response.read()
        if not 200 <= response.status < 300:
            raise KubeError(response.status, _message(data))
        return json.loads(data) if data else {}

    def watch(self, resource: str, query: dict[str, str],
              timeout: tuple[float, float]) -> Iterator[Json]:
        """The watch events of one connection, until the server ends it."""
        response = self._call("GET", resource, None, {**query, "watch": "true"},
                              "application/json", timeout)
        raw = response.response
        try:
            if response.status != 200:
                raise KubeError(response.status, _message(raw.data))
            for line in iter_resp_lines(raw):
                if line:
                    yield json.loads(line)
        finally:
            raw.close()  # never hand a half-read stream back to the pool
            raw.release_conn()


def _message(data: bytes) -> str:
    try:
        return str(json.loads(data).get("message", ""))
    except (ValueError, AttributeError):
        return data[:200].decode(errors="replace")
