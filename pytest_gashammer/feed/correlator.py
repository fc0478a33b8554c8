"""Match the transactions an edge sent against the sequencer feed: feed latency and feed-vs-chain checks.

Why: the feed is the earliest moment a Nitro chain commits to a transaction's place, so "intended send
time → feed arrival" is the latency a user of a sequencer actually sees, and the feed's promises (each
transaction once, in block order, under the block hash the chain later shows) are invariants a load
test can check.

It is built for the hot path: at 10k tx/s the whole feed path (decode and correlate) has to stay under
a quarter of a core, so the correlator keeps one dict (hash → row) and typed columns indexed by row,
creates no object per transaction, and looks feed hashes up in the hex form the codec already produced
(the 32-byte hash is converted to hex once, at registration, instead of once per feed appearance).

Feed latency of a row = arrival of the first feed frame that carried it − its intended send time, both
``time.monotonic_ns()`` of the process that runs the edge and the feed client, so it is exact to the
nanosecond clock, not to the millisecond.

Bounded memory for soak runs: the columns hold rows ``base..`` only. :meth:`Correlator.settle` checks
final chain blocks against the feed as the run goes and drops the messages it has placed;
:meth:`Correlator.forget_before` drops rows whose blocks have been settled; :meth:`Correlator.findings`
gives what the whole run found. For the same run this equals one :meth:`Correlator.check_against_chain`
over every block, as long as the caller keeps two promises (see :meth:`Correlator.settle`): every feed
message that concerns a block has arrived before the block is settled, and a row is forgotten only once
the block that included it (if any) is settled and the feed will carry it no more.

Not thread-safe: call every method from one thread (the edge's event loop, where the submitter, the
:class:`~pytest_gashammer.feed.client.FeedClient` and the settling all run).
"""

from __future__ import annotations

import bisect
import copy
import dataclasses
import math
from array import array
from collections import deque
from collections.abc import Sequence
from typing import Any

from pytest_gashammer.feed.codec import FeedMessage

__all__ = ["NOT_YET", "ChainBlock", "Correlator", "FeedChainFindings"]

NOT_YET = -1
_LISTED = 20  # first offending items kept in findings
_MAX_APPEARANCES = 127
_MAX_DUPLICATE_ROWS = 10_000
_HASH_BYTES = 32

ChainBlock = tuple[int, str | bytes, Sequence[str | bytes]]
"""``(number, block hash, [tx hashes in block order])`` as the chain reports it."""


def _hex(value: str | bytes) -> str:
    if isinstance(value, bytes | bytearray | memoryview):
        return "0x" + bytes(value).hex()
    return "0x" + (value[2:] if value[:2] in ("0x", "0X") else value).lower()


def _keep(listed: list[tuple[Any, Any]], key: Any, item: Any) -> None:
    """Keep ``(key, item)`` in ``listed`` if it is among the first :data:`_LISTED` by key (keys unique)."""
    if len(listed) < _LISTED or key < listed[-1][0]:
        bisect.insort(listed, (key, item), key=lambda pair: pair[0])
        del listed[_LISTED:]


@dataclasses.dataclass(frozen=True)
class FeedChainFindings:
    """What :meth:`Correlator.check_against_chain` (or :meth:`Correlator.findings`) found: counts, and
    the first offending items.

    ``ok`` is True when every registered transaction the chain included appeared in the feed exactly
    once, in block order, and every checked message's block hash is the chain's.
    """

    blocks_checked: int
    messages_checked: int
    messages_unverified: int
    included: int
    in_feed: int
    missing_from_feed: int
    duplicated_in_feed: int
    feed_only: int
    order_violations: int
    hash_mismatches: int
    messages_spanning_blocks: int
    blocks_missing_from_feed: int
    first_missing_from_feed: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    first_duplicated_in_feed: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    first_feed_only: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    first_order_violations: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    first_hash_mismatches: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    first_messages_spanning_blocks: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    first_blocks_missing_from_feed: list[int] = dataclasses.field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (
            self.missing_from_feed
            or self.duplicated_in_feed
            or self.feed_only
            or self.order_violations
            or self.hash_mismatches
            or self.messages_spanning_blocks
            or self.blocks_missing_from_feed
        )

    def problems(self) -> list[str]:
        """One line per kind of problem, naming the first offender; empty when :attr:`ok`."""
        lines = []
        if self.missing_from_feed:
            first = self.first_missing_from_feed[0]
            lines.append(
                f"{self.missing_from_feed} included transaction(s) never appeared in the feed, first "
                f"{first['tx_hash']} (block {first['block']})"
            )
        if self.duplicated_in_feed:
            first = self.first_duplicated_in_feed[0]
            lines.append(
                f"{self.duplicated_in_feed} transaction(s) appeared in the feed more than once, first "
                f"{first['tx_hash']} ({first['appearances']} times, first in sequence {first['sequence']})"
            )
        if self.feed_only:
            first = self.first_feed_only[0]
            lines.append(
                f"{self.feed_only} transaction(s) appeared in the feed but in none of the chain's blocks, "
                f"first {first['tx_hash']} (sequence {first['sequence']})"
            )
        if self.order_violations:
            first = self.first_order_violations[0]
            lines.append(
                f"{self.order_violations} feed-order violation(s): {first['later_tx']} comes after "
                f"{first['earlier_tx']} on chain (block {first['later_block']} index {first['later_index']}) "
                f"but before it in the feed (sequence {first['later_sequence']} position "
                f"{first['later_position']})"
            )
        if self.hash_mismatches:
            first = self.first_hash_mismatches[0]
            lines.append(
                f"{self.hash_mismatches} feed block hash(es) differ from the chain's, first sequence "
                f"{first['sequence']}: feed {first['feed_hash']}, chain block {first['block']} "
                f"{first['chain_hash']}"
            )
        if self.messages_spanning_blocks:
            first = self.first_messages_spanning_blocks[0]
            lines.append(
                f"{self.messages_spanning_blocks} feed message(s) hold transactions of several blocks, "
                f"first sequence {first['sequence']} (blocks {first['blocks']})"
            )
        if self.blocks_missing_from_feed:
            lines.append(
                f"{self.blocks_missing_from_feed} chain block(s) inside the feed's range have no feed "
                f"message, first {self.first_blocks_missing_from_feed[0]}"
            )
        return lines

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class _Block:
    """A settled block whose standing (named by a message, named with a wrong hash, neither) may still
    change: ``refs`` messages are placed on it for now but could still move elsewhere."""

    __slots__ = ("mismatched", "named", "number", "refs")

    def __init__(self, number: int) -> None:
        self.number = number
        self.named = False
        self.mismatched = False
        self.refs = 0


