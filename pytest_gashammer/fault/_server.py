"""The thread-and-loop shell both fault proxies run in: :class:`~pytest_gashammer._loop_server.LoopServer`
bound to loopback. A fault proxy breaks promises on purpose and must never be reachable from
another machine.
"""

from __future__ import annotations

import concurrent.futures
import time

from pytest_gashammer._loop_server import LOOPBACK
from pytest_gashammer._loop_server import LoopServer as _LoopServer
from pytest_gashammer.errors import GashammerError

__all__ = ["LOOPBACK", "FaultProxyError", "LoopServer"]


class FaultProxyError(GashammerError):
    """A fault proxy could not start: the port is taken or its upstream is unusable."""


class LoopServer(_LoopServer):
    """Base of the proxies: always on loopback, failing with :class:`FaultProxyError`."""

    kind = "fault proxy"
    error = FaultProxyError

    def __init__(self, *, port: int = 0, startup_timeout: float = 10.0) -> None:
        super().__init__(host=LOOPBACK, port=port, startup_timeout=startup_timeout)

    def thread_cpu_seconds(self, timeout: float = 5.0) -> float:
        """CPU seconds the proxy's thread has used so far (``time.thread_time`` read on its loop).

        The proxy's whole cost is on that one thread, so the difference of two readings is what it
        spent in between (benchmarks/bench_rpc_proxy.py divides it by requests). Raises
        :class:`FaultProxyError` when the proxy is not running.
        """
        loop = self._loop
        if loop is None or not self.running:
            raise FaultProxyError(f"the {self.kind} is not running; start() it first")
        reading: concurrent.futures.Future[float] = concurrent.futures.Future()
        try:
            loop.call_soon_threadsafe(lambda: reading.set_result(time.thread_time()))
        except RuntimeError:  # the loop closed meanwhile
            raise FaultProxyError(f"the {self.kind} stopped") from None
        return reading.result(timeout)
