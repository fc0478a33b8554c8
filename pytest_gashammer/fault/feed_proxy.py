"""A WebSocket proxy in front of a Nitro sequencer feed that lets feed faults lie on its behalf.

Why it exists: the feed checks must be shown to catch a feed that skips, reorders or misreports
messages, and a healthy feed (the embedded devnet's relay, or a real Nitro node) never does. The proxy
sits between a feed client (``--gashammer-feed-url <proxy.url>``, or ``EdgeAssignment.feed_url``) and the
real feed, and applies :class:`~pytest_gashammer.fault.feed_faults.FeedFault` objects to the decoded
messages of every frame.

The handshake is Nitro's, passed through: for each client the proxy dials the upstream with the
client's ``Arbitrum-Feed-Client-Version`` and ``Arbitrum-Requested-Sequence-Number``, and answers the
client with the upstream's ``Arbitrum-Feed-Server-Version`` (2 for Nitro and the relay) and
``Arbitrum-Chain-Id``. An upstream that refuses the handshake is passed through with its status and
body; an unreachable one is HTTP 502. A frame that no fault changes is forwarded byte for byte; a
changed one is re-encoded with :func:`~pytest_gashammer.feed.codec.encode_broadcast`; a frame the
proxy cannot decode is forwarded unchanged (the client must see what the upstream sent). Messages
numbered below the client's requested sequence number are forwarded untouched and never offered to a
fault: a feed replays its whole backlog to a client that asks beyond its head (the relay and Nitro
both do), the client discards those, so a fault spent on one would break nothing. When the upstream
closes, the client is closed with the same code, or dropped abruptly if the upstream was.

Timeline faults (:class:`~pytest_gashammer.fault.feed_timeline.FeedTimelineFault`) act while armed: a
disconnect closes every client at arm and refuses handshakes with HTTP 503 before the upstream is
dialled; a stall holds each connection's frames (after the other faults saw them) and sends them in
order once disarmed; a drop is an ordinary ``on_messages`` fault that returns nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import http
import itertools
from collections import deque
from collections.abc import Sequence
from typing import Any

from pytest_gashammer.fault._server import LOOPBACK, FaultProxyError, LoopServer
from pytest_gashammer.fault.feed_faults import FeedFault
from pytest_gashammer.fault.feed_timeline import FeedTimelineFault
from pytest_gashammer.feed.codec import FeedDecodeError, decode_broadcast, encode_broadcast
from pytest_gashammer.feed.relay import (
    FEED_CHAIN_ID_HEADER,
    FEED_CLIENT_VERSION_HEADER,
    FEED_SERVER_VERSION_HEADER,
    REQUESTED_SEQUENCE_HEADER,
)

__all__ = ["FeedProxy", "FeedProxyStats"]

_FORWARDED_HEADERS = frozenset({FEED_CLIENT_VERSION_HEADER.lower(), REQUESTED_SEQUENCE_HEADER.lower()})
_SENDABLE_CLOSE_CODES = frozenset({1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014})


@dataclasses.dataclass
class FeedProxyStats:
    """Counters of a proxy, read with :attr:`FeedProxy.stats` (a copy)."""

    connections: int = 0
    clients: int = 0
    upstream_refusals: int = 0
    upstream_failures: int = 0
    frames_in: int = 0
    frames_out: int = 0
    frames_rewritten: int = 0
    frames_dropped: int = 0
    messages_in: int = 0
    messages_out: int = 0
    decode_errors: int = 0
    refused: int = 0
    closed_by_faults: int = 0
    frames_held: int = 0
    frames_released: int = 0
    fault_errors: int = 0
    last_error: str | None = None


class FeedProxy(LoopServer):
    """Relays the Nitro feed at ``upstream_url`` to its own clients, applying ``faults`` in order.

    ``FeedProxy(devnet.feed_url, faults=[SkipSequence(nth=3)]).start()`` listens on a free port of
    127.0.0.1 (:attr:`url`); ``stop()`` is idempotent and bounded; use it as a context manager. Each
    client gets its own upstream connection, numbered as a ``stream`` for the faults.
    """

    kind = "feed proxy"

    def __init__(
        self,
        upstream_url: str,
        *,
        faults: Sequence[FeedFault] = (),
        port: int = 0,
        open_timeout: float = 10.0,
        ping_interval: float = 5.0,
        ping_timeout: float = 20.0,
        startup_timeout: float = 10.0,
    ) -> None:
        if not upstream_url.startswith(("ws://", "wss://")):
            raise ValueError(
                f"upstream_url {upstream_url!r} must be a ws:// or wss:// feed URL, e.g. devnet.feed_url"
            )
        for fault in faults:
            if not isinstance(fault, FeedFault):
                raise TypeError(f"faults: {fault!r} is not a FeedFault; JSON-RPC faults go to RpcProxy")
        super().__init__(port=port, startup_timeout=startup_timeout)
        self.upstream_url = upstream_url
        self.faults: list[FeedFault] = list(faults)
        self.open_timeout = open_timeout
        self.ping_interval = ping_interval
        self.ping_timeout = ping_timeout
        self._stats = FeedProxyStats()
        self._upstreams: dict[Any, Any] = {}  # client connection -> its upstream connection
        self._streams = itertools.count(1)
        self._clients: dict[Any, _Client] = {}  # client connections being served, on the loop only
        self._bound: set[FeedTimelineFault] = set()

    @property
    def url(self) -> str:
        """``ws://127.0.0.1:<port>``: give it to feed clients as their feed URL."""
        return f"ws://{self.host}:{self.port}"

    @property
    def stats(self) -> FeedProxyStats:
        """A copy of the counters (safe from any thread)."""
        return dataclasses.replace(self._stats)

    def __repr__(self) -> str:
        where = self.url if self._port is not None else "not started"
        return f"<FeedProxy {where} -> {self.upstream_url} faults={self.faults!r}>"

    # -- serving --------------------------------------------------------------------------------
    async def _serve(self, stop: asyncio.Event) -> None:
        from websockets.asyncio.server import serve

        try:
            server = await serve(
                self._handle,
                LOOPBACK,
                self._requested_port,
                process_request=self._process_request,
                process_response=self._process_response,
                compression=None,
                ping_interval=self.ping_interval,
                ping_timeout=self.ping_timeout,
                close_timeout=2,
                max_size=None,
                server_header=None,
            )
        except OSError as exc:
            raise FaultProxyError(
                f"feed proxy cannot listen on {LOOPBACK}:{self._requested_port} ({exc}); pick another port or port=0"
            ) from None
        self._port = int(server.sockets[0].getsockname()[1])
        self._timeline()  # binds the timeline faults given at construction
        self._ready.set()
        try:
            await stop.wait()
        finally:
            self._unbind_all()
            server.close(close_connections=True)
            await self._wait_bounded(server.wait_closed(), 3.0)
            for upstream in list(self._upstreams.values()):
                with contextlib.suppress(Exception):
                    upstream.transport.abort()
            self._upstreams.clear()

    async def _process_request(self, connection: Any, request: Any) -> Any:
        from websockets.asyncio.client import connect
        from websockets.exceptions import InvalidHandshake, InvalidStatus

        if "livenessprobe" in request.path:
            return connection.respond(http.HTTPStatus.OK, "OK\n")
        refusing = self._refusing()
        if refusing is not None:
            # Refused before the upstream is dialled: a partition, as the client sees it.
            self._stats.refused += 1
            refusing.refused()
            return connection.respond(
                http.HTTPStatus.SERVICE_UNAVAILABLE,
                f"feed proxy: {refusing.kind} is armed; the feed is unreachable, retry later\n",
            )
        # Nitro's handshake headers and the client's identification (X-*, User-Agent) go upstream;
        # the WebSocket handshake's own headers do not.
        headers = {
            name: value
            for name, value in request.headers.raw_items()
            if name.lower() in _FORWARDED_HEADERS or name.lower().startswith("x-")
        }
        try:
            upstream = await connect(
                self.upstream_url,
                additional_headers=headers,
                compression=None,
                proxy=None,
                open_timeout=self.open_timeout,
                ping_interval=self.ping_interval,
                ping_timeout=self.ping_timeout,
                close_timeout=2,
                max_size=None,
                user_agent_header=request.headers.get("User-Agent"),
            )
        except InvalidStatus as exc:
            # The upstream refused this client (a bad requested sequence number, say): so does the proxy.
            self._stats.upstream_refusals += 1
            body = bytes(exc.response.body or b"").decode("utf-8", "replace")
            return connection.respond(http.HTTPStatus(exc.response.status_code), body)
        except (InvalidHandshake, OSError, TimeoutError, EOFError) as exc:
            self._stats.upstream_failures += 1
            self._stats.last_error = f"upstream {self.upstream_url}: {type(exc).__name__}: {exc}"
            return connection.respond(
                http.HTTPStatus.BAD_GATEWAY,
                f"feed proxy cannot reach {self.upstream_url} ({type(exc).__name__}); check that the feed runs\n",
            )
        self._upstreams[connection] = upstream
        return None

    @staticmethod
    def _requested(request: Any) -> int | None:
        try:
            value = int(str(request.headers.get(REQUESTED_SEQUENCE_HEADER, "")).strip())
        except ValueError:
            return None
        return value if value > 0 else None

    def _process_response(self, connection: Any, request: Any, response: Any) -> None:
        upstream = self._upstreams.get(connection)
        if upstream is None:
            return
        if response.status_code != http.HTTPStatus.SWITCHING_PROTOCOLS:
            self._upstreams.pop(connection, None)
            upstream.transport.abort()
            return
        served = upstream.response.headers if upstream.response is not None else {}
        for name in (FEED_SERVER_VERSION_HEADER, FEED_CHAIN_ID_HEADER):
            value = served.get(name)
            if value is not None:
                response.headers[name] = value

    async def _handle(self, connection: Any) -> None:
        from websockets.exceptions import ConnectionClosed

        upstream = self._upstreams.pop(connection, None)
        if upstream is None:  # cannot happen: a handshake without an upstream is refused earlier
            await connection.close(code=1011, reason="feed proxy has no upstream for this client")
            return
        if self._refusing() is not None:  # armed while this handshake went on: closed as at arm
            self._stats.closed_by_faults += 1
            connection.transport.abort()
            upstream.transport.abort()
            return
        stream = next(self._streams)
        floor = self._requested(connection.request)
        stats = self._stats
        stats.connections += 1
        stats.clients += 1
        client = _Client(stream)
        self._clients[connection] = client
        client_gone = asyncio.ensure_future(connection.wait_closed())
        woken = asyncio.ensure_future(client.wake.wait())
        receiver: asyncio.Future[Any] | None = None
        try:
            while True:
                if receiver is None:
                    receiver = asyncio.ensure_future(upstream.recv())
                await asyncio.wait((receiver, client_gone, woken), return_when=asyncio.FIRST_COMPLETED)
                if client_gone.done():
                    break
                if woken.done():
                    client.wake.clear()
                    woken = asyncio.ensure_future(client.wake.wait())
                    await self._release(connection, client)
                if not receiver.done():
                    continue
                done, receiver = receiver, None
                try:
                    frame = done.result()
                except ConnectionClosed as exc:
                    await self._mirror_close(connection, exc)
                    break
                out, count = self._apply_counted(stream, frame, floor)
                if out is None:
                    continue
                holder = self._holder()
                if holder is not None:
                    if not self._hold(connection, client, holder, out, count):
                        break
                    continue
                if client.held:
                    await self._release(connection, client)
                await connection.send(out)
                stats.frames_out += 1
        except ConnectionClosed:
            pass  # the client went away mid-send
        finally:
            stats.clients -= 1
            self._clients.pop(connection, None)
            client_gone.cancel()
            woken.cancel()
            if receiver is not None and not receiver.done():
                receiver.cancel()
                with contextlib.suppress(asyncio.CancelledError, ConnectionClosed):
                    await receiver
            for fault in list(self.faults):
                with contextlib.suppress(Exception):
                    fault.on_stream_closed(stream)
            await self._wait_bounded(upstream.close(), 3.0)
            upstream.transport.abort()

    # -- timeline faults ------------------------------------------------------------------------
    def _timeline(self) -> list[FeedTimelineFault]:
        """The timeline faults in :attr:`faults` now, each bound to this proxy's loop."""
        found = [fault for fault in list(self.faults) if isinstance(fault, FeedTimelineFault)]
        for fault in found:
            if fault not in self._bound:
                assert self._loop is not None
                self._bound.add(fault)
                fault.bind(self, self._loop, self._on_switch)
        return found

    def _refusing(self) -> FeedTimelineFault | None:
        return next((f for f in self._timeline() if f.refuses and f.armed), None)

    def _holder(self) -> FeedTimelineFault | None:
        return next((f for f in self._timeline() if f.holds and f.armed), None)

    def _on_switch(self, fault: Any, armed: bool, window: int) -> None:
        """On the loop: a bound timeline fault was armed or disarmed."""
        try:
            fault.on_switch(self, armed, window)
        except Exception as exc:  # a bug in a fault must not end the proxy: count it, go on
            self._stats.fault_errors += 1
            self._stats.last_error = f"{fault.name}.on_switch: {type(exc).__name__}: {exc}"

    def _unbind_all(self) -> None:
        for fault in list(self._bound):
            fault.unbind(self)
            with contextlib.suppress(Exception):
                fault.on_unbind(self)
        self._bound.clear()

    def close_clients(self) -> int:
        """Close every client connection now, abruptly; how many. On the loop only."""
        closed = 0
        for connection in list(self._clients):
            if not connection.transport.is_closing():
                connection.transport.abort()
                closed += 1
        self._stats.closed_by_faults += closed
        return closed

    def release_held(self) -> None:
        """Wake every connection, so that what a stall held goes out (unless a stall is armed again)."""
        for client in self._clients.values():
            client.wake.set()

    def _hold(
        self, connection: Any, client: _Client, holder: FeedTimelineFault, frame: str | bytes, count: int
    ) -> bool:
        """Keep ``frame`` for later; False when the connection held too much and was closed instead."""
        client.held.append(frame)
        if client.holder is None:
            client.holder = holder
        self._stats.frames_held += 1
        holder.held(1, count)
        if len(client.held) <= holder.max_held_frames:
            return True
        holder.overflowed()
        client.held.clear()
        self._stats.closed_by_faults += 1
        connection.transport.abort()
        return False

    async def _release(self, connection: Any, client: _Client) -> None:
        """Send what was held, in order, unless a holding fault is armed (again)."""
        if not client.held or self._holder() is not None:
            return
        released = 0
        while client.held:
            await connection.send(client.held.popleft())
            released += 1
            self._stats.frames_out += 1
        self._stats.frames_released += released
        if client.holder is not None:
            client.holder.released(released)
            client.holder = None

    async def _mirror_close(self, connection: Any, closed: Any) -> None:
        received = getattr(closed, "rcvd", None)
        if received is not None and (received.code in _SENDABLE_CLOSE_CODES or 3000 <= received.code <= 4999):
            await self._wait_bounded(connection.close(code=received.code, reason=received.reason), 3.0)
        else:
            connection.transport.abort()

    def _apply(self, stream: int, frame: str | bytes, floor: int | None = None) -> str | bytes | None:
        """The frame to send for ``frame`` after the faults, ``None`` to send nothing."""
        return self._apply_counted(stream, frame, floor)[0]

    def _apply_counted(
        self, stream: int, frame: str | bytes, floor: int | None = None
    ) -> tuple[str | bytes | None, int]:
        """The frame to send for ``frame`` after the faults (``None`` to send nothing) and its messages.

        Messages numbered below ``floor`` (the sequence number the client asked to start from) pass
        untouched and are not offered to the faults: a feed may replay its backlog to a client that
        asks beyond its head, the client discards those, and a fault spent on one would break nothing.
        """
        stats = self._stats
        stats.frames_in += 1
        try:
            broadcast = decode_broadcast(frame)
        except FeedDecodeError as exc:
            stats.decode_errors += 1
            stats.last_error = f"undecodable upstream frame forwarded as is: {exc}"
            return frame, 0
        original = list(broadcast.messages)
        stats.messages_in += len(original)
        cut = 0
        while floor is not None and cut < len(original) and original[cut].sequence_number < floor:
            cut += 1
        below, messages = original[:cut], original[cut:]
        for fault in list(self.faults):
            try:
                messages = list(fault.on_messages(stream, messages))
            except Exception as exc:  # a bug in a fault must not end the stream: count it, go on
                stats.fault_errors += 1
                stats.last_error = f"{fault.name}.on_messages: {type(exc).__name__}: {exc}"
        messages = below + messages
        stats.messages_out += len(messages)
        if len(messages) == len(original) and all(a is b for a, b in zip(messages, original, strict=True)):
            return frame, len(messages)
        if not messages and broadcast.confirmed_sequence_number is None:
            stats.frames_dropped += 1
            return None, 0
        stats.frames_rewritten += 1
        encoded = encode_broadcast(messages, confirmed_sequence_number=broadcast.confirmed_sequence_number)
        return encoded, len(messages)


class _Client:
    """What the proxy keeps for one client connection: frames a stall holds, and a wake-up call."""

    __slots__ = ("held", "holder", "stream", "wake")

    def __init__(self, stream: int) -> None:
        self.stream = stream
        self.held: deque[str | bytes] = deque()
        self.holder: Any = None  # the stall that held the first frame still held
        self.wake = asyncio.Event()
