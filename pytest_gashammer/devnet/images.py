"""Container images the plugin builds itself, without any registry, and the Docker connection.

Two images, both from what the plugin already installs on this machine:

- ``gashammer/anvil:<ANVIL_VERSION>`` for container devnets (``container:anvil``);
- ``gashammer/ethereumjs:<EJS_VERSION>`` for network nodes in containers
  (``--gashammer-network-image ethereumjs``): this machine's Node.js binary, the pinned
  ``@ethereumjs/client`` npm tree (:func:`~pytest_gashammer.devnet.ethereumjs.install_managed`),
  the libraries both link against, and the client's CLI as the entry point.

``gashammer/anvil`` holds the pinned anvil binary the plugin already installs
(:func:`~pytest_gashammer.devnet.anvil.install_managed`), the shared libraries it links against
(found with ``ldd``, stored under the paths the loader looks in) and a two-line ``/etc/passwd``:
nothing else, so no base image is pulled. The root filesystem is written as a tar whose bytes
depend on its inputs only (sorted entries, mtime 0, owner 0) and turned into an image with
``docker import``. The image carries a label with a hash of those inputs; a build happens only
when the tag is missing or its label differs (another anvil, another libc), so it builds once per
machine and is checked in a fraction of a second after that. Concurrent builders (xdist, two
sessions) wait for one another on a file lock.

Command line: ``python -m pytest_gashammer.devnet.images anvil|ethereumjs`` prints the tag,
building the image when missing (``--rebuild`` builds it again).

Docker itself is imported inside the functions that need it: the plugin stays import-light.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from pytest_gashammer.devnet import ethereumjs
from pytest_gashammer.devnet.anvil import ANVIL_VERSION, install_managed, managed_binary
from pytest_gashammer.devnet.ethereumjs import CLI as EJS_CLI
from pytest_gashammer.devnet.ethereumjs import EJS_VERSION
from pytest_gashammer.devnet.npm import cache_dir
from pytest_gashammer.errors import DevnetError, GashammerError

ANVIL_REPOSITORY = "gashammer/anvil"
ETHEREUMJS_REPOSITORY = "gashammer/ethereumjs"
#: Where the client's npm tree lies inside the ethereumjs image.
EJS_ROOT = "opt/ethereumjs"
#: Image label: which of the plugin's images this is (also filters the pruning of old builds).
IMAGE_LABEL = "gashammer.image"
#: Image label: the sha256 of everything the image was built from (:func:`inputs_digest`).
INPUTS_LABEL = "gashammer.inputs-sha256"
#: Bumped when the layout of a root filesystem changes, so that old images are rebuilt.
ROOTFS_FORMAT = 1
#: The user anvil runs as inside its container: nobody; it writes only under HOME=/tmp.
NOBODY = "65534:65534"

ANVIL_CHANGES: tuple[str, ...] = (
    'ENTRYPOINT ["/usr/local/bin/anvil"]',
    "ENV HOME=/tmp",
    "WORKDIR /tmp",
    f"USER {NOBODY}",
    f"LABEL {IMAGE_LABEL}=anvil",
    f"LABEL gashammer.anvil-version={ANVIL_VERSION}",
)

ETHEREUMJS_CHANGES: tuple[str, ...] = (
    f'ENTRYPOINT ["/usr/local/bin/node", "/{EJS_ROOT}/{EJS_CLI.as_posix()}"]',
    "ENV HOME=/tmp",
    "WORKDIR /tmp",
    f"USER {NOBODY}",
    f"LABEL {IMAGE_LABEL}=ethereumjs",
    f"LABEL gashammer.ethereumjs-version={EJS_VERSION}",
)

_PASSWD = (
    b"root:x:0:0:root:/root:/usr/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
)
_GROUP = b"root:x:0:\nnogroup:x:65534:\n"

HOW_TO_GET_DOCKER = (
    "start one as root with `dockerd &` (Debian/Ubuntu: `apt-get install -y docker.io` first) or "
    "`systemctl start docker`, or point DOCKER_HOST at a daemon on this machine"
)


class DockerUnavailable(DevnetError):
    """No Docker daemon answers (or the docker package is missing)."""


def docker_host() -> str:
    return os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"


def docker_client(timeout: float = 60.0) -> Any:
    """A ``docker.DockerClient`` whose daemon answered a ping; :class:`DockerUnavailable` otherwise."""
    try:
        import docker
        import requests
    except ImportError as exc:  # a declared dependency (through testcontainers), but say what to do
        raise DockerUnavailable(
            f"the docker Python package is missing ({exc}); pip install 'testcontainers>=4.15'"
        ) from None
    try:
        client = docker.from_env(timeout=int(timeout))
        client.ping()
    except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
        reason = " ".join(str(exc).split())[:200]
        raise DockerUnavailable(
            f"no Docker daemon answers at {docker_host()} ({reason}); {HOW_TO_GET_DOCKER}"
        ) from None
    return client


def image_labels(client: Any, reference: str) -> dict[str, str] | None:
    """The labels of the local image ``reference``; None when there is no such image here.

    Never pulls: a registry may be unreachable, and a test must not depend on what it serves today.
    """
    import docker

    try:
        image = client.images.get(reference)
    except docker.errors.ImageNotFound:
        return None
    except docker.errors.APIError as exc:
        raise DevnetError(f"Docker could not look up image {reference}: {_one_line(exc)}") from None
    return dict(image.labels or {})


# ----------------------------------------------------------------------------------------------
# root filesystems


@dataclasses.dataclass(frozen=True)
class RootEntry:
    """One entry of a root filesystem: a directory, a copied file (``source``) or literal ``data``."""

    path: str  # inside the image, relative ("usr/local/bin/anvil")
    mode: int
    source: Path | None = None
    data: bytes | None = None

    @property
    def is_dir(self) -> bool:
        return self.source is None and self.data is None

    def content(self) -> bytes:
        if self.data is not None:
            return self.data
        assert self.source is not None
        return self.source.read_bytes()


def linked_libraries(binary: Path) -> list[str]:
    """The absolute paths ``ldd`` says ``binary`` loads (its loader included; the vDSO left out)."""
    try:
        completed = subprocess.run(
            ["ldd", str(binary)], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise DevnetError(
            f"cannot run ldd on {binary} ({exc}); building the anvil image needs glibc's ldd"
        ) from None
    output = completed.stdout + completed.stderr
    if "statically linked" in output or "not a dynamic executable" in output:
        return []
    if completed.returncode != 0:
        raise DevnetError(f"ldd {binary} failed: {_one_line(output)}")
    return parse_ldd(completed.stdout, binary)


def parse_ldd(output: str, binary: Path | str = "the binary") -> list[str]:
    """Absolute library paths from ``ldd`` output, in its order; a missing library is an error."""
    paths: list[str] = []
    for raw in output.splitlines():
        line = raw.strip()
        if "=>" in line:
            name, _, target = line.partition("=>")
            where = target.strip().split(" (", 1)[0].strip()
            if where == "not found":
                raise DevnetError(f"{binary} needs {name.strip()}, which this machine does not have")
            if where.startswith("/"):
                paths.append(where)
        elif line.startswith("/"):
            paths.append(line.split(" (", 1)[0].strip())  # the loader
    return paths


def anvil_rootfs(binary: Path, libraries: Sequence[str] | None = None) -> list[RootEntry]:
    """The root filesystem of the anvil image: the binary, what it links against, passwd, /tmp."""
    libraries = linked_libraries(binary) if libraries is None else libraries
    files = [RootEntry("usr/local/bin/anvil", 0o755, source=binary)]
    # A library path is often a symlink (the loader under /lib64): its real bytes go under the
    # name the loader and the binary ask for.
    files += [RootEntry(path.lstrip("/"), 0o755, source=Path(os.path.realpath(path))) for path in libraries]
    files += [RootEntry("etc/passwd", 0o644, data=_PASSWD), RootEntry("etc/group", 0o644, data=_GROUP)]
    return with_directories(files, extra={"tmp": 0o1777})


def ethereumjs_rootfs(
    node_binary: Path, install_dir: Path, libraries: Sequence[str] | None = None
) -> list[RootEntry]:
    """The root filesystem of the ethereumjs image: Node.js, the client's npm tree, their libraries.

    The tree's symbolic links are left out: npm makes them only for ``node_modules/.bin`` command
    shims, and the image runs the client's ``cli.js`` by its path.
    """
    if libraries is None:
        libraries = _union(linked_libraries(node_binary), *map(_addon_libraries, native_addons(install_dir)))
    files = [RootEntry("usr/local/bin/node", 0o755, source=node_binary)]
    files += [RootEntry(path.lstrip("/"), 0o755, source=Path(os.path.realpath(path))) for path in libraries]
    for path in sorted(install_dir.rglob("*")):
        if path.is_symlink() or not path.is_file():
            continue
        mode = 0o755 if os.access(path, os.X_OK) else 0o644
        files.append(RootEntry(f"{EJS_ROOT}/{path.relative_to(install_dir).as_posix()}", mode, source=path))
    files += [RootEntry("etc/passwd", 0o644, data=_PASSWD), RootEntry("etc/group", 0o644, data=_GROUP)]
    return with_directories(files, extra={"tmp": 0o1777})


def native_addons(install_dir: Path) -> list[Path]:
    """The npm tree's prebuilt native addons for this machine (glibc Linux of this architecture)."""
    arch = {"x86_64": "x64", "aarch64": "arm64"}.get(os.uname().machine, os.uname().machine)
    return sorted(
        path
        for path in install_dir.rglob(f"prebuilds/linux-{arch}/*.node")
        if "musl" not in path.name and not path.is_symlink()
    )


