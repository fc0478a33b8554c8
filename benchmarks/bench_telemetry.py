"""What telemetry costs on a run of a million transactions: streaming, Parquet, the report, hive memory.

Run with ``python benchmarks/bench_telemetry.py [--rows 1000000] [--repeat 3] [--memory-rows 1000000]``.

The bars (a 2-core machine): writing a million-transaction run's Parquet under 10 s, rendering its
report under 10 s, and the hive's memory flat while telemetry streams (about the same RSS after
100k and after 1M rows). The script builds a synthetic run with realistic columns (the tests'
``synthetic_report``: 1,000 tx/s for 1,000 s, a template mix, rejections, lost transactions,
sampled receipts, a feed). An edge's report carries only a digest of its rows, so the rows streamed
here are the synthetic run's own ``TxLog`` and feed columns (``SyntheticRun.txs`` and
``feed_columns``: what an edge holds until each row is final). It measures:

1. edge side: ``TransactionCursor.poll`` once per simulated second (rows become final a few seconds
   after they were sent, as on a live edge), plus ``to_ipc_frames`` of each batch, per row;
2. hive side: decoding the frames and ``ParquetRunWriter.write_frame``, then ``end_run`` and
   ``close``: the time to get the run's Parquet on disk, and its size (every row is checked to be
   stored exactly once);
3. the report: ``render_report`` of that directory (reading the Parquet included), in a fresh
   process so the matplotlib import is counted;
4. hive memory: in a fresh process, only the hive's part (frames in, Parquet out) for
   ``--memory-rows`` rows (1M), printing RSS after 100k and after 1M rows.

Each timing is repeated ``--repeat`` times; the median and best are printed. It reports, never gates.
"""

from __future__ import annotations

import argparse
import bisect
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

from pytest_gashammer.telemetry.parquet import ParquetRunWriter, RunInfo, load  # noqa: E402
from pytest_gashammer.telemetry.stream import (  # noqa: E402
    BlockCursor,
    ClockMap,
    TransactionCursor,
    events_batch,
    feed_events,
    to_ipc_frames,
)
from tests.unit.test_telemetry_synthetic import SyntheticRun, synthetic_report  # noqa: E402

S = 1_000_000_000

#: The hive-memory measurement, in a fresh process so that its RSS is the hive's part alone.
MEMORY_CHILD = """
import sys
sys.path.insert(0, sys.argv[1])
from bench_telemetry import hive_memory
for label, value in hive_memory(sys.argv[2], int(sys.argv[3])):
    print(label, value, flush=True)
"""

REPORT_CHILD = """
import sys, time
started = time.perf_counter()
from pytest_gashammer.report.html import render_report
render_report(sys.argv[1], sys.argv[2])
print(f"{time.perf_counter() - started:.3f}")
"""


class GrowingLog:
    """A finished log seen as a live edge sees it: only rows whose intended time has come exist.

    The cursor looks at ``len(log)`` for new rows, so it pays for rows as they are appended, as on
    a live edge (a complete 1M-row log handed over at once would make every poll re-check the rows
    that are still in the future).
    """

    def __init__(self, log: Any) -> None:
        self._log = log
        self.visible = 0

    def __len__(self) -> int:
        return self.visible

    def __getattr__(self, name: str) -> Any:
        return getattr(self._log, name)


def transaction_cursor(run: SyntheticRun, log: Any, run_id: str) -> TransactionCursor:
    """The edge's cursor over ``log`` (``run.txs``, or a view of it): the report has no rows, only
    their digest, so the rows and feed columns are the ones the synthetic edge held."""
    report = run.report
    return TransactionCursor(
        log,
        run_id=run_id,
        edge_id=report.edge_id,
        clock=ClockMap.local(report.clock_origin_ns, report.wall_origin_ns),
        templates=report.templates,
        sender_addresses=report.sender_addresses,
        receipt_stride=run.receipt_stride,
        feed=run.feed_columns,
        phases=run.plan.phases,
    )


