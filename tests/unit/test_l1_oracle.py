"""The L1 invariants and figures over hand-built observations: each passes, fails naming the batch,
block or transaction, and is inconclusive (saying why) when the monitor could not see enough."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import pytest

from pytest_gashammer.l1.observation import (
    LOCATION_BLOB,
    MALFORMED,
    UNREADABLE,
    BatchMessage,
    L1Observation,
    Reading,
    SeenAssertion,
    SeenBatch,
    SeenConfirmation,
    SeenL2Block,
)
from pytest_gashammer.oracle.l1 import (
    L1_INVARIANTS,
    l1_figures,
    l1_unavailable,
    l1_verdicts,
)
from pytest_gashammer.report.terminal import l1_lines
from pytest_gashammer.results import RunResult
from pytest_gashammer.vocabulary import L1_INVARIANT_NAMES

ZERO = "0x" + "00" * 32
RUN = range(10, 16)  # the run's L2 blocks: 10..15


def word(tag: int, n: int) -> str:
    return "0x" + f"{tag:02x}" + f"{n:062x}"


def tx(n: int) -> str:
    return word(0x7A, n)


def acc(n: int) -> str:
    return word(0xAC, n)


def assertion_hash(n: int) -> str:
    return word(0xA5, n)


def txs_of(number: int) -> tuple[str, ...]:
    """Two transactions per L2 block."""
    return (tx(2 * number), tx(2 * number + 1))


def l2_block(number: int, *, seen_at: float | None = None, txs: tuple[str, ...] | None = None) -> SeenL2Block:
    return SeenL2Block(
        number=number,
        hash=word(0xB0, number),
        parent_hash=word(0xB0, number - 1),
        seen_at=float(number) if seen_at is None else seen_at,
        transactions=txs_of(number) if txs is None else txs,
    )


def batch(sequence: int, first: int, last: int, *, seen_at: float, **changes: Any) -> SeenBatch:
    made = SeenBatch(
        sequence_number=sequence,
        before_acc=acc(sequence),
        after_acc=acc(sequence + 1),
        delayed_acc=ZERO,
        delayed_messages_read=0,
        time_bounds=(0, 2**63, 0, 2**63),
        data_location=0,
        l1_block=100 + sequence,
        log_index=1,
        l1_tx=word(0xE0, sequence),
        seen_at=seen_at,
        entry_point="addSequencerL2BatchFromOrigin",
        prev_message_count=first,
        new_message_count=last + 1,
        data_bytes=100,
        l1_gas=150_000,
        messages=tuple(BatchMessage(m, txs_of(m)) for m in range(first, last + 1)),
    )
    return dataclasses.replace(made, **changes)


def assertion(
    n: int, position: int, *, created_at: float, confirmed_at: float | None = None
) -> SeenAssertion:
    return SeenAssertion(
        assertion_hash=assertion_hash(n),
        parent_hash=assertion_hash(n - 1),
        inbox_position=position,
        l2_block_hash=word(0xB0, n),
        after_inbox_acc=acc(position),
        created_l1_block=200 + n,
        created_at=created_at,
        confirmed_l1_block=None if confirmed_at is None else 210 + n,
        confirmed_at=confirmed_at,
    )


def healthy(**changes: Any) -> L1Observation:
    """Blocks 8..15 seen (8, 9 before the run), batch 3 carries 8..11 (seen at 12.5), batch 4 carries
    12..15 (seen at 16); assertion 1 covers both (created at 17, confirmed at 19)."""
    made = L1Observation(
        l1_rpc_url="http://127.0.0.1:1",
        sequencer_inbox="0x" + "11" * 20,
        rollup="0x" + "22" * 20,
        l2_block_offset=0,
        from_l1_block=100,
        synced_to_l1_block=120,
        l1_head=120,
        first_l2_block=8,
        l2_blocks=tuple(l2_block(n) for n in range(8, 16)),
        batches=(batch(3, 8, 11, seen_at=12.5), batch(4, 12, 15, seen_at=16.0)),
        assertions=(assertion(1, 5, created_at=17.0, confirmed_at=19.0),),
        confirmations=(SeenConfirmation(assertion_hash(1), 211, 0, 19.0),),
        batch_counts=(Reading(103, 4, 12.5), Reading(104, 5, 16.0)),
        latest_confirmed=(Reading(100, assertion_hash(0), 10.0), Reading(211, assertion_hash(1), 19.0)),
        prior_accumulator=(2, acc(3)),
    )
    return dataclasses.replace(made, **changes)


def verdict_of(name: str, observation: L1Observation, waited_s: float | None = 30.0) -> Any:
    (verdict,) = l1_verdicts(observation, RUN, waited_s=waited_s, only=[name])
    assert verdict.name == name
    return verdict


# ----------------------------------------------------------------------------------------------
# a healthy run


def test_a_healthy_run_passes_every_l1_invariant_in_catalogue_order() -> None:
    verdicts = l1_verdicts(healthy(), RUN, waited_s=30.0)
    assert [v.name for v in verdicts] == list(L1_INVARIANT_NAMES) == list(L1_INVARIANTS)
    assert [v.status for v in verdicts] == ["passed"] * 5, [v.describe() for v in verdicts]
    by_name = {v.name: v for v in verdicts}
    assert by_name["batch_sequence"].summary == (
        "batches 3..4 (2) delivered once each, in order; batchCount() agrees at 2 reading(s)"
    )
    assert by_name["blocks_posted"].summary == (
        "all 6 L2 block(s) of the run (10..15) posted, once each, in batch(es) 3..4"
    )
    assert by_name["batch_contents"].summary == (
        "6 L2 block(s) of the run match their batches: 12 transaction(s), same order"
    )
    assert by_name["batch_accumulators"].evidence == {"links_checked": 2}


def test_the_figures_of_a_healthy_run() -> None:
    figures = l1_figures(healthy(), RUN, time_origin=10.0)
    assert (figures.batches, figures.blocks_of_run, figures.blocks_posted) == (2, 6, 6)
    # Blocks 10, 11 seen at 10 and 11, posted at 12.5; 12..15 seen at 12..15, posted at 16.
    assert figures.batch_lag.count == 6
    assert figures.batch_lag.max == pytest.approx(4.0)
    assert figures.batch_lag.p50 == pytest.approx(2.0)
    assert (figures.bytes_per_batch, figures.l1_gas_per_batch) == (100.0, 150_000.0)
    # Both batches carry 8 blocks of 2 transactions: 200 bytes and 300 kgas over 16 transactions.
    assert figures.bytes_per_l2_tx == pytest.approx(12.5)
    assert figures.l1_gas_per_l2_tx == pytest.approx(18_750.0)
    assert (figures.assertions, figures.confirmations) == (1, 1)
    assert figures.assertion_lag.count == 2 and figures.assertion_lag.max == pytest.approx(4.5)
    assert figures.confirmation_lag.max == pytest.approx(2.0)
    first, second = figures.batch_rows
    assert (first.sequence_number, first.first_l2_block, first.last_l2_block) == (3, 8, 11)
    assert (first.l2_transactions, first.seen_at) == (8, 2.5)
    assert first.lag_max_s == pytest.approx(2.5) and second.lag_max_s == pytest.approx(4.0)
    (row,) = figures.assertion_rows
    assert (row.inbox_position, row.created_at, row.confirmed_at) == (5, 7.0, 9.0)
    assert figures.problems == []


def test_the_figures_survive_a_round_trip_through_plain_data() -> None:
    figures = l1_figures(healthy(), RUN)
    plain = dataclasses.asdict(figures)
    again = type(figures).from_dict(plain)
    assert again == figures


def test_the_terminal_summary_has_an_l1_line() -> None:
    figures = dataclasses.asdict(l1_figures(healthy(problems=("follow L1: boom",), problem_count=3), RUN))
    lines = l1_lines(figures)
    assert lines[0] == (
        "  L1         2 batches, 6 of 6 blocks posted, lag p50 2.00 s p99 4.00 s max 4.00 s, "
        "100 B and 150 kgas per batch, 1 assertions (1 confirmed)"
    )
    assert lines[1] == "  L1 problems 2, first: 2 earlier problem(s) not kept"
    assert l1_lines(None) == []


# ----------------------------------------------------------------------------------------------
# batch_sequence


def test_a_missing_batch_number_fails_batch_sequence_naming_it() -> None:
    observation = healthy(batches=(batch(3, 8, 11, seen_at=12.5), batch(5, 12, 15, seen_at=16.0)))
    verdict = verdict_of("batch_sequence", observation)
    assert verdict.status == "failed"
    assert verdict.summary == "batch 5 (L1 block 105) follows batch 3: batch(es) 4 missing"


def test_a_batch_delivered_twice_fails_batch_sequence_naming_both_transactions() -> None:
    again = batch(3, 8, 11, seen_at=13.0, l1_block=109, l1_tx=word(0xE0, 99))
    observation = healthy(batches=(batch(3, 8, 11, seen_at=12.5), again), batch_counts=())
    verdict = verdict_of("batch_sequence", observation)
    assert verdict.status == "failed"
    assert verdict.summary == (
        f"batch 3 delivered twice: L1 block 103 (tx {word(0xE0, 3)}) and L1 block 109 (tx {word(0xE0, 99)})"
    )


def test_batch_count_that_disagrees_with_the_logs_fails_batch_sequence() -> None:
    observation = healthy(batch_counts=(Reading(103, 4, 12.5), Reading(104, 7, 16.0)))
    verdict = verdict_of("batch_sequence", observation)
    assert verdict.status == "failed"
    assert verdict.summary == "batchCount() at L1 block 104 is 7, but the last batch delivered by then is 4"


def test_batch_sequence_without_batches_is_inconclusive() -> None:
    verdict = verdict_of("batch_sequence", healthy(batches=(), batch_counts=()))
    assert verdict.status == "inconclusive" and "no batch was delivered" in verdict.summary


# ----------------------------------------------------------------------------------------------
# batch_accumulators


def test_a_broken_accumulator_chain_fails_naming_the_batch_and_both_values() -> None:
    broken = batch(4, 12, 15, seen_at=16.0, before_acc=acc(77))
    verdict = verdict_of("batch_accumulators", healthy(batches=(batch(3, 8, 11, seen_at=12.5), broken)))
    assert verdict.status == "failed"
    assert verdict.summary == (
        f"batch 4's beforeAcc {acc(77)} is not batch 3's afterAcc {acc(4)} (L1 block 104, tx {word(0xE0, 4)})"
    )


def test_the_first_batch_seen_is_checked_against_the_bridge_or_zero() -> None:
    wrong_prior = healthy(prior_accumulator=(2, acc(55)))
    verdict = verdict_of("batch_accumulators", wrong_prior)
    assert verdict.status == "failed" and "the Bridge's sequencerInboxAccs(2)" in verdict.summary
    first = batch(0, 1, 11, seen_at=12.5, before_acc=acc(0))
    verdict = verdict_of("batch_accumulators", healthy(batches=(first,), prior_accumulator=None))
    assert verdict.status == "failed" and "is not zero (it is the first batch)" in verdict.summary
    lone = healthy(batches=(batch(4, 12, 15, seen_at=16.0),), prior_accumulator=None)
    verdict = verdict_of("batch_accumulators", lone)
    assert verdict.status == "inconclusive" and "predecessor" in verdict.summary


# ----------------------------------------------------------------------------------------------
# blocks_posted


def test_blocks_never_posted_fail_blocks_posted_naming_them() -> None:
    observation = healthy(batches=(batch(3, 8, 11, seen_at=12.5), batch(4, 12, 13, seen_at=16.0)))
    verdict = verdict_of("blocks_posted", observation)
    assert verdict.status == "failed"
    assert verdict.summary == (
        "2 of 6 L2 block(s) of the run not posted within 30.00 s of the run's end: 14..15; the batches "
        "read carry the run's blocks up to 13"
    )
    assert verdict.evidence["missing"] == "14..15"


def test_a_block_posted_twice_fails_blocks_posted_naming_the_batches() -> None:
    observation = healthy(
        batches=(batch(3, 8, 11, seen_at=12.5), batch(4, 11, 15, seen_at=16.0)), batch_counts=()
    )
    verdict = verdict_of("blocks_posted", observation)
    assert verdict.status == "failed"
    assert verdict.summary == "L2 block 11 posted 2 times: batches 3, 4"


def test_a_run_with_blocks_and_no_batch_fails_blocks_posted() -> None:
    observation = healthy(batches=(), problems=("follow L1: refused",), problem_count=1)
    verdict = verdict_of("blocks_posted", observation)
    assert verdict.status == "failed"
    assert verdict.summary.startswith("no batch was delivered while the run made 6 L2 block(s) (10..15)")
    assert verdict.evidence["monitor_problems"] == ["follow L1: refused"]


def test_missing_blocks_are_inconclusive_when_the_monitor_may_have_missed_them() -> None:
    short = (batch(3, 8, 11, seen_at=12.5),)
    behind = verdict_of("blocks_posted", healthy(batches=short, synced_to_l1_block=110, l1_head=125))
    assert behind.status == "inconclusive"
    assert "read the L1's logs up to block 110, not to its head 125" in behind.summary
    unread = batch(4, 0, 0, seen_at=16.0, prev_message_count=None, new_message_count=None, messages=None)
    unread = dataclasses.replace(
        unread, decode_error="not decoded: selector 0xdeadbeef", decode_problem=UNREADABLE
    )
    verdict = verdict_of("blocks_posted", healthy(batches=(*short, unread)))
    assert verdict.status == "inconclusive" and "batch 4: not decoded: selector 0xdeadbeef" in verdict.summary


def test_blocks_posted_without_run_blocks_is_inconclusive() -> None:
    (verdict,) = l1_verdicts(healthy(), range(16, 16), only=["blocks_posted"])
    assert verdict.status == "inconclusive"


# ----------------------------------------------------------------------------------------------
# batch_contents


def test_swapped_transactions_fail_batch_contents_naming_the_batch_message_and_hashes() -> None:
    swapped = list(batch(4, 12, 15, seen_at=16.0).messages or ())
    swapped[1] = BatchMessage(13, (tx(27), tx(26)))
    observation = healthy(
        batches=(batch(3, 8, 11, seen_at=12.5), batch(4, 12, 15, seen_at=16.0, messages=tuple(swapped)))
    )
    verdict = verdict_of("batch_contents", observation)
    assert verdict.status == "failed"
    assert verdict.summary == (
        "batch 4 message 13 (L2 block 13) holds 2 transaction(s), the L2 block 2; first difference at "
        f"index 0: {tx(27)} vs {tx(26)}"
    )


def test_a_dropped_transaction_fails_batch_contents_saying_which_side_holds_it() -> None:
    messages = list(batch(4, 12, 15, seen_at=16.0).messages or ())
    messages[0] = BatchMessage(12, (tx(24),))
    observation = healthy(
        batches=(batch(3, 8, 11, seen_at=12.5), batch(4, 12, 15, seen_at=16.0, messages=tuple(messages)))
    )
    verdict = verdict_of("batch_contents", observation)
    assert verdict.summary.endswith(f"first difference at index 1: only the L2 block holds {tx(25)}")


def test_a_batch_whose_data_holds_other_messages_than_its_call_says_fails() -> None:
    short = batch(4, 12, 15, seen_at=16.0)
    short = dataclasses.replace(short, messages=(short.messages or ())[:3])
    verdict = verdict_of("batch_contents", healthy(batches=(batch(3, 8, 11, seen_at=12.5), short)))
    assert verdict.status == "failed"
    assert verdict.summary == "batch 4 says it carries messages 12..15 (4), but its data holds 3"
    # The block the poster left out is not on the L1: not all the blocks the batch claims are posted.
    posted = verdict_of("blocks_posted", healthy(batches=(batch(3, 8, 11, seen_at=12.5), short)))
    assert posted.status == "failed"
    assert posted.summary == (
        "batch 4 claims L2 blocks 12..15 (4) but its data holds 3: 1 of them are not on the L1"
    )


def test_malformed_batch_data_fails_batch_contents() -> None:
    bad = batch(
        4, 12, 15, seen_at=16.0, messages=None, decode_error="bad_brotli: corrupt", decode_problem=MALFORMED
    )
    verdict = verdict_of("batch_contents", healthy(batches=(batch(3, 8, 11, seen_at=12.5), bad)))
    assert verdict.status == "failed"
    assert verdict.summary == (
        f"batch 4 (L1 tx {word(0xE0, 4)}) carries data Nitro would not read as its blocks: bad_brotli: corrupt"
    )


def test_a_blob_batch_makes_batch_contents_inconclusive_for_its_blocks() -> None:
    blob = batch(
        4,
        12,
        15,
        seen_at=16.0,
        data_location=LOCATION_BLOB,
        messages=None,
        data_bytes=None,
        decode_error="data in EIP-4844 blobs, which the monitor does not read",
        decode_problem=UNREADABLE,
    )
    observation = healthy(batches=(batch(3, 8, 11, seen_at=12.5), blob))
    verdict = verdict_of("batch_contents", observation)
    assert verdict.status == "inconclusive"
    assert verdict.summary.startswith("2 L2 block(s) of the run compared with their batches, 4 could not be")
    assert "L2 block 12: batch 4 not read (data in EIP-4844 blobs" in verdict.summary
    assert verdict_of("blocks_posted", observation).status == "passed"  # the call still says where they are


def test_blocks_the_monitor_did_not_keep_make_batch_contents_inconclusive() -> None:
    blocks = tuple(
        dataclasses.replace(b, transactions=(), hashes_kept=False) if b.number >= 14 else b
        for b in healthy().l2_blocks
    )
    verdict = verdict_of("batch_contents", healthy(l2_blocks=blocks))
    assert verdict.status == "inconclusive"
    assert "L2 block 14: the monitor did not keep its transactions" in verdict.summary


# ----------------------------------------------------------------------------------------------
# confirmations


def test_confirmations_without_a_rollup_or_without_any_confirmation_are_inconclusive() -> None:
    assert verdict_of("confirmations", healthy(rollup=None)).status == "inconclusive"
    quiet = healthy(confirmations=(), latest_confirmed=(Reading(100, assertion_hash(0), 10.0),))
    verdict = verdict_of("confirmations", quiet)
    assert verdict.status == "inconclusive" and "no assertion was confirmed" in verdict.summary


def test_a_confirmation_out_of_order_fails_naming_the_assertions() -> None:
    second = dataclasses.replace(assertion(2, 9, created_at=18.0), parent_hash=assertion_hash(7))
    observation = healthy(
        assertions=(assertion(1, 5, created_at=17.0, confirmed_at=19.0), second),
        confirmations=(
            SeenConfirmation(assertion_hash(1), 211, 0, 19.0),
            SeenConfirmation(assertion_hash(2), 212, 0, 20.0),
        ),
    )
    verdict = verdict_of("confirmations", observation)
    assert verdict.status == "failed"
    assert verdict.summary == (
        f"assertion {assertion_hash(2)} confirmed (L1 block 212) after {assertion_hash(1)}, but its parent is "
        f"{assertion_hash(7)}"
    )


def test_latest_confirmed_going_back_fails_confirmations() -> None:
    observation = healthy(
        assertions=(
            assertion(1, 5, created_at=17.0, confirmed_at=19.0),
            assertion(2, 9, created_at=18.0, confirmed_at=20.0),
        ),
        confirmations=(
            SeenConfirmation(assertion_hash(1), 211, 0, 19.0),
            SeenConfirmation(assertion_hash(2), 212, 0, 20.0),
        ),
        latest_confirmed=(
            Reading(211, assertion_hash(1), 19.0),
            Reading(212, assertion_hash(2), 20.0),
            Reading(213, assertion_hash(1), 21.0),
        ),
    )
    verdict = verdict_of("confirmations", observation)
    assert verdict.status == "failed"
    assert verdict.summary == (
        f"latestConfirmed() went back from {assertion_hash(2)} (L1 block 212) to {assertion_hash(1)} (L1 block 213)"
    )


# ----------------------------------------------------------------------------------------------
# selection, an L1 that could not be watched, the SLO


def test_the_plan_selects_and_skips_l1_invariants() -> None:
    assert [v.name for v in l1_verdicts(healthy(), RUN, only=["inclusion", "blocks_posted"])] == [
        "blocks_posted"
    ]
    assert [v.name for v in l1_verdicts(healthy(), RUN, skip=["batch_contents"])] == [
        "batch_sequence",
        "batch_accumulators",
        "blocks_posted",
        "confirmations",
    ]
    verdicts = l1_unavailable("the L1 monitor could not start: refused", skip=["confirmations"])
    assert [(v.name, v.status) for v in verdicts] == [(n, "inconclusive") for n in L1_INVARIANT_NAMES[:4]]
    assert verdicts[0].summary == "the L1 monitor could not start: refused"


@pytest.mark.parametrize("name", L1_INVARIANT_NAMES)
def test_each_l1_invariant_names_its_verdict_after_itself(name: str) -> None:
    empty = healthy(
        l2_blocks=(), batches=(), assertions=(), confirmations=(), batch_counts=(), latest_confirmed=()
    )
    for observation in (healthy(), empty):
        assert L1_INVARIANTS[name](observation, RUN, None).name == name


def test_batch_lag_objectives_read_the_l1_figures_and_are_inconclusive_without_an_l1() -> None:
    from pytest_gashammer.oracle.slo import evaluate_slos
    from pytest_gashammer.scenario.arguments import parse_slo

    figures = l1_figures(healthy(), RUN)
    result = dataclasses.replace(_result(), l1=figures)
    (met,) = evaluate_slos(result, parse_slo({"batch_lag_max": "5s"}))
    (broken,) = evaluate_slos(result, parse_slo({"batch_lag_p50": "1s"}))
    assert (met.status, broken.status) == ("passed", "failed")
    assert broken.summary == "batch-posting lag p50 2.00 s > 1.00 s"
    (without,) = evaluate_slos(_result(), parse_slo({"batch_lag_p99": "5s"}))
    assert without.status == "inconclusive" and "no L1" in without.summary
    unposted = dataclasses.replace(result, l1=l1_figures(healthy(batches=()), RUN))
    (none,) = evaluate_slos(unposted, parse_slo({"batch_lag_p99": "5s"}))
    assert none.status == "inconclusive"
    assert unposted.l1 is not None and math.isnan(unposted.l1.batch_lag.p99)


def _result() -> RunResult:
    from pytest_gashammer.results import Latency, LatencyStats

    stats = LatencyStats.of([])
    return RunResult(
        name="t",
        seed=1,
        target_gas_per_sec=1.0,
        offered_gas_per_sec=1.0,
        accepted_gas_per_sec=1.0,
        included_gas_per_sec=1.0,
        sent=1,
        accepted=1,
        rejected=0,
        included=1,
        lost=0,
        latency=Latency(stats, stats),
        errors={},
        verdicts=[],
        duration=1.0,
        sustain_seconds=1.0,
        chain_id=1,
        devnet_kind="embedded",
        node_version="anvil",
    )
