"""The L1 monitor: follows a rollup's L1 and its L2, and maps every L2 block to the batch that carried it.

A daemon thread polls, every ``poll_interval``:

1. the L2 head (``eth_blockNumber``) and each new block (``eth_getBlockByNumber(n, true)``, at most
   ``max_l2_blocks_per_poll`` in one batched call): when it was first seen, its hash, and the
   hashes of the transactions a batch carries (Arbitrum-internal types left out; an L2 known to
   have none, ``full_l2_transactions=False``, is read by hashes only: an anvil spends about 230 µs
   per transaction serving full objects);
2. the L1 head, then ``eth_getLogs`` over ``[last read + 1, head]`` in ranges of at most
   ``max_log_range`` blocks (at most ``max_ranges_per_poll`` a poll; when the node refuses a range,
   ranges are half as long from then on, down to one block) for the inbox's ``SequencerBatchDelivered`` and, with a rollup, its
   ``AssertionCreated`` and ``AssertionConfirmed``; when each log was first seen;
3. for each new batch, its posting transaction and receipt (one batched call for up to
   ``max_batches_per_poll`` batches): the L1 gas, the call's arguments (the 6-argument
   ``addSequencerL2BatchFromOrigin`` and the inbox's other batch entry points), the batch data
   (calldata, or the ``SequencerBatchData`` event of a batch posted through a contract), decoded
   with :func:`~pytest_gashammer.l1.batch.decode_batch`; message ``m`` is L2 block
   ``m + l2_block_offset``, each L2 message's transactions the keccak of their signed bytes;
4. at the L1 block read up to: ``batchCount()``, the Bridge's ``sequencerReportedSubMessageCount()``
   and the rollup's ``latestConfirmed()`` (kept when they change), for cross-checks.

A failed step is recorded as a problem and tried again at the next poll (a batch's transaction at
most ``fetch_attempts`` times); nothing stops the thread but :meth:`L1Monitor.stop`. The monitor only
reads: every call goes through :meth:`L1Monitor._call`, which refuses any method outside
:data:`READ_METHODS`, so it is safe against a real deployment. :meth:`L1Monitor.observation` is
plain data (:class:`~pytest_gashammer.l1.observation.L1Observation`) for ``oracle/l1.py``.
"""

from __future__ import annotations

import collections
import dataclasses
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from pytest_gashammer.chain.keccak import keccak256
from pytest_gashammer.chain.rpc import RpcError, call, call_batch
from pytest_gashammer.l1.abi import call_data, decode, event_topic, selector, signature_types
from pytest_gashammer.l1.batch import BatchDecodeError, decode_batch
from pytest_gashammer.l1.contracts import (
    ADD_BATCH,
    ADD_BATCH_DELAY_PROOF,
    ADD_BATCH_FROM_BLOBS,
    ADD_BATCH_FROM_BLOBS_DELAY_PROOF,
    ADD_BATCH_FROM_CONTRACT,
    ADD_BATCH_FROM_CONTRACT_DELAY_PROOF,
    ASSERTION_CONFIRMED,
    ASSERTION_CREATED,
    BATCH_DATA_LOCATIONS,
    SEQUENCER_BATCH_DATA,
    SEQUENCER_BATCH_DELIVERED,
)
from pytest_gashammer.l1.observation import (
    ARBITRUM_TX_TYPES_FROM,
    LOCATION_BLOB,
    LOCATION_NO_DATA,
    LOCATION_SEPARATE_EVENT,
    MALFORMED,
    UNREADABLE,
    BatchMessage,
    L1Observation,
    Reading,
    SeenAssertion,
    SeenBatch,
    SeenConfirmation,
    SeenL2Block,
)

#: The only JSON-RPC methods the monitor calls: it reads, it never sends.
READ_METHODS = frozenset(
    {
        "eth_blockNumber",
        "eth_getBlockByNumber",
        "eth_getLogs",
        "eth_getTransactionByHash",
        "eth_getTransactionReceipt",
        "eth_call",
    }
)

