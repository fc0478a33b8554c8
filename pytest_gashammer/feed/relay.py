"""A Nitro-shaped sequencer feed for any JSON-RPC node: one WebSocket frame per block.

Why it exists: a Nitro node announces every sequenced block on its feed long before the block is
observable over JSON-RPC, and the load generator measures that "sequenced" moment. The embedded anvil
devnet has no feed, so :class:`FeedRelay` follows the node's blocks and re-broadcasts each one exactly
as a Nitro sequencer would: the same JSON, the same handshake headers, the same backlog and resume
rules, the same keepalive. A client tested against the relay then works against a real Nitro feed.

What it sends, per block ``n`` of the node:

- one message, sequence number ``n`` (Nitro numbers messages so that block = message index + genesis,
  and the genesis block is 0 on a dev chain), header kind 3 from the sequencer sender, ``l2Msg`` the
  block's signed transactions in block order (kind 4 for one, a kind 3 batch otherwise, exactly as
  :func:`~pytest_gashammer.feed.codec.l2_message_for` writes them), ``blockHash`` the block's hash,
  ``timestamp`` the block's timestamp, no L1 block number and no delayed messages (there is no parent
  chain), an empty signature (Nitro's default), no block metadata;
- **empty blocks too**: an interval-mined devnet makes a block every tick whether or not it holds
  transactions, and Nitro's sequencer never makes an empty one. The relay still sends one message
  (an empty batch, ``l2Msg`` = ``0x03``) per empty block so that sequence numbers stay equal to
  block numbers and a missing number always means a lost message, never "an empty block";
- across a restart of the node on the same URL (a node fault): the relay asks again until the node
  answers and carries on from the block after the last one it sent, which a node restarted with
  its chain kept extends, so the numbering goes on with no gap and no reorg; its clients stay
  connected throughout;
- a block whose transactions do not fit in one ``l2Msg`` (Nitro's 256 KiB cap; Nitro's sequencer
  never builds one, since it closes a block at 95,000 bytes of transactions, but a 1 Ggas anvil block
  does above roughly 8,000 transfers per second at 250 ms blocks) is sent as several consecutive
  messages carrying the same ``blockHash``. From then on sequence numbers run ahead of block numbers
  by the number of extra messages; :meth:`FeedRelay.block_number_of` maps them back and
  ``stats.split_blocks`` counts the splits. Nothing is dropped.

Raw transaction bytes come from the node: the relay asks for the block with hashes only (cheap), then
for the full transaction objects and re-encodes each one (legacy, 2930, 1559, 4844 and 7702 envelopes,
through :func:`~pytest_gashammer.chain.tx.rebuilt_raw_transaction`), keeping a re-encoding only when
its keccak equals the transaction hash and asking the node for the raw bytes
(``eth_getRawTransactionByHash``) otherwise. Anvil spends about 230 µs of its own CPU per
transaction to serve full transaction objects and about 300 µs per ``eth_getRawTransactionByHash``, so
a submitter in the same process can hand the relay the bytes it sent (:meth:`FeedRelay.prime`) and
spare the node that work; primed bytes are used only for hashes the block lists, so the feed still
carries exactly the chain's transactions. An overloaded anvil sometimes serves a new block before it
answers for its transactions: the relay asks again, holding the block back, for up to
:data:`RAW_RETRY_SECONDS`, and only then sends it without the ones it could not get, saying so in
:meth:`FeedRelay.incidents` (which the devnet's incidents, and so the run's notes, carry).

The relay runs in a daemon thread with its own event loop so that synchronous fixtures can own it:
``start()`` returns once the socket listens; ``stop()`` is idempotent
and bounded in time.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import http
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from pytest_gashammer._loop_server import LoopServer
from pytest_gashammer.chain.keccak import keccak256
from pytest_gashammer.chain.tx import rebuilt_raw_transaction
from pytest_gashammer.errors import GashammerError
from pytest_gashammer.feed.codec import (
    MAX_L2_MESSAGE_SIZE,
    BroadcastMessage,
    FeedDecodeError,
    FeedMessage,
    decode_broadcast,
    encode_broadcast,
)

__all__ = [
    "CATCHUP_MESSAGES",
    "FEED_CLIENT_VERSION_HEADER",
    "FEED_SERVER_VERSION",
    "FEED_SERVER_VERSION_HEADER",
    "FEED_CHAIN_ID_HEADER",
    "REQUESTED_SEQUENCE_HEADER",
    "FeedRelay",
    "FeedRelayError",
    "FrameTransform",
    "RelayStats",
    "messages_for_block",
    "parse_requested_sequence",
]

FEED_SERVER_VERSION = 2
"""The feed protocol version Nitro servers announce and clients require."""
FEED_CLIENT_VERSION_HEADER = "Arbitrum-Feed-Client-Version"
FEED_SERVER_VERSION_HEADER = "Arbitrum-Feed-Server-Version"
FEED_CHAIN_ID_HEADER = "Arbitrum-Chain-Id"
REQUESTED_SEQUENCE_HEADER = "Arbitrum-Requested-Sequence-Number"
CATCHUP_MESSAGES = 240
"""Most messages in one catch-up frame: Nitro's backlog segment size."""

