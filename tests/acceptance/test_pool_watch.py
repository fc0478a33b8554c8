"""The embedded devnet re-admits transactions anvil strands in its queued pool, and only those.

anvil strands a transaction when the block holding its predecessor is committed between the
transaction's validation and its entry into the pool (a race that needs a loaded machine). The
same pool state is made here on purpose: a queued transaction waits for nonce 0, then the node is
told the sender's nonce is already 1 (``anvil_setNonce``), so the transaction's nonce equals the
on-chain nonce while it still waits for a marker no block will ever prune.
"""

from __future__ import annotations

import time

import pytest
from eth_account import Account

from pytest_gashammer.chain.rpc import call
from pytest_gashammer.devnet.embedded import EmbeddedDevnet

pytestmark = pytest.mark.usefixtures("no_new_anvil")

CHAIN_ID = 412346


def signed_transfer(account, nonce: int) -> tuple[str, str]:
    signed = account.sign_transaction(
        dict(type=2, chainId=CHAIN_ID, nonce=nonce, to=account.address, value=0, gas=21_000,
             maxFeePerGas=5 * 10**9, maxPriorityFeePerGas=10**9)
    )  # fmt: skip
    return "0x" + bytes(signed.raw_transaction).hex(), "0x" + bytes(signed.hash).hex()


def funded_account(devnet: EmbeddedDevnet):
    account = Account.create()
    call(devnet.rpc_url, "anvil_setBalance", [account.address, hex(10**20)])
    return account


def strand(devnet: EmbeddedDevnet, account, nonces: range) -> list[str]:
    hashes = []
    for nonce in nonces:
        raw, tx_hash = signed_transfer(account, nonce)
        assert call(devnet.rpc_url, "eth_sendRawTransaction", [raw]) == tx_hash
        hashes.append(tx_hash)
    call(devnet.rpc_url, "anvil_setNonce", [account.address, hex(nonces.start)])
    return hashes


def mined_nonce(devnet: EmbeddedDevnet, account) -> int:
    return int(call(devnet.rpc_url, "eth_getTransactionCount", [account.address, "latest"]), 16)


def wait_for_nonce(devnet: EmbeddedDevnet, account, nonce: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if mined_nonce(devnet, account) >= nonce:
            return True
        time.sleep(0.1)
    return False


def test_anvil_leaves_such_a_transaction_queued_without_the_watch() -> None:
    with EmbeddedDevnet(feed=False, pool_watch=False).start() as devnet:
        account = funded_account(devnet)
        strand(devnet, account, range(1, 3))
        assert not wait_for_nonce(devnet, account, 3, 2.0)
        assert int(call(devnet.rpc_url, "txpool_status")["queued"], 16) == 2
        assert devnet.incidents() == []


def test_stranded_transactions_are_mined_unchanged_and_the_devnet_says_so() -> None:
    with EmbeddedDevnet(feed=False).start() as devnet:
        account = funded_account(devnet)
        hashes = strand(devnet, account, range(1, 4))
        assert wait_for_nonce(devnet, account, 4, 10.0), devnet.incidents()
        receipts = [call(devnet.rpc_url, "eth_getTransactionReceipt", [tx_hash]) for tx_hash in hashes]
        assert [int(receipt["status"], 16) for receipt in receipts] == [1, 1, 1]
        (incident,) = devnet.incidents()
        assert account.address.lower() in incident
        assert "3 transaction(s)" in incident and "from nonce 1" in incident
        assert "re-admitted 3 unchanged" in incident and "could not" not in incident


def test_a_real_nonce_gap_is_left_alone() -> None:
    """A transaction waiting for a predecessor that was never sent is the sender's business."""
    with EmbeddedDevnet(feed=False).start() as devnet:
        account = funded_account(devnet)
        raw, tx_hash = signed_transfer(account, 2)
        call(devnet.rpc_url, "eth_sendRawTransaction", [raw])
        time.sleep(2.0)  # four polls of the watch
        assert mined_nonce(devnet, account) == 0
        assert int(call(devnet.rpc_url, "txpool_status")["queued"], 16) == 1
        assert devnet.incidents() == []
        # Once the gap is filled by the sender, everything goes through.
        call(devnet.rpc_url, "eth_sendRawTransaction", [signed_transfer(account, 0)[0]])
        call(devnet.rpc_url, "eth_sendRawTransaction", [signed_transfer(account, 1)[0]])
        assert wait_for_nonce(devnet, account, 3, 5.0)
        assert call(devnet.rpc_url, "eth_getTransactionReceipt", [tx_hash]) is not None


STRANDED_DURING_A_RUN = """
import threading
import pytest
from eth_account import Account
from pytest_gashammer.chain.rpc import call

def strand(url):
    account = Account.create()
    call(url, "anvil_setBalance", [account.address, hex(10**20)])
    signed = account.sign_transaction(dict(type=2, chainId=412346, nonce=1, to=account.address, value=0,
                                           gas=21000, maxFeePerGas=5 * 10**9, maxPriorityFeePerGas=10**9))
    call(url, "eth_sendRawTransaction", ["0x" + bytes(signed.raw_transaction).hex()])
    call(url, "anvil_setNonce", [account.address, "0x1"])

@pytest.mark.gashammer(gas_per_sec="2M", duration="8s", warmup=0, seed=5,
                       max_fee_per_gas=5_000_000_000, max_priority_fee_per_gas=1_000_000_000)
def test_run(hammer, devnet):
    threading.Timer(1.0, strand, args=(devnet.rpc_url,)).start()
    result = hammer.run()
    notes = [note for note in result.notes if note.startswith("devnet:")]
    assert len(notes) == 1 and "re-admitted 1 unchanged" in notes[0], result.notes
    assert result.lost == 0
"""


@pytest.mark.parametrize("xdist", [(), ("-n", "2")], ids=["one-process", "two-workers"])
def test_a_run_during_which_anvil_strands_a_transaction_says_so(
    pytester: pytest.Pytester, xdist: tuple[str, ...]
) -> None:
    pytester.makepyfile(test_stranded=STRANDED_DURING_A_RUN)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", *xdist, timeout=300)
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        ["*devnet: anvil stranded 1 transaction(s) of 0x* from nonce 1*re-admitted 1*"]
    )
