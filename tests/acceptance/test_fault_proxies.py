"""Each fault proxy breaks one promise of a healthy devnet, and the oracle fails exactly that invariant.

Every test runs a short real load (an edge, or a whole pytest session) through a proxy in front of the
embedded devnet, then checks three things: the invariant guarding the broken promise failed, its
evidence names exactly the items the fault recorded (transaction hashes, block numbers, sequence
numbers), and no other invariant failed.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import pytest

from pytest_gashammer.devnet.embedded import EmbeddedDevnet
from pytest_gashammer.edge.runtime import EdgeAssignment, EdgeRuntime
from pytest_gashammer.fault import (
    BreakParentHash,
    DropAndRenumber,
    DropTransactions,
    DuplicateInclusion,
    FeedProxy,
    ReorderBlockTimestamps,
    ReorderMessages,
    ReorderTransactions,
    RpcProxy,
    SkipSequence,
    WrongBlockHash,
    WrongReceiptBlock,
    WrongReceiptStatus,
)
from pytest_gashammer.oracle.invariants import evaluate
from pytest_gashammer.results import Verdict
from pytest_gashammer.scenario.spec import compile_plan, parse_spec
from pytest_gashammer.telemetry.records import EdgeReport

pytestmark = pytest.mark.usefixtures("no_new_anvil")

INCLUSION_TIMEOUT = 3.0
# 0.6 Mgas/s of transfers for 1.5 s is about 43 transactions; 64 senders give each sender at most one,
# so a dropped transaction strands no later nonce and the lost ones are exactly the dropped ones.
# Every receipt is checked, so the receipt, block-gas and balance invariants all have their say.
SPEC: dict[str, Any] = {
    "gas_per_sec": "600k",
    "duration": "1.5s",
    "warmup": 0,
    "senders": 64,
    "receipts": "all",
    "inclusion_timeout": f"{INCLUSION_TIMEOUT:g}s",
}


@pytest.fixture(scope="module")
def devnet() -> Iterator[EmbeddedDevnet]:
    node = EmbeddedDevnet().start()  # feed=True: the node's own Nitro-format feed relay
    try:
        yield node
    finally:
        node.close()


def run_edge(
    devnet: EmbeddedDevnet,
    *,
    seed: int,
    rpc_url: str | None = None,
    feed_url: str | None = None,
    start_gate: Callable[[], None] | None = None,
    **spec: Any,
) -> EdgeReport:
    """One edge through the given endpoints; no WebSocket URL, so blocks are polled (through a proxy)."""
    plan = compile_plan(parse_spec({**SPEC, **spec}), name="fault", seed=seed)
    assignment = EdgeAssignment(
        edge_id="e0",
        plan=plan.to_dict(),
        rpc_url=rpc_url or devnet.rpc_url,
        ws_url=None,
        chain_id=devnet.chain_id,
        funder_key=devnet.funder.key,
        sender_count=plan.senders,
        feed_url=feed_url or devnet.feed_url,
    )
    report = EdgeRuntime(assignment, start_gate=start_gate).run_blocking()
    assert report.digest.rows > 20, (
        f"the run sent too little to show anything: {report.digest.rows} transactions"
    )
    return report


def verdicts_of(report: EdgeReport) -> dict[str, Verdict]:
    return {verdict.name: verdict for verdict in evaluate([report], INCLUSION_TIMEOUT)}


# Every invariant the oracle had when these tests were written; with every receipt checked and a feed
# followed, a healthy run passes all of them. Invariants added later must at least not fail.
KNOWN_INVARIANTS = frozenset(
    {
        "inclusion",
        "no_duplicate_inclusion",
        "nonce_contiguity",
        "receipt_status",
        "receipt_block",
        "gas_model",
        "block_continuity",
        "block_timestamps",
        "block_gas",
        "balance_conservation",
        "feed_sequence",
        "feed_exactly_once",
        "feed_order",
        "feed_block_hash",
        "feed_matches_chain",
    }
)


def assert_exactly_failed(statuses: Mapping[str, str], *names: str) -> None:
    """``names`` failed (those this version of the oracle has); the known others passed; none else failed."""
    failed = sorted(name for name, status in statuses.items() if status == "failed")
    assert failed == sorted(name for name in names if name in statuses), statuses
    others = [name for name in statuses if name in KNOWN_INVARIANTS and name not in names]
    not_passed = {name: statuses[name] for name in others if statuses[name] != "passed"}
    assert not not_passed, f"these should have passed: {not_passed}"


def assert_only_failed(verdicts: dict[str, Verdict], *names: str) -> None:
    details = "\n".join(verdict.describe() for verdict in verdicts.values() if verdict.status != "passed")
    statuses = {name: verdict.status for name, verdict in verdicts.items()}
    try:
        assert_exactly_failed(statuses, *names)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{details}") from None


def first_token(items: list[str]) -> list[str]:
    """The transaction hash each evidence line starts with."""
    return [item.split()[0] for item in items]


# ------------------------------------------------------------------------------- JSON-RPC faults


def test_dropped_transactions_are_lost_and_named(devnet: EmbeddedDevnet) -> None:
    drop = DropTransactions(every=9, count=3, exclude_from=[devnet.funder.address])
    with RpcProxy(devnet.rpc_url, faults=[drop]) as proxy:
        report = run_edge(devnet, seed=101, rpc_url=proxy.url)
    dropped = drop.affected
    assert len(dropped) == 3, drop.events
    verdicts = verdicts_of(report)
    lost = verdicts["inclusion"]
    assert lost.status == "failed", lost.describe()
    assert sorted(lost.evidence["lost"]) == sorted(dropped)
    assert lost.evidence["lost_count"] == 3
    assert "late" not in lost.evidence
    # The edge asked the node about each: never forwarded, so the node does not know it.
    said = lost.evidence["what_the_node_says"]
    assert sorted(line.split(":")[0] for line in said) == sorted(dropped)
    assert all(
        "dropped: not found by eth_getTransactionByHash and not in the node's pool (txpool_content)" in line
        and "the sender's next nonce" in line
        for line in said
    ), said
    assert_only_failed(verdicts, "inclusion")
    assert proxy.stats.local_answers == 3 and proxy.stats.fault_errors == 0


def test_a_transaction_reported_in_two_blocks_is_a_duplicate(devnet: EmbeddedDevnet) -> None:
    duplicate = DuplicateInclusion(every=10, count=2, exclude_from=[devnet.funder.address])
    with RpcProxy(devnet.rpc_url, faults=[duplicate]) as proxy:
        report = run_edge(devnet, seed=102, rpc_url=proxy.url)
    assert len(duplicate.affected) == 2, duplicate.events
    for event in duplicate.events:
        assert event["again_in"] > event["block"]
    verdicts = verdicts_of(report)
    duplicated = verdicts["no_duplicate_inclusion"]
    assert duplicated.status == "failed", duplicated.describe()
    assert sorted(duplicated.evidence["duplicated"]) == sorted(duplicate.affected)
    assert_only_failed(verdicts, "no_duplicate_inclusion")
    assert proxy.stats.fault_errors == 0


def test_a_transaction_reported_twice_in_its_block_is_a_duplicate(devnet: EmbeddedDevnet) -> None:
    duplicate = DuplicateInclusion(nth=5, same_block=True, exclude_from=[devnet.funder.address])
    with RpcProxy(devnet.rpc_url, faults=[duplicate]) as proxy:
        report = run_edge(devnet, seed=103, rpc_url=proxy.url)
    (event,) = duplicate.events
    assert event["again_in"] == event["block"]
    verdicts = verdicts_of(report)
    assert verdicts["no_duplicate_inclusion"].evidence["duplicated"] == duplicate.affected
    assert_only_failed(verdicts, "no_duplicate_inclusion")
    assert proxy.stats.fault_errors == 0


def test_flipped_receipt_statuses_are_named(devnet: EmbeddedDevnet) -> None:
    wrong = WrongReceiptStatus(every=7, count=4, exclude_from=[devnet.funder.address])
    with RpcProxy(devnet.rpc_url, faults=[wrong]) as proxy:
        report = run_edge(devnet, seed=104, rpc_url=proxy.url)
    assert len(wrong.affected) == 4, wrong.events
    assert all(event["status"] == "0x1" and event["reported"] == "0x0" for event in wrong.events)
    verdicts = verdicts_of(report)
    status = verdicts["receipt_status"]
    assert status.status == "failed", status.describe()
    assert sorted(first_token(status.evidence["unexpected"])) == sorted(wrong.affected)
    assert_only_failed(verdicts, "receipt_status")
    assert proxy.stats.fault_errors == 0


def test_receipts_pointing_at_another_block_are_named(devnet: EmbeddedDevnet) -> None:
    """Issue #15: the edge read only status and gas from receipts, so this passed unnoticed."""
    wrong = WrongReceiptBlock(every=6, count=3, exclude_from=[devnet.funder.address])
    with RpcProxy(devnet.rpc_url, faults=[wrong]) as proxy:
        report = run_edge(devnet, seed=111, rpc_url=proxy.url)
    assert len(wrong.affected) == 3, wrong.events
    verdicts = verdicts_of(report)
    placed = verdicts["receipt_block"]
    assert placed.status == "failed", placed.describe()
    assert sorted(first_token(placed.evidence["wrong_block"])) == sorted(wrong.affected)
    for event in wrong.events:
        (line,) = [item for item in placed.evidence["wrong_block"] if item.startswith(event["tx_hash"])]
        assert line == (
            f"{event['tx_hash']} receipt: block {event['reported_number']} {event['reported_hash']}; "
            f"seen in: block {event['block_number']} {event['block_hash']}"
        )
    assert_only_failed(verdicts, "receipt_block")
    assert proxy.stats.fault_errors == 0


