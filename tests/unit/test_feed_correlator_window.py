"""The correlator in bounded memory: settling blocks as a run goes, forgetting rows, and still finding
exactly what one check over the whole run finds.

The reference is ``feed_check_oracle.legacy_check``: ``check_against_chain`` as it was before windowing,
run on a second correlator that saw the same feed and forgot nothing. Runs are random: rows registered,
feed messages with drops, repeats, reorders, wrong or missing block hashes, blocks split over several
messages, transactions moved into the previous block's message (spanning), carried twice, or carried
but never included; the chain includes some transactions twice.
"""

from __future__ import annotations

import dataclasses
import math
import os
import random
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pytest_gashammer.feed import Correlator, FeedChainFindings
from tests.unit.feed_check_oracle import legacy_check

MS = 1_000_000
# FEED_WINDOW_EXAMPLES raises the budget for a longer local hunt; the default keeps the file fast.
PROPERTY = settings(
    max_examples=int(os.environ.get("FEED_WINDOW_EXAMPLES", "500")),
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)


@dataclasses.dataclass(frozen=True)
class Msg:
    """What the correlator reads of a feed message (a ``FeedMessage`` has these and more)."""

    sequence_number: int
    block_hash: str | None
    tx_hashes: tuple[str, ...]


@dataclasses.dataclass
class Run:
    offset: int
    hashes: list[str]  # row → tx hash
    chain: list[tuple[int, str, list[str]]]
    deliveries: list[Msg]  # in arrival order, repeats included
    ready: dict[int, int]  # block number → last delivery that concerns it
    row_block: list[int | None]  # row → block that first included it
    row_last_delivery: list[int]  # row → last delivery that carried it (-1: none)


def make_run(rng: random.Random, blocks: int, offset: int) -> Run:
    def fresh() -> str:
        return "0x" + rng.randbytes(32).hex()

    start = offset + rng.randint(1, 4)
    numbers = list(range(start, start + blocks))
    block_hash = {number: fresh() for number in numbers}
    ours: list[str] = []
    lost: list[str] = []
    chain: list[tuple[int, str, list[str]]] = []
    for number in numbers:
        txs: list[str] = []
        for _ in range(rng.choice([0, 0, 1, 2, 3, 4, 5])):
            tx = fresh()
            txs.append(tx)
            if rng.random() < 0.75:
                ours.append(tx)
        if ours and rng.random() < 0.05:  # the chain includes one of ours again
            txs.insert(rng.randrange(len(txs) + 1), rng.choice(ours))
        if rng.random() < 0.15:  # registered, sent, never included
            tx = fresh()
            ours.append(tx)
            lost.append(tx)
        chain.append((number, block_hash[number], txs))
    for i in range(len(ours) - 1):  # rows are not exactly in block order
        if rng.random() < 0.1:
            ours[i], ours[i + 1] = ours[i + 1], ours[i]

    contents = [list(txs) for _, _, txs in chain]
    for k in range(len(contents) - 1):
        if contents[k + 1] and rng.random() < 0.08:  # the next block's first transaction comes early
            contents[k].append(contents[k + 1][0])
            if rng.random() < 0.6:
                contents[k + 1].pop(0)
    for k, content in enumerate(contents):
        if len(content) >= 2 and rng.random() < 0.1:
            a, b = rng.sample(range(len(content)), 2)
            content[a], content[b] = content[b], content[a]
        if lost and rng.random() < 0.1:
            content.insert(rng.randrange(len(content) + 1), rng.choice(lost))
        if k and contents[k - 1] and rng.random() < 0.05:  # carried twice
            content.insert(rng.randrange(len(content) + 1), rng.choice(contents[k - 1]))

    sent: list[Msg] = []
    seq = start - offset
    for (number, _, _), content in zip(chain, contents, strict=True):
        parts = [content]
        if len(content) >= 2 and rng.random() < 0.1:  # a block split over two messages, as the relay does
            cut = rng.randrange(1, len(content))
            parts = [content[:cut], content[cut:]]
        for part in parts:
            draw = rng.random()
            if draw < 0.06:
                feed_hash: str | None = fresh()
            elif draw < 0.11:
                feed_hash = block_hash[rng.choice(numbers)]  # another block's, earlier or later
            elif draw < 0.13:
                feed_hash = None
            else:
                feed_hash = block_hash[number]
            message = Msg(seq, feed_hash, tuple(part))
            seq += 1
            if rng.random() < 0.1:
                continue  # dropped
            sent.append(message)
    for _ in range(rng.randint(0, 2)):  # past the chain's end
        carried = tuple(rng.sample(lost, 1)) if lost and rng.random() < 0.5 else ()
        sent.append(Msg(seq, rng.choice([fresh(), block_hash[rng.choice(numbers)], None]), carried))
        seq += 1
    for i in range(len(sent) - 1):
        if rng.random() < 0.1:
            sent[i], sent[i + 1] = sent[i + 1], sent[i]
    deliveries = list(sent)
    for message in sent:
        if rng.random() < 0.08:  # served again a little later
            at = deliveries.index(message) + rng.randint(1, 4)
            deliveries.insert(min(at, len(deliveries)), message)

    first_block: dict[str, int] = {}
    for number, _, txs in chain:
        for tx in txs:
            first_block.setdefault(tx, number)
    number_of_hash = {h: n for n, h in block_hash.items()}
    # The block each sequence number stands for: a message naming the hash of the message numbered one
    # below it continues that block (the relay's split), so it is no new block.
    hash_of = {message.sequence_number: message.block_hash for message in reversed(deliveries)}
    continuations = [seq for seq, h in sorted(hash_of.items()) if h is not None and hash_of.get(seq - 1) == h]

    def stands_for(seq: int) -> int:
        return seq + offset - sum(1 for continued in continuations if continued <= seq)

    ready: dict[int, int] = {}
    last_delivery: dict[str, int] = {}
    for d, message in enumerate(deliveries):
        concerned = {first_block[tx] for tx in message.tx_hashes if tx in first_block}
        if message.block_hash in number_of_hash:
            concerned.add(number_of_hash[message.block_hash])
        concerned.add(stands_for(message.sequence_number))
        # Whether it continues a block is known once the message numbered below it came too.
        concerned.add(stands_for(message.sequence_number + 1))
        for number in concerned:
            ready[number] = d
        for tx in message.tx_hashes:
            last_delivery[tx] = d
    return Run(
        offset=offset,
        hashes=ours,
        chain=chain,
        deliveries=deliveries,
        ready=ready,
        row_block=[first_block.get(tx) for tx in ours],
        row_last_delivery=[last_delivery.get(tx, -1) for tx in ours],
    )


