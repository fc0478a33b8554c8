"""Hive benchmarks: how fast the hive ingests edge telemetry, and how closely edges start together.

    python benchmarks/bench_hive.py [--rows 1000000] [--edges 4] [--runs 3]

1. Ingest: a real execnet popen gateway (a separate process, as an xdist worker is) plays an edge
   whose ``--rows`` transaction rows became final, and sends them the way an edge does: its
   ``transactions`` telemetry frames (Arrow IPC, each in a ``telemetry`` message), then its report,
   which carries the digest of those rows (``blob`` chunks and the ``report`` message). This process
   receives them as the hive does: every message checked against the protocol, the frames kept as
   the hive's telemetry sink gets them, the report rebuilt. Figures: transaction rows (telemetry
   events) per second from the first frame to the rebuilt report, the frames and the largest;
   then, outside that window, the frames decoded to columns (``telemetry.stream.frames_to_columns``)
   and checked to hold every row exactly once, as many as the report's digest counts.
   The edge makes its frames before the clock starts: a live edge makes them about once a second
   during the run, so only sending them is part of the hive's ingest.
2. Start skew: a hive with ``--edges`` popen gateway edges runs a short scenario on the embedded
   devnet ``--runs`` times; figure: the largest start skew (time from the first edge's start to the
   last edge's) per run.

Reports figures; never gates (exit code 0).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

from pytest_gashammer.hive import protocol  # noqa: E402
from pytest_gashammer.telemetry.records import EdgeReport  # noqa: E402
from pytest_gashammer.telemetry.schema import TRANSACTIONS  # noqa: E402
from pytest_gashammer.telemetry.stream import frames_to_columns  # noqa: E402

if TYPE_CHECKING:
    import execnet


def edge_process(channel: "execnet.Channel", rows: int, run_id: str = "run1") -> None:  # noqa: UP037
    """The edge's side of the ingest, run in its own process by ``gateway.remote_exec``.

    execnet sends this function's source alone, compiled without this module's ``__future__``
    import: everything it uses is imported inside, and its annotations and defaults are builtins or
    strings. It builds ``rows`` transactions that were all included
    (1,000 tx/s, 64 senders, three templates), digests them and makes the ``transactions`` frames
    as the edge's cursor streams final rows, sends ``"ready"``, and on the next message sends the
    frames, then the report.
    """
    import numpy as np

    from pytest_gashammer.hive import protocol
    from pytest_gashammer.telemetry.digest import RunDigest
    from pytest_gashammer.telemetry.records import STATUS_INCLUDED, EdgeReport, TxLog
    from pytest_gashammer.telemetry.stream import ClockMap, TransactionCursor, to_ipc_frames

    templates = ["transfer", "erc20", "storage"]
    senders = 64
    # No comprehension: execnet's check for globals takes a comprehension's variable for one.
    addresses = list(map("0x{:040x}".format, range(senders)))
    row = np.arange(rows, dtype=np.int64)
    intended = row * 1_000_000
    hashes = np.zeros((rows, 32), dtype=np.uint8)
    hashes[:, 24:] = row.astype(">u8").view(np.uint8).reshape(rows, 8)
    log = TxLog()
    log.extend(
        (row % 3).tolist(),
        (row % senders).tolist(),
        (row // senders).tolist(),
        [21_000] * rows,
        intended.tolist(),
        hashes.tobytes(),
    )
    included = intended + 250_000_000
    # The views are temporaries, gone before the log could need to grow.
    for name, values in (
        ("sent_ns", intended + 100_000),
        ("accepted_ns", intended + 2_000_000),
        ("included_ns", included),
        ("block_number", 100 + included // 250_000_000),
    ):
        np.frombuffer(getattr(log, name), dtype=np.int64)[:] = values
    np.frombuffer(log.state, dtype=np.int8)[:] = STATUS_INCLUDED
    np.frombuffer(log.inclusions, dtype=np.int8)[:] = 1
    digest = RunDigest.of_log(
        log,
        origin_ns=0,
        sustain=(0.0, rows / 1000),
        inclusion_timeout=20.0,
        templates=templates,
        expected_status=[1, 1, 1],
        gas_estimate=[21_000.0] * 3,
        gas_tolerance=[0.1] * 3,
    )
    report = EdgeReport(
        edge_id="edge0",
        host="remote",
        clock_origin_ns=0,
        wall_origin_ns=0,
        digest=digest,
        templates=templates,
        sender_addresses=addresses,
        sender_start_nonces=[0] * senders,
    )
    cursor = TransactionCursor(
        log, run_id=run_id, edge_id="edge0", clock=ClockMap.local(0, 0), templates=templates,
        sender_addresses=addresses,
    )  # fmt: skip
    batch = cursor.poll(final=True)
    frames = to_ipc_frames(batch) if batch is not None else []
    channel.send("ready")
    channel.receive()
    for frame in frames:
        channel.send(protocol.message(protocol.TELEMETRY, run_id=run_id, table="transactions", frame=frame))
    for message in protocol.report_frames(run_id, report):
        channel.send(message)


@dataclasses.dataclass
class Ingested:
    """One edge's run as the hive received it."""

    report: EdgeReport
    #: The ``transactions`` frames, as the hive hands them to its telemetry sink.
    frames: list[bytes]
    messages: int
    largest: int  # bytes of the largest frame or report chunk


