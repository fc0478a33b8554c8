"""The L1 invariants and figures, from what the L1 monitor saw.

Pure: an :class:`~pytest_gashammer.l1.observation.L1Observation` and the run's L2 blocks in,
:class:`~pytest_gashammer.results.L1Figures` and verdicts out. Each failure names the batch, the L2
block or the transaction; what the monitor could not see (an L1 it could not read to its head, a
batch whose data it could not read, an L2 block it never fetched) makes the checks it touches
inconclusive, with the reason, never a silent pass.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from pytest_gashammer.l1.observation import MALFORMED, BatchMessage, L1Observation, SeenBatch
from pytest_gashammer.results import L1Assertion, L1Batch, L1Figures, LatencyStats, Verdict
from pytest_gashammer.scenario.units import format_seconds
from pytest_gashammer.telemetry.sketch import EVIDENCE_LIMIT
from pytest_gashammer.vocabulary import (
    BATCH_ACCUMULATORS,
    BATCH_CONTENTS,
    BATCH_SEQUENCE,
    BLOCKS_POSTED,
    CONFIRMATIONS,
    selected_invariants,
)

_ZERO_HASH = "0x" + "00" * 32

#: ``(observation, run_blocks, waited_s) -> Verdict``.
L1Invariant = Callable[[L1Observation, range, "float | None"], Verdict]


# ----------------------------------------------------------------------------------------------
# the mapping: L2 blocks → batches


def block_postings(observation: L1Observation) -> dict[int, list[SeenBatch]]:
    """Each L2 block a batch's call says it carries → those batches, in log order."""
    postings: dict[int, list[SeenBatch]] = {}
    for batch in observation.batches:
        messages = batch.message_range
        if messages is None:
            continue
        for message in messages:
            postings.setdefault(observation.l2_block_of(message), []).append(batch)
    return postings


def block_messages(observation: L1Observation) -> dict[int, tuple[SeenBatch, BatchMessage]]:
    """Each L2 block → the first decoded batch message that is it."""
    found: dict[int, tuple[SeenBatch, BatchMessage]] = {}
    for batch in observation.batches:
        for message in batch.messages or ():
            found.setdefault(observation.l2_block_of(message.index), (batch, message))
    return found


def _span(numbers: Iterable[int]) -> str:
    """``[3, 4, 5, 9]`` → ``"3..5, 9"``."""
    ordered = sorted(set(numbers))
    parts: list[str] = []
    start = previous = None
    for number in ordered:
        if previous is not None and number == previous + 1:
            previous = number
            continue
        if start is not None:
            parts.append(str(start) if start == previous else f"{start}..{previous}")
        start = previous = number
    if start is not None:
        parts.append(str(start) if start == previous else f"{start}..{previous}")
    return ", ".join(parts)


def _lags(observation: L1Observation, run_blocks: range) -> dict[int, float]:
    """L2 block of the run → seconds from its first sighting on the L2 to its batch's on the L1."""
    seen = {block.number: block for block in observation.l2_blocks}
    postings = block_postings(observation)
    lags: dict[int, float] = {}
    for number in run_blocks:
        block, batches = seen.get(number), postings.get(number)
        if block is not None and batches:
            # The L2 is polled before the L1 in every round, so a negative lag is a block the monitor
            # fetched late: posted at once as far as it can tell.
            lags[number] = max(0.0, batches[0].seen_at - block.seen_at)
    return lags


def _run_batches(observation: L1Observation, run_blocks: range) -> list[SeenBatch]:
    """The batches that carried at least one L2 block of the run, in log order."""
    wanted = set(run_blocks)
    carried = []
    for batch in observation.batches:
        messages = batch.message_range
        if messages is not None and any(observation.l2_block_of(m) in wanted for m in messages):
            carried.append(batch)
    return carried


# ----------------------------------------------------------------------------------------------
# figures


def _mean(total: float, count: int) -> float:
    return total / count if count else math.nan


