"""The hive's live view, kept for the live API: runs, edges, per-second figures and an event log.

The hive writes to a :class:`LiveBoard` from its own threads, and only from what it already has:
a run queued, started, finished; an edge's hello, heartbeat and loss; the edges' summed progress
once a second. The server reads it from its event loop. Nothing here runs on an edge, so serving
costs the load generator nothing. One lock guards the state; listeners (the server's event
streams) are told about new events outside it.

Other parts can add to the API without the server knowing them: :meth:`LiveBoard.add_endpoint`
serves a JSON view under ``/api/v1/<name>``, and :meth:`LiveBoard.publish` puts an event of any
name on the stream.
"""

from __future__ import annotations

import collections
import dataclasses
import itertools
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from pytest_gashammer.results import Verdict

#: Events kept for late subscribers (a page opened mid-run replays them); older ones are dropped.
EVENT_BACKLOG = 4096
#: How often the hive's figures become a per-second sample (s).
SAMPLE_INTERVAL = 1.0
#: The counters an edge's progress carries that the board keeps per edge and sums per run.
COUNTERS = ("sent", "accepted", "rejected", "included", "included_gas")
#: The name of the verdict a run stopped through the API gets, and what starts its stop reason.
STOPPED = "stopped"
STOPPED_BY_API = "stopped through the live API"


@dataclasses.dataclass
class LiveEdge:
    edge_id: str
    host: str
    state: str = "up"
    joined_unix: float = dataclasses.field(default_factory=time.time)
    last_heartbeat_unix: float | None = None
    lost_reason: str | None = None
    #: Transactions sent and included by finished runs; the running run's come on top.
    sent: int = 0
    included: int = 0


@dataclasses.dataclass
class LiveRun:
    run_id: str
    name: str
    nodeid: str
    plan: dict[str, Any]
    state: str = "queued"  # queued, running, stopping, finished, stopped, failed
    phase: str = "queued"
    queued_unix: float = dataclasses.field(default_factory=time.time)
    started_unix: float | None = None
    finished_unix: float | None = None
    edges: dict[str, dict[str, int]] = dataclasses.field(default_factory=dict)
    seconds: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    verdicts: list[dict[str, Any]] | None = None
    result: dict[str, Any] | None = None
    #: The finished run's counters per edge, then per template (:data:`COUNTERS` each).
    templates: dict[str, dict[str, dict[str, int]]] = dataclasses.field(default_factory=dict)
    #: Latency histograms of the finished run: name -> (upper bounds, cumulative counts, sum, count).
    histograms: dict[str, tuple[list[float], list[int], float, int]] = dataclasses.field(default_factory=dict)
    stop_reason: str | None = None
    error: str | None = None
    # Not served: how to stop it, its fault records, and the last tick's clock.
    stop: Callable[[str], None] | None = dataclasses.field(default=None, repr=False)
    faults: Sequence[Any] = dataclasses.field(default=(), repr=False)
    announced: set[tuple[int, str]] = dataclasses.field(default_factory=set, repr=False)
    gas_rate_at: Callable[[float], float] | None = dataclasses.field(default=None, repr=False)
    last_tick: float = 0.0

    def totals(self) -> dict[str, int]:
        return {name: sum(edge.get(name, 0) for edge in self.edges.values()) for name in COUNTERS}

    def describe(self, *, full: bool) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": self.run_id,
            "name": self.name,
            "nodeid": self.nodeid,
            "state": self.state,
            "phase": self.phase,
            "queued_unix": self.queued_unix,
            "started_unix": self.started_unix,
            "finished_unix": self.finished_unix,
            "target_gas_per_sec": self.plan.get("target_gas_per_sec"),
            "totals": self.totals(),
            "stop_reason": self.stop_reason,
            "error": self.error,
        }
        if full:
            data["plan"] = self.plan
            data["edges"] = {edge: dict(counters) for edge, counters in self.edges.items()}
            data["templates"] = self.templates
            data["seconds"] = list(self.seconds)
            data["verdicts"] = self.verdicts
            data["result"] = self.result
        return data


