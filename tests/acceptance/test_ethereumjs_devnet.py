"""``--gashammer-devnet ethereumjs``: a real execution client whose blocks the plugin's consensus
driver builds over the Engine API, in real pytest runs.

One inner pytest session (one node start) holds the devnet checks, a funded transfer, pause and
resume, and a small gashammer scenario; the outer test then checks that no node outlived it and
that its chain data is gone.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from tests.acceptance.conftest import alive, process_name

pytestmark = pytest.mark.skipif(
    shutil.which("node") is None or shutil.which("npm") is None,
    reason="the EthereumJS devnet needs Node.js and npm on PATH (the plugin installs the client with npm)",
)

INNER = """
import time

import pytest
from eth_account import Account

from pytest_gashammer.chain.engine import EngineClient, EngineStatusError, ZERO_HASH
from pytest_gashammer.devnet.consensus import ConsensusDriver


def wait_for(predicate, seconds, what):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"{what} within {seconds} s")


def test_devnet_builds_blocks_and_includes_a_transfer(devnet):
    print("STATE_DIR", devnet.state_dir)
    print("NODE_PID", devnet.pid)
    assert devnet.kind == "ethereumjs"
    assert devnet.chain_id == 1337 == devnet.web3.eth.chain_id
    assert devnet.ws_url is None and devnet.feed_url is None
    assert devnet.rpc_url.startswith("http://127.0.0.1:")
    assert devnet.engine_url.startswith("http://127.0.0.1:")
    assert devnet.node_version.startswith("EthereumJS/0.10.5/")
    assert devnet.endpoints()["node_version"] == devnet.node_version
    assert devnet.funder.address == "0x3f1Eae7D46d88F08fc2F8ed27FCb2AB183EB2d0E"
    web3 = devnet.web3
    assert web3.eth.get_balance(devnet.funder.address) > 10**21
    start = web3.eth.block_number
    wait_for(lambda: web3.eth.block_number >= start + 2, 30, "two blocks built")
    genesis, latest = web3.eth.get_block(0), web3.eth.get_block("latest")
    assert genesis["baseFeePerGas"] == 10**9 and latest["gasLimit"] == 30_000_000
    assert int.from_bytes(latest["parentBeaconBlockRoot"], "big") == 0  # a Cancun header
    stamps = [web3.eth.get_block(n)["timestamp"] for n in range(1, latest["number"] + 1)]
    assert all(b > a for a, b in zip(stamps, stamps[1:])), stamps

    funder = Account.from_key(devnet.funder.key)
    recipient = web3.to_checksum_address("0x" + "7e" * 20)
    nonce = web3.eth.get_transaction_count(funder.address)
    signed = funder.sign_transaction({
        "chainId": devnet.chain_id, "nonce": nonce, "to": recipient, "value": 12345, "gas": 21000,
        "maxFeePerGas": 4 * 10**9, "maxPriorityFeePerGas": 10**9, "type": 2,
    })
    tx_hash = web3.eth.send_raw_transaction(signed.raw_transaction)
    receipt = web3.eth.wait_for_transaction_receipt(tx_hash, timeout=60, poll_latency=0.2)
    assert receipt["status"] == 1 and receipt["gasUsed"] == 21000
    assert web3.eth.get_balance(recipient) == 12345

    stats = devnet.consensus.stats()
    assert stats.blocks_built >= 3 and stats.failures == 0
    assert 0 < stats.build_seconds_max < 30 and len(stats.recent_build_seconds) == stats.blocks_built
    assert devnet.incidents() == []

    # The Engine API checks what it is handed: a payload whose block hash does not match its
    # contents is refused, with the status and the client's own reason in one line.
    engine = devnet.engine()
    head = web3.eth.get_block("latest")
    tampered = {
        "parentHash": head["hash"].to_0x_hex(), "feeRecipient": "0x" + "00" * 20,
        "stateRoot": head["stateRoot"].to_0x_hex(), "receiptsRoot": head["receiptsRoot"].to_0x_hex(),
        "logsBloom": head["logsBloom"].to_0x_hex(), "prevRandao": ZERO_HASH,
        "blockNumber": hex(head["number"] + 1), "gasLimit": hex(head["gasLimit"]), "gasUsed": "0x0",
        "timestamp": hex(head["timestamp"] + 1), "extraData": "0x", "baseFeePerGas": hex(head["baseFeePerGas"]),
        "blockHash": "0x" + "ab" * 32, "transactions": [], "withdrawals": [], "blobGasUsed": "0x0",
        "excessBlobGas": "0x0",
    }
    with pytest.raises(EngineStatusError) as refused:
        engine.new_payload(tampered, [], ZERO_HASH)
    message = str(refused.value)
    print("REFUSED", message)
    assert message.startswith("engine_newPayloadV3 returned status ") and "\\n" not in message
    assert refused.value.status.status in ("INVALID", "INVALID_BLOCK_HASH")


