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
(:meth:`EmbeddedDevnet.notes`). Node faults pause, restart and re-pace anvil through
:class:`AnvilControl` (:meth:`EmbeddedDevnet.node_control`).

Unless ``l1=False``, a second anvil is the rollup's L1 (:class:`~pytest_gashammer.devnet.l1_chain.EmbeddedL1`):
the real Nitro Bridge and SequencerInbox and the rollup stand-in are deployed on it, and a batch
poster posts the L2's blocks to it as Nitro batches, asserts and confirms them
(:attr:`EmbeddedDevnet.l1`, :attr:`EmbeddedDevnet.batch_poster`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
import threading
import time
import zlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_gashammer.chain.rpc import RpcError, TransportError, call
from pytest_gashammer.devnet.anvil import (
    AnvilHistory,
    anvil_version,
    find_anvil,
    launch_anvil,
    port_taken,
    wait_for_anvil,
)
from pytest_gashammer.devnet.base import (
    FUNDER_BALANCE_WEI,
    NITRO_DEV_ADDRESS,
    NITRO_DEV_CHAIN_ID,
    NITRO_DEV_KEY,
    Devnet,
    Funder,
    IncidentLog,
)
from pytest_gashammer.devnet.consensus import next_tick
from pytest_gashammer.devnet.control import NODE_OPERATIONS, NodeControl
from pytest_gashammer.devnet.l1_chain import (
    DEFAULT_ASSERT_EVERY,
    DEFAULT_BATCH_INTERVAL,
    DEFAULT_CONFIRM_DELAY,
    EmbeddedL1,
    poster_settings_problem,
)
from pytest_gashammer.devnet.pool_watch import PoolWatch
from pytest_gashammer.devnet.process import ManagedProcess
from pytest_gashammer.errors import DevnetError, GashammerError
from pytest_gashammer.l1.endpoint import L1Endpoint
from pytest_gashammer.options import NO_L1

if TYPE_CHECKING:
    from pytest_gashammer.l1.poster import BatchPoster

BLOCK_TIME = 0.25
BLOCK_GAS_LIMIT = 1_000_000_000  # 4 Ggas/s at 250 ms blocks: never the bottleneck
#: What a devnet built without a history choice keeps: everything, as anvil does by default.
FULL_HISTORY = AnvilHistory(pruned=False, reason="the default")
#: How long a restarted anvil may take to bind its old port again (another process may hold it).
REBIND_SECONDS = 10.0

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
        base_fee: int | None = None,
        workdir: Path | None = None,
        startup_timeout: float = 30.0,
        feed: bool = True,
        pool_watch: bool = True,
        history: AnvilHistory = FULL_HISTORY,
        l1: bool = True,
        batch_interval: float = DEFAULT_BATCH_INTERVAL,
        assert_every: int = DEFAULT_ASSERT_EVERY,
        confirm_delay: float = DEFAULT_CONFIRM_DELAY,
        l1_block_time: float | None = None,
    ) -> None:
        """``l1=False`` starts no L1. ``batch_interval``, ``assert_every`` and ``confirm_delay`` set the
        batch poster's pace (seconds between batches, batches per assertion, seconds before a
        confirmation); ``l1_block_time`` makes the L1 mine on an interval instead of automining.
        ``base_fee`` sets anvil's base fee at genesis (``--base-fee``); 0 keeps it 0 for every block
        (anvil takes a zero base fee as a constant), so full blocks do not drive fees up: a chain
        whose capacity is its block gas limit x blocks per second, and nothing else."""
        super().__init__()
        self._anvil_path = anvil_path
        self._chain_id = chain_id
        self.block_time = block_time
        self.gas_limit = gas_limit
        self.base_fee = base_fee
        self._workdir = workdir
        self._startup_timeout = startup_timeout
        self._process: ManagedProcess | None = None
        self._port: int | None = None
        self._run_dir: Path | None = None
        self._control: AnvilControl | None = None
        self._funder = Funder(NITRO_DEV_ADDRESS, NITRO_DEV_KEY)
        self.anvil_binary: Path | None = None
        self._with_feed = feed
        self._relay: Any = None
        self._with_pool_watch = pool_watch
        self._pool_watch: PoolWatch | None = None
        self._incident_log = IncidentLog()
        self.history = history
        problem = poster_settings_problem(batch_interval, assert_every, confirm_delay, l1_block_time)
        if problem is not None:
            raise ValueError(problem)
        self._with_l1 = l1
        self.batch_interval = batch_interval
        self.assert_every = assert_every
        self.confirm_delay = confirm_delay
        self.l1_block_time = l1_block_time
        self._l1: EmbeddedL1 | None = None
        self._incidents_lock = threading.Lock()

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
        self._run_dir = workdir
        self._process, self._port = launch_anvil(
            self._argv, chain_id=self._chain_id, log_dir=workdir, timeout=self._startup_timeout
        )
        self._control = AnvilControl(self)
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
        if self._with_l1:
            self._start_l1(workdir)
        return self

    def _start_l1(self, workdir: Path) -> None:
        assert self.anvil_binary is not None
        self._l1 = EmbeddedL1(
            self.anvil_binary,
            workdir=workdir,
            startup_timeout=self._startup_timeout,
            block_time=self.l1_block_time,
            batch_interval=self.batch_interval,
            assert_every=self.assert_every,
            confirm_delay=self.confirm_delay,
            known_raw=self._relay.raw_block if self._relay is not None else None,
        )
        try:
            self._l1.start(self.rpc_url)
        except Exception as exc:
            self.close()
            cause = " ".join(str(exc).split()) or type(exc).__name__
            message = f"the embedded devnet's L1 did not start: {cause}; or pass {NO_L1} to run without it"
            if isinstance(exc, GashammerError | RpcError | TransportError | OSError):
                raise DevnetError(message) from None
            raise DevnetError(message) from exc
        except BaseException:
            self.close()
            raise

    @property
    def l1(self) -> L1Endpoint | None:
        """The devnet's own L1 (``owned=True``) once started; an L1 the options name otherwise."""
        if self._l1 is not None and self._l1.endpoint is not None:
            return self._l1.endpoint
        return super().l1

    @property
    def batch_poster(self) -> BatchPoster | None:
        """The batch poster of the devnet's own L1 (stopped, its records kept, after :meth:`close`)."""
        return self._l1.poster if self._l1 is not None else None

    @property
    def l1_pid(self) -> int | None:
        """The L1 anvil's process id while it runs."""
        return self._l1.pid if self._l1 is not None else None

    @property
    def feed_url(self) -> str | None:
        """The Nitro-format sequencer feed of this devnet (``ws://127.0.0.1:<port>``)."""
        return self._relay.url if self._relay is not None else None

    @property
    def feed_relay(self) -> Any:
        return self._relay

    def node_control(self) -> AnvilControl:
        """Pause, restart and re-pace anvil (:class:`AnvilControl`); the devnet must be started."""
        if self._control is None:
            raise DevnetError("the embedded devnet is not started; call start() first")
        return self._control

    def _argv(self, port: int, *, mining: bool = True, load_state: Path | None = None) -> list[str]:
        assert self.anvil_binary is not None
        # Without mining, anvil starts with no miner at all (never automine): a restart whose
        # block interval a fault changed must not mine a block at the old pace first.
        pace = ["--block-time", str(self.block_time)] if mining else ["--no-mining"]
        return [
            str(self.anvil_binary),
            "--host", "127.0.0.1",
            "--port", str(port),
            "--chain-id", str(self._chain_id),
            *pace,
            "--gas-limit", str(self.gas_limit),
            *(["--base-fee", str(self.base_fee)] if self.base_fee is not None else []),
            "--order", "fifo",
            "--accounts", "0",
            "--no-request-size-limit",
            "--quiet",
            *self.history.argv(self.block_time),
            *(["--load-state", str(load_state)] if load_state is not None else []),
        ]  # fmt: skip

    def _relaunch(self, *, mining: bool, load_state: Path, attempt: int) -> None:
        """Start anvil again on its port from ``load_state`` (a restart); retries while the port is taken."""
        port, run_dir = self._require_port(), self._run_dir
        assert run_dir is not None
        deadline = time.monotonic() + REBIND_SECONDS
        while True:
            log_path = run_dir / f"anvil-{port}-restart{attempt}.log"
            process = ManagedProcess(
                self._argv(port, mining=mining, load_state=load_state), log_path=log_path
            )
            try:
                wait_for_anvil(process, port, self._chain_id, self._startup_timeout)
            except DevnetError:
                process.stop()
                tail = process.log_tail(600)
                if port_taken(tail) and time.monotonic() < deadline:
                    time.sleep(0.2)  # held by another process for now: the devnet's URLs are this port
                    continue
                raise DevnetError(f"anvil did not come back on port {port}: {tail.strip()[-300:]}") from None
            self._process = process
            return

    @property
    def node_version(self) -> str:
        if self.anvil_binary is None:
            return "anvil"
        return anvil_version(self.anvil_binary).replace("anvil Version:", "anvil").strip()

    def incidents(self) -> list[str]:
        with self._incidents_lock:
            return self._incident_log.read(
                pool=self._pool_watch.incidents if self._pool_watch is not None else [],
                relay=self._relay.incidents() if self._relay is not None else [],
                l1=self._l1.incidents() if self._l1 is not None else [],
            )

    def notes(self) -> list[str]:
        # Only a pruned history is worth a line on every run: it changes what the node can answer
        # about old blocks; the full history is anvil's default and says nothing new.
        return [self.history.describe(self.block_time)] if self.history.pruned else []

    def close(self) -> None:
        if self._control is not None:
            # First: a paused anvil is continued and a pending restart cancelled (never booted).
            self._control.close()
        self.incidents()  # kept: the pool watch's go with it
        if self._l1 is not None:
            self._l1.close()  # the last batch needs the L2 still up
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


