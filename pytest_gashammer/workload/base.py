"""The contract every transaction template honours.

A template turns "send one more transaction of this kind from sender *i*" into transaction
fields. It declares its gas model (a nominal figure, calibrated at setup with ``eth_estimateGas``
and corrected from receipts), the receipt status it expects, and any setup it needs. Templates
are referenced by name or import path, never pickled, so an edge in another process can build
the same transactions from the same seed.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any, ClassVar


@dataclass
class TemplateContext:
    """What a template may use when building transactions."""

    chain_id: int
    seed: int
    sender_addresses: list[str]
    extra: dict[str, Any] = field(default_factory=dict)


class Template:
    """Base class for transaction templates.

    Subclasses set :attr:`name`, :attr:`nominal_gas` and override :meth:`build`. ``build`` must be
    deterministic given ``rng`` (seeded per edge from the run seed) and must not do I/O.
    """

    name: ClassVar[str] = ""
    #: Gas one transaction is expected to use before calibration.
    nominal_gas: ClassVar[int] = 21_000
    #: Receipt status a correct chain gives this template's transactions (1 success, 0 revert).
    expected_status: ClassVar[int] = 1
    #: Relative deviation of observed gas from the model that the oracle tolerates.
    gas_tolerance: ClassVar[float] = 0.10

    def __init__(self, context: TemplateContext) -> None:
        self.context = context

    def build(self, sender_index: int, rng: random.Random) -> dict[str, Any]:
        """Fields ``to``, ``value`` (wei, int) and ``data`` (bytes) for one transaction."""
        raise NotImplementedError

    def estimate_request(self, sender: str) -> dict[str, Any]:
        """A call object for ``eth_estimateGas`` representative of :meth:`build`'s output."""
        fields = self.build(0, random.Random(self.context.seed))
        request: dict[str, Any] = {"from": sender, "value": hex(int(fields.get("value", 0)))}
        if fields.get("to"):
            request["to"] = fields["to"]
        data = fields.get("data") or b""
        if data:
            request["data"] = "0x" + bytes(data).hex()
        return request

    def gas_limit(self, modelled_gas: float) -> int:
        """The gas limit to sign with, given the current model. Headroom guards against estimate drift."""
        return max(21_000, int(modelled_gas * 1.25))