def _addon_libraries(addon: Path) -> list[str]:
    # An addon this machine cannot load is one the client will not pick either: it adds nothing.
    try:
        return linked_libraries(addon)
    except DevnetError:
        return []


def _union(*groups: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(path for group in groups for path in group))


def with_directories(files: Sequence[RootEntry], extra: dict[str, int] | None = None) -> list[RootEntry]:
    """``files`` plus a directory entry for every parent (0755) and ``extra`` directories, sorted."""
    directories: dict[str, int] = {}
    for entry in files:
        parts = entry.path.split("/")[:-1]
        for depth in range(1, len(parts) + 1):
            directories.setdefault("/".join(parts[:depth]), 0o755)
    directories.update(extra or {})
    entries = [RootEntry(path, mode) for path, mode in directories.items()] + list(files)
    return sorted(entries, key=lambda entry: entry.path)


def inputs_digest(entries: Sequence[RootEntry], changes: Sequence[str]) -> str:
    """sha256 over what an image is built from: each entry's path, mode and bytes, and the changes."""
    manifest = []
    for entry in entries:
        content = "" if entry.is_dir else hashlib.sha256(entry.content()).hexdigest()
        manifest.append([entry.path, entry.mode, "dir" if entry.is_dir else "file", content])
    blob = json.dumps({"format": ROOTFS_FORMAT, "entries": manifest, "changes": list(changes)})
    return hashlib.sha256(blob.encode()).hexdigest()


