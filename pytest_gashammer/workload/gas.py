"""The gas a transaction costs before and around its execution: intrinsic gas and its floors.

Templates build their gas models from these figures. The rules are those of current Ethereum
(Prague and later), which the embedded devnet follows:

- every transaction pays 21,000, plus 4 gas per zero and 16 per nonzero calldata byte;
- a contract creation pays 32,000 more, plus 2 gas per 32-byte word of init code (EIP-3860,
  Shanghai), plus 200 gas per byte of code it leaves behind (the code deposit, charged as
  execution);
- EIP-7623 (Prague): a transaction pays at least ``21,000 + 10 × tokens``, where ``tokens`` is
  ``zero bytes + 4 × nonzero bytes`` of calldata. A call that executes little (calldata sent to an
  address without code) pays this floor, i.e. 10 per zero and 40 per nonzero byte.

Chains with other rules (before Prague, or an L2 that adds a data fee to ``gasUsed``) are handled by
calibration: the edge replaces each nominal figure with ``eth_estimateGas`` at setup and then with
what receipts report.
"""

from __future__ import annotations

TX_BASE = 21_000
TX_CREATE = 32_000
CALLDATA_ZERO_BYTE = 4
CALLDATA_NONZERO_BYTE = 16
#: EIP-7623: gas per calldata token of the floor every transaction pays at least.
FLOOR_PER_TOKEN = 10
#: EIP-3860: gas per 32-byte word of init code in a creation.
INITCODE_WORD = 2
#: Gas per byte of runtime code a creation stores.
CODE_DEPOSIT_BYTE = 200
#: EIP-170: the largest runtime code a contract may have.
MAX_CODE_SIZE = 24_576
#: EIP-3860: the largest init code a creation may carry.
MAX_INITCODE_SIZE = 2 * MAX_CODE_SIZE


def calldata_tokens(data: bytes) -> int:
    """EIP-7623 tokens: one per zero byte, four per nonzero byte."""
    zeros = data.count(0)
    return zeros + 4 * (len(data) - zeros)


def calldata_gas(data: bytes) -> int:
    """4 gas per zero byte, 16 per nonzero byte."""
    return CALLDATA_ZERO_BYTE * calldata_tokens(data)


def words(size: int) -> int:
    return (size + 31) // 32


def memory_expansion_gas(size: int) -> int:
    """Gas to grow memory from nothing to ``size`` bytes: 3 per word plus words² / 512."""
    count = words(size)
    return 3 * count + count * count // 512


def transaction_gas(data: bytes, *, execution: int = 0, create: bool = False, floor: bool = True) -> int:
    """The gas a transaction with calldata (or init code) ``data`` uses.

    ``execution`` is the gas its execution uses (for a creation, including the code deposit).
    ``floor=False`` gives the figure on chains before Prague, which have no calldata floor.
    """
    standard = TX_BASE + calldata_gas(data) + execution
    if create:
        standard += TX_CREATE + INITCODE_WORD * words(len(data))
    if not floor:
        return standard
    return max(standard, TX_BASE + FLOOR_PER_TOKEN * calldata_tokens(data))
