"""Nitro sequencer batches: the ``data`` argument of ``SequencerInbox.addSequencerL2BatchFromOrigin``.

The SequencerInbox's 6-argument call ``addSequencerL2BatchFromOrigin(sequenceNumber, data,
afterDelayedMessagesRead, gasRefunder, prevMessageCount, newMessageCount)`` carries the batch in
``data``. Its layout, as Nitro writes and reads it:

- byte 0 is the header flag. 0x00: the rest is one brotli stream. The contract also accepts, in
  calldata, 0x20 (zero-heavy encoding of a brotli batch), 0x80 (an AnyTrust DAS certificate), 0x88 (the
  same, tree-hashed) and 0x01 (a custom-DA certificate); 0x50 marks EIP-4844 blob hashes and never
  comes from calldata. Only 0x00 is decoded here: the others hold no batch in the calldata (DAS, custom
  DA, blobs) or wrap a brotli batch in an encoding this codec does not undo (zero-heavy), and each is
  refused with a :class:`BatchDecodeError` saying which it is. Empty ``data`` is a valid batch of
  nothing (the contract lets a poster use it to move the delayed inbox on).
- decompressed (at most 16 MiB, Nitro's default ``MaxUncompressedBatchSize``), the stream is a
  sequence of RLP byte strings, the segments, with no enclosing list; at most 102,400 of them are read.
- a segment's first byte is its kind: 0 an L2 message, 1 a brotli-compressed L2 message (at most
  256 KiB decompressed), 2 "read the next delayed message", 3 advance the timestamp, 4 advance the L1
  block number. The advances hold a canonical RLP uint64 that is *added* (mod 2**64) to a running
  value that starts at 0 in every batch, so a batch's first advance carries the full value.
- each L2 message segment is one message, i.e. one L2 block, stamped with the running timestamp and
  L1 block number. Its first byte is the L2 message kind: 4 (SignedTx) is one transaction's
  ``MarshalBinary`` bytes (EIP-2718 envelope, or RLP for legacy); 3 (Batch) is a run of nested
  messages, each an 8-byte big-endian length and then that many bytes, nested at most 16 deep.

The encoder writes what Nitro's batch poster writes: for each block an advance-timestamp and an
advance-L1-block segment when the value changed (the difference, wrapping like Go's uint64), then one
L2 message segment; the message is ``0x04 ‖ tx`` for a block of one transaction and ``0x03`` followed
by ``u64be(len(tx) + 1) ‖ 0x04 ‖ tx`` per transaction otherwise (a bare ``0x03`` for an empty block),
exactly the sequencer's own ``MessageFromTxes``. The compression level defaults to the batch poster's
default, 2.

Where Nitro's reader differs: it logs and carries on past a malformed batch (dropping segments or
reading a block as empty), because a chain cannot stop. This decoder refuses anything Nitro would
drop, skip with a warning or read past (a segment it cannot parse, bytes it ignores, a message it
turns into an empty block), because the L1 monitor checks a poster and wants to hear about it. It
accepts what Nitro reads silently and to the same effect: empty segments, advances by zero, and
advances after the batch's last message.

Sources (OffchainLabs/nitro @ 6dce8d1, OffchainLabs/go-ethereum @ 49b38a6 (Nitro's submodule),
OffchainLabs/nitro-contracts @ 6748733 (v3.2.0 + 2)):

- ``arbstate/inbox.go``: ``ParseSequencerMessage`` (flag dispatch, brotli with the uncompressed-size
  limit, the RLP segment stream, ``MaxSegmentsPerSequencerMessage``), the ``BatchSegmentKind*``
  constants, ``getNextMsg`` (advances added to running values, brotli L2 messages capped at
  ``MaxL2MessageSize``, delayed segments).
- ``daprovider/util.go``: the header flag bytes (``BrotliMessageHeaderByte``, ``ZeroheavyMessageHeaderFlag``,
  ``AnyTrustMessageHeaderFlag``, ``AnyTrustTreeMessageHeaderFlag``, ``DACertificateMessageHeaderFlag``,
  ``BlobHashesHeaderFlag``).
- ``arbos/parse_l2.go``: the ``L2MessageKind_*`` constants and ``parseL2Message`` (batch nesting, depth
  16, SignedTx, blob and Arbitrum-internal transaction types refused); ``arbos/util/util.go``
  ``BytestringFromReader`` (8-byte big-endian lengths); ``arbos/arbostypes/incomingmessage.go``
  ``MaxL2MessageSize`` (256 KiB).
- ``arbnode/batch_poster.go``: ``batchSegments`` (``AddMessage``, ``maybeAddDiffSegment``,
  ``prepareIntSegment``, ``addL2Msg``, ``CloseAndGetBytes``) and the default compression level;
  ``execution/gethexec/sequencer.go`` ``MessageFromTxes`` (how a block's transactions become one
  L2 message).
- go-ethereum ``params/config_arbitrum.go``: ``DefaultMaxUncompressedBatchSize`` (16 MiB).
- nitro-contracts ``src/bridge/SequencerInbox.sol``: the ``*_HEADER_FLAG`` constants and
  ``isValidCallDataFlag`` (the flags calldata may carry).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import brotli

from pytest_gashammer.chain import rlp

__all__ = [
    "FLAG_BLOB_HASHES",
    "FLAG_BROTLI",
    "FLAG_CUSTOM_DA",
    "FLAG_DAS",
    "FLAG_TREE_DAS",
    "FLAG_ZERO_HEAVY",
    "L2_KIND_BATCH",
    "L2_KIND_SIGNED_TX",
    "MAX_BATCH_DEPTH",
    "MAX_DECOMPRESSED_BATCH_SIZE",
    "MAX_L2_MESSAGE_SIZE",
    "MAX_SEGMENTS",
    "NITRO_COMPRESSION_LEVEL",
    "NITRO_MAX_CALLDATA_BATCH_SIZE",
    "SEGMENT_ADVANCE_L1_BLOCK",
    "SEGMENT_ADVANCE_TIMESTAMP",
    "SEGMENT_DELAYED_MESSAGES",
    "SEGMENT_L2_MESSAGE",
    "SEGMENT_L2_MESSAGE_BROTLI",
    "BatchBlock",
    "BatchDecodeError",
    "DecodedBatch",
    "decode_batch",
    "encode_batch",
]

# Header flags (daprovider/util.go; SequencerInbox.sol *_HEADER_FLAG).
FLAG_BROTLI: Final = 0x00
FLAG_CUSTOM_DA: Final = 0x01
FLAG_ZERO_HEAVY: Final = 0x20
FLAG_BLOB_HASHES: Final = 0x50
FLAG_DAS: Final = 0x80
FLAG_TREE_DAS: Final = 0x88

# Segment kinds (arbstate/inbox.go BatchSegmentKind*).
SEGMENT_L2_MESSAGE: Final = 0
SEGMENT_L2_MESSAGE_BROTLI: Final = 1
SEGMENT_DELAYED_MESSAGES: Final = 2
SEGMENT_ADVANCE_TIMESTAMP: Final = 3
SEGMENT_ADVANCE_L1_BLOCK: Final = 4

# L2 message kinds (arbos/parse_l2.go L2MessageKind_*); only these two carry signed transactions.
L2_KIND_BATCH: Final = 3
L2_KIND_SIGNED_TX: Final = 4

MAX_DECOMPRESSED_BATCH_SIZE: Final = 16 * 1024 * 1024
"""go-ethereum's ``DefaultMaxUncompressedBatchSize``; a chain may configure another
(``MaxUncompressedBatchSize``), hence :func:`decode_batch`'s ``max_decompressed_size``."""
MAX_SEGMENTS: Final = 100 * 1024
"""``MaxSegmentsPerSequencerMessage``: Nitro reads no segment past this many."""
MAX_L2_MESSAGE_SIZE: Final = 256 * 1024
"""``MaxL2MessageSize``: the cap on an L2 message, a decompressed brotli segment and a nested entry."""
MAX_BATCH_DEPTH: Final = 16
"""An L2 Batch message found at this depth (the segment's own message is depth 0) is refused."""
NITRO_COMPRESSION_LEVEL: Final = 2
"""The batch poster's default brotli level (``DefaultBatchPosterConfig.CompressionLevels``)."""
NITRO_MAX_CALLDATA_BATCH_SIZE: Final = 100_000
"""The batch poster's default ``MaxCalldataBatchSize``, for a poster deciding where to cut batches;
the contract's own limit is its ``maxDataSize`` (40-byte header included)."""

