"""The L1 monitor against a real L1 anvil (the real Nitro Bridge and SequencerInbox, the rollup
stand-in), a real L2 anvil and the batch poster: transfers on the L2, every L2 block mapped to the
batch that carried it, the five L1 invariants judged; and a poster whose encoder swaps two
transactions, which ``batch_contents`` catches with the evidence."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pytest_gashammer.chain.rpc import call, call_batch
from pytest_gashammer.chain.signer import FastSigner
from pytest_gashammer.chain.tx import rebuilt_raw_transaction
from pytest_gashammer.l1.batch import BatchBlock, encode_batch
from pytest_gashammer.l1.monitor import READ_METHODS, L1Monitor
from pytest_gashammer.l1.observation import L1Observation
from pytest_gashammer.l1.poster import BatchPoster
from pytest_gashammer.oracle.l1 import l1_figures, l1_verdicts
from pytest_gashammer.vocabulary import L1_INVARIANT_NAMES
from tests.acceptance import test_l1_chain
from tests.acceptance.test_l1_chain import (
    L2_CHAIN_ID,
    POSTER_KEY,
    address_of,
    anvil,
    deploy,
    fund,
    nitro_package,
)

pytestmark = test_l1_chain.pytestmark
__all__ = ["nitro_package"]  # a fixture, used by name

SENDER_KEY = "0x" + "d4" * 32


@pytest.fixture
def l1(tmp_path: Path) -> Iterator[str]:
    with anvil(tmp_path, test_l1_chain.L1_CHAIN_ID) as url:
        fund(url, test_l1_chain.DEPLOYER_KEY, POSTER_KEY)
        yield url


def l2_chain(tmp_path: Path, *extra: str) -> Any:
    return anvil(tmp_path, L2_CHAIN_ID, *extra)


def raw_blocks(l2: str, blocks: list[dict[str, Any]]) -> list[BatchBlock]:
    """The blocks as a batch carries them: each transaction's signed bytes, rebuilt from its JSON (or
    asked of the node), checked against its hash."""
    out = []
    for block in blocks:
        raws = []
        for tx in block["transactions"]:
            raw = rebuilt_raw_transaction(tx)
            if raw is None:
                raw = bytes.fromhex(call(l2, "eth_getRawTransactionByHash", [tx["hash"]])[2:])
            raws.append(raw)
        out.append(BatchBlock(int(block["timestamp"], 16), 0, tuple(raws)))
    return out


def encoder(l2: str) -> Any:
    return lambda blocks: encode_batch(raw_blocks(l2, blocks))


def swapping_encoder(l2: str) -> Any:
    """Encodes the blocks with the first two transactions of every block of two or more swapped."""

    def encode(blocks: list[dict[str, Any]]) -> bytes:
        swapped = []
        for block in raw_blocks(l2, blocks):
            txs = block.transactions
            if len(txs) >= 2:
                txs = (txs[1], txs[0], *txs[2:])
            swapped.append(BatchBlock(block.timestamp, block.l1_block_number, txs))
        return encode_batch(swapped)

    return encode


def send_transfers(l2: str, signer: FastSigner, first_nonce: int, count: int) -> list[str]:
    """``count`` transfers in one JSON-RPC batch (so they tend to share a block); their hashes."""
    txs = [
        signer.sign(
            {
                "nonce": first_nonce + index,
                "to": "0x" + "5e" * 20,
                "value": 1000 + index,
                "gas": 21_000,
                "maxFeePerGas": 10**10,
                "maxPriorityFeePerGas": 0,
                "chainId": L2_CHAIN_ID,
            }
        )
        for index in range(count)
    ]
    answers = call_batch(l2, [("eth_sendRawTransaction", [tx.raw_hex]) for tx in txs])
    assert all(isinstance(answer, str) for answer in answers), answers
    return [tx.hash_hex for tx in txs]


def head(url: str) -> int:
    return int(call(url, "eth_blockNumber"), 16)


def wait_for(condition: Any, what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def test_every_l2_block_of_a_run_maps_to_its_batch_and_every_l1_invariant_passes(
    l1: str, tmp_path: Path, nitro_package: Path
) -> None:
    deployment = deploy(l1, nitro_package, confirm_period_blocks=1)
    with l2_chain(tmp_path, "--block-time", "0.25") as l2:
        fund(l2, SENDER_KEY)
        poster = BatchPoster(
            l1,
            deployment.sequencer_inbox,
            POSTER_KEY,
            l2_rpc_url=l2,
            encode=encoder(l2),
            rollup=deployment.rollup,
            interval=0.5,
            assert_every=2,
            confirm_delay=0.3,
        )
        monitor = L1Monitor(
            l1,
            deployment.sequencer_inbox,
            l2_rpc_url=l2,
            rollup=deployment.rollup,
            from_l1_block=deployment.deployed_at_block,
            poll_interval=0.1,
        )
        poster.start()
        try:
            monitor.start()
            first = monitor.observation().first_l2_block
            signer = FastSigner(SENDER_KEY, L2_CHAIN_ID)
            sent: list[str] = []
            for burst in range(6):
                sent += send_transfers(l2, signer, len(sent), 1 + burst % 3)
                time.sleep(0.35)
            last = head(l2)
            assert monitor.wait_posted(last, 20), monitor.observation().problems
            wait_for(lambda: monitor.observation().confirmations, "a confirmation the monitor saw")
        finally:
            poster.stop()
            monitor.stop()
        assert poster.error is None and not poster.failures(), poster.failures()
        observation = monitor.observation()
        run_blocks = range(first, last + 1)
        included = {
            tx_hash
            for block in observation.l2_blocks
            if block.number in run_blocks
            for tx_hash in block.transactions
        }
        assert set(sent) <= included, "every transfer is in an L2 block of the run"

    verdicts = l1_verdicts(observation, run_blocks, waited_s=20)
    assert [v.name for v in verdicts] == list(L1_INVARIANT_NAMES)
    assert all(v.status == "passed" for v in verdicts), "\n".join(v.describe() for v in verdicts)
    print("\n".join(v.describe() for v in verdicts))
    _agrees_with_the_poster(observation, poster)
    carried = {
        tx_hash
        for batch in observation.batches
        for message in batch.messages or ()
        for tx_hash in message.transactions or ()
    }
    assert set(sent) <= carried, "the decoded batches carry every transfer"

    figures = l1_figures(observation, run_blocks)
    print(
        f"{figures.batches} batches, {figures.blocks_posted}/{figures.blocks_of_run} blocks, lag p50 "
        f"{figures.batch_lag.p50:.2f} s max {figures.batch_lag.max:.2f} s, {figures.bytes_per_batch:.0f} B and "
        f"{figures.l1_gas_per_batch:.0f} gas per batch, {figures.l1_gas_per_l2_tx:.0f} gas per L2 tx, "
        f"{figures.assertions} assertions, {figures.confirmations} confirmations"
    )
    assert figures.blocks_posted == figures.blocks_of_run == len(run_blocks) > 0
    assert figures.batch_lag.count == len(run_blocks) and 0 <= figures.batch_lag.max < 10
    assert figures.batches >= 2 and figures.bytes_per_batch > 0 and figures.l1_gas_per_batch > 100_000
    assert figures.l1_gas_per_l2_tx > 0 and figures.bytes_per_l2_tx > 0
    assert figures.assertions >= 1 and figures.confirmations >= 1 and figures.confirmation_lag.count >= 1
    assert figures.problems == []
    assert set(monitor.calls()) <= READ_METHODS
    assert int(call(l1, "eth_getTransactionCount", [address_of(POSTER_KEY), "latest"]), 16) == sum(
        1 for _ in poster.batches()
    ) + sum(1 + (a.confirmed_tx is not None) for a in poster.assertions())


def _agrees_with_the_poster(observation: L1Observation, poster: BatchPoster) -> None:
    """What the monitor read back from the L1 is what the poster says it posted, batch by batch."""
    seen = {batch.sequence_number: batch for batch in observation.batches}
    for record in poster.batches():
        batch = seen[record.sequence_number]
        assert (batch.prev_message_count, batch.new_message_count) == (
            record.prev_message_count,
            record.new_message_count,
        )
        assert (batch.l1_tx, batch.l1_block, batch.l1_gas, batch.data_bytes) == (
            record.tx_hash,
            record.l1_block,
            record.l1_gas,
            record.data_bytes,
        )
        assert (batch.before_acc, batch.after_acc) == (record.before_acc, record.after_acc)
        assert batch.entry_point == "addSequencerL2BatchFromOrigin" and batch.decode_error is None


def test_a_poster_that_swaps_two_transactions_fails_batch_contents_with_the_evidence(
    l1: str, tmp_path: Path, nitro_package: Path
) -> None:
    deployment = deploy(l1, nitro_package)
    with l2_chain(tmp_path, "--no-mining") as l2:
        fund(l2, SENDER_KEY)
        call(l2, "evm_mine", [])
        monitor = L1Monitor(l1, deployment.sequencer_inbox, l2_rpc_url=l2, poll_interval=0.1).start()
        try:
            first = monitor.observation().first_l2_block
            sent = send_transfers(l2, FastSigner(SENDER_KEY, L2_CHAIN_ID), 0, 3)
            call(l2, "evm_mine", [])  # one block holding the three transfers
            call(l2, "evm_mine", [])  # and an empty one
            last = head(l2)
            poster = BatchPoster(
                l1,
                deployment.sequencer_inbox,
                POSTER_KEY,
                l2_rpc_url=l2,
                encode=swapping_encoder(l2),
                first_block=first,
            )
            record = poster.post_once()
            assert record is not None and (record.first_block, record.last_block) == (first, last)
            assert monitor.wait_posted(last, 20), monitor.observation().problems
        finally:
            monitor.stop()
    observation = monitor.observation()
    block = first  # the block of the three transfers
    verdicts = {v.name: v for v in l1_verdicts(observation, range(first, last + 1), waited_s=20)}
    contents = verdicts["batch_contents"]
    assert contents.status == "failed", contents.describe()
    print(contents.describe())
    assert contents.summary == (
        f"batch 0 message {block} (L2 block {block}) holds 3 transaction(s), the L2 block 3; "
        f"first difference at index 0: {sent[1]} vs {sent[0]}"
    )
    assert contents.evidence["blocks_checked"] == 2
    for name in ("batch_sequence", "batch_accumulators", "blocks_posted"):
        assert verdicts[name].status == "passed", verdicts[name].describe()
    assert verdicts["confirmations"].status == "inconclusive"  # no rollup given to the monitor


class WithL1:
    """A devnet seen with an L1: every attribute the devnet's, plus ``l1``."""

    def __init__(self, devnet: Any, l1: Any) -> None:
        self._devnet = devnet
        self.l1 = l1

    def __getattr__(self, name: str) -> Any:
        return getattr(self._devnet, name)


