"""RLP encoding, built for the signer's hot path and shared by every transaction encoder.

Items are encoded one at a time and lists take their items already encoded and concatenated, so a
caller can keep encoded fields as ready byte strings and assemble a transaction by concatenation
(see :class:`~pytest_gashammer.chain.signer.PreparedTx`). The tables are public for that reason:
the signer indexes them directly rather than paying a function call per field.
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "LIST_HEADER",
    "LIST_HEADER_TABLE_SIZE",
    "SMALL_INT",
    "STRING_PREFIX",
    "encode_bytes",
    "encode_int",
    "encode_list",
    "encode_scalar32",
    "long_prefix",
]

SMALL_INT: Final[tuple[bytes, ...]] = (b"\x80", *(bytes((i,)) for i in range(1, 0x80)))
"""Encodings of 0..127: 0 is the empty string, 1..127 encode as themselves (lookups beat arithmetic)."""
STRING_PREFIX: Final[tuple[bytes, ...]] = tuple(bytes((0x80 + n,)) for n in range(56))
"""One-byte prefixes of strings shorter than 56 bytes, by length."""
LIST_HEADER_TABLE_SIZE: Final = 1024
"""List headers are tabulated for every payload below this size (signed EIP-1559 transfers are ~110
bytes, so past the one-byte form); larger payloads go through :func:`long_prefix`."""


def long_prefix(length: int, base: int) -> bytes:
    """Prefix for a payload of 56+ bytes: ``base`` + length-of-length, then the big-endian length.

    ``base`` is 0xB7 for strings and 0xF7 for lists.
    """
    size = (length.bit_length() + 7) >> 3
    return bytes((base + size,)) + length.to_bytes(size, "big")


LIST_HEADER: Final[tuple[bytes, ...]] = (
    *(bytes((0xC0 + n,)) for n in range(56)),
    *(long_prefix(n, 0xF7) for n in range(56, LIST_HEADER_TABLE_SIZE)),
)
"""List headers by payload size, for payloads below :data:`LIST_HEADER_TABLE_SIZE` bytes."""


def encode_int(value: int) -> bytes:
    """RLP of a non-negative integer: minimal big-endian bytes, 0 as the empty string.

    The caller guarantees ``value >= 0`` (the signer validates its fields once, not per encoding).
    """
    if value < 0x80:
        return SMALL_INT[value]
    size = (value.bit_length() + 7) >> 3
    prefix = STRING_PREFIX[size] if size < 56 else long_prefix(size, 0xB7)
    return prefix + value.to_bytes(size, "big")


def encode_bytes(data: bytes) -> bytes:
    """RLP of a byte string: a single byte below 0x80 is itself, otherwise length prefix + data."""
    size = len(data)
    if size == 1 and data[0] < 0x80:
        return data
    if size < 56:
        return STRING_PREFIX[size] + data
    return long_prefix(size, 0xB7) + data


def encode_list(payload: bytes) -> bytes:
    """RLP of a list whose items are already encoded and concatenated into ``payload``."""
    size = len(payload)
    if size < LIST_HEADER_TABLE_SIZE:
        return LIST_HEADER[size] + payload
    return long_prefix(size, 0xF7) + payload


def encode_scalar32(word: bytes) -> bytes:
    """RLP of a 32-byte big-endian signature scalar (r or s), stripping leading zero bytes."""
    if word[0]:
        return b"\xa0" + word
    return encode_int(int.from_bytes(word, "big"))