_U64: Final = (1 << 64) - 1
_LENGTH_PREFIX: Final = 8
# Output is pulled from brotli in pieces this large, so a decompression bomb is stopped within one
# piece of the limit instead of being inflated whole first.
_INFLATE_PIECE: Final = 1 << 20

_REFUSED_FLAGS: Final = {
    FLAG_ZERO_HEAVY: "zero-heavy encoded (0x20): a brotli batch under a calldata-saving encoding this "
    "codec does not undo",
    FLAG_DAS: "an AnyTrust DAS certificate (0x80): the batch itself is held by the data availability "
    "committee, not in calldata",
    FLAG_TREE_DAS: "an AnyTrust DAS certificate, tree-hashed (0x88): the batch itself is held by the data "
    "availability committee, not in calldata",
    FLAG_CUSTOM_DA: "a custom-DA certificate (0x01): the batch itself is held by an external data "
    "availability provider, not in calldata",
    FLAG_BLOB_HASHES: "EIP-4844 blob hashes (0x50): the batch is in blobs, and the SequencerInbox never "
    "accepts this flag in calldata",
}
_L2_KIND_NAMES: Final = {
    0: "UnsignedUserTx",
    1: "ContractTx",
    2: "NonmutatingCall, unimplemented in Nitro",
    5: "reserved",
    6: "Heartbeat, disabled in Nitro since 2022-08-08",
    7: "SignedCompressedTx, unimplemented in Nitro",
    8: "reserved for BLS",
}
# EIP-2718 types Nitro takes in a SignedTx (go-ethereum's UnmarshalBinary without Arbitrum parsing,
# minus blob transactions, which parseL2Message refuses): access list, dynamic fee, set code.
_TYPED_TRANSACTIONS: Final = frozenset({0x01, 0x02, 0x04})
_BLOB_TRANSACTION: Final = 0x03


