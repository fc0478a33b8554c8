"""The hive: the control plane that turns a plan into edge work and edge reports into a result.

Today it hosts a single edge in its own process (the test's). The edge is a self-contained
runtime fed plain data, so hosting it in an xdist worker or on a remote execnet gateway changes
only how assignments travel and reports come back, not what the hive does with them.
"""

from __future__ import annotations

import time
from typing import Any, Protocol

from pytest_gashammer.devnet.base import Devnet
from pytest_gashammer.edge.runtime import EdgeAssignment, EdgeRuntime, Progress
from pytest_gashammer.errors import GashammerError
from pytest_gashammer.hive.aggregate import build_result
from pytest_gashammer.oracle import evaluate_plan, finish_result
from pytest_gashammer.results import DEVNET_NOTE, RunResult
from pytest_gashammer.scenario.spec import ScenarioPlan

SETUP_BUDGET = 120.0  # funding and calibration, before the clock starts
STOP_GRACE = 30.0


class ProgressSink(Protocol):
    def update(self, plan: ScenarioPlan, progress: Progress) -> None: ...

    def finish(self) -> None: ...


class Hive:
    """Runs plans against one devnet, one run at a time."""

    def __init__(self, devnet: Devnet, *, telemetry: Any = None) -> None:
        """``telemetry``: a :class:`~pytest_gashammer.telemetry.recorder.TelemetryRecorder`, or None."""
        self.devnet = devnet
        self.telemetry = telemetry
        self._node_version: str | None = None
        self.runs = 0

    @property
    def node_version(self) -> str:
        if self._node_version is None:
            self._node_version = self.devnet.node_version
        return self._node_version

    def assignments(self, plan: ScenarioPlan) -> list[EdgeAssignment]:
        return [
            EdgeAssignment(
                edge_id="local",
                plan=plan.to_dict(),
                rpc_url=self.devnet.rpc_url,
                ws_url=self.devnet.ws_url,
                chain_id=self.devnet.chain_id,
                funder_key=self.devnet.funder.key,
                sender_start=0,
                sender_count=plan.senders,
                gas_share=1.0,
                feed_url=self.devnet.feed_url,
            )
        ]

    def run(self, plan: ScenarioPlan, *, progress: ProgressSink | None = None) -> RunResult:
        (assignment,) = self.assignments(plan)
        run_id = None
        if self.telemetry is not None:
            run_id = self.telemetry.begin(plan, self.devnet, node_version=self.node_version)
            assignment.telemetry_run_id = run_id
        relay = getattr(self.devnet, "feed_relay", None)
        edge = EdgeRuntime(
            assignment,
            raw_tx_sink=relay.prime if relay is not None else None,
            telemetry_sink=self.telemetry.sink if self.telemetry is not None else None,
        )
        incidents_before = len(self.devnet.incidents())
        started = time.monotonic()
        deadline = started + SETUP_BUDGET + plan.sending_time + plan.inclusion_timeout + STOP_GRACE
        edge.start()
        try:
            while not edge.join(0.25):
                if progress is not None:
                    progress.update(plan, edge.snapshot())
                if time.monotonic() > deadline:
                    edge.stop("the run exceeded its time budget")
                    if not edge.join(STOP_GRACE):
                        raise GashammerError(
                            f"edge {assignment.edge_id} did not stop within {STOP_GRACE:.0f} s"
                        )
                    break
        except KeyboardInterrupt:
            edge.stop("interrupted")
            edge.join(10)
            if run_id is not None:
                self.telemetry.end(run_id, reports=[], shares=[], origin_unix_ns=None, status="interrupted")
            raise
        finally:
            if progress is not None:
                progress.finish()
        try:
            report = edge.result()
        except BaseException:
            if run_id is not None:
                self.telemetry.end(run_id, reports=[], shares=[], origin_unix_ns=None, status="failed")
            raise
        self.runs += 1
        verdicts = evaluate_plan(plan, [report])
        result = build_result(
            plan,
            [report],
            verdicts,
            chain_id=self.devnet.chain_id,
            devnet_kind=self.devnet.kind,
            node_version=self.node_version,
            duration=time.monotonic() - started,
        )
        result.notes.extend(DEVNET_NOTE + incident for incident in self.devnet.incidents()[incidents_before:])
        result = finish_result(plan, result)
        if run_id is not None:
            self.telemetry.end(
                run_id, reports=[report], shares=[1.0], origin_unix_ns=report.wall_origin_ns, result=result
            )
        return result
