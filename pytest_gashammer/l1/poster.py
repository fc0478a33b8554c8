"""The devnet's batch poster: L2 blocks → sequencer batches on the L1, and assertions on the rollup.

Every ``interval`` a daemon thread takes the L2 blocks made since the last batch (at most
``max_blocks_per_batch``; a backlog is posted batch after batch without waiting), turns them into
batch data with ``encode`` (the Nitro batch codec plugs in there: it gets the blocks as
``eth_getBlockByNumber(n, true)`` returns them, or with transaction hashes only when
``full_transactions`` is false, and returns the bytes, header flag first), and posts
them with the 6-argument ``addSequencerL2BatchFromOrigin``:

- ``sequenceNumber`` is the inbox's ``batchCount()`` (read at start, then counted);
- L2 block ``n`` is message ``n`` (block 0, the genesis, is message 0 and is never posted), so a batch
  of blocks ``a..b`` has ``prevMessageCount = a`` and ``newMessageCount = b + 1``, and each batch's
  ``prevMessageCount`` is the previous one's ``newMessageCount``, as the Bridge requires;
- ``afterDelayedMessagesRead`` stays 0: the devnet's L2 reads no delayed messages (each batch's
  batch-posting report lands in the delayed inbox all the same), and no gas refunder is used.

Every ``assert_every`` batches it creates an assertion on the rollup (the stand-in of
``l1/solidity``) up to the inbox position the rollup asks for next (what the real BoLD validator
does: an assertion reads exactly to its parent's ``nextInboxPosition``), naming the last L2 block of
that batch, and confirms each assertion in order once it is ``confirm_delay`` seconds old and the
rollup's ``confirmPeriodBlocks`` have passed.

Each batch and assertion is recorded as plain data (:class:`BatchRecord`, :class:`AssertionRecord`),
at most ``max_records`` of each. A failure (the L1 or the L2 not answering, a revert) is recorded,
the poster re-reads where the inbox stands and tries again at the next tick; ``failure_limit``
failures in a row stop it, with :attr:`BatchPoster.error` saying why.

A fault set on a running poster (:attr:`BatchPoster.fault`, any object with the
:class:`PosterHooks` methods; the lying posters of ``pytest_gashammer.fault.poster_faults``) may hold
a batch back, post other data than the blocks' honest encoding under the same message counts, or
have the same data posted again as the next batch, its message counts advanced past the blocks it
repeats (those blocks are then never posted). Without one the poster is honest.
"""

from __future__ import annotations

import collections
import dataclasses
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

from pytest_gashammer.chain.rpc import call as rpc_call
from pytest_gashammer.chain.rpc import call_batch
from pytest_gashammer.l1.abi import call_data, decode, event_topic, selector
from pytest_gashammer.l1.contracts import (
    ADD_BATCH,
    ASSERTION_CREATED,
    MAX_DATA_SIZE,
    POSTING_ERRORS,
    SEQUENCER_BATCH_DELIVERED,
)
from pytest_gashammer.l1.sender import L1Account, L1Error

BATCH_DELIVERED_TOPIC = "0x" + event_topic(SEQUENCER_BATCH_DELIVERED).hex()
ASSERTION_CREATED_TOPIC = "0x" + event_topic(ASSERTION_CREATED).hex()
ZERO_ADDRESS = "0x" + "00" * 20
ZERO_HASH = "0x" + "00" * 32

#: What ``encode`` gets: the L2 blocks of one batch, oldest first, with full transaction objects.
Encoder = Callable[[list[dict[str, Any]]], bytes]


@dataclasses.dataclass(frozen=True)
class BatchRecord:
    """One posted batch."""

    sequence_number: int
    first_block: int
    last_block: int
    prev_message_count: int
    new_message_count: int
    data_bytes: int
    l1_gas: int
    l1_block: int
    tx_hash: str
    before_acc: str
    after_acc: str
    last_block_hash: str
    #: Wall-clock time (``time.time()``) the receipt was seen.
    posted_at: float
    #: A fault's duplicate: the sequence number of the batch whose data this one posts again (its
    #: blocks are that batch's; its message counts are the next ones), or None.
    duplicate_of: int | None = None