class _Message:
    """What the check knows of one feed message not yet resolved.

    A message is placed on the block of the first of its transactions the chain included (``a``), else
    on the block whose hash it names (``b``), else on the block its sequence number stands for (``c``,
    :meth:`Correlator.block_of`): the rules of :meth:`Correlator.check_against_chain`, learnt one
    settled block at a time.
    """

    __slots__ = ("a", "a_hash", "at", "b", "blocks", "born", "c", "c_hash", "counted", "feed_hash", "seq")

    def __init__(self, seq: int, feed_hash: str | None, born: int) -> None:
        self.seq = seq
        self.feed_hash = feed_hash
        self.born = born  # blocks settled when the check first saw it
        self.a: int | None = None
        self.a_hash = ""
        self.blocks: set[int] | None = None  # every block of its transactions, once there are two
        self.b: int | None = None
        self.c: int | None = None
        self.c_hash = ""
        self.at: _Block | None = None  # the block it is placed on for now (not final)
        self.counted = False  # its placement is final and counted


class _Check:
    """The feed-vs-chain check of one correlator, accumulated one settled block at a time.

    ``placed`` (per row of the correlator's window: included in a settled block), ``pending`` (sequence
    → rows in the feed not yet placed) and ``messages`` (sequence → block hash of messages not yet
    resolved) are the correlator's own when ``live`` (then resolved messages are dropped from it), or
    copies for a one-shot check.
    """

    def __init__(
        self,
        *,
        offset: int,
        horizon: int,
        placed: bytearray,
        pending: dict[int, int],
        messages: dict[int, str | None],
        live: bool,
    ) -> None:
        self.offset = offset
        self.horizon = horizon
        self.placed = placed
        self.pending = pending
        self.messages = messages
        self.live = live
        #: Set on the copy that :meth:`Correlator.findings` finishes: it changes nothing it shares.
        self.frozen = False
        self.blocks_checked = self.messages_checked = self.messages_unverified = 0
        self.included = self.in_feed = self.missing = self.duplicated = self.feed_only = 0
        self.order_violations = self.hash_mismatches = self.spanning = self.blocks_missing = 0
        self.first_missing: list[dict[str, Any]] = []
        self.first_duplicated: list[dict[str, Any]] = []
        self.first_feed_only: list[tuple[tuple[int, int, int], dict[str, Any]]] = []
        self.first_order: list[dict[str, Any]] = []
        self.first_mismatches: list[tuple[int, dict[str, Any]]] = []
        self.first_spanning: list[tuple[int, dict[str, Any]]] = []
        self.first_blocks_missing: list[int] = []
        self.open: dict[int, _Message] = {}
        self.unsettled: deque[_Block] = deque()  # settled blocks whose standing may still change
        self.block_at: dict[int, _Block] = {}
        self.last_number: int | None = None
        #: (tx hash, block, index, sequence, position) of the last in-feed row in block order.
        self.last_in_feed: tuple[str, int, int, int, int] | None = None
        self.named_seen = False
        #: Blocks named by no message since the last named one: missing once a later one is named.
        self.run_count = 0
        self.run_numbers: list[int] = []
        self.dirty: set[int] = set()  # messages whose pending rows were forgotten

    def block_of(self, correlator: Correlator, seq: int) -> int:
        """The block sequence number ``seq`` stands for, with this check's offset."""
        return seq + self.offset - correlator.continuations_upto(seq)

    # -- feeding it ------------------------------------------------------------------------------
    def _take_in(self) -> None:
        open_ = self.open
        for seq, feed_hash in self.messages.items():
            if seq not in open_:
                open_[seq] = _Message(seq, feed_hash, self.blocks_checked)

    def settle(self, correlator: Correlator, blocks: Sequence[ChainBlock]) -> None:
        rows, base = correlator._rows, correlator.base
        appearances, sequence, position = correlator.appearances, correlator.sequence, correlator.position
        placed, pending, open_ = self.placed, self.pending, self.open
        self._take_in()
        by_hash: dict[str, list[_Message]] = {}
        by_number: dict[int, list[_Message]] = {}
        for message in open_.values():
            if message.feed_hash is not None:
                by_hash.setdefault(message.feed_hash, []).append(message)
            if message.c is None:
                by_number.setdefault(self.block_of(correlator, message.seq), []).append(message)
        # Block hashes some message named: a block one of them names is not also compared, by number,
        # with a message naming a block the check does not know (there the numbering is off, which
        # blocks_missing_from_feed tells, not the hash).
        named = {h for h in self.messages.values() if h is not None}
        named.update(h for h in correlator._recent_hashes.values() if h is not None)
        touched, self.dirty = self.dirty, set()
        for number, block_hash, tx_hashes in blocks:
            if self.last_number is not None and number <= self.last_number:
                raise ValueError(
                    f"settle: block {number} comes after block {self.last_number}; blocks must be settled "
                    "in ascending number, each once"
                )
            self.last_number = number
            chain_hash = _hex(block_hash)
            block = _Block(number)
            self.unsettled.append(block)
            self.block_at[number] = block
            self.blocks_checked += 1
            for index, tx_hash in enumerate(tx_hashes):
                key = _hex(tx_hash)
                row = rows.get(key)
                if row is None:
                    continue
                i = row - base
                if placed[i]:  # the chain's later copy of a transaction: its first one counts
                    continue
                placed[i] = 1
                self.included += 1
                if appearances[i] == 0:
                    self.missing += 1
                    if len(self.first_missing) < _LISTED:
                        self.first_missing.append(
                            {"tx_hash": key, "row": row, "block": number, "index": index}
                        )
                    continue
                self.in_feed += 1
                seq, pos = sequence[i], position[i]
                left = pending.get(seq, 0) - 1
                if left > 0:
                    pending[seq] = left
                else:
                    pending.pop(seq, None)
                last = self.last_in_feed
                if last is not None and (seq, pos) <= (last[3], last[4]):
                    self.order_violations += 1
                    if len(self.first_order) < _LISTED:
                        self.first_order.append(
                            {
                                "earlier_tx": last[0],
                                "later_tx": key,
                                "earlier_block": last[1],
                                "earlier_index": last[2],
                                "later_block": number,
                                "later_index": index,
                                "earlier_sequence": last[3],
                                "earlier_position": last[4],
                                "later_sequence": seq,
                                "later_position": pos,
                            }
                        )
                self.last_in_feed = (key, number, index, seq, pos)
                carrier = open_.get(seq)
                if carrier is None:
                    continue
                touched.add(seq)
                if carrier.a is None:
                    carrier.a, carrier.a_hash = number, chain_hash
                elif number != carrier.a and (carrier.blocks is None or number not in carrier.blocks):
                    if carrier.blocks is None:
                        carrier.blocks = {carrier.a}
                        self.spanning += 1
                    carrier.blocks.add(number)
            for message in by_hash.get(chain_hash, ()):
                message.b = number
                touched.add(message.seq)
            for numbered in by_number.get(number, ()) if chain_hash not in named else ():
                numbered.c, numbered.c_hash = number, chain_hash
                touched.add(numbered.seq)
        for seq in sorted(touched):
            changed = open_.get(seq)
            if changed is not None:
                self._evaluate(correlator, changed, force=False)
        # A message still open after ``horizon`` further blocks is resolved with what is known (see
        # Correlator.settle): it keeps the memory bounded when a feed names blocks that never come.
        oldest = self.blocks_checked - self.horizon
        for message in [m for m in open_.values() if m.born < oldest]:
            self._evaluate(correlator, message, force=True)
        self._close_blocks(final=False)

    def _evaluate(self, correlator: Correlator, message: _Message, *, force: bool) -> None:
        """Place ``message`` for now, or for good once nothing still to come can move it."""
        pending = self.pending.get(message.seq, 0)
        if not message.counted:
            number: int | None
            if message.a is not None:  # a transaction's block: nothing can change it
                number, chain_hash, final = message.a, message.a_hash, True
            elif message.b is not None:  # the named block, unless a pending row lands elsewhere
                number, chain_hash, final = message.b, message.feed_hash or "", pending == 0
            elif message.c is not None:  # its sequence number's block, unless a later block has its hash
                number, chain_hash = message.c, message.c_hash
                final = message.feed_hash is None and pending == 0
            else:
                number, chain_hash, final = None, "", False
            final = final or force
            old = message.at
            if number is None:
                if final:
                    self.messages_unverified += 1
                    message.counted = True
            else:
                block = self.block_at[number]
                if final:
                    if old is not None:
                        old.refs -= 1
                        message.at = None
                    self.messages_checked += 1
                    if message.feed_hash == chain_hash:
                        block.named = True
                    else:
                        block.mismatched = True
                        self.hash_mismatches += 1
                        _keep(
                            self.first_mismatches,
                            message.seq,
                            {
                                "sequence": message.seq,
                                "block": number,
                                "feed_hash": message.feed_hash,
                                "chain_hash": chain_hash,
                            },
                        )
                    message.counted = True
                elif old is not block:
                    if old is not None:
                        old.refs -= 1
                    block.refs += 1
                    message.at = block
        if message.counted and (pending == 0 or force):
            if message.blocks is not None:
                _keep(
                    self.first_spanning,
                    message.seq,
                    {"sequence": message.seq, "blocks": sorted(message.blocks)},
                )
            del self.open[message.seq]
            if not self.frozen:
                self.messages.pop(message.seq, None)
                if self.live:
                    correlator._retire(message.seq)

    def _close_blocks(self, *, final: bool) -> None:
        """Count the blocks, oldest first, whose standing can no longer change."""
        unsettled = self.unsettled
        while unsettled and (final or unsettled[0].refs == 0):
            block = unsettled.popleft()
            del self.block_at[block.number]
            if block.named:
                if self.named_seen:
                    self.blocks_missing += self.run_count
                    self.first_blocks_missing.extend(self.run_numbers)
                self.named_seen = True
                self.run_count = 0
                self.run_numbers = []
            elif not block.mismatched and self.named_seen:
                self.run_count += 1
                if len(self.first_blocks_missing) + len(self.run_numbers) < _LISTED:
                    self.run_numbers.append(block.number)

    def leave(self, correlator: Correlator, count: int) -> None:
        """Count what the window's first ``count`` rows found for good, before they are dropped."""
        self._rows_found(correlator, 0, count)
        pending, open_ = self.pending, self.open
        appearances, sequence, placed = correlator.appearances, correlator.sequence, self.placed
        for i in range(count):
            if appearances[i] and not placed[i]:
                seq = sequence[i]
                left = pending.get(seq, 0) - 1
                if left > 0:
                    pending[seq] = left
                else:
                    pending.pop(seq, None)
                    if seq in open_:
                        self.dirty.add(seq)

    def _rows_found(self, correlator: Correlator, start: int, stop: int) -> None:
        """``feed_only`` and ``duplicated_in_feed`` of the window's rows ``start..stop`` (never to change)."""
        base = correlator.base
        appearances, sequence, position = correlator.appearances, correlator.sequence, correlator.position
        placed = self.placed
        for i in range(start, stop):
            if appearances[i] and not placed[i]:
                self.feed_only += 1
                key = (sequence[i], position[i], base + i)
                if len(self.first_feed_only) < _LISTED or key < self.first_feed_only[-1][0]:
                    item = {
                        "tx_hash": correlator._hash_hex(i),
                        "row": base + i,
                        "sequence": sequence[i],
                        "position": position[i],
                    }
                    _keep(self.first_feed_only, key, item)
        low, high = base + start, base + stop
        for row in sorted({row for row in correlator.duplicate_rows if low <= row < high}):
            i = row - base
            if appearances[i] <= 1:
                continue
            self.duplicated += 1
            if len(self.first_duplicated) < _LISTED:
                self.first_duplicated.append(
                    {
                        "tx_hash": correlator._hash_hex(i),
                        "row": row,
                        "appearances": appearances[i],
                        "sequence": sequence[i],
                    }
                )

    # -- the answer -------------------------------------------------------------------------------
    def finish(self, correlator: Correlator) -> FeedChainFindings:
        """Resolve what is still open as if no block were to come, and give the findings."""
        self._take_in()
        for seq in sorted(self.open):
            self._evaluate(correlator, self.open[seq], force=True)
        self._close_blocks(final=True)
        self._rows_found(correlator, 0, len(correlator.appearances))
        return FeedChainFindings(
            blocks_checked=self.blocks_checked,
            messages_checked=self.messages_checked,
            messages_unverified=self.messages_unverified,
            included=self.included,
            in_feed=self.in_feed,
            missing_from_feed=self.missing,
            duplicated_in_feed=self.duplicated,
            feed_only=self.feed_only,
            order_violations=self.order_violations,
            hash_mismatches=self.hash_mismatches,
            messages_spanning_blocks=self.spanning,
            blocks_missing_from_feed=self.blocks_missing,
            first_missing_from_feed=list(self.first_missing),
            first_duplicated_in_feed=list(self.first_duplicated),
            first_feed_only=[item for _, item in self.first_feed_only],
            first_order_violations=list(self.first_order),
            first_hash_mismatches=[item for _, item in self.first_mismatches],
            first_messages_spanning_blocks=[item for _, item in self.first_spanning],
            first_blocks_missing_from_feed=list(self.first_blocks_missing),
        )