def test_a_local_hive_run_on_a_devnet_with_an_l1_carries_the_l1_figures_and_verdicts(
    l1: str, nitro_package: Path
) -> None:
    from types import SimpleNamespace

    from pytest_gashammer.devnet.embedded import EmbeddedDevnet
    from pytest_gashammer.hive.local import LocalHive
    from pytest_gashammer.report.terminal import format_run_summary
    from pytest_gashammer.scenario.spec import compile_plan, parse_spec

    deployment = deploy(l1, nitro_package)
    devnet = EmbeddedDevnet(feed=False).start()
    try:
        poster = BatchPoster(
            l1,
            deployment.sequencer_inbox,
            POSTER_KEY,
            l2_rpc_url=devnet.rpc_url,
            encode=encoder(devnet.rpc_url),
            rollup=deployment.rollup,
            interval=0.5,
            assert_every=2,
            confirm_delay=0.2,
            first_block=head(devnet.rpc_url) + 1,
        ).start()
        endpoint = SimpleNamespace(
            rpc_url=l1,
            chain_id=test_l1_chain.L1_CHAIN_ID,
            sequencer_inbox=deployment.sequencer_inbox,
            bridge=deployment.bridge,
            rollup=deployment.rollup,
            deployed_at_block=deployment.deployed_at_block,
            owned=True,
        )
        spec = parse_spec(
            {"gas_per_sec": "1M", "duration": "2s", "warmup": 0, "slo": {"batch_lag_p99": "10s"}}
        )
        try:
            result = LocalHive(WithL1(devnet, endpoint)).run(compile_plan(spec, name="l1-run", seed=7))
        finally:
            poster.stop()
    finally:
        devnet.close()
    names = [v.name for v in result.verdicts]
    assert names[-6:] == [*L1_INVARIANT_NAMES, "slo.batch_lag_p99"], names
    l1_verdicts_seen = {v.name: v for v in result.verdicts if v.name in L1_INVARIANT_NAMES}
    for name in ("batch_sequence", "batch_accumulators", "blocks_posted", "batch_contents"):
        assert l1_verdicts_seen[name].status == "passed", l1_verdicts_seen[name].describe()
    assert l1_verdicts_seen["confirmations"].status in ("passed", "inconclusive")
    assert result.verdict("slo.batch_lag_p99").status == "passed", result.verdict("slo.batch_lag_p99").summary
    assert result.l1 is not None and result.l1.blocks_posted == result.l1.blocks_of_run > 0
    assert result.l1.batch_lag.count == result.l1.blocks_of_run
    # Times count from the run's t=0: the setup's blocks (funding) are posted before it.
    times = [row.seen_at for row in result.l1.batch_rows]
    assert -30 < times[0] < times[-1] and 0 < times[-1] < result.duration + 35, times
    summary = format_run_summary("t", result.summary_dict())
    (line,) = [line for line in summary if line.startswith("  L1 ")]
    print(line)
    assert f"{result.l1.blocks_posted} of {result.l1.blocks_of_run} blocks posted" in line