class BatchDecodeError(ValueError):
    """A batch this codec cannot read; ``str(err)`` is one line naming what is wrong and where.

    ``kind`` is a stable short name for counters and tests: ``unknown_flag``, ``unsupported_flag``,
    ``bad_brotli``, ``truncated_brotli``, ``too_large``, ``truncated_rlp``, ``bad_rlp``,
    ``not_a_byte_string``, ``too_many_segments``, ``unknown_segment_kind``, ``bad_advance``,
    ``bad_delayed``, ``oversize_l2_message``, ``empty_l2_message``, ``unknown_l2_kind``,
    ``nesting_too_deep``, ``truncated_l2_batch``, ``bad_transaction``.
    """

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(kind, detail)
        self.kind = kind
        self.detail = detail

    def __str__(self) -> str:
        return self.detail


@dataclass(frozen=True, slots=True)
class BatchBlock:
    """One L2 block as a batch carries it: its L2 message's timestamp and L1 block number, and its
    signed transactions (raw bytes, typed or legacy) in block order."""

    timestamp: int
    l1_block_number: int
    transactions: tuple[bytes, ...] = ()

    def __post_init__(self) -> None:
        for name in ("timestamp", "l1_block_number"):
            value = getattr(self, name)
            if type(value) is not int or not 0 <= value <= _U64:
                raise ValueError(f"BatchBlock.{name} must be an int in [0, 2**64), got {value!r}")
        # Any bytes-like sequence is accepted and kept as an immutable tuple of bytes, so two blocks
        # with the same content compare equal however they were built.
        object.__setattr__(self, "transactions", tuple(bytes(tx) for tx in self.transactions))


@dataclass(frozen=True, slots=True)
class DecodedBatch:
    """What a batch says, in order.

    ``block_positions[i]`` is block ``i``'s position among the batch's messages, delayed messages
    counted: its message index is the batch's ``prevMessageCount`` plus this, and its L2 block number
    that plus the chain's genesis block number. ``message_count`` (blocks plus delayed-message
    segments) is what ``newMessageCount - prevMessageCount`` should be.
    """

    blocks: tuple[BatchBlock, ...]
    delayed_messages: int
    block_positions: tuple[int, ...]
    segments: int
    decompressed_size: int

    @property
    def message_count(self) -> int:
        return len(self.blocks) + self.delayed_messages

    @property
    def transaction_count(self) -> int:
        return sum(len(block.transactions) for block in self.blocks)


# ------------------------------------------------------------------------------------------- encoding