def write_rootfs(entries: Sequence[RootEntry], path: Path) -> None:
    """Write ``entries`` as a tar whose bytes depend on the entries only (reproducible)."""
    with tarfile.open(path, "w", format=tarfile.USTAR_FORMAT) as tar:
        for entry in sorted(entries, key=lambda item: item.path):
            info = tarfile.TarInfo(entry.path)
            info.mode, info.mtime = entry.mode, 0
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            if entry.is_dir:
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
                continue
            data = entry.content()
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


# ----------------------------------------------------------------------------------------------
# the anvil image


def anvil_image_tag() -> str:
    return f"{ANVIL_REPOSITORY}:{ANVIL_VERSION}"


def ethereumjs_image_tag() -> str:
    return f"{ETHEREUMJS_REPOSITORY}:{EJS_VERSION}"


def pinned_anvil() -> Path:
    """The pinned anvil binary for the image (installed with npm when missing), Linux only."""
    _linux_only(anvil_image_tag())
    managed = managed_binary()
    return managed if managed.is_file() else install_managed()


def _linux_only(tag: str) -> None:
    if not sys.platform.startswith("linux"):
        raise DevnetError(
            f"the {tag} image holds this machine's binaries, so it is built on Linux only; "
            "build it on a Linux machine and `docker save`/`docker load` it here"
        )


