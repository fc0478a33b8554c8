"""The consensus side against the real EthereumJS client: each Engine API version builds its
fork's blocks and the driver's records match the chain; synthetic withdrawals are credited; the
client refuses stale and missing tokens; and a pytest run drives a node it did not start, by URL
(``--gashammer-engine-url``, ``--gashammer-jwt-secret``, ``--gashammer-rpc-url``).

The nodes here are started by the test without the plugin's driver (``drive=False``), so only the
driver under test builds their blocks.
"""

from __future__ import annotations

import json
import shutil
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from eth_account import Account

from pytest_gashammer.chain.engine import EngineCallError, EngineClient, fork_version, jwt_token
from pytest_gashammer.chain.rpc import call
from pytest_gashammer.devnet.base import NITRO_DEV_KEY
from pytest_gashammer.devnet.consensus import WITHDRAWAL_GWEI, ConsensusDriver, withdrawal_address
from pytest_gashammer.devnet.ethereumjs import ETHEREUMJS_CHAIN_ID, EthereumJSDevnet

pytestmark = pytest.mark.skipif(
    shutil.which("node") is None or shutil.which("npm") is None,
    reason="the EthereumJS devnet needs Node.js and npm on PATH (the plugin installs the client with npm)",
)


RECIPIENT = "0x7e7e7e7E7e7E7e7e7e7E7e7e7e7E7e7e7e7e7e7E"  # checksummed: eth_account asks for it


