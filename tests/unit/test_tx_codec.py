"""One RLP and one transaction layout serve the signer and the JSON-to-raw codec (relay, pool watch).

The RLP primitives are checked against pyrlp; the JSON codec against pyrlp for every type it knows,
and against the signer byte for byte: a transaction the signer produced, shown as a node shows it,
re-encodes to the very bytes that were signed. (The signer itself is checked against eth-account in
test_signer.py, the codec against eth-account's pool entries in test_pool_entries.py and against
anvil's answers in the feed relay's acceptance tests.)
"""

from __future__ import annotations

from typing import Any

import pytest
import rlp
from eth_utils import to_checksum_address
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pytest_gashammer.chain import rlp as chain_rlp
from pytest_gashammer.chain.signer import FastSigner
from pytest_gashammer.chain.tx import (
    TX_FIELDS,
    Segments,
    raw_transaction_from_json,
    rebuilt_raw_transaction,
    segments_of,
)

SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

keys = st.integers(1, SECP256K1_N - 1).map(lambda k: k.to_bytes(32, "big"))
chain_ids = st.one_of(st.sampled_from([1, 412346, 2**32]), st.integers(1, 2**32))
nonces = st.integers(0, 2**64 - 1)
uint256 = st.one_of(st.integers(0, 2**256 - 1), st.sampled_from([0, 1, 127, 128, 255, 256]))
fees = st.one_of(st.integers(0, 2**128), st.sampled_from([0, 1, 127, 128]))
gas_limits = st.integers(21_000, 2**63)
address_bytes = st.one_of(
    st.binary(min_size=20, max_size=20),
    st.binary(min_size=1, max_size=19).map(lambda b: b.rjust(20, b"\x00")),
)
calldata = st.one_of(
    st.binary(max_size=300), st.sampled_from([b"", b"\x00", b"\x7f", b"\x80", b"\xff" * 55, b"\xff" * 56])
)
words = st.binary(min_size=32, max_size=32)
access_lists = st.lists(
    st.tuples(address_bytes, st.lists(words, max_size=3)).map(
        lambda entry: {
            "address": to_checksum_address(entry[0]),
            "storageKeys": ["0x" + key.hex() for key in entry[1]],
        }
    ),
    max_size=3,
)


def hex_json(access_list: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"address": item["address"].lower(), "storageKeys": item["storageKeys"]} for item in access_list]


# --- RLP ------------------------------------------------------------------------------------------------


@PROPERTY
@given(
    number=st.one_of(st.integers(0, 2**256 - 1), st.integers(0, 2**1024)),
    blob=st.one_of(st.binary(max_size=70), st.binary(min_size=250, max_size=70_000)),
    items=st.lists(st.binary(max_size=80), max_size=40),
)
def test_rlp_primitives_match_pyrlp(number: int, blob: bytes, items: list[bytes]) -> None:
    assert chain_rlp.encode_int(number) == rlp.encode(number)
    assert chain_rlp.encode_bytes(blob) == rlp.encode(blob)
    payload = b"".join(chain_rlp.encode_bytes(item) for item in items)
    assert chain_rlp.encode_list(payload) == rlp.encode(items)
    word = number.to_bytes(129, "big")[-32:]
    assert chain_rlp.encode_scalar32(word) == rlp.encode(int.from_bytes(word, "big"))


# --- layout ---------------------------------------------------------------------------------------------


def test_every_layout_cuts_around_nonce_to_value_and_data() -> None:
    assert segments_of(0) == Segments((), ("gasPrice", "gas"), ())
    assert segments_of(1) == Segments(("chainId",), ("gasPrice", "gas"), ("accessList",))
    dynamic_fee = ("maxPriorityFeePerGas", "maxFeePerGas", "gas")
    assert segments_of(2) == Segments(("chainId",), dynamic_fee, ("accessList",))
    assert segments_of(3).post == ("accessList", "maxFeePerBlobGas", "blobVersionedHashes")
    assert segments_of(4).post == ("accessList", "authorizationList")
    assert sorted(TX_FIELDS) == [0, 1, 2, 3, 4]


