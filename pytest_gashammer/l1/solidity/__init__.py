"""Our own L1 contracts (the rollup stand-in), precompiled.

The Solidity source lives next to this file; ``artifacts.json`` holds what the pinned solc made of it,
written by ``python -m pytest_gashammer.workload.contracts.build`` like the templates' contracts
(tests/acceptance/test_contract_artifacts.py checks both against their sources). Loaded with the
standard library only: this package sits below ``workload`` and ``devnet``.
"""

from __future__ import annotations

import functools
import json
from importlib import resources
from typing import Any

ARTIFACTS_FILE = "artifacts.json"


@functools.cache
def load_artifacts() -> dict[str, Any]:
    """The parsed ``artifacts.json`` (cached)."""
    text = resources.files(__name__).joinpath(ARTIFACTS_FILE).read_text(encoding="utf-8")
    data: dict[str, Any] = json.loads(text)
    return data


def compiled(name: str) -> dict[str, Any]:
    """The artifact entry of contract ``name``: ``abi``, ``bytecode`` (0x-hex), ``methodIdentifiers``."""
    contracts = load_artifacts()["contracts"]
    if name not in contracts:
        raise KeyError(f"no compiled contract {name!r}; known: {sorted(contracts)}")
    entry: dict[str, Any] = contracts[name]
    return entry
