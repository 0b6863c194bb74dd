"""The node's images, made here without a registry, and cached outside the repository.

    python -m localenv.images [build|list]

- `schemagate.local/pause:dev`: kubernetes' own pause.c, compiled by
  `hack/build-control-plane.sh node`;
- `schemagate.local/busybox:dev`: the machine's `busybox-static`, with its applets;
- `python:3.11-slim`, the base image our `Dockerfile` names: Debian bookworm's
  Python 3.11 made with debootstrap from the machine's Debian mirror (never pushed,
  never loaded into the node: only buildah sees it);
- `schemagate:dev`: our `Dockerfile`, built with buildah FROM that base, as a user
  builds it;
- `schemagate/backend:dev`: the demo backend: `schemagate:dev` (which has alembic,
  SQLAlchemy and psycopg) plus `examples/incident/migrations` at /app/migrations and
  `localenv/backend.py`, which exits 3 at start-up when its tables are missing.

Each is an archive in `<cache>/images/`, named by a hash of its inputs: a change to
the Dockerfile, the package or the migrations rebuilds what depends on it, and
nothing else. `import_into(ctr)` loads the archives into containerd.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
BASE_IMAGE = "docker.io/library/python:3.11-slim"
OPERATOR_IMAGE = "docker.io/library/schemagate:dev"
BACKEND_IMAGE = "docker.io/schemagate/backend:dev"
PAUSE_IMAGE = "schemagate.local/pause:dev"
BUSYBOX_IMAGE = "schemagate.local/busybox:dev"
SUITE = "bookworm"
BASE_PACKAGES = ("python3", "python3-venv", "ca-certificates")
BACKEND_DOCKERFILE = Path(__file__).resolve().parent / "backend.Dockerfile"
# A change here rebuilds the base: how it is made is one of its inputs.
BASE_RECIPE = 2


def cache_dir() -> Path:
    root = os.environ.get("SCHEMAGATE_CACHE") or str(
        Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "schemagate")
    return Path(root)


def log(message: str) -> None:
    print(f"[images {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _digest(parts: Iterable[bytes]) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(hashlib.sha256(part).digest())
    return h.hexdigest()[:16]


def _files(root: Path, paths: Iterable[str]) -> list[bytes]:
    parts: list[bytes] = []
    for rel in paths:
        path = root / rel
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        for f in files:
            if "__pycache__" in f.parts or any(p.endswith(".egg-info") for p in f.parts):
                continue
            parts += [str(f.relative_to(root)).encode(), f.read_bytes()]
    return parts


# --- one-layer archives, packed here -----------------------------------------------

def docker_archive(out: Path, name: str, layer: Path, config: dict[str, object]) -> None:
    """A docker-archive (what `ctr images import` and buildah read) of one layer."""
    diff_id = "sha256:" + _sha256_file(layer)
    image_config = {"architecture": "amd64", "os": "linux", "config": config,
                    "rootfs": {"type": "layers", "diff_ids": [diff_id]},
                    "history": [{"created_by": "localenv.images"}]}
    config_bytes = json.dumps(image_config).encode()
    config_name = hashlib.sha256(config_bytes).hexdigest() + ".json"
    manifest = json.dumps([{"Config": config_name, "RepoTags": [name],
                            "Layers": ["layer.tar"]}]).encode()
    tmp = out.with_suffix(".tmp")
    with tarfile.open(tmp, "w") as tar:
        for member, data in ((config_name, config_bytes), ("manifest.json", manifest)):
            info = tarfile.TarInfo(member)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        tar.add(layer, arcname="layer.tar")
    tmp.replace(out)


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _tar_dir(rootfs: Path, layer: Path) -> None:
    subprocess.run(["tar", "-C", str(rootfs), "--numeric-owner", "--sort=name",
                    "--mtime=@0", "-cf", str(layer), "."], check=True)


@dataclass(frozen=True)
class Image:
    """One image: its name, the hash of its inputs and how to make its archive."""

    key: str
    name: str
    inputs: Callable[[], str]
    make: Callable[[Path], None]
    in_node: bool = True  # imported into containerd

    def archive(self) -> Path:
        return cache_dir() / "images" / f"{self.key}-{self.inputs()}.tar"


def _pause_inputs() -> str:
    return _digest([_node_bin("pause").read_bytes()])


def _node_bin(name: str) -> Path:
    result = subprocess.run(["bash", str(REPO_ROOT / "hack" / "build-control-plane.sh"), "node"],
                            stdout=subprocess.PIPE, text=True, check=True)
    return Path(result.stdout.strip().splitlines()[-1]) / name


def _make_pause(out: Path) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        rootfs = Path(tmp) / "rootfs"
        rootfs.mkdir()
        shutil.copy2(_node_bin("pause"), rootfs / "pause")
        _tar_dir(rootfs, Path(tmp) / "layer.tar")
        docker_archive(out, PAUSE_IMAGE, Path(tmp) / "layer.tar",
                       {"Entrypoint": ["/pause"], "User": "65535:65535"})


BUSYBOX = Path("/bin/busybox")


def _busybox_inputs() -> str:
    return _digest([BUSYBOX.read_bytes()])


def _make_busybox(out: Path) -> None:
    applets = subprocess.run([str(BUSYBOX), "--list"], capture_output=True, text=True,
                             check=True).stdout.split()
    with tempfile.TemporaryDirectory() as tmp:
        rootfs = Path(tmp) / "rootfs"
        (rootfs / "bin").mkdir(parents=True)
        (rootfs / "tmp").mkdir(mode=0o1777)
        shutil.copy2(BUSYBOX, rootfs / "bin" / "busybox")
        for applet in applets:
            if applet != "busybox":
                (rootfs / "bin" / applet).symlink_to("busybox")
        _tar_dir(rootfs, Path(tmp) / "layer.tar")
        docker_archive(out, BUSYBOX_IMAGE, Path(tmp) / "layer.tar",
                       {"Cmd": ["sh"], "Env": ["PATH=/bin"]})


def debian_mirror() -> str:
    """The machine's own Debian mirror, from its apt sources."""
    sources = sorted(Path("/etc/apt").glob("sources.list.d/*")) + [Path("/etc/apt/sources.list")]
    for source in sources:
        if not source.is_file():
            continue
        for line in source.read_text().splitlines():
            words = line.split()
            if words[:1] == ["URIs:"] and len(words) > 1 and "security" not in words[1]:
                return words[1]
            if words[:1] == ["deb"]:
                uri = next((w for w in words[1:] if "://" in w), "")
                if uri and "security" not in uri:
                    return uri
    return "http://deb.debian.org/debian"


