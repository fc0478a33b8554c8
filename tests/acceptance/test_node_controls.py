"""Node controls against real nodes: pause, restart, mining stop and slow blocks, undo_all.

Each test starts its own devnet (anvil starts in ~0.1 s) and closes it on every exit path; block
paces are measured by polling ``eth_blockNumber`` every 10 ms. The EthereumJS tests need Node.js.
"""

from __future__ import annotations

import shutil
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from eth_account import Account

from pytest_gashammer.chain.rpc import RpcError, TransportError, call
from pytest_gashammer.devnet.control import NODE_OPERATIONS
from pytest_gashammer.devnet.embedded import EmbeddedDevnet
from pytest_gashammer.feed import FeedMessage, decode_broadcast
from pytest_gashammer.feed.relay import FEED_CLIENT_VERSION_HEADER
from tests.acceptance.conftest import alive, node_outlives_a_sigkilled_pytest, process_state

BLOCK_TIME = 0.25


@pytest.fixture
def node(no_new_anvil: None) -> Iterator[EmbeddedDevnet]:
    with EmbeddedDevnet().start() as devnet:
        yield devnet


# -- helpers --------------------------------------------------------------------------------------


def height(url: str, timeout: float = 5.0) -> int:
    return int(call(url, "eth_blockNumber", timeout=timeout), 16)


def block(url: str, number: int | str) -> dict[str, Any]:
    tag = hex(number) if isinstance(number, int) else number
    answer = call(url, "eth_getBlockByNumber", [tag, False])
    assert isinstance(answer, dict), f"no block {number}"
    return answer


def block_gaps(url: str, gaps: int, timeout: float) -> list[float]:
    """Seconds between the first sightings of the next ``gaps + 1`` new blocks (10 ms polls)."""
    seen: list[float] = []
    last = height(url)
    deadline = time.monotonic() + timeout
    while len(seen) < gaps + 1:
        assert time.monotonic() < deadline, f"only {len(seen)} new blocks in {timeout} s"
        current = height(url)
        if current > last:
            seen.append(time.monotonic())
            last = current
        time.sleep(0.01)
    return [later - earlier for earlier, later in zip(seen, seen[1:], strict=False)]


def mean(values: list[float]) -> float:
    return sum(values) / len(values)


def no_block_for(url: str, seconds: float) -> bool:
    start = height(url)
    time.sleep(seconds)
    return height(url) == start


def transfer(devnet: Any, to: str, value: int, *, wait: bool = True) -> str:
    url = devnet.rpc_url
    nonce = int(call(url, "eth_getTransactionCount", [devnet.funder.address, "pending"]), 16)
    base_fee = int(block(url, "latest")["baseFeePerGas"], 16)
    signed = Account.sign_transaction(
        {
            "to": to,
            "value": value,
            "gas": 21_000,
            "maxFeePerGas": 2 * base_fee + 10**9,
            "maxPriorityFeePerGas": 10**9,
            "nonce": nonce,
            "chainId": devnet.chain_id,
            "type": 2,
        },
        devnet.funder.key,
    )
    tx_hash = str(call(url, "eth_sendRawTransaction", ["0x" + signed.raw_transaction.hex()]))
    deadline = time.monotonic() + 10
    while wait and call(url, "eth_getTransactionReceipt", [tx_hash]) is None:
        assert time.monotonic() < deadline, f"{tx_hash} not included within 10 s"
        time.sleep(0.05)
    return tx_hash


def balance(url: str, address: str) -> int:
    return int(call(url, "eth_getBalance", [address, "latest"]), 16)


def fresh_address() -> str:
    return Account.create().address


