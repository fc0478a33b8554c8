"""The Nitro sequencer batch codec (``l1/batch.py``).

Three kinds of evidence: round trips (hypothesis); Nitro's rules one by one, each test naming the rule and
where Nitro states it (OffchainLabs/nitro @ 6dce8d1 unless another repository is named); and two real
batches, one written by Nitro's own batch poster (from Nitro's CI test data) and one posted on a public
chain, decoded and checked against facts recorded outside the batch (tests/unit/corpus/l1/README.md).

Batches with a fault are built here from raw segments, with the ``rlp`` PyPI package and ``brotli``, so
the bytes under test do not come from the encoder under test.
"""

from __future__ import annotations

import base64
import json
import pickle
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import brotli
import pytest
import rlp as pyrlp
from eth_account import Account
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pytest_gashammer.chain.keccak import keccak256
from pytest_gashammer.chain.signer import FastSigner
from pytest_gashammer.l1.batch import (
    MAX_BATCH_DEPTH,
    MAX_DECOMPRESSED_BATCH_SIZE,
    MAX_L2_MESSAGE_SIZE,
    MAX_SEGMENTS,
    BatchBlock,
    BatchDecodeError,
    decode_batch,
    encode_batch,
)

CORPUS = Path(__file__).parent / "corpus" / "l1"
DEV_KEY = "0xb6b15c8cb491557369f3c7d2c287b053eb229daa9c22138887752191c9520659"
CHAIN_ID = 412346
U64 = 2**64 - 1

