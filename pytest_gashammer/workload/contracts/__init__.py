"""The contracts the built-in templates deploy, precompiled.

Solidity sources live next to this file; ``artifacts.json`` holds what the pinned solc made of
them (ABI, init code, runtime code, function selectors) together with the compiler version and
settings. Templates load bytecode from here and never compile at run time. Regenerate with
``python -m pytest_gashammer.workload.contracts.build`` after editing a source.
"""

from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import dataclass
from importlib import resources
from typing import Any

ARTIFACTS_FILE = "artifacts.json"


@dataclass(frozen=True)
class Artifact:
    """One compiled contract."""

    name: str
    source: str
    abi: list[dict[str, Any]]
    bytecode: bytes
    deployed_bytecode: bytes
    #: Function signature (``"transfer(address,uint256)"``) → 4-byte selector.
    selectors: dict[str, bytes]

    def selector(self, signature: str) -> bytes:
        try:
            return self.selectors[signature]
        except KeyError:
            raise KeyError(
                f"{self.name} has no function {signature}; it has {sorted(self.selectors)}"
            ) from None


def source_files(package: str = __name__) -> dict[str, str]:
    """Every Solidity source shipped with ``package`` (by default this one): file name → text."""
    folder = resources.files(package)
    return {
        entry.name: entry.read_text(encoding="utf-8")
        for entry in sorted(folder.iterdir(), key=lambda item: item.name)
        if entry.name.endswith(".sol")
    }


def source_digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@functools.cache
def load_artifacts() -> dict[str, Any]:
    """The parsed ``artifacts.json`` (cached)."""
    text = resources.files(__name__).joinpath(ARTIFACTS_FILE).read_text(encoding="utf-8")
    data: dict[str, Any] = json.loads(text)
    return data


@functools.cache
def artifact(name: str) -> Artifact:
    """The compiled contract ``name`` (e.g. ``"HammerToken"``)."""
    contracts = load_artifacts()["contracts"]
    if name not in contracts:
        raise KeyError(f"no compiled contract {name!r}; known: {sorted(contracts)}")
    entry = contracts[name]
    return Artifact(
        name=name,
        source=entry["source"],
        abi=entry["abi"],
        bytecode=bytes.fromhex(entry["bytecode"].removeprefix("0x")),
        deployed_bytecode=bytes.fromhex(entry["deployedBytecode"].removeprefix("0x")),
        selectors={
            signature: bytes.fromhex(selector) for signature, selector in entry["methodIdentifiers"].items()
        },
    )
