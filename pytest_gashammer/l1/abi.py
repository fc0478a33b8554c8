"""The little Solidity ABI the L1 side needs: calldata, event topics, static decoding, revert reasons.

Hand-rolled, like ``workload/encoding.py``, so the layer stays free of web3 and eth-abi. It covers
the types the Nitro contracts and the rollup stand-in use: ``uintN``, ``intN``, ``address``,
``bool``, ``bytesN``, ``bytes``, ``string``, fixed arrays ``T[k]`` and tuples ``(T1,T2,...)`` of static
types. A dynamic array or a tuple holding a dynamic type is refused with a ``ValueError`` rather than
encoded wrongly.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from pytest_gashammer.chain.keccak import keccak256

WORD = 32
_FIXED_ARRAY = re.compile(r"^(.*)\[(\d+)\]$")
#: Selectors of the two errors Solidity itself raises.
ERROR_STRING = bytes.fromhex("08c379a0")  # Error(string)
PANIC = bytes.fromhex("4e487b71")  # Panic(uint256)


def selector(signature: str) -> bytes:
    """The 4-byte function (or error) selector of a canonical signature such as ``"batchCount()"``."""
    return keccak256(signature.encode())[:4]


def event_topic(signature: str) -> bytes:
    """topic0 of an event's canonical signature."""
    return keccak256(signature.encode())


def split_types(inner: str) -> list[str]:
    """``"uint256,(bytes32,uint64),bool"`` → its top-level types (commas inside parentheses stay)."""
    types: list[str] = []
    depth = 0
    start = 0
    for index, char in enumerate(inner):
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth < 0:
                raise ValueError(f"unbalanced parentheses in {inner!r}")
        elif char == "," and depth == 0:
            types.append(inner[start:index])
            start = index + 1
    if depth != 0:
        raise ValueError(f"unbalanced parentheses in {inner!r}")
    if inner:
        types.append(inner[start:])
    if any(not item for item in types):
        raise ValueError(f"empty type in {inner!r}")
    return types


def signature_types(signature: str) -> list[str]:
    """The argument types of ``"name(t1,t2)"``."""
    open_at = signature.find("(")
    if open_at <= 0 or not signature.endswith(")"):
        raise ValueError(f"{signature!r} is not a signature like name(type,...)")
    return split_types(signature[open_at + 1 : -1])


def canonical_type(entry: Mapping[str, Any]) -> str:
    """The canonical type of one ABI JSON input (tuples spelled out from their components)."""
    kind = str(entry["type"])
    if kind.startswith("tuple"):
        inner = ",".join(canonical_type(component) for component in entry["components"])
        return f"({inner}){kind[len('tuple') :]}"
    return kind


def canonical_signature(entry: Mapping[str, Any]) -> str:
    """``name(types)`` of an ABI JSON function, event or error entry."""
    return f"{entry['name']}({','.join(canonical_type(item) for item in entry.get('inputs', []))})"


def _tuple_parts(kind: str) -> list[str] | None:
    if kind.startswith("(") and kind.endswith(")"):
        return split_types(kind[1:-1])
    return None


def is_dynamic(kind: str) -> bool:
    if kind in ("bytes", "string") or kind.endswith("[]"):
        return True
    parts = _tuple_parts(kind)
    if parts is not None:
        return any(is_dynamic(part) for part in parts)
    array = _FIXED_ARRAY.match(kind)
    return array is not None and is_dynamic(array.group(1))


def _static_size(kind: str) -> int:
    parts = _tuple_parts(kind)
    if parts is not None:
        return sum(_static_size(part) for part in parts)
    array = _FIXED_ARRAY.match(kind)
    if array is not None:
        return int(array.group(2)) * _static_size(array.group(1))
    return WORD


def _bits(kind: str, prefix: str) -> int:
    text = kind[len(prefix) :] or "256"
    if not text.isdigit() or not 8 <= int(text) <= 256 or int(text) % 8:
        raise ValueError(f"unknown ABI type {kind!r}")
    return int(text)


def address_bytes(value: Any) -> bytes:
    """A 0x-hex address (any case) or 20 raw bytes as its 20 bytes."""
    if isinstance(value, bytes | bytearray):
        raw = bytes(value)
    elif isinstance(value, str):
        try:
            raw = bytes.fromhex(value.removeprefix("0x").removeprefix("0X"))
        except ValueError:
            raise ValueError(f"address: {value!r} is not hex") from None
    else:
        raise ValueError(f"address: expected hex text or bytes, got {type(value).__name__}")
    if len(raw) != 20:
        raise ValueError(f"address: {value!r} is not 20 bytes")
    return raw


def _encode_static(kind: str, value: Any) -> bytes:
    parts = _tuple_parts(kind)
    if parts is not None:
        if len(value) != len(parts):
            raise ValueError(f"{kind}: expected {len(parts)} values, got {len(value)}")
        return b"".join(_encode_static(part, item) for part, item in zip(parts, value, strict=True))
    array = _FIXED_ARRAY.match(kind)
    if array is not None:
        count = int(array.group(2))
        if len(value) != count:
            raise ValueError(f"{kind}: expected {count} values, got {len(value)}")
        return b"".join(_encode_static(array.group(1), item) for item in value)
    if kind == "address":
        return bytes(12) + address_bytes(value)
    if kind == "bool":
        if not isinstance(value, bool):
            raise ValueError(f"bool: expected True or False, got {value!r}")
        return (1 if value else 0).to_bytes(WORD, "big")
    if kind.startswith("uint"):
        bits = _bits(kind, "uint")
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 1 << bits:
            raise ValueError(f"{kind}: {value!r} is out of range")
        return value.to_bytes(WORD, "big")
    if kind.startswith("int"):
        bits = _bits(kind, "int")
        if (
            isinstance(value, bool)
            or not isinstance(value, int)
            or not -(1 << (bits - 1)) <= value < 1 << (bits - 1)
        ):
            raise ValueError(f"{kind}: {value!r} is out of range")
        return value.to_bytes(WORD, "big", signed=True)
    if kind.startswith("bytes") and kind[5:].isdigit():
        size = int(kind[5:])
        raw = bytes.fromhex(value.removeprefix("0x")) if isinstance(value, str) else bytes(value)
        if not 1 <= size <= WORD or len(raw) != size:
            raise ValueError(f"{kind}: expected {size} bytes, got {len(raw)}")
        return raw.ljust(WORD, b"\0")
    raise ValueError(f"unsupported ABI type {kind!r}")


