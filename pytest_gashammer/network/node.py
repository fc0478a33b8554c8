"""One node of a network: an ``@ethereumjs/client`` process with its ports, data, log and JSON-RPC.

The process runs on this machine (``node cli.js``), or, given an ``image``, in a host-network
container of that image (:class:`~pytest_gashammer.devnet.container.ContainerProcess`) on the same
loopback ports, its chain in the same data directory (bound into the container). Everything above
the process (ports, JSON-RPC, the Engine API, devp2p through the link relays) is the same either way.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

from pytest_gashammer.chain.engine import EngineClient
from pytest_gashammer.chain.rpc import RpcError, TransportError, call
from pytest_gashammer.devnet.base import free_port
from pytest_gashammer.devnet.ethereumjs import client_args, client_argv, wait_until_ready
from pytest_gashammer.devnet.process import ManagedProcess, ProcessHandle
from pytest_gashammer.errors import DevnetError

#: Peers a network node admits: every other node of a network of this size, with room to spare.
MAX_PEERS = 16
PORT_ATTEMPTS = 5
#: How long a restarted node may take to bind its old ports again.
REBIND_SECONDS = 10.0


class NetworkNode:
    """A named node: ``rpc_url``, ``engine_url``, ``p2p_port``, ``web3``, ``pid``, ``log_path``.

    Its ports are chosen at its first start and kept, so a stopped node started again answers on
    the same URLs, with its chain data (the client writes each imported block to its database).
    """

    def __init__(
        self,
        name: str,
        *,
        node_binary: Path | None,
        cli: Path | None,
        genesis_path: Path,
        jwt_path: Path,
        jwt_secret: bytes,
        engine_version: int,
        state_dir: Path,
        log_dir: Path,
        startup_timeout: float = 90.0,
        image: str | None = None,
    ) -> None:
        self.name = name
        #: The container image the node runs from; None: a process on this machine.
        self.image = image
        self._node_binary, self._cli = node_binary, cli
        self._genesis_path, self._jwt_path, self._jwt_secret = genesis_path, jwt_path, jwt_secret
        self.engine_version = engine_version
        self.data_dir = state_dir / name
        self._state_dir = state_dir
        self._log_dir = log_dir
        self._startup_timeout = startup_timeout
        self.rpc_port: int | None = None
        self.engine_port: int | None = None
        self.p2p_port: int | None = None
        self.node_id = ""  # the RLPx public key (hex), known once started
        self.client_version = ""
        self.log_path: Path | None = None
        self._process: ProcessHandle | None = None
        self._starts = 0
        self._web3: Any = None
        #: The network the node belongs to (expectations compare a node with its peers).
        self.network: Any = None

    # -- identity -------------------------------------------------------------------------------
    @property
    def rpc_url(self) -> str:
        return f"http://127.0.0.1:{self._port(self.rpc_port)}"

    @property
    def engine_url(self) -> str:
        return f"http://127.0.0.1:{self._port(self.engine_port)}"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    @property
    def container_id(self) -> str | None:
        """The Docker id of the node's container while it runs from an image; None otherwise."""
        return getattr(self._process, "container_id", None)

    @property
    def web3(self) -> Any:
        """A web3.py ``Web3`` on this node, for the test's own queries."""
        if self._web3 is None:
            from web3 import Web3

            self._web3 = Web3(Web3.HTTPProvider(self.rpc_url, request_kwargs={"timeout": 30}))
        return self._web3

    def _port(self, port: int | None) -> int:
        if port is None:
            raise DevnetError(f"{self.name} was never started; start the network first")
        return port

    def rpc(self, method: str, *params: Any, timeout: float = 10.0) -> Any:
        """One JSON-RPC call to this node; raises RpcError/TransportError."""
        return call(self.rpc_url, method, list(params), timeout=timeout)

    def engine(self, *, timeout: float = 60.0) -> EngineClient:
        return EngineClient(self.engine_url, self._jwt_secret, timeout=timeout, version=self.engine_version)

    def head(self) -> dict[str, Any]:
        """The node's latest block (header fields only)."""
        block = self.rpc("eth_getBlockByNumber", "latest", False)
        if not isinstance(block, dict):
            raise TransportError(f"{self.name}: eth_getBlockByNumber('latest') answered {str(block)[:80]}")
        return block

    def log_tail(self, limit: int = 2000) -> str:
        return self._process.log_tail(limit) if self._process is not None else ""

    # -- lifecycle ------------------------------------------------------------------------------
    def start(self) -> NetworkNode:
        """Start the process (on fresh free ports the first time, on its own ports after that)."""
        if self.running:
            return self
        self._starts += 1
        if self.rpc_port is None:
            self._first_start()
        else:
            self._restart()
        try:
            info = self.rpc("admin_nodeInfo", timeout=10)
            self.node_id = str(info["id"])
        except (RpcError, TransportError, KeyError, TypeError) as exc:
            self.stop()
            raise DevnetError(f"{self.name}: admin_nodeInfo gave no node id ({exc})") from None
        return self

    def _flags(self, rpc_port: int, engine_port: int, p2p_port: int) -> dict[str, Any]:
        return {
            "genesis_path": self._genesis_path, "data_dir": self.data_dir, "jwt_path": self._jwt_path,
            "rpc_port": rpc_port, "engine_port": engine_port, "p2p_port": p2p_port, "max_peers": MAX_PEERS,
        }  # fmt: skip

    def _first_start(self) -> None:
        last_log = ""
        for _ in range(PORT_ATTEMPTS):
            rpc_port, engine_port, p2p_port = free_port(), free_port(), free_port("0.0.0.0")
            if len({rpc_port, engine_port, p2p_port}) < 3:
                continue
            process = self._spawn(rpc_port, engine_port, p2p_port)
            try:
                self.client_version = self._wait(process, rpc_port, engine_port)
            except DevnetError as exc:
                process.stop()
                last_log = process.log_tail(600)
                if _port_taken(last_log):
                    shutil.rmtree(self.data_dir, ignore_errors=True)
                    continue
                if self.image is None:
                    raise
                raise DevnetError(f"{self.name} (image {self.image}): {exc}") from None
            self._process = process
            self.rpc_port, self.engine_port, self.p2p_port = rpc_port, engine_port, p2p_port
            return
        raise DevnetError(
            f"{self.name}: no free ports after {PORT_ATTEMPTS} tries: {last_log[-200:].strip()}"
        )

    def _restart(self) -> None:
        assert self.rpc_port is not None and self.engine_port is not None and self.p2p_port is not None
        deadline = time.monotonic() + REBIND_SECONDS
        while True:
            process = self._spawn(self.rpc_port, self.engine_port, self.p2p_port)
            try:
                self.client_version = self._wait(process, self.rpc_port, self.engine_port)
            except DevnetError as exc:
                process.stop()
                if _port_taken(process.log_tail(600)) and time.monotonic() < deadline:
                    time.sleep(0.2)
                    continue
                raise DevnetError(f"{self.name} did not start again: {exc}") from None
            self._process = process
            return

    def _spawn(self, rpc_port: int, engine_port: int, p2p_port: int) -> ProcessHandle:
        suffix = "" if self._starts == 1 else f"-start{self._starts}"
        self.log_path = self._log_dir / f"{self.name}{suffix}.log"
        flags = self._flags(rpc_port, engine_port, p2p_port)
        if self.image is None:
            assert self._node_binary is not None and self._cli is not None, (
                "a native node needs node and cli.js"
            )
            return ManagedProcess(client_argv(self._node_binary, self._cli, **flags), log_path=self.log_path)
        from pytest_gashammer.devnet.container import ContainerProcess
        from pytest_gashammer.devnet.ownership import RUN_ID

        return ContainerProcess(
            self.image, client_args(**flags), name=f"gashammer-{self.name}-{RUN_ID[:8]}-{rpc_port}{suffix}",
            log_path=self.log_path, mounts=[self._state_dir], labels={"gashammer.network-node": self.name},
        )  # fmt: skip

    def _wait(self, process: ProcessHandle, rpc_port: int, engine_port: int) -> str:
        return wait_until_ready(
            process, rpc_port, engine_port, jwt_secret=self._jwt_secret,
            engine_version=self.engine_version, timeout=self._startup_timeout,
        )  # fmt: skip

    def stop(self) -> None:
        """Kill the process (``SIGKILL``: the client takes seconds to exit on ``SIGTERM``, and it has
        written every block it imported). Idempotent."""
        process, self._process = self._process, None
        if process is not None:
            process.kill()
            process.stop()

    def __repr__(self) -> str:
        where = self.rpc_url if self.rpc_port is not None else "not started"
        source = f" from {self.image}" if self.image else ""
        return f"<NetworkNode {self.name}{source} {where} {'running' if self.running else 'stopped'}>"


def _port_taken(log: str) -> bool:
    lowered = log.lower()
    return "eaddrinuse" in lowered or "address already in use" in lowered
