"""Pool entries turn back into the exact signed bytes (the pool watch re-sends them unchanged).

The pool watch rebuilds them with ``chain.tx``'s JSON codec, the encoder the feed relay uses too; these
entries are shaped like anvil's ``txpool_content``, the relay's own tests use the transactions of real
blocks.
"""

from __future__ import annotations

from typing import Any

import pytest
from eth_account import Account
from eth_account.typed_transactions import TypedTransaction
from eth_utils import to_checksum_address
from hexbytes import HexBytes
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_gashammer.chain.tx import rebuilt_raw_transaction

ACCOUNT = Account.from_key("0x" + "11" * 32)
OTHER = to_checksum_address("0x" + "ab" * 20)


def pool_entry(tx: dict[str, Any]) -> tuple[dict[str, Any], bytes]:
    """``tx`` signed, and shown the way anvil's ``txpool_content`` shows it (hex quantities)."""
    signed = ACCOUNT.sign_transaction(tx)
    raw = bytes(signed.raw_transaction)
    entry: dict[str, Any] = {
        "hash": "0x" + bytes(signed.hash).hex(),
        "from": ACCOUNT.address.lower(),
        "nonce": hex(tx["nonce"]),
        "gas": hex(tx["gas"]),
        "value": hex(tx["value"]),
        "input": "0x" + bytes(tx.get("data", b"")).hex(),
        "to": tx["to"].lower() if tx.get("to") else None,
    }
    if raw[0] >= 0x7F:  # legacy
        entry.update(
            type="0x0", gasPrice=hex(tx["gasPrice"]), v=hex(signed.v), r=hex(signed.r), s=hex(signed.s)
        )
        return entry, raw
    fields = TypedTransaction.from_bytes(HexBytes(raw)).as_dict()
    entry.update(
        type=hex(raw[0]),
        chainId=hex(tx["chainId"]),
        accessList=[
            {"address": item["address"].lower(), "storageKeys": list(item["storageKeys"])}
            for item in tx.get("accessList", [])
        ],
        yParity=hex(fields["v"]),
        v=hex(fields["v"]),
        r=hex(fields["r"]),
        s=hex(fields["s"]),
    )
    if raw[0] == 1:
        entry["gasPrice"] = hex(tx["gasPrice"])
    else:
        entry.update(
            maxFeePerGas=hex(tx["maxFeePerGas"]), maxPriorityFeePerGas=hex(tx["maxPriorityFeePerGas"])
        )
    return entry, raw


DYNAMIC = dict(type=2, chainId=412346, gas=60_000, maxFeePerGas=5 * 10**9, maxPriorityFeePerGas=10**9)


@settings(max_examples=40, deadline=None)
@given(
    nonce=st.integers(0, 2**40),
    value=st.integers(0, 10**24),
    data=st.binary(max_size=200),
    create=st.booleans(),
)
def test_dynamic_fee_entries_round_trip(nonce: int, value: int, data: bytes, create: bool) -> None:
    tx = dict(DYNAMIC, nonce=nonce, value=value, data=data)
    if not create:
        tx["to"] = OTHER
    entry, raw = pool_entry(tx)
    assert rebuilt_raw_transaction(entry) == raw


def test_legacy_and_access_list_entries_round_trip() -> None:
    legacy = dict(chainId=412346, nonce=3, to=OTHER, value=1, gas=21_000, gasPrice=10**9)
    access = dict(
        type=1, chainId=412346, nonce=4, to=OTHER, value=0, gas=40_000, gasPrice=10**9,
        accessList=[{"address": OTHER, "storageKeys": ["0x" + "00" * 31 + "07"]}],
    )  # fmt: skip
    for tx in (legacy, access):
        entry, raw = pool_entry(tx)
        assert rebuilt_raw_transaction(entry) == raw


def test_an_entry_that_does_not_hash_to_its_hash_is_refused() -> None:
    entry, _ = pool_entry(dict(DYNAMIC, nonce=1, to=OTHER, value=5))
    entry["value"] = hex(6)
    assert rebuilt_raw_transaction(entry) is None


def test_unknown_types_are_refused_and_malformed_fields_raise() -> None:
    entry, _ = pool_entry(dict(DYNAMIC, nonce=1, to=OTHER, value=5))
    assert rebuilt_raw_transaction(dict(entry, type="0x5")) is None
    with pytest.raises(ValueError):
        rebuilt_raw_transaction(dict(entry, gas="0xzz"))
    with pytest.raises(KeyError):
        rebuilt_raw_transaction({key: value for key, value in entry.items() if key != "nonce"})
