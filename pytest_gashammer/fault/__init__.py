"""Fault injection: loopback proxies that break exactly one promise of a healthy chain each, or make
the path to it misbehave for a while.

:class:`RpcProxy` sits in front of a node's JSON-RPC endpoint and :class:`FeedProxy` in front of its
sequencer feed; the faults they apply (:mod:`.faults` for JSON-RPC, :mod:`.feed_faults` for the feed)
are deterministic and record what they broke, so a test can assert that the oracle fails exactly the
invariant guarding that promise and names exactly those items. The batch poster's faults
(:mod:`.poster_faults`: skipped blocks, reordered transactions, a batch posted twice, late batches)
are set on a running :class:`~pytest_gashammer.l1.poster.BatchPoster` and make its L1 batches lie. Timeline faults (:mod:`.rpc_timeline`,
:mod:`.feed_timeline`: latency, errors, resets, a black hole, a thin pipe; a feed that disconnects,
stalls or loses messages) are conditions a healthy chain must survive, armed and disarmed from any
thread while a run goes on, each recording its windows and what it touched. :class:`EngineProxy` sits
between a consensus driver and an execution client's Engine API, where the Engine API faults
(:mod:`.engine_proxy`: SYNCING, a made-up INVALID, a withheld payload) make the client stop
cooperating for a while. See ``docs/faults.md``.

Importing this package loads neither aiohttp nor websockets; the proxies import them when they start.
"""

from pytest_gashammer.fault._server import FaultProxyError
from pytest_gashammer.fault.engine_proxy import (
    EngineFault,
    EngineInvalid,
    EngineProxy,
    EngineSyncing,
    EngineWithholdPayload,
)
from pytest_gashammer.fault.faults import (
    BlockFault,
    BreakParentHash,
    DropTransactions,
    DuplicateInclusion,
    Fault,
    Pick,
    ReorderBlockTimestamps,
    RpcCall,
    RpcFault,
    TransactionFault,
    WrongReceiptBlock,
    WrongReceiptStatus,
)
from pytest_gashammer.fault.feed_faults import (
    DropAndRenumber,
    FeedFault,
    MessageFault,
    ReorderMessages,
    ReorderTransactions,
    SkipSequence,
    WrongBlockHash,
)
from pytest_gashammer.fault.feed_proxy import FeedProxy, FeedProxyStats
from pytest_gashammer.fault.feed_timeline import FeedDisconnect, FeedDrop, FeedStall, FeedTimelineFault
from pytest_gashammer.fault.poster_faults import (
    DuplicateBatch,
    LateBatches,
    PosterFault,
    ReorderBatchTransactions,
    SkipBlocks,
    poster_fault,
)
from pytest_gashammer.fault.rpc_proxy import RpcProxy, RpcProxyStats
from pytest_gashammer.fault.rpc_timeline import (
    RpcBandwidth,
    RpcBlackhole,
    RpcError,
    RpcLatency,
    RpcReset,
    RpcTimelineFault,
)
from pytest_gashammer.fault.switched import TimelineFault

__all__ = [
    "BlockFault",
    "BreakParentHash",
    "DropAndRenumber",
    "DropTransactions",
    "DuplicateBatch",
    "DuplicateInclusion",
    "EngineFault",
    "EngineInvalid",
    "EngineProxy",
    "EngineSyncing",
    "EngineWithholdPayload",
    "Fault",
    "FaultProxyError",
    "FeedDisconnect",
    "FeedDrop",
    "FeedFault",
    "FeedProxy",
    "FeedProxyStats",
    "FeedStall",
    "FeedTimelineFault",
    "LateBatches",
    "MessageFault",
    "Pick",
    "PosterFault",
    "ReorderBatchTransactions",
    "ReorderBlockTimestamps",
    "ReorderMessages",
    "ReorderTransactions",
    "RpcBandwidth",
    "RpcBlackhole",
    "RpcCall",
    "RpcError",
    "RpcFault",
    "RpcLatency",
    "RpcProxy",
    "RpcProxyStats",
    "RpcReset",
    "RpcTimelineFault",
    "SkipBlocks",
    "SkipSequence",
    "TimelineFault",
    "TransactionFault",
    "WrongBlockHash",
    "WrongReceiptBlock",
    "WrongReceiptStatus",
    "poster_fault",
]
