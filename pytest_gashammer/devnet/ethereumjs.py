"""The EthereumJS devnet: a real execution client, ``@ethereumjs/client``, driven by the plugin.

The pinned npm package is installed into the user cache like anvil (once, under a file lock) and
run with the machine's Node.js. The plugin writes a post-merge genesis (every fork through Cancun
at genesis, terminal total difficulty 0, base fee 1 gwei, the Nitro dev account funded, so the
same funder works on every backend), a fresh JWT secret, and starts the node with its JSON-RPC and
its Engine API on free loopback ports, peering and discovery off. Post-merge the node builds no
block by itself: a :class:`~pytest_gashammer.devnet.consensus.ConsensusDriver` in this process
builds one every second over the Engine API.

What the client cannot be told: its RLPx listener binds 0.0.0.0 on ``--port`` whatever
``--extIP`` says (there is no bind option), so the devnet gives it a free port and no peers
(``--maxPeers 0``, no discovery); its WebSocket server ignores its address option, so it is not
enabled (``ws_url`` is None and runs poll for blocks).

Node faults pause, restart and re-pace it through :class:`EthereumJSControl`
(:meth:`EthereumJSDevnet.node_control`).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from pytest_gashammer.chain.engine import JWT_SECRET_BYTES, EngineClient, EngineError
from pytest_gashammer.chain.rpc import RpcError, TransportError, call
from pytest_gashammer.devnet.base import (
    FUNDER_BALANCE_WEI,
    NITRO_DEV_ADDRESS,
    NITRO_DEV_KEY,
    Devnet,
    Funder,
    free_port,
)
from pytest_gashammer.devnet.consensus import DEFAULT_INTERVAL, ConsensusDriver
from pytest_gashammer.devnet.control import NODE_OPERATIONS, NodeControl
from pytest_gashammer.devnet.npm import install_into_cache
from pytest_gashammer.devnet.process import ManagedProcess, ProcessHandle
from pytest_gashammer.errors import DevnetError

EJS_VERSION = "0.10.5"
NPM_PACKAGE = "@ethereumjs/client"
#: Chain id of the EthereumJS devnet: the usual local-development id, not any public chain's.
ETHEREUMJS_CHAIN_ID = 1337
BLOCK_GAS_LIMIT = 30_000_000  # the client keeps its parent's gas limit: this one, for good
BASE_FEE_WEI = 10**9
MIN_NODE_MAJOR = 18  # the package's engines.node
PORT_ATTEMPTS = 5
#: How long a restarted node may take to bind its old ports again (another process may hold one).
REBIND_SECONDS = 10.0
#: The forks the devnet's genesis can start in; the Engine API version that builds each is its
#: position + 1 (V1 Paris .. V4 Prague: EthereumJS refuses any other version at a block's timestamp).
FORKS = ("paris", "shanghai", "cancun", "prague")
DEFAULT_FORK = "cancun"
CLI = Path("node_modules") / "@ethereumjs" / "client" / "dist" / "esm" / "bin" / "cli.js"

_HOW_TO_GET = (
    f"install Node.js {MIN_NODE_MAJOR}+ with npm (the plugin then installs {NPM_PACKAGE}@{EJS_VERSION} "
    "itself), or use the default --gashammer-devnet embedded"
)


def genesis(
    *,
    chain_id: int = ETHEREUMJS_CHAIN_ID,
    funder_address: str = NITRO_DEV_ADDRESS,
    funder_balance: int = FUNDER_BALANCE_WEI,
    gas_limit: int = BLOCK_GAS_LIMIT,
    base_fee: int = BASE_FEE_WEI,
    fork: str = DEFAULT_FORK,
) -> dict[str, Any]:
    """A geth-format genesis: post-merge from block 0, every fork through ``fork`` active (Cancun by
    default; one of :data:`FORKS`), the funder prefunded."""
    if fork not in FORKS:
        raise DevnetError(f"the EthereumJS devnet's fork is one of {', '.join(FORKS)}, got {fork!r}")
    level = FORKS.index(fork)
    pre_merge_forks = (
        "homestead", "eip150", "eip155", "eip158", "byzantium", "constantinople", "petersburg",
        "istanbul", "muirGlacier", "berlin", "london", "arrowGlacier", "grayGlacier",
    )  # fmt: skip
    config: dict[str, Any] = {"chainId": chain_id}
    config.update({f"{fork}Block": 0 for fork in pre_merge_forks})
    config.update(
        {
            "mergeNetsplitBlock": 0,
            "terminalTotalDifficulty": 0,
            "terminalTotalDifficultyPassed": True,
        }
    )
    if level >= FORKS.index("shanghai"):
        config["shanghaiTime"] = 0
    if level >= FORKS.index("cancun"):
        config["cancunTime"] = 0
        # EIP-4844's mainnet blob parameters for the Cancun fork (EIP-7691's for Prague).
        config["blobSchedule"] = {"cancun": {"target": 3, "max": 6, "baseFeeUpdateFraction": 3338477}}
    if level >= FORKS.index("prague"):
        config["pragueTime"] = 0
        config["blobSchedule"]["prague"] = {"target": 6, "max": 9, "baseFeeUpdateFraction": 5007716}
    return {
        "config": config,
        "nonce": "0x0",
        "timestamp": "0x0",
        "extraData": "0x",
        "gasLimit": hex(gas_limit),
        "difficulty": "0x0",
        "mixHash": "0x" + "00" * 32,
        "coinbase": "0x" + "00" * 20,
        "baseFeePerGas": hex(base_fee),
        "number": "0x0",
        "gasUsed": "0x0",
        "parentHash": "0x" + "00" * 32,
        "alloc": {funder_address.lower().removeprefix("0x"): {"balance": hex(funder_balance)}},
    }


def find_node() -> Path:
    """The ``node`` binary on PATH, checked to be new enough for the client."""
    node = shutil.which("node")
    if node is None:
        raise DevnetError(f"the EthereumJS devnet needs Node.js, and `node` is not on PATH; {_HOW_TO_GET}")
    try:
        completed = subprocess.run(
            [node, "--version"], capture_output=True, text=True, timeout=20, check=False
        )
        major = int(completed.stdout.strip().removeprefix("v").split(".")[0])
    except (OSError, subprocess.TimeoutExpired, ValueError) as exc:
        raise DevnetError(f"cannot tell the version of {node} ({exc}); {_HOW_TO_GET}") from None
    if major < MIN_NODE_MAJOR:
        raise DevnetError(f"{node} is Node.js {completed.stdout.strip()}; {_HOW_TO_GET}")
    return Path(node)


def install_managed(version: str = EJS_VERSION) -> Path:
    """The client's ``cli.js``, ``npm install``-ed into the cache once, under a file lock."""

    def installed(directory: Path) -> bool:
        return (directory / CLI).is_file()

    target = install_into_cache(
        f"ethereumjs-{version}", [f"{NPM_PACKAGE}@{version}"], installed=installed, how_to_get=_HOW_TO_GET
    )
    return target / CLI


