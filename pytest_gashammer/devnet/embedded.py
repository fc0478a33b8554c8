"""The embedded devnet: anvil shaped like a Nitro dev chain.

Nitro-shaped means: chain id 412346, a block every 250 ms (Nitro's ``max-block-speed``), FIFO
ordering like Nitro's sequencer, a block gas limit far above 100 Mgas/s, and the Nitro dev
account funded as the funder, so a test written against it runs unchanged on ``nitro --dev``.
Anvil's automine is never used: under load it stops producing blocks for good once about 1.5k
ready transactions queue up, so the devnet always mines on an interval. A
:class:`~pytest_gashammer.devnet.pool_watch.PoolWatch` re-admits the transactions anvil's pool
can strand under load, and reports each time it did (:meth:`EmbeddedDevnet.incidents`).
In sessions with long runs anvil's history is pruned (:class:`~pytest_gashammer.devnet.anvil.AnvilHistory`)
so that its memory grows far slower; every run then says so in a ``devnet:`` note
(:meth:`EmbeddedDevnet.notes`).
"""

from __future__ import annotations

import logging
import tempfile
import time
from pathlib import Path
from typing import Any

from pytest_gashammer.chain.rpc import RpcError, TransportError, call
from pytest_gashammer.devnet.anvil import AnvilHistory, anvil_version, find_anvil
from pytest_gashammer.devnet.base import (
    FUNDER_BALANCE_WEI,
    NITRO_DEV_ADDRESS,
    NITRO_DEV_CHAIN_ID,
    NITRO_DEV_KEY,
    Devnet,
    Funder,
    free_port,
)
from pytest_gashammer.devnet.pool_watch import PoolWatch
from pytest_gashammer.devnet.process import ManagedProcess
from pytest_gashammer.errors import DevnetError

BLOCK_TIME = 0.25
BLOCK_GAS_LIMIT = 1_000_000_000  # 4 Ggas/s at 250 ms blocks: never the bottleneck
PORT_ATTEMPTS = 5
#: What a devnet built without a history choice keeps: everything, as anvil does by default.
FULL_HISTORY = AnvilHistory(pruned=False, reason="the default")

logger = logging.getLogger(__name__)