class Windowed:
    """Drives a correlator the way the edge will: settle what is safe, forget what is safe."""

    def __init__(self, run: Run, rng: random.Random) -> None:
        self.run, self.rng = run, rng
        self.correlator = Correlator(sequence_offset=run.offset)
        self.settled = 0  # chain blocks settled so far
        self.delivered = -1

    def settle_some(self, *, everything: bool = False) -> None:
        chain, ready = self.run.chain, self.run.ready
        limit = self.settled
        while limit < len(chain) and ready.get(chain[limit][0], -1) <= self.delivered:
            limit += 1
        if limit > self.settled:
            stop = limit if everything else self.rng.randint(self.settled + 1, limit)
            self.correlator.settle(chain[self.settled : stop])
            self.settled = stop
        self.forget_some()

    def forget_some(self) -> None:
        run, correlator = self.run, self.correlator
        last_settled = run.chain[self.settled - 1][0] if self.settled else -1
        safe = correlator.base
        while safe < len(run.hashes):
            block = run.row_block[safe]
            if (block is not None and block > last_settled) or run.row_last_delivery[safe] > self.delivered:
                break
            safe += 1
        if safe > correlator.base and self.rng.random() < 0.7:
            correlator.forget_before(self.rng.randint(correlator.base + 1, safe))


def whole_run(run: Run) -> Correlator:
    correlator = Correlator(sequence_offset=run.offset)
    for row, tx in enumerate(run.hashes):
        correlator.register(tx, row, row * MS)
    for d, message in enumerate(run.deliveries):
        correlator.on_message(message, 10_000 * MS + d * MS)  # type: ignore[arg-type]
    return correlator


