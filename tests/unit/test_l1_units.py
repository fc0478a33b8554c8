"""The L1 side's pure parts: the ABI helpers, CREATE addresses, revert reasons, batch sizing, artifacts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pytest_gashammer.devnet.nitro_contracts import ENV_VAR, find_nitro_contracts
from pytest_gashammer.l1 import abi
from pytest_gashammer.l1.contracts import (
    ADD_BATCH,
    ASSERTION_CONFIRMED,
    ASSERTION_CREATED,
    SEQUENCER_BATCH_DELIVERED,
    NitroContractsError,
    load_nitro_artifacts,
    stand_in_rollup_artifact,
)
from pytest_gashammer.l1.poster import BatchPoster, fit_to_size
from pytest_gashammer.l1.sender import L1Error, create_address

ADDRESS = "0x6ac7ea33f8831ea9dcc53393aaa88b25a785dbf0"
GLOBAL_STATE = "((bytes32[2],uint64[2]),uint8,bytes32)"
#: (types, values, what decoding their encoding gives back: fixed arrays come back as tuples).
ROUND_TRIPS: list[tuple[list[str], list[Any], list[Any]]] = [
    (["uint256", "int8", "bool"], [2**256 - 1, -128, True], [2**256 - 1, -128, True]),
    (["address"], [ADDRESS.upper().replace("0X", "0x")], [ADDRESS]),
    (["bytes32", "bytes1"], ["0x" + "11" * 32, b"\x02"], [b"\x11" * 32, b"\x02"]),
    (["bytes", "uint256", "bytes"], [b"\x00\x3b", 5, "0x" + "ab" * 70], [b"\x00\x3b", 5, b"\xab" * 70]),
    (["string"], ["Global state:"], ["Global state:"]),
    (
        [GLOBAL_STATE],
        [(([b"\x01" * 32, "0x" + "02" * 32], [9, 0]), 1, bytes(32))],
        [(((b"\x01" * 32, b"\x02" * 32), (9, 0)), 1, bytes(32))],
    ),
]


@pytest.mark.parametrize(("types", "values", "decoded"), ROUND_TRIPS)
def test_values_survive_encoding_and_decoding(
    types: list[str], values: list[Any], decoded: list[Any]
) -> None:
    assert abi.decode(types, abi.encode(types, values)) == decoded


def test_calldata_is_the_selector_then_the_words() -> None:
    # transfer(address,uint256) is ERC-20's; a9059cbb is its published selector.
    expected = "a9059cbb" + "00" * 12 + ADDRESS[2:] + (1000).to_bytes(32, "big").hex()
    assert abi.call_data("transfer(address,uint256)", ADDRESS, 1000).hex() == expected
    # A dynamic argument sits behind an offset: here the second word points at byte 0x40.
    data = abi.call_data("f(uint8,bytes)", 1, b"\xff")
    assert (
        data[4:].hex()
        == (
            (1).to_bytes(32, "big")
            + (0x40).to_bytes(32, "big")
            + (1).to_bytes(32, "big")
            + b"\xff"
            + bytes(31)
        ).hex()
    )


@pytest.mark.parametrize(
    ("types", "values", "message"),
    [
        (["uint8"], [256], "256"),
        (["uint256"], [True], "True"),
        (["address"], ["0x1234"], "not 20 bytes"),
        (["bytes32"], ["0xzz"], "not hex"),
        (["bool"], [1], "BooleanEncoder"),
        (["(uint256,uint256)"], [(1,)], "TupleEncoder"),
        (["uint256", "uint256"], [1], "expected 2 values"),
        (["uint7"], [1], "uint7"),
    ],
)
def test_values_that_do_not_fit_their_type_are_refused(
    types: list[str], values: list[Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        abi.encode(types, values)


def test_short_data_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        abi.decode(["uint256"], b"\x01")


def test_selectors_and_topics_are_the_published_ones() -> None:
    assert abi.selector("batchCount()").hex() == "06f13056"
    assert abi.selector("latestConfirmed()").hex() == "65f7f80d"
    assert abi.event_topic(SEQUENCER_BATCH_DELIVERED).hex() == (
        "7394f4a19a13c7b92b5bb71033245305946ef78452f7b4986ac1390b5df4ebd7"
    )
    assert abi.event_topic(ASSERTION_CREATED).hex() == (
        "901c3aee23cf4478825462caaab375c606ab83516060388344f0650340753630"
    )
    assert abi.event_topic(ASSERTION_CONFIRMED).hex() == (
        "fc42829b29c259a7370ab56c8f69fce23b5f351a9ce151da453281993ec0090c"
    )
    assert abi.signature_types(ADD_BATCH) == ["uint256", "bytes", "uint256", "address", "uint256", "uint256"]
    assert abi.signature_types("batchCount()") == []
    assert abi.split_types("(a,(b,c)),d[2]") == ["(a,(b,c))", "d[2]"]
    with pytest.raises(ValueError, match="not a list of ABI types"):
        abi.split_types("(a,b")
    with pytest.raises(ValueError, match="not a signature"):
        abi.signature_types("batchCount")


def test_signatures_come_from_abi_json_entries() -> None:
    entry = {
        "type": "function",
        "name": "createAssertion",
        "inputs": [
            {"type": "tuple[2]", "components": [{"type": "bytes32"}, {"type": "uint64"}]},
            {"type": "address"},
        ],
    }
    assert abi.canonical_signature(entry) == "createAssertion((bytes32,uint64)[2],address)"


def test_the_stand_in_declares_the_real_event_signatures_and_selectors() -> None:
    artifact = stand_in_rollup_artifact()
    assert artifact.has("event", ASSERTION_CREATED) and artifact.has("event", ASSERTION_CONFIRMED)
    assert artifact.has("function", "latestConfirmed()")
    assert artifact.has("function", "createAssertion(uint64,bytes32,bytes32)")
    assert not artifact.has("function", "latestConfirmed(uint256)")
    assert artifact.bytecode


def test_revert_reasons_read_as_one_line() -> None:
    errors = abi.error_table(
        [
            {"type": "error", "name": "NotBatchPoster", "inputs": []},
            {
                "type": "error",
                "name": "BadSequencerNumber",
                "inputs": [{"type": "uint256", "name": "stored"}, {"type": "uint256", "name": "received"}],
            },
            {"type": "error", "name": "InvalidHeaderFlag", "inputs": [{"type": "bytes1", "name": "flag"}]},
        ]
    )
    assert abi.revert_message(abi.selector("NotBatchPoster()"), errors) == "reverted: NotBatchPoster()"
    bad = abi.selector("BadSequencerNumber(uint256,uint256)") + abi.encode(["uint256", "uint256"], [20, 999])
    assert abi.revert_message(bad, errors) == "reverted: BadSequencerNumber(20, 999)"
    flag = abi.selector("InvalidHeaderFlag(bytes1)") + abi.encode(["bytes1"], [b"\x02"])
    assert abi.revert_message(flag, errors) == "reverted: InvalidHeaderFlag(0x02)"
    assert abi.revert_message(abi.ERROR_STRING + abi.encode(["string"], ["BEFORE_DEADLINE"])) == (
        "reverted: BEFORE_DEADLINE"
    )
    assert abi.revert_message(abi.PANIC + abi.encode(["uint256"], [0x11])) == "panicked: 0x11"
    assert abi.revert_message(b"\xde\xad\xbe\xef") == "reverted with 0xdeadbeef"
    assert abi.revert_message(b"") == "reverted without a reason"


def test_create_addresses_follow_the_sender_and_nonce() -> None:
    # The classic vectors (Ethereum Yellow Paper, section 7; widely quoted).
    sender = "0x6ac7ea33f8831ea9dcc53393aaa88b25a785dbf0"
    assert create_address(sender, 0) == "0xcd234a471b72ba2f1ccf0a70fcaba648a5eecd8d"
    assert create_address(sender, 1) == "0x343c43a37d37dff08ae8c4a11544c718abb4fcf8"
    assert create_address(sender, 2) == "0xf778b86fa74e846c4f0a1fbd1335fe81c00a0c91"


def _blocks(first: int, last: int) -> list[dict[str, Any]]:
    return [{"number": hex(number)} for number in range(first, last + 1)]


def test_a_batch_too_large_for_the_inbox_is_halved_until_it_fits() -> None:
    calls: list[int] = []

    def encoder(blocks: list[dict[str, Any]]) -> bytes:
        calls.append(len(blocks))
        return b"\x00" + bytes(100 * len(blocks))

    kept, data = fit_to_size(_blocks(1, 40), encoder, max_data_size=1000)
    assert [int(block["number"], 16) for block in kept] == list(range(1, 6))
    assert len(data) == 501 and calls == [40, 20, 10, 5]
    kept, data = fit_to_size(_blocks(1, 3), encoder, max_data_size=10_000)
    assert len(kept) == 3 and calls[-1] == 3
    with pytest.raises(
        L1Error, match=r"L2 block 7 encodes to 101 bytes, over the SequencerInbox's maxDataSize 50"
    ):
        fit_to_size(_blocks(7, 8), encoder, max_data_size=50)
    with pytest.raises(L1Error, match="returned no bytes"):
        fit_to_size(_blocks(1, 1), lambda blocks: b"", max_data_size=50)


@pytest.mark.parametrize(
    "options", [{"interval": 0}, {"max_blocks_per_batch": 0}, {"assert_every": 0}, {"first_block": 0}]
)
def test_the_poster_refuses_settings_that_cannot_work(options: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="interval must be positive"):
        BatchPoster(
            "http://127.0.0.1:9", "0x" + "00" * 20, "0x" + "11" * 32, l2_rpc_url="http://127.0.0.1:9",
            encode=lambda blocks: b"\x00", **options,
        )  # fmt: skip


def test_an_installed_package_of_another_version_is_refused(tmp_path: Path) -> None:
    (tmp_path / "package.json").write_text(
        json.dumps({"name": "@arbitrum/nitro-contracts", "version": "3.1.0"})
    )
    with pytest.raises(
        NitroContractsError, match=r"holds @arbitrum/nitro-contracts 3\.1\.0; .* made for 3\.2\.0"
    ):
        load_nitro_artifacts(tmp_path)
    with pytest.raises(NitroContractsError, match="is not an installed @arbitrum/nitro-contracts"):
        load_nitro_artifacts(tmp_path / "missing")


def test_a_named_copy_without_the_artifacts_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENV_VAR, str(tmp_path))
    with pytest.raises(NitroContractsError, match=f"{ENV_VAR}=.* does not hold"):
        find_nitro_contracts()
    monkeypatch.delenv(ENV_VAR)
    monkeypatch.setenv("GASHAMMER_CACHE_DIR", str(tmp_path / "cache"))
    with pytest.raises(NitroContractsError, match=r"3\.2\.0 is not installed; install Node\.js with npm"):
        find_nitro_contracts(install=False)