def l1_figures(observation: L1Observation, run_blocks: range, *, time_origin: float = 0.0) -> L1Figures:
    """The run's L1 figures; ``time_origin`` is subtracted from every ``seen_at`` (the run's t=0 on the
    monitor's clock)."""
    lags = _lags(observation, run_blocks)
    postings = block_postings(observation)
    carried = _run_batches(observation, run_blocks)
    sized = [batch for batch in carried if batch.data_bytes is not None and batch.l1_gas is not None]
    total_bytes = sum(batch.data_bytes or 0 for batch in sized)
    total_gas = sum(batch.l1_gas or 0 for batch in sized)
    # Per transaction: the decoded batches' cost over every transaction they carry.
    decoded = [batch for batch in sized if batch.messages is not None]
    transactions = sum(len(m.transactions or ()) for batch in decoded for m in batch.messages or ())
    tx_bytes = sum(batch.data_bytes or 0 for batch in decoded)
    tx_gas = sum(batch.l1_gas or 0 for batch in decoded)
    assertion_lags = []
    for batch in carried:
        covering = [a for a in observation.assertions if a.inbox_position > batch.sequence_number]
        if covering:
            first = min(covering, key=lambda a: a.created_at)
            assertion_lags.append(max(0.0, first.created_at - batch.seen_at))
    confirmation_lags = [
        max(0.0, a.confirmed_at - a.created_at) for a in observation.assertions if a.confirmed_at is not None
    ]
    rows = []
    for batch in observation.batches:
        messages = batch.message_range
        blocks = [observation.l2_block_of(m) for m in messages] if messages else []
        own = [lags[number] for number in blocks if number in lags and postings[number][0] is batch]
        rows.append(
            L1Batch(
                sequence_number=batch.sequence_number,
                l1_block=batch.l1_block,
                l1_tx=batch.l1_tx,
                before_acc=batch.before_acc,
                after_acc=batch.after_acc,
                delayed_messages_read=batch.delayed_messages_read,
                data_bytes=batch.data_bytes or 0,
                l1_gas=batch.l1_gas or 0,
                first_l2_block=blocks[0] if blocks else None,
                last_l2_block=blocks[-1] if blocks else None,
                l2_transactions=sum(len(m.transactions or ()) for m in batch.messages or ()),
                seen_at=batch.seen_at - time_origin,
                lag_max_s=max(own) if own else math.nan,
                decode_error=batch.decode_error,
            )
        )
    assertion_rows = [
        L1Assertion(
            assertion_hash=a.assertion_hash,
            parent_hash=a.parent_hash,
            inbox_position=a.inbox_position,
            l2_block_hash=a.l2_block_hash,
            created_l1_block=a.created_l1_block,
            created_at=a.created_at - time_origin,
            confirmed_l1_block=a.confirmed_l1_block,
            confirmed_at=None if a.confirmed_at is None else a.confirmed_at - time_origin,
        )
        for a in observation.assertions
    ]
    problems = list(observation.problems)
    if observation.problem_count > len(problems):
        problems.insert(0, f"{observation.problem_count - len(problems)} earlier problem(s) not kept")
    return L1Figures(
        l1_rpc_url=observation.l1_rpc_url,
        sequencer_inbox=observation.sequencer_inbox,
        rollup=observation.rollup,
        batches=len(observation.batches),
        blocks_of_run=len(run_blocks),
        blocks_posted=sum(1 for number in run_blocks if number in postings),
        batch_lag=LatencyStats.of(list(lags.values())),
        bytes_per_batch=_mean(total_bytes, len(sized)),
        l1_gas_per_batch=_mean(total_gas, len(sized)),
        bytes_per_l2_tx=_mean(tx_bytes, transactions),
        l1_gas_per_l2_tx=_mean(tx_gas, transactions),
        assertions=len(observation.assertions),
        confirmations=len(observation.confirmations),
        assertion_lag=LatencyStats.of(assertion_lags),
        confirmation_lag=LatencyStats.of(confirmation_lags),
        batch_rows=rows,
        assertion_rows=assertion_rows,
        problems=problems,
    )


# ----------------------------------------------------------------------------------------------
# invariants


def _limited(items: Sequence[Any]) -> list[Any]:
    return list(items[:EVIDENCE_LIMIT])


def _problems(observation: L1Observation) -> dict[str, Any]:
    return {"monitor_problems": _limited(observation.problems)} if observation.problems else {}