BATCH_DELIVERED_TOPIC = "0x" + event_topic(SEQUENCER_BATCH_DELIVERED).hex()
BATCH_DATA_TOPIC = "0x" + event_topic(SEQUENCER_BATCH_DATA).hex()
ASSERTION_CREATED_TOPIC = "0x" + event_topic(ASSERTION_CREATED).hex()
ASSERTION_CONFIRMED_TOPIC = "0x" + event_topic(ASSERTION_CONFIRMED).hex()
_DELIVERED_DATA = ["bytes32", "uint256", "(uint64,uint64,uint64,uint64)", "uint8"]
_CREATED_DATA = signature_types(ASSERTION_CREATED)[2:]  # the first two are indexed
_CONFIRMED_DATA = signature_types(ASSERTION_CONFIRMED)[1:]
_BATCH_ENTRY_POINTS: dict[bytes, str] = {
    selector(signature): signature
    for signature in (
        ADD_BATCH,
        ADD_BATCH_FROM_CONTRACT,
        ADD_BATCH_DELAY_PROOF,
        ADD_BATCH_FROM_CONTRACT_DELAY_PROOF,
        ADD_BATCH_FROM_BLOBS,
        ADD_BATCH_FROM_BLOBS_DELAY_PROOF,
    )
}


@dataclasses.dataclass(frozen=True)
class BatchCall:
    """The arguments of a call to one of the SequencerInbox's batch entry points."""

    entry_point: str
    sequence_number: int
    #: The batch data; ``None`` for the blob entry points (the data is in the transaction's blobs).
    data: bytes | None
    after_delayed_messages_read: int
    prev_message_count: int
    new_message_count: int


def decode_batch_call(calldata: bytes) -> BatchCall:
    """The batch call in a posting transaction's ``calldata``; ``ValueError`` saying why not."""
    if len(calldata) < 4:
        raise ValueError("not decoded: the transaction has no calldata, so no batch call")
    signature = _BATCH_ENTRY_POINTS.get(bytes(calldata[:4]))
    if signature is None:
        raise ValueError(
            f"not decoded: selector 0x{bytes(calldata[:4]).hex()} is not one of the SequencerInbox's "
            "batch entry points (posted through another contract?)"
        )
    name = signature.split("(", 1)[0]
    try:
        values = decode(signature_types(signature), bytes(calldata[4:]))
    except ValueError as exc:
        raise ValueError(f"not decoded: the arguments of {name} do not decode ({exc})") from None
    if "Blobs" in name:
        sequence_number, after_delayed, _refunder, prev_count, new_count = values[:5]
        data = None
    else:
        sequence_number, data, after_delayed, _refunder, prev_count, new_count = values[:6]
    return BatchCall(name, sequence_number, data, after_delayed, prev_count, new_count)


def log_ranges(start: int, head: int, step: int, limit: int) -> list[tuple[int, int]]:
    """Inclusive ``(from, to)`` block ranges covering ``start..head``, each at most ``step`` blocks,
    at most ``limit`` of them (the rest is for the next poll)."""
    if step < 1 or limit < 1:
        raise ValueError("a log range is at least one block, and a poll reads at least one range")
    ranges: list[tuple[int, int]] = []
    while start <= head and len(ranges) < limit:
        end = min(head, start + step - 1)
        ranges.append((start, end))
        start = end + 1
    return ranges


def batch_messages(data: bytes, prev_message_count: int) -> tuple[BatchMessage, ...]:
    """The messages of batch ``data`` from inbox index ``prev_message_count`` on (raises
    :class:`BatchDecodeError`): each L2 message with its transactions' hashes, delayed ones ``None``."""
    decoded = decode_batch(data)
    by_position = dict(zip(decoded.block_positions, decoded.blocks, strict=True))
    messages = []
    for position in range(decoded.message_count):
        block = by_position.get(position)
        hashes = None if block is None else tuple("0x" + keccak256(raw).hex() for raw in block.transactions)
        messages.append(BatchMessage(prev_message_count + position, hashes))
    return tuple(messages)


