"""Users of the local cluster: client certificates signed by its CA, as RBAC sees them
(the certificate's CN is the user name, each O a group)."""

from __future__ import annotations

import re
import secrets
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from localenv import pki
from localenv.cluster import Cluster, Layout


@dataclass(frozen=True)
class Identity:
    """A kubeconfig whose client certificate names a user and its groups."""

    user: str
    kubeconfig: Path
    kubectl: Path

    def run(self, *args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(self.kubectl), "--kubeconfig", str(self.kubeconfig), *args],
                              input=input, capture_output=True, text=True, timeout=30,
                              check=False)

    def can_i(self, *args: str) -> bool:
        result = self.run("auth", "can-i", *args)
        answer = result.stdout.strip()
        assert answer in ("yes", "no"), f"can-i {args}: {result.stdout}{result.stderr}"
        return answer == "yes"


    def rules(self, namespace: str) -> set[tuple[str, str, str]]:
        """(API group, resource, verb) the API server says this user holds in
        `namespace` (`kubectl auth can-i --list`: rules of RoleBindings there and of
        every ClusterRoleBinding). Rules limited to resource names count as the rule."""
        result = self.run("auth", "can-i", "--list", "-n", namespace)
        assert result.returncode == 0, result.stderr
        held = set()
        for line in result.stdout.splitlines()[1:]:
            found = _RULE.match(line)
            assert found is not None, line
            resource, verbs = found.group(1), found.group(2).split()
            if not resource:
                continue  # a non-resource URL (discovery, /healthz)
            # `pods/status`, `jobs.batch`, `databaseschemas.schemagate.io/status`
            name, _, sub = resource.partition("/")
            plural, _, group = name.partition(".")
            held |= {(group, plural + (f"/{sub}" if sub else ""), verb) for verb in verbs}
        return held


# Resources, Non-Resource URLs, Resource Names, Verbs.
_RULE = re.compile(r"^(\S*)\s+\[[^\]]*\]\s+\[[^\]]*\]\s+\[([^\]]*)\]\s*$")


def _openssl(*args: str) -> None:
    result = subprocess.run(["openssl", *args], capture_output=True, text=True, check=False)
    assert result.returncode == 0, f"openssl {args[0]}: {result.stderr}"


def identity(cluster: Cluster, user: str, groups: list[str], directory: Path) -> Identity:
    """A client certificate for `user` in `groups`, signed by the cluster's CA."""
    ca = Layout(cluster.root).pki()
    mine = pki.Pki(directory)
    directory.mkdir(parents=True, exist_ok=True)
    shutil.copy(ca.ca, mine.ca)  # the kubeconfig embeds it; the CA key stays where it is
    subject = "".join(f"/O={group}" for group in groups) + f"/CN={user}"
    extensions = directory / "client.ext"
    extensions.write_text("basicConstraints = critical, CA:FALSE\n"
                          "keyUsage = critical, digitalSignature, keyEncipherment\n"
                          "extendedKeyUsage = clientAuth\n")
    _openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
             "-out", str(mine.key("user")))
    request = directory / "user.csr"
    _openssl("req", "-new", "-key", str(mine.key("user")), "-subj", subject,
             "-out", str(request))
    _openssl("x509", "-req", "-in", str(request), "-CA", str(ca.ca), "-CAkey",
             str(ca.key("ca")), "-set_serial", str(secrets.randbits(63)), "-days", "1",
             "-extfile", str(extensions), "-out", str(mine.cert("user")))
    kubeconfig = directory / "kubeconfig"
    pki.write_kubeconfig(kubeconfig, cluster.server, mine, "user")
    return Identity(user, kubeconfig, cluster.bin_dir / "kubectl")