class BlockTicker:
    """Mines one block every ``interval`` seconds with ``evm_mine``, on a daemon thread.

    anvil's interval miner takes whole seconds over JSON-RPC (``evm_setIntervalMining`` is a
    ``u64``; 0.25 is refused as "invalid number"), and only ``--block-time`` at start takes a
    fraction. So a pace anvil cannot be told, the devnet's own 250 ms after a fault changed it
    included, is kept by this thread with anvil's miner off. ``evm_mine`` takes ready pool
    transactions up to the gas limit like the interval miner. Ticks sit on a fixed grid from
    the start; a block that takes longer than the interval skips the ticks it overran.
    """

    def __init__(self, rpc_url: str, interval: float, *, timeout: float = 30.0) -> None:
        self.rpc_url = rpc_url
        self.interval = interval
        self.timeout = timeout
        self.blocks = 0
        self.errors = 0
        self.last_error = ""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> BlockTicker:
        self._thread = threading.Thread(target=self._run, name="gashammer-block-ticker", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def _run(self) -> None:
        tick = time.monotonic() + self.interval
        while not self._stop.wait(max(0.0, tick - time.monotonic())):
            try:
                call(self.rpc_url, "evm_mine", timeout=self.timeout)
                self.blocks += 1
            except (RpcError, TransportError) as exc:
                self.errors += 1  # the node is busy or going away: the next tick tries again
                self.last_error = str(exc)
            tick = next_tick(tick, self.interval, time.monotonic())


class AnvilControl(NodeControl):
    """Node controls of the embedded devnet's anvil: all four operations.

    **pause** stops anvil (``SIGSTOP``). Nothing is mined while it is stopped; a block ticker
    (below) is stopped with it. On ``SIGCONT`` anvil's interval miner carries on at its pace.

    **restart** is a crash with the chain saved just before it: mining is turned off
    (``evm_setIntervalMining 0``), the state is dumped (``anvil_dumpState``, repeated if a block
    landed during the dump, so the dump holds the last block anyone saw), anvil is killed
    (``SIGKILL``), and after the downtime started again on the same port with ``--load-state``.
    Not ``--state``/``--state-interval``: a periodic dump costs the node a full dump at every
    interval under load, and a crash then loses the blocks since the last one, which a feed client
    sees as a reorg and a load run as vanished transactions.

    Kept across a restart (measured, anvil 1.7.1): the block height and every block's hash,
    timestamps carrying on from the last block, every transaction and receipt, the head state
    (balances, so the funder's, nonces, code, storage), the port and so every URL; anvil's own
    interval miner at the devnet's block time.
    Forgotten: the transaction pool (pending and queued, including what arrived between the
    mining stop and the kill), the states of past blocks (``eth_getBalance`` at an older block answers
    ``BlockOutOfRangeError``, as with a pruned history), filters and WebSocket subscriptions (their
    clients must subscribe again), open connections. The feed relay and the pool watch poll over
    HTTP and carry on by themselves: the relay's next block extends the last one it sent, so its
    sequence numbers continue with no gap and no reorg. The funder is not funded again: its
    balance is part of the kept state. The dump costs about 20 µs of anvil's time per
    transaction in its history (0.4 s and 40 MB of JSON for 20,000), loading it about the same.

    **mining**: :meth:`stop_mining` turns anvil's miner off (``evm_setIntervalMining 0``; automine
    stays off, as the embedded devnet never uses it). A whole number of seconds goes to anvil's
    interval miner; any other interval, the devnet's own 250 ms when mining is restored included,
    to a :class:`BlockTicker` thread (anvil's interval cannot be set below a second over
    JSON-RPC). A restart brings anvil's own miner back.
    """

    supports = NODE_OPERATIONS

    def __init__(self, devnet: EmbeddedDevnet) -> None:
        super().__init__(devnet.block_time)
        self._devnet = devnet
        self._native = True  # anvil's own --block-time miner runs (from start and each restart)
        self._ticker: BlockTicker | None = None
        self._restarts = 0
        self._saved_head: tuple[int, str] | None = None

    @property
    def state_path(self) -> Path:
        """Where a restart writes the dumped chain (in the devnet's work directory), from the
        kill until the node is back with it."""
        run_dir = self._devnet._run_dir
        assert run_dir is not None
        return run_dir / "anvil-state.json"

    @property
    def ticker(self) -> BlockTicker | None:
        """The thread mining at a pace anvil cannot be told, while one runs."""
        return self._ticker

    def _process(self) -> ManagedProcess:
        process = self._devnet._process
        if process is None:
            raise DevnetError("the embedded devnet is closed")
        return process

    def _rpc(self, method: str, params: list[Any], *, timeout: float = 10.0) -> Any:
        return call(self._devnet.rpc_url, method, params, timeout=timeout)

    # -- hooks ----------------------------------------------------------------------------------
    def _freeze(self) -> None:
        self._stop_ticker()
        self._process().pause()

    def _thaw(self) -> None:
        self._process().resume()
        if self._interval != self.default_interval or not self._native:
            self._apply_mining(self._interval)  # a ticker, or a change made while paused

    def _crash(self) -> None:
        process = self._process()
        self._stop_ticker()
        try:
            self._rpc("evm_setIntervalMining", [0])
            self._native = False
            self._saved_head = self._dump_state()
        except (RpcError, TransportError, OSError, ValueError, TypeError, KeyError, zlib.error) as exc:
            with contextlib.suppress(DevnetError):
                self._apply_mining(self._interval)  # it runs on as before
            raise DevnetError(
                f"anvil's state could not be saved for a restart, so it was not killed: {exc}"
            ) from None
        process.kill()

    def _dump_state(self) -> tuple[int, str]:
        """Dump the chain into :attr:`state_path`; the head it holds (number, hash)."""
        for _attempt in range(5):
            before = self._rpc("eth_getBlockByNumber", ["latest", False])
            dump = self._rpc("anvil_dumpState", [], timeout=300.0)
            after = self._rpc("eth_getBlockByNumber", ["latest", False])
            if before["hash"] == after["hash"]:
                break  # mining is off, so only a block already being built could land: none did
        else:
            raise ValueError("anvil kept mining blocks while its state was dumped")
        # anvil answers gzip'd JSON as hex and reads back only plain JSON: inflated in pieces.
        text = str(dump)
        inflate = zlib.decompressobj(16 + zlib.MAX_WBITS)
        partial = self.state_path.with_suffix(".partial")
        with open(partial, "wb") as out:
            step = 1 << 22
            for offset in range(2 if text[:2] in ("0x", "0X") else 0, len(text), step):
                out.write(inflate.decompress(bytes.fromhex(text[offset : offset + step])))
            out.write(inflate.flush())
        os.replace(partial, self.state_path)
        return int(after["number"], 16), str(after["hash"])

    def _boot(self) -> None:
        self._restarts += 1
        native = self._interval == self.default_interval
        self._devnet._relaunch(mining=native, load_state=self.state_path, attempt=self._restarts)
        self._native = native
        if not native:
            self._apply_mining(self._interval)
        if self._saved_head is not None:
            number, block_hash = self._saved_head
            try:
                kept = self._rpc("eth_getBlockByNumber", [hex(number), False])
            except (RpcError, TransportError) as exc:
                raise DevnetError(f"anvil came back but does not answer: {exc}") from None
            if not isinstance(kept, dict) or kept.get("hash") != block_hash:
                raise DevnetError(
                    f"anvil came back without its chain: block {number} is "
                    f"{kept.get('hash') if isinstance(kept, dict) else kept}, was {block_hash}"
                )
        # Up with its chain: the dump (as large as the history) has served; the next restart
        # dumps afresh. Kept until here so that undo_all() can boot from it after a failure.
        self.state_path.unlink(missing_ok=True)

    def _apply_mining(self, interval: float | None) -> None:
        try:
            if interval == self.default_interval and self._native:
                return
            self._stop_ticker()
            if interval is not None and interval.is_integer():
                self._rpc("evm_setIntervalMining", [int(interval)])
            else:
                self._rpc("evm_setIntervalMining", [0])
                if interval is not None:
                    self._ticker = BlockTicker(self._devnet.rpc_url, interval).start()
            self._native = False
        except (RpcError, TransportError) as exc:
            raise DevnetError(f"anvil refused the mining change: {exc}") from None

    def _release(self) -> None:
        self._stop_ticker()
        self.state_path.unlink(missing_ok=True)

    def _stop_ticker(self) -> None:
        if self._ticker is not None:
            self._ticker.stop()
            self._ticker = None
