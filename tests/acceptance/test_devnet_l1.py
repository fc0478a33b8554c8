"""The embedded devnet's L1: a second anvil with the real Nitro inbox, fed by a batch poster of real
Nitro batches that carry exactly the L2's transactions; started and stopped with the devnet.

Every batch is read back from the L1 the way a rollup node would: the posting transaction's calldata,
decoded with the batch codec, compared with the L2's blocks.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import Any

import pytest

from pytest_gashammer.chain.keccak import keccak256
from pytest_gashammer.chain.rpc import call, call_batch
from pytest_gashammer.chain.signer import FastSigner
from pytest_gashammer.devnet.embedded import EmbeddedDevnet
from pytest_gashammer.devnet.l1_chain import L1_CHAIN_ID
from pytest_gashammer.devnet.nitro_contracts import ENV_VAR, find_nitro_contracts, managed_package
from pytest_gashammer.errors import DevnetError
from pytest_gashammer.l1.abi import decode, selector
from pytest_gashammer.l1.batch import decode_batch
from pytest_gashammer.l1.contracts import ADD_BATCH, ARTIFACT_PATHS
from pytest_gashammer.options import L1_URL, NO_L1, SEQUENCER_INBOX
from tests.acceptance.conftest import alive, anvil_processes

pytestmark = pytest.mark.skipif(
    shutil.which("npm") is None and not managed_package().is_dir(),
    reason="npm is needed once to install @arbitrum/nitro-contracts",
)

RECIPIENT = "0x1111222233334444555566667777888899990000"


def send_transfers(devnet: EmbeddedDevnet, count: int) -> list[str]:
    signer = FastSigner(devnet.funder.key, devnet.chain_id)
    nonce = int(call(devnet.rpc_url, "eth_getTransactionCount", [devnet.funder.address, "pending"]), 16)
    hashes = []
    for offset in range(count):
        signed = signer.sign(
            {
                "type": 2,
                "chainId": devnet.chain_id,
                "nonce": nonce + offset,
                "gas": 21_000,
                "to": RECIPIENT,
                "value": offset + 1,
                "maxFeePerGas": 10 * 10**9,
                "maxPriorityFeePerGas": 10**9,
            }  # fmt: skip
        )
        hashes.append(call(devnet.rpc_url, "eth_sendRawTransaction", ["0x" + signed.raw.hex()]))
        time.sleep(0.1)  # spread over several L2 blocks
    return hashes


def wait_for(condition: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def l2_blocks(devnet: EmbeddedDevnet, first: int, last: int) -> list[dict[str, Any]]:
    return call_batch(
        devnet.rpc_url, [("eth_getBlockByNumber", [hex(n), False]) for n in range(first, last + 1)]
    )


def posted_batch(l1_url: str, tx_hash: str) -> tuple[int, bytes, int, int]:
    """(sequenceNumber, data, prevMessageCount, newMessageCount) of the posting transaction's calldata."""
    calldata = bytes.fromhex(call(l1_url, "eth_getTransactionByHash", [tx_hash])["input"][2:])
    assert calldata[:4] == selector(ADD_BATCH)
    sequence, data, delayed, refunder, prev, new = decode(
        ["uint256", "bytes", "uint256", "address", "uint256", "uint256"], calldata[4:]
    )
    assert (delayed, refunder) == (0, "0x" + "00" * 20)
    return sequence, data, prev, new


@pytest.mark.usefixtures("no_new_anvil")
def test_the_batches_on_the_l1_carry_the_l2_blocks_and_their_transactions_in_order() -> None:
    tag = os.environ["GASHAMMER_TEST_TAG"]
    devnet = EmbeddedDevnet(batch_interval=0.5, assert_every=2, confirm_delay=0.5).start()
    try:
        l1 = devnet.l1
        poster = devnet.batch_poster
        assert l1 is not None and poster is not None and l1.owned
        assert len(anvil_processes(tag)) == 2, "the L2 and the L1"
        assert int(call(l1.rpc_url, "eth_chainId"), 16) == l1.chain_id == L1_CHAIN_ID
        assert l1.bridge and l1.rollup and l1.deployed_at_block >= 1
        assert call(l1.rpc_url, "eth_getCode", [l1.sequencer_inbox, "latest"]) not in ("0x", "")
        hashes = send_transfers(devnet, 6)

        def receipts() -> list[Any]:
            return [call(devnet.rpc_url, "eth_getTransactionReceipt", [tx_hash]) for tx_hash in hashes]

        wait_for(lambda: all(receipts()), 10, "the transfers' receipts")
        last_block = max(int(receipt["blockNumber"], 16) for receipt in receipts())
        wait_for(
            lambda: poster.batches() and poster.batches()[-1].last_block >= last_block, 15, "the batches"
        )
        wait_for(lambda: any(a.confirmed_tx for a in poster.assertions()), 15, "a confirmed assertion")
        assert poster.error is None and not poster.failures(), poster.failures()

        batches = poster.batches()
        assert batches[0].first_block == 1
        carried: list[str] = []
        for record in batches:
            sequence, data, prev, new = posted_batch(l1.rpc_url, record.tx_hash)
            assert (sequence, prev, new) == (
                record.sequence_number,
                record.first_block,
                record.last_block + 1,
            )
            decoded = decode_batch(data)
            blocks = l2_blocks(devnet, record.first_block, record.last_block)
            assert decoded.message_count == new - prev == len(blocks)
            for batch_block, l2_block in zip(decoded.blocks, blocks, strict=True):
                assert ["0x" + keccak256(raw).hex() for raw in batch_block.transactions] == l2_block[
                    "transactions"
                ]
                assert batch_block.timestamp == int(l2_block["timestamp"], 16)
                assert 0 < batch_block.l1_block_number <= record.l1_block
                carried += l2_block["transactions"]
        assert [tx_hash for tx_hash in carried if tx_hash in hashes] == hashes, "each transfer once, in order"
        assert devnet.incidents() == []
        l2_head = int(call(devnet.rpc_url, "eth_blockNumber"), 16)
        pids = (devnet.pid, devnet.l1_pid)
    finally:
        devnet.close()
    assert poster.batches()[-1].last_block >= l2_head, "closing posts the blocks made since the last batch"
    assert not any(pid is not None and alive(pid) for pid in pids)
    assert not anvil_processes(tag)


