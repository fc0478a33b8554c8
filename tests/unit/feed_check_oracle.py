"""The feed-vs-chain check as it was before the correlator learnt to settle blocks as a run goes.

Kept (from commit ceb314f, ``Correlator.check_against_chain``) as the oracle the windowed,
incremental check must agree with: it reads the whole run at once from a correlator that has forgotten
nothing (rows indexed from 0, every message's block hash still held). One rule changed since: a message
placed by its sequence number goes on the block that number stands for, counting the messages that
continue their predecessor's block (the same hash as the message numbered one below) as no new block,
and only when no message names that block's hash.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pytest_gashammer.feed.correlator import ChainBlock, Correlator, FeedChainFindings, _hex

_LISTED = 20


def legacy_check(
    correlator: Correlator, blocks: Sequence[ChainBlock], *, sequence_offset: int | None = None
) -> FeedChainFindings:
    """``Correlator.check_against_chain`` before windowing; ``correlator`` must hold its whole run."""
    assert correlator.base == 0, "the oracle reads rows from 0"
    offset = correlator.sequence_offset if sequence_offset is None else sequence_offset
    rows = correlator._rows
    hash_of_row = {row: tx_hash for tx_hash, row in rows.items()}
    chain_hash: dict[int, str] = {}
    number_of_hash: dict[str, int] = {}
    chain_position: dict[int, tuple[int, int]] = {}
    for number, block_hash, tx_hashes in blocks:
        normalised = _hex(block_hash)
        chain_hash[number] = normalised
        number_of_hash[normalised] = number
        for index, tx_hash in enumerate(tx_hashes):
            row = rows.get(_hex(tx_hash))
            if row is not None and row not in chain_position:
                chain_position[row] = (number, index)

    appearances, sequence, position = correlator.appearances, correlator.sequence, correlator.position
    missing = [row for row in chain_position if appearances[row] == 0]
    in_feed = [row for row in chain_position if appearances[row] > 0]
    duplicated = sorted(row for row in set(correlator.duplicate_rows) if appearances[row] > 1)
    feed_only = [row for row in rows.values() if appearances[row] > 0 and row not in chain_position]

    def tx_item(row: int) -> dict[str, Any]:
        return {"tx_hash": hash_of_row[row], "row": row}

    ordered = sorted(in_feed, key=chain_position.__getitem__)
    violations = []
    for earlier, later in zip(ordered, ordered[1:], strict=False):
        if (sequence[later], position[later]) <= (sequence[earlier], position[earlier]):
            violations.append((earlier, later))

    seq_block: dict[int, int] = {}
    spanning: dict[int, set[int]] = {}
    for row in in_feed:
        seq, number = sequence[row], chain_position[row][0]
        known = seq_block.setdefault(seq, number)
        if known != number:
            spanning.setdefault(seq, {known}).add(number)

    hashes = correlator.block_hashes
    continuations = sorted(
        seq for seq, feed_hash in hashes.items() if feed_hash is not None and hashes.get(seq - 1) == feed_hash
    )

    def stands_for(seq: int) -> int:
        return seq + offset - sum(1 for continued in continuations if continued <= seq)

    named_hashes = {feed_hash for feed_hash in hashes.values() if feed_hash is not None}

    mismatches = []
    checked = unverified = 0
    named_blocks: set[int] = set()
    for seq, feed_hash in sorted(correlator.block_hashes.items()):
        if seq in seq_block:
            number = seq_block[seq]
        elif feed_hash is not None and feed_hash in number_of_hash:
            number = number_of_hash[feed_hash]
        elif stands_for(seq) in chain_hash and chain_hash[stands_for(seq)] not in named_hashes:
            number = stands_for(seq)
        else:
            unverified += 1
            continue
        checked += 1
        if feed_hash == chain_hash[number]:
            named_blocks.add(number)
        else:
            mismatches.append(
                {
                    "sequence": seq,
                    "block": number,
                    "feed_hash": feed_hash,
                    "chain_hash": chain_hash[number],
                }
            )
    covered = sorted(named_blocks)
    blocks_missing = (
        [n for n in sorted(chain_hash) if covered[0] <= n <= covered[-1] and n not in named_blocks]
        if covered
        else []
    )
    # A block whose message carries the wrong hash is reported as a mismatch, not also as missing.
    mismatched_blocks = {item["block"] for item in mismatches}
    blocks_missing = [n for n in blocks_missing if n not in mismatched_blocks]

    return FeedChainFindings(
        blocks_checked=len(chain_hash),
        messages_checked=checked,
        messages_unverified=unverified,
        included=len(chain_position),
        in_feed=len(in_feed),
        missing_from_feed=len(missing),
        duplicated_in_feed=len(duplicated),
        feed_only=len(feed_only),
        order_violations=len(violations),
        hash_mismatches=len(mismatches),
        messages_spanning_blocks=len(spanning),
        blocks_missing_from_feed=len(blocks_missing),
        first_missing_from_feed=[
            {**tx_item(row), "block": chain_position[row][0], "index": chain_position[row][1]}
            for row in sorted(missing, key=chain_position.__getitem__)[:_LISTED]
        ],
        first_duplicated_in_feed=[
            {**tx_item(row), "appearances": appearances[row], "sequence": sequence[row]}
            for row in duplicated[:_LISTED]
        ],
        first_feed_only=[
            {**tx_item(row), "sequence": sequence[row], "position": position[row]}
            for row in sorted(feed_only, key=lambda r: (sequence[r], position[r]))[:_LISTED]
        ],
        first_order_violations=[
            {
                "earlier_tx": hash_of_row[earlier],
                "later_tx": hash_of_row[later],
                "earlier_block": chain_position[earlier][0],
                "earlier_index": chain_position[earlier][1],
                "later_block": chain_position[later][0],
                "later_index": chain_position[later][1],
                "earlier_sequence": sequence[earlier],
                "earlier_position": position[earlier],
                "later_sequence": sequence[later],
                "later_position": position[later],
            }
            for earlier, later in violations[:_LISTED]
        ],
        first_hash_mismatches=mismatches[:_LISTED],
        first_messages_spanning_blocks=[
            {"sequence": seq, "blocks": sorted(numbers)}
            for seq, numbers in sorted(spanning.items())[:_LISTED]
        ],
        first_blocks_missing_from_feed=blocks_missing[:_LISTED],
    )
