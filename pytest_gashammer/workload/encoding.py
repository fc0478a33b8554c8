"""Hand-rolled ABI encoding for the few call shapes the built-in templates send.

Kept tiny and dependency-free so templates precompute their calldata without web3 or eth-abi,
and so importing a template stays cheap.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

T = TypeVar("T")

#: ``bytes.translate`` table that turns zero bytes into 0x01 and keeps every other byte.
NONZERO = bytes([1]) + bytes(range(1, 256))


def word(value: int) -> bytes:
    """A uint256 as one big-endian 32-byte word."""
    return value.to_bytes(32, "big")


def address_bytes(address: str) -> bytes:
    """A 0x-hex address as its 20 bytes."""
    raw = bytes.fromhex(address.removeprefix("0x"))
    if len(raw) != 20:
        raise ValueError(f"{address!r} is not a 20-byte address")
    return raw


def address_word(address: str) -> bytes:
    return bytes(12) + address_bytes(address)


def to_address(raw: bytes) -> str:
    return "0x" + raw.hex()


def call_with_address_array(selector: bytes, addresses: Sequence[str], *after: int) -> bytes:
    """Calldata for ``f(address[] list, uint256 after...)``: the array first, then static words."""
    head = word(32 * (1 + len(after))) + b"".join(word(value) for value in after)
    tail = word(len(addresses)) + b"".join(address_word(address) for address in addresses)
    return selector + head + tail


def chunked(items: Sequence[T], size: int) -> list[list[T]]:
    """``items`` in consecutive lists of at most ``size`` (for setup calls that take many addresses)."""
    return [list(items[start : start + size]) for start in range(0, len(items), size)]