def read_batch(
    batch: SeenBatch, tx: Mapping[str, Any], receipt: Mapping[str, Any], *, sequencer_inbox: str
) -> SeenBatch:
    """``batch`` completed from its posting transaction and receipt: gas, call, data, messages."""
    batch = dataclasses.replace(batch, l1_gas=int(receipt["gasUsed"], 16))
    where = BATCH_DATA_LOCATIONS[batch.data_location] if batch.data_location < 4 else "unknown"
    if batch.data_location == LOCATION_NO_DATA:
        return _unreadable(batch, "no data (a forced inclusion of delayed messages)")
    if str(tx.get("to") or "").lower() != sequencer_inbox.lower():
        return _unreadable(
            batch, f"not decoded: the transaction calls {tx.get('to')}, not the SequencerInbox"
        )
    try:
        batch_call = decode_batch_call(bytes.fromhex(str(tx["input"])[2:]))
    except ValueError as exc:
        return _unreadable(batch, str(exc))
    batch = dataclasses.replace(
        batch,
        entry_point=batch_call.entry_point,
        prev_message_count=batch_call.prev_message_count,
        new_message_count=batch_call.new_message_count,
    )
    data = batch_call.data
    if batch.data_location == LOCATION_BLOB:
        return _unreadable(batch, "data in EIP-4844 blobs, which the monitor does not read")
    if batch.data_location == LOCATION_SEPARATE_EVENT:
        data = _separate_data(batch, receipt, sequencer_inbox)
        if data is None:
            return _unreadable(batch, "its SequencerBatchData event is not in the receipt")
    elif batch.data_location != 0:
        return _unreadable(
            batch, f"data location {batch.data_location} ({where}) is not one the monitor reads"
        )
    if data is None:
        return _unreadable(batch, f"{batch_call.entry_point} carries no data, yet the log says {where}")
    batch = dataclasses.replace(batch, data_bytes=len(data))
    try:
        messages = batch_messages(data, batch_call.prev_message_count)
    except BatchDecodeError as exc:
        problem = UNREADABLE if exc.kind == "unsupported_flag" else MALFORMED
        return dataclasses.replace(batch, decode_error=f"{exc.kind}: {exc}", decode_problem=problem)
    return dataclasses.replace(batch, messages=messages)


def _unreadable(batch: SeenBatch, why: str) -> SeenBatch:
    return dataclasses.replace(batch, decode_error=why, decode_problem=UNREADABLE)


def _separate_data(batch: SeenBatch, receipt: Mapping[str, Any], sequencer_inbox: str) -> bytes | None:
    for log in receipt.get("logs") or ():
        topics = log.get("topics") or []
        if (
            str(log.get("address", "")).lower() == sequencer_inbox.lower()
            and len(topics) > 1
            and topics[0] == BATCH_DATA_TOPIC
            and int(topics[1], 16) == batch.sequence_number
        ):
            return bytes(decode(["bytes"], bytes.fromhex(log["data"][2:]))[0])
    return None


def batch_from_log(log: Mapping[str, Any], seen_at: float) -> SeenBatch:
    """A ``SequencerBatchDelivered`` log as a :class:`SeenBatch` (the transaction not read yet)."""
    topics = log["topics"]
    delayed_acc, delayed_read, bounds, location = decode(_DELIVERED_DATA, bytes.fromhex(log["data"][2:]))
    return SeenBatch(
        sequence_number=int(topics[1], 16),
        before_acc=topics[2].lower(),
        after_acc=topics[3].lower(),
        delayed_acc="0x" + bytes(delayed_acc).hex(),
        delayed_messages_read=int(delayed_read),
        time_bounds=(int(bounds[0]), int(bounds[1]), int(bounds[2]), int(bounds[3])),
        data_location=int(location),
        l1_block=int(log["blockNumber"], 16),
        log_index=int(log["logIndex"], 16),
        l1_tx=str(log["transactionHash"]).lower(),
        seen_at=seen_at,
    )


