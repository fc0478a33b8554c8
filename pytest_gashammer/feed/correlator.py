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

Not thread-safe: call :meth:`Correlator.register` and :meth:`Correlator.on_message` from one thread (the
edge's event loop, where both the submitter and the :class:`~pytest_gashammer.feed.client.FeedClient`
run).
"""

from __future__ import annotations

import dataclasses
import math
from array import array
from collections.abc import Sequence
from typing import Any

from pytest_gashammer.feed.codec import FeedMessage

__all__ = ["NOT_YET", "ChainBlock", "Correlator", "FeedChainFindings"]

NOT_YET = -1
_LISTED = 20  # first offending items kept in findings
_MAX_APPEARANCES = 127
_MAX_DUPLICATE_ROWS = 10_000

ChainBlock = tuple[int, str | bytes, Sequence[str | bytes]]
"""``(number, block hash, [tx hashes in block order])`` as the chain reports it."""


def _hex(value: str | bytes) -> str:
    if isinstance(value, bytes | bytearray | memoryview):
        return "0x" + bytes(value).hex()
    return "0x" + (value[2:] if value[:2] in ("0x", "0X") else value).lower()


@dataclasses.dataclass(frozen=True)
class FeedChainFindings:
    """What :meth:`Correlator.check_against_chain` found: counts, and the first offending items.

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


