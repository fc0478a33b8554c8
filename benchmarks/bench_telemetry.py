"""What telemetry costs on a run of a million transactions: streaming, Parquet, the report, hive memory.

Run with ``python benchmarks/bench_telemetry.py [--rows 1000000] [--repeat 3]``.

The bars (a 2-core machine): writing a million-transaction run's Parquet under 10 s, rendering its
report under 10 s, and the hive's memory flat while telemetry streams (about the same RSS after
100k and after 1M rows). The script builds a synthetic edge report with realistic columns (the
tests' ``synthetic_report``: 1,000 tx/s for 1,000 s, a template mix, rejections, lost transactions,
sampled receipts, a feed) and measures:

1. edge side: ``TransactionCursor.poll`` once per simulated second (rows become final a few seconds
   after they were sent, as on a live edge), plus ``to_ipc_frames`` of each batch, per row;
2. hive side: decoding the frames and ``ParquetRunWriter.write_frame``, then ``end_run`` and
   ``close``: the time to get the run's Parquet on disk, and its size;
3. the report: ``render_report`` of that directory (reading the Parquet included), in a fresh
   process so the matplotlib import is counted;
4. hive memory: in a fresh process, only the hive's part (frames in, Parquet out) for 1M rows,
   printing RSS after 100k and after 1M rows.

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
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

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

MEMORY_CHILD = """
import sys, time
from pathlib import Path
from pytest_gashammer.telemetry.parquet import ParquetRunWriter, RunInfo
from pytest_gashammer.telemetry.stream import ClockMap, TransactionCursor, to_ipc_frames
from tests.unit.test_telemetry_synthetic import synthetic_report

def rss_mb():
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")

directory, total = sys.argv[1], int(sys.argv[2])
run = synthetic_report(10_000, seed=3)
report = run.report
batch = TransactionCursor(report.txs, run_id="memory", edge_id="e0",
                          clock=ClockMap.local(report.clock_origin_ns, report.wall_origin_ns),
                          templates=report.templates, sender_addresses=report.sender_addresses,
                          receipt_stride=run.receipt_stride, feed=report.feed_columns,
                          phases=run.plan.phases).poll(final=True)
frames = to_ipc_frames(batch)  # what 10 s of a 1k tx/s edge sends; replayed as the stream
del run, report, batch
writer = ParquetRunWriter(directory)
writer.begin_run(RunInfo.for_plan({"name": "memory", "seed": 1, "target_gas_per_sec": 1e8, "phases": []},
                                  run_id="memory"))
print(f"start {rss_mb():.1f}", flush=True)
rows = 0
started = time.perf_counter()
while rows < total:
    for frame in frames:
        writer.write_frame("transactions", frame)
    rows += 10_000
    if rows in (100_000, 1_000_000) or rows == total:
        print(f"{rows} {rss_mb():.1f}", flush=True)
writer.end_run("memory", status="finished")
writer.close()
print(f"seconds {time.perf_counter() - started:.2f}", flush=True)
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


def stream(run: SyntheticRun, directory: Path) -> dict[str, float]:
    """One streamed run into ``directory``: edge-side and hive-side seconds."""
    report = run.report
    clock = ClockMap.local(report.clock_origin_ns, report.wall_origin_ns)
    log = GrowingLog(report.txs)
    intended = report.txs.intended_ns
    cursor = TransactionCursor(
        log,  # type: ignore[arg-type]
        run_id="bench",
        edge_id=report.edge_id,
        clock=clock,
        templates=report.templates,
        sender_addresses=report.sender_addresses,
        receipt_stride=run.receipt_stride,
        feed=report.feed_columns,
        phases=run.plan.phases,
    )
    blocks = BlockCursor(report.blocks, run_id="bench", edge_id=report.edge_id, clock=clock)
    last = max(report.txs.included_ns) if len(report.txs) else report.clock_origin_ns
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


def median_best(values: list[float]) -> str:
    return f"median {statistics.median(values):6.2f} s   best {min(values):6.2f} s"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
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
        stored = load(directory, tables=("transactions",), columns={"transactions": ["state"]}).transactions
        assert stored.num_rows == arguments.rows, stored.num_rows
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

        print("\nhive memory while 1,000,000 rows stream through the writer (fresh process):")
        completed = subprocess.run(
            [sys.executable, "-c", MEMORY_CHILD, str(workdir / "memory"), "1000000"],
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
