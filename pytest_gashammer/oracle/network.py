"""The network invariants: what every node of a multi-node devnet must agree on after a run.

Pure: a :class:`NetworkObservation` in (what the hive's network watch read from each node once the
load ended: the heads, the run's blocks by height, receipts, ``eth_syncing``), verdicts out. Every
failure names the node and the height (``node2 at #57: hash 0xab.. != node0's 0xcd..``). A devnet
of one node, a run without blocks or a sample without transactions makes the checks it touches
inconclusive, with the reason, never a silent pass.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from pytest_gashammer.results import Verdict
from pytest_gashammer.telemetry.sketch import EVIDENCE_LIMIT
from pytest_gashammer.vocabulary import (
    NETWORK_CONVERGED,
    NETWORK_RECEIPTS,
    NETWORK_SAME_BLOCKS,
    NETWORK_SYNCING,
    selected_invariants,
)

__all__ = [
    "NETWORK_INVARIANTS",
    "NetworkObservation",
    "NodeBlock",
    "network_unavailable",
    "network_verdicts",
    "sample_evenly",
    "short_hash",
    "wanted_network_invariants",
]

#: Heights of the run read from every node, at most: beyond it an even sample (first and last kept).
MAX_HEIGHTS = 2000
#: Transactions of the run whose receipts are asked of every node, at most.
MAX_RECEIPTS = 500
#: Problems listed per node in a failure's evidence before "... and N more".
_PER_NODE = 5


@dataclasses.dataclass(frozen=True)
class NodeBlock:
    """A block as one node serves it: enough to tell two nodes' chains apart."""

    number: int
    hash: str
    state_root: str = ""


@dataclasses.dataclass(frozen=True)
class NetworkObservation:
    """What the network watch read from every node after the run.

    ``nodes`` are the node names, the builder first. ``target`` is the builder's head when the load
    ended (the block every node must reach), ``converged_after`` per node the seconds it took to
    hold it (``None``: not within ``converge_bound_s``), ``heads`` each node's head once the checks
    were done. ``blocks`` per node the blocks it served at the ``heights`` read (a height it did not
    serve is absent). ``receipts_sampled`` are transactions of those blocks, ``receipts_missing``
    per node the ones it had no receipt for. ``syncing`` per node its last ``eth_syncing`` answer
    (``False`` when it was not syncing) once ``syncing_bound_s`` had passed. ``problems`` per node
    why it could not be read (entirely or in part).
    """

    nodes: tuple[str, ...]
    target: NodeBlock | None = None
    converge_bound_s: float = 30.0
    converged_after: Mapping[str, float | None] = dataclasses.field(default_factory=dict)
    heads: Mapping[str, NodeBlock | None] = dataclasses.field(default_factory=dict)
    heights: tuple[int, ...] = ()
    #: How many heights the run had (more than ``heights`` when they were sampled).
    run_heights: int = 0
    blocks: Mapping[str, Mapping[int, NodeBlock]] = dataclasses.field(default_factory=dict)
    receipts_sampled: tuple[str, ...] = ()
    #: How many transactions the run's blocks held (more than the sample when it was bounded).
    transactions: int = 0
    receipts_missing: Mapping[str, Sequence[str]] = dataclasses.field(default_factory=dict)
    syncing: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    syncing_bound_s: float = 30.0
    problems: Mapping[str, str] = dataclasses.field(default_factory=dict)


def short_hash(value: str | None) -> str:
    """``0xabcdef12..``: enough of a hash to tell two apart in a line of evidence."""
    if not value:
        return "?"
    return f"{value[:10]}.." if len(value) > 12 else value


def sample_evenly(items: Sequence[Any], limit: int) -> list[Any]:
    """``items`` when there are at most ``limit``, else ``limit`` of them evenly spaced, the first and
    last included: the same choice for the same input, so a rerun reads the same heights."""
    count = len(items)
    if count <= limit:
        return list(items)
    if limit <= 1:
        return list(items[:limit])
    return [items[round(i * (count - 1) / (limit - 1))] for i in range(limit)]


def _one_node(observation: NetworkObservation, name: str) -> Verdict | None:
    if len(observation.nodes) < 2:
        return Verdict(name, "inconclusive", "the devnet has a single node: nothing to compare it with")
    return None


def _capped(items: list[str], total: int | None = None) -> list[str]:
    total = len(items) if total is None else total
    kept = items[:EVIDENCE_LIMIT]
    if total > len(kept):
        kept.append(f"... and {total - len(kept)} more")
    return kept


def _where(block: NodeBlock | None) -> str:
    return "unreadable" if block is None else f"#{block.number} ({short_hash(block.hash)})"


