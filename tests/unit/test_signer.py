"""The fast signer must be byte-identical to eth-account: raw transaction and hash, every field range.

eth-account is the reference because it is what the rest of the ecosystem (web3.py, the nodes' own
test vectors) agrees with; any divergence would make the node reject or re-hash our transactions.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
import rlp
from eth_account import Account
from eth_hash.auto import keccak as reference_keccak
from eth_keys import KeyAPI
from eth_keys.backends import NativeECCBackend
from eth_utils import to_checksum_address
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pytest_gashammer.chain.keccak import keccak256
from pytest_gashammer.chain.signer import KEEP, FastSigner, PreparedTx, SignedTx

SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# --- strategies ---------------------------------------------------------------------------------------

keys = st.integers(1, SECP256K1_N - 1).map(lambda k: k.to_bytes(32, "big"))
nonces = st.integers(0, 2**64 - 1)
values = st.one_of(st.integers(0, 2**256 - 1), st.sampled_from([0, 1, 127, 128, 255, 256, 2**256 - 1]))
gas_limits = st.one_of(st.integers(21_000, 2**63), st.sampled_from([21_000, 2**63]))
fees = st.one_of(st.integers(0, 2**128), st.sampled_from([0, 1, 127, 128, 2**128]))
chain_ids = st.one_of(st.sampled_from([1, 412346, 2**32]), st.integers(1, 2**32))
address_bytes = st.one_of(
    st.binary(min_size=20, max_size=20),
    st.binary(min_size=1, max_size=19).map(lambda b: b.rjust(20, b"\x00")),  # leading zeros
)
addresses = address_bytes.map(to_checksum_address)
calldata = st.one_of(
    st.binary(max_size=2000),
    st.integers(0, 2000).map(lambda n: b"\x00" * n),
    st.tuples(st.integers(1, 64), st.binary(max_size=300)).map(lambda t: b"\x00" * t[0] + t[1]),
    st.sampled_from([b"", b"\x00", b"\x01", b"\x7f", b"\x80", b"\xff" * 55, b"\xff" * 56]),
)
storage_keys = st.binary(min_size=32, max_size=32).map(lambda b: "0x" + b.hex())
access_lists = st.lists(
    st.fixed_dictionaries({"address": addresses, "storageKeys": st.lists(storage_keys, max_size=3)}),
    max_size=3,
)


@st.composite
def recipients(draw: st.DrawFn) -> dict[str, Any]:
    """Either a recipient, or one of the ways of saying "contract creation"."""
    return draw(
        st.one_of(
            addresses.map(lambda a: {"to": a}),
            st.sampled_from([{}, {"to": None}, {"to": ""}, {"to": b""}]),
        )
    )


@st.composite
def transactions(draw: st.DrawFn, chain_id: int, tx_type: int | None = None) -> dict[str, Any]:
    """A transaction dict in eth-account's form, without a nonce."""
    if tx_type is None:
        tx_type = draw(st.sampled_from([0, 1, 2]))
    data = draw(calldata)
    tx: dict[str, Any] = {
        "chainId": chain_id,
        "gas": draw(gas_limits),
        "value": draw(values),
        "data": data if draw(st.booleans()) else "0x" + data.hex(),
        **draw(recipients()),
    }
    if tx_type == 0:
        tx["gasPrice"] = draw(fees)
    elif tx_type == 1:
        tx["gasPrice"] = draw(fees)
        tx["accessList"] = draw(access_lists)
    else:
        tx["maxFeePerGas"] = draw(fees)
        tx["maxPriorityFeePerGas"] = draw(fees)
        if draw(st.booleans()):
            tx["accessList"] = draw(access_lists)
    if tx_type != 0 and draw(st.booleans()):
        tx["type"] = tx_type if draw(st.booleans()) else hex(tx_type)
    return tx


def assert_matches_eth_account(signed: SignedTx, tx: dict[str, Any], key: bytes) -> None:
    reference = Account.sign_transaction(copy.deepcopy(tx), key)
    assert signed.raw == bytes(reference.raw_transaction)
    assert signed.hash == bytes(reference.hash)
    assert signed.hash_hex == "0x" + bytes(reference.hash).hex()


# --- byte-identical to eth-account ----------------------------------------------------------------------


@PROPERTY
@given(key=keys, nonce=nonces, chain_id=chain_ids, data=st.data())
def test_sign_matches_eth_account_for_every_type(
    key: bytes, nonce: int, chain_id: int, data: st.DataObject
) -> None:
    tx = {**data.draw(transactions(chain_id)), "nonce": nonce}
    signed = FastSigner(key, chain_id).sign(tx)
    assert_matches_eth_account(signed, tx, key)