class EmbeddedDevnet(Devnet):
    kind = "embedded"

    def __init__(
        self,
        *,
        anvil_path: str | None = None,
        chain_id: int = NITRO_DEV_CHAIN_ID,
        block_time: float = BLOCK_TIME,
        gas_limit: int = BLOCK_GAS_LIMIT,
        workdir: Path | None = None,
        startup_timeout: float = 30.0,
        feed: bool = True,
        pool_watch: bool = True,
        history: AnvilHistory = FULL_HISTORY,
    ) -> None:
        super().__init__()
        self._anvil_path = anvil_path
        self._chain_id = chain_id
        self.block_time = block_time
        self.gas_limit = gas_limit
        self._workdir = workdir
        self._startup_timeout = startup_timeout
        self._process: ManagedProcess | None = None
        self._port: int | None = None
        self._funder = Funder(NITRO_DEV_ADDRESS, NITRO_DEV_KEY)
        self.anvil_binary: Path | None = None
        self._with_feed = feed
        self._relay: Any = None
        self._with_pool_watch = pool_watch
        self._pool_watch: PoolWatch | None = None
        self.history = history

    # -- identity -------------------------------------------------------------------------------
    @property
    def rpc_url(self) -> str:
        return f"http://127.0.0.1:{self._require_port()}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self._require_port()}"

    @property
    def chain_id(self) -> int:
        return self._chain_id

    @property
    def funder(self) -> Funder:
        return self._funder

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def _require_port(self) -> int:
        if self._port is None:
            raise DevnetError("the embedded devnet is not started; call start() first")
        return self._port

    # -- lifecycle ------------------------------------------------------------------------------
    def start(self) -> EmbeddedDevnet:
        self.anvil_binary = find_anvil(self._anvil_path)
        logger.info("embedded devnet: %s", self.history.describe(self.block_time))
        workdir = self._workdir or Path(tempfile.mkdtemp(prefix="gashammer-devnet-"))
        workdir.mkdir(parents=True, exist_ok=True)
        last_log = ""
        for _attempt in range(PORT_ATTEMPTS):
            port = free_port()
            process = ManagedProcess(self._argv(port), log_path=workdir / f"anvil-{port}.log")
            try:
                self._wait_ready(process, port)
            except DevnetError as exc:
                process.stop()
                last_log = process.log_tail(600)
                if "address already in use" in last_log.lower() or "addrinuse" in last_log.lower():
                    continue  # another process took the port between our probe and anvil's bind
                raise exc
            self._process, self._port = process, port
            break
        else:
            raise DevnetError(
                f"anvil could not bind a free loopback port after {PORT_ATTEMPTS} tries: {last_log[-200:]}"
            )
        try:
            call(self.rpc_url, "anvil_setBalance", [self._funder.address, hex(FUNDER_BALANCE_WEI)])
        except (RpcError, TransportError) as exc:
            self.close()
            raise DevnetError(f"anvil started but refused to fund the dev account: {exc}") from None
        if self._with_pool_watch:
            self._pool_watch = PoolWatch(self.rpc_url).start()
        if self._with_feed:
            from pytest_gashammer.feed.relay import FeedRelay, FeedRelayError

            try:
                self._relay = FeedRelay(self.rpc_url, self._chain_id, start_block=0).start()
            except FeedRelayError as exc:
                self.close()
                raise DevnetError(str(exc)) from None
        return self

    @property
    def feed_url(self) -> str | None:
        """The Nitro-format sequencer feed of this devnet (``ws://127.0.0.1:<port>``)."""
        return self._relay.url if self._relay is not None else None

    @property
    def feed_relay(self) -> Any:
        return self._relay

    def _argv(self, port: int) -> list[str]:
        assert self.anvil_binary is not None
        return [
            str(self.anvil_binary),
            "--host", "127.0.0.1",
            "--port", str(port),
            "--chain-id", str(self._chain_id),
            "--block-time", str(self.block_time),
            "--gas-limit", str(self.gas_limit),
            "--order", "fifo",
            "--accounts", "0",
            "--no-request-size-limit",
            "--quiet",
            *self.history.argv(self.block_time),
        ]  # fmt: skip

    def _wait_ready(self, process: ManagedProcess, port: int) -> None:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + self._startup_timeout
        while time.monotonic() < deadline:
            exit_code = process.poll()
            if exit_code is not None:
                raise DevnetError(
                    f"anvil exited with code {exit_code} at start: {process.log_tail(300).strip()}"
                )
            try:
                chain_id = int(call(url, "eth_chainId", timeout=2), 16)
            except TransportError:
                time.sleep(0.05)
                continue
            if chain_id != self._chain_id:
                raise DevnetError(f"anvil reports chain id {chain_id}, expected {self._chain_id}")
            return
        raise DevnetError(f"anvil did not answer on {url} within {self._startup_timeout:.0f} s")

    @property
    def node_version(self) -> str:
        if self.anvil_binary is None:
            return "anvil"
        return anvil_version(self.anvil_binary).replace("anvil Version:", "anvil").strip()

    def incidents(self) -> list[str]:
        return list(self._pool_watch.incidents) if self._pool_watch is not None else []

    def notes(self) -> list[str]:
        # Only a pruned history is worth a line on every run: it changes what the node can answer
        # about old blocks; the full history is anvil's default and says nothing new.
        return [self.history.describe(self.block_time)] if self.history.pruned else []

    def close(self) -> None:
        if self._pool_watch is not None:
            self._pool_watch.stop()
            self._pool_watch = None
        if self._relay is not None:
            self._relay.stop()
            self._relay = None
        if self._process is not None:
            self._process.stop()
            self._process = None

    def __repr__(self) -> str:
        state = f"rpc_url={self.rpc_url!r}" if self._port else "not started"
        return f"<EmbeddedDevnet {state} chain_id={self._chain_id}>"