def converged(observation: NetworkObservation) -> Verdict:
    """Every node holds the builder's head of the load's end within ``converge_bound_s``."""
    one = _one_node(observation, NETWORK_CONVERGED)
    if one is not None:
        return one
    builder, target = observation.nodes[0], observation.target
    if target is None:
        why = observation.problems.get(builder, "no answer")
        return Verdict(
            NETWORK_CONVERGED, "inconclusive", f"the builder {builder}'s head could not be read: {why}"
        )
    bound = observation.converge_bound_s
    lagging: list[str] = []
    for node in observation.nodes:
        if observation.converged_after.get(node) is not None:
            continue
        head = observation.heads.get(node)
        problem = observation.problems.get(node)
        if head is not None and head.number >= target.number:
            line = (
                f"{node} at {_where(head)}: its #{target.number} is not {builder}'s "
                f"({short_hash(target.hash)}) {bound:g} s after the load"
            )
        else:
            line = (
                f"{node} at {_where(head)}, not at {builder}'s #{target.number} ({short_hash(target.hash)}) "
                f"{bound:g} s after the load"
            )
        lagging.append(f"{line}: {problem}" if head is None and problem else line)
    times = {node: observation.converged_after.get(node) for node in observation.nodes}
    evidence: dict[str, Any] = {
        "target": f"#{target.number} {target.hash}",
        "converged_after_s": times,
        "heads": {node: _where(observation.heads.get(node)) for node in observation.nodes},
    }
    if lagging:
        evidence["lagging"] = _capped(lagging)
        return Verdict(
            NETWORK_CONVERGED,
            "failed",
            f"{len(lagging)} of {len(observation.nodes)} nodes did not reach {builder}'s head "
            f"#{target.number} within {bound:g} s",
            evidence,
        )
    slowest = max(float(seconds or 0.0) for seconds in times.values())
    return Verdict(
        NETWORK_CONVERGED,
        "passed",
        f"all {len(observation.nodes)} nodes held #{target.number} within {slowest:.1f} s of the load's end",
        evidence,
    )


def same_blocks(observation: NetworkObservation) -> Verdict:
    """At each height read, every node that serves it holds the same block hash and state root as
    the first node (builder first) that does."""
    one = _one_node(observation, NETWORK_SAME_BLOCKS)
    if one is not None:
        return one
    if not observation.heights:
        return Verdict(NETWORK_SAME_BLOCKS, "inconclusive", "the run made no block to compare")
    differences: list[str] = []
    shared = 0
    for height in observation.heights:
        holders = [
            (node, served[height])
            for node in observation.nodes
            if height in (served := observation.blocks.get(node, {}))
        ]
        if len(holders) < 2:
            continue
        shared += 1
        reference_node, reference = holders[0]
        for node, block in holders[1:]:
            # Each field that differs is named: a different state root is a different state, where a
            # different hash alone may be a different timestamp or extra data over the same state.
            differing = [
                f"{label} {short_hash(mine)} != {reference_node}'s {short_hash(theirs)}"
                for label, mine, theirs in (
                    ("hash", block.hash, reference.hash),
                    ("state root", block.state_root, reference.state_root),
                )
                if mine != theirs
            ]
            if differing:
                differences.append(f"{node} at #{height}: {', '.join(differing)}")
    sampled = (
        f" (an even sample of the run's {observation.run_heights})"
        if observation.run_heights > len(observation.heights)
        else ""
    )
    evidence: dict[str, Any] = {
        "heights": f"#{observation.heights[0]}..#{observation.heights[-1]}",
        "heights_read": len(observation.heights),
        "heights_shared": shared,
    }
    unread = {node: why for node, why in observation.problems.items() if not observation.blocks.get(node)}
    if unread:
        evidence["unread"] = unread
    if differences:
        evidence["differences"] = _capped(differences)
        first = differences[0]
        return Verdict(
            NETWORK_SAME_BLOCKS,
            "failed",
            f"{len(differences)} block(s) differ between nodes{sampled}; first: {first}",
            evidence,
        )
    if shared == 0:
        return Verdict(
            NETWORK_SAME_BLOCKS,
            "inconclusive",
            f"no height of the run was served by two nodes ({len(observation.heights)} read)",
            evidence,
        )
    return Verdict(
        NETWORK_SAME_BLOCKS,
        "passed",
        f"{shared} height(s){sampled} hold the same block hash and state root on every node serving them",
        evidence,
    )


