"""Calls that revert by design: ``Reverter.fail(tag)`` always reverts with ``Refused(tag)``.

A correct chain includes these transactions with receipt status 0; the oracle expects exactly
that, so a revert here is the promise, not an error. The gas used is that of the reverting call:
intrinsic gas plus the fixed work up to ``REVERT`` (:data:`REVERT_EXECUTION_GAS`); the rest of
the gas limit is returned. ``eth_estimateGas`` cannot estimate a call that reverts, so the template
is not calibrated (``calibrate = False``) and its model starts from the exact nominal figure, then
follows the receipts. The gas limit leaves ample headroom, so the call reverts on its own
``REVERT`` rather than running out of gas.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any, ClassVar

from pytest_gashammer.workload.base import SetupContext, Template, TemplateContext
from pytest_gashammer.workload.contracts import artifact
from pytest_gashammer.workload.encoding import NONZERO
from pytest_gashammer.workload.gas import transaction_gas

CONTRACT = "Reverter"
FAIL = "fail(uint256)"
#: Gas ``fail`` uses up to and including its ``REVERT``, for the committed bytecode.
REVERT_EXECUTION_GAS = 260
#: Gas above the model the limit always leaves, so the revert is never an out-of-gas.
HEADROOM = 20_000


class RevertTemplate(Template):
    """A call that always reverts: included with receipt status 0."""

    name: ClassVar[str] = "revert"
    expected_status: ClassVar[int] = 0
    gas_tolerance: ClassVar[float] = 0.01
    calibrate: ClassVar[bool] = False

    def __init__(self, context: TemplateContext, params: Mapping[str, Any] | None = None) -> None:
        super().__init__(context, params)
        self.contract: str | None = None
        self._selector = artifact(CONTRACT).selector(FAIL)
        self._min_limit = int(self.nominal_gas_for(self.options)) + HEADROOM

    @classmethod
    def nominal_gas_for(cls, params: Mapping[str, Any]) -> float:
        # The tag has no zero byte, so the calldata cost does not depend on it.
        data = artifact(CONTRACT).selector(FAIL) + b"\x01" * 32
        return float(transaction_gas(data, execution=REVERT_EXECUTION_GAS))

    async def setup(self, ctx: SetupContext) -> dict[str, Any]:
        return {"contract": await ctx.deploy(artifact(CONTRACT).bytecode)}

    def use_setup(self, data: Mapping[str, Any]) -> None:
        super().use_setup(data)
        self.contract = str(data["contract"])

    def build(self, sender_index: int, rng: random.Random) -> dict[str, Any]:
        if self.contract is None:
            raise RuntimeError("revert: build() before use_setup(); the contract address comes from setup")
        return {
            "to": self.contract,
            "value": 0,
            "data": self._selector + rng.randbytes(32).translate(NONZERO),
        }

    def gas_limit(self, modelled_gas: float) -> int:
        return max(int(modelled_gas * 1.25), self._min_limit)
