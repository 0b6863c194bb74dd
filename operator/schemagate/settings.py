"""The operator's settings: built once at start-up from the command line, then passed down."""

from __future__ import annotations

from dataclasses import dataclass, field

from schemagate.core.leader import LeaseSettings
from schemagate.core.tenancy.allowed_hosts import AllowedHosts


@dataclass(frozen=True)
class Settings:
    namespaces: tuple[str, ...] = ()
    all_namespaces: bool = False
    metrics_port: int | None = 8080
    liveness_port: int | None = 8081
    kubeconfig: str | None = None
    verbose: bool = False
    #: "text", or "json": one object a line with `severity`, for Cloud Logging and the like.
    log_format: str = "text"
    #: Watch every Secret to re-check at once when one changes (list and watch on
    #: Secrets). False: read only the named Secrets, at each check (get only).
    watch_secrets: bool = True
    #: The operator's own image, for the pods it runs: the `run: Alembic` migration Job
    #: (and `verifyFrom: Pod`). None: such specs are refused with InvalidSpec.
    verify_image: str | None = None
    #: Set: act only while holding this Lease (more than one replica). None: always act.
    lease: LeaseSettings | None = None
    #: The database hosts each namespace's URLs may name (--allowed-hosts-file); empty:
    #: any host, as for a namespace the file does not list (with no `*` entry).
    allowed_hosts: AllowedHosts = field(default_factory=AllowedHosts)
    #: The ValidatingAdmissionPolicyBinding that checks a DatabaseSchema author's rights:
    #: `run: Job`, `run: Alembic` and `verifyFrom: Pod` wait for it. None
    #: (`--no-author-rights`): the cluster has none, and those modes run for any author.
    author_rights_binding: str | None = "schemagate-author-rights"

    @property
    def liveness_endpoint(self) -> str | None:
        return None if self.liveness_port is None else f"http://0.0.0.0:{self.liveness_port}/healthz"