FAST = settings(max_examples=150, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
FEW = settings(FAST, max_examples=15)


# ------------------------------------------------------------------------------------------- helpers


def raw_batch(*segments: bytes, flag: int = 0x00) -> bytes:
    """A batch's ``data`` built from raw segments, independently of the encoder."""
    return bytes((flag,)) + brotli.compress(b"".join(pyrlp.encode(segment) for segment in segments))


def raw_stream(stream: bytes, flag: int = 0x00) -> bytes:
    return bytes((flag,)) + brotli.compress(stream)


def segments_of(data: bytes) -> list[bytes]:
    """The segments of a brotli batch, read with the ``rlp`` PyPI package."""
    stream = brotli.decompress(data[1:])
    out = []
    offset = 0
    while offset < len(stream):
        item, _, offset = pyrlp.codec.consume_item(stream, offset)
        out.append(item)
    return out


def u64(value: int) -> bytes:
    return value.to_bytes(8, "big")


def nested(message: bytes) -> bytes:
    """``message`` as the one entry of an L2 Batch message."""
    return b"\x03" + u64(len(message)) + message


def signed(nonce: int, tx_type: int = 2, data: bytes = b"") -> bytes:
    fields: dict[str, Any] = {
        "nonce": nonce,
        "to": "0x" + "11" * 20,
        "value": 10**15,
        "gas": 21_000 + 16 * len(data),
        "chainId": CHAIN_ID,
        "data": data,
    }
    if tx_type == 2:
        fields.update(maxFeePerGas=10**8, maxPriorityFeePerGas=0)
    else:
        fields.update(gasPrice=10**8, type=tx_type)
    return FastSigner(DEV_KEY, CHAIN_ID).sign(fields).raw


TX_A = signed(0)
TX_B = signed(1, tx_type=0)  # legacy (EIP-155)
TX_C = signed(2, tx_type=1)  # EIP-2930


def fake_tx(type_byte: bytes, fields: Sequence[bytes]) -> bytes:
    """A structurally valid transaction (a type byte, then one RLP list); the codec looks no deeper."""
    return type_byte + pyrlp.encode(list(fields))


transactions = st.builds(
    fake_tx, st.sampled_from([b"", b"\x01", b"\x02", b"\x04"]), st.lists(st.binary(max_size=80), max_size=5)
)
blocks = st.builds(
    BatchBlock,
    timestamp=st.integers(0, U64),
    l1_block_number=st.integers(0, U64),
    transactions=st.lists(transactions, max_size=5).map(tuple),
)


def monotone_blocks(draw_list: list[tuple[int, int, tuple[bytes, ...]]]) -> list[BatchBlock]:
    """Realistic blocks: timestamps and L1 numbers that only move forward, often by nothing."""
    timestamp, l1_block, out = 1_700_000_000, 20_000_000, []
    for step_ts, step_l1, txs in draw_list:
        timestamp += step_ts
        l1_block += step_l1
        out.append(BatchBlock(timestamp, l1_block, txs))
    return out


realistic = st.lists(
    st.tuples(st.integers(0, 2), st.integers(0, 1), st.lists(transactions, max_size=4).map(tuple)),
    min_size=1,
    max_size=30,
).map(monotone_blocks)


# ------------------------------------------------------------------------------------------- round trips


@FAST
@given(st.lists(blocks, min_size=1, max_size=12))
def test_any_blocks_come_back_as_they_went_in(batch: list[BatchBlock]) -> None:
    decoded = decode_batch(encode_batch(batch))
    assert decoded.blocks == tuple(batch)
    assert decoded.delayed_messages == 0
    assert decoded.block_positions == tuple(range(len(batch)))
    assert decoded.message_count == len(batch)
    assert decoded.transaction_count == sum(len(block.transactions) for block in batch)


@FAST
@given(realistic)
def test_realistic_blocks_come_back_and_advance_only_on_change(batch: list[BatchBlock]) -> None:
    data = encode_batch(batch)
    assert decode_batch(data).blocks == tuple(batch)
    changes = sum(
        (block.timestamp != previous.timestamp) + (block.l1_block_number != previous.l1_block_number)
        for previous, block in zip([BatchBlock(0, 0)] + batch, batch, strict=False)
    )
    assert len(segments_of(data)) == len(batch) + changes


@FEW
@given(st.lists(st.integers(0, U64), min_size=1, max_size=20))
def test_empty_blocks_come_back_empty(timestamps: list[int]) -> None:
    batch = [BatchBlock(timestamp, timestamp // 7, ()) for timestamp in timestamps]
    assert decode_batch(encode_batch(batch)).blocks == tuple(batch)


@FEW
@given(st.lists(transactions, min_size=100, max_size=400))
def test_big_blocks_come_back_in_order(txs: list[bytes]) -> None:
    batch = [BatchBlock(1, 1, tuple(txs)), BatchBlock(2, 1, tuple(reversed(txs)))]
    decoded = decode_batch(encode_batch(batch))
    assert decoded.blocks == tuple(batch)


def test_real_signed_transactions_come_back_byte_for_byte() -> None:
    batch = [
        BatchBlock(1_700_000_000, 19_000_000, (TX_A, TX_B, TX_C)),
        BatchBlock(1_700_000_001, 19_000_000, (TX_A,)),
    ]
    decoded = decode_batch(encode_batch(batch))
    assert decoded.blocks == tuple(batch)
    assert Account.recover_transaction(decoded.blocks[0].transactions[1]) == Account.from_key(DEV_KEY).address


def test_a_block_at_the_l2_message_limit_fits_and_one_byte_more_does_not() -> None:
    # A single-transaction block's message is 0x04 ‖ tx, so the tx may take MAX_L2_MESSAGE_SIZE - 1 bytes.
    def tx_of(size: int) -> bytes:
        payload = b"\x01" * (size - 4 - 4)  # a long list prefix (4) holding a long string prefix (4)
        tx = pyrlp.encode([payload])
        assert len(tx) == size
        return tx

    fits = BatchBlock(1, 1, (tx_of(MAX_L2_MESSAGE_SIZE - 1),))
    assert decode_batch(encode_batch([fits])).blocks == (fits,)
    with pytest.raises(ValueError, match="Nitro drops messages over 262144"):
        encode_batch([BatchBlock(1, 1, (tx_of(MAX_L2_MESSAGE_SIZE),))])


def test_empty_data_is_a_batch_of_nothing() -> None:
    # SequencerInbox.sol formCallDataHash: "the batch poster is allowed to submit an empty batch".
    decoded = decode_batch(b"")
    assert decoded.blocks == () and decoded.message_count == 0 and decoded.segments == 0


# ------------------------------------------------------------------------------------------- the encoder


def test_the_encoder_writes_the_segments_nitros_batch_poster_writes() -> None:
    """Rule by rule, against the decompressed stream read with the ``rlp`` PyPI package.

    - batch_poster.go 1165-1183 AddMessage: an advance-timestamp segment, then an advance-L1-block segment,
      each only when the value changed (maybeAddDiffSegment 1140-1154), then the L2 message (addL2Msg 1123).
    - batch_poster.go 1144: the advance is ``newVal - *base`` in uint64, so going back wraps around; the base
      starts at 0 in every batch (batchSegments has no initial value), so the first advance is the full value.
    - batch_poster.go 1130-1137 prepareIntSegment: kind byte, then the RLP of the uint64.
    - sequencer.go 930-970 MessageFromTxes: one transaction is 0x04 ‖ tx; otherwise 0x03 and, per
      transaction, u64be(len(tx) + 1) ‖ 0x04 ‖ tx; no transaction leaves a bare 0x03.
    - batch_poster.go 1208 CloseAndGetBytes: the header byte 0x00 (BrotliMessageHeaderByte), then brotli.
    """
    batch = [
        BatchBlock(1000, 7, (TX_A,)),
        BatchBlock(1000, 7, (TX_A, TX_B)),
        BatchBlock(1003, 7, ()),
        BatchBlock(999, 9, (TX_C,)),
    ]
    data = encode_batch(batch)
    assert data[0] == 0x00
    assert segments_of(data) == [
        b"\x03" + pyrlp.encode(1000),
        b"\x04" + pyrlp.encode(7),
        b"\x00\x04" + TX_A,
        b"\x00\x03" + u64(len(TX_A) + 1) + b"\x04" + TX_A + u64(len(TX_B) + 1) + b"\x04" + TX_B,
        b"\x03" + pyrlp.encode(3),
        b"\x00\x03",
        b"\x03" + pyrlp.encode(2**64 - 4),
        b"\x04" + pyrlp.encode(2),
        b"\x00\x04" + TX_C,
    ]


@pytest.mark.parametrize(
    ("tx", "phrase"),
    [
        (b"", "no transaction bytes"),
        (b"\x03" + pyrlp.encode([b"x"]), "blob transaction"),  # parse_l2.go 171
        (b"\x7e" + pyrlp.encode([b"x"]), "type 0x7e"),
        (b"\x6a" + pyrlp.encode([b"x"]), "type 0x6a"),  # an Arbitrum-internal type
        (b"\x00" + pyrlp.encode([b"x"]), "type 0x00"),
        (pyrlp.encode(b"not a list"), "an RLP string"),
        (b"\x02" + pyrlp.encode(b"string body"), "not a list"),
        (TX_A + b"\x00", "1 byte after the transaction"),
        (TX_A[:-1], "truncated RLP"),
    ],
)
def test_the_encoder_refuses_what_nitro_would_not_take_as_a_signed_transaction(
    tx: bytes, phrase: str
) -> None:
    with pytest.raises(ValueError, match=phrase):
        encode_batch([BatchBlock(1, 1, (TX_A,)), BatchBlock(1, 1, (TX_B, tx))])


def test_the_encoder_refuses_no_blocks_and_values_outside_uint64() -> None:
    with pytest.raises(ValueError, match="at least one block"):
        encode_batch([])
    for bad in (-1, 2**64):
        with pytest.raises(ValueError, match="in \\[0, 2\\*\\*64\\)"):
            BatchBlock(bad, 0)
        with pytest.raises(ValueError, match="l1_block_number"):
            BatchBlock(0, bad)
    with pytest.raises(ValueError, match="quality"):
        encode_batch([BatchBlock(1, 1)], quality=12)


def test_the_encoder_refuses_more_segments_than_nitro_reads() -> None:
    # arbstate/inbox.go 81 MaxSegmentsPerSequencerMessage = 100 * 1024; 188: no segment past that is read.
    at_limit = [BatchBlock(0, 0)] * MAX_SEGMENTS
    assert decode_batch(encode_batch(at_limit)).segments == MAX_SEGMENTS
    with pytest.raises(ValueError, match=f"Nitro reads at most {MAX_SEGMENTS}"):
        encode_batch(at_limit + [BatchBlock(0, 0)])


def test_the_encoder_refuses_a_batch_over_nitros_decompressed_limit() -> None:
    big = pyrlp.encode([b"\x01" * (255 * 1024)])
    batch = [BatchBlock(1, 1, (big,))] * (MAX_DECOMPRESSED_BATCH_SIZE // len(big) + 1)
    with pytest.raises(ValueError, match="decompressed"):
        encode_batch(batch)


def test_block_transactions_are_kept_as_an_immutable_tuple_of_bytes() -> None:
    block = BatchBlock(1, 2, [bytearray(TX_A), memoryview(TX_B)])  # type: ignore[arg-type]
    assert block.transactions == (TX_A, TX_B)
    assert all(type(tx) is bytes for tx in block.transactions)
    assert block == BatchBlock(1, 2, (TX_A, TX_B))


# ------------------------------------------------------------------------------------------- Nitro's reading rules


def test_advances_add_to_running_values_that_start_at_zero_and_wrap() -> None:
    # inbox.go 345-357: advancing = rlp Uint64; timestamp += advancing (uint64, so it wraps);
    # 293: advanceSequencerMsg resets the running values to 0 for every batch.
    data = raw_batch(
        b"\x03" + pyrlp.encode(5),
        b"\x04" + pyrlp.encode(100),
        b"\x00\x04" + TX_A,
        b"\x03" + pyrlp.encode(U64),  # 5 + (2**64 - 1) wraps to 4
        b"\x00\x03",
    )
    decoded = decode_batch(data)
    assert [(b.timestamp, b.l1_block_number) for b in decoded.blocks] == [(5, 100), (4, 100)]


def test_what_nitro_reads_silently_and_to_no_effect_is_accepted() -> None:
    # inbox.go 311 and 340: an empty segment is skipped; an advance by zero changes nothing; advances
    # after the last message are read and lead nowhere (the poster trims them: batch_poster.go 1076).
    data = raw_batch(
        b"",
        b"\x03" + pyrlp.encode(0),
        b"\x00\x04" + TX_A,
        b"\x03" + pyrlp.encode(9),
        b"\x04" + pyrlp.encode(9),
    )
    decoded = decode_batch(data)
    assert decoded.blocks == (BatchBlock(0, 0, (TX_A,)),)
    assert decoded.segments == 5


def test_delayed_segments_are_counted_and_place_the_blocks() -> None:
    # inbox.go 419-441: each kind-2 segment reads one delayed message, a message of its own;
    # batch_poster.go 1156 addDelayedMessage writes the segment as the single byte 0x02.
    data = raw_batch(b"\x02", b"\x00\x04" + TX_A, b"\x02", b"\x02", b"\x00\x03")
    decoded = decode_batch(data)
    assert decoded.delayed_messages == 3
    assert decoded.block_positions == (1, 4)
    assert decoded.message_count == 5


def test_a_brotli_l2_message_segment_is_read_like_a_plain_one() -> None:
    # inbox.go 396-402: kind 1 is the L2 message brotli-compressed, capped at MaxL2MessageSize.
    message = b"\x03" + u64(len(TX_A) + 1) + b"\x04" + TX_A + u64(len(TX_B) + 1) + b"\x04" + TX_B
    decoded = decode_batch(raw_batch(b"\x01" + brotli.compress(message)))
    assert decoded.blocks == (BatchBlock(0, 0, (TX_A, TX_B)),)


def test_batches_nest_up_to_nitros_depth_and_are_flattened_in_order() -> None:
    # parse_l2.go 135-160: a Batch holds 8-byte-length-prefixed messages (util.go 172
    # BytestringFromReader), each parsed at depth + 1; a Batch at depth >= 16 is an error.
    message = b"\x04" + TX_A
    for _ in range(MAX_BATCH_DEPTH):  # the innermost Batch sits at depth 15
        message = nested(message)
    message = b"\x03" + u64(len(message)) + message + u64(len(TX_B) + 1) + b"\x04" + TX_B
    with pytest.raises(BatchDecodeError) as caught:
        decode_batch(raw_batch(b"\x00" + message))
    assert caught.value.kind == "nesting_too_deep"  # the extra outer Batch pushed the innermost to 16

    deepest = b"\x04" + TX_A
    for _ in range(MAX_BATCH_DEPTH):
        deepest = nested(deepest)
    flat = decode_batch(raw_batch(b"\x00" + deepest + u64(len(TX_B) + 1) + b"\x04" + TX_B))
    assert flat.blocks[0].transactions == (TX_A, TX_B)


# ------------------------------------------------------------------------------------------- decode errors

SIGNED_A = b"\x04" + TX_A


@pytest.mark.parametrize(
    ("data", "kind", "phrase"),
    [
        # Header flags: daprovider/util.go 62-82; SequencerInbox.sol 600-607 isValidCallDataFlag.
        (b"\x02" + b"\x00" * 10, "unknown_flag", "unknown batch header flag 0x02"),
        (b"\xff", "unknown_flag", "0xff"),
        (b"\x20" + b"\x00" * 10, "unsupported_flag", "zero-heavy"),
        (b"\x80" + b"\x00" * 40, "unsupported_flag", "AnyTrust DAS certificate (0x80)"),
        (b"\x88" + b"\x00" * 40, "unsupported_flag", "tree-hashed (0x88)"),
        (b"\x01" + b"\x00" * 40, "unsupported_flag", "custom-DA certificate (0x01)"),
        (b"\x50" + b"\x00" * 32, "unsupported_flag", "blob hashes (0x50)"),
        # Brotli: inbox.go 175 arbcompress.Decompress fails -> Nitro logs and reads no segments.
        (b"\x00" + b"\xff\xff\xff\xff", "bad_brotli", "not a valid brotli stream"),
        (raw_batch(b"\x00" + SIGNED_A) + b"\x00\x01", "bad_brotli", "bytes after its end"),
        (raw_batch(b"\x00" + SIGNED_A)[:-3], "truncated_brotli", "ends early"),
        (b"\x00", "truncated_brotli", "ends early"),
        # The RLP segment stream: inbox.go 176-192 (a stream of byte strings; a decode error ends it).
        (raw_stream(pyrlp.encode(b"\x00" + SIGNED_A)[:-2]), "truncated_rlp", "truncated RLP"),
        (raw_stream(b"\x81\x02"), "bad_rlp", "non-canonical"),
        (raw_stream(pyrlp.encode([b"\x00" + SIGNED_A])), "not_a_byte_string", "is an RLP list"),
        # Segment kinds: inbox.go 245-249; 444 "bad sequencer message segment kind".
        (raw_batch(b"\x05"), "unknown_segment_kind", "unknown segment kind 5"),
        (raw_batch(b"\xff\x00"), "unknown_segment_kind", "kind 255"),
        # Advances: inbox.go 347 rlp.NewStream(rd, 16).Uint64(); 348-352 a bad one is skipped.
        (raw_batch(b"\x03\x00"), "bad_advance", "timestamp advance"),
        (raw_batch(b"\x04" + pyrlp.encode([b"\x01"])), "bad_advance", "L1 block number advance"),
        (raw_batch(b"\x03" + pyrlp.encode(2**64)), "bad_advance", "wider than 64 bits"),
        (raw_batch(b"\x03" + pyrlp.encode(5) + b"\x00"), "bad_advance", "after the RLP integer"),
        (raw_batch(b"\x02\x00"), "bad_delayed", "which Nitro ignores"),
        # L2 messages: parse_l2.go 26 (size), 114-205 (kinds, nesting, SignedTx).
        (raw_batch(b"\x00"), "empty_l2_message", "empty L2 message at depth 0"),
        (raw_batch(b"\x00" + b"\x03" + u64(0)), "empty_l2_message", "at depth 1"),
        (raw_batch(b"\x00" + b"\x04" + b"\x01" * MAX_L2_MESSAGE_SIZE), "oversize_l2_message", "262145 bytes"),
        (raw_batch(b"\x00\x03" + u64(MAX_L2_MESSAGE_SIZE + 1) + SIGNED_A), "oversize_l2_message", "claims"),
        (raw_batch(b"\x00\x03" + u64(len(SIGNED_A) + 1) + SIGNED_A), "truncated_l2_batch", "only"),
        (raw_batch(b"\x00\x03" + u64(len(SIGNED_A)) + SIGNED_A + b"\x00\x00"), "truncated_l2_batch", "stray"),
        (raw_batch(b"\x00\x00" + b"\x00" * 40), "unknown_l2_kind", "kind 0 (UnsignedUserTx)"),
        (raw_batch(b"\x00\x01"), "unknown_l2_kind", "ContractTx"),
        (raw_batch(b"\x00\x02"), "unknown_l2_kind", "NonmutatingCall"),
        (raw_batch(b"\x00\x06"), "unknown_l2_kind", "Heartbeat"),
        (raw_batch(b"\x00\x07"), "unknown_l2_kind", "SignedCompressedTx"),
        (raw_batch(b"\x00\x09"), "unknown_l2_kind", "kind 9 (undefined)"),
        (raw_batch(b"\x00\x04"), "bad_transaction", "no transaction bytes"),
        (raw_batch(b"\x00\x04\x03" + pyrlp.encode([b""])), "bad_transaction", "blob transaction"),
        (raw_batch(b"\x00\x04" + TX_A + b"\x01"), "bad_transaction", "after the transaction"),
        (
            raw_batch(b"\x01" + brotli.compress(b"\x04" + b"\x01" * MAX_L2_MESSAGE_SIZE)),
            "too_large",
            "MaxL2MessageSize",
        ),
        (raw_batch(b"\x01" + b"\xff\xff\xff"), "bad_brotli", "segment 0 (brotli L2 message)"),
    ],
)
def test_each_decode_error_names_what_is_wrong_in_one_line(data: bytes, kind: str, phrase: str) -> None:
    with pytest.raises(BatchDecodeError) as caught:
        decode_batch(data)
    assert caught.value.kind == kind, str(caught.value)
    assert phrase in str(caught.value)
    assert "\n" not in str(caught.value)


def test_an_error_names_the_segment_and_block_it_is_in() -> None:
    data = raw_batch(
        b"\x03" + pyrlp.encode(1), b"\x00" + SIGNED_A, b"\x02", b"\x00\x04\x03" + pyrlp.encode([b""])
    )
    with pytest.raises(BatchDecodeError, match=r"^segment 3 \(block 1\): SignedTx 0 at depth 0: a blob"):
        decode_batch(data)


def test_the_decompressed_limit_is_nitros_and_exact() -> None:
    # inbox.go 155-160 and 175: Decompress(payload[1:], MaxUncompressedBatchSize), 16 MiB by default
    # (go-ethereum params/config_arbitrum.go 60); native.go 62: an output that will not fit is an error.
    stream = pyrlp.encode(b"\x00" + SIGNED_A) * 3
    assert len(decode_batch(raw_stream(stream), max_decompressed_size=len(stream)).blocks) == 3
    with pytest.raises(BatchDecodeError, match=f"more than {len(stream) - 1} bytes") as caught:
        decode_batch(raw_stream(stream), max_decompressed_size=len(stream) - 1)
    assert caught.value.kind == "too_large"

    bomb = b"\x00" + brotli.compress(bytes(MAX_DECOMPRESSED_BATCH_SIZE + 1), quality=1)
    assert len(bomb) < 10_000  # a few kilobytes of calldata that would inflate to 16 MiB
    with pytest.raises(BatchDecodeError, match="MaxUncompressedBatchSize") as caught:
        decode_batch(bomb)
    assert caught.value.kind == "too_large"


def test_more_segments_than_nitro_reads_are_refused() -> None:
    # inbox.go 188-191: after MaxSegmentsPerSequencerMessage segments Nitro stops reading.
    empty_segment = pyrlp.encode(b"")
    assert decode_batch(raw_stream(empty_segment * MAX_SEGMENTS)).segments == MAX_SEGMENTS
    with pytest.raises(BatchDecodeError) as caught:
        decode_batch(raw_stream(empty_segment * (MAX_SEGMENTS + 1)))
    assert caught.value.kind == "too_many_segments"


def test_the_error_survives_pickling() -> None:
    with pytest.raises(BatchDecodeError) as caught:
        decode_batch(b"\x02")
    copy = pickle.loads(pickle.dumps(caught.value))
    assert (copy.kind, str(copy)) == (caught.value.kind, str(caught.value))


# ------------------------------------------------------------------------------------------- real batches


def _header(message: bytes) -> tuple[int, int, int, int, int]:
    # SequencerInbox.sol packHeader / inbox.go 87-93: five big-endian uint64s before the data.
    min_ts, max_ts, min_l1, max_l1, after_delayed = (
        int.from_bytes(message[i : i + 8], "big") for i in range(0, 40, 8)
    )
    return min_ts, max_ts, min_l1, max_l1, after_delayed


def test_a_batch_written_by_nitros_own_batch_poster() -> None:
    record = json.loads((CORPUS / "nitro_ci_batch5.json").read_text())
    message = base64.b64decode(record["sequencer_message_base64"])
    min_ts, max_ts, min_l1, max_l1, _ = _header(message)
    data = message[40:]

    decoded = decode_batch(data)

    # The validator's inputs start at position 1 of batch 5 and end at position 0 of batch 6, so the
    # batch holds two messages; the decoded blocks are those two, with no delayed message.
    assert record["start_state"]["Batch"] == record["batch_number"] == 5
    assert record["expected_end_state"]["Batch"] == 6 and record["expected_end_state"]["PosInBatch"] == 0
    assert decoded.message_count == record["start_state"]["PosInBatch"] + 1 == 2
    assert decoded.delayed_messages == 0 and decoded.block_positions == (0, 1)
    assert [(b.timestamp, b.l1_block_number) for b in decoded.blocks] == [(1774951466, 29), (1774951466, 31)]
    for block in decoded.blocks:
        assert min_ts <= block.timestamp <= max_ts and min_l1 <= block.l1_block_number <= max_l1
        (tx,) = block.transactions
        assert tx[0] == 0x02 and int.from_bytes(pyrlp.decode(tx[1:])[0], "big") == CHAIN_ID
        Account.recover_transaction(tx)  # a whole, validly signed transaction
    assert [keccak256(b.transactions[0]).hex()[:16] for b in decoded.blocks] == [
        "3d8c057622d7a3a2",
        "ea61fc85b4370956",
    ]
    # Nitro's poster and this encoder write the same segments, byte for byte (the compression may differ).
    assert brotli.decompress(encode_batch(decoded.blocks)[1:]) == brotli.decompress(data[1:])


def test_a_batch_posted_on_a_public_chain() -> None:
    record = json.loads((CORPUS / "public_batch456_calldata.json").read_text())
    calldata = bytes.fromhex(record["calldata_hex"][2:])
    signature = b"addSequencerL2BatchFromOrigin(uint256,bytes,uint256,address,uint256,uint256)"
    assert calldata[:4] == keccak256(signature)[:4] == bytes.fromhex("8f111f3c")
    words = [int.from_bytes(calldata[4 + 32 * i : 36 + 32 * i], "big") for i in range(6)]
    sequence_number, data_offset, after_delayed, _, prev_count, new_count = words
    length = int.from_bytes(calldata[4 + data_offset : 36 + data_offset], "big")
    data = calldata[36 + data_offset : 36 + data_offset + length]
    assert (sequence_number, after_delayed, prev_count, new_count, length) == (456, 468, 3953, 3955, 512)

    decoded = decode_batch(data)

    # The call says the batch adds two messages; the batch reads one delayed message, then one block.
    assert decoded.message_count == new_count - prev_count
    assert decoded.delayed_messages == 1 and decoded.block_positions == (1,)
    (block,) = decoded.blocks
    assert (block.timestamp, block.l1_block_number) == (1700162685, 10055244)
    (tx,) = block.transactions
    assert len(tx) == 951 and int.from_bytes(pyrlp.decode(tx[1:])[0], "big") == 27733066280
    assert Account.recover_transaction(tx) == "0x4C059dD7b01AAECDaA3d2cAf4478f17b9c690080"
    # After its delayed-message segment (the single byte 0x02), the rest is what encode_batch writes.
    stream = brotli.decompress(data[1:])
    assert stream[:1] == b"\x02"
    assert brotli.decompress(encode_batch(decoded.blocks)[1:]) == stream[1:]
