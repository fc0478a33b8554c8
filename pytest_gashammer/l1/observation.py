"""What the L1 monitor saw, as plain data: the L2 blocks, the batches, the assertions, the readings.

:class:`~pytest_gashammer.l1.monitor.L1Monitor` fills an :class:`L1Observation`;
``oracle/l1.py`` turns one into figures and verdicts. Nothing here talks to a node, so the oracle's
tests build observations by hand. Times (``seen_at``) are the monitor's clock: the run clock when a
hive runs it.
"""

from __future__ import annotations

import dataclasses

#: EIP-2718 types from this one up are Arbitrum's own (deposits, retryables, the start-of-block
#: internal transaction): a Nitro L2 block holds them, but no sequencer batch carries them.
ARBITRUM_TX_TYPES_FROM = 0x64

#: ``BatchDataLocation`` values of SequencerBatchDelivered (IBridge.sol).
LOCATION_TX_INPUT = 0
LOCATION_SEPARATE_EVENT = 1
LOCATION_NO_DATA = 2
LOCATION_BLOB = 3

#: Why a batch's messages are unknown, when the monitor could not read them (the L1 invariants that
#: need them are then inconclusive for its blocks) ...
UNREADABLE = "unreadable"
#: ... and when it read them and they are not a batch Nitro reads as blocks (``batch_contents`` fails).
MALFORMED = "malformed"


@dataclasses.dataclass(frozen=True)
class SeenL2Block:
    """One L2 block, as the monitor first saw it."""

    number: int
    hash: str
    parent_hash: str
    seen_at: float
    #: Hashes of the transactions a batch carries, in block order (Arbitrum-internal ones left out).
    transactions: tuple[str, ...]
    #: Arbitrum-internal transactions the block also holds (types 0x64 and up), in no batch.
    internal_transactions: int = 0
    #: False once the monitor stopped keeping hashes (``max_tracked_transactions``): only counted.
    hashes_kept: bool = True


@dataclasses.dataclass(frozen=True)
class BatchMessage:
    """One message of a batch: its index in the inbox and, for an L2 message, its transactions' hashes
    (keccak of each signed transaction, in order); ``None`` for a delayed-inbox message."""

    index: int
    transactions: tuple[str, ...] | None


@dataclasses.dataclass(frozen=True)
class SeenBatch:
    """One ``SequencerBatchDelivered``, with what its posting transaction says."""

    sequence_number: int
    before_acc: str
    after_acc: str
    delayed_acc: str
    #: ``afterDelayedMessagesRead``: the delayed messages read once this batch is.
    delayed_messages_read: int
    #: minTimestamp, maxTimestamp, minBlockNumber, maxBlockNumber.
    time_bounds: tuple[int, int, int, int]
    data_location: int
    l1_block: int
    log_index: int
    l1_tx: str
    seen_at: float
    #: The SequencerInbox function the transaction called (``None`` until read, or not one of them).
    entry_point: str | None = None
    prev_message_count: int | None = None
    new_message_count: int | None = None
    data_bytes: int | None = None
    l1_gas: int | None = None
    #: The batch's messages in order, ``None`` when unknown (``decode_error`` says why).
    messages: tuple[BatchMessage, ...] | None = None
    decode_error: str | None = None
    #: :data:`UNREADABLE` or :data:`MALFORMED` when ``decode_error`` is set.
    decode_problem: str | None = None

    @property
    def message_range(self) -> range | None:
        """The inbox message indices the batch's call says it carries, ``None`` when unknown."""
        if self.prev_message_count is None or self.new_message_count is None:
            return None
        return range(self.prev_message_count, self.new_message_count)


@dataclasses.dataclass(frozen=True)
class SeenAssertion:
    """One ``AssertionCreated`` and, once seen, its ``AssertionConfirmed``."""

    assertion_hash: str
    parent_hash: str
    #: The after state's batch (``globalState.u64Vals[0]``): the assertion covers the batches before it.
    inbox_position: int
    #: The after state's L2 block hash (``globalState.bytes32Vals[0]``).
    l2_block_hash: str
    after_inbox_acc: str
    created_l1_block: int
    created_at: float
    confirmed_l1_block: int | None = None
    confirmed_at: float | None = None


@dataclasses.dataclass(frozen=True)
class SeenConfirmation:
    """One ``AssertionConfirmed``, in log order."""

    assertion_hash: str
    l1_block: int
    log_index: int
    seen_at: float


@dataclasses.dataclass(frozen=True)
class Reading:
    """A contract read at an L1 block: ``batchCount()``, ``latestConfirmed()`` or the Bridge's
    ``sequencerReportedSubMessageCount()``; kept when the value changed."""

    l1_block: int
    value: int | str
    seen_at: float


@dataclasses.dataclass(frozen=True)
class L1Observation:
    """Everything the monitor saw, at one moment."""

    l1_rpc_url: str
    sequencer_inbox: str
    rollup: str | None
    #: L2 block number = inbox message index + this (the chain's genesis block number).
    l2_block_offset: int
    from_l1_block: int
    #: The last L1 block whose logs were read (``from_l1_block - 1`` before the first).
    synced_to_l1_block: int
    #: The newest L1 head the monitor saw.
    l1_head: int
    first_l2_block: int
    l2_blocks: tuple[SeenL2Block, ...]
    batches: tuple[SeenBatch, ...]
    assertions: tuple[SeenAssertion, ...] = ()
    confirmations: tuple[SeenConfirmation, ...] = ()
    batch_counts: tuple[Reading, ...] = ()
    latest_confirmed: tuple[Reading, ...] = ()
    reported_message_counts: tuple[Reading, ...] = ()
    #: The Bridge's accumulator before the first batch seen, ``(sequence number, acc)``, when it was
    #: not batch 0: what that batch's ``beforeAcc`` must be.
    prior_accumulator: tuple[int, str] | None = None
    #: What went wrong while watching (RPC failures, data that could not be read), oldest first, at
    #: most the monitor's ``max_problems``; ``problem_count`` counts them all.
    problems: tuple[str, ...] = ()
    problem_count: int = 0

    def l2_block_of(self, message_index: int) -> int:
        return message_index + self.l2_block_offset