def receive_run(receive: Callable[[], Any]) -> Ingested:
    """Receive one edge's run as the hive does, up to its report: each message checked against the
    protocol, telemetry frames kept, report chunks assembled and the report rebuilt."""
    assembler = protocol.ReportAssembler()
    frames: list[bytes] = []
    messages = largest = 0
    while True:
        name, fields = protocol.decode(receive(), protocol.EDGE_TO_HIVE)
        messages += 1
        if name == protocol.TELEMETRY:
            largest = max(largest, len(fields["frame"]))
            if fields["table"] == "transactions":
                frames.append(fields["frame"])
        elif name == protocol.BLOB:
            largest = max(largest, len(fields["data"]))
            assembler.add_chunk(fields["blob_id"], fields["index"], fields["count"], fields["data"])
        elif name == protocol.REPORT:
            return Ingested(assembler.finish(fields["report"]), frames, messages, largest)
        else:
            raise RuntimeError(f"the edge sent {name!r} during the ingest")


def read_rows(ingested: Ingested) -> dict[str, np.ndarray]:
    """The received frames as columns in row order; ``RuntimeError`` unless they hold every row the
    report's digest counts exactly once (a rate for rows that did not all arrive would be wrong)."""
    columns = frames_to_columns(
        ingested.frames, TRANSACTIONS, names=("row", "sender_index", "nonce", "included_ns"), sort_by="row"
    )
    rows = columns["row"]
    expected = ingested.report.digest.rows
    if rows.size != expected or not np.array_equal(rows, np.arange(expected)):
        raise RuntimeError(
            f"the frames hold {rows.size} rows ({np.unique(rows).size} distinct) of the "
            f"{expected} the report's digest counts"
        )
    return columns


def bench_ingest(rows: int) -> None:
    import execnet

    gateway = execnet.makegateway("popen")
    try:
        channel = gateway.remote_exec(edge_process, rows=rows)
        assert channel.receive(timeout=300) == "ready"
        started = time.perf_counter()
        channel.send("go")
        ingested = receive_run(lambda: channel.receive(timeout=300))
        elapsed = time.perf_counter() - started
    finally:
        gateway.exit()
    decode_started = time.perf_counter()
    read_rows(ingested)
    decode_seconds = time.perf_counter() - decode_started
    if ingested.report.digest.rows != rows:
        raise RuntimeError(f"the report's digest counts {ingested.report.digest.rows} rows, not {rows}")
    print(
        f"ingest: {rows:,} transaction rows in {elapsed:.3f} s = {rows / elapsed:,.0f} events/s "
        f"({ingested.messages} frames: {len(ingested.frames)} of telemetry and "
        f"{ingested.messages - len(ingested.frames)} of the report; largest {ingested.largest / 1024:.0f} KiB)"
    )
    print(
        f"  then decoded to columns and every row checked present once in {decode_seconds:.3f} s "
        f"({rows / decode_seconds:,.0f} rows/s)"
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
    parser.add_argument("--rows", type=int, default=1_000_000, help="transaction rows to ingest (1,000,000)")
    parser.add_argument("--edges", type=int, default=4)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    print(f"machine: {os.cpu_count()} CPUs")
    bench_ingest(max(args.rows, 1))
    bench_skew(args.edges, args.runs)


if __name__ == "__main__":
    main()
