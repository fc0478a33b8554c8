"""Faults that break one promise of a sequencer feed each, deterministically, with a record.

Why they exist: the feed checks (the client's gap and duplicate counters, the correlator's comparison
with the chain) only prove something once they have caught a feed that lies. Each fault here sits in a
:class:`~pytest_gashammer.fault.feed_proxy.FeedProxy` between an edge's feed client and a healthy feed
and breaks exactly one promise: messages arrive in sequence order with none missing; the feed carries
a block's transactions in block order; the feed's block hash is the chain's.

A feed fault sees the decoded messages of every frame, per client connection (``stream``), and returns
the messages to send now (fewer, more, reordered or rewritten). Messages are chosen by sequence
number, as they are first seen while armed, the same way on every connection and every time they are
served again (a reconnecting client gets the same lie).
"""

from __future__ import annotations

import bisect
import dataclasses
from collections.abc import Collection, Sequence
from typing import Any, ClassVar

from pytest_gashammer.chain.keccak import keccak256
from pytest_gashammer.fault.faults import Fault, Pick
from pytest_gashammer.feed.codec import FeedMessage, l2_message_for

__all__ = [
    "DropAndRenumber",
    "FeedFault",
    "MessageFault",
    "ReorderMessages",
    "ReorderTransactions",
    "SkipSequence",
    "WrongBlockHash",
    "with_transactions",
]


def with_transactions(message: FeedMessage, transactions: Sequence[bytes]) -> FeedMessage:
    """``message`` carrying ``transactions`` instead (``l2Msg`` and hashes rebuilt as a sequencer would)."""
    txs = tuple(bytes(tx) for tx in transactions)
    return dataclasses.replace(
        message,
        l2_msg=l2_message_for(txs),
        transactions=txs,
        tx_hashes=tuple("0x" + keccak256(tx).hex() for tx in txs),
    )


class FeedFault(Fault):
    """A fault on the feed path: override :meth:`on_messages` (and :meth:`on_stream_closed` for state)."""

    def on_messages(self, stream: int, messages: list[FeedMessage]) -> list[FeedMessage]:
        """The messages of one frame on connection ``stream``; returns the messages to send now."""
        return messages

    def on_stream_closed(self, stream: int) -> None:
        """Connection ``stream`` ended: drop whatever was kept for it."""


class MessageFault(FeedFault):
    """Chooses messages by sequence number: exactly one of ``sequence`` (a number or several), ``nth``
    (the nth distinct message seen while armed) or ``every`` (every kth), capped by ``count``. Only
    messages carrying at least ``min_txs`` transactions are candidates."""

    _min_txs: ClassVar[int] = 0
    #: Candidates carry at most this many transactions (None: any number).
    _max_txs: ClassVar[int | None] = None

    def __init__(
        self,
        *,
        sequence: int | Collection[int] | None = None,
        nth: int | None = None,
        every: int | None = None,
        count: int | None = None,
        min_txs: int = 0,
        armed: bool = True,
    ) -> None:
        super().__init__(armed=armed)
        if isinstance(min_txs, bool) or not isinstance(min_txs, int) or min_txs < 0:
            raise ValueError(
                f"{self.name}: min_txs={min_txs!r} must be a non-negative integer, e.g. min_txs=1"
            )
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
        self.min_txs = max(min_txs, self._min_txs)
        self._offered: set[int] = set()
        self._chosen: set[int] = set()

    def _is_chosen(self, message: FeedMessage) -> bool:
        seq = message.sequence_number
        if seq in self._chosen:
            return True
        carried = len(message.transactions)
        if not self._armed or seq in self._offered or carried < self.min_txs:
            return False
        if self._max_txs is not None and carried > self._max_txs:
            return False
        self._offered.add(seq)
        if len(self._offered) > 100_000:  # sequence numbers only grow: forget the oldest half
            floor = sorted(self._offered)[50_000]
            self._offered = {s for s in self._offered if s >= floor}
        if self._pick.offer(seq, seq):
            self._chosen.add(seq)
            return True
        return False

    def on_messages(self, stream: int, messages: list[FeedMessage]) -> list[FeedMessage]:
        """Each chosen message replaced by :meth:`_rewrite` of it, in place."""
        return [self._rewrite(message) if self._is_chosen(message) else message for message in messages]

    def _rewrite(self, message: FeedMessage) -> FeedMessage:
        """What a chosen message becomes; faults that only rewrite messages override this."""
        return message

    def __repr__(self) -> str:
        state = "armed" if self._armed else "disarmed"
        return f"<{self.name}({self._pick.describe()}) {state}, {len(self._affected)} affected>"


class SkipSequence(MessageFault):
    """Never delivers the chosen messages: the client sees a sequence gap where each one was.

    Breaks "every sequence number is delivered". Caught by ``feed_sequence`` (a gap at each number in
    :attr:`affected`). A skipped message that carried transactions also leaves them out of the feed, so
    ``feed_exactly_once`` names those (:attr:`events` lists them); choose with ``min_txs=0`` on an
    empty block to break the sequence alone.
    """

    breaks = "every sequence number is delivered"
    caught_by = ("feed_sequence",)

    def on_messages(self, stream: int, messages: list[FeedMessage]) -> list[FeedMessage]:
        kept = []
        for message in messages:
            if self._is_chosen(message):
                self._record(
                    message.sequence_number,
                    sequence=message.sequence_number,
                    block_hash=message.block_hash,
                    tx_hashes=list(message.tx_hashes),
                )
            else:
                kept.append(message)
        return kept