def stream(run: SyntheticRun, directory: Path) -> dict[str, float]:
    """One streamed run into ``directory``: edge-side and hive-side seconds, frames and the largest."""
    report = run.report
    clock = ClockMap.local(report.clock_origin_ns, report.wall_origin_ns)
    log = GrowingLog(run.txs)
    intended = run.txs.intended_ns
    cursor = transaction_cursor(run, log, "bench")
    blocks = BlockCursor(report.blocks, run_id="bench", edge_id=report.edge_id, clock=clock)
    last = max(run.txs.included_ns) if len(run.txs) else report.clock_origin_ns
    frames: list[tuple[str, bytes]] = []
    # Edge side: a poll every simulated second; the synthetic log is complete, so what a poll emits
    # is what a live edge would emit at that moment (rows older than the grace period).
    edge_started = time.perf_counter()
    now = report.clock_origin_ns
    while True:
        now += S
        final = now > last + 3 * S
        log.visible = bisect.bisect_right(intended, now)
        for table, batch in (
            ("blocks", blocks.poll()),
            ("transactions", cursor.poll(now_ns=now, final=final)),
        ):
            if batch is not None:
                frames.extend((table, frame) for frame in to_ipc_frames(batch))
        if final:
            break
    edge_seconds = time.perf_counter() - edge_started

    hive_started = time.perf_counter()
    writer = ParquetRunWriter(directory)
    info = RunInfo.for_plan(run.plan, run_id="bench", test_nodeid="bench::million", chain_id=412346)
    writer.begin_run(info)
    writer.set_run_origin("bench", report.wall_origin_ns)
    writer.register_edge("bench", report.edge_id, host=report.host, clock=clock, target_share=1.0)
    for table, frame in frames:
        writer.write_frame(table, frame)
    writer.write("events", events_batch("bench", feed_events(report.feed_events, edge_id="e0", clock=clock)))
    writer.end_run("bench", result=run.result)
    writer.close()
    hive_seconds = time.perf_counter() - hive_started
    return {
        "edge": edge_seconds,
        "hive": hive_seconds,
        "frames": len(frames),
        "max_frame": max(len(frame) for _, frame in frames),
    }


def check_stored(directory: Path, rows: int) -> None:
    """``RuntimeError`` unless the run's Parquet holds each of its ``rows`` transactions exactly once:
    a figure for writing part of the run would be wrong without saying so."""
    stored = load(directory, tables=("transactions",), columns={"transactions": ["row"]}).transactions
    numbers = np.sort(np.asarray(stored.column("row").to_numpy(), dtype=np.int64))
    if not np.array_equal(numbers, np.arange(rows)):
        raise RuntimeError(
            f"the Parquet holds {numbers.size} transaction rows ({np.unique(numbers).size} distinct) "
            f"of the run's {rows}"
        )


def rss_mb() -> float:
    """This process's resident set size in MB (Linux ``/proc``; NaN elsewhere)."""
    try:
        lines = Path("/proc/self/status").read_text().splitlines()
    except OSError:
        return float("nan")
    for line in lines:
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def hive_memory(directory: str | Path, total: int, batch_rows: int = 10_000) -> Iterator[tuple[str, str]]:
    """The hive's part alone: ``total`` transaction rows through a ``ParquetRunWriter``, yielding
    ``("start", rss)``, ``(rows, rss)`` after 100k, after 1M and at the end, then ``("seconds", s)``.

    The frames are those of a synthetic run of ``batch_rows`` rows (about 10 s of a 1k tx/s edge,
    made by the edge's cursor from the run's own rows), written again and again as the stream.
    """
    run = synthetic_report(batch_rows, seed=3)
    batch = transaction_cursor(run, run.txs, "memory").poll(final=True)
    frames = to_ipc_frames(batch) if batch is not None else []
    if batch is None or batch.num_rows != batch_rows:
        raise RuntimeError(
            f"the cursor emitted {0 if batch is None else batch.num_rows} of {batch_rows} rows"
        )
    del run, batch
    writer = ParquetRunWriter(directory)
    plan = {"name": "memory", "seed": 1, "target_gas_per_sec": 1e8, "phases": []}
    writer.begin_run(RunInfo.for_plan(plan, run_id="memory"))
    yield "start", f"{rss_mb():.1f}"
    rows = 0
    started = time.perf_counter()
    while rows < total:
        for frame in frames:
            writer.write_frame("transactions", frame)
        rows += batch_rows
        if rows in (100_000, 1_000_000) or rows >= total:
            yield str(rows), f"{rss_mb():.1f}"
    writer.end_run("memory", status="finished")
    writer.close()
    yield "seconds", f"{time.perf_counter() - started:.2f}"


