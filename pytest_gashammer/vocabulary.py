"""The names users write and verdicts carry: the invariants and the SLO objectives, declared once.

Marker validation (``invariants=``, ``skip_invariants=``, ``slo=``), the oracle that implements
each name, and the faults that say which invariant catches them all spell a name through these
constants. This module sits on the ground floor, beside ``errors``, so that every layer may import
it; ``tests/unit/test_vocabulary.py`` holds it equal to what the oracle implements.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

# ----------------------------------------------------------------------------------------------
# invariants, in catalogue order (the order verdicts are reported in)

INCLUSION = "inclusion"
NO_DUPLICATE_INCLUSION = "no_duplicate_inclusion"
NONCE_CONTIGUITY = "nonce_contiguity"
RECEIPT_STATUS = "receipt_status"
#: A receipt names the block the transaction was seen in (number and hash).
RECEIPT_BLOCK = "receipt_block"
GAS_MODEL = "gas_model"
BLOCK_CONTINUITY = "block_continuity"
BLOCK_TIMESTAMPS = "block_timestamps"
BLOCK_GAS = "block_gas"
BLOCK_PRODUCTION = "block_production"
BALANCE_CONSERVATION = "balance_conservation"
FEED_SEQUENCE = "feed_sequence"
FEED_EXACTLY_ONCE = "feed_exactly_once"
FEED_ORDER = "feed_order"
FEED_BLOCK_HASH = "feed_block_hash"
#: The feed's messages map onto the chain's blocks: every block has one, none holds two blocks, none
#: carries a transaction the chain never included.
FEED_MATCHES_CHAIN = "feed_matches_chain"
#: The node took the run's load: something sent, something accepted, few refused.
ACCEPTANCE = "acceptance"

INVARIANT_NAMES: tuple[str, ...] = (
    INCLUSION,
    NO_DUPLICATE_INCLUSION,
    NONCE_CONTIGUITY,
    RECEIPT_STATUS,
    RECEIPT_BLOCK,
    GAS_MODEL,
    BLOCK_CONTINUITY,
    BLOCK_TIMESTAMPS,
    BLOCK_GAS,
    BLOCK_PRODUCTION,
    BALANCE_CONSERVATION,
    FEED_SEQUENCE,
    FEED_EXACTLY_ONCE,
    FEED_ORDER,
    FEED_BLOCK_HASH,
    FEED_MATCHES_CHAIN,
    ACCEPTANCE,
)
# ----------------------------------------------------------------------------------------------
# L1 invariants: what the L1 monitor checks when the target has an L1 (``oracle/l1.py``), in the
# order their verdicts are reported, after the invariants above

#: Batch sequence numbers are contiguous: none missing, none twice.
BATCH_SEQUENCE = "batch_sequence"
#: Each batch's ``beforeAcc`` is the previous batch's ``afterAcc``.
BATCH_ACCUMULATORS = "batch_accumulators"
#: Every L2 block of the run was posted in a batch before the monitor stopped waiting.
BLOCKS_POSTED = "blocks_posted"
#: The decoded batches hold the L2 blocks: the same transactions, in the same order.
BATCH_CONTENTS = "batch_contents"
#: Assertions are confirmed in order, and the confirmed position never goes backwards.
CONFIRMATIONS = "confirmations"
L1_INVARIANT_NAMES: tuple[str, ...] = (
    BATCH_SEQUENCE,
    BATCH_ACCUMULATORS,
    BLOCKS_POSTED,
    BATCH_CONTENTS,
    CONFIRMATIONS,
)
# ----------------------------------------------------------------------------------------------
# Engine API invariants: what the consensus driver's calls must show when the plugin builds the
# target's blocks (``oracle/engine.py``), reported after the L1's

#: Every payload the client built was VALID when handed back to it (newPayload).
ENGINE_PAYLOAD_VALID = "engine_payload_valid"
#: After forkchoiceUpdated to a new block, that block is the head (the call said VALID, the node's
#: JSON-RPC names it).
ENGINE_HEAD = "engine_head"
#: Every VALID status names the block it validated as latestValidHash; an INVALID one names an ancestor.
ENGINE_LATEST_VALID_HASH = "engine_latest_valid_hash"
#: Every build asked for got a payload id, and every payload id was served by getPayload.
ENGINE_PAYLOAD_IDS = "engine_payload_ids"
#: No transaction stays in the client's pool once the driver has built blocks after the run (the drain).
ENGINE_POOL_DRAINED = "engine_pool_drained"
ENGINE_INVARIANT_NAMES: tuple[str, ...] = (
    ENGINE_PAYLOAD_VALID,
    ENGINE_HEAD,
    ENGINE_LATEST_VALID_HASH,
    ENGINE_PAYLOAD_IDS,
    ENGINE_POOL_DRAINED,
)
# ----------------------------------------------------------------------------------------------
# network invariants: what every node of a multi-node devnet must agree on after the run
# (``oracle/network.py``), reported after the engine's

#: Every node reaches the builder's head within a bound after the load ends.
NETWORK_CONVERGED = "network_converged"
#: Every node holds the same block hash and state root at each height of the run they share.
NETWORK_SAME_BLOCKS = "network_same_blocks"
#: Every included transaction of the run (a bounded sample) has its receipt on every node.
NETWORK_RECEIPTS = "network_receipts"
#: No node is still syncing (``eth_syncing`` not false) past a bound after the load ends.
NETWORK_SYNCING = "network_syncing"
NETWORK_INVARIANT_NAMES: tuple[str, ...] = (
    NETWORK_CONVERGED,
    NETWORK_SAME_BLOCKS,
    NETWORK_RECEIPTS,
    NETWORK_SYNCING,
)
#: Every invariant name the marker's ``invariants=`` and ``skip_invariants=`` accept.
ALL_INVARIANT_NAMES: tuple[str, ...] = (
    INVARIANT_NAMES + L1_INVARIANT_NAMES + ENGINE_INVARIANT_NAMES + NETWORK_INVARIANT_NAMES
)


def selected_invariants(
    catalogue: Iterable[str], only: Sequence[str] | None, skip: Sequence[str]
) -> list[str]:
    """The names of ``catalogue`` a plan asks for (``invariants=`` / ``skip_invariants=``), in its order."""
    return [name for name in catalogue if (only is None or name in only) and name not in skip]


#: The transaction invariants of the first release.
BASIC_INVARIANT_NAMES: tuple[str, ...] = (INCLUSION, NO_DUPLICATE_INCLUSION, NONCE_CONTIGUITY, RECEIPT_STATUS)

# ----------------------------------------------------------------------------------------------
# SLO objectives: ``<latency>_<statistic>`` bounds in seconds, then ratios, then counts

LATENCY_KINDS: tuple[str, ...] = ("accept", "inclusion", "feed")
LATENCY_STATISTICS: tuple[str, ...] = ("p50", "p90", "p99", "max")
LATENCY_OBJECTIVES: tuple[str, ...] = tuple(
    f"{kind}_{statistic}" for kind in LATENCY_KINDS for statistic in LATENCY_STATISTICS
)
#: The batch-posting lag of the run's L2 blocks (``RunResult.l1.batch_lag``), where the target has an L1.
BATCH_LAG = "batch_lag"
L1_LAG_OBJECTIVES: tuple[str, ...] = tuple(f"{BATCH_LAG}_{statistic}" for statistic in LATENCY_STATISTICS)
#: Engine API latencies (``RunResult.engine``), where the plugin drives the target's blocks: per call
#: method, and per block the build (fcU with attributes + getPayload) and the import (newPayload + fcU).
ENGINE_LATENCY_KINDS: tuple[str, ...] = (
    "forkchoice_updated",
    "get_payload",
    "new_payload",
    "block_build",
    "block_import",
)
ENGINE_OBJECTIVE_PREFIX = "engine_"
ENGINE_OBJECTIVES: tuple[str, ...] = tuple(
    f"{ENGINE_OBJECTIVE_PREFIX}{kind}_{statistic}"
    for kind in ENGINE_LATENCY_KINDS
    for statistic in LATENCY_STATISTICS
)
MIN_GAS_RATIO = "min_gas_ratio"
MAX_ERROR_RATE = "max_error_rate"
MAX_LOST = "max_lost"
#: Every fault on the run's timeline recovered within this many seconds of its end.
RECOVERY_S = "recovery_s"
#: Transactions lost while faults were active (summed over the faults), at most this many.
FAULT_LOST = "fault_lost"
RATIO_OBJECTIVES: tuple[str, ...] = (MIN_GAS_RATIO, MAX_ERROR_RATE)
COUNT_OBJECTIVES: tuple[str, ...] = (MAX_LOST, FAULT_LOST)
#: Bounds in seconds that are not latencies of a transaction.
DURATION_OBJECTIVES: tuple[str, ...] = (RECOVERY_S, *L1_LAG_OBJECTIVES, *ENGINE_OBJECTIVES)
OBJECTIVES: tuple[str, ...] = LATENCY_OBJECTIVES + RATIO_OBJECTIVES + COUNT_OBJECTIVES + DURATION_OBJECTIVES

SLO_VERDICT_PREFIX = "slo."


def slo_verdict_name(objective: str) -> str:
    """The name of the verdict an objective turns into, e.g. ``slo.inclusion_p99``."""
    return f"{SLO_VERDICT_PREFIX}{objective}"


# ----------------------------------------------------------------------------------------------
# node operations: what a node fault asks of a devnet's node control (``devnet/control.py``)

NODE_PAUSE = "pause"
NODE_RESTART = "restart"
NODE_MINING_STOP = "mining_stop"
NODE_SLOW_BLOCKS = "slow_blocks"
NODE_OPERATIONS: frozenset[str] = frozenset({NODE_PAUSE, NODE_RESTART, NODE_MINING_STOP, NODE_SLOW_BLOCKS})

# ----------------------------------------------------------------------------------------------
# where a run's edges send their transactions on a multi-node devnet (the marker's ``network={...}``)

#: Every transaction to the builder (node0), the devnet's ``rpc_url``.
SEND_TO_BUILDER = "builder"
#: Each sender's transactions to one node, the senders spread round-robin over every node.
SEND_TO_SPREAD = "spread"
SEND_TO_CHOICES: tuple[str, ...] = (SEND_TO_BUILDER, SEND_TO_SPREAD)