def _l1_behind(observation: L1Observation) -> str | None:
    """Why the monitor's reading of the L1 may be missing batches, or None."""
    if observation.synced_to_l1_block < observation.l1_head:
        return (
            f"the monitor read the L1's logs up to block {observation.synced_to_l1_block}, "
            f"not to its head {observation.l1_head}"
        )
    return None


def batch_sequence(observation: L1Observation, run_blocks: range, waited_s: float | None = None) -> Verdict:
    """Batch sequence numbers are contiguous (none missing, none twice) and agree with ``batchCount()``."""
    batches = observation.batches
    if not batches:
        return Verdict(
            BATCH_SEQUENCE,
            "inconclusive",
            "no batch was delivered while the run was watched",
            _problems(observation),
        )
    findings: list[str] = []
    first_of: dict[int, SeenBatch] = {batches[0].sequence_number: batches[0]}
    for previous, batch in zip(batches, batches[1:], strict=False):
        number = batch.sequence_number
        earlier = first_of.get(number)
        if earlier is not None:
            findings.append(
                f"batch {number} delivered twice: L1 block {earlier.l1_block} (tx {earlier.l1_tx}) and "
                f"L1 block {batch.l1_block} (tx {batch.l1_tx})"
            )
        elif number > previous.sequence_number + 1:
            findings.append(
                f"batch {number} (L1 block {batch.l1_block}) follows batch {previous.sequence_number}: "
                f"batch(es) {_span(range(previous.sequence_number + 1, number))} missing"
            )
        elif number < previous.sequence_number:
            findings.append(
                f"batch {number} (L1 block {batch.l1_block}) follows batch {previous.sequence_number}: "
                "the sequence went backwards"
            )
        first_of.setdefault(number, batch)
    checked_counts = 0
    for reading in observation.batch_counts:
        delivered = [b.sequence_number for b in batches if b.l1_block <= reading.l1_block]
        later = [b.sequence_number for b in batches if b.l1_block > reading.l1_block]
        count = int(reading.value)
        if delivered:
            checked_counts += 1
            if count != max(delivered) + 1:
                findings.append(
                    f"batchCount() at L1 block {reading.l1_block} is {count}, but the last batch delivered "
                    f"by then is {max(delivered)}"
                )
        elif later:
            checked_counts += 1
            if later[0] != count:
                findings.append(
                    f"batchCount() at L1 block {reading.l1_block} is {count}, but the next batch delivered "
                    f"is {later[0]}"
                )
    numbers = [b.sequence_number for b in batches]
    evidence: dict[str, Any] = {"batches": _span(numbers), "batch_count_readings": checked_counts}
    if findings:
        evidence["findings"] = _limited(findings)
        evidence.update(_problems(observation))
        return Verdict(BATCH_SEQUENCE, "failed", findings[0], evidence)
    agree = f"; batchCount() agrees at {checked_counts} reading(s)" if checked_counts else ""
    return Verdict(
        BATCH_SEQUENCE,
        "passed",
        f"batches {numbers[0]}..{numbers[-1]} ({len(numbers)}) delivered once each, in order{agree}",
        evidence,
    )


def batch_accumulators(
    observation: L1Observation, run_blocks: range, waited_s: float | None = None
) -> Verdict:
    """Each batch's ``beforeAcc`` is the previous batch's ``afterAcc`` (batch 0's: zero)."""
    by_number: dict[int, SeenBatch] = {}
    for batch in observation.batches:
        by_number.setdefault(batch.sequence_number, batch)
    findings: list[str] = []
    checked = 0
    for number, batch in sorted(by_number.items()):
        previous = by_number.get(number - 1)
        if previous is not None:
            expected, source = previous.after_acc, f"batch {number - 1}'s afterAcc"
        elif number == 0:
            expected, source = _ZERO_HASH, "zero (it is the first batch)"
        elif observation.prior_accumulator is not None and observation.prior_accumulator[0] == number - 1:
            expected = observation.prior_accumulator[1]
            source = f"the Bridge's sequencerInboxAccs({number - 1})"
        else:
            continue
        checked += 1
        if batch.before_acc != expected:
            findings.append(
                f"batch {number}'s beforeAcc {batch.before_acc} is not {source} {expected} "
                f"(L1 block {batch.l1_block}, tx {batch.l1_tx})"
            )
    if findings:
        return Verdict(
            BATCH_ACCUMULATORS,
            "failed",
            findings[0],
            {"findings": _limited(findings), "links_checked": checked},
        )
    if not checked:
        why = (
            "no batch was delivered while the run was watched"
            if not observation.batches
            else "no batch's predecessor was known (the Bridge's accumulator could not be read)"
        )
        return Verdict(BATCH_ACCUMULATORS, "inconclusive", why, _problems(observation))
    return Verdict(
        BATCH_ACCUMULATORS,
        "passed",
        f"{checked} batch(es) each start from the accumulator the one before ended with",
        {"links_checked": checked},
    )


