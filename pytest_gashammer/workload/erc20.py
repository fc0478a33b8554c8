"""ERC-20 transfers: a token deployed at setup, every sender holding a balance, small transfers.

Setup deploys :file:`contracts/HammerToken.sol` from the funder and mints a balance to every
sender and to a set of recipients ("holders") derived from the run seed, in batches. Each
transaction moves 1 to 255 token units from its sender to a holder chosen by the seeded
generator. Both balances are nonzero before and after, and holder addresses have no zero byte, so
every transfer runs the same path over the same storage shape with calldata of the same cost:
the gas is exactly :data:`TRANSFER_EXECUTION_GAS` plus intrinsic gas.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any, ClassVar

from pytest_gashammer.workload.base import SetupContext, Template, TemplateContext
from pytest_gashammer.workload.contracts import artifact
from pytest_gashammer.workload.encoding import (
    NONZERO,
    address_word,
    call_with_address_array,
    chunked,
    to_address,
)
from pytest_gashammer.workload.gas import transaction_gas

CONTRACT = "HammerToken"
TRANSFER = "transfer(address,uint256)"
MINT = "mint(address[],uint256)"
#: Gas a ``transfer`` between two funded accounts uses inside the EVM (two cold balance reads,
#: two nonzero-to-nonzero writes, the Transfer log, dispatch), for the committed bytecode.
TRANSFER_EXECUTION_GAS = 12_754
#: Token units minted to every sender and holder: far more than any run can move.
MINT_AMOUNT = 10**30
#: Addresses per mint transaction (about 25k gas each).
MINT_BATCH = 200
HOLDER_SALT = 0xE20


def holder_addresses(seed: int, count: int) -> list[str]:
    """Recipient addresses derived from ``seed``, none with a zero byte (constant calldata cost)."""
    rng = random.Random(seed * 1_000_033 + HOLDER_SALT)
    return [to_address(rng.randbytes(20).translate(NONZERO)) for _ in range(count)]


class Erc20TransferTemplate(Template):
    """``transfer(holder, amount)`` on a token deployed at setup; amount 1..255, holder seeded."""

    name: ClassVar[str] = "erc20"
    expected_status: ClassVar[int] = 1
    gas_tolerance: ClassVar[float] = 0.01
    params: ClassVar[dict[str, Any]] = {"holders": 64}

    def __init__(self, context: TemplateContext, params: Mapping[str, Any] | None = None) -> None:
        super().__init__(context, params)
        self.holders = holder_addresses(context.seed, int(self.options["holders"]))
        self.token: str | None = None
        self._prefixes: list[bytes] = []

    @classmethod
    def validate_params(cls, params: dict[str, Any], label: str) -> None:
        cls.require_between(params, "holders", 1, 10_000, label, "recipients minted at setup")

    @classmethod
    def nominal_gas_for(cls, params: Mapping[str, Any]) -> float:
        # Calldata: selector, a holder address (no zero byte), one nonzero amount byte.
        data = artifact(CONTRACT).selector(TRANSFER) + bytes(12) + b"\x01" * 20 + bytes(31) + b"\x01"
        return float(transaction_gas(data, execution=TRANSFER_EXECUTION_GAS))

    async def setup(self, ctx: SetupContext) -> dict[str, Any]:
        token = artifact(CONTRACT)
        address = await ctx.deploy(token.bytecode)
        accounts = list(ctx.sender_addresses) + self.holders
        mint = token.selector(MINT)
        await ctx.send_from_funder(
            [
                {"to": address, "value": 0, "data": call_with_address_array(mint, batch, MINT_AMOUNT)}
                for batch in chunked(accounts, MINT_BATCH)
            ]
        )
        return {"token": address, "holders": self.holders}

    def use_setup(self, data: Mapping[str, Any]) -> None:
        super().use_setup(data)
        self.token = str(data["token"])
        self.holders = [str(holder) for holder in data.get("holders", self.holders)]
        selector = artifact(CONTRACT).selector(TRANSFER)
        # Everything but the amount's last byte, per holder: build only appends one byte.
        self._prefixes = [selector + address_word(holder) + bytes(31) for holder in self.holders]

    def build(self, sender_index: int, rng: random.Random) -> dict[str, Any]:
        if self.token is None:
            raise RuntimeError("erc20: build() before use_setup(); the token address comes from setup")
        prefix = self._prefixes[rng.randrange(len(self._prefixes))]
        return {"to": self.token, "value": 0, "data": prefix + bytes((rng.randrange(1, 256),))}