def windowed(run: Run, rng: random.Random, *, interleaved: bool) -> Correlator:
    driver = Windowed(run, rng)
    correlator = driver.correlator
    for row, tx in enumerate(run.hashes):
        correlator.register(bytes.fromhex(tx[2:]) if row % 2 else tx, row, row * MS)
    for d, message in enumerate(run.deliveries):
        correlator.on_message(message, 10_000 * MS + d * MS)  # type: ignore[arg-type]
        driver.delivered = d
        if interleaved and rng.random() < 0.3:
            driver.settle_some()
    while driver.settled < len(run.chain):
        driver.settle_some(everything=rng.random() < 0.2)
    driver.forget_some()
    return correlator


def counters(correlator: Correlator) -> dict[str, Any]:
    return {k: v for k, v in correlator.summary().items() if not k.startswith("latency_")}


@PROPERTY
@given(
    seed=st.integers(0, 2**32),
    blocks=st.integers(1, 40),
    offset=st.sampled_from([0, 0, 3]),
    interleaved=st.booleans(),
)
def test_settling_in_pieces_and_forgetting_finds_what_one_check_finds(
    seed: int, blocks: int, offset: int, interleaved: bool
) -> None:
    # A seeded generator rather than hypothesis' own randoms: those lean on 0.0, which would take
    # every fault branch at once; the drawn seed, size and mode still shrink.
    rng = random.Random(seed)
    run = make_run(rng, blocks, offset)
    reference = whole_run(run)
    expected = legacy_check(reference, run.chain)
    assert reference.check_against_chain(run.chain) == expected  # the one-shot form, same answer

    correlator = windowed(run, rng, interleaved=interleaved)
    found = correlator.findings()
    assert found == expected, _difference(found, expected)
    assert correlator.findings() == found  # findings() changes nothing
    assert counters(correlator) == counters(reference)


def _difference(found: FeedChainFindings, expected: FeedChainFindings) -> str:
    a, b = found.as_dict(), expected.as_dict()
    return "; ".join(f"{key}: {a[key]!r} != {b[key]!r}" for key in a if a[key] != b[key])


def test_a_random_run_with_every_fault_is_not_trivially_clean() -> None:
    """The generator does produce every kind of finding (else the property proves little)."""
    kinds: set[str] = set()
    rng = random.Random(5)
    for _ in range(60):
        run = make_run(rng, 30, rng.choice([0, 3]))
        findings = legacy_check(whole_run(run), run.chain).as_dict()
        kinds |= {key for key, value in findings.items() if isinstance(value, int) and value}
    assert kinds >= {
        "missing_from_feed",
        "duplicated_in_feed",
        "feed_only",
        "order_violations",
        "hash_mismatches",
        "messages_spanning_blocks",
        "blocks_missing_from_feed",
        "messages_unverified",
    }


# ------------------------------------------------------------------------------------- bounded memory


def test_a_long_run_settled_as_it_goes_holds_little_and_finds_what_one_check_finds() -> None:
    """3,000 blocks: rows registered as sent, messages arriving with their block, blocks settled five
    blocks late, rows forgotten once settled. Some messages are dropped or carry a hash no block has."""
    rng = random.Random(11)
    windowed_ = Correlator()
    windowed_.HORIZON_BLOCKS = 64  # type: ignore[misc]  # resolve open messages sooner, to see it bounded
    windowed_.RETIRED_WINDOW = 128  # type: ignore[misc]
    reference = Correlator()
    chain: list[tuple[int, str, list[str]]] = []
    row = 0
    rows_of_block: list[int] = []  # first row after each block's rows
    lag = 5
    peak_rows = peak_open = 0
    for number in range(1, 3_001):
        txs = ["0x" + rng.randbytes(32).hex() for _ in range(rng.choice([0, 2, 4, 6]))]
        for tx in txs:
            for correlator in (windowed_, reference):
                correlator.register(tx, row, row * MS)
            row += 1
        rows_of_block.append(row)
        block_hash = "0x" + rng.randbytes(32).hex()
        chain.append((number, block_hash, txs))
        draw = rng.random()
        if draw >= 0.02:  # 2 % dropped
            feed_hash = "0x" + rng.randbytes(32).hex() if draw < 0.07 else block_hash
            message = Msg(number, feed_hash, tuple(txs))
            for correlator in (windowed_, reference):
                correlator.on_message(message, number * MS)  # type: ignore[arg-type]
        if number > lag:
            windowed_.settle([chain[number - lag - 1]])
            windowed_.forget_before(rows_of_block[number - lag - 1])
        peak_rows = max(peak_rows, len(windowed_._rows))
        assert windowed_._check is None or len(windowed_._check.open) < 2 * 64
        peak_open = max(peak_open, len(windowed_.block_hashes))
    windowed_.settle(chain[-lag:])

    expected = legacy_check(reference, chain)
    assert expected.hash_mismatches > 100 and expected.missing_from_feed > 100  # the faults show
    assert windowed_.findings() == expected
    assert counters(windowed_) == counters(reference)

    check = windowed_._check
    assert check is not None
    assert peak_rows <= 6 * (lag + 1) and peak_open <= 64 + lag + 2
    assert len(windowed_.intended_ns) <= 2_048
    for column in (
        windowed_.arrival_ns,
        windowed_.sequence,
        windowed_.position,
        windowed_.appearances,
        windowed_._keys,
        windowed_._placed,
    ):
        assert len(column) == len(windowed_.intended_ns)
    assert len(windowed_.message_arrival_ns) <= 64 + 1 and len(windowed_.block_hashes) <= 64 + 1
    assert len(check.open) <= 64 + 1 and len(check.unsettled) <= 64 + 1
    assert len(windowed_._retired) <= 2 * 128 and not windowed_._pending
    assert len(reference.intended_ns) >= row  # what the unbounded one holds, for scale