def client_argv(node: Path, cli: Path, **flags: Any) -> list[str]:
    """The client's command line on this machine: ``node cli.js`` and :func:`client_args`."""
    return [str(node), str(cli), *client_args(**flags)]


def client_args(
    *,
    genesis_path: Path,
    data_dir: Path,
    jwt_path: Path,
    rpc_port: int,
    engine_port: int,
    p2p_port: int,
    max_peers: int = 0,
) -> list[str]:
    """The client's flags (after ``cli.js``, or after an image's entry point): JSON-RPC and the
    Engine API on loopback, RLPx on ``p2p_port``, discovery off. With ``max_peers`` 0 it admits no
    peer; otherwise peers come only from ``admin_addPeer``. ``--isSingleNode`` always: without it
    the client refuses transactions until it believes it has synced, which a devnet whose blocks
    come from its driver never tells it."""
    return [
        "--gethGenesis", str(genesis_path),
        "--dataDir", str(data_dir),
        "--rpc", "--rpcAddr", "127.0.0.1", "--rpcPort", str(rpc_port),
        "--rpcEngine", "--rpcEngineAddr", "127.0.0.1", "--rpcEnginePort", str(engine_port),
        "--jwtSecret", str(jwt_path),
        "--port", str(p2p_port), "--extIP", "127.0.0.1",
        "--maxPeers", str(max_peers), "--discDns", "false", "--discV4", "false", "--isSingleNode",
        "--logLevel", "warn", "--no-logFile",  # "--logFile false" would name a file "false"
    ]  # fmt: skip