def test_a_broken_parent_hash_is_named_by_block(devnet: EmbeddedDevnet) -> None:
    broken = BreakParentHash(every=2, count=2, armed=False)
    with RpcProxy(devnet.rpc_url, faults=[broken]) as proxy:
        # Armed once setup is done, so only blocks the run follows are counted and broken.
        report = run_edge(devnet, seed=105, rpc_url=proxy.url, start_gate=broken.arm)
    assert len(broken.affected) == 2, broken.events
    hashes = {block.number: block.hash for block in report.blocks}
    for block in report.blocks:
        linked = block.number - 1 not in hashes or block.parent_hash == hashes[block.number - 1]
        assert linked == (block.number not in broken.affected), block
    verdicts = verdicts_of(report)
    if "block_continuity" in verdicts:
        continuity = verdicts["block_continuity"]
        assert continuity.status == "failed", continuity.describe()
        named = sorted(int(item.split()[1]) for item in continuity.evidence["unlinked"])
        assert named == sorted(broken.affected)
        assert "missing" not in continuity.evidence
    assert_only_failed(verdicts, "block_continuity")


def test_a_block_timestamp_going_backwards_is_named_by_block(devnet: EmbeddedDevnet) -> None:
    moved = ReorderBlockTimestamps(every=2, count=2, armed=False)
    with RpcProxy(devnet.rpc_url, faults=[moved]) as proxy:
        report = run_edge(devnet, seed=106, rpc_url=proxy.url, start_gate=moved.arm)
    assert len(moved.affected) == 2, moved.events
    blocks = sorted(report.blocks, key=lambda block: block.number)
    backwards = [b.number for a, b in zip(blocks, blocks[1:], strict=False) if b.timestamp < a.timestamp]
    assert backwards == sorted(moved.affected)
    verdicts = verdicts_of(report)
    if "block_timestamps" in verdicts:
        timestamps = verdicts["block_timestamps"]
        assert timestamps.status == "failed", timestamps.describe()
        named = sorted(int(item.split()[1]) for item in timestamps.evidence["backwards"])
        assert named == sorted(moved.affected)
    assert_only_failed(verdicts, "block_timestamps")


