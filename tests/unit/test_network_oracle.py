"""The network invariants over what the hive's network watch read from every node: a divergent block
hash or state root named with its node and height, a lagging node, a missing receipt, a node stuck
syncing, and what makes each one inconclusive."""

from __future__ import annotations

from typing import Any

from pytest_gashammer.oracle.network import (
    MAX_HEIGHTS,
    NETWORK_INVARIANTS,
    NetworkObservation,
    NodeBlock,
    network_unavailable,
    network_verdicts,
    sample_evenly,
)
from pytest_gashammer.vocabulary import NETWORK_INVARIANT_NAMES

NODES = ("node0", "node1", "node2", "node3")
HEIGHTS = tuple(range(50, 70))


def block(number: int, *, fork: str = "a", root: str = "r") -> NodeBlock:
    return NodeBlock(number, f"0x{fork * 2}{number:062x}", f"0x{root * 2}{number:062x}")


def healthy(**changes: Any) -> NetworkObservation:
    """Four nodes that agree: all at the builder's head #69 within a second, the same blocks, every
    receipt, none syncing."""
    chain = {height: block(height) for height in HEIGHTS}
    facts: dict[str, Any] = {
        "nodes": NODES,
        "target": block(69),
        "converge_bound_s": 30.0,
        "converged_after": {node: 0.25 * index for index, node in enumerate(NODES)},
        "heads": dict.fromkeys(NODES, block(69)),
        "heights": HEIGHTS,
        "run_heights": len(HEIGHTS),
        "blocks": {node: dict(chain) for node in NODES},
        "receipts_sampled": ("0x" + "11" * 32, "0x" + "22" * 32),
        "transactions": 2,
        "receipts_missing": {node: [] for node in NODES},
        "syncing": dict.fromkeys(NODES, False),
    }
    facts.update(changes)
    return NetworkObservation(**facts)


def by_name(observation: NetworkObservation) -> dict[str, Any]:
    return {verdict.name: verdict for verdict in network_verdicts(observation)}


def test_four_nodes_that_agree_pass_every_network_invariant_in_catalogue_order() -> None:
    verdicts = network_verdicts(healthy())
    assert [verdict.name for verdict in verdicts] == list(NETWORK_INVARIANT_NAMES) == list(NETWORK_INVARIANTS)
    assert [verdict.status for verdict in verdicts] == ["passed"] * 4
    assert verdicts[0].summary == "all 4 nodes held #69 within 0.8 s of the load's end"
    assert verdicts[1].summary.startswith("20 height(s) hold the same block hash and state root")


def test_a_divergent_block_hash_names_the_node_the_height_and_both_hashes() -> None:
    observation = healthy()
    forked = dict(observation.blocks["node0"])
    forked[57] = block(57, fork="b")
    verdict = by_name(healthy(blocks={**observation.blocks, "node2": forked}))["network_same_blocks"]
    assert verdict.status == "failed"
    assert verdict.evidence["differences"] == ["node2 at #57: hash 0xbb000000.. != node0's 0xaa000000.."]
    assert "first: node2 at #57: hash" in verdict.summary


def test_a_divergent_state_root_under_the_same_hash_is_named_too() -> None:
    observation = healthy()
    rooted = dict(observation.blocks["node0"])
    rooted[61] = block(61, root="s")
    verdict = by_name(healthy(blocks={**observation.blocks, "node3": rooted}))["network_same_blocks"]
    assert verdict.status == "failed"
    assert verdict.evidence["differences"] == [
        "node3 at #61: state root 0xss000000.. != node0's 0xrr000000.."
    ]


def test_a_height_the_builder_lacks_is_compared_against_the_first_node_serving_it() -> None:
    observation = healthy()
    without = {height: value for height, value in observation.blocks["node0"].items() if height != 55}
    forked = dict(observation.blocks["node1"])
    forked[55] = block(55, fork="c")
    verdict = by_name(healthy(blocks={**observation.blocks, "node0": without, "node2": forked}))[
        "network_same_blocks"
    ]
    assert verdict.evidence["differences"] == ["node2 at #55: hash 0xcc000000.. != node1's 0xaa000000.."]


