"""The run digest: what an edge keeps of its final rows gives the same verdicts and figures as the rows."""

from __future__ import annotations

import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_gashammer.chain.keccak import keccak256
from pytest_gashammer.edge.inclusion import ForgottenHashes
from pytest_gashammer.oracle.invariants import evaluate
from pytest_gashammer.results import LatencyStats
from pytest_gashammer.telemetry.digest import (
    BUCKET_FIELDS,
    EVIDENCE_LIMIT,
    FILLER,
    SKETCH_RELATIVE_ACCURACY,
    TEMPLATE_FIELDS,
    LatencySketch,
    NonceRanges,
    RunDigest,
)
from pytest_gashammer.telemetry.records import EdgeReport, TxLog
from tests.unit.edge_reports import ALICE, BOB, GAP_FILLER, ORIGIN, SUSTAIN, Log, report_of

SETTINGS = {
    "origin_ns": ORIGIN,
    "sustain": SUSTAIN,
    "inclusion_timeout": 2.0,
    "templates": ("transfer", "revert"),
    "expected_status": (1, 0),
    "gas_estimate": (21_000.0, 30_000.0),
    "gas_tolerance": (0.0, 0.1),
}


# ------------------------------------------------------------------------------------ latency sketch


def test_a_sketch_is_exact_up_to_its_limit() -> None:
    samples = np.random.default_rng(1).exponential(0.5, 5_000)
    sketch = LatencySketch(exact_limit=10_000)
    for part in np.array_split(samples, 7):
        sketch.add(part)
    assert sketch.exact
    assert sketch.stats() == LatencyStats.of(samples.tolist())


def test_past_its_limit_a_sketch_keeps_count_and_max_exact_and_percentiles_within_the_bound() -> None:
    samples = np.random.default_rng(2).lognormal(-1.0, 1.0, 50_000)
    sketch = LatencySketch(exact_limit=1_000)
    for part in np.array_split(samples, 50):
        sketch.add(part)
    assert not sketch.exact
    exact, got = LatencyStats.of(samples.tolist()), sketch.stats()
    assert (got.count, got.max) == (exact.count, exact.max)
    for name in ("p50", "p90", "p99"):
        assert getattr(got, name) == pytest.approx(getattr(exact, name), rel=SKETCH_RELATIVE_ACCURACY * 1.01)
    # Through the wire and back, the same figures.
    assert LatencySketch.from_data(sketch.to_data()).stats() == got


@pytest.mark.parametrize(
    "limits", [(10**6, 10**6), (100, 10**6), (100, 100)], ids=["exact", "mixed", "sketched"]
)
def test_merged_sketches_tell_what_one_sketch_of_all_samples_tells(limits: tuple[int, int]) -> None:
    rng = np.random.default_rng(3)
    first, second = rng.exponential(0.2, 3_000), rng.exponential(0.4, 2_000)
    a, b = LatencySketch(exact_limit=limits[0]), LatencySketch(exact_limit=limits[1])
    a.add(first)
    b.add(second)
    a.merge(LatencySketch.from_data(b.to_data()))
    exact, got = LatencyStats.of([*first.tolist(), *second.tolist()]), a.stats()
    assert (got.count, got.max) == (exact.count, exact.max)
    tolerance = 0 if limits == (10**6, 10**6) else SKETCH_RELATIVE_ACCURACY * 1.01
    assert got.p99 == pytest.approx(exact.p99, rel=tolerance)


def test_an_empty_sketch_says_nothing_was_measured() -> None:
    stats = LatencySketch().stats()
    assert stats.count == 0 and np.isnan(stats.p99)


# ------------------------------------------------------------------------------------------ nonces


