"""Finding anvil, or installing the pinned npm package ``@foundry-rs/anvil`` into a user cache.

Lookup order: an explicit path (``--gashammer-anvil`` / ``GASHAMMER_ANVIL``), then ``anvil`` on
PATH, then a project-managed install. The managed install runs ``npm install`` once per version
into ``<cache>/anvil-<version>`` under a file lock, so xdist workers that race to it wait for one
installer instead of corrupting each other's tree. The platform package ships the native binary;
the plugin runs that binary directly rather than the Node.js wrapper, so there is no middle
process that could outlive a crash.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path

from pytest_gashammer.devnet.npm import cache_dir, install_into_cache
from pytest_gashammer.errors import DevnetError

ANVIL_VERSION = "1.7.1"
NPM_PACKAGE = "@foundry-rs/anvil"

_HOW_TO_GET = (
    f"install Foundry's anvil (https://getfoundry.sh) or Node.js with npm (the plugin then installs "
    f"{NPM_PACKAGE}@{ANVIL_VERSION} itself), or pass --gashammer-anvil PATH"
)


def platform_package() -> tuple[str, str]:
    """(npm platform package, binary name) for this machine."""
    machine = platform.machine().lower()
    arch = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(machine)
    system = {"linux": "linux", "darwin": "darwin", "win32": "win32"}.get(sys.platform)
    if arch is None or system is None or (system == "win32" and arch != "amd64"):
        raise DevnetError(f"no prebuilt anvil for {sys.platform}/{machine}; {_HOW_TO_GET}")
    binary = "anvil.exe" if system == "win32" else "anvil"
    return f"{NPM_PACKAGE}-{system}-{arch}", binary


def managed_binary(version: str = ANVIL_VERSION) -> Path:
    package, binary = platform_package()
    return cache_dir() / f"anvil-{version}" / "node_modules" / package / "bin" / binary


def find_anvil(explicit: str | None = None, *, install: bool = True) -> Path:
    """The anvil binary to run, installing the pinned version when nothing else is available."""
    explicit = explicit or os.environ.get("GASHAMMER_ANVIL")
    if explicit:
        path = Path(explicit).expanduser()
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise DevnetError(
                f"anvil at {explicit!r} (--gashammer-anvil / GASHAMMER_ANVIL) is not an executable file"
            )
        return path
    on_path = shutil.which("anvil")
    if on_path:
        return Path(on_path)
    managed = managed_binary()
    if managed.is_file():
        return managed
    if not install:
        raise DevnetError(f"anvil not found; {_HOW_TO_GET}")
    return install_managed()


def install_managed(version: str = ANVIL_VERSION) -> Path:
    """``npm install`` the pinned anvil into the cache, once, under a file lock."""
    package, binary = platform_package()
    relative = Path("node_modules") / package / "bin" / binary

    def installed(directory: Path) -> bool:
        return (directory / relative).is_file()

    target = install_into_cache(
        f"anvil-{version}",
        [f"{NPM_PACKAGE}@{version}", f"{package}@{version}"],
        installed=installed,
        how_to_get=_HOW_TO_GET,
    )
    (target / relative).chmod(0o755)
    return target / relative


def anvil_version(binary: Path) -> str:
    try:
        completed = subprocess.run(
            [str(binary), "--version"], capture_output=True, text=True, timeout=20, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise DevnetError(f"cannot run anvil at {binary} ({exc}); {_HOW_TO_GET}") from None
    first = completed.stdout.strip().splitlines()
    return first[0] if first else "anvil (unknown version)"