def assertion_from_log(log: Mapping[str, Any], seen_at: float) -> SeenAssertion:
    """An ``AssertionCreated`` log as a :class:`SeenAssertion`."""
    topics = log["topics"]
    inputs, after_inbox_acc, *_ = decode(_CREATED_DATA, bytes.fromhex(log["data"][2:]))
    after_state = inputs[2]
    hashes, counters = after_state[0]
    return SeenAssertion(
        assertion_hash=topics[1].lower(),
        parent_hash=topics[2].lower(),
        inbox_position=int(counters[0]),
        l2_block_hash="0x" + bytes(hashes[0]).hex(),
        after_inbox_acc="0x" + bytes(after_inbox_acc).hex(),
        created_l1_block=int(log["blockNumber"], 16),
        created_at=seen_at,
    )


def l2_block_from_json(block: Mapping[str, Any], seen_at: float, *, keep_hashes: bool = True) -> SeenL2Block:
    """An L2 block as ``eth_getBlockByNumber(n, true)`` returns it (plain hashes are taken too)."""
    carried: list[str] = []
    internal = 0
    for tx in block.get("transactions") or ():
        if isinstance(tx, str):
            carried.append(tx.lower())
            continue
        if int(str(tx.get("type") or "0x0"), 16) >= ARBITRUM_TX_TYPES_FROM:
            internal += 1
        else:
            carried.append(str(tx["hash"]).lower())
    return SeenL2Block(
        number=int(block["number"], 16),
        hash=str(block["hash"]).lower(),
        parent_hash=str(block["parentHash"]).lower(),
        seen_at=seen_at,
        transactions=tuple(carried) if keep_hashes else (),
        internal_transactions=internal,
        hashes_kept=keep_hashes,
    )


