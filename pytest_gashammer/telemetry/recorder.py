"""The hive's side of telemetry: one object per session that turns runs into stored Parquet.

It wraps a :class:`~pytest_gashammer.telemetry.parquet.ParquetRunWriter` and the
:class:`~pytest_gashammer.telemetry.parquet.BackgroundWriter` that feeds it, so frames arriving from
edges (in the hive's process or over channels) are only enqueued by whoever receives them.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any


class TelemetryRecorder:
    """Begins and ends runs in the Parquet store and routes the edges' frames into it."""

    def __init__(self, directory: Path, *, git_root: Path | None = None) -> None:
        from pytest_gashammer.telemetry.parquet import BackgroundWriter, ParquetRunWriter, git_commit

        self.directory = directory
        self.writer = ParquetRunWriter(directory)
        self.background = BackgroundWriter(self.writer)
        self._git_commit = git_commit(git_root) if git_root is not None else None
        #: The runs this recorder began, in order (what ``--gashammer-save`` names).
        self.run_ids: list[str] = []

    def begin(
        self,
        plan: Any,
        devnet: Any,
        *,
        node_version: str,
        run_id: str | None = None,
        started_unix_ns: int | None = None,
        target_gas_per_sec: float | None = None,
    ) -> str:
        """Begin a run; ``run_id`` and ``started_unix_ns`` for a run whose id was handed out before
        it is written (a capacity search names itself in its steps, and is written once they ran);
        ``target_gas_per_sec`` when the row's target is not the plan's (a search's is its maximum)."""
        from pytest_gashammer._version import __version__, build_sha
        from pytest_gashammer.telemetry.parquet import RunInfo, new_run_id

        run_id = run_id or new_run_id()
        extra = {} if started_unix_ns is None else {"started_unix_ns": started_unix_ns}
        self.run_ids.append(run_id)
        info = RunInfo.for_plan(
            plan,
            run_id=run_id,
            **extra,
            test_nodeid=plan.nodeid or None,
            chain_id=devnet.chain_id,
            devnet_kind=devnet.kind,
            node_version=node_version,
            plugin_version=__version__,
            build_sha=build_sha(),
            git_commit=self._git_commit,
        )
        if target_gas_per_sec is not None:
            info.target_gas_per_sec = target_gas_per_sec
        self.writer.begin_run(info)
        return run_id

    def set_origin(self, run_id: str, origin_unix_ns: int) -> None:
        self.writer.set_run_origin(run_id, origin_unix_ns)

    def sink(self, table: str, frame: bytes) -> None:
        self.background.submit(table, frame)

    def edge_lost(self, run_id: str, edge_id: str, reason: str) -> None:
        self.writer.add_event(run_id, "edge_lost", edge_id=edge_id, detail=reason)

    def end(self, run_id: str, *, reports: list[Any], shares: list[float], origin_unix_ns: int | None,
            result: Any = None, status: str | None = None) -> None:  # fmt: skip
        from pytest_gashammer.telemetry.stream import ClockMap

        if origin_unix_ns is not None:
            # The run's t=0, which every row's t counts from: the controller fixed it at GO already;
            # a local run learns it from its edge's report.
            self.writer.set_run_origin(run_id, origin_unix_ns)
        for report, share in zip(reports, shares, strict=True):
            clock = ClockMap(
                report.clock_origin_ns, report.wall_origin_ns, origin_unix_ns or report.wall_origin_ns
            )
            self.writer.register_edge(
                run_id, report.edge_id, host=report.host, clock=clock, target_share=share
            )
        self.background.drain()
        self.writer.end_run(run_id, result=result, status=status, ended_unix_ns=time.time_ns())

    def close(self) -> None:
        self.background.close()
        self.writer.close()
