"""The worker side of the hive: an edge hosted in a process the hive does not own.

That process is a pytest-xdist worker or a remote execnet gateway. :class:`EdgeHost` owns one
channel to the hive. Everything it receives goes through a queue to its own daemon thread (an
execnet callback must never block) and is handled by an ``on_<name>`` method; everything it sends
goes through one lock (socket gateways write without one). It registers, heartbeats, runs the edge
work the hive arms and starts, and ships each report back in frames well under a megabyte.

In an xdist worker the same channel also carries the worker's own requests to the hive (a test
calling ``hammer.run()``); :class:`HiveClient` is that side.
"""

from __future__ import annotations

import itertools
import logging
import os
import queue
import socket
import threading
import time
from typing import TYPE_CHECKING, Any

from pytest_gashammer._version import __version__
from pytest_gashammer.errors import GashammerError
from pytest_gashammer.hive import protocol, timeouts
from pytest_gashammer.hive.base import ProgressSink
from pytest_gashammer.results import RunResult
from pytest_gashammer.telemetry.records import StopKind

if TYPE_CHECKING:
    from pytest_gashammer.devnet.base import SharedDevnet
    from pytest_gashammer.edge.runtime import EdgeRuntime
    from pytest_gashammer.scenario.spec import ScenarioPlan

logger = logging.getLogger(__name__)

_EOF = ("__eof__",)
_request_ids = itertools.count(1)


def signing_speed(samples: int = 200) -> float:
    """Transactions this process signs per second: what the hive reports as the edge's speed."""
    from pytest_gashammer.chain.signer import FastSigner

    signer = FastSigner(b"\x01" * 32, 1)
    prepared = signer.prepare(
        {
            "type": 2,
            "gas": 21_000,
            "maxFeePerGas": 1,
            "maxPriorityFeePerGas": 0,
            "to": b"\x02" * 20,
            "value": 1,
        }
    )
    started = time.perf_counter()
    for nonce in range(samples):
        prepared.sign(nonce)
    return samples / max(time.perf_counter() - started, 1e-9)