@PROPERTY
@given(key=keys, nonce=nonces, chain_id=chain_ids, data=st.data())
def test_eip1559_matches_eth_account(key: bytes, nonce: int, chain_id: int, data: st.DataObject) -> None:
    tx = {**data.draw(transactions(chain_id, tx_type=2)), "nonce": nonce}
    assert_matches_eth_account(FastSigner(key, chain_id).sign(tx), tx, key)


@PROPERTY
@given(key=keys, nonce=nonces, chain_id=chain_ids, data=st.data())
def test_eip2930_matches_eth_account(key: bytes, nonce: int, chain_id: int, data: st.DataObject) -> None:
    tx = {**data.draw(transactions(chain_id, tx_type=1)), "nonce": nonce}
    assert_matches_eth_account(FastSigner(key, chain_id).sign(tx), tx, key)


@PROPERTY
@given(key=keys, nonce=nonces, chain_id=chain_ids, data=st.data())
def test_legacy_is_eip155_and_matches_eth_account(
    key: bytes, nonce: int, chain_id: int, data: st.DataObject
) -> None:
    tx = {**data.draw(transactions(chain_id, tx_type=0)), "nonce": nonce}
    signer = FastSigner(key, chain_id)
    signed = signer.sign(tx)
    assert_matches_eth_account(signed, tx, key)
    # An explicit type 0 means the same legacy transaction (eth-account itself rejects "type": 0).
    assert signer.sign({**tx, "type": 0}) == signed
    fields = rlp.decode(signed.raw)
    assert len(fields) == 9
    v = int.from_bytes(fields[6], "big")
    assert v in (chain_id * 2 + 35, chain_id * 2 + 36)


@PROPERTY
@given(key=keys, chain_id=chain_ids, nonce_list=st.lists(nonces, min_size=1, max_size=4), data=st.data())
def test_prepared_matches_eth_account_across_nonces(
    key: bytes, chain_id: int, nonce_list: list[int], data: st.DataObject
) -> None:
    template = data.draw(transactions(chain_id))
    prepared = FastSigner(key, chain_id).prepare(template)
    assert isinstance(prepared, PreparedTx)
    for nonce in [*nonce_list, 0, 127, 128]:
        assert_matches_eth_account(prepared.sign(nonce), {**template, "nonce": nonce}, key)


@PROPERTY
@given(
    key=keys,
    chain_id=chain_ids,
    nonce=nonces,
    to=st.one_of(st.none(), addresses, address_bytes),
    value=values,
    new_data=calldata,
    overrides=st.sets(st.sampled_from(["to", "value", "data"])),
    data=st.data(),
)
def test_prepared_sign_fields_matches_eth_account(
    key: bytes,
    chain_id: int,
    nonce: int,
    to: str | bytes | None,
    value: int,
    new_data: bytes,
    overrides: set[str],
    data: st.DataObject,
) -> None:
    template = data.draw(transactions(chain_id))
    prepared = FastSigner(key, chain_id).prepare(template)
    chosen: dict[str, Any] = {"to": to, "value": value, "data": new_data}
    kwargs = {name: chosen[name] for name in overrides}
    signed = prepared.sign_fields(nonce, **kwargs)
    expected_tx = {**template, **kwargs, "nonce": nonce}
    if isinstance(expected_tx.get("to"), bytes) and expected_tx["to"]:
        expected_tx["to"] = to_checksum_address(expected_tx["to"])
    assert_matches_eth_account(signed, expected_tx, key)
    if not overrides:
        assert signed == prepared.sign(nonce)


def test_sign_fields_recipient_pool_is_stable() -> None:
    """Memoized recipients encode the same every time, whichever form they arrive in."""
    key = bytes(31) + b"\x07"
    prepared = FastSigner(key, 1).prepare(
        {"type": 2, "gas": 21_000, "maxFeePerGas": 10, "maxPriorityFeePerGas": 1}
    )
    pool = [to_checksum_address(bytes([i]) * 20) for i in range(1, 5)]
    for nonce in range(12):
        to = pool[nonce % len(pool)]
        by_str = prepared.sign_fields(nonce, to=to, value=nonce)
        assert by_str == prepared.sign_fields(nonce, to=bytes.fromhex(to[2:]), value=nonce)
        assert by_str == prepared.sign_fields(nonce, to=to.lower(), value=nonce)
        tx = {"type": 2, "gas": 21_000, "maxFeePerGas": 10, "maxPriorityFeePerGas": 1, "chainId": 1}
        assert_matches_eth_account(by_str, {**tx, "nonce": nonce, "to": to, "value": nonce}, key)