def _base_inputs() -> str:
    recipe = json.dumps([BASE_RECIPE, SUITE, BASE_PACKAGES, debian_mirror()]).encode()
    return _digest([recipe])


def _make_base(out: Path) -> None:
    work = cache_dir() / "build" / "base"
    shutil.rmtree(work, ignore_errors=True)
    rootfs = work / "rootfs"
    rootfs.mkdir(parents=True)
    mirror = debian_mirror()
    log(f"debootstrap {SUITE} from {mirror} ({', '.join(BASE_PACKAGES)})")
    result = subprocess.run(["debootstrap", "--variant=minbase",
                             f"--include={','.join(BASE_PACKAGES)}", SUITE, str(rootfs), mirror],
                            capture_output=True, text=True, check=False,
                            stdin=subprocess.DEVNULL)
    if result.returncode != 0:
        raise RuntimeError(f"debootstrap failed: {result.stdout[-2000:]}{result.stderr[-2000:]}")
    # Slim, as the official image is: no docs, no apt lists, no caches.
    for rel in ("usr/share/doc", "usr/share/man", "usr/share/info", "var/lib/apt/lists",
                "var/cache/apt", "var/cache/debconf", "var/log"):
        path = rootfs / rel
        shutil.rmtree(path, ignore_errors=True)
        path.mkdir(parents=True, exist_ok=True)
    locales = rootfs / "usr/share/locale"
    if locales.is_dir():
        shutil.rmtree(locales)
        locales.mkdir()
    # The official image's `python` and `pip` names.
    (rootfs / "usr/local/bin").mkdir(parents=True, exist_ok=True)
    (rootfs / "usr/local/bin/python").symlink_to("/usr/bin/python3")
    layer = work / "layer.tar"
    _tar_dir(rootfs, layer)
    docker_archive(out, BASE_IMAGE, layer, {
        "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "LANG=C.UTF-8"],
        "Cmd": ["python3"]})
    shutil.rmtree(work, ignore_errors=True)


# --- buildah -----------------------------------------------------------------------

