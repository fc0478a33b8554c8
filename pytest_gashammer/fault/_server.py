"""The thread-and-loop shell both fault proxies run in: :class:`~pytest_gashammer._loop_server.LoopServer`
bound to loopback. A fault proxy breaks promises on purpose and must never be reachable from
another machine.
"""

from __future__ import annotations

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