@settings(max_examples=20, deadline=None)
@given(key=keys, nonce=nonces, chain_id=chain_ids, data=st.data())
def test_signature_matches_independent_rfc6979_low_s(
    key: bytes, nonce: int, chain_id: int, data: st.DataObject
) -> None:
    """eth-account itself uses coincurve here, so also check against eth-keys' pure-Python backend."""
    tx = {**data.draw(transactions(chain_id, tx_type=2)), "nonce": nonce}
    fields = rlp.decode(FastSigner(key, chain_id).sign(tx).raw[1:])
    signing_hash = reference_keccak(b"\x02" + rlp.encode(fields[:-3]))
    native = KeyAPI(NativeECCBackend).PrivateKey(key).sign_msg_hash(signing_hash)
    y_parity, r, s = (int.from_bytes(field, "big") for field in fields[-3:])
    assert (y_parity, r, s) == native.vrs
    assert s <= SECP256K1_N // 2


# --- address and key handling ---------------------------------------------------------------------------


@PROPERTY
@given(key=keys)
def test_address_matches_eth_account(key: bytes) -> None:
    expected = Account.from_key(key).address
    assert FastSigner(key, 1).address == expected
    assert FastSigner("0x" + key.hex(), 1).address == expected
    assert FastSigner(key.hex(), 1).address == expected


def test_address_known_vector() -> None:
    key = "0x4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318"
    signer = FastSigner(key, 1)
    assert signer.address == "0x2c7536E3605D9C16a7a3D7b1898e529396a65c23"
    assert key[2:] not in repr(signer)


def test_lowercase_and_uppercase_addresses_are_accepted() -> None:
    key = bytes(31) + b"\x01"
    signer = FastSigner(key, 1)
    checksummed = to_checksum_address("0x" + "ab" * 20)
    tx = {"nonce": 1, "gas": 21_000, "gasPrice": 1, "to": checksummed, "value": 5}
    expected = signer.sign(tx)
    assert_matches_eth_account(expected, {**tx, "chainId": 1}, key)
    assert signer.sign({**tx, "to": checksummed.lower()}) == expected
    assert signer.sign({**tx, "to": "0x" + checksummed[2:].upper()}) == expected
    assert signer.sign({**tx, "to": bytes.fromhex(checksummed[2:])}) == expected


def test_bytes_like_and_hex_inputs_are_equivalent() -> None:
    key = bytes(31) + b"\x02"
    signer = FastSigner(key, 5)
    base = {"type": 2, "nonce": 9, "gas": 50_000, "maxFeePerGas": 100, "maxPriorityFeePerGas": 2}
    expected = signer.sign({**base, "data": b"\x00\x01\x02"})
    assert signer.sign({**base, "data": "0x000102"}) == expected
    assert signer.sign({**base, "data": bytearray(b"\x00\x01\x02")}) == expected
    assert signer.sign({**base, "data": memoryview(b"\x00\x01\x02")}) == expected
    assert signer.sign({**base, "data": b"\x00\x01\x02", "gas": "0xc350", "nonce": "0x9"}) == expected
    assert signer.sign({**base, "data": b"\x00\x01\x02", "from": signer.address.lower()}) == expected


def test_signed_tx_hex_views() -> None:
    signed = FastSigner(bytes(31) + b"\x03", 1).sign({"nonce": 0, "gas": 21_000, "gasPrice": 0})
    assert signed.raw_hex == "0x" + signed.raw.hex()
    assert signed.hash_hex == "0x" + keccak256(signed.raw).hex()
    assert signed.hash == keccak256(signed.raw)


# --- invalid input ---------------------------------------------------------------------------------------

KEY = bytes(31) + b"\x09"
CHAIN_ID = 412346
GOOD = {
    "type": 2,
    "chainId": CHAIN_ID,
    "nonce": 1,
    "gas": 21_000,
    "maxFeePerGas": 10,
    "maxPriorityFeePerGas": 1,
    "to": to_checksum_address("0x" + "12" * 20),
    "value": 1,
    "data": b"",
}


