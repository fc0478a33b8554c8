"""Contract creation: init code that stores ``code_size`` bytes of seeded runtime code.

The init code is a 10-byte prefix that copies the rest of itself into memory and returns it::

    PUSH2 size  DUP1  PUSH1 10  PUSH0  CODECOPY  PUSH0  RETURN  <runtime code>

The runtime code is ``STOP`` followed by ``code_size - 1`` seeded nonzero bytes, so the contract
does nothing if called, every deployment is distinct, and the calldata cost is fixed by the size.
Gas, exactly (:meth:`DeployTemplate.nominal_gas_for`)::

    21,000 + 32,000                          transaction, creation
    + 4 × zeros + 16 × nonzeros of init code  calldata
    + 2 × words(init code)                   EIP-3860 init code words (Shanghai and later)
    + 16 + 3 × words(size) + memory(size)    the prefix's execution (CODECOPY, memory growth)
    + 200 × size                             code deposit

where ``memory(n) = 3 × words(n) + words(n)² / 512``. The EIP-7623 floor never applies: the code
deposit alone costs more than the floor's 40 gas per nonzero byte.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any, ClassVar

from pytest_gashammer.workload.base import Template, TemplateContext
from pytest_gashammer.workload.encoding import NONZERO
from pytest_gashammer.workload.gas import (
    CODE_DEPOSIT_BYTE,
    MAX_CODE_SIZE,
    memory_expansion_gas,
    transaction_gas,
    words,
)

PREFIX_SIZE = 10
PUSH2, DUP1, PUSH1, PUSH0, CODECOPY, RETURN, STOP = 0x61, 0x80, 0x60, 0x5F, 0x39, 0xF3, 0x00
#: Gas of the prefix's fixed opcodes: PUSH2 3, DUP1 3, PUSH1 3, PUSH0 2, CODECOPY 3, PUSH0 2, RETURN 0.
PREFIX_FIXED_GAS = 16


def init_prefix(code_size: int) -> bytes:
    """The init code before the runtime code: copy ``code_size`` bytes from offset 10 and return them."""
    return bytes(
        (PUSH2, code_size >> 8, code_size & 0xFF, DUP1, PUSH1, PREFIX_SIZE, PUSH0, CODECOPY, PUSH0, RETURN)
    )


def init_execution_gas(code_size: int) -> int:
    """Gas the init code uses, code deposit included."""
    copy = 3 * words(code_size) + memory_expansion_gas(code_size)
    return PREFIX_FIXED_GAS + copy + CODE_DEPOSIT_BYTE * code_size


class DeployTemplate(Template):
    """Creates a contract whose runtime code is ``code_size`` bytes."""

    name: ClassVar[str] = "deploy"
    expected_status: ClassVar[int] = 1
    gas_tolerance: ClassVar[float] = 0.0
    params: ClassVar[dict[str, Any]] = {"code_size": 1024}

    def __init__(self, context: TemplateContext, params: Mapping[str, Any] | None = None) -> None:
        super().__init__(context, params)
        self._size = int(self.options["code_size"])
        self._head = init_prefix(self._size) + bytes((STOP,))

    @classmethod
    def validate_params(cls, params: dict[str, Any], label: str) -> None:
        cls.require_between(
            params,
            "code_size",
            1,
            MAX_CODE_SIZE,
            label,
            "runtime code bytes; EIP-170 caps contracts at 24576",
        )

    @classmethod
    def nominal_gas_for(cls, params: Mapping[str, Any]) -> float:
        size = int(params.get("code_size", cls.params["code_size"]))
        init_code = init_prefix(size) + bytes((STOP,)) + b"\x01" * (size - 1)
        return float(transaction_gas(init_code, execution=init_execution_gas(size), create=True))

    def build(self, sender_index: int, rng: random.Random) -> dict[str, Any]:
        return {"to": None, "value": 0, "data": self._head + rng.randbytes(self._size - 1).translate(NONZERO)}