@pytest.mark.usefixtures("no_new_anvil")
def test_without_its_l1_the_devnet_starts_one_anvil_and_has_no_l1() -> None:
    tag = os.environ["GASHAMMER_TEST_TAG"]
    with EmbeddedDevnet(l1=False, feed=False).start() as devnet:
        assert devnet.l1 is None and devnet.batch_poster is None and devnet.l1_pid is None
        assert anvil_processes(tag) == {devnet.pid}
    assert not anvil_processes(tag)


def _wrong_version_copy(tmp_path: Path) -> Path:
    """A copy of the package that passes the artifact lookup and is refused when the deployment loads it."""
    package = find_nitro_contracts()
    copy = tmp_path / "nitro-contracts"
    for relative in ARTIFACT_PATHS.values():
        (copy / relative).parent.mkdir(parents=True, exist_ok=True)
        (copy / relative).symlink_to(package / relative)
    (copy / "package.json").write_text('{"version": "0.0.1"}')
    return copy


@pytest.mark.usefixtures("no_new_anvil")
@pytest.mark.parametrize("where", ["before the L1 anvil", "after the L1 anvil"])
def test_an_l1_that_fails_to_start_leaves_no_process_and_says_so_in_one_line(
    where: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tag = os.environ["GASHAMMER_TEST_TAG"]
    empty = tmp_path / "empty"
    empty.mkdir()
    package = empty if where == "before the L1 anvil" else _wrong_version_copy(tmp_path)
    monkeypatch.setenv(ENV_VAR, str(package))
    devnet = EmbeddedDevnet(feed=False)
    with pytest.raises(DevnetError) as info:
        devnet.start()
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("the embedded devnet's L1 did not start: ")
    assert message.endswith(f"; or pass {NO_L1} to run without it")
    assert (ENV_VAR if where == "before the L1 anvil" else "0.0.1") in message
    assert not anvil_processes(tag), "every process started is stopped"
    assert devnet.pid is None and devnet.l1_pid is None


L1_SEEN = """
def test_l1(devnet):
    l1 = devnet.l1
    print("\\nSEEN-L1", None if l1 is None else (l1.rpc_url, l1.sequencer_inbox, l1.rollup, l1.bridge, l1.owned))
    print("SEEN-POSTER", devnet.batch_poster is not None)
"""


def _seen(result: pytest.RunResult, prefix: str) -> str:
    return next(line.split(" ", 1)[1] for line in result.outlines if line.startswith(f"SEEN-{prefix} "))


@pytest.mark.usefixtures("no_new_anvil")
def test_the_options_give_the_devnet_fixture_its_l1_or_none(pytester: pytest.Pytester) -> None:
    tag = os.environ["GASHAMMER_TEST_TAG"]
    pytester.makepyfile(test_l1=L1_SEEN)
    default = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-s")
    default.assert_outcomes(passed=1)
    assert _seen(default, "L1").endswith("True)") and _seen(default, "POSTER") == "True"
    without = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-s", NO_L1)
    without.assert_outcomes(passed=1)
    assert (_seen(without, "L1"), _seen(without, "POSTER")) == ("None", "False")
    # Another devnet's L1, named: the session's devnet starts no L1 of its own and does not own that one.
    with EmbeddedDevnet(feed=False).start() as other:
        assert other.l1 is not None
        named = pytester.runpytest_subprocess(
            "-p", "no:cacheprovider", "-s", L1_URL, other.l1.rpc_url, SEQUENCER_INBOX, other.l1.sequencer_inbox,
        )  # fmt: skip
        named.assert_outcomes(passed=1)
        expected = (other.l1.rpc_url, other.l1.sequencer_inbox, other.l1.rollup, other.l1.bridge, False)
        assert _seen(named, "L1") == repr(expected)
        assert _seen(named, "POSTER") == "False"
        assert len(anvil_processes(tag)) == 2, (
            "the inner session's anvil is gone, the outer devnet's two remain"
        )
