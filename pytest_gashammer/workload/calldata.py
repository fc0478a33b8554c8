"""Calldata-heavy transactions: ``bytes`` bytes of seeded data sent to an address without code.

Nothing executes, so the gas is intrinsic gas only and exactly computable from the byte counts
(:meth:`CalldataTemplate.nominal_gas_for`). ``zero_fraction`` of the bytes (rounded to the nearest
byte) are zero, in one run at a seeded offset; the others are seeded nonzero bytes. Gas:

- Prague and later (EIP-7623 floor, the embedded devnet): ``21,000 + 10 × zeros + 40 × nonzeros``
- before Prague: ``21,000 + 4 × zeros + 16 × nonzeros``

With nothing to execute the floor always applies on Prague chains, because 10 gas per token is
more than the 4 of the standard calldata price.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from typing import Any, ClassVar

from pytest_gashammer.workload.base import Template, TemplateContext
from pytest_gashammer.workload.encoding import NONZERO
from pytest_gashammer.workload.gas import transaction_gas

#: Where the calldata goes: an address with no code and no precompile (the data is only carried).
SINK = "0x00000000000000000000000000000000ca11da7a"
#: The largest calldata a transaction may carry here: common txpools refuse transactions over 128 KiB.
MAX_BYTES = 120_000


def zero_bytes(size: int, zero_fraction: float) -> int:
    """How many of ``size`` calldata bytes are zero: ``size × zero_fraction`` rounded half up."""
    return min(size, math.floor(size * zero_fraction + 0.5))


class CalldataTemplate(Template):
    """``bytes`` bytes of calldata, ``zero_fraction`` of them zero, to an address without code."""

    name: ClassVar[str] = "calldata"
    expected_status: ClassVar[int] = 1
    gas_tolerance: ClassVar[float] = 0.0
    params: ClassVar[dict[str, Any]] = {"bytes": 1024, "zero_fraction": 0.0}

    def __init__(self, context: TemplateContext, params: Mapping[str, Any] | None = None) -> None:
        super().__init__(context, params)
        self._size = int(self.options["bytes"])
        self._zeros = zero_bytes(self._size, float(self.options["zero_fraction"]))
        self._zero_run = bytes(self._zeros)

    @classmethod
    def validate_params(cls, params: dict[str, Any], label: str) -> None:
        cls.require_between(params, "bytes", 0, MAX_BYTES, label, "calldata size")
        cls.require_between(
            params, "zero_fraction", 0.0, 1.0, label, "the share of zero bytes in the calldata"
        )

    @classmethod
    def nominal_gas_for(cls, params: Mapping[str, Any]) -> float:
        size = int(params.get("bytes", cls.params["bytes"]))
        zeros = zero_bytes(size, float(params.get("zero_fraction", cls.params["zero_fraction"])))
        return float(transaction_gas(bytes(zeros) + b"\x01" * (size - zeros)))

    def build(self, sender_index: int, rng: random.Random) -> dict[str, Any]:
        size, zeros = self._size, self._zeros
        data = rng.randbytes(size).translate(NONZERO)
        if zeros:
            start = rng.randrange(size - zeros + 1)
            data = data[:start] + self._zero_run + data[start + zeros :]
        return {"to": SINK, "value": 0, "data": data}
