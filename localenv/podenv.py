"""What a container would see, translated for a process on this machine.

Its environment (`env`, `valueFrom`, `envFrom`, with `$(VAR)` references expanded
as Kubernetes does), its command line, and its configMap, secret and emptyDir
volumes, materialised into a directory of the pod's sandbox. A process cannot
see a file at the container's `mountPath`, so every occurrence of a mount path
in the command line, the environment and `workingDir` is rewritten to the local
directory. Files inside the volumes are not rewritten.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from localenv.podstatus import HOST_IP, pod_ip

Json = dict[str, Any]
# (kind "Secret" or "ConfigMap", namespace, name) -> the decoded data, None if absent.
Lookup = Callable[[str, str, str], dict[str, str] | None]


class ConfigError(Exception):
    """A referenced Secret, ConfigMap or key is missing: the kubelet's
    CreateContainerConfigError, retried until it appears."""


class Unsupported(Exception):
    """The pod asks for something the stand-in cannot do; it will not get better."""


def decoded(kind: str, obj: Json) -> dict[str, str]:
    """The data of a Secret (base64) or a ConfigMap, as text."""
    if kind == "Secret":
        return {k: base64.b64decode(v).decode(errors="surrogateescape")
                for k, v in (obj.get("data") or {}).items()}
    data = dict(obj.get("data") or {})
    for k, v in (obj.get("binaryData") or {}).items():
        data[k] = base64.b64decode(v).decode(errors="surrogateescape")
    return data


def expand(text: str, env: dict[str, str]) -> str:
    """Kubernetes' `$(VAR)` expansion: `$$` escapes, unknown references stay as written."""
    return re.sub(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)",
                  lambda m: "$" if m.group(0) == "$$" else env.get(m.group(1), m.group(0)), text)


def _source(lookup: Lookup, kind: str, namespace: str, ref: Json) -> dict[str, str] | None:
    data = lookup(kind, namespace, ref["name"])
    if data is None and not ref.get("optional"):
        raise ConfigError(f'{kind.lower()} "{ref["name"]}" not found')
    return data


def _field(pod: Json, path: str) -> str:
    meta = pod["metadata"]
    simple = {"metadata.name": meta["name"], "metadata.namespace": meta["namespace"],
              "metadata.uid": meta["uid"], "spec.nodeName": pod["spec"].get("nodeName", ""),
              "spec.serviceAccountName": pod["spec"].get("serviceAccountName", ""),
              "status.hostIP": HOST_IP, "status.podIP": pod_ip(meta["uid"])}
    if path in simple:
        return str(simple[path])
    m = re.fullmatch(r"metadata\.(labels|annotations)\['(.+)'\]", path)
    if m:
        return str((meta.get(m.group(1)) or {}).get(m.group(2), ""))
    raise Unsupported(f"fieldRef {path} is not supported by the kubelet stand-in")


def _value_from(pod: Json, source: Json, lookup: Lookup) -> str | None:
    namespace = pod["metadata"]["namespace"]
    for field, kind in (("secretKeyRef", "Secret"), ("configMapKeyRef", "ConfigMap")):
        if field in source:
            ref = source[field]
            data = _source(lookup, kind, namespace, ref)
            if data is None:
                return None
            if ref["key"] not in data:
                if ref.get("optional"):
                    return None
                raise ConfigError(f'couldn\'t find key {ref["key"]} in {kind} '
                                  f'{namespace}/{ref["name"]}')
            return data[ref["key"]]
    if "fieldRef" in source:
        return _field(pod, source["fieldRef"]["fieldPath"])
    raise Unsupported(f"env valueFrom {sorted(source)} is not supported by the kubelet stand-in")


