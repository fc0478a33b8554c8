"""Decoder and encoder for the JSON frames of Arbitrum Nitro's sequencer feed.

The feed is the fastest signal a Nitro chain gives that a transaction has been sequenced, so the decoder
sits on the hot path of inclusion-latency measurement: one ``json.loads`` per frame, C-level base64 and
keccak, and slicing instead of per-byte loops.

Every malformed frame raises a subclass of :class:`FeedDecodeError` and nothing else, because the consumer
counts bad frames and keeps listening; a stray ``KeyError`` would look like a bug in the harness rather
than a fault in the node under test.

The decoder follows Nitro's own parser (``arbos/parse_l2.go``) with deliberate differences. Stricter: a
batch segment whose length runs past the end of its batch, or exceeds the 256 KiB segment cap, is an error
here, whereas Nitro silently ends the batch at that point and keeps the transactions it has already read;
an honest sequencer never writes either, so a load test wants to hear about them. More lenient: L2 kinds
that carry no signed transaction (0, 1, 2, 6) are skipped without looking inside, although Nitro rejects
2 and, after August 2022, 6; only signed transactions can be matched to what the load generator sent, and
the chain itself is the judge of the rest. Signed transactions are returned as raw bytes, not decoded.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import accumulate, repeat
from typing import Any, ClassVar, Protocol

from pytest_gashammer.chain.keccak import keccak256

__all__ = [
    "MAX_BATCH_DEPTH",
    "MAX_JSON_DEPTH",
    "MAX_L2_MESSAGE_SIZE",
    "SEQUENCER_SENDER",
    "BadBase64Error",
    "BadJsonError",
    "BadShapeError",
    "BroadcastMessage",
    "EmptyMessageError",
    "EncodableMessage",
    "FeedDecodeError",
    "FeedMessage",
    "L2MessageError",
    "NestingTooDeepError",
    "OversizeSegmentError",
    "TruncatedBatchError",
    "UnknownL2KindError",
    "decode_broadcast",
    "encode_broadcast",
    "l2_message_for",
    "parse_l2_message",
]

SEQUENCER_SENDER = "0xa4b000000000000000000073657175656e636572"
"""The ``sender`` of every message the sequencer creates itself (Nitro's batch-poster address constant)."""

MAX_L2_MESSAGE_SIZE = 256 * 1024
"""Nitro's MaxL2MessageSize: the cap on a whole ``l2Msg`` and on each segment of a batch."""

MAX_BATCH_DEPTH = 16
"""A batch found at this nesting depth (the top-level message is depth 0) is rejected, as in Nitro."""

_HEADER_KIND_L2_MESSAGE = 3
_L2_KIND_BATCH = 3
_L2_KIND_SIGNED_TX = 4
_L2_KINDS_WITHOUT_SIGNED_TX = frozenset({0, 1, 2, 6})
_L2_KIND_NAMES = {
    5: "reserved kind 5",
    7: "SignedCompressedTx, which Nitro never implemented",
    8: "BLS (reserved)",
}

_U8 = 0xFF
_U64 = 0xFFFF_FFFF_FFFF_FFFF
_I64_MIN = -(1 << 63)
_I64_MAX = (1 << 63) - 1
_LENGTH_PREFIX = 8

MAX_JSON_DEPTH = 128
"""Deepest JSON nesting accepted; a real frame is 6 levels deep, unknown future fields included."""

_JSON_STRING_RE = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_PLAIN_STRING_RE = re.compile(r'"[^"]*"')
# Deletes every ASCII character except brackets and quotes; what is left of a frame is its skeleton.
_KEEP_STRUCTURE = str.maketrans("", "", "".join(chr(c) for c in range(128) if chr(c) not in '[]{}"'))
_BRACKET_DELTA = {"[": 1, "{": 1, "]": -1, "}": -1}
_HASH_RE = re.compile(r"0[xX][0-9a-fA-F]{64}")
_ADDRESS_RE = re.compile(r"0[xX][0-9a-fA-F]{40}")
_SIGNATURE_FIELDS = ("signatureV2", "signature")
_MISSING: Any = object()


# --------------------------------------------------------------------------------------------- errors


class FeedDecodeError(ValueError):
    """A feed frame that cannot be decoded.

    ``kind`` is a stable short name meant for counters and assertions; ``str(err)`` is one line naming
    the JSON field and the sequence number when they are known, for a human reading a failure report.
    """

    kind: ClassVar[str] = "feed_decode"

    def __init__(self, detail: str, field: str | None = None, sequence_number: int | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.field = field
        self.sequence_number = sequence_number

    def __str__(self) -> str:
        text = f"{self.field}: {self.detail}" if self.field else self.detail
        if self.sequence_number is not None:
            text += f" (sequenceNumber {self.sequence_number})"
        return text

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.detail, self.field, self.sequence_number))


