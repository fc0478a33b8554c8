"""An edge run with its rows: every transaction as the edge streamed it once final.

An edge keeps no row past its finality (its report carries a digest); the rows themselves go to the
hive as telemetry frames. Tests that look at single transactions read them here, as a user reads
them from the Parquet store.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pyarrow as pa

from pytest_gashammer.edge.runtime import EdgeAssignment, EdgeRuntime
from pytest_gashammer.telemetry.records import EdgeReport
from pytest_gashammer.telemetry.stream import from_ipc


class RowSink:
    """A telemetry sink that keeps an edge's ``transactions`` frames; :meth:`rows` reads them back."""

    def __init__(self) -> None:
        self.frames: list[bytes] = []

    def __call__(self, table: str, frame: bytes) -> None:
        if table == "transactions":
            self.frames.append(frame)

    def rows(self, report: EdgeReport) -> pa.Table:
        """The run's transactions sorted by row, checked to be every row exactly once."""
        batches = [from_ipc(frame) for frame in self.frames]
        rows = (
            pa.Table.from_batches(batches).sort_by("row")
            if batches
            else pa.table({"row": pa.array([], pa.int64())})
        )
        assert rows.column("row").to_pylist() == list(range(report.digest.rows)), "rows lost or repeated"
        return rows


def streaming(assignment: EdgeAssignment) -> EdgeAssignment:
    """``assignment`` with a telemetry run id, so that its edge streams its rows."""
    return (
        assignment
        if assignment.telemetry_run_id
        else dataclasses.replace(assignment, telemetry_run_id="rows")
    )


def assignment_on(devnet: Any, plan: Any, **fields: Any) -> EdgeAssignment:
    """The one edge of ``plan`` on ``devnet`` (its RPC, WebSocket and funder; ``fields`` add to it)."""
    return EdgeAssignment(
        edge_id="e0",
        plan=plan.to_dict(),
        rpc_url=devnet.rpc_url,
        ws_url=devnet.ws_url,
        chain_id=devnet.chain_id,
        funder_key=devnet.funder.key,
        sender_count=plan.senders,
        **fields,
    )


def run_with_rows(assignment: EdgeAssignment, **runtime_options: Any) -> tuple[EdgeReport, pa.Table]:
    """Run ``assignment`` to its end; its report and its transactions, sorted by row."""
    sink = RowSink()
    report = EdgeRuntime(streaming(assignment), telemetry_sink=sink, **runtime_options).run_blocking()
    return report, sink.rows(report)
