"""Project-managed tools installed from the npm registry into the user cache, once, under a file lock.

Several pytest-xdist workers may need the same tool at the same moment; the lock makes one of them
install while the others wait, and the install goes to a staging directory that is renamed into
place only when complete, so nobody ever sees a half-installed tree.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

from pytest_gashammer.errors import DevnetError


def cache_dir() -> Path:
    """Where managed tools live: ``GASHAMMER_CACHE_DIR``, else the user cache directory."""
    explicit = os.environ.get("GASHAMMER_CACHE_DIR")
    if explicit:
        return Path(explicit)
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Caches" / "pytest-gashammer"
    if sys.platform == "win32":
        return Path(os.environ.get("LOCALAPPDATA", Path.home())) / "pytest-gashammer" / "cache"
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "pytest-gashammer"


def install_into_cache(
    name: str,
    packages: Sequence[str],
    *,
    installed: Callable[[Path], bool],
    how_to_get: str,
    error: type[DevnetError] = DevnetError,
) -> Path:
    """``npm install packages`` into ``<cache>/<name>`` unless ``installed(<cache>/<name>)`` already holds.

    Returns the install directory. Every failure is one ``error`` line ending with ``how_to_get``.
    """
    from filelock import FileLock, Timeout

    target = cache_dir() / name
    if installed(target):
        return target
    npm = shutil.which("npm")
    if npm is None:
        raise error(f"{name} is not installed and npm is not available; {how_to_get}")
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        with FileLock(str(target) + ".lock", timeout=600):
            if installed(target):
                return target
            staging = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=target.parent))
            command = [npm, "install", "--prefix", str(staging), "--no-audit", "--no-fund", "--no-save",
                       "--ignore-scripts", "--loglevel=error", *packages]  # fmt: skip
            try:
                completed = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
            except (OSError, subprocess.TimeoutExpired) as exc:
                shutil.rmtree(staging, ignore_errors=True)
                raise error(
                    f"installing {' '.join(packages)} with npm failed ({exc}); {how_to_get}"
                ) from None
            if completed.returncode != 0 or not installed(staging):
                shutil.rmtree(staging, ignore_errors=True)
                reason = (completed.stderr or completed.stdout).strip().splitlines()
                detail = reason[-1] if reason else f"exit code {completed.returncode}"
                raise error(f"npm could not install {' '.join(packages)}: {detail}; {how_to_get}")
            if target.exists():
                shutil.rmtree(target, ignore_errors=True)
            staging.rename(target)
            return target
    except Timeout:
        raise error(f"timed out waiting for another process installing into {target}") from None