class BadJsonError(FeedDecodeError):
    """The frame is not one JSON document (or uses NaN/Infinity, which Go never writes)."""

    kind = "bad_json"


class BadBase64Error(FeedDecodeError):
    """A bytes field is not standard, padded base64."""

    kind = "bad_base64"


class BadShapeError(FeedDecodeError):
    """A required field is missing, or a field has the wrong JSON type or range."""

    kind = "bad_shape"


class L2MessageError(FeedDecodeError):
    """The frame is well-formed JSON, but the ``l2Msg`` payload of a message is not a valid L2 message."""

    kind = "bad_l2_message"


class TruncatedBatchError(L2MessageError):
    """A batch segment's length prefix claims more bytes than the batch has left."""

    kind = "truncated_batch"


class OversizeSegmentError(L2MessageError):
    """An ``l2Msg`` or one of its batch segments is larger than Nitro's 256 KiB cap."""

    kind = "oversize_segment"


class UnknownL2KindError(L2MessageError):
    """The L2 kind byte is reserved, unimplemented in Nitro (7) or undefined."""

    kind = "unknown_l2_kind"


class NestingTooDeepError(L2MessageError):
    """Batches nest deeper than Nitro allows."""

    kind = "nesting_too_deep"


class EmptyMessageError(L2MessageError):
    """An L2 message, batch segment or signed transaction has no bytes at all."""

    kind = "empty_message"


# ---------------------------------------------------------------------------------------------- types


class EncodableMessage(Protocol):
    """What :func:`encode_broadcast` reads from a message: the wire fields, without the derived ones."""

    @property
    def sequence_number(self) -> int: ...
    @property
    def kind(self) -> int: ...
    @property
    def sender(self) -> str | None: ...
    @property
    def l1_block_number(self) -> int: ...
    @property
    def timestamp(self) -> int: ...
    @property
    def request_id(self) -> str | None: ...
    @property
    def base_fee_l1(self) -> int | None: ...
    @property
    def delayed_messages_read(self) -> int: ...
    @property
    def block_hash(self) -> str | None: ...
    @property
    def l2_msg(self) -> bytes: ...
    @property
    def signature(self) -> bytes | None: ...
    @property
    def block_metadata(self) -> bytes | None: ...


@dataclass(frozen=True, slots=True)
class FeedMessage:
    """One sequenced message (one L2 block) from the feed.

    ``l2_msg`` is what travels on the wire; ``transactions`` and ``tx_hashes`` are derived from it so
    that the consumer can match sequenced transactions against the ones it sent without parsing again.
    The encoder writes only ``l2_msg``. The decoder reads an absent or empty ``blockMetadata`` as
    ``None``, since the sequencer omits the field in both cases. ``sender=None`` is written as ``null`` so
    that it survives a round trip, but Nitro always writes an address and its own decoder rejects
    ``null`` there, so a frame meant for a real Nitro client needs a sender (``for_block`` sets one).
    """

    sequence_number: int
    kind: int
    sender: str | None
    l1_block_number: int
    timestamp: int
    request_id: str | None
    base_fee_l1: int | None
    delayed_messages_read: int
    block_hash: str | None
    l2_msg: bytes
    transactions: tuple[bytes, ...]
    tx_hashes: tuple[str, ...]
    signature: bytes | None
    block_metadata: bytes | None

    @classmethod
    def for_block(
        cls,
        sequence_number: int,
        transactions: Sequence[bytes],
        *,
        block_hash: str | None,
        timestamp: int,
        l1_block_number: int = 0,
        delayed_messages_read: int = 0,
        signature: bytes | None = b"",
        block_metadata: bytes | None = None,
    ) -> FeedMessage:
        """The message a Nitro sequencer broadcasts for a block holding ``transactions``.

        The defaults are what a sequencer fills in for blocks it creates itself (header kind 3, the
        sequencer sender, no request id, no L1 base fee, an empty signature because feed signing is off
        by default), so a fake feed built from this is indistinguishable from a real one.
        """
        txs = tuple(bytes(tx) for tx in transactions)
        return cls(
            sequence_number=sequence_number,
            kind=_HEADER_KIND_L2_MESSAGE,
            sender=SEQUENCER_SENDER,
            l1_block_number=l1_block_number,
            timestamp=timestamp,
            request_id=None,
            base_fee_l1=None,
            delayed_messages_read=delayed_messages_read,
            block_hash=_normalise_hex(block_hash, _HASH_RE, "block_hash"),
            l2_msg=l2_message_for(txs),
            transactions=txs,
            tx_hashes=tuple(_tx_hash(tx) for tx in txs),
            signature=signature,
            block_metadata=block_metadata or None,
        )