def test_pause_halts_block_production_and_resume_restarts_it(devnet):
    web3 = devnet.web3
    head = devnet.consensus.pause()
    assert devnet.consensus.paused
    assert head is not None and web3.eth.block_number == head.number
    built = devnet.consensus.stats().blocks_built
    time.sleep(3 * devnet.block_interval)
    assert web3.eth.block_number == head.number, "a block was built while paused"
    assert devnet.consensus.stats().blocks_built == built
    # Paused, blocks are built on demand only: one call, one block.
    manual = devnet.consensus.build_block()
    assert manual.number == head.number + 1 == web3.eth.block_number
    time.sleep(2 * devnet.block_interval)
    assert web3.eth.block_number == manual.number

    # A driver the node refuses (another JWT secret) records the failure once as an incident,
    # however often it retries, and builds nothing.
    intruder = ConsensusDriver(EngineClient(devnet.engine_url, b"\x01" * 32), devnet.rpc_url, interval=0.2)
    intruder.start()
    try:
        wait_for(lambda: intruder.stats().failures >= 3, 30, "three refused attempts")
    finally:
        assert intruder.stop(timeout=30)
    assert len(intruder.incidents) == 1, intruder.incidents
    print("INCIDENT", intruder.incidents[0])
    assert intruder.incidents[0].startswith("consensus: building a block failed: engine_forkchoiceUpdatedV3: ")
    assert "HTTP 401" in intruder.incidents[0] and "JWT" in intruder.incidents[0]
    assert web3.eth.block_number == manual.number and intruder.stats().blocks_built == 0
    devnet.consensus.resume()
    wait_for(lambda: web3.eth.block_number >= manual.number + 2, 30, "blocks again after resume")
    assert not devnet.consensus.paused


@pytest.mark.gashammer(gas_per_sec="200k", duration="4s", warmup=0, seed=5)
def test_transfer_scenario(hammer, devnet):
    result = hammer.run(check=False)
    print("COUNTS", result.sent, result.accepted, result.rejected, result.included, result.lost)
    for verdict in result.verdicts:
        print("VERDICT", verdict.describe().splitlines()[0])
    # 200 kgas/s of 21k-gas transfers for 4 s: about 38 transactions.
    assert result.sent >= 20
    assert result.accepted > 0 and result.included > 0
    assert result.included_gas_per_sec > 0
    assert {"inclusion", "nonce_contiguity", "block_continuity"} <= {v.name for v in result.verdicts}
    assert result.verdict("block_continuity").passed