_FRAME_HEAD = '{"version":1,"messages":['
_FRAME_TAIL = "]}\n"
_SEGMENT_OVERHEAD = 9  # 8-byte length prefix + the nested kind byte of one batch entry
_RAW_BY_HASH_MAX = 32  # fewer misses than this: ask for raw bytes one by one rather than the full block

FrameTransform = Callable[[BroadcastMessage], "BroadcastMessage | str | bytes | None"]
"""Fault hook: gets each frame just before it is written to a client; returns the frame to send
(the same object, a changed one, or raw text/bytes sent verbatim, e.g. a malformed frame) or ``None``
to drop it. The relay counts the frame as sent either way, so a dropped frame is a gap the client sees."""


class FeedRelayError(GashammerError):
    """The relay could not start: the node is unreachable, reports another chain, or the port is taken."""


@dataclasses.dataclass
class RelayStats:
    """Counters of a relay, read with :attr:`FeedRelay.stats` (a copy)."""

    blocks: int = 0
    messages: int = 0
    transactions: int = 0
    empty_blocks: int = 0
    split_blocks: int = 0
    oversize_transactions: int = 0
    reorgs: int = 0
    raw_primed: int = 0
    raw_rebuilt: int = 0
    raw_fetched: int = 0
    clients: int = 0
    connections: int = 0
    rejected_handshakes: int = 0
    clients_behind_backlog: int = 0
    frames_sent: int = 0
    frames_dropped: int = 0
    #: Blocks relayed again because the node gave no raw bytes for some of their transactions yet.
    raw_retries: int = 0
    #: Transactions left out of the feed: the node gave no raw bytes for them within
    #: :data:`RAW_RETRY_SECONDS` (each is also an :attr:`FeedRelay.incidents` line).
    skipped_transactions: int = 0
    first_sequence: int | None = None
    head_sequence: int | None = None
    backlog_messages: int = 0
    backlog_bytes: int = 0
    publish_delay_ms_max: float = 0.0
    publish_delay_ms_last: float = 0.0
    errors: dict[str, int] = dataclasses.field(default_factory=dict)
    last_error: str | None = None


@dataclasses.dataclass
class _Entry:
    # Only the encoded form is kept: the decoded message (raw transactions, l2Msg, hashes) would
    # triple what the backlog holds for the same replay.
    sequence: int
    fragment: str  # the message's JSON object as it appears inside "messages":[...]
    block_number: int


# ------------------------------------------------------------------------------------- pure helpers


def messages_for_block(
    first_sequence: int,
    transactions: Sequence[bytes],
    *,
    block_hash: str,
    timestamp: int,
    max_l2_bytes: int = MAX_L2_MESSAGE_SIZE,
) -> list[FeedMessage]:
    """The feed messages for one block: one, unless its transactions overflow one ``l2Msg``.

    Splitting is greedy and keeps block order, so concatenating the messages' transactions gives the
    block back. Raises ``ValueError`` for a single transaction too large for any message; the caller
    decides what to do with it (the relay skips and counts it).
    """
    chunks: list[list[bytes]] = []
    current: list[bytes] = []
    size = 1  # the batch kind byte
    for tx in transactions:
        cost = len(tx) + _SEGMENT_OVERHEAD
        if 1 + cost > max_l2_bytes:
            raise ValueError(
                f"a {len(tx)}-byte transaction does not fit in a {max_l2_bytes}-byte l2Msg; "
                "Nitro refuses transactions over 95,000 bytes"
            )
        if current and size + cost > max_l2_bytes:
            chunks.append(current)
            current, size = [], 1
        current.append(tx)
        size += cost
    chunks.append(current)
    return [
        FeedMessage.for_block(first_sequence + offset, chunk, block_hash=block_hash, timestamp=timestamp)
        for offset, chunk in enumerate(chunks)
    ]