class Correlator:
    """Correlates registered transactions with feed messages; see the module docstring.

    Columns (``array``, indexed by ``row - base``, ``-1`` = not yet): :attr:`intended_ns`,
    :attr:`arrival_ns`, :attr:`sequence` (sequence number of the first message carrying the row),
    :attr:`position` (index of the row's transaction in that message), :attr:`appearances` (how many
    times the feed carried it, capped at 127). :attr:`base` is the first row held (0 until
    :meth:`forget_before`). Per sequence number, for messages not yet placed by :meth:`settle`:
    :attr:`block_hashes` and :attr:`message_arrival_ns`. ``sequence_offset`` is the chain's block number
    of sequence number 0 (0 for Nitro dev chains; a chain's genesis block number otherwise), used only
    to place messages that carry none of the registered transactions and name no settled block's hash
    when comparing with the chain (:meth:`block_of`).

    Sequence numbers and blocks: Nitro numbers one message per block (block = sequence + genesis).
    The embedded relay sends a block too big for one message as several consecutive messages with the
    same block hash, so from then on its sequence numbers run ahead of the blocks. The correlator
    counts such *continuations* (a message naming the same hash as the message numbered one below it)
    as they arrive, and :meth:`block_of` subtracts them; splits made before the first message it saw
    are not visible, so a caller that can tell one message's block (its hash names a block it saw)
    measures the offset with :meth:`calibrate` before the first :meth:`settle`.
    """

    #: A message :meth:`settle` has not resolved after this many further blocks is resolved with what is
    #: known by then (see :meth:`settle`).
    HORIZON_BLOCKS = 1024
    #: Sequence numbers of resolved messages kept to tell a repeated message from a first arrival.
    RETIRED_WINDOW = 4096

    def __init__(self, *, sequence_offset: int = 0) -> None:
        self.sequence_offset = sequence_offset
        self.base = 0
        self._rows: dict[str, int] = {}
        self.intended_ns = array("q")
        self.arrival_ns = array("q")
        self.sequence = array("q")
        self.position = array("l")
        self.appearances = array("b")
        # Per held row: its key in _rows (the same string, so 8 bytes a row: to drop it when the row is
        # forgotten), and whether a settled block included it.
        self._keys: list[str | None] = []
        self._placed = bytearray()
        self.block_hashes: dict[int, str | None] = {}
        self.message_arrival_ns: dict[int, int] = {}
        # Sequence number → rows the feed carried first there and no settled block has placed yet.
        self._pending: dict[int, int] = {}
        # Resolved messages (dropped from the dicts above) by sequence number; below the floor, all are
        # taken as seen.
        self._retired: set[int] = set()
        self._retired_floor = 0
        # Continuations (see the class docstring), ascending; those below the fold floor are only
        # counted: no message that low is looked up any more.
        self.continuations: list[int] = []
        self._continuations_folded = 0
        self._fold_floor = 0
        # The block hash each recent sequence number first arrived with, to spot continuations also when
        # a message arrives after its successor (about RETIRED_WINDOW of them).
        self._recent_hashes: dict[int, str | None] = {}
        #: True once :meth:`calibrate` measured ``sequence_offset`` against the chain.
        self.calibrated = False
        self._check: _Check | None = None
        self.messages = 0
        self.repeated_messages = 0
        self.feed_transactions = 0
        self.matched = 0
        self.duplicate_appearances = 0
        self.duplicate_rows: list[int] = []
        self.register_conflicts = 0
        #: Registered rows already forgotten (:attr:`registered` counts them).
        self.registered_forgotten = 0

    # -- hot path -------------------------------------------------------------------------------
    def register(self, tx_hash: bytes | str, row: int, intended_ns: int) -> None:
        """Remember that ``row`` is the transaction ``tx_hash``, meant to be sent at ``intended_ns``.

        Call it before the transaction is sent (the feed cannot carry it earlier), once per row. A
        hash registered twice keeps its first row and is counted in :attr:`register_conflicts`; a row
        below :attr:`base` (already forgotten) is refused.
        """
        key = "0x" + tx_hash.hex() if isinstance(tx_hash, bytes) else _hex(tx_hash)
        if key in self._rows:
            self.register_conflicts += 1
            return
        i = row - self.base
        if i < 0:
            raise ValueError(f"register: row {row} is below base {self.base}: it was forgotten")
        if i >= len(self.intended_ns):
            self._grow(i + 1)
        self._rows[key] = row
        self.intended_ns[i] = intended_ns
        self._keys[i] = key

    def _grow(self, size: int) -> None:
        extra = max(size - len(self.intended_ns), len(self.intended_ns), 1024)
        filler = array("q", [NOT_YET]) * extra
        self.intended_ns.extend(filler)
        self.arrival_ns.extend(filler)
        self.sequence.extend(filler)
        self.position.extend(array("l", [NOT_YET]) * extra)
        self.appearances.extend(array("b", [0]) * extra)
        self._keys.extend([None] * extra)
        self._placed.extend(bytes(extra))

    def on_message(self, message: FeedMessage, arrival_ns: int) -> None:
        """Record one feed message that arrived at ``arrival_ns`` (the FeedClient's ``on_message``)."""
        seq = message.sequence_number
        if seq in self.message_arrival_ns or seq in self._retired or seq < self._retired_floor:
            self.repeated_messages += 1
        else:
            self.message_arrival_ns[seq] = arrival_ns
            block_hash = self.block_hashes[seq] = message.block_hash
            self._note_hash(seq, block_hash)
        self.messages += 1
        hashes = message.tx_hashes
        self.feed_transactions += len(hashes)
        get = self._rows.get
        appearances = self.appearances
        base = self.base
        matched = 0
        for pos, tx_hash in enumerate(hashes):
            row = get(tx_hash)
            if row is None:
                continue
            i = row - base
            seen = appearances[i]
            if seen == 0:
                self.arrival_ns[i] = arrival_ns
                self.sequence[i] = seq
                self.position[i] = pos
                matched += 1
            else:
                self.duplicate_appearances += 1
                if len(self.duplicate_rows) < _MAX_DUPLICATE_ROWS:
                    self.duplicate_rows.append(row)
            if seen < _MAX_APPEARANCES:
                appearances[i] = seen + 1
        if matched:
            self.matched += matched
            self._pending[seq] = self._pending.get(seq, 0) + matched

    def _note_hash(self, seq: int, block_hash: str | None) -> None:
        """Remember ``seq``'s block hash; a message naming its predecessor's hash continues that block."""
        recent = self._recent_hashes
        recent[seq] = block_hash
        if block_hash is not None:
            if recent.get(seq - 1) == block_hash:
                bisect.insort(self.continuations, seq)
            if recent.get(seq + 1) == block_hash:  # its successor came first
                bisect.insort(self.continuations, seq + 1)
        if len(recent) > 2 * self.RETIRED_WINDOW:
            floor = max(recent) - self.RETIRED_WINDOW
            self._recent_hashes = {s: h for s, h in recent.items() if s >= floor}
            # Fold the continuations no open message can reach any more into a count.
            lowest_open = min(self.block_hashes, default=floor)
            self._fold(min(floor, lowest_open, self._retired_floor))

    def _fold(self, floor: int) -> None:
        if floor <= self._fold_floor:
            return
        cut = bisect.bisect_left(self.continuations, floor)
        self._continuations_folded += cut
        del self.continuations[:cut]
        self._fold_floor = floor

    def continuations_upto(self, seq: int) -> int:
        """How many messages numbered up to ``seq`` continued the block of the message before them."""
        return self._continuations_folded + bisect.bisect_right(self.continuations, seq)

    def block_of(self, seq: int) -> int:
        """The block sequence number ``seq`` stands for: ``seq + sequence_offset``, less the messages up
        to it that continued their predecessor's block (see the class docstring)."""
        return seq + self.sequence_offset - self.continuations_upto(seq)

    def calibrate(self, sequence: int, block: int) -> None:
        """Measure ``sequence_offset``: message ``sequence`` is about ``block`` (its hash names it).

        For a feed whose numbering before the first message seen is unknown (the embedded relay after
        a split block). Call it before the first :meth:`settle`: the check places messages with the
        offset it starts with.
        """
        if self._check is not None:
            raise RuntimeError("calibrate: call it before the first settle()")
        self.sequence_offset = block - sequence + self.continuations_upto(sequence)
        self.calibrated = True

    # -- results --------------------------------------------------------------------------------
    @property
    def registered(self) -> int:
        """Rows registered over the whole run (held and forgotten)."""
        return len(self._rows) + self.registered_forgotten

    def row_of(self, tx_hash: bytes | str) -> int | None:
        """The row of ``tx_hash`` while it is held; ``None`` if unknown or forgotten."""
        return self._rows.get(_hex(tx_hash))

    def feed_latency_ns(self, row: int) -> int | None:
        """Arrival − intended for ``row``, ``None`` if the feed has not carried it or it is forgotten."""
        i = row - self.base
        if i < 0 or i >= len(self.arrival_ns) or self.arrival_ns[i] == NOT_YET:
            return None
        return self.arrival_ns[i] - self.intended_ns[i]

    def feed_latencies(self) -> list[float]:
        """Feed latency in seconds of every matched row held, in row order (feed it to ``LatencyStats.of``)."""
        return [
            (arrival - intended) / 1e9
            for arrival, intended in zip(self.arrival_ns, self.intended_ns, strict=True)
            if arrival != NOT_YET and intended != NOT_YET
        ]

    def summary(self) -> dict[str, Any]:
        """Counts and nearest-rank latency percentiles (seconds, ``nan`` when nothing matched).

        The counts cover the whole run. The latency figures (``latency_*``) cover the rows held, i.e.
        every row until :meth:`forget_before` drops some; after that, take whole-run feed latency from
        the rows as they become final (the telemetry stream does).
        """
        latencies = sorted(self.feed_latencies())

        def pick(quantile: float) -> float:
            if not latencies:
                return math.nan
            return latencies[max(1, math.ceil(quantile * len(latencies))) - 1]

        return {
            "registered": self.registered,
            "matched": self.matched,
            "unmatched": self.registered - self.matched,
            "messages": self.messages,
            "repeated_messages": self.repeated_messages,
            "feed_transactions": self.feed_transactions,
            "foreign_transactions": self.feed_transactions - self.matched - self.duplicate_appearances,
            "duplicate_rows": len(set(self.duplicate_rows)),
            "duplicate_appearances": self.duplicate_appearances,
            "latency_p50": pick(0.50),
            "latency_p90": pick(0.90),
            "latency_p99": pick(0.99),
            "latency_max": latencies[-1] if latencies else math.nan,
            "latency_count": len(latencies),
        }

    # -- cross-checks ---------------------------------------------------------------------------
    def check_against_chain(
        self, blocks: Sequence[ChainBlock], *, sequence_offset: int | None = None
    ) -> FeedChainFindings:
        """Compare the feed with the chain's blocks (pass every block the run could have used).

        Checks, for registered transactions: each one the chain included appeared in the feed exactly
        once (``missing_from_feed``, ``duplicated_in_feed``), none appeared in the feed without being
        included (``feed_only``), and the feed's order (sequence number, position) equals block order
        (``order_violations``, counted between neighbours in block order). For messages: the feed's
        block hash equals the chain's (``hash_mismatches``); a message is placed on a block through the
        registered transactions it carries, else through its block hash, else on the block its sequence
        number stands for (:meth:`block_of`, with ``sequence_offset`` when given) unless another message
        names that block's hash (the numbering is off there, not the hash); one message holding
        transactions of two blocks is ``messages_spanning_blocks``;
        a chain block inside the feed's range that no message names is ``blocks_missing_from_feed``.

        Blocks are taken in ascending number; a number given twice keeps its last block. Block hashes
        are taken to be unique. This is the one-shot form of :meth:`settle` + :meth:`findings` and
        changes nothing; a correlator that has settled or forgotten part of its run no longer holds the
        whole of it, so it refuses (use :meth:`findings`).
        """
        if self._check is not None:
            raise RuntimeError(
                "check_against_chain: this correlator has settled or forgotten part of its run; "
                "use findings()"
            )
        by_number = {block[0]: block for block in blocks}
        check = _Check(
            offset=self.sequence_offset if sequence_offset is None else sequence_offset,
            horizon=max(len(by_number), 1),
            placed=bytearray(len(self.appearances)),
            pending=dict(self._pending),
            messages=dict(self.block_hashes),
            live=False,
        )
        check.settle(self, [by_number[number] for number in sorted(by_number)])
        return check.finish(self)

    def _incremental(self) -> _Check:
        if self._check is None:
            self._check = _Check(
                offset=self.sequence_offset,
                horizon=self.HORIZON_BLOCKS,
                placed=self._placed,
                pending=self._pending,
                messages=self.block_hashes,
                live=True,
            )
        return self._check

    def settle(self, blocks: Sequence[ChainBlock]) -> None:
        """Check final chain ``blocks`` against the feed now, and drop what that resolves.

        ``blocks`` (``(number, hash, [tx hashes])``) are final, in ascending number, each settled once
        over the run (a block at or below one already settled raises ``ValueError``). The checks are
        those of :meth:`check_against_chain`, accumulated for :meth:`findings`; messages placed for
        good on settled blocks leave :attr:`block_hashes` and :attr:`message_arrival_ns`.

        The findings equal one :meth:`check_against_chain` over every block of the run when:

        - every feed message that concerns a block (carries one of its registered transactions, names
          its hash, or stands for it by its sequence number, :meth:`block_of`) has arrived before the
          block is settled, and so has the message numbered one below it (which says whether it
          continues a block); a later one is not placed on it (its transactions already count as
          missing);
        - a row is forgotten only after the block that included it is settled, and once the feed will
          not carry it again (a later appearance counts as a foreign transaction);
        - no message stays unresolved for :attr:`HORIZON_BLOCKS` blocks: one whose transactions the
          chain includes that many blocks later than the block it names, or whose hash names a block
          that many blocks after its sequence number's, is resolved with what is known by then.
        """
        self._incremental().settle(self, blocks)

    def forget_before(self, row: int) -> None:
        """Drop rows below ``row`` (their blocks settled): what they found is counted for good.

        A forgotten row that the feed carried but no settled block included counts as ``feed_only``;
        one the feed carried twice as ``duplicated_in_feed``.
        """
        if row <= self.base:
            return
        check = self._incremental()
        count = min(row - self.base, len(self.intended_ns))
        if count:
            check.leave(self, count)
            rows, keys, base = self._rows, self._keys, self.base
            for i in range(count):
                key = keys[i]
                if key is not None and rows.get(key) == base + i:
                    del rows[key]
                    self.registered_forgotten += 1
            for column in (self.intended_ns, self.arrival_ns, self.sequence, self.position, self.appearances):
                del column[:count]
            del self._keys[:count]
            del self._placed[:count]
        self.base = row

    def findings(self) -> FeedChainFindings:
        """What :meth:`settle` and :meth:`forget_before` found so far, with what is still open resolved
        as if the run ended now (messages no settled block places are ``messages_unverified``; rows
        held that the feed carried but no settled block included are ``feed_only``). Changes nothing:
        call it as often as wanted."""
        check = self._check
        if check is None:  # nothing settled yet: the one-shot check over no blocks says the same
            return self.check_against_chain([])
        shared = (check.placed, check.pending, check.messages)
        clone = copy.deepcopy(check, {id(value): value for value in shared})
        clone.frozen = True
        return clone.finish(self)

    def _retire(self, seq: int) -> None:
        """``seq`` is resolved: forget its arrival, remember (within a window) that it was seen."""
        self.message_arrival_ns.pop(seq, None)
        retired = self._retired
        retired.add(seq)
        if len(retired) > 2 * self.RETIRED_WINDOW:
            floor = max(retired) - self.RETIRED_WINDOW
            self._retired = {s for s in retired if s >= floor}
            self._retired_floor = max(self._retired_floor, floor)

    def _hash_hex(self, i: int) -> str:
        return self._keys[i] or ""

    # -- plain data -----------------------------------------------------------------------------
    def to_columns(self) -> dict[str, Any]:
        """Plain data (bytes, ints, dicts) for shipping to another process; see :meth:`from_columns`.

        It holds the rows and messages held and the whole-run counters, not what :meth:`settle`
        accumulated (ship ``findings().as_dict()`` for that). Row ``r``'s columns are at ``r - base``.
        """
        ordered = sorted(self._rows.items(), key=lambda item: item[1])
        return {
            "sequence_offset": self.sequence_offset,
            "base": self.base,
            "hashes": b"".join(bytes.fromhex(tx_hash[2:]) for tx_hash, _ in ordered),
            "rows": array("q", [row for _, row in ordered]).tobytes(),
            "intended_ns": self.intended_ns.tobytes(),
            "arrival_ns": self.arrival_ns.tobytes(),
            "sequence": self.sequence.tobytes(),
            "position": self.position.tobytes(),
            "appearances": self.appearances.tobytes(),
            "placed": bytes(self._placed),
            "block_hashes": dict(self.block_hashes),
            "message_arrival_ns": dict(self.message_arrival_ns),
            "retired": sorted(self._retired),
            "retired_floor": self._retired_floor,
            "continuations": list(self.continuations),
            "continuations_folded": self._continuations_folded,
            "fold_floor": self._fold_floor,
            "recent_hashes": dict(self._recent_hashes),
            "calibrated": self.calibrated,
            "settled": self._check is not None,
            "counters": {
                "messages": self.messages,
                "repeated_messages": self.repeated_messages,
                "feed_transactions": self.feed_transactions,
                "matched": self.matched,
                "duplicate_appearances": self.duplicate_appearances,
                "register_conflicts": self.register_conflicts,
                "registered_forgotten": self.registered_forgotten,
            },
            "duplicate_rows": list(self.duplicate_rows),
        }

    @classmethod
    def from_columns(cls, columns: dict[str, Any]) -> Correlator:
        correlator = cls(sequence_offset=columns["sequence_offset"])
        base = correlator.base = columns.get("base", 0)
        for name, typecode in (
            ("intended_ns", "q"),
            ("arrival_ns", "q"),
            ("sequence", "q"),
            ("position", "l"),
            ("appearances", "b"),
        ):
            values = array(typecode)
            values.frombytes(columns[name])
            setattr(correlator, name, values)
        size = len(correlator.intended_ns)
        rows = array("q")
        rows.frombytes(columns["rows"])
        hashes = columns["hashes"]
        correlator._keys = [None] * size
        for n, row in enumerate(rows):
            key = "0x" + hashes[n * _HASH_BYTES : (n + 1) * _HASH_BYTES].hex()
            correlator._rows[key] = row
            correlator._keys[row - base] = key
        correlator._placed = bytearray(columns.get("placed", bytes(size)))
        for i, seen in enumerate(correlator.appearances):
            if seen and not correlator._placed[i]:
                seq = correlator.sequence[i]
                correlator._pending[seq] = correlator._pending.get(seq, 0) + 1
        correlator.block_hashes = dict(columns["block_hashes"])
        correlator.message_arrival_ns = dict(columns["message_arrival_ns"])
        correlator._retired = set(columns.get("retired", ()))
        correlator._retired_floor = columns.get("retired_floor", 0)
        correlator.continuations = list(columns.get("continuations", ()))
        correlator._continuations_folded = columns.get("continuations_folded", 0)
        correlator._fold_floor = columns.get("fold_floor", 0)
        correlator._recent_hashes = dict(columns.get("recent_hashes", {}))
        correlator.calibrated = columns.get("calibrated", False)
        for name, value in columns["counters"].items():
            setattr(correlator, name, value)
        correlator.duplicate_rows = list(columns["duplicate_rows"])
        if columns.get("settled"):
            # The copy holds part of the run only: it checks what is held from here on (findings()).
            correlator._incremental()
        return correlator