# ------------------------------------------------------------------------------------------- the API


def hashes(count: int, seed: int = 1) -> list[str]:
    rng = random.Random(seed)
    return ["0x" + rng.randbytes(32).hex() for _ in range(count)]


def test_forgotten_rows_leave_the_columns_and_the_counts_stay_whole() -> None:
    txs = hashes(6)
    correlator = Correlator()
    for row, tx in enumerate(txs):
        correlator.register(tx, row, row * MS)
    correlator.on_message(Msg(1, "0x" + "11" * 32, tuple(txs[:4])), 10 * MS)  # type: ignore[arg-type]
    correlator.settle([(1, "0x" + "11" * 32, txs[:3])])  # txs[3] carried, never included
    correlator.forget_before(4)
    assert correlator.base == 4 and len(correlator._rows) == 2
    assert correlator.row_of(txs[0]) is None and correlator.row_of(txs[5]) == 5
    assert correlator.feed_latency_ns(0) is None and correlator.feed_latency_ns(4) is None
    correlator.on_message(Msg(2, None, (txs[4],)), 20 * MS)  # type: ignore[arg-type]
    assert correlator.feed_latency_ns(4) == 16 * MS and correlator.arrival_ns[0] == 20 * MS
    summary = correlator.summary()
    assert summary["registered"] == 6 and summary["matched"] == 5 and summary["unmatched"] == 1
    assert summary["latency_count"] == 1  # latencies cover the rows held
    findings = correlator.findings()
    assert findings.feed_only == 2  # txs[3], forgotten; txs[4], held and in no settled block
    assert [item["row"] for item in findings.first_feed_only] == [3, 4]
    assert findings.included == 3 and findings.in_feed == 3 and findings.messages_unverified == 1
    with pytest.raises(ValueError, match="below base 4"):
        correlator.register(hashes(1, seed=9)[0], 2, 0)


def test_forgetting_past_the_rows_held_moves_the_base_there() -> None:
    correlator = Correlator()
    correlator.register(hashes(1)[0], 0, 5)
    correlator.forget_before(5_000)
    assert correlator.base == 5_000 and len(correlator.intended_ns) == 0 and correlator.registered == 1
    tx = hashes(1, seed=2)[0]
    correlator.register(tx, 5_003, 7)
    correlator.on_message(Msg(1, None, (tx,)), 10)  # type: ignore[arg-type]
    assert correlator.feed_latency_ns(5_003) == 3 and correlator.feed_latencies() == [3e-9]
    correlator.forget_before(10)  # below the base: nothing to do
    assert correlator.base == 5_000


def test_settle_takes_blocks_in_ascending_order_once() -> None:
    correlator = Correlator()
    correlator.settle([(3, "0x" + "33" * 32, [])])
    with pytest.raises(ValueError, match="ascending number, each once"):
        correlator.settle([(3, "0x" + "33" * 32, [])])
    with pytest.raises(RuntimeError, match="use findings"):
        correlator.check_against_chain([])


