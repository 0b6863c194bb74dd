"""Where a database URL can be reached from: a loopback host or a Unix socket means the
operator's own pod when the operator connects, so only the backend's pods reach it."""

from __future__ import annotations

import ipaddress


def local_only(host: str | None) -> str | None:
    """Why `host` means the operator's own pod when the operator connects (a loopback
    address, `localhost`, a Unix socket directory), or None for a host it may reach."""
    if not host:
        return "names no host (a local Unix socket)"
    if host.startswith("/"):
        return f"names the Unix socket directory {host}"
    name = host.strip("[]").lower().rstrip(".")
    if name == "localhost" or name.endswith(".localhost") or name.startswith("ip6-local"):
        return f"names {host}, the loopback host"
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        return None
    return f"names {host}, a loopback address" if address.is_loopback else None


def loopback_message(why: str, secret: str, key: str) -> str:
    return (f"the database URL in Secret {secret} key {key} {why}: from the operator's pod "
            "that is the operator itself, so this database can only be reached from the "
            "backend's own pods (a proxy sidecar such as the Cloud SQL Auth Proxy). Set "
            "spec.database.verifyFrom: Pod and verifyPod.fromDeployment to the backend's "
            "Deployment: the check then runs in a pod cloned from it")