def median_best(values: list[float]) -> str:
    return f"median {statistics.median(values):6.2f} s   best {min(values):6.2f} s"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--memory-rows",
        type=int,
        default=1_000_000,
        help="rows through the hive in the memory part (1,000,000)",
    )
    arguments = parser.parse_args()
    repo = Path(__file__).resolve().parent.parent

    print(f"synthesizing a run of {arguments.rows:,} transactions ...", flush=True)
    started = time.perf_counter()
    run = synthetic_report(arguments.rows)
    print(f"  done in {time.perf_counter() - started:.1f} s (not part of the figures)\n")

    workdir = Path(tempfile.mkdtemp(prefix="gashammer-bench-"))
    try:
        edge, hive, total, render = [], [], [], []
        for attempt in range(arguments.repeat):
            directory = workdir / f"run{attempt}"
            figures = stream(run, directory)
            edge.append(figures["edge"])
            hive.append(figures["hive"])
            total.append(figures["edge"] + figures["hive"])
            completed = subprocess.run(
                [sys.executable, "-c", REPORT_CHILD, str(directory), str(directory / "report.html")],
                capture_output=True,
                text=True,
                check=True,
                cwd=repo,
            )
            render.append(float(completed.stdout.strip().splitlines()[-1]))
        directory = workdir / "run0"
        size = sum(path.stat().st_size for path in directory.rglob("*.parquet"))
        check_stored(directory, arguments.rows)
        rows = arguments.rows
        print(f"Parquet of a {rows:,}-transaction run (streamed, {figures['frames']:,} IPC frames, largest "
              f"{figures['max_frame'] / 1024:.0f} KiB):")  # fmt: skip
        print(f"  edge: cursor polls + IPC frames  {median_best(edge)}   "
              f"({statistics.median(edge) / rows * 1e6:.2f} µs per row)")  # fmt: skip
        print(f"  hive: decode + write + close     {median_best(hive)}   "
              f"({statistics.median(hive) / rows * 1e6:.2f} µs per row)")  # fmt: skip
        print(f"  total                            {median_best(total)}")
        print(f"  on disk: {size / 1e6:.1f} MB ({size / rows:.1f} bytes per transaction, zstd)")
        report_size = (directory / "report.html").stat().st_size
        print(f"report (fresh process, matplotlib import included): {median_best(render)}   "
              f"({report_size / 1e6:.2f} MB HTML)")  # fmt: skip

        print(
            f"\nhive memory while {arguments.memory_rows:,} rows stream through the writer (fresh process):"
        )
        completed = subprocess.run(
            [
                sys.executable,
                "-c",
                MEMORY_CHILD,
                str(Path(__file__).resolve().parent),
                str(workdir / "memory"),
                str(arguments.memory_rows),
            ],
            capture_output=True,
            text=True,
            check=True,
            cwd=repo,
        )
        for line in completed.stdout.splitlines():
            label, value = line.split()
            if label == "start":
                print(f"  RSS before streaming:      {float(value):7.1f} MB")
            elif label == "seconds":
                print(f"  streamed in {float(value):.2f} s")
            else:
                print(f"  RSS after {int(label):>9,} rows: {float(value):7.1f} MB")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
