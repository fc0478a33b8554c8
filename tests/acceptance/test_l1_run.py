"""Marked tests on the embedded devnet with its L1, as a user writes them: the run's L2 blocks are
posted by the devnet's batch poster, read back by the L1 monitor, and judged by the L1 invariants;
the figures reach the terminal, the Parquet tables and the HTML report. Each of the poster's faults
fails the invariant it names, with the evidence, and the healthy devnet raises no alarm.
"""

from __future__ import annotations

import pytest

from tests.acceptance.l1_setup import needs_nitro_contracts

pytestmark = [needs_nitro_contracts, pytest.mark.usefixtures("no_new_anvil")]

HEALTHY = """
import pytest
from pytest_gashammer.vocabulary import L1_INVARIANT_NAMES

@pytest.mark.gashammer(gas_per_sec="1M", duration="6s", warmup=0, slo={"batch_lag_p99": "5s"})
def test_healthy(hammer):
    result = hammer.run()
    verdicts = {v.name: v for v in result.verdicts}
    for name in (*L1_INVARIANT_NAMES, "slo.batch_lag_p99"):
        assert verdicts[name].status == "passed", verdicts[name].describe()
    l1 = result.l1
    assert l1.batches >= 3 and l1.blocks_of_run > 5 and l1.blocks_posted == l1.blocks_of_run
    assert l1.batch_lag.count == l1.blocks_of_run and 0 < l1.batch_lag.p99 < 5
    assert l1.assertions >= 1 and l1.confirmations >= 1 and l1.bytes_per_batch > 0
    print("\\nL1-FIGURES", l1.batches, l1.blocks_of_run, round(l1.batch_lag.p50, 3), round(l1.batch_lag.p99, 3))
"""

FAULTY = """
import pytest
from pytest_gashammer.fault import DuplicateBatch, LateBatches, ReorderBatchTransactions, SkipBlocks, poster_fault

FAULTS = {
    "skip": (lambda: SkipBlocks(every=3), {"blocks_posted", "batch_contents"}, "L2 block"),
    "reorder": (lambda: ReorderBatchTransactions(every=3), {"batch_contents"}, "first difference at index"),
    "twice": (lambda: DuplicateBatch(every=3), {"batch_contents"}, "L2 block"),
    "late": (lambda: LateBatches(delay=3.0), {"slo.batch_lag_p99"}, "batch-posting lag p99"),
}

@pytest.mark.gashammer(gas_per_sec="1M", duration="4s", warmup=0, slo={"batch_lag_p99": "2s"})
@pytest.mark.parametrize("kind", list(FAULTS))
def test_fault(hammer, devnet, kind):
    make, caught_by, evidence = FAULTS[kind]
    with poster_fault(devnet.batch_poster, make()) as fault:
        result = hammer.run(check=False)
    assert fault.affected, f"{kind}: the fault never acted"
    failed = {v.name: v for v in result.verdicts if v.status == "failed"}
    assert set(failed) == caught_by, [v.describe() for v in failed.values()]
    for verdict in failed.values():
        print("\\nFAULT-" + kind, verdict.describe().splitlines()[0])
        assert evidence in verdict.describe(), verdict.describe()
"""


@pytest.mark.parametrize("edges", [[], ["-n", "2"]], ids=["in-process", "two-xdist-edges"])
def test_a_healthy_run_posts_maps_and_passes_every_l1_invariant(
    pytester: pytest.Pytester, edges: list[str]
) -> None:
    pytester.makepyfile(test_healthy=HEALTHY)
    telemetry = pytester.path / "telemetry"
    result = pytester.runpytest_subprocess(
        *edges, "-p", "no:cacheprovider", "-s", "--gashammer-batch-interval", "0.5",
        "--gashammer-parquet", str(telemetry), "--gashammer-report", str(pytester.path / "report.html"),
        timeout=300,
    )  # fmt: skip
    result.assert_outcomes(passed=1)
    printed = [] if edges else ["L1-FIGURES *"]  # a worker's prints do not reach the terminal
    result.stdout.fnmatch_lines([*printed, "*  L1 * batches, * of * blocks posted, lag p50 *"])
    import pyarrow.parquet as pq

    batches = pq.read_table(next(telemetry.rglob("batches.parquet"))).to_pylist()
    assertions = pq.read_table(next(telemetry.rglob("assertions.parquet"))).to_pylist()
    assert len(batches) >= 3 and assertions
    html = (pytester.path / "report.html").read_text()
    assert "Batch-posting lag" in html or "batch-posting lag" in html


def test_each_poster_fault_fails_the_invariant_it_names(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_faulty=FAULTY)
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "-s", "--gashammer-batch-interval", "0.5", timeout=300
    )
    result.assert_outcomes(passed=4)
    print("\n".join(line for line in result.outlines if line.startswith("FAULT-")))
