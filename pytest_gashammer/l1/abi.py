"""The Solidity ABI the L1 side needs: calldata, event topics, decoding, revert reasons.

Encoding and decoding are ``eth_abi``'s; this module adds only what it lacks: selectors and event
topics from canonical signatures, signatures from ABI JSON entries, the hex-text inputs the JSON-RPC
side hands over (addresses in any case, ``bytes``/``bytesN`` as 0x-hex), and one-line revert reasons.
Every codec failure surfaces as a ``ValueError``, which is what the callers catch.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import eth_abi
from eth_abi.exceptions import DecodingError, EncodingError, ParseError
from eth_abi.grammar import ABIType, BasicType, TupleType, parse

from pytest_gashammer.chain.keccak import keccak256

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
    if not inner:
        return []
    try:
        parsed = parse(f"({inner})")
    except (ParseError, ValueError) as error:
        raise ValueError(f"{inner!r} is not a list of ABI types: {error}") from None
    assert isinstance(parsed, TupleType)  # a parenthesised list with no array suffix parses as a tuple
    return [component.to_type_str() for component in parsed.components]


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


def _from_rpc(kind: ABIType, value: Any) -> Any:
    """``value`` with the JSON-RPC spellings eth-abi refuses turned into the bytes it takes.

    Block hashes and assertion hashes arrive as 0x-hex text, and eth-abi rejects a mixed-case address
    whose checksum is off; both are passed on as raw bytes instead.
    """
    if kind.is_array or isinstance(kind, TupleType):
        if not isinstance(value, Sequence) or isinstance(value, str | bytes):
            return value  # eth-abi names the mismatch
        if kind.is_array:
            return [_from_rpc(kind.item_type, entry) for entry in value]
        assert isinstance(kind, TupleType)
        if len(value) != len(kind.components):
            return value
        return tuple(_from_rpc(part, entry) for part, entry in zip(kind.components, value, strict=True))
    if not isinstance(kind, BasicType) or not isinstance(value, str):
        return value
    if kind.base == "address":
        return address_bytes(value)
    if kind.base == "bytes":
        try:
            return bytes.fromhex(value.removeprefix("0x"))
        except ValueError:
            raise ValueError(f"{kind.to_type_str()}: {value!r} is not hex") from None
    return value


def encode(types: Sequence[str], values: Sequence[Any]) -> bytes:
    """``abi.encode(values...)`` for ``types``."""
    if len(types) != len(values):
        raise ValueError(f"expected {len(types)} values for ({','.join(types)}), got {len(values)}")
    try:
        kinds = [parse(kind) for kind in types]
        prepared = [_from_rpc(kind, value) for kind, value in zip(kinds, values, strict=True)]
        return eth_abi.encode(list(types), prepared)
    except (EncodingError, ParseError) as error:
        raise ValueError(str(error)) from None


def call_data(signature: str, *values: Any) -> bytes:
    """Calldata for the function ``signature`` (canonical, e.g. ``"setIsBatchPoster(address,bool)"``)."""
    return selector(signature) + encode(signature_types(signature), values)


def decode(types: Sequence[str], data: bytes) -> list[Any]:
    """``abi.decode(data, (types...))``: ints, bools, lowercase 0x-hex addresses, bytes, str, tuples."""
    try:
        return list(eth_abi.decode(list(types), data))
    except (DecodingError, ParseError) as error:
        raise ValueError(str(error)) from None


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