def parse_requested_sequence(value: str | None) -> int | None:
    """The value of ``Arbitrum-Requested-Sequence-Number``: decimal or 0x-hex, ``None`` when absent.

    Raises ``ValueError`` for anything else, which the relay answers with HTTP 400 as Nitro does.
    """
    if value is None:
        return None
    text = value.strip()
    digits, base = (text[2:], 16) if text[:2] in ("0x", "0X") else (text, 10)
    allowed = "0123456789abcdefABCDEF" if base == 16 else "0123456789"
    if not digits or any(char not in allowed for char in digits):
        raise ValueError(f"{REQUESTED_SEQUENCE_HEADER}: {value!r} is not a decimal or 0x-hex number")
    number = int(digits, base)
    if number >= 1 << 64:
        raise ValueError(f"{REQUESTED_SEQUENCE_HEADER}: {value!r} is over 2**64 - 1")
    return number


def _fragment(message: FeedMessage) -> str:
    frame = encode_broadcast([message])
    assert frame.startswith(_FRAME_HEAD) and frame.endswith(_FRAME_TAIL), "unexpected frame shape"
    return frame[len(_FRAME_HEAD) : -len(_FRAME_TAIL)]


# -------------------------------------------------------------------------------------------- relay


#: What the backlog holds at most, in encoded messages: about a minute of a 50 Mgas/s chain, so a
#: client that reconnects within that resumes without a gap, and a soak's relay stays flat.
BACKLOG_BYTES = 32 * 1024 * 1024
#: Longest wait (s) before asking an unreachable node again. Short, because the node is local and
#: a node fault restarts it: the relay must pick its blocks up again within about a block time of
#: its return. Capped at 2 s, a restart's first blocks could reach the feed up to 2 s late (0.5 s
#: measured after a 3 s downtime), which feed latency would blame on the node. A refused
#: connection costs nothing; a stopped node holds each request until its timeout.
FOLLOW_RETRY_MAX = 0.25
#: How long the relay keeps asking the node for the raw bytes of a block's transactions before it
#: relays the block without the ones it could not get. An overloaded node answers some of these
#: requests late or empty; a feed message sent without them would tell every client that the
#: sequencer left them out, so the relay waits (the block's messages come late instead).
RAW_RETRY_SECONDS = 10.0
#: Primed raw transactions waiting for their block at most (oldest dropped first): what a few tens
#: of seconds of load leave unconsumed when their blocks come late or never.
PRIME_LIMIT = 100_000
#: Relayed blocks whose raw transactions the relay keeps for other readers of the same chain (the
#: devnet's batch poster), newest kept, at most this many blocks and bytes: asking anvil again for a
#: loaded block's transactions costs it about as much as mining them did.
RECENT_BLOCKS = 2048
RECENT_BYTES = 64 * 1024 * 1024


