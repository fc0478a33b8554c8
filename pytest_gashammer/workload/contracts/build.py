"""Regenerate (or check) ``artifacts.json`` from the Solidity sources with the pinned solc.

    python -m pytest_gashammer.workload.contracts.build           # rewrite artifacts.json
    python -m pytest_gashammer.workload.contracts.build --check   # exit 1 if it is out of date

Needs Node.js and npm: the pinned ``solc`` npm package is installed into the user cache on first
use (see :mod:`pytest_gashammer.devnet.solc`). The settings are fixed and the metadata hash is
left out of the bytecode, so the same sources always give byte-identical artifacts.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from pytest_gashammer.devnet.solc import NPM_PACKAGE, SOLC_VERSION, compile_sources
from pytest_gashammer.workload.contracts import ARTIFACTS_FILE, source_digest, source_files

SETTINGS: dict[str, Any] = {
    "optimizer": {"enabled": True, "runs": 200},
    "evmVersion": "cancun",
    "metadata": {"bytecodeHash": "none"},
    "outputSelection": {
        "*": {"*": ["abi", "evm.bytecode.object", "evm.deployedBytecode.object", "evm.methodIdentifiers"]}
    },
}


def compile_artifacts(*, install: bool = True) -> dict[str, Any]:
    """Compile every shipped source; the document ``artifacts.json`` holds."""
    sources = source_files()
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


def artifacts_path() -> Path:
    return Path(__file__).with_name(ARTIFACTS_FILE)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pytest_gashammer.workload.contracts.build", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--check", action="store_true", help="do not write; exit 1 if artifacts.json is stale"
    )
    args = parser.parse_args(argv)
    text = render(compile_artifacts())
    path = artifacts_path()
    current = path.read_text(encoding="utf-8") if path.is_file() else ""
    if args.check:
        if current != text:
            print(
                f"{path} is out of date; run python -m pytest_gashammer.workload.contracts.build",
                file=sys.stderr,
            )
            return 1
        print(f"{path} is up to date (solc {SOLC_VERSION})")
        return 0
    if current == text:
        print(f"{path} unchanged (solc {SOLC_VERSION})")
    else:
        path.write_text(text, encoding="utf-8")
        print(f"wrote {path} (solc {SOLC_VERSION})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