def wait_until_ready(
    process: ProcessHandle,
    rpc_port: int,
    engine_port: int,
    *,
    jwt_secret: bytes,
    engine_version: int,
    timeout: float,
) -> str:
    """Wait until the client answers JSON-RPC with the devnet's chain id and serves the Engine API
    methods of ``engine_version``; its ``web3_clientVersion``. Raises :class:`DevnetError`."""
    url = f"http://127.0.0.1:{rpc_port}"
    deadline = time.monotonic() + timeout
    while True:
        exit_code = process.poll()
        if exit_code is not None:
            tail = " | ".join(process.log_tail(600).strip().splitlines()[-4:])
            raise DevnetError(f"EthereumJS exited with code {exit_code} at start: {tail}")
        try:
            chain_id = int(call(url, "eth_chainId", timeout=2), 16)
            break
        except (TransportError, RpcError):
            if time.monotonic() > deadline:
                tail = " | ".join(process.log_tail(400).strip().splitlines()[-3:])
                raise DevnetError(
                    f"EthereumJS did not answer on {url} within {timeout:.0f} s; "
                    f"log {process.log_path}: {tail}"
                ) from None
            time.sleep(0.1)
    if chain_id != ETHEREUMJS_CHAIN_ID:
        raise DevnetError(f"EthereumJS reports chain id {chain_id}, expected {ETHEREUMJS_CHAIN_ID}")
    engine = EngineClient(f"http://127.0.0.1:{engine_port}", jwt_secret, timeout=10, version=engine_version)
    try:
        served = engine.exchange_capabilities([f"engine_forkchoiceUpdatedV{engine.version}"])
    except EngineError as exc:
        raise DevnetError(f"EthereumJS's Engine API on port {engine_port} is not usable: {exc}") from None
    needed = {
        f"engine_forkchoiceUpdatedV{min(engine.version, 3)}",
        f"engine_getPayloadV{engine.version}",
        f"engine_newPayloadV{engine.version}",
    }
    if not needed <= set(served):
        raise DevnetError(f"EthereumJS's Engine API lacks {sorted(needed - set(served))}")
    try:
        return str(call(url, "web3_clientVersion", timeout=5))
    except (RpcError, TransportError):
        return f"EthereumJS {EJS_VERSION}"


