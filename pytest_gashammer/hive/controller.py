"""The hive in the pytest controller: edges over execnet channels, one run at a time.

Every pytest-xdist worker is an edge: in ``pytest_configure_node`` the hive opens a channel on the
worker's gateway and passes it in ``workerinput``; the worker hosts an
:class:`~pytest_gashammer.hive.worker.EdgeHost` on it. ``--gashammer-edges`` adds edges on execnet
gateways the hive creates itself (``4*popen``, ``ssh=host//python=python3``, ``socket=host:port``).

A run request (from a test on any worker, or from the controller's own process without xdist)
joins a queue. For each run the hive: picks the healthy edges, splits the gas rate by their
capacity and the senders into disjoint ranges, does the run-level setup once (funding, contract
deployment, calibration), arms every edge, starts them together, collects their reports, marks
edges that die or go silent as lost, and answers with the merged :class:`RunResult`.

Threads: execnet callbacks only enqueue; a dispatcher thread handles every edge message in an
``on_<name>`` method (:mod:`pytest_gashammer.hive.protocol`); a run thread executes the queue.
An error while handling a message of a run fails that run with the error; any other is logged.
Every wait has a timeout.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pytest_gashammer.errors import GashammerError
from pytest_gashammer.hive import protocol, timeouts
from pytest_gashammer.hive.base import ProgressSink
from pytest_gashammer.hive.engine_watch import EngineWatch
from pytest_gashammer.hive.faulting import FaultRig
from pytest_gashammer.hive.finish import abandon_run, finish_run, publish_finished
from pytest_gashammer.hive.l1_watch import L1Watch
from pytest_gashammer.hive.network_watch import NetworkWatch
from pytest_gashammer.results import RunResult, Verdict
from pytest_gashammer.scenario.spec import ScenarioPlan
from pytest_gashammer.telemetry.records import EdgeReport, Progress

if TYPE_CHECKING:
    from pytest_gashammer.serve.board import LiveBoard

logger = logging.getLogger(__name__)

#: The note a result carries when the hive ran more senders than the plan asked for.
SENDERS_NOTE = "hive: "
_EOF = ("__eof__",)


@dataclasses.dataclass
class EdgeLink:
    edge_id: str
    channel: Any
    gateway: Any = None  # set for gateways the hive made itself (it closes them)
    info: dict[str, Any] = dataclasses.field(default_factory=dict)
    last_seen: float = dataclasses.field(default_factory=time.monotonic)
    alive: bool = True
    lost_reason: str | None = None
    progress: dict[str, Any] = dataclasses.field(default_factory=dict)
    send_lock: threading.Lock = dataclasses.field(default_factory=threading.Lock)

    @property
    def ready(self) -> bool:
        return self.alive and bool(self.info)

    def send(self, name: str, **fields: Any) -> bool:
        message = protocol.message(name, **fields)
        with self.send_lock:
            if not self.alive or self.channel.isclosed():
                logger.debug("not sent: %s to edge %s (gone)", name, self.edge_id)
                return False
            protocol.trace(logger, "send", self.edge_id, message)
            try:
                self.channel.send(message)
            except (OSError, EOFError, ValueError) as exc:
                logger.debug("not sent: %s to edge %s (%s)", name, self.edge_id, exc)
                return False
            return True


@dataclasses.dataclass
class _RunState:
    run_id: str
    edges: list[str]
    armed: set[str] = dataclasses.field(default_factory=set)
    started: dict[str, int] = dataclasses.field(default_factory=dict)
    failed: dict[str, str] = dataclasses.field(default_factory=dict)
    reports: dict[str, EdgeReport] = dataclasses.field(default_factory=dict)
    assemblers: dict[str, protocol.ReportAssembler] = dataclasses.field(default_factory=dict)
    #: Set when the hive itself failed handling one of the run's messages: the run fails with it.
    error: str | None = None


class HiveController:
    """Edge registry, run queue and run orchestration, in the controller process."""

    def __init__(
        self,
        devnet_factory: Callable[[], Any],
        *,
        progress_factory: Callable[[], ProgressSink | None] | None = None,
        telemetry: Any = None,
        live: LiveBoard | None = None,
    ) -> None:
        """``progress_factory()`` makes the progress line for runs requested by other processes
        (xdist workers cannot write to the terminal; the controller can); ``live`` is the live
        API's board (``--gashammer-serve``), or None."""
        self.live = live
        #: The live API's id of each queued run request, and of the run about to execute.
        self._live_queued: dict[str, str] = {}
        self._live_next: str | None = None
        self._devnet_factory = devnet_factory
        self._progress_factory = progress_factory
        self.telemetry = telemetry  # a TelemetryRecorder, or None
        self.devnet: Any = None
        self._devnet_error: str | None = None
        #: The longest planned run (s) the workers reported; the devnet factory reads it.
        self.longest_run: float | None = None
        self.edges: dict[str, EdgeLink] = {}
        self._inbox: queue.Queue[tuple[str, Any]] = queue.Queue()
        self._runs: queue.Queue[tuple[str, str, dict[str, Any]] | None] = queue.Queue()
        self._lock = threading.Condition()
        self._devnet_lock = threading.Lock()
        self._state: _RunState | None = None
        self._telemetry_run: str | None = None
        #: The telemetry run id of the last run begun (``None`` without telemetry).
        self.last_telemetry_run: str | None = None
        self._run_ids = itertools.count(1)
        self._closed = threading.Event()
        self._local_waiters: dict[str, queue.Queue[tuple[dict[str, Any] | None, str | None]]] = {}
        self.queued = 0
        self._dispatcher = threading.Thread(target=self._dispatch, name="gashammer-hive", daemon=True)
        self._runner = threading.Thread(target=self._run_loop, name="gashammer-hive-runs", daemon=True)
        self._dispatcher.start()
        self._runner.start()

    # -- edges ----------------------------------------------------------------------------------
    def add_edge(self, edge_id: str, channel: Any, *, gateway: Any = None) -> EdgeLink:
        link = EdgeLink(edge_id, channel, gateway=gateway)
        with self._lock:
            self.edges[edge_id] = link
        # Runs in execnet's receiver thread: enqueue only, never block or raise.
        channel.setcallback(lambda message: self._inbox.put((edge_id, message)), endmarker=_EOF)
        logger.debug("edge %s added%s", edge_id, " (own gateway)" if gateway is not None else "")
        return link

    def add_gateway_edges(self, specs: list[str]) -> None:
        """Start edges on execnet gateways: ``N*popen``, ``ssh=host//python=python3``, ``socket=host:port``."""
        import execnet

        counter = itertools.count(len([e for e in self.edges if e.startswith("edge")]))
        for spec in specs:
            count, _, single = spec.partition("*") if "*" in spec.split("//")[0] else ("1", "", spec)
            try:
                copies = int(count)
            except ValueError:
                raise GashammerError(f"--gashammer-edges {spec!r}: use N*SPEC, e.g. 4*popen") from None
            for _ in range(copies):
                edge_id = f"edge{next(counter)}"
                try:
                    gateway = execnet.makegateway(single)
                    channel = gateway.remote_exec(
                        f"import pytest_gashammer.hive.worker as worker\nworker.serve(channel, {edge_id!r})\n"
                    )
                except Exception as exc:
                    raise GashammerError(
                        f"--gashammer-edges {single!r}: cannot start an edge there ({type(exc).__name__}: {exc}); "
                        "the remote Python needs pytest-gashammer installed"
                    ) from None
                self.add_edge(edge_id, channel, gateway=gateway)

    def edge_lost(self, edge_id: str, reason: str) -> None:
        with self._lock:
            link = self.edges.get(edge_id)
            if link is not None and link.alive:
                link.alive = False
                link.lost_reason = reason
                logger.debug("edge %s lost: %s", edge_id, reason)
                if self.live is not None:
                    self.live.edge_lost(edge_id, reason)
            self._lock.notify_all()

    def wait_for_edges(self, count: int, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        with self._lock:
            while sum(1 for link in self.edges.values() if link.ready) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._lock.wait(remaining)
            return sum(1 for link in self.edges.values() if link.ready)

    # -- the dispatcher thread ------------------------------------------------------------------
    def _dispatch(self) -> None:
        while not self._closed.is_set():
            try:
                edge_id, raw = self._inbox.get(timeout=0.5)
            except queue.Empty:
                self._check_heartbeats()
                continue
            try:
                self._handle(edge_id, raw)
            except Exception as exc:
                self._handling_failed(edge_id, raw, exc)
            if self._inbox.empty():  # judge silence only once caught up with what edges already sent
                self._check_heartbeats()

    def _check_heartbeats(self) -> None:
        now = time.monotonic()
        for link in list(self.edges.values()):
            if link.ready and now - link.last_seen > timeouts.HEARTBEAT_TIMEOUT:
                self.edge_lost(link.edge_id, f"no heartbeat for {timeouts.HEARTBEAT_TIMEOUT:.0f} s")

    def _handle(self, edge_id: str, raw: Any) -> None:
        link = self.edges.get(edge_id)
        if link is None:
            return
        if raw is _EOF or raw == _EOF:
            self.edge_lost(edge_id, "its process ended (channel closed)")
            return
        link.last_seen = time.monotonic()
        message = protocol.decode(raw, protocol.EDGE_TO_HIVE)
        protocol.trace(logger, "handle", edge_id, message)
        protocol.dispatch(self, message, link)

    def _handling_failed(self, edge_id: str, raw: Any, exc: Exception) -> None:
        """A message the hive could not handle: it fails its run (or request), else it is logged."""
        name, fields = (
            raw if isinstance(raw, tuple) and len(raw) == 2 and isinstance(raw[1], dict) else (raw, {})
        )
        text = f"the hive failed handling {protocol.short(name)} from edge {edge_id}: {type(exc).__name__}: {exc}"
        logger.error("%s", text, exc_info=exc)
        with self._lock:
            state = self._state
            if state is not None and fields.get("run_id") == state.run_id:
                state.error = state.error or text
                self._lock.notify_all()
                return
        if name == protocol.RUN_REQUEST and isinstance(fields.get("request_id"), str):
            self._answer(edge_id, fields["request_id"], None, text)

    # -- edge messages (on the dispatcher thread) -----------------------------------------------
    def on_hello(self, link: EdgeLink, info: dict[str, Any]) -> None:
        with self._lock:
            link.info = dict(info)
            self._lock.notify_all()
        if self.live is not None:
            self.live.edge_joined(link.edge_id, str(info.get("host", "?")))

    def on_heartbeat(self, link: EdgeLink, progress: dict[str, Any]) -> None:
        link.progress = dict(progress)
        if self.live is not None:
            self.live.edge_heartbeat(link.edge_id)

    def on_run_request(
        self, link: EdgeLink, request_id: str, plan: dict[str, Any], options: dict[str, Any]
    ) -> None:
        self.plan_longest_run(options.get("longest_run"))
        self._enqueue_run(link.edge_id, request_id, plan)

    def on_telemetry(self, link: EdgeLink, run_id: str, table: str, frame: bytes) -> None:
        if self.telemetry is not None:
            self.telemetry.sink(table, frame)  # the frame carries its telemetry run id

    def on_devnet_request(self, link: EdgeLink, request_id: str, longest_run: float | None) -> None:
        self.plan_longest_run(longest_run)
        # Starting the devnet takes seconds: never on the dispatcher, which must keep up with heartbeats.
        threading.Thread(target=self._answer_devnet, args=(link, request_id), daemon=True).start()

    def on_armed(self, link: EdgeLink, run_id: str) -> None:
        with self._run(run_id) as state:
            if state is not None:
                state.armed.add(link.edge_id)

    def on_started(self, link: EdgeLink, run_id: str, wall_ns: int) -> None:
        with self._run(run_id) as state:
            if state is not None:
                state.started[link.edge_id] = int(wall_ns)

    def on_failed(self, link: EdgeLink, run_id: str, message: str) -> None:
        with self._run(run_id) as state:
            if state is not None:
                state.failed[link.edge_id] = str(message)

    def on_blob(self, link: EdgeLink, run_id: str, blob_id: int, index: int, count: int, data: bytes) -> None:
        with self._run(run_id) as state:
            if state is not None:
                assembler = state.assemblers.setdefault(link.edge_id, protocol.ReportAssembler())
                assembler.add_chunk(blob_id, index, count, data)

    def on_report(self, link: EdgeLink, run_id: str, report: dict[str, Any]) -> None:
        edge_id = link.edge_id
        with self._run(run_id) as state:
            if state is None:
                return
            assembler = state.assemblers.pop(edge_id, protocol.ReportAssembler())
            try:
                delivered = state.reports[edge_id] = assembler.finish(report)
            except (ValueError, KeyError, TypeError) as exc:
                state.failed[edge_id] = f"edge {edge_id}: its report arrived damaged ({exc})"
                return
            if delivered.stop_kind == "fail-fast":
                # One edge saw a hard invariant break: the whole run stops, not just that edge.
                reason = f"{delivered.stopped_early} (on {edge_id})"
                for other in state.edges:
                    if other != edge_id and other not in state.reports:
                        self.edges[other].send(protocol.STOP, run_id=run_id, reason=reason, kind="fail-fast")

    @contextlib.contextmanager
    def _run(self, run_id: str) -> Any:
        """The running run's state if ``run_id`` is that run, else None; wakes the run's waits after."""
        with self._lock:
            state = self._state
            if state is None or state.run_id != run_id:
                logger.debug("message for run %s, which is not running; ignored", run_id)
                yield None
                return
            try:
                yield state
            finally:
                self._lock.notify_all()

    def _answer_devnet(self, link: EdgeLink, request_id: str) -> None:
        try:
            devnet = self.ensure_devnet()
            link.send(protocol.DEVNET, request_id=request_id, endpoints=devnet.endpoints(), error=None)
        except GashammerError as exc:
            link.send(protocol.DEVNET, request_id=request_id, endpoints=None, error=str(exc))

    # -- devnet ---------------------------------------------------------------------------------
    def plan_longest_run(self, seconds: float | None) -> None:
        """A worker's longest planned run: the longest of them decides the history of a devnet
        started after it (every worker collects the whole session, so the first one is enough)."""
        if seconds is not None and (self.longest_run is None or seconds > self.longest_run):
            self.longest_run = float(seconds)

    def ensure_devnet(self) -> Any:
        """Start the shared devnet once per session, on first need."""
        with self._devnet_lock:
            if self.devnet is not None:
                return self.devnet
            if self._devnet_error is not None:
                raise GashammerError(self._devnet_error)
            try:
                self.devnet = self._devnet_factory()
            except GashammerError as exc:
                self._devnet_error = str(exc)
                raise
            return self.devnet

    # -- run requests ---------------------------------------------------------------------------
    def _enqueue_run(self, caller: str, request_id: str, plan_data: dict[str, Any]) -> None:
        self.queued += 1
        if self.live is not None:
            self._live_queued[request_id] = self.live.run_queued(ScenarioPlan.from_dict(plan_data))
        self._runs.put((caller, request_id, plan_data))

    def run(self, plan: ScenarioPlan, *, progress: ProgressSink | None = None) -> RunResult:
        """Run ``plan`` on the edges from this process (no xdist, or the controller itself)."""
        request_id = f"local-{next(self._run_ids)}"
        answers: queue.Queue[tuple[dict[str, Any] | None, str | None]] = queue.Queue()
        self._local_waiters[request_id] = answers
        self._enqueue_run("", request_id, plan.to_dict())
        timeout = timeouts.answer_timeout(plan)
        deadline = time.monotonic() + timeout
        try:
            while True:
                try:
                    result_data, error = answers.get(timeout=0.25)
                    break
                except queue.Empty:
                    if time.monotonic() > deadline:
                        raise GashammerError(
                            f"the hive did not finish run {plan.name!r} within {timeout:.0f} s"
                        ) from None
                    if progress is not None:
                        progress.update(plan, self.progress())
        finally:
            self._local_waiters.pop(request_id, None)
            if progress is not None:
                progress.finish()
        if error is not None:
            raise GashammerError(error)
        assert result_data is not None
        return protocol.result_from_dict(result_data)

    def progress(self) -> Any:
        """The running run's progress summed over its edges' heartbeats, and the queue behind it."""
        state = self._state
        total = Progress(phase="queued" if state is None else "setup")
        for edge_id in state.edges if state is not None else []:
            beat = self.edges[edge_id].progress
            if not beat:
                continue
            total.phase = str(beat.get("phase", total.phase))
            total.elapsed = max(total.elapsed, float(beat.get("elapsed", 0.0)))
            for counter in ("sent", "accepted", "rejected", "included", "included_gas", "errors"):
                setattr(total, counter, getattr(total, counter) + int(beat.get(counter, 0)))
            p99 = beat.get("recent_inclusion_p99")
            if p99 is not None:
                total.recent_inclusion_p99 = max(total.recent_inclusion_p99 or 0.0, float(p99))
        total.queued = self.queued
        total.edges = len(state.edges) if state is not None else 0
        return total

    def _run_loop(self) -> None:
        while not self._closed.is_set():
            try:
                item = self._runs.get(timeout=0.5)
            except queue.Empty:
                continue
            if item is None:
                return
            caller, request_id, plan_data = item
            self.queued -= 1
            self._live_next = self._live_queued.pop(request_id, None)
            plan = ScenarioPlan.from_dict(plan_data)
            progress = self._progress_factory() if caller and self._progress_factory is not None else None
            logger.debug("run %r for %s starts", plan.name, caller or "this process")
            result_data: dict[str, Any] | None = None
            error: str | None = None
            try:
                result_data = protocol.result_to_dict(self._execute(plan, progress))
            except GashammerError as exc:
                error = str(exc)
            except Exception as exc:  # a bug must reach the test as a failure, not hang it
                logger.exception("run %r failed", plan.name)
                error = f"the hive failed: {type(exc).__name__}: {exc}"
            finally:
                if progress is not None:
                    progress.finish()
            self._answer(caller, request_id, result_data, error)

    def _answer(
        self, caller: str, request_id: str, result_data: dict[str, Any] | None, error: str | None
    ) -> None:
        if not caller:
            waiter = self._local_waiters.get(request_id)
            if waiter is not None:
                waiter.put((result_data, error))
            return
        link = self.edges.get(caller)
        if link is not None:
            link.send(protocol.RUN_RESULT, request_id=request_id, result=result_data, error=error)

    # -- one run --------------------------------------------------------------------------------
    def _execute(self, plan: ScenarioPlan, progress: ProgressSink | None = None) -> RunResult:
        if plan.is_capacity_search:
            # The whole search is one item of the queue: no other run lands between its steps.
            from pytest_gashammer.hive.capacity import run_capacity

            def step(step_plan: ScenarioPlan) -> tuple[RunResult, str | None]:
                result = self._execute_one(step_plan, progress)
                return result, self.last_telemetry_run

            devnet = self.ensure_devnet()
            return run_capacity(
                plan, step, devnet=devnet, node_version=devnet.node_version, telemetry=self.telemetry
            )
        return self._execute_one(plan, progress)

    def _execute_one(self, plan: ScenarioPlan, progress: ProgressSink | None = None) -> RunResult:
        self._telemetry_run = None
        # A capacity search's first step is the queued run; its later steps join the board here.
        live_run, self._live_next = self._live_next, None
        if self.live is not None and live_run is None:
            live_run = self.live.run_queued(plan)
        try:
            return self._execute_run(plan, progress, live_run)
        except BaseException as exc:
            abandon_run(self.telemetry, self._telemetry_run, "failed")
            if self.live is not None and live_run is not None:
                self.live.run_failed(live_run, f"{type(exc).__name__}: {exc}")
            raise
        finally:
            self._telemetry_run = None

    def _execute_run(
        self, plan: ScenarioPlan, progress: ProgressSink | None = None, live_run: str | None = None
    ) -> RunResult:
        devnet = self.ensure_devnet()
        # The driver's settings first: an engine fault's proxy fronts the client the run uses.
        engine = EngineWatch.open(plan, devnet)
        rig = watch = network = None
        try:
            rig = FaultRig.open(plan, devnet)
            watch = L1Watch.open(plan, devnet)
            network = NetworkWatch.open(plan, devnet)
            return self._execute_with(plan, devnet, rig, watch, progress, engine, live_run, network)
        finally:
            if rig is not None:
                rig.close()
            if watch is not None:
                watch.close()
            if network is not None:
                network.close()
            if engine is not None:
                engine.close()

    def _execute_with(
        self,
        plan: ScenarioPlan,
        devnet: Any,
        rig: FaultRig | None,
        watch: L1Watch | None,
        progress: ProgressSink | None,
        engine: EngineWatch | None = None,
        live_run: str | None = None,
        network: NetworkWatch | None = None,
    ) -> RunResult:
        from pytest_gashammer.edge.preparation import prepare_run
        from pytest_gashammer.edge.runtime import EdgeAssignment

        incidents_before = len(devnet.incidents())
        started = time.monotonic()
        with self._lock:
            edges = [link for link in self.edges.values() if link.ready]
        if not edges:
            raise GashammerError("no edge is available to run the scenario (all workers lost?)")
        edges.sort(key=lambda link: _edge_order(link.edge_id))
        notes = []
        if len(edges) > plan.senders:
            # Every edge needs senders of its own (a sender's nonces are one sequence): fund one per edge.
            notes.append(
                f"{SENDERS_NOTE}{len(edges)} edges need a sender each: ran {len(edges)} senders, "
                f"not the plan's {plan.senders}"
            )
            plan = dataclasses.replace(plan, senders=len(edges))
        shares = _capacity_shares([max(int(link.info.get("cores", 1)), 1) for link in edges])
        ranges = _sender_ranges(plan.senders, shares)

        base = dict(
            plan=plan.to_dict(),
            rpc_url=devnet.rpc_url,
            ws_url=devnet.ws_url,
            chain_id=devnet.chain_id,
            funder_key=devnet.funder.key,
        )
        preparation = prepare_run(
            EdgeAssignment(edge_id="hive", sender_start=0, sender_count=plan.senders, **base)
        )
        # Setup went to the node directly; the run itself goes through the fault proxies, if any.
        endpoints = rig.endpoints(devnet) if rig is not None else {"feed_url": devnet.feed_url}
        base.update(endpoints)
        if network is not None:
            base["send_urls"] = network.send_urls(str(base["rpc_url"]))

        run_id = f"run{next(self._run_ids)}"
        telemetry_run = None
        if self.telemetry is not None:
            telemetry_run = self.telemetry.begin(plan, devnet, node_version=devnet.node_version)
            self._telemetry_run = telemetry_run
        self.last_telemetry_run = telemetry_run
        state = _RunState(run_id, [link.edge_id for link in edges])
        origin: int | None = None
        logger.debug("run %s (%r): %d edge(s), sender ranges %s", run_id, plan.name, len(edges), ranges)
        with self._lock:
            self._state = state
        try:
            for link, share, (start, count) in zip(edges, shares, ranges, strict=True):
                assignment = EdgeAssignment(
                    edge_id=link.edge_id,
                    sender_start=start,
                    sender_count=count,
                    gas_share=share,
                    preparation=preparation,
                    telemetry_run_id=telemetry_run,
                    **base,
                )
                if not link.send(protocol.ARM, run_id=run_id, assignment=assignment.to_dict()):
                    state.failed[link.edge_id] = f"edge {link.edge_id}: could not be reached to arm it"
            self._wait(state, lambda: self._settled(state, state.armed), timeouts.ARM_TIMEOUT)
            self._raise_if_failed(state, edges)
            armed = [link for link in edges if link.edge_id in state.armed and link.alive]
            origin = time.time_ns()  # the run clock's t=0, shared by every edge's telemetry
            if rig is not None:
                rig.start(time.monotonic(), origin)
            if telemetry_run is not None:
                self.telemetry.set_origin(telemetry_run, origin)
            for link in armed:
                link.progress = {}  # the last run's figures until this run's first heartbeat
                link.send(protocol.GO, run_id=run_id, origin_ns=origin)
            for link in edges:
                if link not in armed:
                    link.send(protocol.STOP, run_id=run_id, reason="not armed in time", kind="not-armed")
            if self.live is not None and live_run is not None:

                def stop(reason: str) -> None:
                    for link in armed:
                        link.send(protocol.STOP, run_id=run_id, reason=reason, kind="drain")

                self.live.run_started(
                    live_run,
                    [link.edge_id for link in armed],
                    stop=stop,
                    faults=rig.schedule.records if rig is not None else (),
                )
            tick = self._ticker(plan, progress, run_id, armed, live_run)
            self._wait(
                state,
                lambda: self._settled(state, set(state.reports)),
                timeouts.drain_budget(plan),
                tick=tick,
            )
            self._raise_if_failed(state, edges)
            for link in armed:
                if link.edge_id not in state.reports and link.edge_id not in state.failed:
                    link.send(
                        protocol.STOP,
                        run_id=run_id,
                        reason="the run exceeded its time budget",
                        kind="time-budget",
                    )
            self._wait(state, lambda: self._settled(state, set(state.reports)), timeouts.STOP_GRACE)
            self._raise_if_failed(state, edges)
        finally:
            with self._lock:
                self._state = None

        delivered = [link for link in edges if link.edge_id in state.reports]
        if telemetry_run is not None:
            for link in edges:
                if link.edge_id not in state.reports:
                    reason = state.failed.get(link.edge_id) or link.lost_reason or "it did not report in time"
                    self.telemetry.edge_lost(telemetry_run, link.edge_id, reason)
        first_start = min(state.started.values()) if state.started else 0
        records = rig.close() if rig is not None else None
        stopped = self.live.stopped_verdict(live_run) if self.live is not None else None
        result = finish_run(
            plan,
            [state.reports[link.edge_id] for link in delivered],
            devnet=devnet,
            node_version=devnet.node_version,
            duration=time.monotonic() - started,
            incidents_before=incidents_before,
            shares=[shares[edges.index(link)] for link in delivered],
            telemetry=self.telemetry,
            telemetry_run=telemetry_run,
            origin_unix_ns=origin,
            leading_verdicts=[_edges_verdict(edges, shares, state), *([stopped] if stopped else [])],
            start_skews=[
                (state.started.get(link.edge_id, first_start) - first_start) / 1e9 for link in delivered
            ],
            notes=notes,
            fault_records=records,
            l1_watch=watch,
            engine_watch=engine,
            status="stopped" if stopped is not None else None,
            network_watch=network,
        )
        self._telemetry_run = None
        if self.live is not None and live_run is not None:
            publish_finished(self.live, live_run, result, [state.reports[link.edge_id] for link in delivered])
        return result

    def _settled(self, state: _RunState, done: set[str]) -> bool:
        """Every edge of the run has reached ``done``, failed, or been lost; or the run has failed."""
        if state.error is not None:
            return True
        for edge_id in state.edges:
            link = self.edges[edge_id]
            if edge_id not in done and edge_id not in state.failed and link.alive:
                return False
        return True

    def _raise_if_failed(self, state: _RunState, edges: list[EdgeLink]) -> None:
        """The hive failed handling a message of this run: stop its edges and fail it with the error."""
        if state.error is None:
            return
        for link in edges:
            if link.edge_id not in state.reports:
                link.send(
                    protocol.STOP, run_id=state.run_id, reason="the hive failed the run", kind="requested"
                )
        raise GashammerError(state.error)

    def _ticker(
        self,
        plan: ScenarioPlan,
        progress: ProgressSink | None,
        run_id: str,
        armed: list[EdgeLink],
        live_run: str | None = None,
    ) -> Callable[[], None] | None:
        """What the run's wait does every half second: draw the progress line, once a second give
        the live API's board the edges' heartbeats, and on a capacity step stop the edges once the
        step is clearly past the chain's limit (``oracle.capacity.past_limit``)."""
        from pytest_gashammer.oracle.capacity import past_limit

        watching = [plan.capacity_step is not None]
        live = self.live if live_run is not None else None
        if progress is None and not watching[0] and live is None:
            return None

        def tick() -> None:
            summed = self.progress()
            if live is not None and live_run is not None and live.due(live_run):
                live.tick(
                    live_run,
                    phase=summed.phase,
                    elapsed=summed.elapsed,
                    edges={link.edge_id: link.progress for link in armed if link.progress},
                    inclusion_p99=summed.recent_inclusion_p99,
                )
            if progress is not None:
                progress.update(plan, summed)
            if watching[0]:
                why = past_limit(dict(plan.slo), summed.recent_inclusion_p99)
                if why is not None:
                    watching[0] = False
                    logger.info("capacity step %s: %s", plan.capacity_step, why)
                    for link in armed:
                        link.send(protocol.STOP, run_id=run_id, reason=why, kind="requested")

        return tick

    def _wait(
        self,
        state: _RunState,
        settled: Callable[[], bool],
        timeout: float,
        *,
        tick: Callable[[], None] | None = None,
    ) -> None:
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                if settled():
                    return
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return
                # Loss of an edge notifies the condition, so the barrier re-checks membership at once.
                self._lock.wait(min(remaining, 0.5))
            if tick is not None:
                tick()

    # -- teardown -------------------------------------------------------------------------------
    def close(self) -> None:
        self._closed.set()
        self._runs.put(None)
        for link in list(self.edges.values()):
            if link.gateway is not None:
                link.send(protocol.SHUTDOWN)
        for link in list(self.edges.values()):
            if link.gateway is not None:
                with contextlib.suppress(Exception):
                    link.gateway.exit()
        if self.devnet is not None:
            self.devnet.close()
            self.devnet = None


def _edge_order(edge_id: str) -> tuple[str, int]:
    prefix = edge_id.rstrip("0123456789")
    digits = edge_id[len(prefix) :]
    return prefix, int(digits) if digits else 0


def _capacity_shares(capacities: list[int]) -> list[float]:
    """Each edge's share of the gas rate, in proportion to its capacity (cores)."""
    total = sum(capacities)
    return [capacity / total for capacity in capacities]


def _sender_ranges(total: int, shares: list[float]) -> list[tuple[int, int]]:
    """Disjoint, contiguous ``(start, count)`` ranges that split exactly ``total`` senders by ``shares``.

    Every edge gets at least one sender, so ``total`` must be at least the number of edges. The
    counts follow the shares by largest remainder: 10 senders over 3 equal edges are 4 + 3 + 3.
    """
    if total < len(shares):
        raise ValueError(f"{total} sender(s) cannot give each of {len(shares)} edges one of its own")
    ideal = [total * share for share in shares]
    counts = [int(value) for value in ideal]
    by_remainder = sorted(range(len(shares)), key=lambda edge: (-(ideal[edge] - counts[edge]), edge))
    for edge in by_remainder[: total - sum(counts)]:
        counts[edge] += 1
    for edge, count in enumerate(counts):  # a share too small for a sender still gets one
        if count == 0:
            counts[edge] = 1
            counts[counts.index(max(counts))] -= 1
    ranges = []
    start = 0
    for count in counts:
        ranges.append((start, count))
        start += count
    return ranges


def _edges_verdict(edges: list[EdgeLink], shares: list[float], state: _RunState) -> Verdict:
    lost = []
    lost_share = 0.0
    for link, share in zip(edges, shares, strict=True):
        if link.edge_id in state.reports:
            continue
        reason = state.failed.get(link.edge_id) or link.lost_reason or "it did not report in time"
        lost.append(f"{link.edge_id} ({link.info.get('host', '?')}): {reason}")
        lost_share += share
    if lost:
        return Verdict(
            "edges",
            "failed",
            f"{len(lost)} of {len(edges)} edge(s) lost; {lost_share:.0%} of the load was not generated",
            {"lost": lost, "lost_share": round(lost_share, 4)},
        )
    return Verdict("edges", "passed", f"all {len(edges)} edge(s) took part and reported")
