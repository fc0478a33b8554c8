"""Hive benchmarks: how fast the hive ingests edge telemetry, and how closely edges start together.

    python benchmarks/bench_hive.py [--rows 1000000] [--edges 4] [--runs 3]

1. Ingest: a real execnet popen gateway (a separate process, as an xdist worker is) builds an edge
   report of ``--rows`` transaction rows and sends it in the hive protocol's frames; this process
   receives and rebuilds it. Figure: transaction rows (telemetry events) per second, from the first
   frame to the rebuilt report, and the largest frame.
2. Start skew: a hive with ``--edges`` popen gateway edges runs a short scenario on the embedded
   devnet ``--runs`` times; figure: the largest start skew (time from the first edge's start to the
   last edge's) per run.

Reports figures; never gates (exit code 0).
"""

from __future__ import annotations

import argparse
import os
import time

REMOTE = """
import time
from pytest_gashammer.hive import protocol
from pytest_gashammer.telemetry.records import EdgeReport, TxLog

rows = channel.receive()
log = TxLog()
for row in range(rows):
    log.append(row % 3, row % 64, row // 64, 21000, row * 1000, row.to_bytes(32, "big"))
    log.included_ns[row] = row * 1000 + 250_000_000
report = EdgeReport(edge_id="edge0", host="remote", clock_origin_ns=0, wall_origin_ns=0, txs=log)
channel.send("ready")
channel.receive()
for frame in protocol.report_frames("run1", report):
    channel.send(frame)
"""


def bench_ingest(rows: int) -> None:
    import execnet

    from pytest_gashammer.hive import protocol

    gateway = execnet.makegateway("popen")
    try:
        channel = gateway.remote_exec(REMOTE)
        channel.send(rows)
        assert channel.receive(timeout=300) == "ready"
        assembler = protocol.ReportAssembler()
        largest = 0
        frames = 0
        started = time.perf_counter()
        channel.send("go")
        while True:
            name, fields = channel.receive(timeout=300)
            frames += 1
            if name == protocol.BLOB:
                largest = max(largest, len(fields["data"]))
                assembler.add_chunk(fields["blob_id"], fields["index"], fields["count"], fields["data"])
            else:
                report = assembler.finish(fields["report"])
                break
        elapsed = time.perf_counter() - started
    finally:
        gateway.exit()
    assert len(report.txs) == rows
    print(
        f"ingest: {rows:,} transaction rows in {elapsed:.3f} s = {rows / elapsed:,.0f} events/s "
        f"({frames} frames, largest {largest / 1024:.0f} KiB)"
    )


def bench_skew(edges: int, runs: int) -> None:
    from pytest_gashammer.devnet.embedded import EmbeddedDevnet
    from pytest_gashammer.hive.controller import HiveController
    from pytest_gashammer.scenario.spec import compile_plan, parse_spec

    devnet = EmbeddedDevnet().start()
    hive = HiveController(lambda: devnet)
    try:
        hive.add_gateway_edges([f"{edges}*popen"])
        assert hive.wait_for_edges(edges, 60) == edges, "not every edge registered"
        skews = []
        for run in range(runs):
            spec = parse_spec({"gas_per_sec": "2M", "duration": "2s", "warmup": 0, "seed": 100 + run})
            result = hive.run(compile_plan(spec, name=f"skew{run}", seed=100 + run))
            assert len(result.edges) == edges, result.verdicts
            skews.append(max(edge.start_skew for edge in result.edges))
        print(
            f"start skew across {edges} edges, {runs} runs: max {max(skews) * 1000:.1f} ms "
            f"(per run: {', '.join(f'{s * 1000:.1f}' for s in skews)} ms)"
        )
    finally:
        hive.close()
        devnet.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--edges", type=int, default=4)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    print(f"machine: {os.cpu_count()} CPUs")
    bench_ingest(args.rows)
    bench_skew(args.edges, args.runs)


if __name__ == "__main__":
    main()