def encode_batch(blocks: Sequence[BatchBlock], *, quality: int = NITRO_COMPRESSION_LEVEL) -> bytes:
    """The ``data`` for ``addSequencerL2BatchFromOrigin`` that carries ``blocks``, in order.

    Raises ``ValueError`` for what Nitro would not read back as these blocks: no blocks (its poster
    posts nothing then), a transaction that is not a signed transaction Nitro accepts, a block whose
    L2 message exceeds 256 KiB, a batch over 16 MiB decompressed or over 102,400 segments.
    """
    if not blocks:
        raise ValueError("a batch needs at least one block (Nitro's poster posts nothing without messages)")
    if not 0 <= quality <= 11:
        raise ValueError(f"brotli quality must be in 0..11, got {quality}")
    pieces: list[bytes] = []
    segments = 0
    timestamp = 0
    l1_block = 0
    for index, block in enumerate(blocks):
        if block.timestamp != timestamp:
            pieces.append(_advance_segment(SEGMENT_ADVANCE_TIMESTAMP, (block.timestamp - timestamp) & _U64))
            timestamp = block.timestamp
            segments += 1
        if block.l1_block_number != l1_block:
            pieces.append(
                _advance_segment(SEGMENT_ADVANCE_L1_BLOCK, (block.l1_block_number - l1_block) & _U64)
            )
            l1_block = block.l1_block_number
            segments += 1
        message = _l2_message(block, index)
        pieces.append(rlp.encode_bytes(bytes((SEGMENT_L2_MESSAGE,)) + message))
        segments += 1
    if segments > MAX_SEGMENTS:
        raise ValueError(f"the batch has {segments} segments; Nitro reads at most {MAX_SEGMENTS}")
    stream = b"".join(pieces)
    if len(stream) > MAX_DECOMPRESSED_BATCH_SIZE:
        raise ValueError(
            f"the batch is {len(stream)} bytes decompressed; Nitro reads at most {MAX_DECOMPRESSED_BATCH_SIZE}"
        )
    return bytes((FLAG_BROTLI,)) + brotli.compress(stream, quality=quality)


def _advance_segment(kind: int, delta: int) -> bytes:
    return rlp.encode_bytes(bytes((kind,)) + rlp.encode_int(delta))


def _l2_message(block: BatchBlock, index: int) -> bytes:
    for position, tx in enumerate(block.transactions):
        problem = _transaction_problem(tx)
        if problem is not None:
            raise ValueError(f"block {index}, transaction {position}: {problem}")
    transactions = block.transactions
    if len(transactions) == 1:
        message = bytes((L2_KIND_SIGNED_TX,)) + transactions[0]
    else:
        parts = [bytes((L2_KIND_BATCH,))]
        for tx in transactions:
            parts.append((len(tx) + 1).to_bytes(_LENGTH_PREFIX, "big"))
            parts.append(bytes((L2_KIND_SIGNED_TX,)))
            parts.append(tx)
        message = b"".join(parts)
    if len(message) > MAX_L2_MESSAGE_SIZE:
        raise ValueError(
            f"block {index}: its L2 message is {len(message)} bytes; Nitro drops messages over "
            f"{MAX_L2_MESSAGE_SIZE} (split the block's transactions across blocks)"
        )
    return message


def _transaction_problem(tx: bytes) -> str | None:
    """Why Nitro would not take ``tx`` as a SignedTx, or None.

    A structural check (go-ethereum's ``UnmarshalBinary`` reads exactly one RLP list, after the type
    byte of a typed transaction); the fields and the signature are not checked.
    """
    if not tx:
        return "no transaction bytes"
    first = tx[0]
    if first >= 0xC0:
        body = 0
    elif first in _TYPED_TRANSACTIONS:
        body = 1
    elif first == _BLOB_TRANSACTION:
        return "a blob transaction (type 3), which Nitro refuses"
    elif first >= 0x80:
        return f"an RLP string (0x{first:02x}), not a transaction"
    else:
        return f"transaction type 0x{first:02x}, which Nitro does not take (legacy, 1, 2 and 4 only)"
    try:
        is_list, _, end = rlp.item_span(tx, body)
    except rlp.RlpDecodeError as exc:
        return f"not a transaction: {exc}"
    if not is_list:
        return "not a transaction: its body is an RLP string, not a list"
    if end != len(tx):
        extra = len(tx) - end
        return f"{extra} byte{'' if extra == 1 else 's'} after the transaction"
    return None


# ------------------------------------------------------------------------------------------- decoding


