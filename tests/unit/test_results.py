"""What a run returns: latency statistics, verdicts and RunResult."""

from __future__ import annotations

import math
import random
import re

import pytest

from pytest_gashammer.results import COUNT_FIGURES, Latency, LatencyStats, RunResult, Verdict, receipts_line
from tests.unit.edge_reports import ALICE

# ----------------------------------------------------------------------------------------------
# LatencyStats


def test_latency_percentiles_use_the_nearest_rank() -> None:
    samples = [float(n) for n in range(1, 101)]
    random.Random(4).shuffle(samples)
    stats = LatencyStats.of(samples)
    assert (stats.p50, stats.p90, stats.p99, stats.max, stats.count) == (50.0, 90.0, 99.0, 100.0, 100)


@pytest.mark.parametrize(
    ("samples", "p50", "p90", "p99"),
    [
        ([4.0], 4.0, 4.0, 4.0),
        ([0.3, 0.1, 0.2], 0.2, 0.3, 0.3),
        ([10.0, 1.0], 1.0, 10.0, 10.0),
        ([float(n) for n in range(10, 0, -1)], 5.0, 9.0, 10.0),
        ([1.0] * 98 + [50.0, 60.0], 1.0, 1.0, 50.0),
    ],
)
def test_latency_percentiles_on_small_samples(
    samples: list[float], p50: float, p90: float, p99: float
) -> None:
    stats = LatencyStats.of(samples)
    assert (stats.p50, stats.p90, stats.p99) == (p50, p90, p99)
    assert stats.max == max(samples)
    assert stats.count == len(samples)


def test_latency_of_nothing_is_nan_with_count_zero() -> None:
    stats = LatencyStats.of([])
    assert stats.count == 0
    assert all(math.isnan(value) for value in (stats.p50, stats.p90, stats.p99, stats.max))
    assert set(stats.as_dict()) == {"p50", "p90", "p99", "max", "count"}


def test_latency_of_does_not_reorder_the_callers_samples() -> None:
    samples = [3.0, 1.0, 2.0]
    LatencyStats.of(samples)
    assert samples == [3.0, 1.0, 2.0]


# ----------------------------------------------------------------------------------------------
# Verdict and RunResult


def test_verdict_describe_shows_status_name_summary_and_evidence() -> None:
    verdict = Verdict("inclusion", "failed", "2 lost", {"lost": ["0xaa", "0xbb"], "lost_count": 2})
    text = verdict.describe()
    assert text.splitlines()[0] == "[FAILED] inclusion: 2 lost"
    body = "\n".join(text.splitlines()[1:])
    assert "lost:" in body and "0xaa" in body and "0xbb" in body
    assert re.search(r"lost_count: 2\b", body)


def test_verdict_describe_truncates_long_evidence_to_ten_items() -> None:
    items = [f"tx-{n:02d}" for n in range(25)]
    text = Verdict("inclusion", "failed", "lost", {"lost": items}).describe()
    assert all(item in text for item in items[:10])
    assert not any(item in text for item in items[10:])
    # Says how much was left out (15 more, or 25 in all).
    assert re.search(r"\b(15|25)\b", text)


def test_verdict_describe_keeps_exactly_ten_items_whole() -> None:
    items = tuple(f"tx-{n:02d}" for n in range(10))
    text = Verdict("inclusion", "failed", "lost", {"lost": items}).describe()
    assert all(item in text for item in items)
    assert "..." not in text


@pytest.mark.parametrize(("status", "passed"), [("passed", True), ("inconclusive", True), ("failed", False)])
def test_only_a_failed_verdict_fails(status: str, passed: bool) -> None:
    assert Verdict("x", status, "s").passed is passed  # type: ignore[arg-type]