@dataclasses.dataclass(frozen=True)
class AssertionRecord:
    """One assertion made on the rollup, and its confirmation once made."""

    assertion_hash: str
    parent_hash: str
    #: Batches read (the inbox position): the assertion covers batches ``0 .. inbox_position - 1``.
    inbox_position: int
    l2_block: int
    l2_block_hash: str
    created_l1_block: int
    created_tx: str
    created_at: float
    confirmed_l1_block: int | None = None
    confirmed_tx: str | None = None
    confirmed_at: float | None = None


class PosterHooks(Protocol):
    """What a fault set on a running poster (:attr:`BatchPoster.fault`) may change, batch by batch.

    The poster calls them on the thread that posts (its own, or the caller's of
    :meth:`BatchPoster.post_once`), for each batch in this order: :meth:`hold_seconds` and
    :meth:`batch_data` before the batch is sent, :meth:`posted` once it is on the L1, then
    :meth:`post_again`. A batch that fails is asked about again when it is retried, under the same
    sequence number.
    """

    def hold_seconds(self, sequence_number: int, blocks: list[dict[str, Any]]) -> float:
        """Seconds to hold the batch of ``blocks`` before sending it (0: send it now)."""
        ...

    def batch_data(self, sequence_number: int, blocks: list[dict[str, Any]], data: bytes) -> bytes | None:
        """The data to post instead of ``data`` (the honest encoding of ``blocks``), or None for ``data``.

        The message counts stay those of ``blocks``.
        """
        ...

    def posted(self, record: BatchRecord) -> None:
        """``record`` is on the L1 (a repeat carries :attr:`BatchRecord.duplicate_of`)."""
        ...

    def post_again(self, record: BatchRecord) -> bool:
        """Whether to post ``record``'s data again as the next batch (asked of every batch but repeats)."""
        ...


@dataclasses.dataclass(frozen=True)
class _Repeat:
    """A batch a fault asked to be posted again: its blocks and data, due as batch ``sequence_number``."""

    sequence_number: int
    blocks: list[dict[str, Any]]
    data: bytes
    duplicate_of: int
    fault: PosterHooks