def test_a_lagging_node_fails_convergence_with_its_head_and_the_builders() -> None:
    observation = healthy(
        converged_after={"node0": 0.0, "node1": 0.2, "node2": 0.4, "node3": None},
        heads={**dict.fromkeys(NODES, block(69)), "node3": block(57)},
    )
    verdict = by_name(observation)["network_converged"]
    assert verdict.status == "failed"
    assert verdict.summary == "1 of 4 nodes did not reach node0's head #69 within 30 s"
    (line,) = verdict.evidence["lagging"]
    assert line.startswith(
        "node3 at #57 (0xaa000000..), not at node0's #69 (0xaa000000..) 30 s after the load"
    )


def test_a_node_past_the_target_on_another_fork_is_named_as_such() -> None:
    observation = healthy(
        converged_after={**dict.fromkeys(NODES, 0.1), "node1": None},
        heads={**dict.fromkeys(NODES, block(69)), "node1": block(70, fork="d")},
    )
    (line,) = by_name(observation)["network_converged"].evidence["lagging"]
    assert line == "node1 at #70 (0xdd000000..): its #69 is not node0's (0xaa000000..) 30 s after the load"


def test_an_unreadable_node_fails_convergence_saying_why() -> None:
    observation = healthy(
        converged_after={**dict.fromkeys(NODES, 0.1), "node2": None},
        heads={**dict.fromkeys(NODES, block(69)), "node2": None},
        problems={"node2": "eth_getBlockByNumber: cannot reach http://127.0.0.1:1 (refused)"},
    )
    (line,) = by_name(observation)["network_converged"].evidence["lagging"]
    assert line.startswith("node2 at unreadable, not at node0's #69") and line.endswith("(refused)")


def test_a_missing_receipt_names_the_node_and_the_transaction() -> None:
    missing = "0x" + "22" * 32
    verdict = by_name(healthy(receipts_missing={**{node: [] for node in NODES}, "node1": [missing]}))[
        "network_receipts"
    ]
    assert verdict.status == "failed"
    assert verdict.evidence["missing"] == ["node1: no receipt for 0x22222222.."]
    assert verdict.summary == "1 receipt(s) missing on 1 node(s) (node1: 1 of 2)"


def test_a_node_that_could_not_be_asked_for_receipts_makes_them_inconclusive() -> None:
    answered = {node: [] for node in NODES if node != "node3"}
    verdict = by_name(healthy(receipts_missing=answered, problems={"node3": "receipts not read: reset"}))[
        "network_receipts"
    ]
    assert verdict.status == "inconclusive" and "node3: receipts not read: reset" in verdict.summary


def test_a_node_stuck_syncing_fails_with_what_it_answered() -> None:
    progress = {"startingBlock": "0x0", "currentBlock": "0x39", "highestBlock": "0x45"}
    verdict = by_name(healthy(syncing={**dict.fromkeys(NODES, False), "node3": progress}))["network_syncing"]
    assert verdict.status == "failed"
    assert verdict.evidence["stuck"] == [f"node3 still syncing 30 s after the load: {progress}"]


def test_a_single_node_a_run_without_blocks_or_transactions_is_inconclusive_not_passed() -> None:
    single = by_name(healthy(nodes=("node0",)))
    assert {verdict.status for verdict in single.values()} == {"inconclusive"}
    empty = by_name(healthy(heights=(), receipts_sampled=(), transactions=0))
    assert empty["network_same_blocks"].status == "inconclusive"
    assert empty["network_receipts"].status == "inconclusive"
    unread = by_name(healthy(target=None, problems={"node0": "refused"}))["network_converged"]
    assert unread.status == "inconclusive" and unread.summary.endswith("refused")
    assert [v.status for v in network_unavailable("why", skip=["network_syncing"])] == ["inconclusive"] * 3


def test_the_heights_and_receipts_sample_is_even_bounded_and_the_same_every_time() -> None:
    heights = list(range(1, 10_001))
    sample = sample_evenly(heights, MAX_HEIGHTS)
    assert len(sample) == MAX_HEIGHTS and sample[0] == 1 and sample[-1] == 10_000
    assert sample == sample_evenly(heights, MAX_HEIGHTS)
    assert sample_evenly([3, 4], 5) == [3, 4]


def test_a_conflicting_block_names_both_its_hash_and_its_state_root() -> None:
    observation = healthy()
    conflicting = dict(observation.blocks["node0"])
    conflicting[57] = block(57, fork="b", root="s")
    verdict = by_name(healthy(blocks={**observation.blocks, "node2": conflicting}))["network_same_blocks"]
    assert verdict.evidence["differences"] == [
        "node2 at #57: hash 0xbb000000.. != node0's 0xaa000000.., state root 0xss000000.. != node0's 0xrr000000.."
    ]