@dataclass(frozen=True, slots=True)
class BroadcastMessage:
    """One feed frame: a batch of messages, a confirmation, or both (or neither, as a keepalive)."""

    version: int
    messages: tuple[FeedMessage, ...]
    confirmed_sequence_number: int | None


# --------------------------------------------------------------------------------------------- decode


def decode_broadcast(data: bytes | bytearray | memoryview | str) -> BroadcastMessage:
    """Decode one feed frame, as received in a WebSocket text (or binary) frame.

    Raises :class:`FeedDecodeError` for every malformed frame. Unknown fields are ignored so that newer
    Nitro releases that add fields stay readable. Both the current ``signatureV2`` and the pre-3.10
    ``signature`` field names are accepted. Passing something that is neither text nor bytes is a bug in
    the caller, not a bad frame, and raises ``TypeError``.
    """
    if isinstance(data, str):
        text = data
    elif isinstance(data, bytes | bytearray | memoryview):
        # Go's decoder replaces invalid UTF-8 instead of failing; do the same so that junk inside an
        # ignored field does not reject a frame Nitro itself would accept.
        text = bytes(data).decode("utf-8", "replace")
    else:
        raise TypeError(f"decode_broadcast() takes bytes or str, not {type(data).__name__}")
    _check_nesting(text)
    try:
        doc = json.loads(text, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:
        raise BadJsonError(f"not a JSON document: {_one_line(str(exc) or type(exc).__name__)}") from None

    if type(doc) is not dict:
        raise BadShapeError(f"frame is a JSON {_json_type(doc)}, not an object")
    version = _int_field(doc, "version", _I64_MIN, _I64_MAX, None, "version", None)

    raw_messages = doc.get("messages")
    messages: tuple[FeedMessage, ...] = ()
    if raw_messages is not None:
        if type(raw_messages) is not list:
            raise BadShapeError(f"expected an array, got {_describe(raw_messages)}", "messages")
        messages = tuple(_decode_message(item, index) for index, item in enumerate(raw_messages))

    confirmed: int | None = None
    raw_confirmed = doc.get("confirmedSequenceNumberMessage")
    if raw_confirmed is not None:
        if type(raw_confirmed) is not dict:
            raise BadShapeError(
                f"expected an object, got {_describe(raw_confirmed)}", "confirmedSequenceNumberMessage"
            )
        confirmed = _int_field(
            raw_confirmed,
            "sequenceNumber",
            0,
            _U64,
            None,
            "confirmedSequenceNumberMessage.sequenceNumber",
            None,
        )
    return BroadcastMessage(version=version, messages=messages, confirmed_sequence_number=confirmed)


def parse_l2_message(l2_msg: bytes) -> tuple[bytes, ...]:
    """The signed transactions inside the ``l2Msg`` of a header-kind-3 message, in block order.

    Exposed on its own so that payloads captured elsewhere (an RPC trace, a fuzzer) can be checked with
    the same rules the frame decoder applies.
    """
    if len(l2_msg) > MAX_L2_MESSAGE_SIZE:
        raise OversizeSegmentError(f"l2Msg is {len(l2_msg)} bytes, over the {MAX_L2_MESSAGE_SIZE}-byte limit")
    out: list[bytes] = []
    _collect(memoryview(l2_msg), 0, out)
    return tuple(out)


def _collect(view: memoryview, depth: int, out: list[bytes]) -> None:
    size = len(view)
    if size == 0:
        raise EmptyMessageError(f"batch segment at depth {depth} is empty" if depth else "l2Msg is empty")
    l2_kind = view[0]
    if l2_kind == _L2_KIND_SIGNED_TX:
        if size == 1:
            raise EmptyMessageError(f"signed transaction at depth {depth} has no bytes")
        out.append(view[1:].tobytes())
        return
    if l2_kind == _L2_KIND_BATCH:
        if depth >= MAX_BATCH_DEPTH:
            raise NestingTooDeepError(f"batch nested {depth} deep; Nitro allows at most {MAX_BATCH_DEPTH}")
        pos = 1
        # Like Nitro, the batch ends where a whole 8-byte length can no longer be read; a few stray
        # trailing bytes are not an error.
        while size - pos >= _LENGTH_PREFIX:
            length = int.from_bytes(view[pos : pos + _LENGTH_PREFIX], "big")
            pos += _LENGTH_PREFIX
            if length > MAX_L2_MESSAGE_SIZE:
                raise OversizeSegmentError(
                    f"batch segment at depth {depth}, byte {pos - _LENGTH_PREFIX} claims {length} bytes, "
                    f"over the {MAX_L2_MESSAGE_SIZE}-byte limit"
                )
            if length > size - pos:
                raise TruncatedBatchError(
                    f"truncated batch: segment at depth {depth}, byte {pos - _LENGTH_PREFIX} claims {length} "
                    f"bytes but only {size - pos} remain"
                )
            _collect(view[pos : pos + length], depth + 1, out)
            pos += length
        return
    if l2_kind in _L2_KINDS_WITHOUT_SIGNED_TX:
        return
    name = _L2_KIND_NAMES.get(l2_kind, "undefined")
    raise UnknownL2KindError(f"L2 message kind {l2_kind} ({name}) at depth {depth}")


def _decode_message(item: Any, index: int) -> FeedMessage:
    # Field paths are passed as constants plus the message index and only formatted when an error is
    # raised, so a valid message costs no string building.
    if type(item) is not dict:
        raise BadShapeError(f"expected an object, got {_describe(item)}", f"messages[{index}]")
    seq = _int_field(item, "sequenceNumber", 0, _U64, index, "sequenceNumber", None)

    with_meta = _object_field(item, "message", index, "message", seq)
    incoming = _object_field(with_meta, "message", index, "message.message", seq)
    header = _object_field(incoming, "header", index, "message.message.header", seq)

    kind = _int_field(header, "kind", 0, _U8, index, "message.message.header.kind", seq)
    sender = _optional_hex(header.get("sender"), _ADDRESS_RE, index, "message.message.header.sender", seq)
    l1_block_number = _int_field(
        header, "blockNumber", 0, _U64, index, "message.message.header.blockNumber", seq
    )
    timestamp = _int_field(header, "timestamp", 0, _U64, index, "message.message.header.timestamp", seq)
    request_id = _optional_hex(
        header.get("requestId"), _HASH_RE, index, "message.message.header.requestId", seq
    )
    base_fee = header.get("baseFeeL1")
    if base_fee is not None and type(base_fee) is not int:
        raise BadShapeError(
            f"expected an integer or null, got {_describe(base_fee)}",
            _path(index, "message.message.header.baseFeeL1"),
            seq,
        )

    l2_msg = _optional_base64(incoming.get("l2Msg"), index, "message.message.l2Msg", seq) or b""
    delayed = _int_field(with_meta, "delayedMessagesRead", 0, _U64, index, "message.delayedMessagesRead", seq)
    block_hash = _optional_hex(item.get("blockHash"), _HASH_RE, index, "blockHash", seq)

    signature_key = "signatureV2" if "signatureV2" in item else "signature"
    signature = _optional_base64(item.get(signature_key), index, signature_key, seq)
    block_metadata = _optional_base64(item.get("blockMetadata"), index, "blockMetadata", seq) or None

    transactions: tuple[bytes, ...] = ()
    if kind == _HEADER_KIND_L2_MESSAGE:
        try:
            transactions = parse_l2_message(l2_msg)
        except L2MessageError as exc:
            exc.field = _path(index, "message.message.l2Msg")
            exc.sequence_number = seq
            raise
    return FeedMessage(
        sequence_number=seq,
        kind=kind,
        sender=sender,
        l1_block_number=l1_block_number,
        timestamp=timestamp,
        request_id=request_id,
        base_fee_l1=base_fee,
        delayed_messages_read=delayed,
        block_hash=block_hash,
        l2_msg=l2_msg,
        transactions=transactions,
        tx_hashes=tuple([_tx_hash(tx) for tx in transactions]),
        signature=signature,
        block_metadata=block_metadata,
    )


def _path(index: int | None, path: str) -> str:
    return path if index is None else f"messages[{index}].{path}"


def _int_field(
    obj: dict[str, Any], key: str, low: int, high: int, index: int | None, path: str, seq: int | None
) -> int:
    value = obj.get(key, _MISSING)
    # ``type(...) is int`` rather than isinstance: JSON true/false arrive as bool, a subclass of int.
    if type(value) is int and low <= value <= high:
        return value
    if value is _MISSING:
        raise BadShapeError("required field is missing", _path(index, path), seq)
    if type(value) is int:
        raise BadShapeError(f"{value} is outside {low}..{high}", _path(index, path), seq)
    raise BadShapeError(f"expected an integer, got {_describe(value)}", _path(index, path), seq)


def _object_field(obj: dict[str, Any], key: str, index: int, path: str, seq: int | None) -> dict[str, Any]:
    value = obj.get(key, _MISSING)
    if type(value) is dict:
        return value
    if value is _MISSING:
        raise BadShapeError("required field is missing", _path(index, path), seq)
    raise BadShapeError(f"expected an object, got {_describe(value)}", _path(index, path), seq)


def _optional_hex(value: Any, pattern: re.Pattern[str], index: int, path: str, seq: int | None) -> str | None:
    if value is None:
        return None
    if type(value) is str and pattern.fullmatch(value):
        return "0x" + value[2:].lower()
    width = 64 if pattern is _HASH_RE else 40
    raise BadShapeError(
        f"expected 0x followed by {width} hex digits, got {_describe(value)}", _path(index, path), seq
    )


def _optional_base64(value: Any, index: int, path: str, seq: int | None) -> bytes | None:
    if value is None:
        return None
    if type(value) is not str:
        raise BadShapeError(
            f"expected a base64 string or null, got {_describe(value)}", _path(index, path), seq
        )
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise BadBase64Error(
            f"not standard padded base64: {_describe(value)}", _path(index, path), seq
        ) from None


def _check_nesting(text: str) -> None:
    """Refuse deeply nested JSON before ``json.loads`` sees it.

    The C decoder recurses once per level and relies on the interpreter's recursion limit to stop it.
    Importing eth-account or web3 (through py_ecc) raises that limit to 100000, far beyond what the C
    stack holds, so a frame of a few hundred kilobytes of ``[`` would crash the process with SIGSEGV
    instead of raising ``RecursionError``. Frames with few brackets, i.e. every live frame, skip the scan.
    Backlog frames contain no backslashes and take the quicker of the two paths, which costs about as much
    as ``json.loads`` of the same frame.
    """
    if text.count("[") + text.count("{") <= MAX_JSON_DEPTH:
        return
    if "\\" in text:
        skeleton = _JSON_STRING_RE.sub("", text).translate(_KEEP_STRUCTURE)
    else:
        skeleton = _PLAIN_STRING_RE.sub("", text.translate(_KEEP_STRUCTURE))
    depth = max(accumulate(map(_BRACKET_DELTA.get, skeleton, repeat(0))), default=0)
    if depth > MAX_JSON_DEPTH:
        raise BadJsonError(f"JSON nested {depth} levels deep; a feed frame never exceeds {MAX_JSON_DEPTH}")


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _describe(value: Any) -> str:
    if value is _MISSING:
        return "nothing"
    if isinstance(value, list | dict):
        return _json_type(value)
    return f"{_json_type(value)} {_one_line(json.dumps(value))}"


def _one_line(text: str, limit: int = 60) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


# --------------------------------------------------------------------------------------------- encode


def l2_message_for(transactions: Sequence[bytes]) -> bytes:
    """The ``l2Msg`` a Nitro sequencer writes for a block holding ``transactions`` (signed, raw bytes).

    One transaction is sent bare as a signed-tx message; any other count, including none, becomes a
    batch of signed-tx segments. Matching this exactly keeps a fake feed byte-identical to a real one.
    """
    if len(transactions) == 1:
        tx = bytes(transactions[0])
        _check_tx(tx, 0)
        return b"\x04" + tx
    parts = [b"\x03"]
    for index, raw in enumerate(transactions):
        tx = bytes(raw)
        _check_tx(tx, index)
        parts.append((len(tx) + 1).to_bytes(_LENGTH_PREFIX, "big"))
        parts.append(b"\x04")
        parts.append(tx)
    l2_msg = b"".join(parts)
    if len(l2_msg) > MAX_L2_MESSAGE_SIZE:
        raise ValueError(
            f"{len(transactions)} transactions make a {len(l2_msg)}-byte l2Msg, over Nitro's "
            f"{MAX_L2_MESSAGE_SIZE}-byte cap; split them across blocks"
        )
    return l2_msg


def encode_broadcast(
    messages: Sequence[FeedMessage | EncodableMessage] = (),
    *,
    confirmed_sequence_number: int | None = None,
    signature_field: str = "signatureV2",
) -> str:
    """One feed frame exactly as a Nitro sequencer writes it, trailing newline included.

    Byte-for-byte fidelity matters because the frame is what a fake feed serves to clients (Nitro's own
    relay among them) and what golden tests compare against. ``signature_field="signature"`` writes the
    pre-3.10 field name. Raises ``ValueError`` for a message that no sequencer could have produced
    (a negative number, a malformed hash).
    """
    if signature_field not in _SIGNATURE_FIELDS:
        raise ValueError(
            f"signature_field={signature_field!r}; use 'signatureV2' (Nitro 3.10+) or 'signature'"
        )
    parts = ['{"version":1']
    if messages:
        parts.append(',"messages":[')
        parts.append(",".join([_encode_message(message, signature_field) for message in messages]))
        parts.append("]")
    if confirmed_sequence_number is not None:
        number = _check_int(confirmed_sequence_number, 0, _U64, "confirmed_sequence_number")
        parts.append(f',"confirmedSequenceNumberMessage":{{"sequenceNumber":{number}}}')
    parts.append("}\n")
    return "".join(parts)


def _encode_message(message: FeedMessage | EncodableMessage, signature_field: str) -> str:
    seq = _check_int(message.sequence_number, 0, _U64, "sequence_number")
    kind = _check_int(message.kind, 0, _U8, "kind")
    sender = _json_hex(message.sender, _ADDRESS_RE, "sender")
    block_number = _check_int(message.l1_block_number, 0, _U64, "l1_block_number")
    timestamp = _check_int(message.timestamp, 0, _U64, "timestamp")
    request_id = _json_hex(message.request_id, _HASH_RE, "request_id")
    base_fee = "null"
    if message.base_fee_l1 is not None:
        base_fee = str(_check_int(message.base_fee_l1, None, None, "base_fee_l1"))
    l2_msg = _b64(message.l2_msg)
    delayed = _check_int(message.delayed_messages_read, 0, _U64, "delayed_messages_read")
    out = (
        f'{{"sequenceNumber":{seq},"message":{{"message":{{"header":{{"kind":{kind},"sender":{sender},'
        f'"blockNumber":{block_number},"timestamp":{timestamp},"requestId":{request_id},"baseFeeL1":{base_fee}}},'
        f'"l2Msg":"{l2_msg}"}},"delayedMessagesRead":{delayed}}}'
    )
    if message.block_hash is not None:
        out += f',"blockHash":{_json_hex(message.block_hash, _HASH_RE, "block_hash")}'
    signature = "null" if message.signature is None else f'"{_b64(message.signature)}"'
    out += f',"{signature_field}":{signature}'
    if message.block_metadata:
        out += f',"blockMetadata":"{_b64(message.block_metadata)}"'
    return out + "}"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _check_int(value: Any, low: int | None, high: int | None, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name}={value!r} must be an integer")
    if (low is not None and value < low) or (high is not None and value > high):
        raise ValueError(f"{name}={value!r} is outside {low}..{high}")
    return int(value)


def _check_tx(tx: bytes, index: int) -> None:
    if not tx:
        raise ValueError(f"transactions[{index}] is empty; a signed transaction has at least one byte")
    if len(tx) + 1 > MAX_L2_MESSAGE_SIZE:
        raise ValueError(
            f"transactions[{index}] is {len(tx)} bytes, over Nitro's {MAX_L2_MESSAGE_SIZE}-byte cap"
        )


def _normalise_hex(value: str | None, pattern: re.Pattern[str], name: str) -> str | None:
    if value is None:
        return None
    if isinstance(value, str) and pattern.fullmatch(value):
        return "0x" + value[2:].lower()
    width = 64 if pattern is _HASH_RE else 40
    raise ValueError(f"{name}={value!r} must be 0x followed by {width} hex digits")


def _json_hex(value: str | None, pattern: re.Pattern[str], name: str) -> str:
    normalised = _normalise_hex(value, pattern, name)
    return "null" if normalised is None else f'"{normalised}"'


def _tx_hash(tx: bytes) -> str:
    return "0x" + keccak256(tx).hex()
