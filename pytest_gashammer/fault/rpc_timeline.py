"""Timeline faults on the JSON-RPC path: latency, errors, resets, a black hole and a thin pipe.

Each one is a condition a healthy chain's clients must survive while it lasts, modelled on the toxics
of a TCP fault proxy, applied by :class:`~pytest_gashammer.fault.rpc_proxy.RpcProxy` per HTTP request
while the fault is armed (see :mod:`.switched` for the switch and the record):

- :class:`RpcLatency` holds every request back ``ms`` ± ``jitter_ms`` before it is forwarded;
- :class:`RpcError` answers a share of the calls locally with a JSON-RPC error, never forwarding them;
- :class:`RpcReset` resets every request's connection (TCP RST) and, at arm, every open connection;
- :class:`RpcBlackhole` accepts requests and never answers; at disarm their connections are reset;
- :class:`RpcBandwidth` passes request and response bytes at a fixed rate shared by all connections.

The proxy calls the hooks of :class:`RpcTimelineFault` on its loop thread, in this order: at a
request's arrival (before its body is read) :meth:`~RpcTimelineFault.on_arrival`, which may hold it
and decide to reset it; after the body is read :meth:`~RpcTimelineFault.throttle` ("in") and
:meth:`~RpcTimelineFault.request_delay`; each call goes through ``on_request`` like any
:class:`~pytest_gashammer.fault.faults.RpcFault`; the answer goes out through
:meth:`~RpcTimelineFault.throttle` ("out") in chunks.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import math
import random
import socket
import struct
import time
from collections.abc import Collection
from typing import Any, ClassVar

from pytest_gashammer.fault.faults import RpcCall, RpcFault
from pytest_gashammer.fault.switched import TimelineFault

__all__ = [
    "RpcBandwidth",
    "RpcBlackhole",
    "RpcError",
    "RpcLatency",
    "RpcReset",
    "RpcTimelineFault",
    "reset_transport",
]

_LINGER_RESET = struct.pack("ii", 1, 0)  # SO_LINGER on, 0 s: close() sends RST instead of FIN
_THROTTLE_SLICE = 0.05  # a throttled wait re-checks the switch this often, so disarm frees it promptly


def reset_transport(transport: Any) -> bool:
    """Close ``transport`` with a TCP reset (SO_LINGER 0, then abort); False if it was already closed."""
    if transport is None or transport.is_closing():
        return False
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RESET)
    transport.abort()
    return True


class RpcTimelineFault(TimelineFault, RpcFault):
    """A timeline fault on the JSON-RPC path. Hooks run on the proxy's loop, only while armed."""

    throttles: ClassVar[bool] = False
    """True when :meth:`throttle` may wait: the proxy then streams the answer in chunks."""

    async def on_arrival(self, request: Any) -> bool:
        """A request arrived (its body not yet read); True resets its connection instead of answering."""
        return False

    def request_delay(self, calls: int) -> float:
        """Seconds to hold this request (``calls`` JSON-RPC calls, 0 if not JSON-RPC) before forwarding."""
        return 0.0

    async def throttle(self, direction: str, size: int) -> None:
        """``size`` bytes pass ``"in"`` (the request body) or ``"out"`` (a chunk of the answer)."""

    def chunk_size(self) -> int:
        """The largest answer chunk :meth:`throttle` should see at once."""
        return 1 << 16


class RpcLatency(RpcTimelineFault):
    """Holds every request back ``ms`` ± ``jitter_ms`` milliseconds before forwarding it.

    The jitter is uniform in [-jitter_ms, +jitter_ms], drawn once per HTTP request (a batch is one
    request) from ``random.Random(seed)``: the sequence of delays is the same on every run. A delay
    never goes below zero.
    """

    kind = "rpc.latency"
    touch_key = "requests"

    def __init__(self, ms: float, jitter_ms: float = 0, seed: int = 0, *, armed: bool = True) -> None:
        for name, value in (("ms", ms), ("jitter_ms", jitter_ms)):
            if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < math.inf:
                raise ValueError(
                    f"RpcLatency: {name}={value!r} must be a non-negative number of milliseconds"
                )
        self.ms = float(ms)
        self.jitter_ms = float(jitter_ms)
        self.seed = seed
        self._random = random.Random(seed)
        super().__init__(armed=armed)

    def request_delay(self, calls: int) -> float:
        with self._lock:
            offset = self._random.uniform(-self.jitter_ms, self.jitter_ms) if self.jitter_ms else 0.0
        delay = max(0.0, self.ms + offset) / 1000
        self._count("requests")
        self._count("calls", calls)
        self._count("delay_s", delay)
        return delay

    def summary(self) -> str:
        stats = self.stats
        requests = int(stats["requests"])
        mean = stats.get("delay_s", 0) / requests * 1000 if requests else 0.0
        jitter = f" ± {self.jitter_ms:g}" if self.jitter_ms else ""
        return (
            f"{self.kind} delayed {requests} requests ({int(stats.get('calls', 0))} calls) by "
            f"{self.ms:g}{jitter} ms (mean {mean:.1f} ms)"
        )