def _encode_dynamic(kind: str, value: Any) -> bytes:
    if kind == "bytes":
        raw = bytes.fromhex(value.removeprefix("0x")) if isinstance(value, str) else bytes(value)
    elif kind == "string":
        raw = str(value).encode()
    else:
        raise ValueError(f"unsupported dynamic ABI type {kind!r} (only bytes and string)")
    padded = raw + bytes(-len(raw) % WORD)
    return len(raw).to_bytes(WORD, "big") + padded


def encode(types: Sequence[str], values: Sequence[Any]) -> bytes:
    """``abi.encode(values...)`` for ``types``."""
    if len(types) != len(values):
        raise ValueError(f"expected {len(types)} values for ({','.join(types)}), got {len(values)}")
    head_size = sum(WORD if is_dynamic(kind) else _static_size(kind) for kind in types)
    heads: list[bytes] = []
    tails: list[bytes] = []
    offset = head_size
    for kind, value in zip(types, values, strict=True):
        if is_dynamic(kind):
            tail = _encode_dynamic(kind, value)
            heads.append(offset.to_bytes(WORD, "big"))
            tails.append(tail)
            offset += len(tail)
        else:
            heads.append(_encode_static(kind, value))
    return b"".join(heads) + b"".join(tails)


def call_data(signature: str, *values: Any) -> bytes:
    """Calldata for the function ``signature`` (canonical, e.g. ``"setIsBatchPoster(address,bool)"``)."""
    return selector(signature) + encode(signature_types(signature), values)


def _decode_static(kind: str, data: bytes, at: int) -> Any:
    parts = _tuple_parts(kind)
    if parts is not None:
        values = []
        for part in parts:
            values.append(_decode_static(part, data, at))
            at += _static_size(part)
        return tuple(values)
    array = _FIXED_ARRAY.match(kind)
    if array is not None:
        element = array.group(1)
        size = _static_size(element)
        return [_decode_static(element, data, at + index * size) for index in range(int(array.group(2)))]
    word = data[at : at + WORD]
    if len(word) != WORD:
        raise ValueError(f"{kind}: the data ends at byte {len(data)}, before the word at {at}")
    if kind == "address":
        return "0x" + word[12:].hex()
    if kind == "bool":
        return word[-1] == 1
    if kind.startswith("uint"):
        return int.from_bytes(word, "big")
    if kind.startswith("int"):
        return int.from_bytes(word, "big", signed=True)
    if kind.startswith("bytes") and kind[5:].isdigit():
        return word[: int(kind[5:])]
    raise ValueError(f"unsupported ABI type {kind!r}")


def decode(types: Sequence[str], data: bytes) -> list[Any]:
    """``abi.decode(data, (types...))``: ints, bools, 0x-hex addresses, bytes, tuples and lists."""
    values: list[Any] = []
    at = 0
    for kind in types:
        if is_dynamic(kind):
            if kind not in ("bytes", "string"):
                raise ValueError(f"unsupported dynamic ABI type {kind!r} (only bytes and string)")
            offset = int.from_bytes(data[at : at + WORD], "big")
            length = int.from_bytes(data[offset : offset + WORD], "big")
            raw = data[offset + WORD : offset + WORD + length]
            if len(raw) != length:
                raise ValueError(f"{kind}: the data ends before its {length} bytes")
            values.append(raw.decode() if kind == "string" else raw)
            at += WORD
        else:
            values.append(_decode_static(kind, data, at))
            at += _static_size(kind)
    return values


def error_table(abi: Sequence[Mapping[str, Any]]) -> dict[bytes, str]:
    """selector → canonical signature of every custom error an ABI declares."""
    return {
        selector(signature): signature
        for signature in (canonical_signature(entry) for entry in abi if entry.get("type") == "error")
    }


def revert_message(data: bytes, errors: Mapping[bytes, str] | None = None) -> str:
    """What revert ``data`` says, in one line: the reason string, the panic code or the custom error."""
    if not data:
        return "reverted without a reason"
    head, body = data[:4], data[4:]
    try:
        if head == ERROR_STRING:
            return f"reverted: {decode(['string'], body)[0]}"
        if head == PANIC:
            return f"panicked: 0x{decode(['uint256'], body)[0]:02x}"
        signature = (errors or {}).get(head)
        if signature is not None:
            arguments = decode(signature_types(signature), body)
            shown = ", ".join(
                "0x" + item.hex() if isinstance(item, bytes) else str(item) for item in arguments
            )
            return f"reverted: {signature.split('(')[0]}({shown})"
    except (ValueError, UnicodeDecodeError):
        pass
    return f"reverted with 0x{data.hex()}"
