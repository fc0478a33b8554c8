"""RLP encoding, built for the signer's hot path and shared by every transaction encoder; and a strict decoder.

Items are encoded one at a time and lists take their items already encoded and concatenated, so a
caller can keep encoded fields as ready byte strings and assemble a transaction by concatenation
(see :class:`~pytest_gashammer.chain.signer.PreparedTx`). The tables are public for that reason:
the signer indexes them directly rather than paying a function call per field.

The decoder (:func:`decode`, :func:`decode_uint`, and :func:`item_span` for walking a stream of items
without copying them) accepts only canonical RLP, as go-ethereum does; it was written for Nitro's
sequencer batches (``l1/batch.py``), which are a stream of RLP byte strings.
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "LIST_HEADER",
    "LIST_HEADER_TABLE_SIZE",
    "MAX_DECODE_DEPTH",
    "SMALL_INT",
    "STRING_PREFIX",
    "RlpDecodeError",
    "RlpItem",
    "RlpTruncatedError",
    "decode",
    "decode_uint",
    "encode_bytes",
    "encode_int",
    "encode_list",
    "encode_scalar32",
    "item_span",
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


# ------------------------------------------------------------------------------------------- decoding
#
# The decoder is strict in the way go-ethereum's ``rlp`` package and the ``rlp`` PyPI package are: every
# length must be the shortest form (a single byte below 0x80 is itself, not ``0x81 xx``; a long prefix
# only for 56+ bytes; no leading zero in a length), and nothing may run past the end of its input or its
# enclosing list. Go is the reference because Nitro, whose batches are the first user, reads with it.

RlpItem = bytes | list["RlpItem"]
"""A decoded item: a byte string, or a list of items."""


class RlpDecodeError(ValueError):
    """Input that is not canonical RLP. ``offset`` is the byte at which the bad item starts."""

    def __init__(self, detail: str, offset: int) -> None:
        super().__init__(detail, offset)
        self.detail = detail
        self.offset = offset

    def __str__(self) -> str:
        return f"{self.detail} (RLP item at byte {self.offset})"


class RlpTruncatedError(RlpDecodeError):
    """The input ends inside an item: a cut-off stream rather than a malformed one."""


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def item_span(data: bytes, offset: int = 0, end: int | None = None) -> tuple[bool, int, int]:
    """Where the item at ``offset`` keeps its payload: ``(is_list, payload_start, payload_end)``.

    ``payload_end`` is also where the next item starts. ``end`` bounds the item (the end of an enclosing
    list); it defaults to the end of ``data``. The payload itself is not looked into, so a caller walks a
    stream of items, or a list's items, without decoding what it does not need.
    """
    limit = len(data) if end is None else end
    if offset >= limit:
        raise RlpTruncatedError("truncated RLP: the input ends where an item should start", offset)
    first = data[offset]
    if first < 0x80:
        return False, offset, offset + 1
    if first < 0xB8:
        size = first - 0x80
        start = offset + 1
        if size == 1 and start < limit and data[start] < 0x80:
            raise RlpDecodeError(f"non-canonical RLP: byte 0x{data[start]:02x} written as a string", offset)
        is_list = False
    elif first < 0xC0:
        size, start = _long_length(data, offset, first - 0xB7, limit, "string")
        is_list = False
    elif first < 0xF8:
        size = first - 0xC0
        start = offset + 1
        is_list = True
    else:
        size, start = _long_length(data, offset, first - 0xF7, limit, "list")
        is_list = True
    if start + size > limit:
        kind = "list" if is_list else "string"
        raise RlpTruncatedError(
            f"truncated RLP: a {kind} of {_count(size, 'byte')} but only {max(limit - start, 0)} remain",
            offset,
        )
    return is_list, start, start + size


def _long_length(data: bytes, offset: int, length_size: int, limit: int, kind: str) -> tuple[int, int]:
    start = offset + 1 + length_size
    if start > limit:
        raise RlpTruncatedError(f"truncated RLP: the length of a long {kind} is cut off", offset)
    if data[offset + 1] == 0:
        raise RlpDecodeError(f"non-canonical RLP: the length of a long {kind} has a leading zero", offset)
    size = int.from_bytes(data[offset + 1 : start], "big")
    if size < 56:
        raise RlpDecodeError(f"non-canonical RLP: a long {kind} prefix for {size} bytes", offset)
    return size, start


MAX_DECODE_DEPTH: Final = 256
"""Lists nested deeper than this are refused by :func:`decode` rather than exhausting Python's stack."""


def decode(data: bytes) -> RlpItem:
    """The one item ``data`` encodes; bytes left over after it are an error."""
    item, end = _decode_at(data, 0, len(data), 0)
    if end != len(data):
        raise RlpDecodeError(f"{_count(len(data) - end, 'byte')} after the RLP item", 0)
    return item


def _decode_at(data: bytes, offset: int, limit: int, depth: int) -> tuple[RlpItem, int]:
    is_list, start, end = item_span(data, offset, limit)
    if not is_list:
        return data[start:end], end
    if depth >= MAX_DECODE_DEPTH:
        raise RlpDecodeError(f"RLP lists nested deeper than {MAX_DECODE_DEPTH}", offset)
    items: list[RlpItem] = []
    position = start
    while position < end:
        item, position = _decode_at(data, position, end, depth + 1)
        items.append(item)
    return items, end


def decode_uint(data: bytes, max_bits: int = 64) -> int:
    """The canonical RLP integer that is all of ``data``: no leading zero bytes, 0 as the empty string.

    Go's ``rlp.Stream.Uint64`` rules, which Nitro uses for a batch's advance segments: a list, a leading
    zero (``0x00`` itself included) and a value wider than ``max_bits`` are errors.
    """
    is_list, start, end = item_span(data)
    if is_list:
        raise RlpDecodeError("expected an RLP integer, found a list", 0)
    if end != len(data):
        raise RlpDecodeError(f"{_count(len(data) - end, 'byte')} after the RLP integer", 0)
    if end > start and data[start] == 0:
        raise RlpDecodeError("non-canonical RLP integer: leading zero byte", 0)
    if (end - start) * 8 > max_bits:
        raise RlpDecodeError(f"RLP integer of {end - start} bytes is wider than {max_bits} bits", 0)
    return int.from_bytes(data[start:end], "big")