class RpcError(RpcTimelineFault):
    """Answers ``rate`` of the calls locally with JSON-RPC error ``code``; they are never forwarded.

    The choice is a counter, not a coin: of the first n calls seen while armed, exactly
    ``floor(n * rate)`` are answered with the error (``rate=0.25``: the 4th, 8th, 12th, ...), so a run
    is repeatable and the share exact. ``methods`` limits it to those methods (e.g.
    ``{"eth_sendRawTransaction"}``); notifications get no answer and are not counted.
    """

    kind = "rpc.error"
    touch_key = "calls"

    def __init__(
        self,
        rate: float,
        code: int = -32603,
        message: str = "internal error (injected by gashammer rpc.error)",
        *,
        methods: Collection[str] | None = None,
        armed: bool = True,
    ) -> None:
        if isinstance(rate, bool) or not isinstance(rate, int | float) or not 0 < rate <= 1:
            raise ValueError(f"RpcError: rate={rate!r} must be a share in (0, 1], e.g. rate=0.1")
        if isinstance(code, bool) or not isinstance(code, int):
            raise ValueError(f"RpcError: code={code!r} must be an integer JSON-RPC error code, e.g. -32603")
        self.rate = float(rate)
        self.code = code
        self.message = message
        self.methods = None if methods is None else frozenset(methods)
        self._seen = 0
        super().__init__(armed=armed)

    def on_request(self, call: RpcCall) -> None:
        if not self._armed or call.is_notification:
            return
        if self.methods is not None and call.method not in self.methods:
            return
        with self._lock:
            self._seen += 1
            chosen = math.floor(self._seen * self.rate) > math.floor((self._seen - 1) * self.rate)
        if chosen:
            call.reply_error(self.code, self.message, by=self.kind)
            self._count("calls")

    def summary(self) -> str:
        return f"{self.kind} answered {self.touched} calls with {self.code}"


class RpcReset(RpcTimelineFault):
    """Resets the connection of every request that arrives while armed, without an answer.

    The reset is a TCP RST (SO_LINGER 0): clients see "connection reset by peer". At arm, every
    connection open to the proxy (idle keep-alive ones and those with a request in flight) is reset too.
    """

    kind = "rpc.reset"
    touch_key = "requests"

    async def on_arrival(self, request: Any) -> bool:
        self._count("requests")
        return True

    def on_switch(self, proxy: Any, armed: bool, window: int) -> None:
        if armed:
            self._count("connections", proxy.reset_connections())

    def summary(self) -> str:
        stats = self.stats
        return (
            f"{self.kind} reset {int(stats['requests'])} requests and "
            f"{int(stats.get('connections', 0))} connections open at arm"
        )


class RpcBlackhole(RpcTimelineFault):
    """Accepts requests and never answers them while armed; at disarm their connections are reset.

    Nothing is answered late: a held request is dropped (its connection reset), so a client sees its
    own timeout or a reset, never a stale answer. At most ``max_held`` requests are held at once
    (clients that gave up are forgotten first); a request beyond that is reset at once and counted as
    ``overflow``, so a client retrying in a tight loop cannot grow the proxy without bound.
    """

    kind = "rpc.blackhole"
    touch_key = "requests"

    def __init__(self, *, max_held: int = 1024, armed: bool = True) -> None:
        if isinstance(max_held, bool) or not isinstance(max_held, int) or max_held < 1:
            raise ValueError(f"RpcBlackhole: max_held={max_held!r} must be a positive integer, e.g. 1024")
        self.max_held = max_held
        # Each held request: its window and the future that lets it go. Touched on the loop only.
        self._held: dict[int, tuple[int, Any, asyncio.Future[None]]] = {}
        self._tokens = itertools.count(1)
        super().__init__(armed=armed)

    @property
    def held(self) -> int:
        """Requests held right now."""
        return len(self._held)

    async def on_arrival(self, request: Any) -> bool:
        if len(self._held) >= self.max_held:
            self._forget_abandoned()
        if len(self._held) >= self.max_held:
            self._count("overflow")
            return True
        with self._lock:
            window = len(self._windows)
        token = next(self._tokens)
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._held[token] = (window, request, future)
        self._count("requests")
        try:
            await future
        finally:
            self._held.pop(token, None)
        return True

    def _forget_abandoned(self) -> None:
        for token, (_, request, future) in list(self._held.items()):
            if request.transport is None and not future.done():  # the client closed its connection
                future.set_result(None)
                self._held.pop(token, None)
                self._count("abandoned")

    def _drop(self, up_to_window: int) -> None:
        loop = asyncio.get_running_loop()
        for token, (window, _, future) in list(self._held.items()):
            if window <= up_to_window and future.get_loop() is loop and not future.done():
                future.set_result(None)
                self._held.pop(token, None)
                self._count("dropped")

    def on_switch(self, proxy: Any, armed: bool, window: int) -> None:
        if not armed:
            self._drop(window)

    def on_unbind(self, proxy: Any) -> None:
        """The proxy stops: let every request it holds go (their connections are reset)."""
        self._drop(len(self._windows) + 1)

    def summary(self) -> str:
        stats = self.stats
        return (
            f"{self.kind} held {int(stats['requests'])} requests unanswered "
            f"({int(stats.get('dropped', 0))} dropped at disarm, {int(stats.get('overflow', 0))} reset "
            f"over the cap of {self.max_held})"
        )