def container_env(pod: Json, container: Json, lookup: Lookup) -> dict[str, str]:
    """The variables Kubernetes would set from the container spec: `envFrom` first,
    then `env`, each value expanded against the variables defined before it."""
    env: dict[str, str] = {}
    namespace = pod["metadata"]["namespace"]
    for source in container.get("envFrom") or []:
        for field, kind in (("secretRef", "Secret"), ("configMapRef", "ConfigMap")):
            if field in source:
                data = _source(lookup, kind, namespace, source[field]) or {}
                for key, value in data.items():
                    name = source.get("prefix", "") + key
                    if re.fullmatch(r"[-._a-zA-Z][-._a-zA-Z0-9]*", name):
                        env[name] = value
    for var in container.get("env") or []:
        if "valueFrom" in var:
            resolved = _value_from(pod, var["valueFrom"], lookup)
            if resolved is not None:
                env[var["name"]] = resolved
        else:
            env[var["name"]] = expand(str(var.get("value", "")), env)
    return env


def _write_items(target: Path, data: dict[str, str], items: list[Json] | None,
                 mode: int) -> None:
    chosen = [(i["key"], i["path"], i.get("mode", mode)) for i in items] if items \
        else [(k, k, mode) for k in data]
    for key, path, file_mode in chosen:
        if key not in data:
            raise ConfigError(f"couldn't find key {key} for volume file {path}")
        file = target / path
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_bytes(data[key].encode(errors="surrogateescape"))
        file.chmod(file_mode)


def _materialise(pod: Json, volume: Json, target: Path, lookup: Lookup) -> None:
    namespace = pod["metadata"]["namespace"]
    for field, kind, name_key in (("configMap", "ConfigMap", "name"),
                                  ("secret", "Secret", "secretName")):
        if field in volume:
            spec = volume[field]
            ref = {"name": spec.get(name_key), "optional": spec.get("optional")}
            data = _source(lookup, kind, namespace, ref) or {}
            target.mkdir(parents=True, exist_ok=True)
            _write_items(target, data, spec.get("items"), spec.get("defaultMode", 0o644))
            return
    if "emptyDir" in volume:
        target.mkdir(parents=True, exist_ok=True)
        return
    raise Unsupported(f'volume "{volume["name"]}": only configMap, secret, emptyDir and '
                      "hostPath volumes are supported by the kubelet stand-in")


def mounts(pod: Json, container: Json, sandbox: Path, lookup: Lookup) -> dict[str, str]:
    """mountPath -> local path for each volume the container mounts, materialised.

    The projected service-account token volume that admission adds to every pod
    is skipped: nothing here reads it."""
    volumes = {v["name"]: v for v in pod["spec"].get("volumes") or []}
    local: dict[str, str] = {}
    for mount in container.get("volumeMounts") or []:
        volume = volumes.get(mount["name"], {"name": mount["name"]})
        if "projected" in volume and mount["mountPath"].startswith("/var/run/secrets/"):
            continue
        if "hostPath" in volume:
            base = Path(volume["hostPath"]["path"])
        else:
            base = sandbox / "volumes" / mount["name"]
            if not base.exists():
                _materialise(pod, volume, base, lookup)
        local[mount["mountPath"]] = str(base / mount.get("subPath", ""))
    return local


def relocate(text: str, paths: dict[str, str]) -> str:
    """Rewrites each container path (a key of `paths`) found in `text` as a whole
    path component to the local path it stands for."""
    for container_path in sorted(paths, key=len, reverse=True):
        pattern = r"(?<![\w./-])" + re.escape(container_path.rstrip("/")) + r"(?=/|$|[^\w.-])"
        local = paths[container_path].rstrip("/") or "/"
        text = re.sub(pattern, lambda _m: local, text)  # noqa: B023 (used at once)
    return text


def command_line(container: Json, env: dict[str, str], paths: dict[str, str]) -> list[str]:
    """`command` + `args` expanded; the local images have no entrypoint, so a
    container without `command` runs its `args`."""
    argv = [*(container.get("command") or []), *(container.get("args") or [])]
    if not argv:
        raise Unsupported(f'container "{container["name"]}" has no command: local images '
                          "have no entrypoint")
    return [relocate(expand(arg, env), paths) for arg in argv]