class FeedReader:
    """Collects every message a WebSocket client of the relay receives, on a thread."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.messages: list[FeedMessage] = []
        self.error: BaseException | None = None
        self._connection: Any = None
        self._connected = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        assert self._connected.wait(5), f"no connection to {url}: {self.error}"

    def _run(self) -> None:
        from websockets.exceptions import ConnectionClosed
        from websockets.sync.client import connect

        try:
            with connect(self.url, additional_headers={FEED_CLIENT_VERSION_HEADER: "2"}) as connection:
                self._connection = connection
                self._connected.set()
                for frame in connection:
                    self.messages.extend(decode_broadcast(frame).messages)
        except ConnectionClosed:
            pass
        except BaseException as exc:  # reported by the test
            self.error = exc
            self._connected.set()

    def wait_for(self, sequence: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not (self.messages and self.messages[-1].sequence_number >= sequence):
            assert self.error is None, self.error
            assert time.monotonic() < deadline, f"feed message {sequence} not received within {timeout} s"
            time.sleep(0.02)

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
        self._thread.join(5)
        assert self.error is None, self.error


def wait_until_down(control: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not control.down:
        assert time.monotonic() < deadline, "the node never went down"
        time.sleep(0.01)


# -- anvil ----------------------------------------------------------------------------------------


def test_the_embedded_devnet_supports_every_operation(node: EmbeddedDevnet) -> None:
    control = node.node_control()
    assert control.supports == NODE_OPERATIONS
    assert control.healthy and node.node_control() is control
    assert call(node.rpc_url, "anvil_getAutomine") is False


def test_pause_stops_blocks_and_resume_continues_them(node: EmbeddedDevnet) -> None:
    control, url, pid = node.node_control(), node.rpc_url, node.pid
    assert pid is not None
    block_gaps(url, 1, timeout=5)  # mining at its pace
    before = height(url)
    control.pause()
    control.pause()
    assert control.paused and process_state(pid) == "T"
    with pytest.raises(TransportError):
        call(url, "eth_blockNumber", timeout=0.5)  # a stopped node answers nothing
    time.sleep(0.5)  # 1 s paused in all: four blocks at 250 ms
    control.resume()
    control.resume()
    assert process_state(pid) != "T"
    resumed = height(url)
    # At most the block being mined as the pause landed and the one anvil mines on SIGCONT.
    assert resumed - before <= 2, f"{resumed - before} blocks while paused"
    gaps = block_gaps(url, 4, timeout=5)
    assert 0.15 < mean(gaps) < 0.4, gaps
    assert control.healthy


def test_restart_keeps_the_chain_the_port_and_the_feed_sequence(node: EmbeddedDevnet) -> None:
    control, url, relay = node.node_control(), node.rpc_url, node.feed_relay
    old_pid = node.pid
    funded = fresh_address()
    transfer(node, funded, 10**18)
    assert node.feed_url is not None
    reader = FeedReader(node.feed_url)
    try:
        reader.wait_for(height(url), timeout=5)
        head = block(url, "latest")
        funder_balance = balance(url, node.funder.address)
        funder_nonce = call(url, "eth_getTransactionCount", [node.funder.address, "latest"])

        restarting = threading.Thread(target=control.restart, kwargs={"downtime": 1.0})
        started = time.monotonic()
        restarting.start()
        wait_until_down(control)
        with pytest.raises(TransportError, match="refused"):
            call(url, "eth_blockNumber", timeout=1)
        restarting.join(15)
        took = time.monotonic() - started
        assert not restarting.is_alive() and not control.down
        assert 1.0 <= took < 4.0, took

        assert node.rpc_url == url and node.pid != old_pid and old_pid is not None and not alive(old_pid)
        assert height(url) >= int(head["number"], 16)
        assert block(url, int(head["number"], 16))["hash"] == head["hash"]
        assert balance(url, funded) == 10**18
        assert balance(url, node.funder.address) == funder_balance
        assert call(url, "eth_getTransactionCount", [node.funder.address, "latest"]) == funder_nonce
        assert call(url, "anvil_getAutomine") is False
        gaps = block_gaps(url, 4, timeout=5)
        assert 0.15 < mean(gaps) < 0.4, gaps  # anvil's own miner at the devnet's block time

        # The funder still pays, and the feed carries the new block too.
        after = transfer(node, funded, 1)
        included = int(call(url, "eth_getTransactionReceipt", [after])["blockNumber"], 16)
        reader.wait_for(included + 1, timeout=10)
    finally:
        reader.close()
    sequences = [message.sequence_number for message in reader.messages]
    assert sequences == list(range(sequences[0], sequences[-1] + 1)), "a gap or a repeat in the feed"
    for message in reader.messages:
        # Sequence = block number (no block was split on this idle chain), hashes those of the chain.
        assert message.block_hash == block(url, message.sequence_number)["hash"]
    assert relay.stats.reorgs == 0
    assert any(after in message.tx_hashes for message in reader.messages)
    watch = node._pool_watch
    assert watch is not None and watch._thread is not None and watch._thread.is_alive()


def test_restart_forgets_the_pool_and_keeps_mining_stopped(node: EmbeddedDevnet) -> None:
    control, url = node.node_control(), node.rpc_url
    control.stop_mining()
    pending = transfer(node, fresh_address(), 1, wait=False)
    assert int(call(url, "txpool_status")["pending"], 16) == 1
    stopped_at = height(url)
    control.restart()
    assert call(url, "eth_getTransactionByHash", [pending]) is None
    assert call(url, "txpool_status") == {"pending": "0x0", "queued": "0x0"}
    assert control.block_interval is None
    assert call(url, "anvil_getAutomine") is False
    assert no_block_for(url, 1.0) and height(url) == stopped_at
    assert not control.state_path.exists()  # the dump served and is gone
    control.restore_mining()
    gaps = block_gaps(url, 4, timeout=5)
    assert 0.15 < mean(gaps) < 0.4, gaps
    assert control.healthy


def test_mining_stop_and_slow_blocks_are_measured_paces(node: EmbeddedDevnet) -> None:
    control, url = node.node_control(), node.rpc_url
    control.stop_mining()
    control.stop_mining()
    assert no_block_for(url, 1.5)
    assert call(url, "anvil_getAutomine") is False
    control.set_block_interval(0.5)  # below a second: the devnet's ticker
    slow = block_gaps(url, 4, timeout=6)
    assert 0.4 < mean(slow) < 0.65, slow
    control.set_block_interval(1.0)  # whole seconds: anvil's interval miner
    slower = block_gaps(url, 2, timeout=6)
    assert all(0.8 < gap < 1.25 for gap in slower), slower
    assert call(url, "anvil_getAutomine") is False
    control.restore_mining()
    control.restore_mining()
    restored = block_gaps(url, 6, timeout=5)
    assert 0.18 < mean(restored) < 0.35, restored
    assert control.healthy


@pytest.mark.parametrize("state", ["paused", "down", "mining-stopped", "slow", "paused-and-slow"])
def test_undo_all_brings_the_node_back_from(node: EmbeddedDevnet, state: str) -> None:
    control, url = node.node_control(), node.rpc_url
    restarting = None
    if state in ("slow", "paused-and-slow"):
        control.set_block_interval(2.0)
    if state == "mining-stopped":
        control.stop_mining()
    if state.startswith("paused"):
        control.pause()
    if state == "down":
        restarting = threading.Thread(target=control.restart, kwargs={"downtime": 60.0})
        restarting.start()
        wait_until_down(control)
    started = time.monotonic()
    control.undo_all()
    assert time.monotonic() - started < 3
    if restarting is not None:
        restarting.join(5)
        assert not restarting.is_alive()
    assert control.healthy and node.pid is not None and process_state(node.pid) not in ("T", "")
    gaps = block_gaps(url, 4, timeout=5)
    assert 0.15 < mean(gaps) < 0.4, gaps
    assert call(url, "anvil_getAutomine") is False
    control.undo_all()  # and again: nothing to do


def test_close_ends_a_paused_anvil_at_once(no_new_anvil: None) -> None:
    devnet = EmbeddedDevnet(feed=False).start()
    pid = devnet.pid
    assert pid is not None
    devnet.node_control().pause()
    started = time.monotonic()
    devnet.close()
    assert time.monotonic() - started < 2.5
    assert not alive(pid)


INNER = """
import time