class _Pipe:
    """One direction of a shared link: a token bucket kept as the time its queue drains (GCRA).

    ``reserve(n)`` books n bytes behind everything booked before, from any connection, and says how
    long to wait before sending them; up to ``burst`` bytes pass without waiting after an idle spell.
    """

    def __init__(self, rate: float, burst: float) -> None:
        self.rate = rate
        self.burst = burst
        self.drained_at = 0.0

    def reset(self) -> None:
        self.drained_at = 0.0

    def reserve(self, size: int, now: float) -> float:
        self.drained_at = max(self.drained_at, now) + size / self.rate
        return max(0.0, self.drained_at - now - self.burst / self.rate)


class RpcBandwidth(RpcTimelineFault):
    """Passes request bodies and answers at ``bytes_per_sec``, shared by every connection of the proxy.

    Each direction is its own pipe (a full-duplex link): a request body is charged once read, before
    it is forwarded; an answer goes out in chunks of about 50 ms worth, each charged before it is
    written. ``burst_bytes`` (default 50 ms worth, at least 1,500) pass at once after an idle spell.
    At disarm, waits in progress end within 50 ms and the rest goes at full speed.
    """

    kind = "rpc.bandwidth"
    touch_key = "requests"
    throttles = True

    def __init__(self, bytes_per_sec: int, *, burst_bytes: int | None = None, armed: bool = True) -> None:
        if isinstance(bytes_per_sec, bool) or not isinstance(bytes_per_sec, int) or bytes_per_sec < 1:
            raise ValueError(
                f"RpcBandwidth: bytes_per_sec={bytes_per_sec!r} must be a positive integer, e.g. 100_000"
            )
        if burst_bytes is None:
            burst_bytes = max(1500, bytes_per_sec // 20)
        if isinstance(burst_bytes, bool) or not isinstance(burst_bytes, int) or burst_bytes < 0:
            raise ValueError(f"RpcBandwidth: burst_bytes={burst_bytes!r} must be a non-negative integer")
        self.bytes_per_sec = bytes_per_sec
        self.burst_bytes = burst_bytes
        self._pipes = {
            "in": _Pipe(bytes_per_sec, burst_bytes),
            "out": _Pipe(bytes_per_sec, burst_bytes),
        }
        super().__init__(armed=armed)

    def _on_arm_locked(self) -> None:
        for pipe in self._pipes.values():
            pipe.reset()  # a new window starts with an idle link

    def chunk_size(self) -> int:
        return max(256, min(1 << 16, self.bytes_per_sec // 20))

    async def throttle(self, direction: str, size: int) -> None:
        with self._lock:
            wait = self._pipes[direction].reserve(size, time.monotonic())
        if direction == "in":
            self._count("requests")
        self._count(f"bytes_{direction}", size)
        if wait <= 0:
            return
        self._count("waits")
        started = time.monotonic()
        deadline = started + wait
        while self._armed:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            await asyncio.sleep(min(left, _THROTTLE_SLICE))
        self._count("wait_s", time.monotonic() - started)

    def summary(self) -> str:
        stats = self.stats
        return (
            f"{self.kind} limited {int(stats['requests'])} requests to {self.bytes_per_sec} B/s "
            f"({int(stats.get('bytes_in', 0))} B in, {int(stats.get('bytes_out', 0))} B out, "
            f"{stats.get('wait_s', 0):.2f} s waited)"
        )