def test_resolved_messages_are_dropped_and_a_repeat_is_still_a_repeat() -> None:
    txs = hashes(2)
    correlator = Correlator()
    for row, tx in enumerate(txs):
        correlator.register(tx, row, 0)
    first = Msg(7, "0x" + "77" * 32, tuple(txs))
    correlator.on_message(first, 1)  # type: ignore[arg-type]
    correlator.on_message(Msg(8, "0x" + "88" * 32, ()), 2)  # type: ignore[arg-type]
    correlator.settle([(7, "0x" + "77" * 32, txs)])
    assert correlator.block_hashes == {8: "0x" + "88" * 32} and correlator.message_arrival_ns == {8: 2}
    correlator.on_message(first, 3)  # type: ignore[arg-type]  # served again after a reconnect
    assert correlator.repeated_messages == 1 and 7 not in correlator.block_hashes
    findings = correlator.findings()
    assert findings.duplicated_in_feed == 2 and findings.messages_checked == 1
    assert findings.messages_unverified == 1  # sequence 8: no settled block places it yet


def test_a_message_naming_a_later_block_waits_for_it_then_the_horizon_resolves_it() -> None:
    """A message without our transactions is placed by its block hash before its sequence number, so
    one whose sequence number's block is settled stays open until a block with its hash is; after
    HORIZON_BLOCKS more blocks it is taken as placed by its sequence number (the documented bound)."""

    def block(number: int) -> tuple[int, str, list[str]]:
        return (number, f"0x{number:064x}", [])

    def run(horizon: int) -> FeedChainFindings:
        correlator = Correlator()
        correlator.HORIZON_BLOCKS = horizon  # type: ignore[misc]
        correlator.on_message(Msg(1, f"0x{5:064x}", ()), 1)  # type: ignore[arg-type]  # names block 5
        for number in range(1, 7):
            correlator.settle([block(number)])
        return correlator.findings()

    exact = Correlator()
    exact.on_message(Msg(1, f"0x{5:064x}", ()), 1)  # type: ignore[arg-type]
    expected = exact.check_against_chain([block(n) for n in range(1, 7)])
    assert expected.hash_mismatches == 0 and expected.messages_checked == 1
    assert run(horizon=8) == expected
    bounded = run(horizon=2)
    assert bounded.hash_mismatches == 1 and bounded.first_hash_mismatches[0]["block"] == 1


def test_columns_carry_the_window_across_a_process_boundary() -> None:
    txs = hashes(5)
    correlator = Correlator()
    for row, tx in enumerate(txs):
        correlator.register(tx, row, row)
    correlator.on_message(Msg(1, "0x" + "11" * 32, tuple(txs[:3])), 100)  # type: ignore[arg-type]
    correlator.on_message(Msg(2, "0x" + "22" * 32, tuple(txs[3:])), 200)  # type: ignore[arg-type]
    correlator.settle([(1, "0x" + "11" * 32, txs[:3])])
    correlator.forget_before(3)
    copy = Correlator.from_columns(correlator.to_columns())
    assert copy.base == 3 and copy.registered == 5 and copy.row_of(txs[4]) == 4
    assert copy.feed_latencies() == correlator.feed_latencies() == [197e-9, 196e-9]
    assert counters(copy) == counters(correlator)
    assert copy.block_hashes == {2: "0x" + "22" * 32}
    with pytest.raises(RuntimeError):
        copy.check_against_chain([])
    copy.settle([(2, "0x" + "22" * 32, txs[3:])])
    assert copy.findings().ok and copy.findings().included == 2
    assert math.isnan(Correlator.from_columns(Correlator().to_columns()).summary()["latency_p50"])


def test_findings_before_any_settle_is_the_one_shot_check_over_no_blocks() -> None:
    tx = hashes(1)[0]
    correlator = Correlator()
    correlator.register(tx, 0, 0)
    correlator.on_message(Msg(1, None, (tx,)), 1)  # type: ignore[arg-type]
    early = correlator.findings()
    assert early.feed_only == 1 and early.messages_unverified == 1
    assert correlator.check_against_chain([(1, "0x" + "11" * 32, [tx])]).ok is False  # still allowed