class EthereumJSDevnet(Devnet):
    """``@ethereumjs/client`` on loopback, with the plugin's consensus driver building its blocks."""

    kind = "ethereumjs"

    def __init__(
        self,
        *,
        workdir: Path | None = None,
        block_interval: float = DEFAULT_INTERVAL,
        startup_timeout: float = 90.0,
        fork: str = DEFAULT_FORK,
        drive: bool = True,
    ) -> None:
        """``fork``: the genesis's fork (:data:`FORKS`), which fixes the Engine API version the
        driver speaks. ``drive=False`` starts the node without the plugin's consensus driver: no
        block is built until something else drives its Engine API (:meth:`engine`,
        :attr:`jwt_secret_path`)."""
        super().__init__()
        if fork not in FORKS:
            raise DevnetError(f"the EthereumJS devnet's fork is one of {', '.join(FORKS)}, got {fork!r}")
        self.fork = fork
        self.drive = drive
        self._workdir = workdir
        self.block_interval = block_interval
        self._startup_timeout = startup_timeout
        self._funder = Funder(NITRO_DEV_ADDRESS, NITRO_DEV_KEY)
        self._process: ManagedProcess | None = None
        self._state_dir: Path | None = None
        self._rpc_port: int | None = None
        self._engine_port: int | None = None
        self._p2p_port: int | None = None
        self._jwt_secret = b""
        self._driver: ConsensusDriver | None = None
        self._version = "unknown"
        self._control: EthereumJSControl | None = None
        self._log_dir: Path | None = None

    # -- identity -------------------------------------------------------------------------------
    @property
    def rpc_url(self) -> str:
        return f"http://127.0.0.1:{self._require(self._rpc_port)}"

    @property
    def ws_url(self) -> None:
        return None  # its WebSocket server would ignore the loopback address: never enabled

    @property
    def engine_url(self) -> str:
        """The authenticated Engine API endpoint (JWT: :meth:`engine`)."""
        return f"http://127.0.0.1:{self._require(self._engine_port)}"

    @property
    def p2p_port(self) -> int | None:
        """The RLPx port the client listens on (all interfaces, no peers admitted)."""
        return self._p2p_port

    @property
    def state_dir(self) -> Path | None:
        """The node's chain data, genesis and JWT secret while it runs (removed by :meth:`close`)."""
        return self._state_dir

    @property
    def chain_id(self) -> int:
        return ETHEREUMJS_CHAIN_ID

    @property
    def funder(self) -> Funder:
        return self._funder

    @property
    def node_version(self) -> str:
        return self._version

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    @property
    def consensus(self) -> ConsensusDriver:
        """The driver that builds this devnet's blocks: ``pause()``, ``resume()``, ``stats()``."""
        if self._driver is None:
            if self._process is not None and not self.drive:
                raise DevnetError(
                    "this EthereumJS devnet was started without its consensus driver (drive=False)"
                )
            raise DevnetError("the EthereumJS devnet is not started; call start() first")
        return self._driver

    @property
    def engine_version(self) -> int:
        """The Engine API version that builds this devnet's blocks (its fork's)."""
        return FORKS.index(self.fork) + 1

    @property
    def jwt_secret_path(self) -> Path | None:
        """The node's JWT secret file (hex) while it runs."""
        return self._state_dir / "jwt.hex" if self._state_dir is not None else None

    def engine(self, *, timeout: float = 120.0) -> EngineClient:
        """A new Engine API client for this node, with its JWT secret, at its fork's version."""
        return EngineClient(self.engine_url, self._jwt_secret, timeout=timeout, version=self.engine_version)

    def _require(self, port: int | None) -> int:
        if port is None:
            raise DevnetError("the EthereumJS devnet is not started; call start() first")
        return port

    # -- lifecycle ------------------------------------------------------------------------------
    def start(self) -> EthereumJSDevnet:
        node = find_node()
        cli = install_managed()
        workdir = self._workdir or Path(tempfile.mkdtemp(prefix="gashammer-devnet-"))
        workdir.mkdir(parents=True, exist_ok=True)
        self._log_dir = workdir
        # Chain data, genesis and the JWT secret: private to this devnet, removed by close().
        self._state_dir = Path(tempfile.mkdtemp(prefix="ethereumjs-", dir=workdir))
        genesis_path = self._state_dir / "genesis.json"
        genesis_path.write_text(json.dumps(genesis(fork=self.fork), indent=1))
        self._jwt_secret = os.urandom(JWT_SECRET_BYTES)
        jwt_path = self._state_dir / "jwt.hex"
        jwt_path.touch(mode=0o600)
        jwt_path.write_text(self._jwt_secret.hex())
        try:
            self._launch(node, cli, genesis_path, jwt_path, workdir)
            if self.drive:
                driver = ConsensusDriver(self.engine(), self.rpc_url, interval=self.block_interval)
                try:
                    self._driver = driver.start()
                except (RpcError, TransportError) as exc:
                    raise DevnetError(f"EthereumJS started but its head could not be read: {exc}") from None
        except BaseException:
            self.close()
            raise
        if self.drive:  # its operations pause and re-pace the driver
            self._control = EthereumJSControl(self)
        return self

    def node_control(self) -> EthereumJSControl:
        """Pause, restart and re-pace the node (:class:`EthereumJSControl`); the devnet must be started."""
        if self._control is None:
            raise DevnetError("the EthereumJS devnet is not started; call start() first")
        return self._control

    def _relaunch(self, attempt: int) -> None:
        """Start the node again with the same command line: its data directory, ports and JWT secret."""
        old, log_dir = self._process, self._log_dir
        assert old is not None and log_dir is not None
        rpc_port, engine_port = self._require(self._rpc_port), self._require(self._engine_port)
        deadline = time.monotonic() + REBIND_SECONDS
        while True:
            process = ManagedProcess(
                old.argv, log_path=log_dir / f"ethereumjs-{rpc_port}-restart{attempt}.log"
            )
            try:
                self._wait_ready(process, rpc_port, engine_port)
            except DevnetError as exc:
                process.stop()
                tail = process.log_tail(600).lower()
                if ("eaddrinuse" in tail or "address already in use" in tail) and time.monotonic() < deadline:
                    time.sleep(0.2)  # a port is held by another process for now: the URLs are these ports
                    continue
                raise DevnetError(f"EthereumJS did not come back: {exc}") from None
            self._process = process
            return

    def _launch(self, node: Path, cli: Path, genesis_path: Path, jwt_path: Path, workdir: Path) -> None:
        assert self._state_dir is not None
        last_log = ""
        for attempt in range(PORT_ATTEMPTS):
            rpc_port, engine_port = free_port(), free_port()
            p2p_port = free_port("0.0.0.0")
            if len({rpc_port, engine_port, p2p_port}) < 3:
                continue
            data_dir = self._state_dir / f"data-{attempt}"
            argv = client_argv(
                node, cli, genesis_path=genesis_path, data_dir=data_dir, jwt_path=jwt_path,
                rpc_port=rpc_port, engine_port=engine_port, p2p_port=p2p_port,
            )  # fmt: skip
            process = ManagedProcess(argv, log_path=workdir / f"ethereumjs-{rpc_port}.log")
            try:
                self._wait_ready(process, rpc_port, engine_port)
            except DevnetError:
                process.stop()
                last_log = process.log_tail(600)
                if "eaddrinuse" in last_log.lower() or "address already in use" in last_log.lower():
                    shutil.rmtree(data_dir, ignore_errors=True)
                    continue  # another process took a port between our probe and the node's bind
                raise
            self._process = process
            self._rpc_port, self._engine_port, self._p2p_port = rpc_port, engine_port, p2p_port
            return
        raise DevnetError(
            f"EthereumJS could not bind free ports after {PORT_ATTEMPTS} tries: {last_log[-200:].strip()}"
        )

    def _wait_ready(self, process: ManagedProcess, rpc_port: int, engine_port: int) -> None:
        self._version = wait_until_ready(
            process, rpc_port, engine_port,
            jwt_secret=self._jwt_secret, engine_version=self.engine_version, timeout=self._startup_timeout,
        )  # fmt: skip

    def incidents(self) -> list[str]:
        return list(self._driver.incidents) if self._driver is not None else []

    def close(self) -> None:
        if self._control is not None:
            # First: a paused node is continued and a pending restart cancelled (never booted).
            self._control.close()
        driver, self._driver = self._driver, None
        if driver is not None and not driver.stop(timeout=2.0) and self._process is not None:
            self._process.stop()  # a block still in progress ends with the node
            driver.stop(timeout=5.0)
        if self._process is not None:
            self._process.stop()
            self._process = None
        if self._state_dir is not None:
            shutil.rmtree(self._state_dir, ignore_errors=True)
            self._state_dir = None

    def __repr__(self) -> str:
        state = f"rpc_url={self.rpc_url!r}" if self._rpc_port else "not started"
        return f"<EthereumJSDevnet {state} chain_id={ETHEREUMJS_CHAIN_ID}>"


