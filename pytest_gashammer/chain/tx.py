"""Typed transactions: the field layout of each type, and the codec from JSON-RPC objects to raw bytes.

:data:`TX_FIELDS` is the one statement of which fields a transaction type has, in RLP order. The
signer (:mod:`pytest_gashammer.chain.signer`) lays out its pre-encoded templates from it, and
:func:`raw_transaction_from_json` re-encodes transaction objects a node returns (``eth_getBlockByHash``
with full objects, ``txpool_content``) from it; both encode with :mod:`pytest_gashammer.chain.rlp`.
Adding a transaction type means adding its row here, a JSON encoder for any new kind of field, and,
to sign it, the signer's parser for that field.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Final, NamedTuple

from pytest_gashammer.chain.keccak import keccak256
from pytest_gashammer.chain.rlp import encode_bytes, encode_int, encode_list

__all__ = ["TX_FIELDS", "Segments", "raw_transaction_from_json", "rebuilt_raw_transaction", "segments_of"]

_DYNAMIC_FEE: Final = (
    "chainId",
    "nonce",
    "maxPriorityFeePerGas",
    "maxFeePerGas",
    "gas",
    "to",
    "value",
    "data",
    "accessList",
)

TX_FIELDS: Final[Mapping[int, tuple[str, ...]]] = {
    0: ("nonce", "gasPrice", "gas", "to", "value", "data"),  # legacy; EIP-155 signs chainId, 0, 0 after these
    1: ("chainId", "nonce", "gasPrice", "gas", "to", "value", "data", "accessList"),  # EIP-2930
    2: _DYNAMIC_FEE,  # EIP-1559
    3: (*_DYNAMIC_FEE, "maxFeePerBlobGas", "blobVersionedHashes"),  # EIP-4844
    4: (*_DYNAMIC_FEE, "authorizationList"),  # EIP-7702
}
"""The unsigned fields of each transaction type, in RLP order, named as in JSON-RPC (``data`` is
JSON-RPC's ``input``). Signed envelopes append ``v, r, s`` (legacy) or ``yParity, r, s`` (typed)
and typed ones are prefixed with the type byte (EIP-2718)."""


class Segments(NamedTuple):
    """A layout cut around the fields the signer varies per transaction (nonce, to, value, data)."""

    head: tuple[str, ...]
    """Fields before the nonce."""
    fees_gas: tuple[str, ...]
    """Fields between the nonce and ``to``."""
    post: tuple[str, ...]
    """Fields after ``data``."""


def segments_of(tx_type: int) -> Segments:
    """Cut :data:`TX_FIELDS` ``[tx_type]`` as ``head | nonce | fees_gas | to | value | data | post``."""
    fields = TX_FIELDS[tx_type]
    nonce, to = fields.index("nonce"), fields.index("to")
    if fields[to : to + 3] != ("to", "value", "data") or nonce > to:
        raise ValueError(f"type {tx_type}: expected nonce, then to, value and data next to each other")
    return Segments(fields[:nonce], fields[nonce + 1 : to], fields[to + 3 :])


# ------------------------------------------------------------------------- JSON-RPC object → raw bytes


def _quantity(value: Any) -> bytes:
    number = int(value, 16) if isinstance(value, str) else int(value)
    if number < 0:
        raise ValueError(f"a quantity must not be negative, got {value!r}")
    return encode_int(number)


def _data(value: Any) -> bytes:
    return encode_bytes(bytes.fromhex(value[2:]) if value else b"")


def _access_list(entries: Any) -> bytes:
    return encode_list(
        b"".join(
            encode_list(
                _data(entry["address"]) + encode_list(b"".join(_data(key) for key in entry["storageKeys"]))
            )
            for entry in entries or ()
        )
    )


def _authorization_list(authorizations: Any) -> bytes:
    return encode_list(
        b"".join(
            encode_list(
                b"".join(
                    (
                        _quantity(auth["chainId"]),
                        _data(auth["address"]),
                        _quantity(auth["nonce"]),
                        _quantity(auth["yParity"]),
                        _quantity(auth["r"]),
                        _quantity(auth["s"]),
                    )
                )
            )
            for auth in authorizations or ()
        )
    )


def _input(tx: Mapping[str, Any]) -> Any:
    return tx.get("input") if tx.get("input") is not None else tx.get("data")


# Fields that are not a required quantity; every other field of TX_FIELDS is ``_quantity(tx[field])``.
_JSON_FIELD: Final[dict[str, Callable[[Mapping[str, Any]], bytes]]] = {
    "to": lambda tx: _data(tx.get("to")),
    "data": lambda tx: _data(_input(tx)),
    "accessList": lambda tx: _access_list(tx.get("accessList")),
    "blobVersionedHashes": lambda tx: encode_list(
        b"".join(_data(h) for h in tx.get("blobVersionedHashes") or ())
    ),
    "authorizationList": lambda tx: _authorization_list(tx.get("authorizationList")),
}


def raw_transaction_from_json(tx: Mapping[str, Any]) -> bytes | None:
    """Re-encode a JSON-RPC transaction object into its signed network bytes (EIP-2718 envelope).

    Returns ``None`` for a type it does not know (the caller then asks the node). The result is not
    trusted blindly: callers keep it only when its keccak equals the transaction's hash
    (:func:`rebuilt_raw_transaction`). A malformed field raises ``KeyError``, ``TypeError`` or
    ``ValueError``.
    """
    kind = int(tx.get("type") or "0x0", 16)
    layout = TX_FIELDS.get(kind)
    if layout is None:
        return None
    json_field = _JSON_FIELD
    fields = [json_field[name](tx) if name in json_field else _quantity(tx[name]) for name in layout]
    if kind == 0:
        fields.append(_quantity(tx["v"]))
    else:
        fields.append(_quantity(tx["yParity"] if tx.get("yParity") is not None else tx["v"]))
    fields += [_quantity(tx["r"]), _quantity(tx["s"])]
    body = encode_list(b"".join(fields))
    return body if kind == 0 else bytes((kind,)) + body


def rebuilt_raw_transaction(tx: Mapping[str, Any]) -> bytes | None:
    """:func:`raw_transaction_from_json`, kept only when its keccak is the transaction's own ``hash``.

    ``None`` for a type it does not know or bytes that hash differently; a malformed field raises
    ``KeyError``, ``TypeError`` or ``ValueError``.
    """
    raw = raw_transaction_from_json(tx)
    if raw is None or "0x" + keccak256(raw).hex() != str(tx.get("hash", "")).lower():
        return None
    return raw
