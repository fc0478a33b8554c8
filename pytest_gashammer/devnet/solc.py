"""The pinned Solidity compiler: the npm package ``solc`` (solcjs), installed into the user cache.

The built-in templates ship compiled contracts (``pytest_gashammer/workload/contracts``), so a run
never compiles anything. This module is for regenerating those artifacts and for checking that the
committed ones match their sources. It installs ``solc@<SOLC_VERSION>`` with npm once into
``<cache>/solc-<version>`` under a file lock, exactly as :mod:`pytest_gashammer.devnet.anvil` installs
anvil, and drives solcjs's standard-JSON interface with ``node``.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

from pytest_gashammer.devnet.npm import cache_dir, install_into_cache
from pytest_gashammer.errors import DevnetError

SOLC_VERSION = "0.8.30"
NPM_PACKAGE = "solc"


def _how_to_get(version: str) -> str:
    return f"install Node.js with npm (the plugin then installs {NPM_PACKAGE}@{version} into {cache_dir()})"


# Reads standard JSON on stdin, compiles with the solc package at argv[1], writes standard JSON out.
_NODE_DRIVER = """
const solc = require(process.argv[1]);
const chunks = [];
process.stdin.on('data', (chunk) => chunks.push(chunk));
process.stdin.on('end', () => {
  const output = solc.compile(Buffer.concat(chunks).toString('utf8'));
  process.stdout.write(JSON.stringify({version: solc.version(), output: JSON.parse(output)}));
});
"""


class SolcError(DevnetError):
    """The pinned solc could not be found, installed or run, or the sources did not compile."""


def managed_package(version: str = SOLC_VERSION) -> Path:
    """Where the managed solcjs package lives (the directory holding its ``package.json``)."""
    return cache_dir() / f"solc-{version}" / "node_modules" / NPM_PACKAGE


def _installed(package: Path) -> bool:
    return (package / "package.json").is_file() and (package / "soljson.js").is_file()


def find_solc(*, install: bool = True, version: str = SOLC_VERSION) -> Path:
    """The solcjs package directory for the pinned version, installing it when it is missing."""
    package = managed_package(version)
    if _installed(package):
        return package
    if not install:
        raise SolcError(f"{NPM_PACKAGE}@{version} is not installed; {_how_to_get(version)}")
    return install_managed(version)


def install_managed(version: str = SOLC_VERSION) -> Path:
    """``npm install`` the pinned solcjs into the cache, once, under a file lock."""
    relative = managed_package(version).relative_to(cache_dir() / f"solc-{version}")
    target = install_into_cache(
        f"solc-{version}",
        [f"{NPM_PACKAGE}@{version}"],
        installed=lambda directory: _installed(directory / relative),
        how_to_get=_how_to_get(version),
        error=SolcError,
    )
    return target / relative


def compile_standard_json(
    standard_input: dict[str, Any], *, version: str = SOLC_VERSION, install: bool = True
) -> dict[str, Any]:
    """Compile a standard-JSON input with the pinned solcjs; ``{"version": ..., "output": ...}``."""
    node = shutil.which("node")
    if node is None:
        raise SolcError(f"node is not available to run solcjs; {_how_to_get(version)}")
    package = find_solc(install=install, version=version)
    try:
        completed = subprocess.run(
            [node, "-e", _NODE_DRIVER, str(package)],
            input=json.dumps(standard_input),
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise SolcError(f"running solcjs {version} with node failed ({exc})") from None
    if completed.returncode != 0:
        lines = completed.stderr.strip().splitlines()
        raise SolcError(f"solcjs {version} exited with {completed.returncode}: {lines[-1] if lines else ''}")
    try:
        answer: dict[str, Any] = json.loads(completed.stdout)
    except ValueError:
        raise SolcError(f"solcjs {version} wrote output that is not JSON") from None
    return answer


def compile_sources(
    sources: dict[str, str],
    settings: dict[str, Any],
    *,
    version: str = SOLC_VERSION,
    install: bool = True,
) -> dict[str, Any]:
    """Compile Solidity ``sources`` (file name → text) with ``settings``; solc's standard-JSON output.

    Raises :class:`SolcError` naming the first error when the sources do not compile. The answer
    is solc's output object with one extra key, ``"solcVersion"``: the full version string of the
    compiler that produced it.
    """
    standard_input = {
        "language": "Solidity",
        "sources": {name: {"content": text} for name, text in sources.items()},
        "settings": settings,
    }
    answer = compile_standard_json(standard_input, version=version, install=install)
    output: dict[str, Any] = answer["output"]
    errors = [entry for entry in output.get("errors", []) if entry.get("severity") == "error"]
    if errors:
        first = errors[0].get("formattedMessage") or errors[0].get("message", "")
        raise SolcError(f"solc {version}: {len(errors)} error(s); first: {first.strip().splitlines()[0]}")
    output["solcVersion"] = answer["version"]
    return output
