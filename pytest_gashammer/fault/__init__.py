"""Fault injection: loopback proxies that break exactly one promise of a healthy chain each.

:class:`RpcProxy` sits in front of a node's JSON-RPC endpoint and :class:`FeedProxy` in front of its
sequencer feed; the faults they apply (:mod:`.faults` for JSON-RPC, :mod:`.feed_faults` for the feed)
are deterministic and record what they broke, so a test can assert that the oracle fails exactly the
invariant guarding that promise and names exactly those items. See ``docs/faults.md``.

Importing this package loads neither aiohttp nor websockets; the proxies import them when they start.
"""

from pytest_gashammer.fault._server import FaultProxyError
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
from pytest_gashammer.fault.rpc_proxy import RpcProxy, RpcProxyStats

__all__ = [
    "BlockFault",
    "BreakParentHash",
    "DropAndRenumber",
    "DropTransactions",
    "DuplicateInclusion",
    "Fault",
    "FaultProxyError",
    "FeedFault",
    "FeedProxy",
    "FeedProxyStats",
    "MessageFault",
    "Pick",
    "ReorderBlockTimestamps",
    "ReorderMessages",
    "ReorderTransactions",
    "RpcCall",
    "RpcFault",
    "RpcProxy",
    "RpcProxyStats",
    "SkipSequence",
    "TransactionFault",
    "WrongBlockHash",
    "WrongReceiptBlock",
    "WrongReceiptStatus",
]