class ReorderMessages(MessageFault):
    """Delivers each chosen message after the one that follows it (a swap of two consecutive messages).

    Breaks "messages arrive in sequence order". Caught by ``feed_sequence``: the client sees a jump at
    each number in :attr:`affected`, then that number late, and says "out of order" (its
    ``out_of_order``, not ``gaps``). Nothing is lost or changed, so the feed-versus-chain checks pass.
    The message that releases a held one is delivered first and is not a candidate itself (so
    ``every=3`` counts the messages after it). A chosen message held when its connection ends is never
    delivered on that connection.
    """

    breaks = "messages arrive in sequence order"
    caught_by = ("feed_sequence",)

    def __init__(self, **choice: Any) -> None:
        super().__init__(**choice)
        self._held: dict[int, FeedMessage] = {}

    def on_messages(self, stream: int, messages: list[FeedMessage]) -> list[FeedMessage]:
        out: list[FeedMessage] = []
        held = self._held.pop(stream, None)
        for message in messages:
            if held is not None:
                out.append(message)
                out.append(held)
                self._record(
                    held.sequence_number, sequence=held.sequence_number, after=message.sequence_number
                )
                held = None
            elif self._is_chosen(message):
                held = message
            else:
                out.append(message)
        if held is not None:
            self._held[stream] = held
        return out

    def on_stream_closed(self, stream: int) -> None:
        self._held.pop(stream, None)


class ReorderTransactions(MessageFault):
    """Swaps two neighbouring transactions (``position`` and ``position + 1``, default the first two)
    inside each chosen message.

    Breaks "the feed carries a block's transactions in block order". Caught by ``feed_order``: exactly
    one order violation per message in :attr:`affected`, between the two transactions in
    :attr:`events` (``swapped``, in block order). Sequence numbers, hashes and contents are untouched.
    """

    breaks = "the feed carries transactions in block order"
    caught_by = ("feed_order",)
    _min_txs = 2

    def __init__(self, *, position: int = 0, min_txs: int = 0, **choice: Any) -> None:
        if isinstance(position, bool) or not isinstance(position, int) or position < 0:
            raise ValueError(
                f"ReorderTransactions: position={position!r} must be a non-negative index, e.g. 0"
            )
        super().__init__(min_txs=max(min_txs, position + 2), **choice)
        self.position = position

    def _rewrite(self, message: FeedMessage) -> FeedMessage:
        txs = list(message.transactions)
        i = self.position
        txs[i], txs[i + 1] = txs[i + 1], txs[i]
        self._record(
            message.sequence_number,
            sequence=message.sequence_number,
            swapped=[message.tx_hashes[i], message.tx_hashes[i + 1]],
            position=i,
        )
        return with_transactions(message, txs)


class WrongBlockHash(MessageFault):
    """Reports a wrong ``blockHash`` (a hash no block has) in each chosen message.

    Breaks "the feed's block hash is the chain's". Caught by ``feed_block_hash``: one hash mismatch
    per message in :attr:`affected`, with the feed's and the chain's hashes in :attr:`events`.
    """

    breaks = "the feed's block hash equals the chain's"
    caught_by = ("feed_block_hash",)

    def _rewrite(self, message: FeedMessage) -> FeedMessage:
        seed = (
            bytes.fromhex(message.block_hash[2:])
            if message.block_hash
            else message.sequence_number.to_bytes(8, "big")
        )
        wrong = "0x" + keccak256(b"gashammer:wrong-block-hash:" + seed).hex()
        self._record(
            message.sequence_number,
            sequence=message.sequence_number,
            block_hash=message.block_hash,
            reported=wrong,
        )
        return dataclasses.replace(message, block_hash=wrong)


class DropAndRenumber(MessageFault):
    """Leaves out each chosen empty block's message and numbers every later message one lower per
    message left out, so the sequence runs on without a gap.

    Breaks "every block has a feed message, numbered block minus the genesis block". The client sees
    no gap and no transaction goes missing (only empty blocks' messages are candidates), so only
    ``feed_matches_chain`` can catch it: the chain block no message names, with no sequence number
    missing to explain it. :attr:`affected` holds the original sequence numbers left out,
    :attr:`events` their block hashes. A client that reconnects after a drop asks for its next number
    in the renumbered count and is served the message it already has once more (a repeat per message
    left out before it).
    """

    breaks = "every block has a feed message, numbered block - genesis"
    caught_by = ("feed_matches_chain",)
    _max_txs = 0

    def __init__(self, **choice: Any) -> None:
        super().__init__(**choice)
        self._dropped: list[int] = []  # sequence numbers left out, ascending

    def on_messages(self, stream: int, messages: list[FeedMessage]) -> list[FeedMessage]:
        out = []
        for message in messages:
            seq = message.sequence_number
            if self._is_chosen(message):
                if not self._was_recorded(seq):
                    bisect.insort(self._dropped, seq)
                    self._record(seq, sequence=seq, block_hash=message.block_hash)
                continue
            shift = bisect.bisect_left(self._dropped, seq)
            out.append(dataclasses.replace(message, sequence_number=seq - shift) if shift else message)
        return out