def _buildah(*args: str, timeout: float = 1200) -> subprocess.CompletedProcess[str]:
    store = cache_dir() / "buildah"
    tmp = store / "tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "TMPDIR": str(tmp), "BUILDAH_ISOLATION": "oci"}
    # Its own storage in the cache: nothing in /var/lib/containers or /run/containers.
    argv = ["buildah", "--root", str(store / "root"), "--runroot", str(store / "runroot"),
            "--storage-driver", "overlay", *args]
    result = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=timeout,
                            check=False, stdin=subprocess.DEVNULL)
    if result.returncode != 0:
        raise RuntimeError(f"buildah {args[0]} failed: {result.stdout[-3000:]}"
                           f"{result.stderr[-3000:]}")
    return result


def _ensure_in_buildah(image: Image) -> None:
    """The image under its name in buildah's store, from its cached archive."""
    marker = cache_dir() / "buildah" / f"{image.key}.loaded"
    archive = image.archive()
    if marker.exists() and marker.read_text() == archive.name:
        return
    _buildah("pull", "--quiet", f"docker-archive:{archive}")
    _buildah("tag", _loaded_id(archive), image.name)
    marker.write_text(archive.name)


def _loaded_id(archive: Path) -> str:
    with tarfile.open(archive) as tar:
        member = tar.extractfile("manifest.json")
        assert member is not None
        return str(json.load(member)[0]["Config"]).removesuffix(".json")


def _bud(dockerfile: Path, context: Path, name: str, out: Path) -> None:
    # runc, not crun (which refuses this machine's hybrid cgroup layout), with its
    # state in the cache rather than /run/runc.
    runc_root = cache_dir() / "buildah" / "runc"
    _buildah("bud", "--runtime", "/usr/sbin/runc", f"--runtime-flag=root={runc_root}",
             "--pull=never", "--network=host",
             "--layers=false", "--format=docker",
             # This machine's egress re-signs TLS: pip needs the host's CA bundle
             # and pip config, mounted for the build only, never baked in.
             "-v", "/etc/ssl/certs:/etc/ssl/certs:ro", "-v", "/etc/pip.conf:/etc/pip.conf:ro",
             "-f", str(dockerfile), "-t", name, str(context))
    tmp = out.with_suffix(".tmp")
    tmp.unlink(missing_ok=True)
    _buildah("push", "--quiet", name, f"docker-archive:{tmp}:{name}")
    tmp.replace(out)


OPERATOR_INPUTS = ("Dockerfile", "pyproject.toml", "constraints.txt", "README.md", "operator")


def _operator_inputs() -> str:
    return _digest([_base_inputs().encode(), *_files(REPO_ROOT, OPERATOR_INPUTS)])