def blocks_posted(observation: L1Observation, run_blocks: range, waited_s: float | None = None) -> Verdict:
    """Every L2 block of the run is posted, in exactly one batch."""
    if not run_blocks:
        return Verdict(BLOCKS_POSTED, "inconclusive", "the run made no L2 block")
    postings = block_postings(observation)
    run_words = f"L2 blocks {run_blocks[0]}..{run_blocks[-1]}"
    waited = f" within {format_seconds(waited_s)} of the run's end" if waited_s is not None else ""
    if not observation.batches:
        return Verdict(
            BLOCKS_POSTED,
            "failed",
            f"no batch was delivered while the run made {len(run_blocks)} L2 block(s) "
            f"({run_blocks[0]}..{run_blocks[-1]}){waited}",
            {"run_blocks": run_words, **_problems(observation)},
        )
    twice = [
        f"L2 block {number} posted {len(postings[number])} times: batches "
        + ", ".join(str(batch.sequence_number) for batch in postings[number])
        for number in run_blocks
        if len(postings.get(number, ())) > 1
    ]
    missing = [number for number in run_blocks if number not in postings]
    posted_by = sorted({b.sequence_number for number in run_blocks for b in postings.get(number, ())})
    evidence: dict[str, Any] = {
        "run_blocks": run_words,
        "posted": len(run_blocks) - len(missing),
        "batches": _span(posted_by),
    }
    if twice:
        evidence["posted_twice"] = _limited(twice)
        return Verdict(BLOCKS_POSTED, "failed", twice[0], evidence)
    # A batch whose data holds fewer messages than its call claims left some claimed blocks off the
    # L1: which ones, only the contents can tell (batch_contents), but not all of them are posted.
    short = []
    for batch in observation.batches:
        messages = batch.message_range
        if batch.messages is None or messages is None or len(batch.messages) >= len(messages):
            continue
        claimed = [observation.l2_block_of(message) for message in messages]
        if any(number in run_blocks for number in claimed):
            short.append(
                f"batch {batch.sequence_number} claims L2 blocks {_span(claimed)} ({len(claimed)}) but its "
                f"data holds {len(batch.messages)}: {len(claimed) - len(batch.messages)} of them are not on the L1"
            )
    if short:
        evidence["short_batches"] = _limited(short)
        return Verdict(BLOCKS_POSTED, "failed", short[0], evidence)
    if not missing:
        return Verdict(
            BLOCKS_POSTED,
            "passed",
            f"all {len(run_blocks)} L2 block(s) of the run ({run_blocks[0]}..{run_blocks[-1]}) posted, "
            f"once each, in batch(es) {_span(posted_by) or '-'}",
            evidence,
        )
    evidence["missing"] = _span(missing)
    unknown = [b for b in observation.batches if b.message_range is None]
    behind = _l1_behind(observation)
    if unknown or behind:
        reasons = [behind] if behind else []
        reasons += [f"batch {b.sequence_number}: {b.decode_error or 'not read'}" for b in unknown]
        evidence["why_unknown"] = _limited(reasons)
        evidence.update(_problems(observation))
        return Verdict(
            BLOCKS_POSTED,
            "inconclusive",
            f"L2 block(s) {_span(missing)} not found in the batches read, and the monitor may have missed "
            f"where they are: {reasons[0]}",
            evidence,
        )
    last = max((n for n in run_blocks if n in postings), default=None)
    after = f"; the batches read carry the run's blocks up to {last}" if last is not None else ""
    evidence.update(_problems(observation))
    return Verdict(
        BLOCKS_POSTED,
        "failed",
        f"{len(missing)} of {len(run_blocks)} L2 block(s) of the run not posted{waited}: "
        f"{_span(missing)}{after}",
        evidence,
    )


