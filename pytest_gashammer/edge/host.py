"""Hosting an edge in a process the hive does not own: a pytest-xdist worker or a remote gateway.

The host owns one execnet channel to the hive. Everything it receives goes through a queue to
its own daemon thread (an execnet callback must never block), and everything it sends goes
through one lock (socket gateways write without one). It registers, heartbeats, runs the edge work
the hive arms and starts, and ships each report back in frames well under a megabyte.

In an xdist worker the same channel also carries the worker's own requests to the hive (a test
calling ``hammer.run()``); :class:`HiveClient` is that side.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import queue
import socket
import threading
import time
from typing import Any

from pytest_gashammer._version import __version__
from pytest_gashammer.errors import GashammerError
from pytest_gashammer.hive import protocol

HEARTBEAT_SECONDS = 0.5
ARM_TO_GO_TIMEOUT = 120.0
_EOF = ("__eof__",)


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
    """Serves the hive's ARM / GO / STOP commands on one channel."""

    def __init__(self, channel: Any, edge_id: str) -> None:
        self.channel = channel
        self.edge_id = edge_id
        self._send_lock = threading.Lock()
        self._inbox: queue.Queue[tuple[Any, ...]] = queue.Queue()
        self._go: dict[str, threading.Event] = {}
        self._runtimes: dict[str, Any] = {}
        self._waiters: dict[str, queue.Queue[tuple[Any, ...]]] = {}
        self._closed = threading.Event()
        self._current_progress: Any = None

    # -- lifecycle ------------------------------------------------------------------------------
    def start(self) -> EdgeHost:
        self.channel.setcallback(self._inbox.put, endmarker=_EOF)
        threading.Thread(target=self._serve, name=f"gashammer-edge-host-{self.edge_id}", daemon=True).start()
        threading.Thread(
            target=self._heartbeat, name=f"gashammer-heartbeat-{self.edge_id}", daemon=True
        ).start()
        self.send(
            protocol.HELLO,
            {
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

    def send(self, *message: Any) -> None:
        with self._send_lock:
            if not self.channel.isclosed():
                self.channel.send(tuple(message))

    # -- requests from this process to the hive (xdist worker tests) ------------------------------
    def request(self, kind: str, *fields: Any, timeout: float) -> tuple[Any, ...]:
        """Send a request and wait for the hive's answer with the same request id."""
        request_id = f"{self.edge_id}-{next(_request_ids)}"
        answers: queue.Queue[tuple[Any, ...]] = queue.Queue()
        self._waiters[request_id] = answers
        try:
            self.send(kind, request_id, *fields)
            try:
                return answers.get(timeout=timeout)
            except queue.Empty:
                raise GashammerError(f"the hive did not answer {kind} within {timeout:.0f} s") from None
        finally:
            self._waiters.pop(request_id, None)

    # -- the serving thread ---------------------------------------------------------------------
    def _serve(self) -> None:
        while True:
            message = self._inbox.get()
            if message is _EOF or message == _EOF:
                self._shutdown("the hive closed the channel")
                return
            kind = message[0]
            if kind == protocol.ARM:
                self._arm(message[1], message[2])
            elif kind == protocol.GO:
                runtime = self._runtimes.get(message[1])
                if runtime is not None and len(message) > 2:
                    runtime.run_origin_unix_ns = message[2]
                self._go.setdefault(message[1], threading.Event()).set()
            elif kind == protocol.STOP:
                runtime = self._runtimes.get(message[1])
                if runtime is not None:
                    runtime.stop(message[2])
                self._go.setdefault(message[1], threading.Event()).set()
            elif kind == protocol.SHUTDOWN:
                self._shutdown("shutdown")
                return
            elif kind in (protocol.RUN_RESULT, protocol.DEVNET):
                waiter = self._waiters.get(message[1])
                if waiter is not None:
                    waiter.put(message)

    def _shutdown(self, reason: str) -> None:
        for runtime in list(self._runtimes.values()):
            runtime.stop(reason)
        for event in self._go.values():
            event.set()
        self._closed.set()

    def _heartbeat(self) -> None:
        while not self._closed.wait(HEARTBEAT_SECONDS):
            runtime = self._current_progress
            progress = runtime.snapshot().__dict__ if runtime is not None else {}
            with contextlib.suppress(Exception):
                self.send(protocol.HEARTBEAT, progress)

    def _arm(self, run_id: str, assignment_data: dict[str, Any]) -> None:
        from pytest_gashammer.edge.runtime import EdgeAssignment, EdgeRuntime

        go = self._go.setdefault(run_id, threading.Event())

        def gate() -> None:
            self.send(protocol.ARMED, run_id)
            if not go.wait(ARM_TO_GO_TIMEOUT):
                raise GashammerError(f"edge {self.edge_id}: no start signal within {ARM_TO_GO_TIMEOUT:.0f} s")
            self.send(protocol.STARTED, run_id, time.time_ns())

        try:
            runtime = EdgeRuntime(
                EdgeAssignment.from_dict(assignment_data),
                start_gate=gate,
                telemetry_sink=lambda table, frame: self.send(protocol.TELEMETRY, run_id, table, frame),
            )
        except Exception as exc:  # a bad assignment is this run's failure, not the host's
            self.send(protocol.FAILED, run_id, f"edge {self.edge_id}: {type(exc).__name__}: {exc}")
            return
        self._runtimes[run_id] = runtime
        self._current_progress = runtime
        runtime.start()
        threading.Thread(target=self._deliver, args=(run_id, runtime), daemon=True).start()

    def _deliver(self, run_id: str, runtime: Any) -> None:
        runtime.join()
        try:
            report = runtime.result()
        except BaseException as exc:  # reported to the hive, which decides what it means for the run
            self.send(protocol.FAILED, run_id, f"edge {self.edge_id}: {exc}")
        else:
            for frame in protocol.report_frames(run_id, report):
                self.send(*frame)
        finally:
            self._runtimes.pop(run_id, None)
            self._go.pop(run_id, None)
            if self._current_progress is runtime:
                self._current_progress = None


_request_ids = itertools.count(1)


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
        self._devnet: Any = None

    def run(self, plan: Any, *, progress: Any = None) -> Any:
        from pytest_gashammer.hive.local import SETUP_BUDGET, STOP_GRACE

        # The run may wait behind others in the hive's queue: allow for a long queue, never forever.
        timeout = SETUP_BUDGET + plan.sending_time + plan.inclusion_timeout + STOP_GRACE + 1800.0
        answer = self.host.request(protocol.RUN_REQUEST, plan.to_dict(), {}, timeout=timeout)
        _, _, result_data, error = answer
        if error is not None:
            raise GashammerError(error)
        return protocol.result_from_dict(result_data)

    def devnet(self) -> Any:
        if self._devnet is None:
            _, _, endpoints, error = self.host.request(protocol.DEVNET_REQUEST, timeout=180.0)
            if error is not None:
                raise GashammerError(error)
            from pytest_gashammer.devnet.base import SharedDevnet

            self._devnet = SharedDevnet(endpoints)
        return self._devnet