def ensure_anvil_image(client: Any | None = None, *, rebuild: bool = False) -> str:
    """The tag of the anvil image, built now when missing or built from other inputs."""
    return _ensure_image(
        "anvil",
        anvil_image_tag(),
        lambda: anvil_rootfs(pinned_anvil()),
        ANVIL_CHANGES,
        client=client,
        rebuild=rebuild,
    )


def ensure_ethereumjs_image(client: Any | None = None, *, rebuild: bool = False) -> str:
    """The tag of the ethereumjs image, built now when missing or built from other inputs."""

    def entries() -> list[RootEntry]:
        _linux_only(ethereumjs_image_tag())
        node_binary = Path(os.path.realpath(ethereumjs.find_node()))
        install_dir = ethereumjs.install_managed().parents[len(EJS_CLI.parts) - 1]
        return ethereumjs_rootfs(node_binary, install_dir)

    return _ensure_image(
        "ethereumjs", ethereumjs_image_tag(), entries, ETHEREUMJS_CHANGES, client=client, rebuild=rebuild
    )


#: The images the plugin builds, by name: ``python -m pytest_gashammer.devnet.images NAME``.
BUILDERS = {"anvil": ensure_anvil_image, "ethereumjs": ensure_ethereumjs_image}
TAGS = {"anvil": anvil_image_tag, "ethereumjs": ethereumjs_image_tag}


def _ensure_image(
    name: str,
    tag: str,
    entries_of: Callable[[], list[RootEntry]],
    changes: Sequence[str],
    *,
    client: Any | None,
    rebuild: bool,
) -> str:
    entries = entries_of()
    digest = inputs_digest(entries, changes)
    client = client if client is not None else docker_client()
    if not rebuild and (image_labels(client, tag) or {}).get(INPUTS_LABEL) == digest:
        return tag
    from filelock import FileLock, Timeout

    workdir = cache_dir() / "images"
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        with FileLock(str(workdir / f"{name}.lock"), timeout=600):
            # Another process may have built it while this one waited for the lock.
            if not rebuild and (image_labels(client, tag) or {}).get(INPUTS_LABEL) == digest:
                return tag
            with tempfile.TemporaryDirectory(prefix="rootfs-", dir=workdir) as scratch:
                tarball = Path(scratch) / "rootfs.tar"
                write_rootfs(entries, tarball)
                _import(client, tarball, tag, [*changes, f"LABEL {INPUTS_LABEL}={digest}"])
    except Timeout:
        raise DevnetError(f"timed out waiting for another process building {tag}") from None
    built = image_labels(client, tag) or {}
    if built.get(INPUTS_LABEL) != digest:
        raise DevnetError(f"docker import did not produce {tag} with the expected content label")
    _prune_old_builds(client, name, keep=digest)
    return tag


def _import(client: Any, tarball: Path, tag: str, changes: Sequence[str]) -> None:
    import docker

    repository, _, version = tag.rpartition(":")
    try:
        # Returns the daemon's raw JSON status as a string; success is checked by the label above.
        client.api.import_image(src=str(tarball), repository=repository, tag=version, changes=list(changes))
    except docker.errors.APIError as exc:
        raise DevnetError(f"docker import of {tag} failed: {_one_line(exc)}") from None


def _prune_old_builds(client: Any, image: str, *, keep: str) -> None:
    """Remove untagged earlier builds of the plugin's ``image`` (best effort: one may be in use)."""
    import docker

    try:
        found = client.images.list(filters={"label": f"{IMAGE_LABEL}={image}", "dangling": True})
    except docker.errors.APIError:
        return
    for old in found:
        if (old.labels or {}).get(INPUTS_LABEL) != keep:
            with contextlib.suppress(docker.errors.APIError):
                client.images.remove(old.id)


def _one_line(value: object) -> str:
    return " ".join(str(value).split())[:300]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pytest_gashammer.devnet.images",
        description="Build the plugin's container images locally (no registry) and print their tags.",
    )
    parser.add_argument(
        "image",
        choices=sorted(BUILDERS),
        help="anvil: gashammer/anvil:<pinned anvil version>; ethereumjs: gashammer/ethereumjs:<pinned client version>",
    )
    parser.add_argument("--rebuild", action="store_true", help="build again even when the image is current")
    args = parser.parse_args(argv)
    try:
        print(BUILDERS[args.image](rebuild=args.rebuild))
    except GashammerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