def test_pause_then_wait(devnet):
    devnet.node_control().pause()
    print("PAUSED", devnet.pid, flush=True)
    time.sleep(120)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG and /proc are Linux")
def test_a_paused_anvil_dies_with_a_sigkilled_pytest(pytester: pytest.Pytester, no_new_anvil: None) -> None:
    state = node_outlives_a_sigkilled_pytest(pytester, INNER, "PAUSED")
    assert state in ("", "Z"), f"anvil outlived pytest in state {state!r}"


# -- EthereumJS -----------------------------------------------------------------------------------

needs_node = pytest.mark.skipif(
    shutil.which("node") is None or shutil.which("npm") is None,
    reason="the EthereumJS devnet needs Node.js and npm on PATH",
)


@pytest.fixture
def ejs() -> Iterator[Any]:
    from pytest_gashammer.devnet.ethereumjs import EthereumJSDevnet

    with EthereumJSDevnet(block_interval=0.5).start() as devnet:
        pid = devnet.pid
        yield devnet
    assert pid is not None and not alive(pid)


@needs_node
def test_ethereumjs_pause_and_resume(ejs: Any) -> None:
    control, url = ejs.node_control(), ejs.rpc_url
    assert control.supports == NODE_OPERATIONS
    block_gaps(url, 1, timeout=5)
    before = height(url)
    control.pause()
    assert process_state(ejs.pid) == "T" and ejs.consensus.paused
    time.sleep(1.0)
    control.resume()
    assert height(url) - before <= 1
    block_gaps(url, 2, timeout=5)
    assert control.healthy and ejs.incidents() == []