"""


def node_processes(tag: str) -> set[int]:
    """Running ``node`` processes whose environment carries ``GASHAMMER_TEST_TAG=tag``."""
    needle = f"GASHAMMER_TEST_TAG={tag}".encode()
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or process_name(int(entry.name)) != "node":
            continue
        try:
            environment = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if needle in environment and alive(int(entry.name)):
            found.add(int(entry.name))
    return found


@pytest.fixture
def node_tag(monkeypatch: pytest.MonkeyPatch):
    """Tags the nodes this test starts; fails the test if one of them is left running."""
    tag = uuid.uuid4().hex
    monkeypatch.setenv("GASHAMMER_TEST_TAG", tag)
    yield tag
    deadline = time.monotonic() + 10
    leftover = node_processes(tag)
    while leftover and time.monotonic() < deadline:
        time.sleep(0.1)
        leftover = node_processes(tag)
    for pid in leftover:
        os.kill(pid, signal.SIGKILL)
    assert not leftover, f"EthereumJS processes left running: {sorted(leftover)}"


def test_ethereumjs_devnet_blocks_transfer_pause_resume_and_a_scenario(
    pytester: pytest.Pytester, node_tag: str
) -> None:
    pytester.makepyfile(test_ejs=INNER)
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "-s", "--gashammer-devnet", "ethereumjs", timeout=600
    )
    output = result.stdout.str()
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines(
        [
            "*REFUSED engine_newPayloadV3 returned status INVALID*",
            "*gashammer: 1 run(s)*",
            "*test_ejs.py::test_transfer_scenario*chain=1337 (ethereumjs, EthereumJS/0.10.5/*",
            "*counts     sent * accepted * included *",
        ]
    )
    state_dir = re.search(r"STATE_DIR (\S+)", output)
    assert state_dir is not None, output[-2000:]
    assert not Path(state_dir.group(1)).exists(), "the node's chain data outlived the session"
    assert node_processes(node_tag) == set()


def test_an_unknown_devnet_backend_is_one_line_naming_the_choices(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_nothing="def test_nothing():\n    pass\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--gashammer-devnet", "geth")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    errors = [line for line in result.stderr.lines if "--gashammer-devnet" in line]
    assert len(errors) == 1, result.stderr.lines
    assert errors[0].endswith(
        "error: argument --gashammer-devnet: 'geth' is not a devnet backend; use embedded, ethereumjs, network, nitro or container:IMAGE"
    )


def test_killing_pytest_leaves_no_ethereumjs_node(pytester: pytest.Pytester, node_tag: str) -> None:
    pytester.makepyfile(
        test_hold="""
        import time

        def test_hold(devnet):
            print("READY", devnet.pid, flush=True)
            time.sleep(120)
        """
    )
    log = pytester.path / "run.log"
    with open(log, "wb") as output:
        run = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "pytest",
                "-p",
                "no:cacheprovider",
                "-s",
                "--gashammer-devnet",
                "ethereumjs",
                "test_hold.py",
            ],  # fmt: skip
            cwd=pytester.path,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        node = None
        deadline = time.monotonic() + 120
        while node is None and time.monotonic() < deadline and run.poll() is None:
            ready = re.search(r"READY (\d+)", log.read_text())
            node = int(ready.group(1)) if ready else None
            time.sleep(0.2)
        assert node is not None, f"the devnet did not start: {log.read_text()[-2000:]}"
        assert node in node_processes(node_tag)
        os.kill(run.pid, signal.SIGKILL)
        run.wait(timeout=30)
        deadline = time.monotonic() + 10
        while alive(node) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not alive(node), f"EthereumJS {node} survived kill -9 of pytest"
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()


def test_a_node_that_fails_to_start_is_one_line_quoting_its_log(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, node_tag: str
) -> None:
    from pytest_gashammer.devnet import ethereumjs
    from pytest_gashammer.errors import DevnetError

    good = ethereumjs.genesis()
    # No forks configured, yet a base fee: the client refuses this genesis and exits.
    monkeypatch.setattr(
        ethereumjs, "genesis", lambda **_: {**good, "config": {"chainId": good["config"]["chainId"]}}
    )
    devnet = ethereumjs.EthereumJSDevnet(workdir=tmp_path)
    with pytest.raises(DevnetError) as info:
        devnet.start()
    message = str(info.value)
    assert message.startswith("EthereumJS exited with code ") and "\n" not in message
    assert "EIP1559" in message, message  # the client's own reason, from its log
    assert devnet.state_dir is None and [path.name for path in tmp_path.iterdir()] == [
        next(tmp_path.glob("ethereumjs-*.log")).name
    ]
    assert node_processes(node_tag) == set()