def _make_operator(out: Path) -> None:
    _ensure_in_buildah(BASE)
    with tempfile.TemporaryDirectory(dir=cache_dir() / "build") as tmp:
        # The build context: only the Dockerfile's inputs (no .venv, no .cluster).
        context = Path(tmp)
        for rel in OPERATOR_INPUTS:
            src = REPO_ROOT / rel
            if src.is_dir():
                shutil.copytree(src, context / rel,
                                ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
            else:
                shutil.copy2(src, context / rel)
        _bud(context / "Dockerfile", context, OPERATOR_IMAGE, out)


BACKEND_INPUTS = ("examples/incident/migrations", "localenv/backend.py")
BACKEND_RECIPE = 2  # the archive carries schemagate:dev too


def _backend_inputs() -> str:
    return _digest([_operator_inputs().encode(), str(BACKEND_RECIPE).encode(),
                    BACKEND_DOCKERFILE.read_bytes(),
                    *_files(REPO_ROOT, BACKEND_INPUTS)])


def _make_backend(out: Path) -> None:
    _ensure_in_buildah(OPERATOR)
    with tempfile.TemporaryDirectory(dir=cache_dir() / "build") as tmp:
        context = Path(tmp)
        shutil.copytree(REPO_ROOT / "examples/incident/migrations", context / "migrations",
                        ignore=shutil.ignore_patterns("__pycache__"))
        shutil.copy2(REPO_ROOT / "localenv/backend.py", context / "backend.py")
        shutil.copy2(BACKEND_DOCKERFILE, context / "Dockerfile")
        _bud(context / "Dockerfile", context, BACKEND_IMAGE, out)
    _add_names(out, OPERATOR.archive())


def _add_names(archive: Path, other: Path) -> None:
    """Adds the images of `other`, whose layers `archive` already holds, to `archive`:
    containerd then imports both from one file, each shared layer read once."""
    with tarfile.open(other) as tar:
        manifest_file = tar.extractfile("manifest.json")
        assert manifest_file is not None
        extra = json.load(manifest_file)
        configs = {}
        for entry in extra:
            config_file = tar.extractfile(entry["Config"])
            assert config_file is not None
            configs[entry["Config"]] = config_file.read()
    tmp = archive.with_suffix(".merge")
    with tarfile.open(archive) as src, tarfile.open(tmp, "w") as dst:
        names = set(src.getnames())
        manifest: list[dict[str, object]] = []
        for member in src:
            if member.name == "manifest.json":
                listed = src.extractfile(member)
                assert listed is not None
                manifest = json.load(listed)
                continue
            dst.addfile(member, src.extractfile(member) if member.isfile() else None)
        for entry in extra:
            missing = [layer for layer in entry["Layers"] if layer not in names]
            if missing:
                raise RuntimeError(f"{archive} lacks the layers {missing} of {other}")
            if entry["Config"] not in names:
                info = tarfile.TarInfo(entry["Config"])
                info.size = len(configs[entry["Config"]])
                dst.addfile(info, io.BytesIO(configs[entry["Config"]]))
        merged = json.dumps(manifest + extra).encode()
        info = tarfile.TarInfo("manifest.json")
        info.size = len(merged)
        dst.addfile(info, io.BytesIO(merged))
    tmp.replace(archive)


PAUSE = Image("pause", PAUSE_IMAGE, _pause_inputs, _make_pause)
BUSYBOX_IMG = Image("busybox", BUSYBOX_IMAGE, _busybox_inputs, _make_busybox)
BASE = Image("python-base", BASE_IMAGE, _base_inputs, _make_base, in_node=False)
# Loaded into the node from the backend's archive, which carries both.
OPERATOR = Image("schemagate", OPERATOR_IMAGE, _operator_inputs, _make_operator, in_node=False)
BACKEND = Image("backend", BACKEND_IMAGE, _backend_inputs, _make_backend)
ALL = (PAUSE, BUSYBOX_IMG, BASE, OPERATOR, BACKEND)


def ensure(image: Image) -> Path:
    """The image's archive, made first when its inputs changed (one build at a time)."""
    import fcntl

    archive = image.archive()
    if archive.exists():
        return archive
    archive.parent.mkdir(parents=True, exist_ok=True)
    (cache_dir() / "build").mkdir(parents=True, exist_ok=True)
    with open(cache_dir() / "images" / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if archive.exists():
            return archive
        started = time.monotonic()
        log(f"building {image.name} (inputs {archive.stem.rsplit('-', 1)[1]})")
        # buildah keeps a blob-info cache in /var/lib/containers/cache whatever its
        # --root says: a build leaves nothing there that was not there before.
        foreign = Path("/var/lib/containers")
        existed = foreign.exists()
        try:
            image.make(archive)
        finally:
            if not existed:
                shutil.rmtree(foreign, ignore_errors=True)
        log(f"built {image.name} in {time.monotonic() - started:.1f}s: {archive}")
        # Archives of earlier inputs are of no further use.
        for old in archive.parent.glob(f"{image.key}-*.tar"):
            if old != archive and len(old.stem) == len(archive.stem):
                old.unlink()
    return archive


def ensure_all() -> list[tuple[Image, Path]]:
    return [(image, ensure(image)) for image in ALL]


def import_into(ctr: Callable[..., object], record: Path) -> None:
    """Loads every node image into containerd's k8s.io namespace, but those `record`
    (a file of the archives already imported into this containerd) lists."""
    done = set(record.read_text().split()) if record.exists() else set()
    for image, archive in ensure_all():
        if image.in_node and archive.name not in done:
            ctr("images", "import", str(archive))
            done.add(archive.name)
            record.write_text("\n".join(sorted(done)) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m localenv.images")
    parser.add_argument("command", choices=["build", "list"], nargs="?", default="build")
    args = parser.parse_args(argv)
    if args.command == "build":
        started = time.monotonic()
        ensure_all()
        log(f"images ready in {time.monotonic() - started:.1f}s")
    for image in ALL:
        print(f"{image.name:40} {image.archive()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
