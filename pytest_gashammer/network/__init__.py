"""Multi-node networks of execution clients: nodes, links, events, snapshots and simulation steps.

``Network`` starts N ``@ethereumjs/client`` nodes on loopback with one builder and cuttable devp2p
links; ``Step``/``expect`` run simulation steps on it; ``NetworkDevnet`` makes it a load test's
devnet. See docs/network.md.
"""

from pytest_gashammer.network.devnet import NetworkDevnet
from pytest_gashammer.network.events import Subscription
from pytest_gashammer.network.network import TOPOLOGIES, Network, topology_edges
from pytest_gashammer.network.node import NetworkNode
from pytest_gashammer.network.steps import NodeOutcome, Step, StepFailed, StepResult, expect

__all__ = [
    "TOPOLOGIES",
    "Network",
    "NetworkDevnet",
    "NetworkNode",
    "NodeOutcome",
    "Step",
    "StepFailed",
    "StepResult",
    "Subscription",
    "expect",
    "topology_edges",
]