# ----------------------------------------------------------------------------------- feed faults


def feed_facts(report: EdgeReport) -> tuple[dict[str, Any], dict[str, Any]]:
    assert report.feed_stats is not None and report.feed_findings is not None, report.notes
    return report.feed_stats, report.feed_findings


def test_a_skipped_sequence_number_is_a_gap(devnet: EmbeddedDevnet) -> None:
    assert devnet.feed_url is not None
    skip = SkipSequence(nth=2, min_txs=1)
    with FeedProxy(devnet.feed_url, faults=[skip]) as proxy:
        report = run_edge(devnet, seed=107, feed_url=proxy.url)
    ((sequence,), (event,)) = skip.affected, skip.events
    stats, findings = feed_facts(report)
    assert stats["gaps"] == [(sequence, sequence + 1)] and stats["missing_messages"] == 1
    assert stats["duplicates"] == []
    # The skipped message carried transactions: they are missing from the feed, and only they.
    missing = [item["tx_hash"] for item in findings["first_missing_from_feed"]]
    assert sorted(missing) == sorted(event["tx_hashes"])
    assert findings["first_blocks_missing_from_feed"] == [sequence]  # the relay numbers messages by block
    assert findings["order_violations"] == findings["hash_mismatches"] == 0
    verdicts = verdicts_of(report)
    if "feed_sequence" in verdicts:
        assert verdicts["feed_sequence"].evidence["problems"] == [
            f"e0: gap: expected sequence {sequence}, got {sequence + 1}"
        ]
    assert_only_failed(verdicts, "feed_sequence", "feed_exactly_once")
    assert proxy.stats.fault_errors == 0


