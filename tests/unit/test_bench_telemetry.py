"""The telemetry benchmark's row reading: the rows it streams come from the synthetic run's own log.

An edge's report carries a digest, not its rows, so the benchmark streams ``SyntheticRun.txs`` and
its feed columns. These tests run its streaming, its check of what was stored and its hive-memory
part on a few thousand rows, and the memory part's fresh process once, as ``main`` starts it.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pytest_gashammer.telemetry.parquet import load
from pytest_gashammer.telemetry.stream import DEFAULT_FRAME_BYTES
from tests.unit.test_telemetry_synthetic import SyntheticRun, synthetic_report

_PATH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_telemetry.py"
_SPEC = importlib.util.spec_from_file_location("bench_telemetry", _PATH)
assert _SPEC is not None and _SPEC.loader is not None
bench = importlib.util.module_from_spec(_SPEC)
sys.modules["bench_telemetry"] = bench
_SPEC.loader.exec_module(bench)

ROWS = 3_000


@pytest.fixture(scope="module")
def run() -> SyntheticRun:
    return synthetic_report(ROWS)


def stored_states(directory: Path) -> dict[str, int]:
    table = load(directory, tables=("transactions",), columns={"transactions": ["state"]}).transactions
    states = table.column("state").to_pylist()
    return {state: states.count(state) for state in set(states)}


def test_a_streamed_run_stores_every_row_once_as_the_digest_counts_it(
    run: SyntheticRun, tmp_path: Path
) -> None:
    figures = bench.stream(run, tmp_path / "run")
    bench.check_stored(tmp_path / "run", ROWS)
    # Several polls, each with a transactions frame, within the frame size the edge aims for.
    assert figures["frames"] > 3
    assert 0 < figures["max_frame"] <= DEFAULT_FRAME_BYTES
    assert figures["edge"] > 0 and figures["hive"] > 0
    # The rows streamed are the run's own: their final states are what the report's digest counted.
    digest = run.report.digest
    assert digest.rows == ROWS and digest.rejected > 0 and digest.lost > 0
    assert stored_states(tmp_path / "run") == {
        "included": digest.included,
        "lost": digest.lost,
        "rejected": digest.rejected,
    }


def test_a_store_with_rows_missing_or_extra_is_refused(run: SyntheticRun, tmp_path: Path) -> None:
    bench.stream(run, tmp_path / "run")
    for rows in (ROWS - 1, ROWS + 1):
        with pytest.raises(RuntimeError, match=f"holds {ROWS} transaction rows .* of the run's {rows}"):
            bench.check_stored(tmp_path / "run", rows)


def test_hive_memory_writes_the_cursors_frames_again_and_again(tmp_path: Path) -> None:
    lines = list(bench.hive_memory(tmp_path / "memory", 4_000, batch_rows=2_000))
    assert [label for label, _ in lines] == ["start", "4000", "seconds"]
    assert all(float(value) > 0 for _, value in lines[:2])
    stored = load(tmp_path / "memory", tables=("transactions",), columns={"transactions": ["row"]})
    rows = np.asarray(stored.transactions.column("row").to_numpy())
    # Every row of the 2,000-row run, written twice.
    assert np.array_equal(np.bincount(rows), np.full(2_000, 2))


def test_the_memory_process_runs_this_modules_measurement(tmp_path: Path) -> None:
    # As main starts it, with the fewest rows: one replay of the 10,000-row run's frames.
    completed = subprocess.run(
        [sys.executable, "-c", bench.MEMORY_CHILD, str(_PATH.parent), str(tmp_path / "memory"), "1"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=_PATH.parents[1],
    )
    assert completed.returncode == 0, completed.stderr
    labels = [line.split()[0] for line in completed.stdout.splitlines()]
    assert labels == ["start", "10000", "seconds"]