@pytest.fixture
def undriven(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[EthereumJSDevnet]:
    """An EthereumJS node in the fork ``request.param`` (default cancun) that nothing drives yet."""
    fork = getattr(request, "param", "cancun")
    devnet = EthereumJSDevnet(workdir=tmp_path, fork=fork, drive=False).start()
    try:
        yield devnet
    finally:
        devnet.close()


def secret_of(devnet: EthereumJSDevnet) -> bytes:
    assert devnet.jwt_secret_path is not None
    return bytes.fromhex(devnet.jwt_secret_path.read_text())


def send_transfer(devnet: EthereumJSDevnet, nonce: int, value: int) -> str:
    funder = Account.from_key(devnet.funder.key)
    signed = funder.sign_transaction(
        {
            "chainId": ETHEREUMJS_CHAIN_ID,
            "nonce": nonce,
            "to": RECIPIENT,
            "value": value,
            "gas": 21000,
            "maxFeePerGas": 4 * 10**9,
            "maxPriorityFeePerGas": 10**9,
            "type": 2,
        }  # fmt: skip
    )
    return str(call(devnet.rpc_url, "eth_sendRawTransaction", ["0x" + signed.raw_transaction.hex()]))


@pytest.mark.parametrize(
    ("undriven", "version"),
    [("paris", 1), ("shanghai", 2), ("cancun", 3), ("prague", 4)],
    indirect=["undriven"],
)
def test_each_version_builds_its_forks_blocks_and_the_records_match_the_chain(
    undriven: EthereumJSDevnet, version: int
) -> None:
    devnet = undriven
    assert EngineClient.connect(devnet.engine_url, secret_of(devnet)).version == 4
    # EthereumJS serves V1-V4 whatever its chain: only the fork says which one builds.
    genesis = call(devnet.rpc_url, "eth_getBlockByNumber", ["0x0", False])
    assert fork_version(genesis) == version
    withdrawals = 2 if version >= 2 else 0
    driver = ConsensusDriver(devnet.engine(), devnet.rpc_url, withdrawals_per_block=withdrawals)
    assert driver.engine.version == version
    started = time.time()
    hashes = [send_transfer(devnet, nonce, 1000 + nonce) for nonce in range(3)]
    for _ in range(3):
        driver.build_block()
    builds = driver.builds_between(started, time.time())
    calls = driver.calls_between(started, time.time())
    assert [build.number for build in builds] == [1, 2, 3]
    assert len(calls) == 12 and driver.dropped() == (0, 0)
    fcu = min(version, 3)
    assert [(c.method, c.version, c.status) for c in calls[:4]] == [
        ("forkchoiceUpdated", fcu, "VALID"), ("getPayload", version, "OK"),
        ("newPayload", version, "VALID"), ("forkchoiceUpdated", fcu, "VALID"),
    ]  # fmt: skip
    parent = genesis["hash"]
    for build in builds:
        block = call(devnet.rpc_url, "eth_getBlockByNumber", [hex(build.number), False])
        assert fork_version(block) == version
        assert (build.block_hash, build.parent_hash) == (
            block["hash"],
            block["parentHash"],
        ) and build.parent_hash == parent
        assert build.head_after == build.block_hash
        assert (build.transactions, build.gas_used) == (len(block["transactions"]), int(block["gasUsed"], 16))
        assert build.timestamp == int(block["timestamp"], 16) and build.version == version
        assert build.withdrawals == withdrawals == len(block.get("withdrawals", []))
        assert build.build_s > 0 and build.import_s > 0 and 0 < build.driver_cpu_s < 0.5
        parent = build.block_hash
    assert sum(build.transactions for build in builds) == 3
    receipts = [call(devnet.rpc_url, "eth_getTransactionReceipt", [tx]) for tx in hashes]
    assert all(receipt and receipt["status"] == "0x1" for receipt in receipts)
    if withdrawals:
        # Six withdrawals over three blocks, indexes 0-5, each validator's address credited in gwei.
        credited = sum(
            int(call(devnet.rpc_url, "eth_getBalance", [withdrawal_address(v), "latest"]), 16)
            for v in range(6)
        )
        assert credited == 6 * WITHDRAWAL_GWEI * 10**9
        last = call(devnet.rpc_url, "eth_getBlockByNumber", ["latest", False])
        assert [int(w["index"], 16) for w in last["withdrawals"]] == [4, 5]
    print(
        "BUILD",
        version,
        [(round(b.build_s, 3), round(b.import_s, 3), round(b.driver_cpu_s, 4)) for b in builds],
    )


def test_the_client_refuses_a_stale_token_and_none_with_401_and_says_so_in_one_line(
    undriven: EthereumJSDevnet,
) -> None:
    secret = secret_of(undriven)
    body = json.dumps(
        {"jsonrpc": "2.0", "id": 1, "method": "engine_exchangeCapabilities", "params": [[]]}
    ).encode()

    def status_with(token: str | None) -> int:
        headers = {"Content-Type": "application/json"}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        request = urllib.request.Request(undriven.engine_url, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return int(response.status)
        except urllib.error.HTTPError as exc:
            return exc.code

    assert (
        status_with(jwt_token(secret)) == 200
    )  # the same request, fresh: what makes the others' 401 mean something
    assert status_with(jwt_token(secret, issued_at=time.time() - 120)) == 401
    assert status_with(None) == 401
    with pytest.raises(EngineCallError) as info:
        EngineClient(undriven.engine_url, b"\x01" * 32).exchange_capabilities()
    message = str(info.value)
    assert info.value.unauthorized and "\n" not in message
    assert message == (
        f"engine_exchangeCapabilities: HTTP 401 from {undriven.engine_url} (the JWT was refused: the secret "
        "differs from the node's --jwtSecret)"
    )


INNER = """
import time

import pytest


@pytest.mark.gashammer(gas_per_sec="200k", duration="4s", warmup=0, seed=21)
def test_transfers_on_a_node_by_url(hammer, devnet):
    assert devnet.kind == "engine" and devnet.engine_version == 3
    started = time.time()
    result = hammer.run()
    print("COUNTS", result.sent, result.accepted, result.included)
    assert result.sent >= 20 and result.included == result.accepted == result.sent
    builds = devnet.consensus.builds_between(started, time.time())
    assert builds and all(build.head_after == build.block_hash for build in builds)
    assert sum(build.transactions for build in builds) >= result.included
    print("BUILDS", len(builds), "CALLS", len(devnet.consensus.calls_between(started, time.time())))
"""


def test_a_pytest_run_drives_a_node_by_url_and_a_wrong_secret_is_one_line(
    pytester: pytest.Pytester, undriven: EthereumJSDevnet
) -> None:
    pytester.makepyfile(test_by_url=INNER)
    assert undriven.jwt_secret_path is not None
    base = [
        "-p", "no:cacheprovider", "-s",
        "--gashammer-engine-url", undriven.engine_url,
        "--gashammer-rpc-url", undriven.rpc_url,
        "--gashammer-funder-key", NITRO_DEV_KEY,
    ]  # fmt: skip
    result = pytester.runpytest_subprocess(
        *base, "--gashammer-jwt-secret", str(undriven.jwt_secret_path), timeout=120
    )
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*COUNTS *", "*BUILDS *"])

    wrong = pytester.path / "wrong.hex"
    wrong.write_text("0x" + "ab" * 32 + "\n")
    result = pytester.runpytest_subprocess(*base, "--gashammer-jwt-secret", str(wrong), timeout=60)
    result.assert_outcomes(errors=1)
    expected = (
        f"--gashammer-engine-url {undriven.engine_url} refused the JWT (HTTP 401): --gashammer-jwt-secret is "
        "not the secret the node was started with (or this machine's clock is more than a minute off)"
    )
    assert any(line.endswith(expected) for line in result.stdout.lines), result.stdout.str()[-2000:]