class FeedRelay(LoopServer):
    """A WebSocket feed server that turns each block of ``rpc_url`` into a Nitro feed message.

    ``backlog_limit`` / ``backlog_bytes`` bound what a (re)connecting client can replay: Nitro trims
    its backlog only on L1 confirmations, which a devnet never has, so the relay trims the oldest
    messages instead. ``start_block`` is the first block relayed (default: the node's head at
    ``start()``). ``transform`` is a fault hook, see :data:`FrameTransform`.
    """

    kind = "feed relay"
    thread_name = "gashammer-feed-relay"
    error = FeedRelayError

    def __init__(
        self,
        rpc_url: str,
        chain_id: int,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        start_block: int | None = None,
        backlog_limit: int = 10_000,
        backlog_bytes: int = BACKLOG_BYTES,
        poll_interval: float = 0.05,
        ping_interval: float = 5.0,
        client_timeout: float = 15.0,
        catchup_messages: int = CATCHUP_MESSAGES,
        catchup_bytes: int = 16 * 1024 * 1024,
        max_l2_bytes: int = MAX_L2_MESSAGE_SIZE,
        require_version: bool = False,
        transform: FrameTransform | None = None,
        prime_limit: int = PRIME_LIMIT,
        startup_timeout: float = 10.0,
    ) -> None:
        if catchup_messages < 1 or backlog_limit < 1:
            raise ValueError("catchup_messages and backlog_limit must be at least 1")
        super().__init__(host=host, port=port, startup_timeout=startup_timeout)
        self.rpc_url = rpc_url
        self.chain_id = int(chain_id)
        self._start_block = start_block
        self.backlog_limit = backlog_limit
        self.backlog_bytes_limit = backlog_bytes
        self.poll_interval = poll_interval
        self.ping_interval = ping_interval
        self.client_timeout = client_timeout
        self.catchup_messages = catchup_messages
        self.catchup_bytes = catchup_bytes
        self.max_l2_bytes = max_l2_bytes
        self.require_version = require_version
        self.transform = transform
        self.prime_limit = prime_limit

        self._stats = RelayStats()
        self._backlog: dict[int, _Entry] = {}
        self._first: int | None = None  # oldest sequence number in the backlog
        self._next: int | None = None  # sequence number of the next message
        self._last_block_hash: str | None = None
        self._primed: dict[str, bytes] = {}
        self._primed_lock = threading.Lock()
        self._new_message: asyncio.Event | None = None
        self._connections: set[Any] = set()
        self._sequence_cond = threading.Condition()
        self.raw_retry_seconds = RAW_RETRY_SECONDS
        #: (block number, monotonic time of its first incomplete attempt, the raw bytes got so far)
        #: while a block waits for the rest of its raw bytes.
        self._raw_retry: tuple[int, float, dict[str, bytes]] | None = None
        self._incidents: list[str] = []
        #: block hash → its raw transactions, for blocks relayed whole (see :meth:`raw_block`).
        self._recent: collections.OrderedDict[str, tuple[bytes, ...]] = collections.OrderedDict()
        self._recent_bytes = 0
        self._recent_lock = threading.Lock()

    # -- host-facing API ------------------------------------------------------------------------
    @property
    def url(self) -> str:
        """``ws://host:port`` of the feed, for :class:`~pytest_gashammer.feed.client.FeedClient`."""
        return f"ws://{self.host}:{self.port}"

    @property
    def liveness_url(self) -> str:
        return f"http://{self.host}:{self.port}/livenessprobe"

    @property
    def stats(self) -> RelayStats:
        """A copy of the counters (safe from any thread)."""
        stats = dataclasses.replace(self._stats, errors=dict(self._stats.errors))
        stats.clients = len(self._connections)
        return stats

    def incidents(self) -> list[str]:
        """What the relay had to leave out of the feed, one line each (empty on a healthy run)."""
        return list(self._incidents)

    @property
    def head_sequence(self) -> int | None:
        """Sequence number of the newest message sent, ``None`` before the first."""
        return self._stats.head_sequence

    @property
    def oldest_sequence(self) -> int | None:
        """Oldest sequence number still in the backlog (what a client requesting 0 gets first)."""
        return self._first

    def block_number_of(self, sequence: int) -> int | None:
        """The block a sequence number carries (equal to it unless a block was split); ``None`` if trimmed."""
        entry = self._backlog.get(sequence)
        return entry.block_number if entry else None

    def prime(self, tx_hash: bytes | str, raw: bytes) -> None:
        """Hand the relay the signed bytes of a transaction you submitted, so it need not ask the node.

        Optional, thread-safe and cheap. Used only when a block lists ``tx_hash``; the bytes are dropped
        once used or when more than ``prime_limit`` are waiting (oldest first).
        """
        key = tx_hash if isinstance(tx_hash, str) else "0x" + tx_hash.hex()
        with self._primed_lock:
            self._primed[key.lower()] = bytes(raw)
            if len(self._primed) > self.prime_limit:
                for stale in list(self._primed)[: len(self._primed) - self.prime_limit]:
                    del self._primed[stale]

    def raw_block(self, block_hash: str) -> tuple[bytes, ...] | None:
        """The signed bytes of a recently relayed block's transactions in block order, each checked
        against its hash; ``None`` for a block not relayed (yet), relayed without some of them, or no
        longer kept (see :data:`RECENT_BLOCKS`). Thread-safe."""
        with self._recent_lock:
            return self._recent.get(block_hash.lower())

    def _keep_recent(self, block_hash: str, raws: tuple[bytes, ...]) -> None:
        size = sum(len(raw) for raw in raws)
        with self._recent_lock:
            self._recent[block_hash] = raws
            self._recent_bytes += size
            while self._recent and (len(self._recent) > RECENT_BLOCKS or self._recent_bytes > RECENT_BYTES):
                _, dropped = self._recent.popitem(last=False)
                self._recent_bytes -= sum(len(raw) for raw in dropped)

    def wait_for_sequence(self, sequence: int, timeout: float) -> bool:
        """Block until the relay has sent message ``sequence`` (or ``timeout`` passes); for tests and setup."""
        deadline = time.monotonic() + timeout
        with self._sequence_cond:
            while True:
                head = self.head_sequence
                if head is not None and head >= sequence:
                    return True
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._done.is_set():
                    return False
                self._sequence_cond.wait(min(remaining, 0.1))

    def disconnect_clients(self, *, abrupt: bool = False) -> int:
        """Fault hook: close every client connection from the server side; returns how many.

        ``abrupt=True`` drops the TCP connection without a WebSocket close frame, like a crashed relay.
        """
        loop = self._loop
        if loop is None or self._done.is_set():
            return 0
        future = asyncio.run_coroutine_threadsafe(self._disconnect_all(abrupt), loop)
        return future.result(timeout=5)

    def _startup_timeout_message(self) -> str:
        return (
            f"feed relay did not start within {self.startup_timeout:.0f} s (node {self.rpc_url}); "
            "check that the node answers JSON-RPC"
        )

    def _crashed_after_start(self, exc: BaseException) -> None:
        self._count("relay_crashed", f"{type(exc).__name__}: {exc}")

    def _stopped(self) -> None:
        with self._sequence_cond:
            self._sequence_cond.notify_all()

    def __repr__(self) -> str:
        where = self.url if self._port is not None else "not started"
        return f"<FeedRelay {where} chain_id={self.chain_id} head={self.head_sequence}>"

    async def _serve(self, stop: asyncio.Event) -> None:
        from websockets.asyncio.server import serve

        from pytest_gashammer.chain.rpc import AsyncRpcClient, RpcError, TransportError

        self._new_message = asyncio.Event()
        async with AsyncRpcClient(self.rpc_url, connections=2, timeout=30.0, retries=2) as rpc:
            try:
                node_chain = int(await rpc.call("eth_chainId"), 16)
                head = int(await rpc.call("eth_blockNumber"), 16)
            except (RpcError, TransportError, ValueError, TypeError) as exc:
                raise FeedRelayError(f"feed relay cannot read the node at {self.rpc_url}: {exc}") from None
            if node_chain != self.chain_id:
                raise FeedRelayError(
                    f"feed relay: the node at {self.rpc_url} reports chain id {node_chain} but the relay "
                    f"was given {self.chain_id}; pass chain_id={node_chain}"
                )
            next_block = head if self._start_block is None else self._start_block
            self._next = next_block
            self._stats.first_sequence = next_block
            try:
                server = await serve(
                    self._serve_client,
                    self.host,
                    self._requested_port,
                    process_request=self._process_request,
                    process_response=self._process_response,
                    compression=None,
                    ping_interval=self.ping_interval,
                    ping_timeout=self.client_timeout,
                    close_timeout=2,
                    max_size=2**16,
                    server_header=None,
                )
            except OSError as exc:
                raise FeedRelayError(
                    f"feed relay cannot listen on {self.host}:{self._requested_port} ({exc}); "
                    "pick another port or port=0"
                ) from None
            self._port = int(server.sockets[0].getsockname()[1])
            follower = asyncio.create_task(self._follow(rpc, next_block))
            self._ready.set()
            try:
                await stop.wait()
            finally:
                follower.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await follower
                server.close(close_connections=True)
                self._new_message.set()
                with contextlib.suppress(asyncio.TimeoutError, Exception):
                    await asyncio.wait_for(server.wait_closed(), timeout=3.0)
                for connection in list(self._connections):
                    with contextlib.suppress(Exception):
                        connection.transport.abort()

    def _count(self, kind: str, message: str) -> None:
        errors = self._stats.errors
        errors[kind] = errors.get(kind, 0) + 1
        self._stats.last_error = message

    # -- following blocks -----------------------------------------------------------------------
    async def _follow(self, rpc: Any, next_block: int) -> None:
        from pytest_gashammer.chain.rpc import RpcError, TransportError

        assert self._stop_event is not None
        stop = self._stop_event
        failures = 0
        while not stop.is_set():
            try:
                head = int(await rpc.call("eth_blockNumber"), 16)
                while next_block <= head and not stop.is_set():
                    last = min(head, next_block + 15)
                    headers = await rpc.batch(
                        [("eth_getBlockByNumber", [hex(n), False]) for n in range(next_block, last + 1)]
                    )
                    for block in headers:
                        if not isinstance(block, dict):
                            break  # not served yet: retry from here on the next poll
                        observed = time.monotonic_ns()
                        if not await self._relay_block(rpc, block, observed):
                            break  # raw bytes still missing: this block again, after a pause
                        next_block += 1
                    else:
                        continue
                    break
                failures = 0
            except asyncio.CancelledError:
                raise
            except (RpcError, TransportError) as exc:
                failures += 1
                self._count("block_follow", f"following blocks: {exc}")
                await self._sleep(min(0.05 * 2**failures, FOLLOW_RETRY_MAX))
                continue
            except Exception as exc:  # a malformed answer must not end the relay: count it, retry
                failures += 1
                self._count("block_malformed", f"following blocks: {type(exc).__name__}: {exc}")
                await self._sleep(min(0.05 * 2**failures, FOLLOW_RETRY_MAX))
                continue
            await self._sleep(self.poll_interval)

    async def _sleep(self, seconds: float) -> None:
        assert self._stop_event is not None
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._stop_event.wait(), timeout=seconds)

    async def _relay_block(self, rpc: Any, block: dict[str, Any], observed_ns: int) -> bool:
        """Relay one block; ``False`` (nothing relayed) while some of its raw bytes are still missing
        and :attr:`raw_retry_seconds` have not passed since the first attempt."""
        number = int(block["number"], 16)
        block_hash = str(block["hash"]).lower()
        hashes = [str(h).lower() for h in block.get("transactions") or ()]
        retry = self._raw_retry
        found = retry[2] if retry is not None and retry[0] == number else {}
        wanted = [tx_hash for tx_hash in hashes if tx_hash not in found]
        for tx_hash, raw in zip(wanted, await self._raw_transactions(rpc, block_hash, wanted), strict=True):
            if raw is not None:
                found[tx_hash] = raw
        absent = [tx_hash for tx_hash in hashes if tx_hash not in found]
        if absent:
            now = time.monotonic()
            if retry is None or retry[0] != number:
                retry = self._raw_retry = (number, now, found)
            if now - retry[1] < self.raw_retry_seconds:
                self._stats.raw_retries += 1
                return False
            self._stats.skipped_transactions += len(absent)
            self._incidents.append(
                f"the feed relay left {len(absent)} transaction(s) of block {number} out of the feed, "
                f"first {absent[0]}: the node gave no raw bytes for them in {self.raw_retry_seconds:g} s "
                f"({self._stats.last_error})"
            )
        self._raw_retry = None
        raws = [found.get(tx_hash) for tx_hash in hashes]
        parent = str(block.get("parentHash", "")).lower()
        if self._last_block_hash is not None and parent != self._last_block_hash:
            self._count("reorg", f"block {number} does not extend the previous block relayed")
            self._stats.reorgs += 1
        kept = []
        for tx_hash, raw in zip(hashes, raws, strict=True):
            if raw is None:
                continue
            if len(raw) + 1 + _SEGMENT_OVERHEAD > self.max_l2_bytes:
                self._stats.oversize_transactions += 1
                self._count("oversize_transaction", f"block {number}: {tx_hash} is {len(raw)} bytes")
                continue
            kept.append(raw)
        if len(kept) == len(hashes):
            self._keep_recent(block_hash, tuple(kept))
        assert self._next is not None
        messages = messages_for_block(
            self._next,
            kept,
            block_hash=block_hash,
            timestamp=int(block["timestamp"], 16),
            max_l2_bytes=self.max_l2_bytes,
        )
        stats = self._stats
        stats.blocks += 1
        stats.empty_blocks += not hashes
        stats.split_blocks += len(messages) > 1
        stats.transactions += len(kept)
        for message in messages:
            self._append(_Entry(message.sequence_number, _fragment(message), number))
        self._last_block_hash = block_hash
        delay_ms = (time.monotonic_ns() - observed_ns) / 1e6
        stats.publish_delay_ms_last = delay_ms
        stats.publish_delay_ms_max = max(stats.publish_delay_ms_max, delay_ms)
        assert self._new_message is not None
        self._new_message.set()
        self._new_message = asyncio.Event()
        with self._sequence_cond:
            self._sequence_cond.notify_all()
        return True

    def _append(self, entry: _Entry) -> None:
        seq = entry.sequence
        self._backlog[seq] = entry
        if self._first is None:
            self._first = seq
        stats = self._stats
        stats.messages += 1
        stats.backlog_messages += 1
        stats.backlog_bytes += len(entry.fragment)
        self._next = seq + 1
        stats.head_sequence = seq
        while self._first < seq and (
            stats.backlog_messages > self.backlog_limit or stats.backlog_bytes > self.backlog_bytes_limit
        ):
            old = self._backlog.pop(self._first)
            stats.backlog_messages -= 1
            stats.backlog_bytes -= len(old.fragment)
            self._first += 1

    async def _raw_transactions(self, rpc: Any, block_hash: str, hashes: list[str]) -> list[bytes | None]:
        """Raw signed bytes for each hash, in order; ``None`` where the node could not give them."""
        from pytest_gashammer.chain.rpc import RpcError

        def hashes_to(raw: bytes, expected: str) -> bool:
            return "0x" + keccak256(raw).hex() == expected

        raws: list[bytes | None] = [None] * len(hashes)
        with self._primed_lock:
            primed = self._primed
            for index, tx_hash in enumerate(hashes):
                raw = primed.pop(tx_hash, None)
                if raw is not None:
                    raws[index] = raw
        missing = [index for index, raw in enumerate(raws) if raw is None]
        # Primed bytes are trusted only after hashing: a wrong hand-off must not corrupt the feed.
        for index, raw in enumerate(raws):
            if raw is not None and not hashes_to(raw, hashes[index]):
                raws[index] = None
                missing.append(index)
                self._count("prime_mismatch", f"primed bytes for {hashes[index]} hash differently")
        self._stats.raw_primed += len(hashes) - len(missing)
        if len(missing) > _RAW_BY_HASH_MAX:
            full = await rpc.call("eth_getBlockByHash", block_hash, True)
            objects = {str(tx.get("hash", "")).lower(): tx for tx in (full or {}).get("transactions") or ()}
            still = []
            for index in missing:
                tx = objects.get(hashes[index])
                raw = None
                if tx is not None:
                    try:
                        raw = rebuilt_raw_transaction(tx)
                    except (KeyError, TypeError, ValueError):
                        raw = None
                if raw is not None:
                    raws[index] = raw
                    self._stats.raw_rebuilt += 1
                else:
                    still.append(index)
            missing = still
        if missing:
            answers = await rpc.batch([("eth_getRawTransactionByHash", [hashes[i]]) for i in missing])
            for index, answer in zip(missing, answers, strict=True):
                if isinstance(answer, str) and answer.startswith("0x"):
                    raw = bytes.fromhex(answer[2:])
                    if hashes_to(raw, hashes[index]):
                        raws[index] = raw
                        self._stats.raw_fetched += 1
                        continue
                reason = str(answer) if isinstance(answer, RpcError | Exception) else "wrong or no bytes"
                self._count("raw_transaction", f"{hashes[index]}: {reason}")
        return raws

    # -- serving clients ------------------------------------------------------------------------
    def _process_request(self, connection: Any, request: Any) -> Any:
        if "livenessprobe" in request.path:
            return connection.respond(http.HTTPStatus.OK, "OK\n")
        headers = request.headers
        version = headers.get(FEED_CLIENT_VERSION_HEADER)
        reject = None
        if version is None:
            if self.require_version:
                reject = f"{FEED_CLIENT_VERSION_HEADER} is required"
        else:
            try:
                if int(version.strip()) < FEED_SERVER_VERSION:
                    reject = f"{FEED_CLIENT_VERSION_HEADER} {version} is below {FEED_SERVER_VERSION}"
            except ValueError:
                reject = f"{FEED_CLIENT_VERSION_HEADER}: {version!r} is not a number"
        if reject is None:
            try:
                parse_requested_sequence(headers.get(REQUESTED_SEQUENCE_HEADER))
            except ValueError as exc:
                reject = str(exc)
        if reject is not None:
            self._stats.rejected_handshakes += 1
            return connection.respond(http.HTTPStatus.BAD_REQUEST, reject + "\n")
        return None

    def _process_response(self, connection: Any, request: Any, response: Any) -> None:
        if response.status_code == http.HTTPStatus.SWITCHING_PROTOCOLS:
            response.headers[FEED_SERVER_VERSION_HEADER] = str(FEED_SERVER_VERSION)
            response.headers[FEED_CHAIN_ID_HEADER] = str(self.chain_id)

    async def _disconnect_all(self, abrupt: bool) -> int:
        connections = list(self._connections)
        for connection in connections:
            if abrupt:
                connection.transport.abort()
            else:
                await connection.close(code=1011, reason="relay closed the connection")
        return len(connections)

    def _start_for(self, requested: int | None) -> int:
        """Where a client's stream starts: its requested number when the relay has it, else the backlog."""
        first, nxt = self._first, self._next
        assert nxt is not None
        if first is None:
            return nxt
        # The number right after the head is accepted as "live from here": it is not in the backlog
        # yet, but replaying everything (Nitro's answer) would only hand the client duplicates.
        if requested is not None and requested > 0 and first <= requested <= nxt:
            return requested
        return first

    async def _serve_client(self, connection: Any) -> None:
        from websockets.exceptions import ConnectionClosed

        self._connections.add(connection)
        self._stats.connections += 1
        closed = asyncio.ensure_future(connection.wait_closed())
        try:
            requested = parse_requested_sequence(connection.request.headers.get(REQUESTED_SEQUENCE_HEADER))
            cursor = self._start_for(requested)
            while not closed.done():
                first, nxt = self._first, self._next
                assert nxt is not None
                if first is not None and cursor < first:
                    # Trimmed past this client: Nitro drops a client that falls this far behind.
                    self._stats.clients_behind_backlog += 1
                    await connection.close(code=1008, reason="fell behind the relay's backlog")
                    return
                if cursor >= nxt:
                    assert self._new_message is not None
                    waiter = asyncio.ensure_future(self._new_message.wait())
                    await asyncio.wait((waiter, closed), return_when=asyncio.FIRST_COMPLETED)
                    waiter.cancel()
                    continue
                frame, count = self._frame_from(cursor, nxt)
                cursor += count
                out: str | bytes | None = frame
                if self.transform is not None:
                    out = self._transformed(frame)
                    if out is None:
                        self._stats.frames_dropped += 1
                        continue
                await connection.send(out)
                self._stats.frames_sent += 1
        except ConnectionClosed:
            pass
        finally:
            closed.cancel()
            self._connections.discard(connection)

    def _frame_from(self, cursor: int, nxt: int) -> tuple[str, int]:
        parts: list[str] = []
        size = 0
        end = min(nxt, cursor + self.catchup_messages)
        for seq in range(cursor, end):
            fragment = self._backlog[seq].fragment
            if parts and size + len(fragment) > self.catchup_bytes:
                break
            parts.append(fragment)
            size += len(fragment)
        return _FRAME_HEAD + ",".join(parts) + _FRAME_TAIL, len(parts)

    def _transformed(self, frame: str) -> str | bytes | None:
        assert self.transform is not None
        try:
            original = decode_broadcast(frame)
        except FeedDecodeError as exc:  # cannot happen for frames the relay built; counted if it does
            self._count("transform_input", str(exc))
            return frame
        result = self.transform(original)
        if result is None or isinstance(result, str | bytes):
            return result
        if result is original:
            return frame
        return encode_broadcast(result.messages, confirmed_sequence_number=result.confirmed_sequence_number)