def fit_to_size(
    blocks: list[dict[str, Any]], encode: Encoder, max_data_size: int
) -> tuple[list[dict[str, Any]], bytes]:
    """The longest halving of ``blocks`` (``n``, ``n/2``, ...) whose encoding fits ``max_data_size``,
    and that encoding; the blocks left out go in the next batch.

    Halving rather than one block less: encoding costs about as much as the blocks, so this bounds a
    too-large batch to ``log2(n)`` encodings. A single block that does not fit cannot be posted.
    """
    while True:
        data = bytes(encode(blocks))
        if not data:
            raise L1Error("the batch encoder returned no bytes (a batch starts with its header flag)")
        if len(data) <= max_data_size:
            return blocks, data
        if len(blocks) == 1:
            raise L1Error(
                f"L2 block {int(blocks[0]['number'], 16)} encodes to {len(data)} bytes, over the "
                f"SequencerInbox's maxDataSize {max_data_size}"
            )
        blocks = blocks[: len(blocks) // 2]


class BatchPoster:
    """Posts the L2 at ``l2_rpc_url`` to the SequencerInbox at ``sequencer_inbox`` from ``poster_key``.

    ``rollup`` (the stand-in) enables assertions; without it only batches are posted. Use
    :meth:`start` / :meth:`stop`, or :meth:`post_once` and :meth:`settle_assertions` by hand.
    The constructor already reads where the inbox stands, so a wrong address or URL fails here.
    """

    def __init__(
        self,
        l1_rpc_url: str,
        sequencer_inbox: str,
        poster_key: str,
        *,
        l2_rpc_url: str,
        encode: Encoder,
        rollup: str | None = None,
        interval: float = 1.0,
        max_blocks_per_batch: int = 256,
        max_data_size: int = MAX_DATA_SIZE,
        assert_every: int = 5,
        confirm_delay: float = 2.0,
        first_block: int = 1,
        max_records: int = 100_000,
        failure_limit: int = 5,
        rpc_timeout: float = 10.0,
        receipt_timeout: float = 30.0,
        full_transactions: bool = True,
    ) -> None:
        if interval <= 0 or max_blocks_per_batch < 1 or assert_every < 1 or first_block < 1:
            raise ValueError(
                "interval must be positive; max_blocks_per_batch, assert_every and first_block at least 1"
            )
        self.sequencer_inbox = sequencer_inbox.lower()
        self.rollup = rollup.lower() if rollup else None
        self.l2_rpc_url = l2_rpc_url
        self.interval = interval
        self.max_blocks_per_batch = max_blocks_per_batch
        self.max_data_size = max_data_size
        self.assert_every = assert_every
        self.confirm_delay = confirm_delay
        self.failure_limit = failure_limit
        self.rpc_timeout = rpc_timeout
        #: Whether ``encode`` gets the blocks with full transaction objects (else with hashes only).
        self.full_transactions = full_transactions
        self._encode = encode
        self._first_block = first_block
        self._account = L1Account(
            l1_rpc_url,
            poster_key,
            errors={selector(signature): signature for signature in POSTING_ERRORS},
            rpc_timeout=rpc_timeout,
            receipt_timeout=receipt_timeout,
        )
        self.address = self._account.address
        self._batches: collections.deque[BatchRecord] = collections.deque(maxlen=max_records)
        self._assertions: collections.deque[AssertionRecord] = collections.deque(maxlen=max_records)
        self._failures: collections.deque[str] = collections.deque(maxlen=20)
        self._failure_count = 0
        self._records_lock = threading.Lock()
        self._work_lock = threading.Lock()  # one tick at a time: the thread's or a caller's
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._error: str | None = None
        # Where the inbox stands (re-read after every failure).
        self._sequence_number = 0
        self._next_block = first_block
        self._last_block_hash: str | None = None
        # Last L2 block (number, hash, sendRoot) of each batch not yet asserted, by sequence number.
        self._batch_tips: dict[int, tuple[int, str, str]] = {}
        self._since_assertion = 0
        self._pending: collections.deque[AssertionRecord] = collections.deque()
        self._confirm_period_blocks = 0
        #: A fault set on the running poster (see :class:`PosterHooks`); None: an honest poster.
        self.fault: PosterHooks | None = None
        self._repeat: _Repeat | None = None
        self._resync()

    # -- public ------------------------------------------------------------------------------------
    def start(self) -> BatchPoster:
        if self._thread is not None:
            raise RuntimeError("the batch poster is already started")
        self._thread = threading.Thread(target=self._run, name="gashammer-batch-poster", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float | None = None) -> None:
        """Stops the thread after the batch in hand (bounded by the receipt timeout). Idempotent."""
        self._stop.set()
        thread = self._thread
        if thread is not None:
            thread.join(
                timeout if timeout is not None else self._account.receipt_timeout + self.rpc_timeout * 4
            )

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def error(self) -> str | None:
        """Why the poster gave up (``failure_limit`` failures in a row), or None."""
        return self._error

    def failures(self) -> list[str]:
        """The latest failures, oldest first (at most 20), whether or not the poster recovered."""
        with self._records_lock:
            return list(self._failures)

    @property
    def failure_count(self) -> int:
        """Every failure recorded since the start (:meth:`failures` keeps the latest 20)."""
        with self._records_lock:
            return self._failure_count

    def batches(self) -> list[BatchRecord]:
        with self._records_lock:
            return list(self._batches)

    def assertions(self) -> list[AssertionRecord]:
        with self._records_lock:
            return list(self._assertions)

    def post_once(self) -> BatchRecord | None:
        """Posts the L2 blocks made since the last batch as one batch (None when there are none)."""
        with self._work_lock:
            record = self._post_batch()
            if record is not None:
                self._maybe_assert()
            return record

    def settle_assertions(self) -> list[AssertionRecord]:
        """Confirms the pending assertions that are due; the ones confirmed now."""
        with self._work_lock:
            return self._confirm_due()

    # -- the thread --------------------------------------------------------------------------------
    def _run(self) -> None:
        consecutive = 0
        next_due = time.monotonic()
        while not self._stop.wait(max(0.0, next_due - time.monotonic())):
            backlog = False
            try:
                with self._work_lock:
                    record = self._post_batch()
                    if record is not None:
                        self._maybe_assert()
                        backlog = record.last_block - record.first_block + 1 >= self.max_blocks_per_batch
                    self._confirm_due()
                consecutive = 0
            except Exception as exc:  # whatever it is: recorded, and the next tick tries again
                consecutive += 1
                with self._records_lock:
                    self._failures.append(str(exc))
                    self._failure_count += 1
                if consecutive >= self.failure_limit:
                    self._error = (
                        f"the batch poster stopped after {consecutive} failures in a row; last: {exc}"
                    )
                    return
                try:
                    with self._work_lock:
                        self._resync()
                except Exception as again:  # recorded; the next tick tries again
                    with self._records_lock:
                        self._failures.append(f"re-reading the inbox: {again}")
                        self._failure_count += 1
            now = time.monotonic()
            # A full batch means more blocks are waiting: post again at once. Late: keep the pace from now.
            next_due = now if backlog else max(next_due + self.interval, now)

    # -- steps -------------------------------------------------------------------------------------
    def _read(self, to: str, signature: str, returns: str, *arguments: Any) -> Any:
        answer = self._account.call(to, call_data(signature, *arguments), what=f"reading {signature}")
        return decode([returns], answer)[0]

    def _resync(self) -> None:
        """Reads where the inbox and the rollup stand (at start and after a failure)."""
        self._account.forget_nonce()  # the node's count wins after a failure
        self._sequence_number = self._read(self.sequencer_inbox, "batchCount()", "uint256")
        bridge = self._read(self.sequencer_inbox, "bridge()", "address")
        reported = self._read(bridge, "sequencerReportedSubMessageCount()", "uint256")
        self._next_block = max(reported, self._first_block)
        self._last_block_hash = None
        if self.rollup is not None:
            self._confirm_period_blocks = self._read(self.rollup, "confirmPeriodBlocks()", "uint64")

    def _l2_blocks(self) -> list[dict[str, Any]]:
        head = int(rpc_call(self.l2_rpc_url, "eth_blockNumber", [], timeout=self.rpc_timeout), 16)
        last = min(head, self._next_block + self.max_blocks_per_batch - 1)
        if last < self._next_block:
            return []
        numbers = range(self._next_block, last + 1)
        answers = call_batch(
            self.l2_rpc_url,
            [("eth_getBlockByNumber", [hex(number), self.full_transactions]) for number in numbers],
            timeout=self.rpc_timeout,
        )
        blocks: list[dict[str, Any]] = []
        for number, answer in zip(numbers, answers, strict=True):
            if isinstance(answer, Exception):
                raise answer
            if not isinstance(answer, dict) or int(answer["number"], 16) != number:
                raise L1Error(f"the L2 did not return block {number} (got {str(answer)[:80]})")
            blocks.append(answer)
        parent = self._last_block_hash
        for block in blocks:
            if parent is not None and block["parentHash"] != parent:
                raise L1Error(
                    f"L2 block {int(block['number'], 16)} does not extend the last posted block {parent}: "
                    "the L2 reorganised under the batch poster"
                )
            parent = block["hash"]
        return blocks

    def _post_batch(self) -> BatchRecord | None:
        repeat = self._repeat
        if repeat is not None and repeat.sequence_number != self._sequence_number:
            repeat = self._repeat = None  # the inbox moved on (re-read after a failure): nothing to repeat
        if repeat is not None:
            messages = self._next_block
            record = self._deliver(
                repeat.blocks, repeat.data, messages, messages + len(repeat.blocks), repeat.fault, repeat
            )
            self._repeat = None
            return record
        blocks = self._l2_blocks()
        if not blocks:
            return None
        blocks, data = fit_to_size(blocks, self._encode, self.max_data_size)
        fault = self.fault
        if fault is not None:
            hold = fault.hold_seconds(self._sequence_number, blocks)
            if hold > 0 and self._stop.wait(hold):
                return None  # stopped while holding it: the batch was never sent
            changed = fault.batch_data(self._sequence_number, blocks, data)
            data = data if changed is None else changed
        first, last = int(blocks[0]["number"], 16), int(blocks[-1]["number"], 16)
        record = self._deliver(blocks, data, first, last + 1, fault)
        if fault is not None and fault.post_again(record):
            self._repeat = _Repeat(record.sequence_number + 1, blocks, data, record.sequence_number, fault)
        return record

    def _deliver(
        self,
        blocks: list[dict[str, Any]],
        data: bytes,
        prev_message_count: int,
        new_message_count: int,
        fault: PosterHooks | None,
        repeat: _Repeat | None = None,
    ) -> BatchRecord:
        """Posts ``data`` as the next batch, claiming messages ``prev_message_count ..
        new_message_count - 1``, and records it."""
        first, last = int(blocks[0]["number"], 16), int(blocks[-1]["number"], 16)
        sequence = self._sequence_number
        what = f"batch {sequence} (L2 blocks {first}..{last})"
        if repeat is not None:
            what += f", batch {repeat.duplicate_of} again"
        calldata = call_data(
            ADD_BATCH, sequence, data, 0, ZERO_ADDRESS, prev_message_count, new_message_count
        )
        receipt = self._account.transact(self.sequencer_inbox, calldata, what=f"posting {what}")
        delivered = [
            log
            for log in receipt["logs"]
            if log["address"].lower() == self.sequencer_inbox and log["topics"][0] == BATCH_DELIVERED_TOPIC
        ]
        if len(delivered) != 1 or int(delivered[0]["topics"][1], 16) != sequence:
            raise L1Error(f"posting {what}: the receipt holds no SequencerBatchDelivered for it")
        tip = blocks[-1]
        record = BatchRecord(
            sequence_number=sequence,
            first_block=first,
            last_block=last,
            prev_message_count=prev_message_count,
            new_message_count=new_message_count,
            data_bytes=len(data),
            l1_gas=int(receipt["gasUsed"], 16),
            l1_block=int(receipt["blockNumber"], 16),
            tx_hash=receipt["transactionHash"],
            before_acc=delivered[0]["topics"][2],
            after_acc=delivered[0]["topics"][3],
            last_block_hash=tip["hash"],
            posted_at=time.time(),
            duplicate_of=None if repeat is None else repeat.duplicate_of,
        )
        self._sequence_number = sequence + 1
        self._next_block = new_message_count
        # After a repeat the next block posted follows no block this poster posted: nothing to link to.
        self._last_block_hash = tip["hash"] if repeat is None else None
        if self.rollup is not None:
            self._batch_tips[sequence] = (last, tip["hash"], tip.get("sendRoot") or ZERO_HASH)
            self._since_assertion += 1
        with self._records_lock:
            self._batches.append(record)
        if fault is not None:
            fault.posted(record)
        return record

    def _maybe_assert(self) -> AssertionRecord | None:
        if self.rollup is None or self._since_assertion < self.assert_every:
            return None
        position = min(self._read(self.rollup, "nextInboxPosition()", "uint64"), self._sequence_number)
        tip = self._batch_tips.get(position - 1)
        if tip is None:  # a batch this poster did not post (an earlier session's): nothing to name
            return None
        block, block_hash, send_root = tip
        receipt = self._account.transact(
            self.rollup,
            call_data("createAssertion(uint64,bytes32,bytes32)", position, block_hash, send_root),
            what=f"asserting batches ..{position - 1} (L2 block {block})",
        )
        events = [
            log
            for log in receipt["logs"]
            if log["address"].lower() == self.rollup and log["topics"][0] == ASSERTION_CREATED_TOPIC
        ]
        if len(events) != 1:
            raise L1Error(f"asserting batches ..{position - 1}: the receipt holds no AssertionCreated")
        record = AssertionRecord(
            assertion_hash=events[0]["topics"][1],
            parent_hash=events[0]["topics"][2],
            inbox_position=position,
            l2_block=block,
            l2_block_hash=block_hash,
            created_l1_block=int(receipt["blockNumber"], 16),
            created_tx=receipt["transactionHash"],
            created_at=time.time(),
        )
        self._since_assertion = 0
        for sequence in [number for number in self._batch_tips if number < position]:
            del self._batch_tips[sequence]
        self._pending.append(record)
        with self._records_lock:
            self._assertions.append(record)
        return record

    def _confirm_due(self) -> list[AssertionRecord]:
        confirmed: list[AssertionRecord] = []
        if not self._pending:
            return confirmed
        l1_block = self._account.block_number()
        while self._pending:
            oldest = self._pending[0]
            if time.time() - oldest.created_at < self.confirm_delay:
                break
            if l1_block < oldest.created_l1_block + self._confirm_period_blocks:
                break
            receipt = self._account.transact(
                self.rollup,
                call_data("confirmAssertion(bytes32)", oldest.assertion_hash),
                what=f"confirming the assertion of batches ..{oldest.inbox_position - 1}",
            )
            done = dataclasses.replace(
                oldest,
                confirmed_l1_block=int(receipt["blockNumber"], 16),
                confirmed_tx=receipt["transactionHash"],
                confirmed_at=time.time(),
            )
            self._pending.popleft()
            with self._records_lock:
                self._replace_assertion(done)
            confirmed.append(done)
        return confirmed

    def _replace_assertion(self, done: AssertionRecord) -> None:
        for index in range(len(self._assertions) - 1, -1, -1):
            if self._assertions[index].assertion_hash == done.assertion_hash:
                self._assertions[index] = done
                return
