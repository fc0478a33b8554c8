"""The local hive: one edge in the test's own process, for runs without xdist or gateways.

The edge is a self-contained runtime fed plain data, so hosting it in an xdist worker or on a
remote execnet gateway (:mod:`pytest_gashammer.hive.controller`) changes only how assignments
travel and reports come back, not what the hive does with them.
"""

from __future__ import annotations

import logging
import socket
import time
from typing import TYPE_CHECKING, Any

from pytest_gashammer.devnet.base import Devnet
from pytest_gashammer.edge.runtime import EdgeAssignment, EdgeRuntime
from pytest_gashammer.errors import GashammerError
from pytest_gashammer.hive import timeouts
from pytest_gashammer.hive.base import ProgressSink
from pytest_gashammer.hive.engine_watch import EngineWatch
from pytest_gashammer.hive.faulting import FaultRig
from pytest_gashammer.hive.finish import abandon_run, finish_run, publish_finished
from pytest_gashammer.hive.l1_watch import L1Watch
from pytest_gashammer.hive.network_watch import NetworkWatch
from pytest_gashammer.oracle.capacity import past_limit
from pytest_gashammer.results import RunResult
from pytest_gashammer.scenario.spec import ScenarioPlan

if TYPE_CHECKING:
    from pytest_gashammer.serve.board import LiveBoard

logger = logging.getLogger(__name__)