def test_two_swapped_messages_are_out_of_order_not_a_gap(devnet: EmbeddedDevnet) -> None:
    assert devnet.feed_url is not None
    swap = ReorderMessages(nth=3, min_txs=1)
    with FeedProxy(devnet.feed_url, faults=[swap]) as proxy:
        report = run_edge(devnet, seed=108, feed_url=proxy.url)
    ((sequence,), (event,)) = swap.affected, swap.events
    assert event["after"] == sequence + 1
    stats, findings = feed_facts(report)
    # The jump was filled by the late message: no gap, no loss, out of order.
    assert stats["gaps"] == [] and stats["missing_messages"] == 0
    assert stats["out_of_order"] == [(sequence, sequence + 1)] and stats["late"] == [sequence]
    assert stats["duplicates"] == []
    # Nothing was lost or changed: the feed still agrees with the chain.
    assert findings["missing_from_feed"] == findings["duplicated_in_feed"] == 0
    assert findings["order_violations"] == findings["hash_mismatches"] == 0
    assert findings["blocks_missing_from_feed"] == 0
    verdicts = verdicts_of(report)
    assert verdicts["feed_sequence"].evidence["problems"] == [
        f"e0: out of order: sequence {sequence} arrived after {sequence + 1} (1 message late)"
    ]
    assert_only_failed(verdicts, "feed_sequence")
    assert proxy.stats.fault_errors == 0


def test_two_swapped_transactions_are_an_order_violation(devnet: EmbeddedDevnet) -> None:
    assert devnet.feed_url is not None
    swap = ReorderTransactions(nth=2)
    with FeedProxy(devnet.feed_url, faults=[swap]) as proxy:
        report = run_edge(devnet, seed=109, feed_url=proxy.url)
    ((sequence,), (event,)) = swap.affected, swap.events
    first, second = event["swapped"]
    stats, findings = feed_facts(report)
    assert stats["gaps"] == [] and stats["duplicates"] == []
    assert findings["order_violations"] == 1
    (violation,) = findings["first_order_violations"]
    assert (violation["earlier_tx"], violation["later_tx"]) == (first, second)
    assert violation["earlier_sequence"] == violation["later_sequence"] == sequence
    assert findings["missing_from_feed"] == findings["hash_mismatches"] == 0
    verdicts = verdicts_of(report)
    if "feed_order" in verdicts:
        (problem,) = verdicts["feed_order"].evidence["problems"]
        assert first in problem and second in problem
    assert_only_failed(verdicts, "feed_order")
    assert proxy.stats.fault_errors == 0


def test_an_empty_block_left_out_of_a_renumbered_feed_is_named(devnet: EmbeddedDevnet) -> None:
    """Issue #15: no gap, nothing missing, every hash right, and the summary said "consistent"."""
    assert devnet.feed_url is not None
    drop = DropAndRenumber(nth=2, armed=False)
    with FeedProxy(devnet.feed_url, faults=[drop]) as proxy:
        # Transfers evenly spaced, fewer than one per 250 ms block: a third of the blocks are empty.
        report = run_edge(
            devnet, seed=112, feed_url=proxy.url, start_gate=drop.arm, gas_per_sec="60k", duration="8s"
        )
    ((sequence,), (event,)) = drop.affected, drop.events
    (left_out,) = [block.number for block in report.blocks if block.hash == event["block_hash"]]
    stats, findings = feed_facts(report)
    assert stats["gaps"] == [] and stats["missing_messages"] == 0 and stats["duplicates"] == []
    assert findings["first_blocks_missing_from_feed"] == [left_out]
    assert findings["missing_from_feed"] == findings["hash_mismatches"] == findings["order_violations"] == 0
    verdicts = verdicts_of(report)
    assert verdicts["feed_matches_chain"].evidence["problems"] == [
        "e0: 1 chain block(s) without a feed message, no sequence number missing: the feed left blocks "
        "out and numbered the later messages on",
        f"e0: block {left_out} has no feed message",
    ]
    assert_only_failed(verdicts, "feed_matches_chain")
    assert proxy.stats.fault_errors == 0
    assert sequence == left_out  # the relay numbers messages by block on this devnet