class L1Monitor:
    """Follows the SequencerInbox at ``sequencer_inbox`` (and the ``rollup``) on the L1 at
    ``l1_rpc_url``, and the L2 at ``l2_rpc_url``; see the module docstring.

    ``from_l1_block`` (default: the L1 head at :meth:`start`, plus one) is the first L1 block whose
    logs are read; ``from_l2_block`` (default: the L2 head at start, plus one) the first L2 block
    followed. ``clock`` gives the seconds every ``seen_at`` is measured in.
    """

    def __init__(
        self,
        l1_rpc_url: str,
        sequencer_inbox: str,
        *,
        l2_rpc_url: str,
        rollup: str | None = None,
        clock: Callable[[], float] = time.monotonic,
        poll_interval: float = 0.25,
        max_log_range: int = 2000,
        from_l1_block: int | None = None,
        from_l2_block: int | None = None,
        l2_block_offset: int = 0,
        max_ranges_per_poll: int = 8,
        max_l2_blocks_per_poll: int = 32,
        max_batches_per_poll: int = 16,
        max_tracked_transactions: int = 1_000_000,
        fetch_attempts: int = 5,
        max_problems: int = 50,
        rpc_timeout: float = 10.0,
        full_l2_transactions: bool = True,
    ) -> None:
        if poll_interval <= 0 or max_log_range < 1 or max_ranges_per_poll < 1 or max_l2_blocks_per_poll < 1:
            raise ValueError(
                "poll_interval must be positive; max_log_range, max_ranges_per_poll and "
                "max_l2_blocks_per_poll at least 1"
            )
        self.l1_rpc_url = l1_rpc_url
        self.l2_rpc_url = l2_rpc_url
        self.sequencer_inbox = sequencer_inbox.lower()
        self.rollup = rollup.lower() if rollup else None
        self.clock = clock
        self.poll_interval = poll_interval
        self.max_log_range = max_log_range
        self.max_ranges_per_poll = max_ranges_per_poll
        self.max_l2_blocks_per_poll = max_l2_blocks_per_poll
        self.max_batches_per_poll = max_batches_per_poll
        self.max_tracked_transactions = max_tracked_transactions
        self.fetch_attempts = fetch_attempts
        self.rpc_timeout = rpc_timeout
        #: Read the L2's blocks with full transactions (to leave Arbitrum's internal ones out of the
        #: comparison), or by hashes only, for an L2 that has none.
        self.full_l2_transactions = full_l2_transactions
        self.l2_block_offset = l2_block_offset
        self._from_l1_block = from_l1_block
        self._from_l2_block = from_l2_block
        self._lock = threading.Condition()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._problems: collections.deque[str] = collections.deque(maxlen=max_problems)
        self._problem_count = 0
        self._calls: collections.Counter[str] = collections.Counter()
        # The L2 side.
        self._l2_next = 0
        self._l2_blocks: dict[int, SeenL2Block] = {}
        self._tracked_transactions = 0
        # The L1 side.
        self._l1_next = 0
        self._synced_to = -1
        self._l1_head = -1
        self._log_step = max_log_range
        self._batches: list[SeenBatch] = []
        self._unread: dict[int, int] = {}  # index into _batches → failed attempts to read its transaction
        self._assertions: dict[str, SeenAssertion] = {}
        self._confirmations: list[SeenConfirmation] = []
        self._batch_counts: list[Reading] = []
        self._latest_confirmed: list[Reading] = []
        self._reported_counts: list[Reading] = []
        self._prior_accumulator: tuple[int, str] | None = None
        self._bridge: str | None = None
        self._read_at = -1  # the L1 block the contract state was last read at
        self._started = False

    # -- public ------------------------------------------------------------------------------------
    def start(self) -> L1Monitor:
        """Reads where both chains stand (raising what the nodes answer when they cannot be read) and
        starts the thread."""
        if self._thread is not None:
            raise RuntimeError("the L1 monitor is already started")
        self._begin()
        self._thread = threading.Thread(target=self._run, name="gashammer-l1-monitor", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float | None = None) -> None:
        """Stops the thread after the poll in hand (bounded by the RPC timeouts). Idempotent."""
        self._stop.set()
        thread = self._thread
        if thread is not None:
            thread.join(timeout if timeout is not None else self.rpc_timeout * 4 + self.poll_interval)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def poll(self) -> None:
        """One round of every step (what the thread does each ``poll_interval``); for callers without
        the thread. The first call reads where the chains stand."""
        if not self._started:
            self._begin()
        steps = (
            ("follow L2", self._follow_l2),
            ("follow L1", self._follow_l1),
            ("read batches", self._read_batches),
            ("read state", self._read_state),
        )
        for label, step in steps:
            try:
                step()
            except Exception as exc:  # whatever it is: recorded, and the next poll tries again
                self._problem(f"{label}: {exc}")
        with self._lock:
            self._lock.notify_all()

    def wait_posted(self, last_l2_block: int, timeout: float) -> bool:
        """Waits until every L2 block up to ``last_l2_block`` was seen and posted in a batch the monitor
        read (or the Bridge's message count, read at the L1 block the logs were read to, says so).
        False when ``timeout`` passed first, or the thread is not running and it is not so now."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while not self._posted(last_l2_block):
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not self.running:
                    return False
                self._lock.wait(min(remaining, self.poll_interval * 2))
            return True

    def observation(self) -> L1Observation:
        """What the monitor saw so far, as plain data."""
        with self._lock:
            return L1Observation(
                l1_rpc_url=self.l1_rpc_url,
                sequencer_inbox=self.sequencer_inbox,
                rollup=self.rollup,
                l2_block_offset=self.l2_block_offset,
                from_l1_block=self._from_l1_block if self._from_l1_block is not None else 0,
                synced_to_l1_block=self._synced_to,
                l1_head=self._l1_head,
                first_l2_block=self._from_l2_block if self._from_l2_block is not None else 0,
                l2_blocks=tuple(self._l2_blocks[number] for number in sorted(self._l2_blocks)),
                batches=tuple(self._batches),
                assertions=tuple(self._assertions.values()),
                confirmations=tuple(self._confirmations),
                batch_counts=tuple(self._batch_counts),
                latest_confirmed=tuple(self._latest_confirmed),
                reported_message_counts=tuple(self._reported_counts),
                prior_accumulator=self._prior_accumulator,
                problems=tuple(self._problems),
                problem_count=self._problem_count,
            )

    def calls(self) -> dict[str, int]:
        """How often each JSON-RPC method was called (every one of :data:`READ_METHODS`)."""
        with self._lock:
            return dict(self._calls)

    # -- the thread --------------------------------------------------------------------------------
    def _run(self) -> None:
        while not self._stop.is_set():
            began = time.monotonic()
            self.poll()
            if self._stop.wait(max(0.0, self.poll_interval - (time.monotonic() - began))):
                return

    def _begin(self) -> None:
        if self._from_l1_block is None:
            self._from_l1_block = self._head(self.l1_rpc_url) + 1
        if self._from_l2_block is None:
            self._from_l2_block = self._head(self.l2_rpc_url) + 1
        self._l1_next = self._from_l1_block
        self._synced_to = self._from_l1_block - 1
        self._l2_next = self._from_l2_block
        self._started = True

    def _call(self, url: str, method: str, params: Sequence[Any] = ()) -> Any:
        if method not in READ_METHODS:
            raise RuntimeError(f"the L1 monitor only reads; {method} is not one of its methods")
        with self._lock:
            self._calls[method] += 1
        return call(url, method, params, timeout=self.rpc_timeout)

    def _batch(self, url: str, calls: Sequence[tuple[str, Sequence[Any]]]) -> list[Any]:
        refused = sorted({method for method, _ in calls} - READ_METHODS)
        if refused:
            raise RuntimeError(f"the L1 monitor only reads; {', '.join(refused)} is not one of its methods")
        with self._lock:
            self._calls.update(method for method, _ in calls)
        return call_batch(url, calls, timeout=self.rpc_timeout)

    def _head(self, url: str) -> int:
        return int(self._call(url, "eth_blockNumber"), 16)

    def _problem(self, text: str) -> None:
        with self._lock:
            self._problems.append(text)
            self._problem_count += 1

    # -- 1. the L2 ---------------------------------------------------------------------------------
    def _follow_l2(self) -> None:
        head = self._head(self.l2_rpc_url)
        first = self._l2_next
        last = min(head, first + self.max_l2_blocks_per_poll - 1)
        if last < first:
            return
        numbers = range(first, last + 1)
        answers = self._batch(
            self.l2_rpc_url,
            [("eth_getBlockByNumber", [hex(number), self.full_l2_transactions]) for number in numbers],
        )
        seen_at = self.clock()
        for number, answer in zip(numbers, answers, strict=True):
            if isinstance(answer, Exception) or not isinstance(answer, dict):
                self._problem(f"follow L2: block {number} not returned ({str(answer)[:80]})")
                return  # asked again from here at the next poll
            count = len(answer.get("transactions") or ())
            keep = self._tracked_transactions + count <= self.max_tracked_transactions
            block = l2_block_from_json(answer, seen_at, keep_hashes=keep)
            if block.number != number:
                self._problem(f"follow L2: asked for block {number}, got {block.number}")
                return
            with self._lock:
                previous = self._l2_blocks.get(number - 1)
                if previous is not None and block.parent_hash != previous.hash:
                    self._problems.append(
                        f"follow L2: block {number}'s parent {block.parent_hash} is not block {number - 1} "
                        f"as first seen ({previous.hash}): the L2 reorganised"
                    )
                    self._problem_count += 1
                if keep:
                    self._tracked_transactions += count
                elif self._tracked_transactions <= self.max_tracked_transactions:
                    self._tracked_transactions = self.max_tracked_transactions + 1
                    self._problems.append(
                        f"follow L2: over {self.max_tracked_transactions:,} transactions tracked; from L2 "
                        f"block {number} on only counted, so their batch contents are not compared"
                    )
                    self._problem_count += 1
                self._l2_blocks[number] = block
                self._l2_next = number + 1

    # -- 2. the L1 logs ----------------------------------------------------------------------------
    def _follow_l1(self) -> None:
        head = self._head(self.l1_rpc_url)
        with self._lock:
            self._l1_head = max(self._l1_head, head)
        addresses = [self.sequencer_inbox] + ([self.rollup] if self.rollup else [])
        topics = [[BATCH_DELIVERED_TOPIC, ASSERTION_CREATED_TOPIC, ASSERTION_CONFIRMED_TOPIC]]
        for first, last in log_ranges(self._l1_next, head, self._log_step, self.max_ranges_per_poll):
            query = {"fromBlock": hex(first), "toBlock": hex(last), "address": addresses, "topics": topics}
            try:
                logs = self._call(self.l1_rpc_url, "eth_getLogs", [query])
            except RpcError as exc:
                # Nodes cap a query by blocks or by results: ask for half as many blocks next time.
                self._log_step = max(1, (last - first + 1) // 2)
                self._problem(
                    f"follow L1: eth_getLogs over L1 blocks {first}..{last} refused ({exc}); "
                    f"next ranges are at most {self._log_step} blocks"
                )
                return
            seen_at = self.clock()
            ordered = sorted(
                (log for log in logs or () if not log.get("removed")),
                key=lambda log: (int(log["blockNumber"], 16), int(log["logIndex"], 16)),
            )
            for log in ordered:
                self._take_log(log, seen_at)
            with self._lock:
                self._l1_next = last + 1
                self._synced_to = last

    def _take_log(self, log: Mapping[str, Any], seen_at: float) -> None:
        address = str(log.get("address", "")).lower()
        topic = (log.get("topics") or [""])[0]
        try:
            if address == self.sequencer_inbox and topic == BATCH_DELIVERED_TOPIC:
                batch = batch_from_log(log, seen_at)
                with self._lock:
                    self._unread[len(self._batches)] = 0
                    self._batches.append(batch)
            elif address == self.rollup and topic == ASSERTION_CREATED_TOPIC:
                assertion = assertion_from_log(log, seen_at)
                with self._lock:
                    if assertion.assertion_hash in self._assertions:
                        self._problems.append(
                            f"follow L1: assertion {assertion.assertion_hash} created twice"
                        )
                        self._problem_count += 1
                    else:
                        self._assertions[assertion.assertion_hash] = assertion
            elif address == self.rollup and topic == ASSERTION_CONFIRMED_TOPIC:
                confirmation = SeenConfirmation(
                    str(log["topics"][1]).lower(),
                    int(log["blockNumber"], 16),
                    int(log["logIndex"], 16),
                    seen_at,
                )
                with self._lock:
                    self._confirmations.append(confirmation)
                    created = self._assertions.get(confirmation.assertion_hash)
                    if created is not None and created.confirmed_l1_block is None:
                        self._assertions[confirmation.assertion_hash] = dataclasses.replace(
                            created, confirmed_l1_block=confirmation.l1_block, confirmed_at=seen_at
                        )
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            self._problem(
                f"follow L1: a log in L1 block {log.get('blockNumber')} (tx {log.get('transactionHash')}) "
                f"does not decode: {exc}"
            )

    # -- 3. the batches' transactions ----------------------------------------------------------------
    def _read_batches(self) -> None:
        with self._lock:
            todo = sorted(self._unread)[: self.max_batches_per_poll]
            batches = [self._batches[index] for index in todo]
        if not todo:
            return
        calls: list[tuple[str, Sequence[Any]]] = []
        for batch in batches:
            calls += [
                ("eth_getTransactionByHash", [batch.l1_tx]),
                ("eth_getTransactionReceipt", [batch.l1_tx]),
            ]
        answers = self._batch(self.l1_rpc_url, calls)
        for offset, (index, batch) in enumerate(zip(todo, batches, strict=True)):
            tx, receipt = answers[2 * offset], answers[2 * offset + 1]
            if isinstance(tx, dict) and isinstance(receipt, dict):
                try:
                    done = read_batch(batch, tx, receipt, sequencer_inbox=self.sequencer_inbox)
                except Exception as exc:  # an answer of an unexpected shape: this batch, not the thread
                    done = _unreadable(batch, f"its transaction does not read: {exc!r}")
            else:
                why = tx if not isinstance(tx, dict) else receipt
                with self._lock:
                    self._unread[index] += 1
                    attempts = self._unread[index]
                if attempts < self.fetch_attempts:
                    self._problem(
                        f"read batch {batch.sequence_number}: transaction {batch.l1_tx} not returned "
                        f"({str(why)[:80]}); asked again at the next poll"
                    )
                    continue
                done = _unreadable(
                    batch, f"its transaction {batch.l1_tx} was not returned in {attempts} attempts"
                )
            if done.decode_problem == UNREADABLE:
                self._problem(f"batch {batch.sequence_number}: {done.decode_error}")
            with self._lock:
                self._batches[index] = done
                self._unread.pop(index, None)

    # -- 4. the contracts' state ---------------------------------------------------------------------
    def _read_state(self) -> None:
        with self._lock:
            at = self._synced_to
            first_batch = self._batches[0] if self._batches else None
        if at < 0 or at == self._read_at:
            return
        if self._bridge is None:
            answer = self._eth_call(self.sequencer_inbox, call_data("bridge()"), "latest")
            self._bridge = str(decode(["address"], answer)[0]).lower()
        reads: list[tuple[str, str, bytes, str]] = [
            ("batchCount()", self.sequencer_inbox, call_data("batchCount()"), "uint256"),
            (
                "sequencerReportedSubMessageCount()",
                self._bridge,
                call_data("sequencerReportedSubMessageCount()"),
                "uint256",
            ),
        ]
        if self.rollup is not None:
            reads.append(("latestConfirmed()", self.rollup, call_data("latestConfirmed()"), "bytes32"))
        wants_prior = (
            first_batch is not None and first_batch.sequence_number > 0 and self._prior_accumulator is None
        )
        if wants_prior:
            assert first_batch is not None
            prior = first_batch.sequence_number - 1
            reads.append(
                (
                    "sequencerInboxAccs",
                    self._bridge,
                    call_data("sequencerInboxAccs(uint256)", prior),
                    "bytes32",
                )
            )
        answers = self._batch(
            self.l1_rpc_url,
            [("eth_call", [{"to": to, "data": "0x" + data.hex()}, hex(at)]) for _, to, data, _ in reads],
        )
        seen_at = self.clock()
        complete = True
        for (name, _, _, returns), answer in zip(reads, answers, strict=True):
            if isinstance(answer, Exception) or not isinstance(answer, str):
                self._problem(f"read state: {name} at L1 block {at} failed ({str(answer)[:80]})")
                complete = False
                continue
            value = decode([returns], bytes.fromhex(answer[2:]))[0]
            shown: int | str = "0x" + bytes(value).hex() if returns == "bytes32" else int(value)
            with self._lock:
                if name == "sequencerInboxAccs":
                    assert first_batch is not None
                    self._prior_accumulator = (first_batch.sequence_number - 1, str(shown))
                    continue
                series = {
                    "batchCount()": self._batch_counts,
                    "sequencerReportedSubMessageCount()": self._reported_counts,
                    "latestConfirmed()": self._latest_confirmed,
                }[name]
                if not series or series[-1].value != shown:
                    series.append(Reading(at, shown, seen_at))
        if complete:
            self._read_at = at

    def _eth_call(self, to: str, data: bytes, block: str) -> bytes:
        answer = self._call(self.l1_rpc_url, "eth_call", [{"to": to, "data": "0x" + data.hex()}, block])
        return bytes.fromhex(str(answer)[2:])

    # -- waiting -------------------------------------------------------------------------------------
    def _posted(self, last_l2_block: int) -> bool:
        """Under the lock: every L2 block up to ``last_l2_block`` seen, and its message posted."""
        if self._l2_next <= last_l2_block or self._unread:
            return False
        message = last_l2_block - self.l2_block_offset
        covered = max(
            (batch.new_message_count for batch in self._batches if batch.new_message_count is not None),
            default=0,
        )
        if covered > message:
            return True
        reported = self._reported_counts[-1].value if self._reported_counts else 0
        return isinstance(reported, int) and reported > message and self._read_at >= self._synced_to