class EdgeHost:
    """Serves the hive's messages (arm, go, stop, shutdown, and answers to requests) on one channel."""

    def __init__(self, channel: Any, edge_id: str) -> None:
        self.channel = channel
        self.edge_id = edge_id
        self._send_lock = threading.Lock()
        self._inbox: queue.Queue[Any] = queue.Queue()
        self._go: dict[str, threading.Event] = {}
        self._runtimes: dict[str, EdgeRuntime] = {}
        self._waiters: dict[str, queue.Queue[dict[str, Any]]] = {}
        self._closed = threading.Event()
        self._current_progress: EdgeRuntime | None = None

    # -- lifecycle ------------------------------------------------------------------------------
    def start(self) -> EdgeHost:
        self.channel.setcallback(self._inbox.put, endmarker=_EOF)
        threading.Thread(target=self._serve, name=f"gashammer-edge-host-{self.edge_id}", daemon=True).start()
        threading.Thread(
            target=self._heartbeat, name=f"gashammer-heartbeat-{self.edge_id}", daemon=True
        ).start()
        self.send(
            protocol.HELLO,
            info={
                "edge_id": self.edge_id,
                "host": socket.gethostname(),
                "pid": os.getpid(),
                "cores": os.cpu_count() or 1,
                "signing_tx_per_sec": round(signing_speed(), 1),
                "version": __version__,
            },
        )
        return self

    def wait_closed(self, timeout: float | None = None) -> bool:
        return self._closed.wait(timeout)

    def send(self, name: str, **fields: Any) -> None:
        self._send(protocol.message(name, **fields))

    def _send(self, message: protocol.Message) -> None:
        with self._send_lock:
            if not self.channel.isclosed():
                protocol.trace(logger, "send", self.edge_id, message)
                self.channel.send(message)

    # -- requests from this process to the hive (xdist worker tests) ------------------------------
    def request(self, name: str, *, timeout: float, **fields: Any) -> dict[str, Any]:
        """Send a request and wait for the fields of the hive's answer with the same request id."""
        request_id = f"{self.edge_id}-{next(_request_ids)}"
        answers: queue.Queue[dict[str, Any]] = queue.Queue()
        self._waiters[request_id] = answers
        try:
            self.send(name, request_id=request_id, **fields)
            try:
                return answers.get(timeout=timeout)
            except queue.Empty:
                raise GashammerError(f"the hive did not answer {name} within {timeout:.0f} s") from None
        finally:
            self._waiters.pop(request_id, None)

    # -- the serving thread ---------------------------------------------------------------------
    def _serve(self) -> None:
        while not self._closed.is_set():
            raw = self._inbox.get()
            if raw is _EOF or raw == _EOF:
                self._shutdown("the hive closed the channel")
                return
            self._handle(raw)

    def _handle(self, raw: Any) -> None:
        """Handle one message; an error fails the run the message belongs to, or is logged."""
        try:
            message = protocol.decode(raw, protocol.HIVE_TO_EDGE)
            protocol.trace(logger, "handle", self.edge_id, message)
            protocol.dispatch(self, message)
        except Exception as exc:
            fields = (
                raw[1] if isinstance(raw, tuple | list) and len(raw) == 2 and isinstance(raw[1], dict) else {}
            )
            name = raw[0] if fields else "?"
            text = f"edge {self.edge_id}: handling {name!r} failed: {type(exc).__name__}: {exc}"
            logger.exception("%s", text)
            run_id = fields.get("run_id")
            if isinstance(run_id, str):
                runtime = self._runtimes.get(run_id)
                if runtime is not None:
                    runtime.stop(text, "requested")
                self.send(protocol.FAILED, run_id=run_id, message=text)
            request_id = fields.get("request_id")
            if isinstance(request_id, str) and request_id in self._waiters:
                self._waiters[request_id].put(
                    {"request_id": request_id, "result": None, "endpoints": None, "error": text}
                )

    def on_arm(self, run_id: str, assignment: dict[str, Any]) -> None:
        from pytest_gashammer.edge.runtime import EdgeAssignment, EdgeRuntime

        go = self._go.setdefault(run_id, threading.Event())

        def gate() -> None:
            self.send(protocol.ARMED, run_id=run_id)
            if not go.wait(timeouts.ARM_TO_GO_TIMEOUT):
                raise GashammerError(
                    f"edge {self.edge_id}: no start signal within {timeouts.ARM_TO_GO_TIMEOUT:.0f} s"
                )
            self.send(protocol.STARTED, run_id=run_id, wall_ns=time.time_ns())

        try:
            runtime = EdgeRuntime(
                EdgeAssignment.from_dict(assignment),
                start_gate=gate,
                telemetry_sink=lambda table, frame: self.send(
                    protocol.TELEMETRY, run_id=run_id, table=table, frame=frame
                ),
            )
        except Exception as exc:  # a bad assignment is this run's failure, not the host's
            self.send(
                protocol.FAILED, run_id=run_id, message=f"edge {self.edge_id}: {type(exc).__name__}: {exc}"
            )
            return
        self._runtimes[run_id] = runtime
        self._current_progress = runtime
        runtime.start()
        threading.Thread(target=self._deliver, args=(run_id, runtime), daemon=True).start()

    def on_go(self, run_id: str, origin_ns: int) -> None:
        runtime = self._runtimes.get(run_id)
        if runtime is not None:
            runtime.run_origin_unix_ns = origin_ns
        self._go.setdefault(run_id, threading.Event()).set()

    def on_stop(self, run_id: str, reason: str, kind: StopKind) -> None:
        runtime = self._runtimes.get(run_id)
        if runtime is not None:
            runtime.stop(reason, kind)
        self._go.setdefault(run_id, threading.Event()).set()

    def on_shutdown(self) -> None:
        self._shutdown("shutdown")

    def on_run_result(self, request_id: str, result: dict[str, Any] | None, error: str | None) -> None:
        self._answer(request_id, {"result": result, "error": error})

    def on_devnet(self, request_id: str, endpoints: dict[str, Any] | None, error: str | None) -> None:
        self._answer(request_id, {"endpoints": endpoints, "error": error})

    def _answer(self, request_id: str, fields: dict[str, Any]) -> None:
        waiter = self._waiters.get(request_id)
        if waiter is None:
            logger.debug(
                "edge %s: answer to request %s came after its caller gave up", self.edge_id, request_id
            )
            return
        waiter.put(fields)

    def _shutdown(self, reason: str) -> None:
        for runtime in list(self._runtimes.values()):
            runtime.stop(reason, "shutdown")
        for event in self._go.values():
            event.set()
        self._closed.set()

    def _heartbeat(self) -> None:
        while not self._closed.wait(timeouts.HEARTBEAT_SECONDS):
            runtime = self._current_progress
            progress = runtime.snapshot().__dict__ if runtime is not None else {}
            try:
                self.send(protocol.HEARTBEAT, progress=progress)
            except Exception:  # the channel is going away; the serving thread notices and shuts down
                logger.debug("edge %s: heartbeat not sent", self.edge_id, exc_info=True)

    def _deliver(self, run_id: str, runtime: EdgeRuntime) -> None:
        runtime.join()
        try:
            report = runtime.result()
        except BaseException as exc:  # reported to the hive, which decides what it means for the run
            self.send(protocol.FAILED, run_id=run_id, message=f"edge {self.edge_id}: {exc}")
        else:
            for frame in protocol.report_frames(run_id, report):
                self._send(frame)
        finally:
            self._runtimes.pop(run_id, None)
            self._go.pop(run_id, None)
            if self._current_progress is runtime:
                self._current_progress = None


def serve(channel: Any, edge_id: str) -> None:
    """Entry point on a remote gateway: host an edge until the hive shuts it down."""
    host = EdgeHost(channel, edge_id).start()
    while not host.wait_closed(1.0):
        if channel.isclosed():
            return


class HiveClient:
    """The hive as seen from an xdist worker: ``run(plan)`` sends the request and waits for the result."""

    def __init__(self, host: EdgeHost) -> None:
        self.host = host
        self._devnet: SharedDevnet | None = None
        #: The longest planned run (s) this worker collected: sent along, since a worker's request
        #: may be what starts the session's devnet, and that length decides its history.
        self.longest_run: float | None = None

    def run(self, plan: ScenarioPlan, *, progress: ProgressSink | None = None) -> RunResult:
        """Have the controller's hive run ``plan``. Progress is drawn by the controller, not here."""
        answer = self.host.request(
            protocol.RUN_REQUEST,
            plan=plan.to_dict(),
            options={"longest_run": self.longest_run},
            timeout=timeouts.answer_timeout(plan),
        )
        if answer["error"] is not None:
            raise GashammerError(answer["error"])
        return protocol.result_from_dict(answer["result"])

    def devnet(self) -> SharedDevnet:
        if self._devnet is None:
            answer = self.host.request(
                protocol.DEVNET_REQUEST, longest_run=self.longest_run, timeout=timeouts.DEVNET_TIMEOUT
            )
            if answer["error"] is not None:
                raise GashammerError(answer["error"])
            from pytest_gashammer.devnet.base import SharedDevnet

            self._devnet = SharedDevnet(answer["endpoints"])
        return self._devnet
