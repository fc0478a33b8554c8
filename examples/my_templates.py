"""A user-defined template: every sender bumps its own counter in a tiny contract.

Referenced from a test by import path, ``workload={"my_templates:SenderCounter": ...}``. When
pytest runs ``examples/`` it puts this directory on ``sys.path`` (the folder has no
``__init__.py``), so ``my_templates`` imports like any top-level module; in your own project,
use the module path your tests can import (``mypkg.load.templates:SenderCounter``).

The contract is hand-assembled (8 bytes) so the example needs no compiler::

    CALLER SLOAD PUSH0 CALLDATALOAD ADD CALLER SSTORE STOP    counters[msg.sender] += step

A counter that goes from zero to nonzero costs 20,000 gas more than one that already holds a
value, so setup bumps every sender's counter once; after that each transaction costs exactly
``21,000 + calldata + 5,012`` (cold SLOAD 2,100, nonzero-to-nonzero SSTORE 2,900, 12 for the
other opcodes).
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any, ClassVar

from pytest_gashammer.errors import ConfigError
from pytest_gashammer.workload import SetupContext, Template, TemplateContext
from pytest_gashammer.workload.gas import transaction_gas

#: counters[msg.sender] += uint256(calldata[0:32])
RUNTIME = bytes.fromhex("33545f3501335500")
#: Copy the 8 runtime bytes that follow this 10-byte prefix into memory and return them.
INIT_CODE = bytes.fromhex("6008600a5f3960085ff3") + RUNTIME
EXECUTION_GAS = 2 + 2_100 + 2 + 3 + 3 + 2 + 2_900  # CALLER SLOAD PUSH0 CALLDATALOAD ADD CALLER SSTORE


class SenderCounter(Template):
    """Each transaction adds ``step`` to the sender's own counter."""

    name: ClassVar[str] = "sender-counter"
    expected_status: ClassVar[int] = 1
    gas_tolerance: ClassVar[float] = 0.0
    #: Scenario parameters and their defaults: workload={"my_templates:SenderCounter": {"share": 1, "step": 3}}
    params: ClassVar[dict[str, Any]] = {"step": 1}

    def __init__(self, context: TemplateContext, params: Mapping[str, Any] | None = None) -> None:
        super().__init__(context, params)
        # Precompute the calldata once: build() is on the hot path.
        self.data = int(self.options["step"]).to_bytes(32, "big")
        self.counter: str | None = None

    @classmethod
    def validate_params(cls, params: dict[str, Any], label: str) -> None:
        step = params["step"]
        if not 1 <= step <= 255:
            # One line that names the template (label), the parameter and the fix.
            raise ConfigError(f"{label}: parameter step={step!r} must be between 1 and 255")

    @classmethod
    def nominal_gas_for(cls, params: Mapping[str, Any]) -> float:
        step = int(params.get("step", cls.params["step"]))
        return float(transaction_gas(step.to_bytes(32, "big"), execution=EXECUTION_GAS))

    async def setup(self, ctx: SetupContext) -> dict[str, Any]:
        counter = await ctx.deploy(INIT_CODE)
        # Bump every sender's counter once, so no run transaction pays for a zero-to-nonzero write.
        await ctx.send_from_senders(
            [
                (index, {"to": counter, "value": 0, "data": self.data})
                for index in range(len(ctx.sender_addresses))
            ]
        )
        return {"counter": counter}  # plain data: it reaches use_setup on every edge

    def use_setup(self, data: Mapping[str, Any]) -> None:
        super().use_setup(data)
        self.counter = str(data["counter"])

    def build(self, sender_index: int, rng: random.Random) -> dict[str, Any]:
        # Deterministic and cheap; this template needs nothing from rng.
        return {"to": self.counter, "value": 0, "data": self.data}
