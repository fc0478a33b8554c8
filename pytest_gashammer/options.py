"""The plugin's command-line option names, declared once for ``addoption`` and every ``getoption``."""

SEED = "--gashammer-seed"
DURATION_SCALE = "--gashammer-duration-scale"
RPC_URL = "--gashammer-rpc-url"
WS_URL = "--gashammer-ws-url"
FEED_URL = "--gashammer-feed-url"
FUNDER_KEY = "--gashammer-funder-key"
CHAIN_ID = "--gashammer-chain-id"
ALLOW_CHAIN_ID = "--gashammer-allow-chain-id"
ANVIL = "--gashammer-anvil"
DEVNET = "--gashammer-devnet"
EDGES = "--gashammer-edges"
PARQUET = "--gashammer-parquet"
REPORT = "--gashammer-report"
PROGRESS = "--gashammer-progress"
NODE_HISTORY = "--gashammer-node-history"
CONTAINER_COMMAND = "--gashammer-container-command"
CONTAINER_READY = "--gashammer-container-ready"
NO_L1 = "--gashammer-no-l1"
L1_URL = "--gashammer-l1-url"
SEQUENCER_INBOX = "--gashammer-sequencer-inbox"
ROLLUP = "--gashammer-rollup"
BATCH_INTERVAL = "--gashammer-batch-interval"
ENGINE_URL = "--gashammer-engine-url"
JWT_SECRET = "--gashammer-jwt-secret"
SAVE = "--gashammer-save"
COMPARE = "--gashammer-compare"
COMPARE_FAIL = "--gashammer-compare-fail"
REPEAT = "--gashammer-repeat"
NETWORK_NODES = "--gashammer-network-nodes"
NETWORK_TOPOLOGY = "--gashammer-network-topology"
NETWORK_IMAGE = "--gashammer-network-image"
#: The marker that gives a test a network of its own (the network fixture reads it).
NETWORK_MARKER = "gashammer_network"
SERVE = "--gashammer-serve"
SERVE_TOKEN = "--gashammer-serve-token"

#: The values of ``--gashammer-devnet``: each names a started devnet's ``kind``. The first is the default.
#: ``container`` is written ``container:IMAGE`` (a preset name such as ``anvil``, or an image reference).
DEVNET_BACKENDS = ("embedded", "ethereumjs", "network", "nitro", "container")
#: The backends that run their node in a container (devnet/container.py).
CONTAINER_BACKENDS = ("nitro", "container")
#: The values of ``--gashammer-container-ready`` (devnet/container.py's READY_MODES).
CONTAINER_READY_MODES = ("block", "tx", "rpc")


#: The topologies of ``--gashammer-network-topology`` (network/network.py draws each).
NETWORK_TOPOLOGIES = ("mesh", "ring", "star", "line")
#: How many nodes the ``network`` fixture and ``--gashammer-devnet network`` start by default.
DEFAULT_NETWORK_NODES = 4


def backend_kind(value: str) -> str:
    """The backend a ``--gashammer-devnet`` value names: ``container:IMAGE`` is ``container``."""
    return "container" if value.startswith("container:") else value


#: The values of ``--gashammer-node-history`` (how much history the embedded anvil keeps); the first
#: is the default: pruned when the session's longest planned run is long, full otherwise.
NODE_HISTORY_MODES = ("auto", "full", "pruned")
#: ... where "long" means sending for more than this many seconds. Unpruned, anvil keeps every block,
#: transaction, receipt and trace, and a state per block, in memory: at 50 Mgas/s it grows by about
#: 11 MB a second, so a run of a few minutes is where the node's memory, not the chain under test,
#: starts to decide the outcome. Shorter sessions keep the full history that tests may query.
PRUNE_AFTER_SECONDS = 180.0
