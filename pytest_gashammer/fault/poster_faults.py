"""Faults of the batch poster: a poster that lies on the L1, deterministically, with a record.

Why they exist: the L1 invariants (``blocks_posted``, ``batch_contents``) and the batch-lag objective
only prove something once they have caught a poster that breaks its promise. Each fault here is set
on a running :class:`~pytest_gashammer.l1.poster.BatchPoster` and breaks one promise of the batches
it posts to the real SequencerInbox:

- :class:`SkipBlocks` leaves chosen L2 blocks out of a batch's data while the batch still claims
  their message counts, so they are never posted;
- :class:`ReorderBatchTransactions` swaps the first two transactions of chosen blocks in the data;
- :class:`DuplicateBatch` posts a chosen batch's data again as the next batch, its message counts
  advanced past the blocks it repeats (the blocks whose messages the duplicate claims are never
  posted with their own contents);
- :class:`LateBatches` holds every batch ``delay`` seconds before posting it.

Set one with ``poster.fault = SkipBlocks(every=3)`` (``poster.fault = None`` ends it) or for a
block of code with ``with poster_fault(poster, SkipBlocks(every=3)):``; :meth:`Fault.disarm` stops
a fault choosing anything new. The data faults rewrite the poster's honest data, whatever encoder
made it: they decode it (:func:`~pytest_gashammer.l1.batch.decode_batch`), change the blocks and
encode them again (:func:`~pytest_gashammer.l1.batch.encode_batch`); data that is not a Nitro
batch of exactly those blocks is posted unchanged, and nothing is recorded for it.

What a fault did is recorded once it is on the L1 (:meth:`PosterFault.posted`): :attr:`Fault.affected`
holds the L2 block numbers (skips, reorders) or the batch sequence numbers (duplicates, late
batches), :attr:`Fault.events` the details, :attr:`PosterFault.effect` the counts. A batch that
fails and is posted again is recorded once, with the same choice. The hooks run on the poster's
thread; the record is safe to read from any thread.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Collection, Iterator
from typing import TYPE_CHECKING, Any

from pytest_gashammer.chain.keccak import keccak256
from pytest_gashammer.fault.faults import Fault, Pick
from pytest_gashammer.l1.batch import BatchBlock, BatchDecodeError, decode_batch, encode_batch
from pytest_gashammer.vocabulary import BATCH_CONTENTS, BATCH_LAG, BLOCKS_POSTED

if TYPE_CHECKING:
    from pytest_gashammer.l1.poster import BatchPoster, BatchRecord

__all__ = [
    "DuplicateBatch",
    "LateBatches",
    "PosterFault",
    "ReorderBatchTransactions",
    "SkipBlocks",
    "poster_fault",
]


class PosterFault(Fault):
    """Base of the poster's faults: the :class:`~pytest_gashammer.l1.poster.PosterHooks` methods,
    each changing nothing unless a fault overrides it, and :attr:`effect`."""

    def hold_seconds(self, sequence_number: int, blocks: list[dict[str, Any]]) -> float:
        return 0.0

    def batch_data(self, sequence_number: int, blocks: list[dict[str, Any]], data: bytes) -> bytes | None:
        return None

    def posted(self, record: BatchRecord) -> None:
        """A batch is on the L1: record what this fault did to it."""

    def post_again(self, record: BatchRecord) -> bool:
        return False

    @property
    def effect(self) -> dict[str, Any]:
        """What the fault did on the L1, as counts."""
        return {"affected": len(self.affected)}

    def __repr__(self) -> str:
        state = "armed" if self._armed else "disarmed"
        effect = ", ".join(f"{key}={value}" for key, value in self.effect.items())
        return f"<{self.name} {state}, {effect}>"


@contextlib.contextmanager
def poster_fault(poster: BatchPoster, fault: PosterFault) -> Iterator[PosterFault]:
    """``fault`` set on ``poster`` for the ``with`` block; the poster's previous fault (usually none)
    is back afterwards, also when the block raises."""
    previous = poster.fault
    poster.fault = fault
    try:
        yield fault
    finally:
        poster.fault = previous


def _block_number(block: dict[str, Any]) -> int:
    return int(block["number"], 16)


def _decoded_blocks(blocks: list[dict[str, Any]], data: bytes) -> tuple[BatchBlock, ...] | None:
    """The batch blocks ``data`` holds, one per L2 block of ``blocks`` in order; None when ``data`` is
    not a Nitro batch of exactly those blocks (another flag, delayed messages, another count)."""
    try:
        decoded = decode_batch(data)
    except BatchDecodeError:
        return None
    if decoded.delayed_messages or len(decoded.blocks) != len(blocks):
        return None
    return decoded.blocks


class _BlockChoice(PosterFault):
    """Chooses L2 blocks by number as batches offer them while armed: exactly one of ``nth`` (the nth
    candidate), ``every`` (every kth) or ``numbers`` (exactly these), capped by ``count``. A chosen
    block stays chosen, so a batch posted again after a failure is changed the same way."""

    def __init__(
        self,
        *,
        nth: int | None = None,
        every: int | None = None,
        numbers: Collection[int] | None = None,
        count: int | None = None,
        armed: bool = True,
    ) -> None:
        super().__init__(armed=armed)
        self._pick = Pick(
            self.name,
            nth=nth,
            every=every,
            keys=numbers,
            keys_name="numbers",
            count=count,
            allow_one_in=False,
        )
        self._offered: set[int] = set()
        self._chosen: set[int] = set()
        #: Per sequence number, what the batch's data was changed to say, until it is on the L1.
        self._staged: dict[int, list[dict[str, Any]]] = {}

    def _is_chosen(self, number: int) -> bool:
        """Whether block ``number`` is chosen, offering it the first time a batch offers it while armed."""
        if number in self._chosen:
            return True
        if not self._armed or number in self._offered:
            return False
        self._offered.add(number)
        if len(self._offered) > 100_000:  # block numbers only grow: forget the oldest half
            floor = sorted(self._offered)[50_000]
            self._offered = {offered for offered in self._offered if offered >= floor}
        if self._pick.offer(number, number):
            self._chosen.add(number)
            return True
        return False

    def posted(self, record: BatchRecord) -> None:
        for detail in self._staged.pop(record.sequence_number, ()):
            self._record(detail["block"], **detail, batch=record.sequence_number)

    def _batches(self) -> int:
        return len({event["batch"] for event in self.events})


class SkipBlocks(_BlockChoice):
    """Leaves the chosen L2 blocks out of a batch's data; the batch still claims their message counts.

    Breaks "every L2 block is posted, in the batch that claims it": the skipped blocks are never
    posted, and the batch holds fewer messages than its counts say. Caught by ``blocks_posted`` (the
    blocks in :attr:`affected`) and ``batch_contents`` (the batches that claimed them). A batch's last
    block is never a candidate, so every batch still carries a block.
    """

    breaks = "every L2 block a batch claims is in its data"
    caught_by = (BLOCKS_POSTED, BATCH_CONTENTS)

    def batch_data(self, sequence_number: int, blocks: list[dict[str, Any]], data: bytes) -> bytes | None:
        self._staged.pop(sequence_number, None)
        skipped = [index for index, block in enumerate(blocks[:-1]) if self._is_chosen(_block_number(block))]
        if not skipped:
            return None
        decoded = _decoded_blocks(blocks, data)
        if decoded is None:
            return None
        self._staged[sequence_number] = [{"block": _block_number(blocks[index])} for index in skipped]
        return encode_batch([block for index, block in enumerate(decoded) if index not in skipped])

    @property
    def effect(self) -> dict[str, Any]:
        return {"batches": self._batches(), "blocks_skipped": len(self.affected)}


class ReorderBatchTransactions(_BlockChoice):
    """Swaps the first two transactions of the chosen L2 blocks in a batch's data.

    Breaks "a batch carries each block's transactions in block order". Caught by ``batch_contents``
    at each block in :attr:`affected` (its event names the two transaction hashes, in block order).
    Only blocks with at least two transactions are candidates.
    """

    breaks = "a batch carries each block's transactions in block order"
    caught_by = (BATCH_CONTENTS,)

    def batch_data(self, sequence_number: int, blocks: list[dict[str, Any]], data: bytes) -> bytes | None:
        self._staged.pop(sequence_number, None)
        decoded = _decoded_blocks(blocks, data)
        if decoded is None:
            return None
        changed: list[BatchBlock] = []
        staged: list[dict[str, Any]] = []
        for block, carried in zip(blocks, decoded, strict=True):
            transactions = carried.transactions
            if len(transactions) >= 2 and self._is_chosen(_block_number(block)):
                first, second, *rest = transactions
                carried = BatchBlock(carried.timestamp, carried.l1_block_number, (second, first, *rest))
                staged.append(
                    {
                        "block": _block_number(block),
                        "swapped": ["0x" + keccak256(first).hex(), "0x" + keccak256(second).hex()],
                    }
                )
            changed.append(carried)
        if not staged:
            return None
        self._staged[sequence_number] = staged
        return encode_batch(changed)

    @property
    def effect(self) -> dict[str, Any]:
        return {"batches": self._batches(), "blocks_reordered": len(self.affected)}


class DuplicateBatch(PosterFault):
    """Posts the chosen batches' data again as the next batch, its message counts advanced past the
    blocks it repeats.

    Choose with exactly one of ``nth`` (the nth batch posted while armed), ``every`` (every kth) or
    ``sequence`` (these sequence numbers), capped by ``count``. Breaks "each batch carries the L2
    blocks of the messages it claims": the duplicate holds the earlier blocks' transactions where the
    next blocks belong, and those next blocks are never posted with their own contents. Caught by
    ``batch_contents``, naming the duplicates (the sequence numbers in :attr:`affected`; each event
    names the batch it repeats).
    """

    breaks = "each batch carries the L2 blocks of the messages it claims, none posted twice"
    caught_by = (BATCH_CONTENTS,)

    def __init__(
        self,
        *,
        nth: int | None = None,
        every: int | None = None,
        sequence: int | Collection[int] | None = None,
        count: int | None = None,
        armed: bool = True,
    ) -> None:
        super().__init__(armed=armed)
        sequences = [sequence] if isinstance(sequence, int) else sequence
        self._pick = Pick(
            self.name,
            nth=nth,
            every=every,
            keys=sequences,
            keys_name="sequence",
            count=count,
            allow_one_in=False,
        )
        self._offered: set[int] = set()

    def post_again(self, record: BatchRecord) -> bool:
        if not self._armed or record.sequence_number in self._offered:
            return False
        self._offered.add(record.sequence_number)
        return self._pick.offer(record.sequence_number, record.sequence_number)

    def posted(self, record: BatchRecord) -> None:
        if record.duplicate_of is None:
            return
        self._record(
            record.sequence_number,
            batch=record.sequence_number,
            duplicate_of=record.duplicate_of,
            blocks=[record.first_block, record.last_block],
            messages=[record.prev_message_count, record.new_message_count],
        )

    @property
    def effect(self) -> dict[str, Any]:
        return {"batches_duplicated": len(self.affected)}


class LateBatches(PosterFault):
    """Holds each batch ``delay`` seconds before posting it (at most ``count`` batches, if given).

    Breaks "a block is posted promptly": every block it holds reaches the L1 at least ``delay`` later
    than the poster would have sent it. Caught by the batch-lag objective (``slo={"batch_lag_p99":
    ...}`` under the delay); :attr:`affected` holds the late batches' sequence numbers. A poster
    stopped while it holds a batch sends nothing.
    """

    breaks = "a batch is posted as soon as the poster has its blocks"
    # The SLO objective on the batch-posting lag (the L1 objectives of the vocabulary).
    caught_by = (f"{BATCH_LAG}_p99",)

    def __init__(self, *, delay: float, count: int | None = None, armed: bool = True) -> None:
        if isinstance(delay, bool) or not isinstance(delay, int | float) or not 0 < delay < math.inf:
            raise ValueError(
                f"LateBatches: delay={delay!r} must be a positive number of seconds, e.g. delay=5"
            )
        if count is not None and (isinstance(count, bool) or not isinstance(count, int) or count < 1):
            raise ValueError(f"LateBatches: count={count!r} must be a positive integer, or None for no cap")
        super().__init__(armed=armed)
        self.delay = float(delay)
        self.count = count
        self._held: set[int] = set()

    def hold_seconds(self, sequence_number: int, blocks: list[dict[str, Any]]) -> float:
        if sequence_number not in self._held:
            if not self._armed or (self.count is not None and len(self._held) >= self.count):
                return 0.0
            self._held.add(sequence_number)
        return self.delay

    def posted(self, record: BatchRecord) -> None:
        if record.sequence_number in self._held:
            self._record(
                record.sequence_number,
                batch=record.sequence_number,
                blocks=[record.first_block, record.last_block],
                held_s=self.delay,
            )

    @property
    def effect(self) -> dict[str, Any]:
        late = len(self.affected)
        return {"batches_held": late, "held_s": late * self.delay}