def _first_difference(carried: Sequence[str], included: Sequence[str]) -> str:
    for index, (ours, theirs) in enumerate(zip(carried, included, strict=False)):
        if ours != theirs:
            return f"first difference at index {index}: {ours} vs {theirs}"
    shorter, longer = (carried, included) if len(carried) < len(included) else (included, carried)
    extra = longer[len(shorter)]
    which = "the L2 block" if longer is included else "the batch"
    return f"first difference at index {len(shorter)}: only {which} holds {extra}"


def batch_contents(observation: L1Observation, run_blocks: range, waited_s: float | None = None) -> Verdict:
    """The decoded batches hold the run's L2 blocks: the same transactions, in the same order."""
    seen = {block.number: block for block in observation.l2_blocks}
    postings = block_postings(observation)
    messages = block_messages(observation)
    findings: list[str] = []
    unverifiable: list[str] = []
    checked = 0
    delayed = 0
    reported: set[int] = set()
    for batch in _run_batches(observation, run_blocks):
        expected = batch.message_range
        if batch.decode_problem == MALFORMED and batch.sequence_number not in reported:
            reported.add(batch.sequence_number)
            findings.append(
                f"batch {batch.sequence_number} (L1 tx {batch.l1_tx}) carries data Nitro would not read "
                f"as its blocks: {batch.decode_error}"
            )
        elif batch.messages is not None and expected is not None and len(batch.messages) != len(expected):
            reported.add(batch.sequence_number)
            findings.append(
                f"batch {batch.sequence_number} says it carries messages {expected.start}..{expected.stop - 1} "
                f"({len(expected)}), but its data holds {len(batch.messages)}"
            )
    for number in run_blocks:
        if number not in postings:
            continue  # blocks_posted's to say
        found = messages.get(number)
        if found is None:
            batch = postings[number][0]
            if batch.sequence_number not in reported:
                why = batch.decode_error or "its data was not read"
                unverifiable.append(f"L2 block {number}: batch {batch.sequence_number} not read ({why})")
            continue
        batch, message = found
        if message.transactions is None:
            delayed += 1
            continue
        block = seen.get(number)
        if block is None or not block.hashes_kept:
            unverifiable.append(f"L2 block {number}: the monitor did not keep its transactions")
            continue
        checked += 1
        if tuple(message.transactions) != block.transactions:
            findings.append(
                f"batch {batch.sequence_number} message {message.index} (L2 block {number}) holds "
                f"{len(message.transactions)} transaction(s), the L2 block {len(block.transactions)}; "
                + _first_difference(message.transactions, block.transactions)
            )
    evidence: dict[str, Any] = {"blocks_checked": checked}
    if delayed:
        evidence["delayed_messages"] = delayed
    if unverifiable:
        evidence["unverifiable"] = _limited(unverifiable)
    if findings:
        evidence["findings"] = _limited(findings)
        return Verdict(BATCH_CONTENTS, "failed", findings[0], evidence)
    if unverifiable or not checked:
        evidence.update(_problems(observation))
        why = unverifiable[0] if unverifiable else "no L2 block of the run was found in a batch read"
        return Verdict(
            BATCH_CONTENTS,
            "inconclusive",
            f"{checked} L2 block(s) of the run compared with their batches, {len(unverifiable)} could not be: "
            f"{why}",
            evidence,
        )
    transactions = sum(len(seen[n].transactions) for n in run_blocks if n in seen and n in messages)
    return Verdict(
        BATCH_CONTENTS,
        "passed",
        f"{checked} L2 block(s) of the run match their batches: {transactions} transaction(s), same order",
        evidence,
    )


