"""SSTORE-heavy calls: every transaction writes ``slots`` storage slots never written before.

Gas determinism is the point of the design. Writing a slot costs 22,100 gas when it goes from zero
to nonzero (cold) but much less when it already holds a value, so a contract that rewrote the same
slots would get cheaper after the first call and the gas model would drift. Here every call writes
*fresh* slots: :file:`contracts/SlotFiller.sol` keeps, per sender, a cursor to the first unwritten
slot of that sender's own region, writes the next ``slots`` slots (``salt ^ index``, always
nonzero) and advances the cursor. Setup primes every sender's cursor to 1, so the cursor update is
a nonzero-to-nonzero write on every call, including a sender's first. The gas of a call depends
only on ``slots``::

    intrinsic(calldata) + STORAGE_BASE_GAS + slots * STORAGE_SLOT_GAS

with :data:`STORAGE_SLOT_GAS` = 22,100 for the write plus the loop's bookkeeping. The state grows
by ``slots`` slots per transaction, like a chain that keeps taking new data.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any, ClassVar

from pytest_gashammer.workload.base import SetupContext, Template, TemplateContext
from pytest_gashammer.workload.contracts import artifact
from pytest_gashammer.workload.encoding import NONZERO, call_with_address_array, chunked, word
from pytest_gashammer.workload.gas import transaction_gas

CONTRACT = "SlotFiller"
FILL = "fill(uint256,uint256)"
PRIME = "prime(address[])"
#: Gas a ``fill`` call uses besides its slot writes (dispatch, the cursor's cold read and
#: nonzero-to-nonzero write, the region's mapping key), for the committed bytecode.
STORAGE_BASE_GAS = 5_584
#: Gas per slot written: 22,100 (cold, zero to nonzero) plus the loop around it.
STORAGE_SLOT_GAS = 22_226
#: The most slots one transaction may write (about 11 Mgas, inside the 16.7 Mgas cap of EIP-7825).
MAX_SLOTS = 500
#: Senders primed per setup transaction (about 25k gas each).
PRIME_BATCH = 200


class StorageTemplate(Template):
    """``fill(slots, salt)``: write ``slots`` fresh storage slots with a seeded nonzero salt."""

    name: ClassVar[str] = "storage"
    expected_status: ClassVar[int] = 1
    gas_tolerance: ClassVar[float] = 0.01
    params: ClassVar[dict[str, Any]] = {"slots": 10}

    def __init__(self, context: TemplateContext, params: Mapping[str, Any] | None = None) -> None:
        super().__init__(context, params)
        self.contract: str | None = None
        self._prefix = artifact(CONTRACT).selector(FILL) + word(int(self.options["slots"]))

    @classmethod
    def validate_params(cls, params: dict[str, Any], label: str) -> None:
        cls.require_between(params, "slots", 1, MAX_SLOTS, label, "storage slots written per transaction")

    @classmethod
    def nominal_gas_for(cls, params: Mapping[str, Any]) -> float:
        slots = int(params.get("slots", cls.params["slots"]))
        # The salt has no zero byte, so the calldata cost does not depend on it.
        data = artifact(CONTRACT).selector(FILL) + word(slots) + b"\x01" * 32
        return float(transaction_gas(data, execution=STORAGE_BASE_GAS + slots * STORAGE_SLOT_GAS))

    async def setup(self, ctx: SetupContext) -> dict[str, Any]:
        filler = artifact(CONTRACT)
        address = await ctx.deploy(filler.bytecode)
        prime = filler.selector(PRIME)
        await ctx.send_from_funder(
            [
                {"to": address, "value": 0, "data": call_with_address_array(prime, batch)}
                for batch in chunked(list(ctx.sender_addresses), PRIME_BATCH)
            ]
        )
        return {"contract": address}

    def use_setup(self, data: Mapping[str, Any]) -> None:
        super().use_setup(data)
        self.contract = str(data["contract"])

    def build(self, sender_index: int, rng: random.Random) -> dict[str, Any]:
        if self.contract is None:
            raise RuntimeError("storage: build() before use_setup(); the contract address comes from setup")
        salt = rng.randbytes(32).translate(NONZERO)
        return {"to": self.contract, "value": 0, "data": self._prefix + salt}
