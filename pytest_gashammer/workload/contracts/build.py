"""Regenerate (or check) each ``artifacts.json`` from its Solidity sources with the pinned solc.

    python -m pytest_gashammer.workload.contracts.build           # rewrite every artifacts.json
    python -m pytest_gashammer.workload.contracts.build --check   # exit 1 if one is out of date

Two packages ship Solidity (:data:`PACKAGES`): the templates' contracts (this one) and the L1's
rollup stand-in (``pytest_gashammer.l1.solidity``), each with its sources and its own
``artifacts.json``; one build keeps both on the same compiler and settings.

Needs Node.js and npm: the pinned ``solc`` npm package is installed into the user cache on first
use (see :mod:`pytest_gashammer.devnet.solc`). The settings are fixed and the metadata hash is
left out of the bytecode, so the same sources always give byte-identical artifacts.
"""

from __future__ import annotations

import argparse
import json
import sys
from importlib import resources
from pathlib import Path
from typing import Any

from pytest_gashammer.devnet.solc import NPM_PACKAGE, SOLC_VERSION, compile_sources
from pytest_gashammer.workload.contracts import ARTIFACTS_FILE, source_digest, source_files

#: Every package of ours that ships Solidity sources next to the ``artifacts.json`` made of them.
PACKAGES = ("pytest_gashammer.workload.contracts", "pytest_gashammer.l1.solidity")

SETTINGS: dict[str, Any] = {
    "optimizer": {"enabled": True, "runs": 200},
    "evmVersion": "cancun",
    "metadata": {"bytecodeHash": "none"},
    "outputSelection": {
        "*": {"*": ["abi", "evm.bytecode.object", "evm.deployedBytecode.object", "evm.methodIdentifiers"]}
    },
}


def compile_artifacts(*, install: bool = True, package: str = PACKAGES[0]) -> dict[str, Any]:
    """Compile the sources of ``package``; the document its ``artifacts.json`` holds."""
    sources = source_files(package)
    output = compile_sources(sources, SETTINGS, version=SOLC_VERSION, install=install)
    contracts: dict[str, Any] = {}
    for source_name in sorted(output.get("contracts", {})):
        for contract_name, compiled in sorted(output["contracts"][source_name].items()):
            if contract_name in contracts:
                raise SystemExit(f"contract name {contract_name} appears in two sources; rename one")
            contracts[contract_name] = {
                "source": source_name,
                "abi": compiled["abi"],
                "bytecode": "0x" + compiled["evm"]["bytecode"]["object"],
                "deployedBytecode": "0x" + compiled["evm"]["deployedBytecode"]["object"],
                "methodIdentifiers": dict(sorted(compiled["evm"]["methodIdentifiers"].items())),
            }
    return {
        "compiler": {
            "npmPackage": f"{NPM_PACKAGE}@{SOLC_VERSION}",
            "version": output["solcVersion"],
            "settings": SETTINGS,
        },
        "sources": {name: {"sha256": source_digest(text)} for name, text in sources.items()},
        "contracts": contracts,
    }


def render(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2, sort_keys=True) + "\n"


def artifacts_path(package: str = PACKAGES[0]) -> Path:
    return Path(str(resources.files(package).joinpath(ARTIFACTS_FILE)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pytest_gashammer.workload.contracts.build", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--check", action="store_true", help="do not write; exit 1 if artifacts.json is stale"
    )
    args = parser.parse_args(argv)
    stale = 0
    for package in PACKAGES:
        text = render(compile_artifacts(package=package))
        path = artifacts_path(package)
        current = path.read_text(encoding="utf-8") if path.is_file() else ""
        if args.check:
            if current != text:
                print(
                    f"{path} is out of date; run python -m pytest_gashammer.workload.contracts.build",
                    file=sys.stderr,
                )
                stale += 1
            else:
                print(f"{path} is up to date (solc {SOLC_VERSION})")
        elif current == text:
            print(f"{path} unchanged (solc {SOLC_VERSION})")
        else:
            path.write_text(text, encoding="utf-8")
            print(f"wrote {path} (solc {SOLC_VERSION})")
    return 1 if stale else 0


if __name__ == "__main__":
    raise SystemExit(main())