def confirmations(observation: L1Observation, run_blocks: range, waited_s: float | None = None) -> Verdict:
    """Assertions are confirmed in order, and ``latestConfirmed()`` never goes backwards."""
    if observation.rollup is None:
        return Verdict(CONFIRMATIONS, "inconclusive", "the target names no rollup contract to read")
    created = {a.assertion_hash: a for a in observation.assertions}
    order = {c.assertion_hash: index for index, c in enumerate(observation.confirmations)}
    findings: list[str] = []
    for previous, confirmation in zip(observation.confirmations, observation.confirmations[1:], strict=False):
        before, now = created.get(previous.assertion_hash), created.get(confirmation.assertion_hash)
        if now is not None and now.parent_hash != previous.assertion_hash:
            findings.append(
                f"assertion {confirmation.assertion_hash} confirmed (L1 block {confirmation.l1_block}) after "
                f"{previous.assertion_hash}, but its parent is {now.parent_hash}"
            )
        if before is not None and now is not None and now.inbox_position < before.inbox_position:
            findings.append(
                f"assertion {confirmation.assertion_hash} confirmed after {previous.assertion_hash} covers "
                f"fewer batches ({now.inbox_position} < {before.inbox_position}): confirmation went backwards"
            )
    readings = observation.latest_confirmed
    for earlier, later in zip(readings, readings[1:], strict=False):
        was, now_at = order.get(str(earlier.value)), order.get(str(later.value))
        old, new = created.get(str(earlier.value)), created.get(str(later.value))
        if (was is not None and now_at is not None and now_at < was) or (
            old is not None and new is not None and new.inbox_position < old.inbox_position
        ):
            findings.append(
                f"latestConfirmed() went back from {earlier.value} (L1 block {earlier.l1_block}) to "
                f"{later.value} (L1 block {later.l1_block})"
            )
    evidence: dict[str, Any] = {
        "confirmed": len(observation.confirmations),
        "latest_confirmed_readings": len(readings),
    }
    if findings:
        evidence["findings"] = _limited(findings)
        return Verdict(CONFIRMATIONS, "failed", findings[0], evidence)
    if not observation.confirmations and len(readings) < 2:
        evidence.update(_problems(observation))
        return Verdict(
            CONFIRMATIONS,
            "inconclusive",
            "no assertion was confirmed while the run was watched",
            evidence,
        )
    return Verdict(
        CONFIRMATIONS,
        "passed",
        f"{len(observation.confirmations)} confirmation(s), each of the assertion after the last; "
        f"latestConfirmed() moved forward only ({len(readings)} value(s) read)",
        evidence,
    )


L1_INVARIANTS: dict[str, L1Invariant] = {
    BATCH_SEQUENCE: batch_sequence,
    BATCH_ACCUMULATORS: batch_accumulators,
    BLOCKS_POSTED: blocks_posted,
    BATCH_CONTENTS: batch_contents,
    CONFIRMATIONS: confirmations,
}


def wanted_l1_invariants(only: Sequence[str] | None, skip: Sequence[str]) -> list[str]:
    """The L1 invariants a plan asks for (``invariants=`` / ``skip_invariants=``), in catalogue order."""
    return selected_invariants(L1_INVARIANTS, only, skip)


def l1_verdicts(
    observation: L1Observation,
    run_blocks: range,
    *,
    waited_s: float | None = None,
    only: Sequence[str] | None = None,
    skip: Sequence[str] = (),
) -> list[Verdict]:
    """The verdicts of the L1 invariants asked for, over the run's L2 blocks ``run_blocks``;
    ``waited_s`` is how long the monitor waited after the run for the last block to be posted."""
    return [
        L1_INVARIANTS[name](observation, run_blocks, waited_s) for name in wanted_l1_invariants(only, skip)
    ]


def l1_unavailable(
    reason: str, *, only: Sequence[str] | None = None, skip: Sequence[str] = ()
) -> list[Verdict]:
    """Every L1 invariant asked for, inconclusive for ``reason`` (the monitor could not run)."""
    return [Verdict(name, "inconclusive", reason) for name in wanted_l1_invariants(only, skip)]


__all__ = [
    "L1_INVARIANTS",
    "block_messages",
    "block_postings",
    "l1_figures",
    "l1_unavailable",
    "l1_verdicts",
    "wanted_l1_invariants",
]