@given(st.lists(st.integers(0, 60), max_size=80), st.integers(0, 10))
@settings(max_examples=200, deadline=None)
def test_nonce_ranges_agree_with_a_set_whatever_the_order(nonces: list[int], start: int) -> None:
    ranges = NonceRanges()
    for nonce in nonces:
        ranges.add(nonce)
    distinct = set(nonces)
    assert ranges.reused_count == len(nonces) - len(distinct)
    assert ranges.highest == (max(distinct) if distinct else -1)
    if distinct:
        expected = sorted(set(range(start, max(distinct) + 1)) - distinct)
        assert ranges.missing(start) == expected
        assert ranges.missing(start, foreign=expected[:1]) == expected[1:]
    # Contiguous nonces take one range each, however they arrived.
    assert all(low < high for low, high in ranges.ranges)
    assert all(
        earlier[1] < later[0] for earlier, later in zip(ranges.ranges, ranges.ranges[1:], strict=False)
    )


# ------------------------------------------------------------------------------------------ digests


def busy_log(seed: int, rows: int = 400) -> Log:
    """Rows of every kind: on time, late, lost, refused, reverted, gas off the model, nonce holes, fillers."""
    rng = random.Random(seed)
    log = Log()
    nonces = [0, 0]
    for index in range(rows):
        intended = index * 0.03
        sender = rng.randrange(2)
        nonce = nonces[sender]
        nonces[sender] += 1 if rng.random() > 0.02 else 2  # an occasional hole
        kind = rng.random()
        template = 1 if rng.random() < 0.2 else 0
        if kind < 0.05:
            log.add(intended=intended, sent=intended, rejected="nonce_too_low", sender=sender, nonce=nonce)
        elif kind < 0.08:
            log.add(intended=intended, sent=intended, accepted=intended + 0.01, sender=sender, nonce=nonce)
        elif kind < 0.1:
            log.add(intended=intended, template=GAP_FILLER, sent=intended, accepted=intended, included=intended + 1,
                    status=1, gas_used=21_000, sender=sender, nonce=nonce)  # fmt: skip
        else:
            latency = rng.choice([0.5, 1.0, 1.5, 3.0])  # some later than the 2 s timeout
            status = (1 - template) if rng.random() > 0.03 else template  # some unexpected statuses
            gas = (21_000 if template == 0 else 30_000) + (rng.random() < 0.03) * 5_000
            receipt = rng.random() > 0.1
            log.add(intended=intended, sent=intended, accepted=intended + 0.01, included=intended + latency,
                    status=status if receipt else None, gas_used=gas if receipt else None, template=template,
                    gas_planned=21_000 if template == 0 else 30_000, sender=sender, nonce=nonce)  # fmt: skip
    return log


def report_with(digest: RunDigest) -> EdgeReport:
    report = report_of(Log(), senders=(ALICE, BOB), starts=(0, 0), templates=("transfer", "revert"),
                       expected_status=(1, 0))  # fmt: skip
    report.digest = digest
    return report


def comparable(digest: RunDigest) -> dict[str, object]:
    data = digest.to_data()
    data["latency"] = {
        name: getattr(digest, f"{name}_latency").stats() for name in ("accept", "inclusion", "feed")
    }  # exact samples are kept in the order they came
    return data


@given(st.integers(0, 1000), st.lists(st.integers(1, 50), min_size=1, max_size=20))
@settings(max_examples=40, deadline=None)
def test_rows_digested_in_any_order_and_forgotten_give_the_same_digest(seed: int, cuts: list[int]) -> None:
    whole = RunDigest.of_log(busy_log(seed).txs, **SETTINGS)
    # The same rows, final in a shuffled order, digested in batches, the log forgotten as it goes.
    log = busy_log(seed).txs
    order = list(range(len(log)))
    random.Random(seed).shuffle(order)
    piecewise = RunDigest(**SETTINGS)
    done: set[int] = set()
    position = 0
    for cut in cuts * 10:
        batch = sorted(order[position : position + cut])
        position += cut
        if not batch:
            break
        piecewise.add(log, np.array(batch, dtype=np.int64))
        done.update(batch)
        first_open = next((row for row in range(log.base, len(log)) if row not in done), len(log))
        piecewise.absorb_order(log, first_open)
        log.forget_before(first_open)
    rest = sorted(set(range(len(log))) - done)
    piecewise.add(log, np.array(rest, dtype=np.int64))
    piecewise.absorb_order(log, len(log))
    piecewise.close_order()
    assert comparable(piecewise) == comparable(whole)
    # The verdicts too, evidence and all: they read the digest only.
    assert evaluate([report_with(piecewise)], 2.0) == evaluate([report_with(whole)], 2.0)