def mixed_case_with_bad_checksum() -> str:
    good = to_checksum_address("0x" + "ab" * 20)
    flipped = good[2:].swapcase()
    return "0x" + flipped


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"value": -1}, "value"),
        ({"value": 2**256}, "value"),
        ({"value": True}, "value"),
        ({"nonce": -1}, "nonce"),
        ({"nonce": 2**64}, "nonce"),
        ({"gas": 2**64}, "gas"),
        ({"gas": 21_000.0}, "gas"),
        ({"gas": "21000"}, "gas"),
        ({"gas": "0x"}, "gas"),
        ({"maxFeePerGas": -5}, "maxFeePerGas"),
        ({"maxPriorityFeePerGas": "0xzz"}, "maxPriorityFeePerGas"),
        ({"to": "0x1234"}, "to"),
        ({"to": b"\x12" * 19}, "to"),
        ({"to": "0x" + "zz" * 20}, "to"),
        ({"to": mixed_case_with_bad_checksum()}, "to"),
        ({"to": 5}, "to"),
        ({"data": "0x123"}, "data"),
        ({"data": "0xgg"}, "data"),
        ({"data": "1234"}, "data"),
        ({"data": None}, "data"),
        ({"type": 3}, "type"),
        ({"type": "0x4"}, "type"),
        ({"type": -1}, "type"),
        ({"chainId": 1}, "chainId"),
        ({"gasPrice": 1}, "gasPrice"),
        ({"maxFeePerBlobGas": 1}, "maxFeePerBlobGas"),
        ({"from": to_checksum_address("0x" + "34" * 20)}, "from"),
        ({"accessList": [{"address": "0x" + "12" * 20}]}, r"accessList\[0\]"),
        ({"accessList": [{"address": "0x12", "storageKeys": []}]}, r"accessList\[0\]\.address"),
        (
            {"accessList": [{"address": "0x" + "12" * 20, "storageKeys": ["0x01"]}]},
            r"accessList\[0\]\.storageKeys\[0\]",
        ),
        ({"accessList": "0x"}, "accessList"),
    ],
)
def test_invalid_fields_raise_value_error_naming_the_field(changes: dict[str, Any], field: str) -> None:
    signer = FastSigner(KEY, CHAIN_ID)
    with pytest.raises(ValueError, match=rf"^{field}: ") as raised:
        signer.sign({**GOOD, **changes})
    assert "\n" not in str(raised.value)


@pytest.mark.parametrize(
    ("tx", "field"),
    [
        ({k: v for k, v in GOOD.items() if k != "gas"}, "gas"),
        ({k: v for k, v in GOOD.items() if k != "nonce"}, "nonce"),
        ({k: v for k, v in GOOD.items() if k != "maxFeePerGas"}, "maxFeePerGas"),
        ({"nonce": 0, "gas": 21_000}, "gasPrice"),
        ({"type": 0, "nonce": 0, "gas": 21_000, "gasPrice": 1, "accessList": []}, "accessList"),
    ],
)
def test_missing_or_misplaced_fields(tx: dict[str, Any], field: str) -> None:
    with pytest.raises(ValueError, match=rf"^{field}: "):
        FastSigner(KEY, CHAIN_ID).sign(tx)


def test_non_mapping_transaction() -> None:
    with pytest.raises(ValueError, match=r"^tx: "):
        FastSigner(KEY, CHAIN_ID).sign([("nonce", 1)])  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "private_key",
    [
        bytes(32),
        SECP256K1_N.to_bytes(32, "big"),
        b"\x01" * 31,
        "0x" + "zz" * 32,
        "0x1234",
        12345,
    ],
)
def test_invalid_private_key(private_key: Any) -> None:
    with pytest.raises(ValueError, match=r"^private_key: "):
        FastSigner(private_key, 1)


@pytest.mark.parametrize("chain_id", [0, -1, "one", 2**256])
def test_invalid_chain_id(chain_id: Any) -> None:
    with pytest.raises(ValueError, match=r"^chain_id: "):
        FastSigner(KEY, chain_id)


def test_prepare_rejects_nonce_and_prepared_sign_validates() -> None:
    signer = FastSigner(KEY, CHAIN_ID)
    with pytest.raises(ValueError, match=r"^nonce: "):
        signer.prepare(GOOD)
    prepared = signer.prepare({k: v for k, v in GOOD.items() if k != "nonce"})
    for bad in (-1, 2**64, 1.5, "1"):
        with pytest.raises(ValueError, match=r"^nonce: "):
            prepared.sign(bad)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match=r"^nonce: "):
            prepared.sign_fields(bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"^value: "):
        prepared.sign_fields(1, value=-1)
    with pytest.raises(ValueError, match=r"^to: "):
        prepared.sign_fields(1, to="0x12")
    with pytest.raises(ValueError, match=r"^data: "):
        prepared.sign_fields(1, data="0x1")
    assert prepared.sign_fields(3, to=KEEP, value=KEEP, data=KEEP) == prepared.sign(3)
    assert prepared.sign("0x3") == prepared.sign(3)  # type: ignore[arg-type]