# --- the JSON codec and the signer agree ----------------------------------------------------------------


@st.composite
def signer_transactions(draw: st.DrawFn, chain_id: int) -> dict[str, Any]:
    """A transaction dict in the signer's (eth-account's) form, every type it signs."""
    tx_type = draw(st.sampled_from([0, 1, 2]))
    to = draw(st.one_of(st.none(), address_bytes))
    tx: dict[str, Any] = {
        "type": tx_type,
        "chainId": chain_id,
        "nonce": draw(nonces),
        "gas": draw(gas_limits),
        "value": draw(uint256),
        "data": draw(calldata),
        "to": None if to is None else to_checksum_address(to),
    }
    if tx_type == 2:
        tx["maxFeePerGas"] = draw(fees)
        tx["maxPriorityFeePerGas"] = draw(fees)
    else:
        tx["gasPrice"] = draw(fees)
    if tx_type != 0:
        tx["accessList"] = draw(access_lists)
    return tx


def as_node_shows_it(tx: dict[str, Any], raw: bytes, tx_hash: str) -> dict[str, Any]:
    """``tx`` as ``eth_getTransactionByHash`` answers it; the signature read back from ``raw`` by pyrlp."""
    tx_type = tx["type"]
    v, r, s = (int.from_bytes(item, "big") for item in rlp.decode(raw if tx_type == 0 else raw[1:])[-3:])
    shown: dict[str, Any] = {
        "hash": tx_hash,
        "type": hex(tx_type),
        "chainId": hex(tx["chainId"]),
        "nonce": hex(tx["nonce"]),
        "gas": hex(tx["gas"]),
        "value": hex(tx["value"]),
        "input": "0x" + tx["data"].hex(),
        "to": None if tx["to"] is None else tx["to"].lower(),
        "v": hex(v),
        "r": hex(r),
        "s": hex(s),
    }
    for fee in ("gasPrice", "maxFeePerGas", "maxPriorityFeePerGas"):
        if fee in tx:
            shown[fee] = hex(tx[fee])
    if tx_type != 0:
        shown["accessList"] = hex_json(tx["accessList"])
        shown["yParity"] = hex(v)
    return shown


@PROPERTY
@given(key=keys, chain_id=chain_ids, data=st.data())
def test_json_codec_and_signer_agree_byte_for_byte(key: bytes, chain_id: int, data: st.DataObject) -> None:
    tx = data.draw(signer_transactions(chain_id))
    signed = FastSigner(key, chain_id).sign(tx)
    shown = as_node_shows_it(tx, signed.raw, signed.hash_hex)
    assert raw_transaction_from_json(shown) == signed.raw
    assert rebuilt_raw_transaction(shown) == signed.raw


@PROPERTY
@given(key=keys, chain_id=chain_ids, data=st.data())
def test_json_codec_and_prepared_signer_agree_byte_for_byte(
    key: bytes, chain_id: int, data: st.DataObject
) -> None:
    """The hot path (prepare once, sign per nonce) produces what the codec re-encodes."""
    tx = data.draw(signer_transactions(chain_id))
    prepared = FastSigner(key, chain_id).prepare({k: v for k, v in tx.items() if k != "nonce"})
    signed = prepared.sign(tx["nonce"])
    assert rebuilt_raw_transaction(as_node_shows_it(tx, signed.raw, signed.hash_hex)) == signed.raw


# --- the JSON codec against pyrlp, every type -----------------------------------------------------------