def run_result(verdicts: list[Verdict]) -> RunResult:
    stats = LatencyStats.of([0.1, 0.2])
    return RunResult(
        name="tests/test_chain.py::test_sustain",
        seed=1234,
        target_gas_per_sec=2e6,
        offered_gas_per_sec=2e6,
        accepted_gas_per_sec=2e6,
        included_gas_per_sec=2e6,
        sent=10,
        accepted=10,
        rejected=0,
        included=10,
        lost=0,
        latency=Latency(accept=stats, inclusion=stats),
        errors={},
        verdicts=verdicts,
        duration=12.0,
        sustain_seconds=10.0,
        chain_id=412346,
        devnet_kind="embedded",
        node_version="anvil 1.7.1",
    )


def test_check_lists_every_failed_verdict_with_its_evidence() -> None:
    result = run_result(
        [
            Verdict("inclusion", "failed", "1 lost", {"lost": ["0xdead"]}),
            Verdict("no_duplicate_inclusion", "passed", "none"),
            Verdict("nonce_contiguity", "failed", "1 gap", {"gaps": [f"{ALICE} missing nonce(s) 3 below 4"]}),
            Verdict("receipt_status", "inconclusive", "no receipts"),
        ]
    )
    assert not result.passed
    assert [v.name for v in result.failed_verdicts] == ["inclusion", "nonce_contiguity"]
    with pytest.raises(AssertionError) as info:
        result.check()
    message = str(info.value)
    assert "'tests/test_chain.py::test_sustain'" in message
    assert "seed 1234" in message
    assert "2 invariant(s)" in message
    assert "[FAILED] inclusion: 1 lost" in message
    assert "0xdead" in message
    assert "[FAILED] nonce_contiguity" in message
    assert f"{ALICE} missing nonce(s) 3" in message
    assert "no_duplicate_inclusion" not in message
    assert "receipt_status" not in message


def test_check_passes_when_every_verdict_passed_or_is_inconclusive() -> None:
    result = run_result(
        [Verdict("inclusion", "passed", "ok"), Verdict("receipt_status", "inconclusive", "no receipts")]
    )
    assert result.passed
    result.check()


def test_verdict_lookup_by_name() -> None:
    result = run_result([Verdict("inclusion", "passed", "ok")])
    assert result.verdict("inclusion").summary == "ok"
    with pytest.raises(KeyError, match="inclusion"):
        result.verdict("nonce_contiguity")


def test_a_result_travels_as_plain_data_and_comes_back_equal() -> None:
    original = run_result([Verdict("inclusion", "failed", "1 lost", {"lost": ["0xdead"]})])
    data = original.to_dict()
    assert isinstance(data["latency"]["inclusion"], dict)
    assert isinstance(data["verdicts"][0], dict)
    again = RunResult.from_dict(data)
    assert again == original
    assert again.latency.inclusion == original.latency.inclusion


def test_stored_runs_get_the_same_statistics_from_a_sorted_array() -> None:
    np = pytest.importorskip("numpy")
    samples = [random.Random(7).random() for _ in range(1_001)]
    from_array = LatencyStats.of_sorted(np.sort(np.array(samples)))
    assert from_array == LatencyStats.of(samples)
    assert isinstance(from_array.p99, float) and isinstance(from_array.count, int)
    assert LatencyStats.of_sorted(np.array([])).count == 0


@pytest.mark.parametrize(
    ("checked", "expected", "via", "line"),
    [
        (137, 137, "eth_getBlockReceipts", "checked 137 of 137 via eth_getBlockReceipts"),
        (66, 137, "eth_getTransactionReceipt", "checked 66 of 137 (48%) via eth_getTransactionReceipt"),
        (2000, 2000, "", "checked 2,000 of 2,000"),
        (0, 0, "", "none expected"),
    ],
)
def test_receipt_coverage_reads_checked_x_of_y(checked: int, expected: int, via: str, line: str) -> None:
    assert receipts_line(checked, expected, via) == line


def test_receipt_figures_are_not_transaction_counts() -> None:
    assert {"receipts_checked", "receipts_expected"}.isdisjoint(f.name for f in COUNT_FIGURES)
    assert {f.unit for f in COUNT_FIGURES} == {"transactions", "blocks"}