@needs_node
def test_ethereumjs_mining_stop_and_slow_blocks(ejs: Any) -> None:
    control, url = ejs.node_control(), ejs.rpc_url
    control.stop_mining()
    assert no_block_for(url, 1.5)
    control.set_block_interval(1.5)
    slow = block_gaps(url, 2, timeout=6)
    assert all(1.2 < gap < 1.9 for gap in slow), slow
    control.undo_all()
    restored = block_gaps(url, 3, timeout=5)
    assert 0.35 < mean(restored) < 0.7, restored
    assert control.healthy and ejs.incidents() == []


@needs_node
def test_ethereumjs_restart_keeps_its_chain_and_forgets_its_pool(ejs: Any) -> None:
    control, url = ejs.node_control(), ejs.rpc_url
    funded = fresh_address()
    transfer(ejs, funded, 10**18)
    control.stop_mining()
    pending = transfer(ejs, fresh_address(), 1, wait=False)
    head = block(url, "latest")
    old_pid = ejs.pid
    control.restart()
    assert ejs.pid != old_pid and not alive(old_pid) and ejs.rpc_url == url
    assert height(url) == int(head["number"], 16)
    assert block(url, int(head["number"], 16))["hash"] == head["hash"]
    assert balance(url, funded) == 10**18
    assert call(url, "eth_getTransactionByHash", [pending]) is None
    assert no_block_for(url, 1.0)  # still stopped after the restart
    control.restore_mining()
    block_gaps(url, 2, timeout=5)
    transfer(ejs, funded, 1)  # the node builds on the kept head with the driver
    assert control.healthy and ejs.incidents() == []


@needs_node
def test_ethereumjs_undo_all_ends_a_downtime(ejs: Any) -> None:
    control, url = ejs.node_control(), ejs.rpc_url
    restarting = threading.Thread(target=control.restart, kwargs={"downtime": 60.0})
    restarting.start()
    wait_until_down(control)
    with pytest.raises((TransportError, RpcError)):
        call(url, "eth_blockNumber", timeout=1)
    control.undo_all()
    restarting.join(10)
    assert not restarting.is_alive() and control.healthy
    block_gaps(url, 2, timeout=5)
