"""Certificates and kubeconfigs for the local control plane, made with `openssl`.

One CA signs everything: the API server's serving certificate and the client
certificates of the admin and of the controller manager. Keys are ECDSA P-256:
quick to make, and accepted by Go's TLS stack and by Python's `ssl` alike.
"""

from __future__ import annotations

import base64
import secrets
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from localenv.node import HOST_ADDRESS, NODE_IP, NODE_NAME

# The names a client inside or outside the cluster may use for the API server;
# 10.0.0.1 is the first address of the service range, the `kubernetes` Service;
# HOST_ADDRESS is where the API server listens, on the host's end of the node's link.
SERVING_NAMES = ("kubernetes", "kubernetes.default", "kubernetes.default.svc",
                 "kubernetes.default.svc.cluster.local", "localhost")
SERVING_IPS = ("127.0.0.1", "10.0.0.1", HOST_ADDRESS)
VALID_DAYS = 3650


@dataclass(frozen=True)
class Pki:
    """Where the files live; `ensure` makes the missing ones."""

    dir: Path

    def cert(self, name: str) -> Path:
        return self.dir / f"{name}.crt"

    def key(self, name: str) -> Path:
        return self.dir / f"{name}.key"

    @property
    def ca(self) -> Path:
        return self.cert("ca")

    @property
    def service_account_key(self) -> Path:
        return self.dir / "service-account.key"

    @property
    def service_account_pub(self) -> Path:
        return self.dir / "service-account.pub"


def _openssl(*args: str) -> None:
    result = subprocess.run(["openssl", *args], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"openssl {args[0]} failed: {result.stderr.strip()}")


def _new_key(path: Path) -> None:
    _openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
             "-out", str(path))
    path.chmod(0o600)


def _config(extensions: list[str]) -> str:
    # A self-contained config, so the host's openssl.cnf defaults play no part.
    return "\n".join(["[req]", "distinguished_name = dn", "prompt = no", "[dn]", "[ext]",
                      *extensions, ""])


def _make_ca(pki: Pki) -> None:
    _new_key(pki.key("ca"))
    with tempfile.NamedTemporaryFile("w", suffix=".cnf") as cnf:
        cnf.write(_config(["basicConstraints = critical, CA:TRUE",
                           "keyUsage = critical, keyCertSign, cRLSign, digitalSignature",
                           "subjectKeyIdentifier = hash"]))
        cnf.flush()
        _openssl("req", "-x509", "-new", "-key", str(pki.key("ca")), "-subj",
                 "/CN=schemagate-local-ca", "-days", str(VALID_DAYS), "-config", cnf.name,
                 "-extensions", "ext", "-out", str(pki.ca))


def _make_leaf(pki: Pki, name: str, subject: str, extensions: list[str]) -> None:
    _new_key(pki.key(name))
    csr = pki.dir / f"{name}.csr"
    with tempfile.NamedTemporaryFile("w", suffix=".cnf") as cnf:
        cnf.write(_config(["basicConstraints = critical, CA:FALSE",
                           "keyUsage = critical, digitalSignature, keyEncipherment",
                           "authorityKeyIdentifier = keyid", *extensions]))
        cnf.flush()
        _openssl("req", "-new", "-key", str(pki.key(name)), "-subj", subject,
                 "-config", cnf.name, "-out", str(csr))
        _openssl("x509", "-req", "-in", str(csr), "-CA", str(pki.ca), "-CAkey",
                 str(pki.key("ca")), "-set_serial", str(secrets.randbits(63)),
                 "-days", str(VALID_DAYS), "-extfile", cnf.name, "-extensions", "ext",
                 "-out", str(pki.cert(name)))
    csr.unlink()


def ensure(directory: Path) -> Pki:
    """The CA, the serving and client certificates and the service-account key pair.

    Existing files are kept: a restarted cluster keeps trusting the kubeconfigs
    it handed out."""
    pki = Pki(directory)
    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(0o700)
    if not pki.ca.exists():
        _make_ca(pki)
    sans = [f"DNS:{n}" for n in SERVING_NAMES] + [f"IP:{ip}" for ip in SERVING_IPS]
    leaves = {
        "apiserver": ("/CN=kube-apiserver", ["extendedKeyUsage = serverAuth",
                                             "subjectAltName = " + ", ".join(sans)]),
        # The kubelet's serving certificate (the API server checks it for `kubectl
        # logs/exec`) and its client certificate, as the node, for the Node authorizer.
        "kubelet": (f"/O=system:nodes/CN=system:node:{NODE_NAME}",
                    ["extendedKeyUsage = serverAuth, clientAuth",
                     f"subjectAltName = DNS:{NODE_NAME}, IP:{NODE_IP}"]),
        "admin": ("/O=system:masters/CN=schemagate-admin", ["extendedKeyUsage = clientAuth"]),
        # In system:masters, like the admin: a freshly restarted API server
        # answers 403 until its RBAC caches fill, and each 403 sends the
        # controllers' informers into a back-off of up to half a minute.
        "controller-manager": ("/O=system:masters/CN=system:kube-controller-manager",
                               ["extendedKeyUsage = clientAuth"]),
    }
    for name, (subject, extensions) in leaves.items():
        if not pki.cert(name).exists():
            _make_leaf(pki, name, subject, extensions)
    if not pki.service_account_pub.exists():
        _new_key(pki.service_account_key)
        _openssl("pkey", "-in", str(pki.service_account_key), "-pubout",
                 "-out", str(pki.service_account_pub))
    return pki


def kubeconfig(server: str, pki: Pki, user: str) -> dict[str, Any]:
    """A kubeconfig for `user` ("admin", "controller-manager") with everything embedded,
    so the file still works when copied elsewhere."""

    def data(path: Path) -> str:
        return base64.b64encode(path.read_bytes()).decode()

    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "schemagate-local", "cluster": {
            "server": server, "certificate-authority-data": data(pki.ca)}}],
        "users": [{"name": user, "user": {
            "client-certificate-data": data(pki.cert(user)),
            "client-key-data": data(pki.key(user))}}],
        "contexts": [{"name": "schemagate-local", "context": {
            "cluster": "schemagate-local", "user": user, "namespace": "default"}}],
        "current-context": "schemagate-local",
    }


def write_kubeconfig(path: Path, server: str, pki: Pki, user: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(yaml.safe_dump(kubeconfig(server, pki, user), sort_keys=False))
    tmp.chmod(0o600)
    tmp.replace(path)
