"""Where a devnet's L1 is: plain data that every backend, the hive and its workers can hand around.

A devnet's ``l1`` is an :class:`L1Endpoint` or ``None``. The embedded devnet starts its own L1 and
says so with ``owned=True``; an L1 named by ``--gashammer-l1-url`` is one the plugin did not start
(``owned=False``): readers may read it, only an owned L1 may be sent to.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

_ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}")


@dataclasses.dataclass(frozen=True)
class L1Endpoint:
    """A rollup's L1: its JSON-RPC URL, chain id and the contracts the rollup posts to."""

    rpc_url: str
    chain_id: int
    sequencer_inbox: str
    bridge: str | None = None
    rollup: str | None = None
    #: The first L1 block to read the rollup's events from; 0 when unknown.
    deployed_at_block: int = 0
    #: The plugin started this L1 and may send transactions to it.
    owned: bool = False
    #: The L2 may have Arbitrum's internal transactions (types 0x64 and up, never in a batch): the
    #: monitor then reads every L2 block's full transactions to tell them apart; an L2 known to have
    #: none (the embedded devnet's anvil) is read by hashes only, which costs the node far less.
    l2_internal_transactions: bool = True

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> L1Endpoint:
        return cls(
            **{field.name: data[field.name] for field in dataclasses.fields(cls) if field.name in data}
        )


def address_problem(text: str) -> str | None:
    """Why ``text`` is not a contract address (0x and 40 hex digits), or None when it is one."""
    if _ADDRESS.fullmatch(text.strip()):
        return None
    return f"{text!r} is not an address; pass 0x and 40 hex digits"


def l1_url_problem(text: str) -> str | None:
    """Why ``text`` is not an L1 JSON-RPC URL (http:// or https:// and a host), or None."""
    scheme, _, rest = text.strip().partition("://")
    if scheme.lower() in ("http", "https") and rest and not rest.startswith("/"):
        return None
    return f"{text!r} is not an http(s) URL; pass e.g. http://l1-node:8545"