class LiveBoard:
    """What the live API serves, written by the hive (see the module docstring)."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._seq = 0
        self.started_unix = time.time()
        self.runs: dict[str, LiveRun] = {}
        self.edges: dict[str, LiveEdge] = {}
        self._events: collections.deque[tuple[int, str, dict[str, Any]]] = collections.deque(
            maxlen=EVENT_BACKLOG
        )
        self._listeners: list[Callable[[], None]] = []
        self._endpoints: dict[str, Callable[[], Any]] = {}

    # -- extension points ------------------------------------------------------------------------
    def add_endpoint(self, name: str, view: Callable[[], Any]) -> None:
        """Serve ``view()`` (plain data) as JSON under ``/api/v1/<name>``; ``name`` must be new."""
        if (
            not name.isidentifier()
            or name in ("status", "runs", "edges", "events")
            or name in self._endpoints
        ):
            raise ValueError(f"endpoint name {name!r} is taken or not an identifier; choose another")
        self._endpoints[name] = view

    def endpoint(self, name: str) -> Callable[[], Any] | None:
        return self._endpoints.get(name)

    def publish(self, name: str, data: Mapping[str, Any]) -> int:
        """Put event ``name`` on the stream; its sequence number. Safe from any thread."""
        if not name or any(char.isspace() for char in name):
            raise ValueError(f"event name {name!r} must be one word, e.g. 'network.block'")
        with self._lock:
            seq = self._append(name, dict(data))
        self._notify()
        return seq

    def subscribe(self, listener: Callable[[], None]) -> None:
        """``listener()`` is called, from the publishing thread, after new events; it must not block."""
        with self._lock:
            self._listeners.append(listener)

    def unsubscribe(self, listener: Callable[[], None]) -> None:
        with self._lock:
            if listener in self._listeners:
                self._listeners.remove(listener)

    def events_since(self, seq: int) -> list[tuple[int, str, dict[str, Any]]]:
        """The kept events after sequence number ``seq`` (0: all kept), oldest first."""
        with self._lock:
            return [event for event in self._events if event[0] > seq]

    @property
    def last_seq(self) -> int:
        return self._seq

    def _append(self, name: str, data: dict[str, Any]) -> int:
        self._seq += 1
        data.setdefault("unix", time.time())
        self._events.append((self._seq, name, data))
        return self._seq

    def _notify(self) -> None:
        with self._lock:
            listeners = list(self._listeners)
        for listener in listeners:
            listener()

    # -- edges (the hive's registry) -------------------------------------------------------------
    def edge_joined(self, edge_id: str, host: str) -> None:
        with self._lock:
            edge = self.edges.get(edge_id)
            if edge is None:
                self.edges[edge_id] = LiveEdge(edge_id, host, last_heartbeat_unix=time.time())
            else:
                edge.host, edge.state, edge.lost_reason = host, "up", None
            self._append("edge.joined", {"edge": edge_id, "host": host})
        self._notify()

    def edge_heartbeat(self, edge_id: str) -> None:
        edge = self.edges.get(edge_id)
        if edge is not None:
            edge.last_heartbeat_unix = time.time()

    def edge_lost(self, edge_id: str, reason: str) -> None:
        with self._lock:
            edge = self.edges.get(edge_id)
            if edge is None or edge.state == "lost":
                return
            edge.state, edge.lost_reason = "lost", reason
            self._append("edge.lost", {"edge": edge_id, "reason": reason})
        self._notify()

    # -- runs (the hive's run path) --------------------------------------------------------------
    def run_queued(self, plan: Any) -> str:
        """A run joined the hive's queue; its id on the API (``plan``: a ScenarioPlan)."""
        run_id = f"run-{next(self._ids)}"
        run = LiveRun(run_id, plan.name, plan.nodeid, plan.to_dict(), gas_rate_at=plan.gas_rate_at)
        with self._lock:
            self.runs[run_id] = run
            self._append("run.queued", {"run": run_id, "name": run.name, "nodeid": run.nodeid})
        self._notify()
        return run_id

    def run_started(
        self,
        run_id: str,
        edge_ids: Iterable[str],
        *,
        stop: Callable[[str], None] | None = None,
        faults: Sequence[Any] = (),
    ) -> None:
        """The run's clock started on ``edge_ids``; ``stop(reason)`` ends it early, gracefully;
        ``faults`` are its fault records (``fault/timeline.py``), read once a second."""
        with self._lock:
            run = self.runs[run_id]
            run.state, run.phase, run.started_unix = "running", "setup", time.time()
            run.stop, run.faults, run.last_tick = stop, faults, self._clock()
            run.edges = {edge: dict.fromkeys(COUNTERS, 0) for edge in edge_ids}
            self._append("run.started", {"run": run_id, "edges": list(run.edges)})
        self._notify()

    def due(self, run_id: str) -> bool:
        """Whether a second has passed since the run's last sample (cheap; no lock)."""
        run = self.runs.get(run_id)
        return run is not None and self._clock() - run.last_tick >= SAMPLE_INTERVAL

    def tick(
        self,
        run_id: str,
        *,
        phase: str,
        elapsed: float,
        edges: Mapping[str, Mapping[str, Any]],
        inclusion_p99: float | None,
    ) -> None:
        """The run's figures now: each edge's progress counters (:data:`COUNTERS`), summed here."""
        now = self._clock()
        with self._lock:
            run = self.runs.get(run_id)
            if run is None or run.state not in ("running", "stopping"):
                return
            before = run.totals()
            for edge_id, progress in edges.items():
                run.edges[edge_id] = {name: int(progress.get(name, 0)) for name in COUNTERS}
                edge = self.edges.get(edge_id)
                if edge is not None:  # an in-process edge has no heartbeat: its figures are one
                    edge.last_heartbeat_unix = max(edge.last_heartbeat_unix or 0.0, time.time())
            after = run.totals()
            span = max(now - run.last_tick, 1e-3)
            run.last_tick = now
            sample = {
                "t": round(elapsed, 3),
                "phase": phase,
                **after,
                "sent_tx_per_sec": (after["sent"] - before["sent"]) / span,
                "included_gas_per_sec": (after["included_gas"] - before["included_gas"]) / span,
                "target_gas_per_sec": run.gas_rate_at(elapsed)
                if run.gas_rate_at and phase != "setup"
                else 0.0,
                "inclusion_p99": inclusion_p99,
            }
            run.seconds.append(sample)
            if phase != run.phase:
                run.phase = phase
                self._append("run.phase", {"run": run_id, "phase": phase, "t": sample["t"]})
            self._append("run.second", {"run": run_id, **sample})
            self._announce_faults(run)
        self._notify()

    def _announce_faults(self, run: LiveRun) -> None:
        for record in run.faults:
            for edge, at in (("begin", record.started_at), ("end", record.ended_at)):
                key = (record.index, edge)
                if at is None or key in run.announced:
                    continue
                run.announced.add(key)
                self._append(
                    f"fault.{edge}",
                    {"run": run.run_id, "index": record.index, "kind": record.kind, "t": round(at, 3),
                     "error": record.error},
                )  # fmt: skip

    def run_finished(
        self,
        run_id: str,
        result: Any,
        *,
        edges: Mapping[str, Mapping[str, int]],
        templates: Mapping[str, Mapping[str, Mapping[str, int]]] | None = None,
        histograms: Mapping[str, tuple[list[float], list[int], float, int]] | None = None,
    ) -> None:
        """The run's :class:`RunResult`, with each edge's final counters (:data:`COUNTERS`), the same
        per edge and template, and the latency histograms its digests give; these replace the live
        figures."""
        with self._lock:
            run = self.runs.get(run_id)
            if run is None:
                return
            self._announce_faults(run)
            for edge_id, counters in edges.items():
                run.edges[edge_id] = {name: int(counters.get(name, 0)) for name in COUNTERS}
                edge = self.edges.get(edge_id)
                if edge is not None:
                    edge.sent += run.edges[edge_id]["sent"]
                    edge.included += run.edges[edge_id]["included"]
            run.histograms = dict(histograms or {})
            run.templates = {
                edge_id: {
                    name: {k: int(counters.get(k, 0)) for k in COUNTERS} for name, counters in kinds.items()
                }
                for edge_id, kinds in (templates or {}).items()
            }
            run.state = "stopped" if run.stop_reason else "finished"
            run.phase, run.finished_unix, run.stop = "done", time.time(), None
            run.verdicts = [dataclasses.asdict(verdict) for verdict in result.verdicts]
            run.result = result.summary_dict()
            for verdict in run.verdicts:
                self._append(
                    "verdict", {"run": run_id, **{k: verdict[k] for k in ("name", "status", "summary")}}
                )
            self._append(
                "run.finished",
                {
                    "run": run_id,
                    "state": run.state,
                    "passed": result.passed,
                    "stopped_early": result.stopped_early,
                },
            )
        self._notify()

    def run_failed(self, run_id: str, error: str) -> None:
        with self._lock:
            run = self.runs.get(run_id)
            if run is None or run.state in ("finished", "stopped", "failed"):
                return
            run.state, run.phase, run.error, run.stop = "failed", "done", error, None
            run.finished_unix = time.time()
            self._append("run.finished", {"run": run_id, "state": "failed", "error": error})
        self._notify()

    def stopped_verdict(self, run_id: str | None) -> Verdict | None:
        """A failed ``stopped`` verdict for a run stopped through the API: its figures cover only
        the part that ran, so it must not pass as a full run. None otherwise."""
        run = self.runs.get(run_id) if run_id is not None else None
        if run is None or run.stop_reason is None:
            return None
        planned = max((float(phase["end"]) for phase in run.plan.get("phases", ())), default=0.0)
        at = run.seconds[-1]["t"] if run.seconds else 0.0
        return Verdict(
            STOPPED,
            "failed",
            f"{run.stop_reason} at t={at:.1f} s of a {planned:.1f} s plan; its figures cover only the part that ran",
            {"reason": run.stop_reason, "stopped_at_s": at, "planned_s": planned},
        )

    # -- what the server asks ---------------------------------------------------------------------
    def request_stop(self, run_id: str, who: str) -> tuple[int, str]:
        """Stop a running run gracefully (drain, verdicts, telemetry); an HTTP status and a message."""
        with self._lock:
            run = self.runs.get(run_id)
            if run is None:
                return 404, f"no run {run_id!r}; GET /api/v1/runs lists them"
            if run.state in ("stopping", "finished", "stopped", "failed"):
                return 409, f"run {run_id} is {run.state}; only a running run can be stopped"
            if run.state == "queued" or run.stop is None:
                return 409, f"run {run_id} has not started; stop it once it runs"
            reason = f"{STOPPED_BY_API} ({who})"
            run.state, run.stop_reason, stop = "stopping", reason, run.stop
            self._append("run.stopping", {"run": run_id, "reason": reason})
        stop(reason)
        self._notify()
        return 202, f"run {run_id} is stopping: it drains, is judged and is stored"

    def status(self) -> dict[str, Any]:
        with self._lock:
            running = [run.run_id for run in self.runs.values() if run.state in ("running", "stopping")]
            return {
                "started_unix": self.started_unix,
                "runs": len(self.runs),
                "running": running,
                "queued": sum(1 for run in self.runs.values() if run.state == "queued"),
                "edges_up": sum(1 for edge in self.edges.values() if edge.state == "up"),
                "last_event": self._seq,
                "endpoints": sorted(self._endpoints),
            }

    def runs_json(self) -> list[dict[str, Any]]:
        with self._lock:
            return [run.describe(full=False) for run in self.runs.values()]

    def run_json(self, run_id: str) -> dict[str, Any] | None:
        with self._lock:
            run = self.runs.get(run_id)
            return None if run is None else run.describe(full=True)

    def edges_json(self) -> list[dict[str, Any]]:
        with self._lock:
            live = {
                edge_id: counters
                for run in self.runs.values()
                if run.state in ("running", "stopping")
                for edge_id, counters in run.edges.items()
            }
            return [
                {
                    "id": edge.edge_id,
                    "host": edge.host,
                    "state": edge.state,
                    "last_heartbeat_unix": edge.last_heartbeat_unix,
                    "lost_reason": edge.lost_reason,
                    "sent": edge.sent + live.get(edge.edge_id, {}).get("sent", 0),
                    "included": edge.included + live.get(edge.edge_id, {}).get("included", 0),
                }
                for edge in self.edges.values()
            ]

    def snapshot(self) -> tuple[list[LiveRun], list[LiveEdge]]:
        """Copies of the runs and edges, for the metrics collector."""
        with self._lock:
            runs = [
                dataclasses.replace(
                    run,
                    edges={e: dict(c) for e, c in run.edges.items()},
                    seconds=run.seconds[-1:],
                    templates={
                        e: {t: dict(c) for t, c in kinds.items()} for e, kinds in run.templates.items()
                    },
                )
                for run in self.runs.values()
            ]
            return runs, [dataclasses.replace(edge) for edge in self.edges.values()]