def decode_batch(data: bytes, *, max_decompressed_size: int = MAX_DECOMPRESSED_BATCH_SIZE) -> DecodedBatch:
    """The blocks a batch's ``data`` carries, and its delayed-message segments, in order.

    ``data`` is the ``bytes data`` argument of the posting call (without the 40-byte header the
    contract puts in front when it hashes a batch). Raises :class:`BatchDecodeError`.
    """
    data = bytes(data)
    if not data:
        return DecodedBatch(
            blocks=(), delayed_messages=0, block_positions=(), segments=0, decompressed_size=0
        )
    flag = data[0]
    if flag != FLAG_BROTLI:
        if flag in _REFUSED_FLAGS:
            raise BatchDecodeError(
                "unsupported_flag",
                f"batch header flag is {_REFUSED_FLAGS[flag]}; only 0x00 (brotli) is decoded",
            )
        raise BatchDecodeError(
            "unknown_flag",
            f"unknown batch header flag 0x{flag:02x}; the SequencerInbox takes 0x00, 0x01, 0x20, 0x80 and "
            "0x88 in calldata",
        )
    stream = _inflate(data[1:], max_decompressed_size, "the batch", "Nitro's MaxUncompressedBatchSize")
    blocks: list[BatchBlock] = []
    positions: list[int] = []
    delayed = 0
    timestamp = 0
    l1_block = 0
    index = 0
    offset = 0
    while offset < len(stream):
        if index >= MAX_SEGMENTS:
            raise BatchDecodeError(
                "too_many_segments",
                f"the batch has more than {MAX_SEGMENTS} segments; Nitro ignores the rest",
            )
        segment, offset = _next_segment(stream, offset, index)
        where = f"segment {index}"
        index += 1
        if not segment:
            continue  # Nitro skips an empty segment without a word, so it means nothing.
        kind = segment[0]
        if kind in (SEGMENT_L2_MESSAGE, SEGMENT_L2_MESSAGE_BROTLI):
            message = segment[1:]
            if kind == SEGMENT_L2_MESSAGE_BROTLI:
                message = _inflate(
                    message, MAX_L2_MESSAGE_SIZE, f"{where} (brotli L2 message)", "Nitro's MaxL2MessageSize"
                )
            where = f"{where} (block {len(blocks)})"
            transactions = _signed_transactions(message, where)
            positions.append(len(blocks) + delayed)
            blocks.append(BatchBlock(timestamp, l1_block, transactions))
        elif kind == SEGMENT_ADVANCE_TIMESTAMP:
            timestamp = (timestamp + _advance(segment, where, "timestamp")) & _U64
        elif kind == SEGMENT_ADVANCE_L1_BLOCK:
            l1_block = (l1_block + _advance(segment, where, "L1 block number")) & _U64
        elif kind == SEGMENT_DELAYED_MESSAGES:
            if len(segment) != 1:
                raise BatchDecodeError(
                    "bad_delayed",
                    f"{where}: a delayed-message segment with {len(segment) - 1} bytes after its kind, "
                    "which Nitro ignores",
                )
            delayed += 1
        else:
            raise BatchDecodeError(
                "unknown_segment_kind",
                f"{where}: unknown segment kind {kind} (Nitro knows 0 L2 message, 1 brotli L2 message, "
                "2 delayed messages, 3 advance timestamp, 4 advance L1 block number)",
            )
    return DecodedBatch(
        blocks=tuple(blocks),
        delayed_messages=delayed,
        block_positions=tuple(positions),
        segments=index,
        decompressed_size=len(stream),
    )


def _next_segment(stream: bytes, offset: int, index: int) -> tuple[bytes, int]:
    """The segment at ``offset`` and where the next one starts."""
    try:
        is_list, start, end = rlp.item_span(stream, offset)
    except rlp.RlpTruncatedError as exc:
        raise BatchDecodeError(
            "truncated_rlp", f"segment {index} at byte {offset} of the decompressed batch: {exc.detail}"
        ) from None
    except rlp.RlpDecodeError as exc:
        raise BatchDecodeError(
            "bad_rlp", f"segment {index} at byte {offset} of the decompressed batch: {exc.detail}"
        ) from None
    if is_list:
        raise BatchDecodeError(
            "not_a_byte_string",
            f"segment {index} at byte {offset} of the decompressed batch is an RLP list; segments are "
            "byte strings (Nitro stops reading there)",
        )
    return stream[start:end], end