# Written out from the EIPs (155, 2930, 1559, 4844, 7702), independently of chain.tx.TX_FIELDS.
_DYNAMIC = (
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
FIELD_ORDER = {
    0: ("nonce", "gasPrice", "gas", "to", "value", "data"),
    1: ("chainId", "nonce", "gasPrice", "gas", "to", "value", "data", "accessList"),
    2: _DYNAMIC,
    3: (*_DYNAMIC, "maxFeePerBlobGas", "blobVersionedHashes"),
    4: (*_DYNAMIC, "authorizationList"),
}


@st.composite
def node_transactions(draw: st.DrawFn) -> tuple[dict[str, Any], bytes]:
    """A transaction object of any type 0-4 as a node shows it, and its raw bytes encoded by pyrlp."""
    tx_type = draw(st.integers(0, 4))
    to = draw(st.one_of(st.none(), address_bytes)) if tx_type in (0, 1, 2) else draw(address_bytes)
    values: dict[str, Any] = {
        "chainId": draw(chain_ids),
        "nonce": draw(nonces),
        "gasPrice": draw(fees),
        "maxPriorityFeePerGas": draw(fees),
        "maxFeePerGas": draw(fees),
        "maxFeePerBlobGas": draw(fees),
        "gas": draw(gas_limits),
        "to": b"" if to is None else to,
        "value": draw(uint256),
        "data": draw(calldata),
        "accessList": draw(access_lists),
        "blobVersionedHashes": draw(st.lists(words, max_size=3)),
        "authorizationList": draw(
            st.lists(
                st.tuples(chain_ids, address_bytes, nonces, st.integers(0, 1), uint256, uint256), max_size=2
            )
        ),
    }
    v = draw(st.integers(0, 1)) if tx_type else draw(st.integers(27, 2**40))
    r, s = draw(uint256), draw(uint256)
    shown: dict[str, Any] = {
        "type": hex(tx_type),
        "to": None if to is None else "0x" + to.hex(),
        "input": "0x" + values["data"].hex(),
        "accessList": hex_json(values["accessList"]),
        "blobVersionedHashes": ["0x" + h.hex() for h in values["blobVersionedHashes"]],
        "authorizationList": [
            {
                "chainId": hex(c),
                "address": "0x" + a.hex(),
                "nonce": hex(n),
                "yParity": hex(y),
                "r": hex(ar),
                "s": hex(as_),
            }
            for c, a, n, y, ar, as_ in values["authorizationList"]
        ],
        "v": hex(v),
        "r": hex(r),
        "s": hex(s),
        **{
            name: hex(values[name])
            for name in ("chainId", "nonce", "gasPrice", "maxPriorityFeePerGas", "maxFeePerGas")
        },
        "maxFeePerBlobGas": hex(values["maxFeePerBlobGas"]),
        "gas": hex(values["gas"]),
        "value": hex(values["value"]),
    }
    if tx_type:
        shown["yParity"] = hex(v)
    as_rlp: dict[str, Any] = dict(
        values,
        accessList=[
            [bytes.fromhex(item["address"][2:]), [bytes.fromhex(k[2:]) for k in item["storageKeys"]]]
            for item in values["accessList"]
        ],
        authorizationList=[list(auth) for auth in values["authorizationList"]],
    )
    fields = [as_rlp[name] for name in FIELD_ORDER[tx_type]] + [v, r, s]
    return shown, (b"" if tx_type == 0 else bytes((tx_type,))) + rlp.encode(fields)


@PROPERTY
@given(case=node_transactions())
def test_json_codec_matches_pyrlp_for_every_type(case: tuple[dict[str, Any], bytes]) -> None:
    shown, expected = case
    assert raw_transaction_from_json(shown) == expected


def test_json_codec_refuses_unknown_types_and_negative_quantities() -> None:
    assert raw_transaction_from_json({"type": "0x5"}) is None
    with pytest.raises(ValueError, match="negative"):
        raw_transaction_from_json(
            {"type": "0x0", "nonce": -1, "gasPrice": "0x1", "gas": "0x5208", "value": "0x0", "v": "0x1b"}
        )
