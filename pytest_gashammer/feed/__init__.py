"""Arbitrum Nitro's sequencer feed: the codec, a relay that serves a Nitro-shaped feed for any node, a
resilient client, and the correlator that turns feed arrivals into feed latency and feed-vs-chain checks.

Importing this package loads neither websockets nor aiohttp; the relay and the client import them when
they start.
"""

from pytest_gashammer.feed.client import (
    FeedChainMismatch,
    FeedClient,
    FeedClientError,
    FeedClientStats,
    FeedEvent,
    FeedVersionMismatch,
)
from pytest_gashammer.feed.codec import (
    MAX_BATCH_DEPTH,
    MAX_JSON_DEPTH,
    MAX_L2_MESSAGE_SIZE,
    SEQUENCER_SENDER,
    BadBase64Error,
    BadJsonError,
    BadShapeError,
    BroadcastMessage,
    EmptyMessageError,
    EncodableMessage,
    FeedDecodeError,
    FeedMessage,
    L2MessageError,
    NestingTooDeepError,
    OversizeSegmentError,
    TruncatedBatchError,
    UnknownL2KindError,
    decode_broadcast,
    encode_broadcast,
    l2_message_for,
    parse_l2_message,
)
from pytest_gashammer.feed.correlator import ChainBlock, Correlator, FeedChainFindings
from pytest_gashammer.feed.relay import (
    FeedRelay,
    FeedRelayError,
    FrameTransform,
    RelayStats,
    messages_for_block,
)

__all__ = [
    "MAX_BATCH_DEPTH",
    "MAX_JSON_DEPTH",
    "MAX_L2_MESSAGE_SIZE",
    "SEQUENCER_SENDER",
    "BadBase64Error",
    "BadJsonError",
    "BadShapeError",
    "BroadcastMessage",
    "ChainBlock",
    "Correlator",
    "EmptyMessageError",
    "EncodableMessage",
    "FeedChainFindings",
    "FeedChainMismatch",
    "FeedClient",
    "FeedClientError",
    "FeedClientStats",
    "FeedDecodeError",
    "FeedEvent",
    "FeedMessage",
    "FeedRelay",
    "FeedRelayError",
    "FeedVersionMismatch",
    "FrameTransform",
    "L2MessageError",
    "NestingTooDeepError",
    "OversizeSegmentError",
    "RelayStats",
    "TruncatedBatchError",
    "UnknownL2KindError",
    "decode_broadcast",
    "encode_broadcast",
    "l2_message_for",
    "messages_for_block",
    "parse_l2_message",
]