class Correlator:
    """Correlates registered transactions with feed messages; see the module docstring.

    Columns (``array``, indexed by row, ``-1`` = not yet): :attr:`intended_ns`, :attr:`arrival_ns`,
    :attr:`sequence` (sequence number of the first message carrying the row), :attr:`position` (index
    of the row's transaction in that message), :attr:`appearances` (how many times the feed carried it,
    capped at 127). Per sequence number: :attr:`block_hashes` and :attr:`message_arrival_ns`.
    ``sequence_offset`` is the chain's block number of sequence number 0 (0 for Nitro dev chains and
    for the relay; a chain's genesis block number otherwise), used only to place messages that carry
    none of the registered transactions when comparing with the chain.
    """

    def __init__(self, *, sequence_offset: int = 0) -> None:
        self.sequence_offset = sequence_offset
        self._rows: dict[str, int] = {}
        self.intended_ns = array("q")
        self.arrival_ns = array("q")
        self.sequence = array("q")
        self.position = array("l")
        self.appearances = array("b")
        self.block_hashes: dict[int, str | None] = {}
        self.message_arrival_ns: dict[int, int] = {}
        self.messages = 0
        self.repeated_messages = 0
        self.feed_transactions = 0
        self.matched = 0
        self.duplicate_appearances = 0
        self.duplicate_rows: list[int] = []
        self.register_conflicts = 0

    # -- hot path -------------------------------------------------------------------------------
    def register(self, tx_hash: bytes | str, row: int, intended_ns: int) -> None:
        """Remember that ``row`` is the transaction ``tx_hash``, meant to be sent at ``intended_ns``.

        Call it before the transaction is sent (the feed cannot carry it earlier). A hash registered
        twice keeps its first row and is counted in :attr:`register_conflicts`.
        """
        key = "0x" + tx_hash.hex() if isinstance(tx_hash, bytes) else _hex(tx_hash)
        if key in self._rows:
            self.register_conflicts += 1
            return
        if row >= len(self.intended_ns):
            self._grow(row + 1)
        self._rows[key] = row
        self.intended_ns[row] = intended_ns

    def _grow(self, size: int) -> None:
        extra = max(size - len(self.intended_ns), len(self.intended_ns), 1024)
        filler = array("q", [NOT_YET]) * extra
        self.intended_ns.extend(filler)
        self.arrival_ns.extend(filler)
        self.sequence.extend(filler)
        self.position.extend(array("l", [NOT_YET]) * extra)
        self.appearances.extend(array("b", [0]) * extra)

    def on_message(self, message: FeedMessage, arrival_ns: int) -> None:
        """Record one feed message that arrived at ``arrival_ns`` (the FeedClient's ``on_message``)."""
        seq = message.sequence_number
        if seq in self.message_arrival_ns:
            self.repeated_messages += 1
        else:
            self.message_arrival_ns[seq] = arrival_ns
            self.block_hashes[seq] = message.block_hash
        self.messages += 1
        hashes = message.tx_hashes
        self.feed_transactions += len(hashes)
        get = self._rows.get
        appearances = self.appearances
        matched = 0
        for pos, tx_hash in enumerate(hashes):
            row = get(tx_hash)
            if row is None:
                continue
            seen = appearances[row]
            if seen == 0:
                self.arrival_ns[row] = arrival_ns
                self.sequence[row] = seq
                self.position[row] = pos
                matched += 1
            else:
                self.duplicate_appearances += 1
                if len(self.duplicate_rows) < _MAX_DUPLICATE_ROWS:
                    self.duplicate_rows.append(row)
            if seen < _MAX_APPEARANCES:
                appearances[row] = seen + 1
        self.matched += matched

    # -- results --------------------------------------------------------------------------------
    @property
    def registered(self) -> int:
        return len(self._rows)

    def row_of(self, tx_hash: bytes | str) -> int | None:
        return self._rows.get(_hex(tx_hash))

    def feed_latency_ns(self, row: int) -> int | None:
        """Arrival − intended for ``row``, ``None`` if the feed has not carried it."""
        if row >= len(self.arrival_ns) or self.arrival_ns[row] == NOT_YET:
            return None
        return self.arrival_ns[row] - self.intended_ns[row]

    def feed_latencies(self) -> list[float]:
        """Feed latency in seconds of every matched row, in row order (feed it to ``LatencyStats.of``)."""
        return [
            (arrival - intended) / 1e9
            for arrival, intended in zip(self.arrival_ns, self.intended_ns, strict=True)
            if arrival != NOT_YET and intended != NOT_YET
        ]

    def summary(self) -> dict[str, Any]:
        """Counts and nearest-rank latency percentiles (seconds, ``nan`` when nothing matched)."""
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
        registered transactions it carries, else through its block hash, else at ``sequence +
        sequence_offset``; one message holding transactions of two blocks is ``messages_spanning_blocks``;
        a chain block inside the feed's range that no message names is ``blocks_missing_from_feed``.
        """
        offset = self.sequence_offset if sequence_offset is None else sequence_offset
        rows = self._rows
        hash_of_row = {row: tx_hash for tx_hash, row in rows.items()}
        chain_hash: dict[int, str] = {}
        number_of_hash: dict[str, int] = {}
        chain_position: dict[int, tuple[int, int]] = {}
        for number, block_hash, tx_hashes in blocks:
            normalised = _hex(block_hash)
            chain_hash[number] = normalised
            number_of_hash[normalised] = number
            for index, tx_hash in enumerate(tx_hashes):
                row = rows.get(_hex(tx_hash))
                if row is not None and row not in chain_position:
                    chain_position[row] = (number, index)

        appearances, sequence, position = self.appearances, self.sequence, self.position
        missing = [row for row in chain_position if appearances[row] == 0]
        in_feed = [row for row in chain_position if appearances[row] > 0]
        duplicated = sorted(row for row in set(self.duplicate_rows) if appearances[row] > 1)
        feed_only = [row for row in rows.values() if appearances[row] > 0 and row not in chain_position]

        def tx_item(row: int) -> dict[str, Any]:
            return {"tx_hash": hash_of_row[row], "row": row}

        ordered = sorted(in_feed, key=chain_position.__getitem__)
        violations = []
        for earlier, later in zip(ordered, ordered[1:], strict=False):
            if (sequence[later], position[later]) <= (sequence[earlier], position[earlier]):
                violations.append((earlier, later))

        seq_block: dict[int, int] = {}
        spanning: dict[int, set[int]] = {}
        for row in in_feed:
            seq, number = sequence[row], chain_position[row][0]
            known = seq_block.setdefault(seq, number)
            if known != number:
                spanning.setdefault(seq, {known}).add(number)

        mismatches = []
        checked = unverified = 0
        named_blocks: set[int] = set()
        for seq, feed_hash in sorted(self.block_hashes.items()):
            if seq in seq_block:
                number = seq_block[seq]
            elif feed_hash is not None and feed_hash in number_of_hash:
                number = number_of_hash[feed_hash]
            elif seq + offset in chain_hash:
                number = seq + offset
            else:
                unverified += 1
                continue
            checked += 1
            if feed_hash == chain_hash[number]:
                named_blocks.add(number)
            else:
                mismatches.append(
                    {
                        "sequence": seq,
                        "block": number,
                        "feed_hash": feed_hash,
                        "chain_hash": chain_hash[number],
                    }
                )
        covered = sorted(named_blocks)
        blocks_missing = (
            [n for n in sorted(chain_hash) if covered[0] <= n <= covered[-1] and n not in named_blocks]
            if covered
            else []
        )
        # A block whose message carries the wrong hash is reported as a mismatch, not also as missing.
        mismatched_blocks = {item["block"] for item in mismatches}
        blocks_missing = [n for n in blocks_missing if n not in mismatched_blocks]

        return FeedChainFindings(
            blocks_checked=len(chain_hash),
            messages_checked=checked,
            messages_unverified=unverified,
            included=len(chain_position),
            in_feed=len(in_feed),
            missing_from_feed=len(missing),
            duplicated_in_feed=len(duplicated),
            feed_only=len(feed_only),
            order_violations=len(violations),
            hash_mismatches=len(mismatches),
            messages_spanning_blocks=len(spanning),
            blocks_missing_from_feed=len(blocks_missing),
            first_missing_from_feed=[
                {**tx_item(row), "block": chain_position[row][0], "index": chain_position[row][1]}
                for row in sorted(missing, key=chain_position.__getitem__)[:_LISTED]
            ],
            first_duplicated_in_feed=[
                {**tx_item(row), "appearances": appearances[row], "sequence": sequence[row]}
                for row in duplicated[:_LISTED]
            ],
            first_feed_only=[
                {**tx_item(row), "sequence": sequence[row], "position": position[row]}
                for row in sorted(feed_only, key=lambda r: (sequence[r], position[r]))[:_LISTED]
            ],
            first_order_violations=[
                {
                    "earlier_tx": hash_of_row[earlier],
                    "later_tx": hash_of_row[later],
                    "earlier_block": chain_position[earlier][0],
                    "earlier_index": chain_position[earlier][1],
                    "later_block": chain_position[later][0],
                    "later_index": chain_position[later][1],
                    "earlier_sequence": sequence[earlier],
                    "earlier_position": position[earlier],
                    "later_sequence": sequence[later],
                    "later_position": position[later],
                }
                for earlier, later in violations[:_LISTED]
            ],
            first_hash_mismatches=mismatches[:_LISTED],
            first_messages_spanning_blocks=[
                {"sequence": seq, "blocks": sorted(numbers)}
                for seq, numbers in sorted(spanning.items())[:_LISTED]
            ],
            first_blocks_missing_from_feed=blocks_missing[:_LISTED],
        )

    # -- plain data -----------------------------------------------------------------------------
    def to_columns(self) -> dict[str, Any]:
        """Plain data (bytes, ints, dicts) for shipping to another process; see :meth:`from_columns`."""
        ordered = sorted(self._rows.items(), key=lambda item: item[1])
        return {
            "sequence_offset": self.sequence_offset,
            "hashes": b"".join(bytes.fromhex(tx_hash[2:]) for tx_hash, _ in ordered),
            "rows": array("q", [row for _, row in ordered]).tobytes(),
            "intended_ns": self.intended_ns.tobytes(),
            "arrival_ns": self.arrival_ns.tobytes(),
            "sequence": self.sequence.tobytes(),
            "position": self.position.tobytes(),
            "appearances": self.appearances.tobytes(),
            "block_hashes": dict(self.block_hashes),
            "message_arrival_ns": dict(self.message_arrival_ns),
            "counters": {
                "messages": self.messages,
                "repeated_messages": self.repeated_messages,
                "feed_transactions": self.feed_transactions,
                "matched": self.matched,
                "duplicate_appearances": self.duplicate_appearances,
                "register_conflicts": self.register_conflicts,
            },
            "duplicate_rows": list(self.duplicate_rows),
        }

    @classmethod
    def from_columns(cls, columns: dict[str, Any]) -> Correlator:
        correlator = cls(sequence_offset=columns["sequence_offset"])
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
        rows = array("q")
        rows.frombytes(columns["rows"])
        hashes = columns["hashes"]
        correlator._rows = {"0x" + hashes[i * 32 : i * 32 + 32].hex(): row for i, row in enumerate(rows)}
        correlator.block_hashes = dict(columns["block_hashes"])
        correlator.message_arrival_ns = dict(columns["message_arrival_ns"])
        for name, value in columns["counters"].items():
            setattr(correlator, name, value)
        correlator.duplicate_rows = list(columns["duplicate_rows"])
        return correlator