def test_the_digest_keeps_exact_counts_and_the_first_offenders_by_name() -> None:
    log = busy_log(7, rows=3_000)
    digest = RunDigest.of_log(log.txs, **SETTINGS)
    txs = log.txs
    lost = [
        txs.tx_hash(row)
        for row in range(len(txs))
        if txs.accepted_ns[row] != -1 and txs.included_ns[row] == -1
    ]
    assert digest.lost == len(lost) > EVIDENCE_LIMIT
    assert digest.lost_hashes == lost[:EVIDENCE_LIMIT]
    assert digest.tx_digest == "0x" + keccak256(bytes(txs.hashes)).hex()
    verdicts = {verdict.name: verdict for verdict in evaluate([report_with(digest)], 2.0)}
    assert verdicts["inclusion"].evidence["lost_count"] == len(lost)
    assert verdicts["inclusion"].evidence["lost"] == lost[:EVIDENCE_LIMIT]
    assert verdicts["nonce_contiguity"].status == "failed"  # the holes busy_log leaves


def test_the_digest_counts_by_template_what_it_counts_in_all() -> None:
    log = busy_log(11, rows=2_000)
    digest = RunDigest.of_log(log.txs, **SETTINGS)
    assert set(digest.by_template) == {"transfer", "revert", FILLER}
    totals = [
        sum(counts[field] for counts in digest.by_template.values()) for field in range(len(TEMPLATE_FIELDS))
    ]
    gas = sum(bucket[BUCKET_FIELDS.index("included_gas")] for bucket in digest.buckets.values())
    assert totals == [digest.sent, digest.accepted, digest.rejected, digest.included, gas]
    txs = log.txs
    fillers = sum(1 for row in range(len(txs)) if txs.template[row] == GAP_FILLER)
    assert digest.by_template[FILLER][TEMPLATE_FIELDS.index("sent")] == fillers > 0


def test_a_digest_crosses_the_wire_unchanged() -> None:
    digest = RunDigest.of_log(busy_log(3).txs, **SETTINGS)
    assert RunDigest.from_data(digest.to_data()).to_data() == digest.to_data()


# -------------------------------------------------------------------------------- forgotten hashes


def test_forgotten_hashes_find_what_was_remembered_and_nothing_else() -> None:
    rng = random.Random(5)
    remembered = [rng.randbytes(32) for _ in range(3_000)]
    forgotten = ForgottenHashes()
    for start in range(0, 3_000, 100):  # more batches than it keeps apart: they get merged
        forgotten.add(b"".join(remembered[start : start + 100]))
    others = [rng.randbytes(32) for _ in range(500)]
    probe = remembered[::97] + others
    assert forgotten.find(probe) == remembered[::97]
    assert forgotten.count == 3_000


def test_a_windowed_log_keeps_row_numbers() -> None:
    log = TxLog()
    for row in range(10):
        log.append(0, 0, row, 21_000, row, bytes([row]) * 32)
    log.forget_before(4)
    assert (len(log), log.held, log.base) == (10, 6, 4)
    assert log.tx_hash(4) == "0x" + "04" * 32 and log.nonce[log.at(7)] == 7
    assert log.append(0, 0, 10, 21_000, 10, bytes([10]) * 32) == 10
    log.truncate(8)
    assert (len(log), log.held) == (8, 4)
    log.forget_before(3)  # already forgotten: nothing happens
    assert log.base == 4
