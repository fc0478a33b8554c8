"""Version and build identity, sent in every request's headers."""

from __future__ import annotations

import functools
import os
import subprocess
from pathlib import Path

__version__ = "0.1.0"


@functools.cache
def build_sha() -> str:
    """Short git commit of the installed source tree, or ``unknown`` outside a checkout.

    ``GASHAMMER_BUILD_SHA`` wins so that packaged builds can stamp their own identity.
    """
    from_env = os.environ.get("GASHAMMER_BUILD_SHA")
    if from_env:
        return from_env
    source_dir = Path(__file__).resolve().parent
    try:
        completed = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"],
            cwd=source_dir,
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    sha = completed.stdout.strip()
    return sha if completed.returncode == 0 and sha else "unknown"


def request_headers() -> dict[str, str]:
    """The identification headers every JSON-RPC request carries."""
    sha = build_sha()
    return {
        "User-Agent": f"GasHammer/{__version__} ({sha})",
        "X-Powered-By": f"GasHammer/{__version__}",
        "X-GasHammer-Version": __version__,
        "X-GasHammer-Build": sha,
    }