def _advance(segment: bytes, where: str, what: str) -> int:
    try:
        return rlp.decode_uint(segment[1:])
    except rlp.RlpDecodeError as exc:
        raise BatchDecodeError(
            "bad_advance",
            f"{where}: the {what} advance is not one canonical RLP uint64 ({exc.detail}); Nitro skips it",
        ) from None


def _inflate(compressed: bytes, limit: int, what: str, limit_name: str) -> bytes:
    decompressor = brotli.Decompressor()
    pieces: list[bytes] = []
    total = 0
    try:
        piece = decompressor.process(compressed, output_buffer_limit=_INFLATE_PIECE)
        while True:
            total += len(piece)
            if total > limit:
                raise BatchDecodeError(
                    "too_large", f"{what} decompresses to more than {limit} bytes ({limit_name})"
                )
            pieces.append(piece)
            if decompressor.is_finished():
                break
            if not piece and decompressor.can_accept_more_data():
                # All input consumed, no more output, and the stream has not ended.
                raise BatchDecodeError(
                    "truncated_brotli", f"{what}: the brotli stream ends early ({len(compressed)} bytes)"
                )
            piece = decompressor.process(b"", output_buffer_limit=_INFLATE_PIECE)
    except brotli.error:
        raise BatchDecodeError(
            "bad_brotli",
            f"{what} is not a valid brotli stream (corrupt, or bytes after its end) after {total} bytes of output",
        ) from None
    return b"".join(pieces)


def _signed_transactions(message: bytes, where: str) -> tuple[bytes, ...]:
    if len(message) > MAX_L2_MESSAGE_SIZE:
        raise BatchDecodeError(
            "oversize_l2_message",
            f"{where}: L2 message of {len(message)} bytes, over Nitro's MaxL2MessageSize ({MAX_L2_MESSAGE_SIZE}); "
            "Nitro drops it",
        )
    out: list[bytes] = []
    _collect(memoryview(message), 0, out, where)
    return tuple(out)


def _collect(view: memoryview, depth: int, out: list[bytes], where: str) -> None:
    size = len(view)
    if size == 0:
        raise BatchDecodeError(
            "empty_l2_message", f"{where}: empty L2 message at depth {depth} (no kind byte)"
        )
    kind = view[0]
    if kind == L2_KIND_SIGNED_TX:
        tx = view[1:].tobytes()
        problem = _transaction_problem(tx)
        if problem is not None:
            raise BatchDecodeError(
                "bad_transaction", f"{where}: SignedTx {len(out)} at depth {depth}: {problem}"
            )
        out.append(tx)
        return
    if kind != L2_KIND_BATCH:
        name = _L2_KIND_NAMES.get(kind, "undefined")
        raise BatchDecodeError(
            "unknown_l2_kind",
            f"{where}: L2 message kind {kind} ({name}) at depth {depth}; a sequencer batch carries only "
            "Batch (3) and SignedTx (4)",
        )
    if depth >= MAX_BATCH_DEPTH:
        raise BatchDecodeError(
            "nesting_too_deep",
            f"{where}: an L2 Batch nested {depth} deep; Nitro refuses batches from depth {MAX_BATCH_DEPTH} on",
        )
    position = 1
    while position < size:
        if size - position < _LENGTH_PREFIX:
            raise BatchDecodeError(
                "truncated_l2_batch",
                f"{where}: L2 Batch at depth {depth} ends with {size - position} stray bytes at byte {position} "
                "(Nitro ignores them)",
            )
        length = int.from_bytes(view[position : position + _LENGTH_PREFIX], "big")
        start = position + _LENGTH_PREFIX
        if length > MAX_L2_MESSAGE_SIZE:
            raise BatchDecodeError(
                "oversize_l2_message",
                f"{where}: L2 Batch entry at depth {depth}, byte {position} claims {length} bytes, over "
                f"{MAX_L2_MESSAGE_SIZE} (Nitro ends the batch there)",
            )
        if length > size - start:
            raise BatchDecodeError(
                "truncated_l2_batch",
                f"{where}: L2 Batch entry at depth {depth}, byte {position} claims {length} bytes but only "
                f"{size - start} remain (Nitro ends the batch there)",
            )
        _collect(view[start : start + length], depth + 1, out, where)
        position = start + length