class EthereumJSControl(NodeControl):
    """Node controls of the EthereumJS devnet: all four operations.

    **pause** first pauses the consensus driver (a block in progress is finished), then stops the
    node (``SIGSTOP``); resume continues both. The driver is paused rather than left to fail
    against a stopped node: a paused node is the fault, and its failed builds would only repeat it
    as ``devnet:`` incidents (and an Engine API call would wait up to its 120 s timeout).

    **restart** pauses the driver, kills the node (``SIGKILL``) and starts it again with the same
    command line: data directory, ports, JWT secret. The client writes its chain to its LevelDB
    data directory as it imports each block, so a kill loses nothing of it (measured with
    ``@ethereumjs/client`` 0.10.5, killed at once after a block with a transfer: same height, same
    head hash, same balances; back in 1.5-2 s). Forgotten: its transaction pool, which lives in
    memory. The driver reads the head from the node again and builds on it.

    **mining**: the driver stops building (:meth:`stop_mining`) or builds every ``seconds``
    (:meth:`set_block_interval`, whole-second timestamps as always); restored to the devnet's
    ``block_interval``.
    """

    supports = NODE_OPERATIONS

    def __init__(self, devnet: EthereumJSDevnet) -> None:
        super().__init__(devnet.block_interval)
        self._devnet = devnet
        self._restarts = 0

    def _process(self) -> ManagedProcess:
        process = self._devnet._process
        if process is None:
            raise DevnetError("the EthereumJS devnet is closed")
        return process

    def _freeze(self) -> None:
        self._pause_driver()
        self._process().pause()

    def _thaw(self) -> None:
        self._process().resume()
        self._apply_mining(self._interval)

    def _crash(self) -> None:
        process = self._process()
        self._pause_driver()
        process.kill()

    def _boot(self) -> None:
        self._restarts += 1
        self._devnet._relaunch(self._restarts)
        self._devnet.consensus.forget_head()
        self._apply_mining(self._interval)

    def _apply_mining(self, interval: float | None) -> None:
        driver = self._devnet.consensus
        if interval is None:
            self._pause_driver()
        else:
            driver.set_interval(interval)
            driver.resume()

    def _pause_driver(self) -> None:
        driver = self._devnet.consensus
        try:
            driver.pause(timeout=30.0)
        except TimeoutError as exc:
            if self._interval is not None:
                driver.resume()  # the operation failed: the chain goes on as it was
            raise DevnetError(f"the consensus driver could not be paused: {exc}") from None