class LocalHive:
    """Runs plans against one devnet, one run at a time, on one edge in this process."""

    def __init__(self, devnet: Devnet, *, telemetry: Any = None, live: LiveBoard | None = None) -> None:
        """``telemetry``: a :class:`~pytest_gashammer.telemetry.recorder.TelemetryRecorder`, or None;
        ``live``: the live API's board (``--gashammer-serve``), or None."""
        self.devnet = devnet
        self.telemetry = telemetry
        self.live = live
        if live is not None:
            live.edge_joined("local", socket.gethostname())
        self._node_version: str | None = None
        self.runs = 0
        #: The telemetry run id of the last run begun (``None`` without telemetry).
        self.last_telemetry_run: str | None = None

    @property
    def node_version(self) -> str:
        if self._node_version is None:
            self._node_version = self.devnet.node_version
        return self._node_version

    def assignments(
        self, plan: ScenarioPlan, rig: FaultRig | None = None, network: NetworkWatch | None = None
    ) -> list[EdgeAssignment]:
        devnet = self.devnet
        endpoints: dict[str, Any] = (
            rig.endpoints(devnet)
            if rig is not None
            else {"rpc_url": devnet.rpc_url, "ws_url": devnet.ws_url, "feed_url": devnet.feed_url}
        )
        if network is not None:
            endpoints["send_urls"] = network.send_urls(str(endpoints["rpc_url"]))
        return [
            EdgeAssignment(
                edge_id="local",
                plan=plan.to_dict(),
                chain_id=devnet.chain_id,
                funder_key=devnet.funder.key,
                sender_start=0,
                sender_count=plan.senders,
                gas_share=1.0,
                **endpoints,
            )
        ]

    def run(self, plan: ScenarioPlan, *, progress: ProgressSink | None = None) -> RunResult:
        if plan.is_capacity_search:
            from pytest_gashammer.hive.capacity import run_capacity

            def step(step_plan: ScenarioPlan) -> tuple[RunResult, str | None]:
                return self._run_one(step_plan, progress), self.last_telemetry_run

            return run_capacity(
                plan, step, devnet=self.devnet, node_version=self.node_version, telemetry=self.telemetry
            )
        return self._run_one(plan, progress)

    def _run_one(self, plan: ScenarioPlan, progress: ProgressSink | None) -> RunResult:
        live_run = self.live.run_queued(plan) if self.live is not None else None
        # The driver's settings first: an engine fault's proxy fronts the client the run uses.
        engine = rig = watch = network = None
        try:
            engine = EngineWatch.open(plan, self.devnet)
            rig = FaultRig.open(plan, self.devnet)
            watch = L1Watch.open(plan, self.devnet)
            network = NetworkWatch.open(plan, self.devnet)
            result = self._run(plan, rig, watch, progress, engine, live_run, network)
        except BaseException as exc:
            if self.live is not None and live_run is not None:
                self.live.run_failed(live_run, f"{type(exc).__name__}: {exc}")
            raise
        finally:
            if rig is not None:
                rig.close()
            if watch is not None:
                watch.close()
            if network is not None:
                network.close()
            if engine is not None:
                engine.close()
        return result

    def _run(
        self,
        plan: ScenarioPlan,
        rig: FaultRig | None,
        watch: L1Watch | None,
        progress: ProgressSink | None,
        engine: EngineWatch | None = None,
        live_run: str | None = None,
        network: NetworkWatch | None = None,
    ) -> RunResult:
        (assignment,) = self.assignments(plan, rig, network)
        run_id = None
        if self.telemetry is not None:
            run_id = self.telemetry.begin(plan, self.devnet, node_version=self.node_version)
            assignment.telemetry_run_id = run_id
        self.last_telemetry_run = run_id
        relay = getattr(self.devnet, "feed_relay", None)
        edge = EdgeRuntime(
            assignment,
            # The edge passes this gate once set up, right before its clock starts: the faults' t=0.
            start_gate=rig.start if rig is not None else None,
            raw_tx_sink=relay.prime if relay is not None else None,
            telemetry_sink=self.telemetry.sink if self.telemetry is not None else None,
        )
        incidents_before = len(self.devnet.incidents())
        started = time.monotonic()
        deadline = started + timeouts.edge_budget(plan)
        logger.debug("local run %r starts: %d sender(s)", plan.name, plan.senders)
        edge.start()
        live = self.live if live_run is not None else None
        if live is not None and live_run is not None:
            live.run_started(
                live_run,
                [assignment.edge_id],
                stop=lambda reason: edge.stop(reason, "drain"),
                faults=rig.schedule.records if rig is not None else (),
            )
        # A capacity step stops once clearly past the chain's limit (oracle/capacity.py's past_limit).
        watch_limit = plan.capacity_step is not None
        try:
            while not edge.join(0.25):
                due = live is not None and live_run is not None and live.due(live_run)
                snapshot = edge.snapshot() if progress is not None or watch_limit or due else None
                if progress is not None and snapshot is not None:
                    progress.update(plan, snapshot)
                if due and live is not None and live_run is not None and snapshot is not None:
                    live.tick(
                        live_run,
                        phase=snapshot.phase,
                        elapsed=snapshot.elapsed,
                        edges={assignment.edge_id: snapshot.__dict__},
                        inclusion_p99=snapshot.recent_inclusion_p99,
                    )
                if watch_limit and snapshot is not None:
                    why = past_limit(dict(plan.slo), snapshot.recent_inclusion_p99)
                    if why is not None:
                        logger.info("capacity step %s: %s", plan.capacity_step, why)
                        edge.stop(why, "requested")
                        watch_limit = False
                if time.monotonic() > deadline:
                    logger.debug("local run %r exceeded its time budget; stopping the edge", plan.name)
                    edge.stop("the run exceeded its time budget", "time-budget")
                    if not edge.join(timeouts.STOP_GRACE):
                        raise GashammerError(
                            f"edge {assignment.edge_id} did not stop within {timeouts.STOP_GRACE:.0f} s"
                        )
                    break
        except KeyboardInterrupt:
            edge.stop("interrupted", "interrupted")
            edge.join(10)
            abandon_run(self.telemetry, run_id, "interrupted")
            raise
        finally:
            if progress is not None:
                progress.finish()
        try:
            report = edge.result()
        except BaseException:
            abandon_run(self.telemetry, run_id, "failed")
            raise
        # Undone before the verdicts: the records say when each fault really ended.
        records = rig.close() if rig is not None else None
        self.runs += 1
        stopped = live.stopped_verdict(live_run) if live is not None else None
        result = finish_run(
            plan,
            [report],
            devnet=self.devnet,
            node_version=self.node_version,
            duration=time.monotonic() - started,
            incidents_before=incidents_before,
            shares=[1.0],
            telemetry=self.telemetry,
            telemetry_run=run_id,
            origin_unix_ns=report.wall_origin_ns,
            fault_records=records,
            l1_watch=watch,
            engine_watch=engine,
            leading_verdicts=[stopped] if stopped is not None else (),
            status="stopped" if stopped is not None else None,
            network_watch=network,
        )
        if live is not None and live_run is not None:
            publish_finished(live, live_run, result, [report])
        return result