def test_a_wrong_block_hash_in_the_feed_is_a_mismatch(devnet: EmbeddedDevnet) -> None:
    assert devnet.feed_url is not None
    wrong = WrongBlockHash(nth=2, min_txs=1)
    with FeedProxy(devnet.feed_url, faults=[wrong]) as proxy:
        report = run_edge(devnet, seed=110, feed_url=proxy.url)
    ((sequence,), (event,)) = wrong.affected, wrong.events
    stats, findings = feed_facts(report)
    assert stats["gaps"] == [] and stats["duplicates"] == []
    (mismatch,) = findings["first_hash_mismatches"]
    assert mismatch == {
        "sequence": sequence,
        "block": sequence,
        "feed_hash": event["reported"],
        "chain_hash": event["block_hash"],
    }
    assert findings["missing_from_feed"] == findings["order_violations"] == 0
    assert findings["blocks_missing_from_feed"] == 0
    assert_only_failed(verdicts_of(report), "feed_block_hash")
    assert proxy.stats.fault_errors == 0


# ------------------------------------------------------------------------- through a pytest session

SESSION_TEST = """
import json

import pytest


@pytest.mark.gashammer(
    gas_per_sec="600k", duration="1.5s", warmup=0, senders=64, receipts="all", inclusion_timeout="3s",
    seed={seed},
)
def test_under_a_fault(hammer):
    result = hammer.run(check=False)
    verdicts = [
        {{"name": v.name, "status": v.status, "evidence": v.evidence}} for v in result.verdicts
    ]
    with open({out!r}, "w") as handle:
        json.dump({{"verdicts": verdicts, "feed": result.feed, "sent": result.sent}}, handle, default=list)
"""


def run_session(pytester: pytest.Pytester, seed: int, *args: str) -> dict[str, Any]:
    out = pytester.path / "result.json"
    pytester.makepyfile(test_under_fault=SESSION_TEST.format(seed=seed, out=str(out)))
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", *args)
    result.assert_outcomes(passed=1)
    facts: dict[str, Any] = json.loads(out.read_text())
    assert facts["sent"] > 20, facts
    return facts


def session_verdicts(facts: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {verdict["name"]: verdict for verdict in facts["verdicts"]}


def assert_session_only_failed(verdicts: dict[str, dict[str, Any]], *names: str) -> None:
    statuses = {name: verdict["status"] for name, verdict in verdicts.items()}
    try:
        assert_exactly_failed(statuses, *names)
    except AssertionError as exc:
        shown = [verdict for verdict in verdicts.values() if verdict["status"] != "passed"]
        raise AssertionError(f"{exc}\n{json.dumps(shown, indent=1)}") from None


def test_a_session_against_the_rpc_proxy_fails_inclusion(
    pytester: pytest.Pytester, devnet: EmbeddedDevnet
) -> None:
    drop = DropTransactions(every=8, count=2, exclude_from=[devnet.funder.address])
    with RpcProxy(devnet.rpc_url, faults=[drop]) as proxy:
        facts = run_session(
            pytester,
            201,
            "--gashammer-rpc-url",
            proxy.url,
            "--gashammer-feed-url",
            str(devnet.feed_url),
            "--gashammer-funder-key",
            devnet.funder.key,
        )
    assert len(drop.affected) == 2, drop.events
    verdicts = session_verdicts(facts)
    assert verdicts["inclusion"]["status"] == "failed"
    assert sorted(verdicts["inclusion"]["evidence"]["lost"]) == sorted(drop.affected)
    assert_session_only_failed(verdicts, "inclusion")


def test_a_session_against_the_feed_proxy_fails_the_block_hash_check(
    pytester: pytest.Pytester, devnet: EmbeddedDevnet
) -> None:
    assert devnet.feed_url is not None
    wrong = WrongBlockHash(nth=3, min_txs=1)
    with FeedProxy(devnet.feed_url, faults=[wrong]) as proxy:
        facts = run_session(
            pytester,
            202,
            "--gashammer-rpc-url",
            devnet.rpc_url,
            "--gashammer-feed-url",
            proxy.url,
            "--gashammer-funder-key",
            devnet.funder.key,
        )
    ((sequence,), (event,)) = wrong.affected, wrong.events
    (edge,) = facts["feed"]["edges"].values()
    (mismatch,) = edge["findings"]["first_hash_mismatches"]
    assert (mismatch["sequence"], mismatch["feed_hash"], mismatch["chain_hash"]) == (
        sequence,
        event["reported"],
        event["block_hash"],
    )
    assert edge["stats"]["gaps"] == []
    verdicts = session_verdicts(facts)
    if "feed_block_hash" in verdicts:
        (problem,) = verdicts["feed_block_hash"]["evidence"]["problems"]
        assert event["reported"] in problem
    assert_session_only_failed(verdicts, "feed_block_hash")
