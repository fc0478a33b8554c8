"""Property and fuzz tests for the sequencer-feed codec.

The decoder runs on whatever a node (or a broken proxy in front of it) sends, so the one property that
must never break is: it returns a ``BroadcastMessage`` or raises ``FeedDecodeError``, nothing else.
"""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path
from typing import Any

import pytest
from eth_hash.auto import keccak
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pytest_gashammer.feed import (
    MAX_L2_MESSAGE_SIZE,
    BroadcastMessage,
    FeedDecodeError,
    FeedMessage,
    L2MessageError,
    decode_broadcast,
    encode_broadcast,
    l2_message_for,
    parse_l2_message,
)

# FEED_FUZZ_EXAMPLES raises the budget for a longer local hunt; the default keeps the file fast.
EXAMPLES = int(os.environ.get("FEED_FUZZ_EXAMPLES", "300"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# Whole generated frames cost more to draw than raw bytes, so those tests take half the budget.
FUZZ_FRAMES = settings(FUZZ, max_examples=max(1, EXAMPLES // 2))

CORPUS = Path(__file__).parent / "corpus" / "feed"
ERROR_KINDS = {
    "bad_json",
    "bad_base64",
    "bad_shape",
    "truncated_batch",
    "oversize_segment",
    "unknown_l2_kind",
    "nesting_too_deep",
    "empty_message",
}
L2_ERROR_KINDS = {
    "truncated_batch",
    "oversize_segment",
    "unknown_l2_kind",
    "nesting_too_deep",
    "empty_message",
}
KNOWN_KEYS = [
    "version",
    "messages",
    "confirmedSequenceNumberMessage",
    "sequenceNumber",
    "message",
    "header",
    "kind",
    "sender",
    "blockNumber",
    "timestamp",
    "requestId",
    "baseFeeL1",
    "l2Msg",
    "delayedMessagesRead",
    "blockHash",
    "signatureV2",
    "signature",
    "blockMetadata",
]


def decode_or_error(data: bytes | str) -> BroadcastMessage | FeedDecodeError:
    """Decode, letting only FeedDecodeError through as a value; anything else fails the test."""
    try:
        return decode_broadcast(data)
    except FeedDecodeError as error:
        assert error.kind in ERROR_KINDS
        text = str(error)
        assert text and "\n" not in text
        return error


# ---------------------------------------------------------------------------------------- strategies

u64 = st.integers(min_value=0, max_value=2**64 - 1)
small_u64 = st.integers(min_value=0, max_value=2**40) | u64
hash_hex = st.binary(min_size=32, max_size=32).map(lambda b: "0x" + b.hex())
address_hex = st.binary(min_size=20, max_size=20).map(lambda b: "0x" + b.hex())
tx_bytes = st.binary(min_size=1, max_size=300)


def _signed_leaf(tx: bytes) -> tuple[bytes, list[bytes]]:
    return b"\x04" + tx, [tx]


def _skipped_leaf(kind_and_body: tuple[int, bytes]) -> tuple[bytes, list[bytes]]:
    kind, body = kind_and_body
    return bytes([kind]) + body, []


def _tree_leaf() -> st.SearchStrategy[tuple[bytes, list[bytes]]]:
    skipped = st.tuples(st.sampled_from([0, 1, 2, 6]), st.binary(max_size=40)).map(_skipped_leaf)
    return tx_bytes.map(_signed_leaf) | skipped


def _tree_batch(
    children: st.SearchStrategy[tuple[bytes, list[bytes]]],
) -> st.SearchStrategy[tuple[bytes, list[bytes]]]:
    def build(items: list[tuple[bytes, list[bytes]]]) -> tuple[bytes, list[bytes]]:
        body = b"".join(len(l2).to_bytes(8, "big") + l2 for l2, _ in items)
        return b"\x03" + body, [tx for _, txs in items for tx in txs]

    return st.lists(children, max_size=4).map(build)


# An L2 message as a tree of batches, signed txs and skipped kinds, with the txs it must yield in order.
l2_trees = st.recursive(_tree_leaf(), _tree_batch, max_leaves=12)


@st.composite
def feed_messages(draw: st.DrawFn) -> FeedMessage:
    kind = draw(st.sampled_from([3, 3, 3, 3, 9, 12, 13]) | st.integers(min_value=0, max_value=255))
    transactions: tuple[bytes, ...] = ()
    if kind == 3:
        if draw(st.booleans()):
            transactions = tuple(draw(st.lists(tx_bytes, max_size=5)))
            l2_msg = l2_message_for(transactions)
        else:
            l2_msg, txs = draw(l2_trees)
            transactions = tuple(txs)
    else:
        l2_msg = draw(st.binary(max_size=100))
    return FeedMessage(
        sequence_number=draw(small_u64),
        kind=kind,
        sender=draw(st.none() | address_hex),
        l1_block_number=draw(small_u64),
        timestamp=draw(small_u64),
        request_id=draw(st.none() | hash_hex),
        base_fee_l1=draw(st.none() | st.integers(min_value=-(2**256), max_value=2**256)),
        delayed_messages_read=draw(small_u64),
        block_hash=draw(st.none() | hash_hex),
        l2_msg=l2_msg,
        transactions=transactions,
        tx_hashes=tuple("0x" + keccak(tx).hex() for tx in transactions),
        signature=draw(st.none() | st.binary(max_size=100)),
        block_metadata=draw(st.none() | st.binary(min_size=1, max_size=20)),
    )


frames = st.tuples(
    st.lists(feed_messages(), max_size=4),
    st.none() | small_u64,
    st.sampled_from(["signatureV2", "signature"]),
)
# Mutation tests spend their budget on the mutations, so they start from smaller frames.
small_frames = st.tuples(
    st.lists(feed_messages(), max_size=2),
    st.none() | small_u64,
    st.sampled_from(["signatureV2", "signature"]),
)

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
    | st.sampled_from(["", "BA==", "AAA=", "0x" + "00" * 32, "0x" + "11" * 20, "3q2+7w=="])
)


def _json_containers(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    keys = st.sampled_from(KNOWN_KEYS) | st.text(max_size=6)
    return st.lists(children, max_size=4) | st.dictionaries(keys, children, max_size=5)


# JSON values whose object keys are mostly the feed's own, so the decoder gets past the first lookups.
json_values = st.recursive(json_scalars, _json_containers, max_leaves=25)


# ------------------------------------------------------------------------------------- round trips


@FUZZ_FRAMES
@given(frames)
def test_round_trip(frame: tuple[list[FeedMessage], int | None, str]) -> None:
    messages, confirmed, signature_field = frame
    encoded = encode_broadcast(messages, confirmed_sequence_number=confirmed, signature_field=signature_field)
    assert encoded.endswith("}\n") and "\n" not in encoded[:-1] and " " not in encoded
    json.loads(encoded)
    decoded = decode_broadcast(encoded)
    assert decoded == BroadcastMessage(
        version=1, messages=tuple(messages), confirmed_sequence_number=confirmed
    )
    assert decode_broadcast(encoded.encode()) == decoded
    again = encode_broadcast(
        decoded.messages, confirmed_sequence_number=confirmed, signature_field=signature_field
    )
    assert again == encoded


@FUZZ
@given(l2_trees)
def test_l2_tree_flattens_to_its_transactions(tree: tuple[bytes, list[bytes]]) -> None:
    l2_msg, txs = tree
    assert parse_l2_message(l2_msg) == tuple(txs)


@FUZZ
@given(st.lists(tx_bytes, max_size=8))
def test_sequencer_layout_round_trips(txs: list[bytes]) -> None:
    l2_msg = l2_message_for(txs)
    assert parse_l2_message(l2_msg) == tuple(txs)
    assert l2_msg[0] == (4 if len(txs) == 1 else 3)


# -------------------------------------------------------------------------------------- robustness


@FUZZ
@given(st.binary(max_size=2000))
def test_arbitrary_bytes(data: bytes) -> None:
    decode_or_error(data)


@FUZZ
@given(st.text(max_size=500))
def test_arbitrary_text(data: str) -> None:
    decode_or_error(data)


@FUZZ
@given(json_values)
def test_arbitrary_json(value: Any) -> None:
    decode_or_error(json.dumps(value))
    decode_or_error(json.dumps({"version": 1, "messages": [value]}))


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix] if prefix else []
    if isinstance(node, dict):
        for key, child in node.items():
            found.extend(_paths(child, (*prefix, key)))
    elif isinstance(node, list):
        for index, child in enumerate(node):
            found.extend(_paths(child, (*prefix, index)))
    return found


@FUZZ_FRAMES
@given(small_frames, st.data())
def test_structural_mutation_of_valid_frames(
    frame: tuple[list[FeedMessage], int | None, str], data: Any
) -> None:
    messages, confirmed, signature_field = frame
    doc = json.loads(
        encode_broadcast(messages, confirmed_sequence_number=confirmed, signature_field=signature_field)
    )
    for _ in range(data.draw(st.integers(min_value=1, max_value=3))):
        paths = _paths(doc)
        if not paths:
            break
        path = data.draw(st.sampled_from(paths))
        parent: Any = doc
        for step in path[:-1]:
            parent = parent[step]
        if data.draw(st.booleans()) and isinstance(parent, dict):
            del parent[path[-1]]
        else:
            parent[path[-1]] = data.draw(json_values)
    decode_or_error(json.dumps(doc, separators=(",", ":")))


@FUZZ_FRAMES
@given(small_frames, st.data())
def test_byte_mutation_of_valid_frames(frame: tuple[list[FeedMessage], int | None, str], data: Any) -> None:
    messages, confirmed, signature_field = frame
    raw = bytearray(
        encode_broadcast(
            messages, confirmed_sequence_number=confirmed, signature_field=signature_field
        ).encode()
    )
    for _ in range(data.draw(st.integers(min_value=1, max_value=4))):
        if not raw:
            break
        at = data.draw(st.integers(min_value=0, max_value=len(raw) - 1))
        operation = data.draw(st.sampled_from(["flip", "set", "delete", "insert", "truncate"]))
        if operation == "flip":
            raw[at] ^= 1 << data.draw(st.integers(min_value=0, max_value=7))
        elif operation == "set":
            raw[at] = data.draw(st.sampled_from(b'"{}[],:0123456789.-eE+/=\\nul \x00\xff'))
        elif operation == "delete":
            del raw[at : at + data.draw(st.integers(min_value=1, max_value=8))]
        elif operation == "insert":
            raw[at:at] = data.draw(st.binary(min_size=1, max_size=8))
        else:
            del raw[at:]
    decode_or_error(bytes(raw))


@FUZZ_FRAMES
@given(feed_messages(), st.data())
def test_corrupted_base64(message: FeedMessage, data: Any) -> None:
    doc = json.loads(encode_broadcast([message]))
    target = data.draw(st.sampled_from(["l2Msg", "signatureV2", "blockMetadata"]))
    holder = doc["messages"][0]["message"]["message"] if target == "l2Msg" else doc["messages"][0]
    text = list(holder.get(target) or "")
    for _ in range(data.draw(st.integers(min_value=1, max_value=3))):
        at = data.draw(st.integers(min_value=0, max_value=len(text)))
        if text and at < len(text) and data.draw(st.booleans()):
            del text[at]
        else:
            text.insert(at, data.draw(st.sampled_from(list("=-_ \n\t!.\u00e9A+/"))))
    holder[target] = "".join(text)
    result = decode_or_error(json.dumps(doc))
    if isinstance(result, FeedDecodeError):
        assert result.kind in {"bad_base64"} | L2_ERROR_KINDS


@FUZZ
@given(st.lists(tx_bytes, min_size=1, max_size=5), st.data())
def test_bad_batch_lengths(txs: list[bytes], data: Any) -> None:
    l2 = bytearray(l2_message_for(txs if len(txs) > 1 else [*txs, txs[0]]))
    offsets = []
    pos = 1
    while pos + 8 <= len(l2):
        offsets.append(pos)
        pos += 8 + int.from_bytes(l2[pos : pos + 8], "big")
    at = data.draw(st.sampled_from(offsets))
    old = int.from_bytes(l2[at : at + 8], "big")
    new = data.draw(
        st.integers(min_value=0, max_value=2**64 - 1)
        | st.integers(min_value=max(0, old - 3), max_value=old + 3)
        | st.sampled_from([0, MAX_L2_MESSAGE_SIZE, MAX_L2_MESSAGE_SIZE + 1, 2**63])
    )
    l2[at : at + 8] = new.to_bytes(8, "big")
    if data.draw(st.booleans()):
        del l2[data.draw(st.integers(min_value=1, max_value=len(l2))) :]
    message = FeedMessage.for_block(5, [b"\x01"], block_hash=None, timestamp=1)
    doc = json.loads(encode_broadcast([message]))
    doc["messages"][0]["message"]["message"]["l2Msg"] = base64.b64encode(bytes(l2)).decode()
    result = decode_or_error(json.dumps(doc))
    if isinstance(result, FeedDecodeError):
        assert result.kind in L2_ERROR_KINDS
        assert result.sequence_number == 5
    try:
        parse_l2_message(bytes(l2))
    except L2MessageError as error:
        assert error.kind in L2_ERROR_KINDS


# ------------------------------------------------------------------------------------------- corpus


def _corpus_files() -> list[Path]:
    return sorted(
        path for path in CORPUS.iterdir() if path.suffix in {".json", ".bin"} and path.name != "expected.json"
    )


def _expected_kinds() -> dict[str, str]:
    kinds: dict[str, str] = json.loads((CORPUS / "expected.json").read_text())
    return kinds


@pytest.mark.parametrize("path", _corpus_files(), ids=lambda path: path.name)
def test_corpus(path: Path) -> None:
    data = path.read_bytes()
    if path.name.startswith("ok_"):
        assert isinstance(decode_broadcast(data), BroadcastMessage)
        return
    expected = _expected_kinds()[path.name]
    with pytest.raises(FeedDecodeError) as info:
        decode_broadcast(data)
    assert info.value.kind == expected, str(info.value)


def test_corpus_is_complete() -> None:
    files = {path.name for path in _corpus_files()}
    expected = _expected_kinds()
    assert set(expected) == {name for name in files if not name.startswith("ok_")}
    assert set(expected.values()) == ERROR_KINDS, "the corpus holds at least one frame per error kind"
    assert len(files) >= 8