def receipts(observation: NetworkObservation) -> Verdict:
    """Every transaction of the sample has its receipt on every node."""
    one = _one_node(observation, NETWORK_RECEIPTS)
    if one is not None:
        return one
    sample = observation.receipts_sampled
    if not sample:
        return Verdict(NETWORK_RECEIPTS, "inconclusive", "the run's blocks held no transaction to look up")
    missing_lines: list[str] = []
    counts: dict[str, int] = {}
    for node in observation.nodes:
        missing = list(observation.receipts_missing.get(node, ()))
        if not missing:
            continue
        counts[node] = len(missing)
        shown = ", ".join(short_hash(tx) for tx in missing[:_PER_NODE])
        more = f" and {len(missing) - _PER_NODE} more" if len(missing) > _PER_NODE else ""
        missing_lines.append(f"{node}: no receipt for {shown}{more}")
    of = (
        f"{len(sample)} of the run's {observation.transactions} transactions"
        if observation.transactions > len(sample)
        else f"all {len(sample)} transactions of the run"
    )
    evidence: dict[str, Any] = {"sampled": len(sample), "transactions": observation.transactions}
    unread = {
        node: why for node, why in observation.problems.items() if node not in observation.receipts_missing
    }
    if missing_lines:
        evidence["missing"] = _capped(missing_lines)
        evidence["missing_per_node"] = counts
        worst = max(counts, key=lambda node: counts[node])
        return Verdict(
            NETWORK_RECEIPTS,
            "failed",
            f"{sum(counts.values())} receipt(s) missing on {len(counts)} node(s) ({worst}: {counts[worst]} "
            f"of {len(sample)})",
            evidence,
        )
    if unread:
        evidence["unread"] = unread
        return Verdict(
            NETWORK_RECEIPTS,
            "inconclusive",
            f"{len(unread)} node(s) could not be asked for receipts: "
            + "; ".join(f"{node}: {why}" for node, why in unread.items()),
            evidence,
        )
    return Verdict(NETWORK_RECEIPTS, "passed", f"{of}: a receipt on every node", evidence)


def syncing(observation: NetworkObservation) -> Verdict:
    """No node still answers ``eth_syncing`` with anything but false once the bound has passed."""
    one = _one_node(observation, NETWORK_SYNCING)
    if one is not None:
        return one
    answered = {node: value for node, value in observation.syncing.items() if node in observation.nodes}
    if not answered:
        return Verdict(NETWORK_SYNCING, "inconclusive", "no node answered eth_syncing")
    bound = observation.syncing_bound_s
    stuck = [
        f"{node} still syncing {bound:g} s after the load: {str(value)[:160]}"
        for node, value in answered.items()
        if value is not False
    ]
    unanswered = [node for node in observation.nodes if node not in answered]
    evidence: dict[str, Any] = {"syncing": {node: value is not False for node, value in answered.items()}}
    if stuck:
        evidence["stuck"] = _capped(stuck)
        return Verdict(NETWORK_SYNCING, "failed", f"{len(stuck)} node(s) stuck syncing: {stuck[0]}", evidence)
    if unanswered:
        evidence["unanswered"] = {node: observation.problems.get(node, "no answer") for node in unanswered}
        return Verdict(
            NETWORK_SYNCING,
            "inconclusive",
            f"{', '.join(unanswered)} did not answer eth_syncing; the other nodes are not syncing",
            evidence,
        )
    return Verdict(NETWORK_SYNCING, "passed", f"none of the {len(answered)} nodes is syncing", evidence)


NETWORK_INVARIANTS: dict[str, Callable[[NetworkObservation], Verdict]] = {
    NETWORK_CONVERGED: converged,
    NETWORK_SAME_BLOCKS: same_blocks,
    NETWORK_RECEIPTS: receipts,
    NETWORK_SYNCING: syncing,
}


def wanted_network_invariants(only: Sequence[str] | None, skip: Sequence[str]) -> list[str]:
    """The network invariants a plan asks for (``invariants=`` / ``skip_invariants=``), in catalogue order."""
    return selected_invariants(NETWORK_INVARIANTS, only, skip)


def network_verdicts(
    observation: NetworkObservation, *, only: Sequence[str] | None = None, skip: Sequence[str] = ()
) -> list[Verdict]:
    """The verdicts of the network invariants asked for."""
    return [NETWORK_INVARIANTS[name](observation) for name in wanted_network_invariants(only, skip)]


def network_unavailable(
    reason: str, *, only: Sequence[str] | None = None, skip: Sequence[str] = ()
) -> list[Verdict]:
    """Every network invariant asked for, inconclusive for ``reason``."""
    return [Verdict(name, "inconclusive", reason) for name in wanted_network_invariants(only, skip)]
