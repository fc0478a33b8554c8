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

#: The values of ``--gashammer-devnet``: each names a started devnet's ``kind``. The first is the default.
DEVNET_BACKENDS = ("embedded", "ethereumjs")
