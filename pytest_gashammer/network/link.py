"""A devp2p link between two nodes that the network can cut: a loopback relay for TCP and UDP.

``@ethereumjs/client`` has no admin call that drops a peer, and its RLPx listener binds every
interface, so a link the test can cut is a relay the dialling node is pointed at instead of its
peer: one loopback port that forwards TCP (RLPx) and UDP (the discovery ping that precedes a
dial, ``admin_addPeer``) to the peer's port.

:meth:`LinkRelay.cut` makes the link carry nothing, as a partitioned network does: relayed bytes
are held (the relay stops reading, so both sides' TCP buffers fill and nothing is lost) and
datagrams are dropped; new connections wait. :meth:`LinkRelay.restore` lets the held bytes
through. The connection survives a cut shorter than the clients' own liveness timeout (RLPx
pings every 15 s and gives up on a peer that does not answer within 10 s); past it a client drops
the peer, which the network reports as a live ``peer_dropped`` event. Closing bytes mid-stream
instead would corrupt RLPx's MAC chain, and the client never dials a peer it has dialled before
(its RLPx remembers every id), so a closed connection could not come back.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading

from pytest_gashammer._loop_server import LOOPBACK, LoopServer
from pytest_gashammer.errors import DevnetError

#: Bytes read from one side of a relayed connection before they are written to the other.
CHUNK = 65536
#: Tries to find a port free for both TCP and UDP.
PORT_ATTEMPTS = 20


class LinkRelay(LoopServer):
    """Relays one loopback port to ``target_port`` (TCP and UDP) until cut."""

    kind = "link relay"
    error = DevnetError

    def __init__(self, target_port: int, *, name: str = "") -> None:
        super().__init__(port=0)
        self.target_port = target_port
        self.name = name or f"link to {target_port}"
        self._up = threading.Event()
        self._up.set()
        self._up_in_loop: asyncio.Event | None = None  # the same flag, awaitable in the relay's loop
        self._writers: set[asyncio.StreamWriter] = set()
        self._udp_upstreams: dict[tuple[str, int], asyncio.DatagramTransport] = {}
        self._udp_waiting: dict[tuple[str, int], list[bytes]] = {}
        self._udp_listener: asyncio.DatagramTransport | None = None
        self.connections = 0
        self.bytes_relayed = 0

    @property
    def up(self) -> bool:
        return self._up.is_set()

    def cut(self) -> None:
        """Carry nothing until :meth:`restore`: bytes in flight are held, datagrams dropped."""
        self._up.clear()
        self._mirror(False)

    def restore(self) -> None:
        """Carry traffic again, the held bytes first."""
        self._up.set()
        self._mirror(True)

    def _mirror(self, up: bool) -> None:
        loop, event = self._loop, self._up_in_loop
        if loop is None or event is None:
            return
        with contextlib.suppress(RuntimeError):  # the loop already closed: nothing is relayed
            loop.call_soon_threadsafe(event.set if up else event.clear)

    # -- serving --------------------------------------------------------------------------------
    async def _serve(self, stop: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        self._up_in_loop = asyncio.Event()
        if self._up.is_set():
            self._up_in_loop.set()
        server: asyncio.Server | None = None
        for _ in range(PORT_ATTEMPTS):
            server = await asyncio.start_server(self._relay_tcp, LOOPBACK, 0)
            port = server.sockets[0].getsockname()[1]
            try:
                listener, _protocol = await loop.create_datagram_endpoint(
                    lambda: _ClientSide(self), local_addr=(LOOPBACK, port)
                )
            except OSError:
                server.close()
                await server.wait_closed()
                server = None
                continue
            self._udp_listener = listener
            self._port = port
            break
        if server is None or self._udp_listener is None:
            raise DevnetError(f"{self.name}: no loopback port was free for both TCP and UDP")
        self._ready.set()
        try:
            await stop.wait()
        finally:
            server.close()
            for writer in list(self._writers):
                writer.transport.abort()
            for upstream in self._udp_upstreams.values():
                upstream.close()
            self._udp_listener.close()
            await self._wait_bounded(server.wait_closed(), 2.0)

    async def _relay_tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await self._wait_up()  # a connection made across a cut link waits, as its SYN would
        try:
            peer_reader, peer_writer = await asyncio.open_connection(LOOPBACK, self.target_port)
        except OSError:
            writer.transport.abort()
            return
        self.connections += 1
        self._writers.update((writer, peer_writer))
        try:
            await asyncio.gather(self._pipe(reader, peer_writer), self._pipe(peer_reader, writer))
        finally:
            for side in (writer, peer_writer):
                self._writers.discard(side)
                side.transport.abort()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, asyncio.IncompleteReadError, ConnectionError):
            while True:
                await self._wait_up()
                data = await reader.read(CHUNK)
                if not data:
                    break
                await self._wait_up()  # read just before a cut: held with the rest
                self.bytes_relayed += len(data)
                writer.write(data)
                await writer.drain()
        writer.transport.abort()  # one side ended: so does the relayed connection

    async def _wait_up(self) -> None:
        if self._up_in_loop is not None:
            await self._up_in_loop.wait()

    def _from_client(self, data: bytes, client: tuple[str, int]) -> None:
        if not self._up.is_set():
            return
        upstream = self._udp_upstreams.get(client)
        if upstream is not None and not upstream.is_closing():
            upstream.sendto(data)
            return
        waiting = self._udp_waiting.get(client)
        if waiting is not None:
            waiting.append(data)  # its upstream socket is being opened: sent once it is
            return
        self._udp_waiting[client] = [data]
        loop = asyncio.get_running_loop()

        async def open_upstream() -> None:
            try:
                transport, _ = await loop.create_datagram_endpoint(
                    lambda: _PeerSide(self, client),
                    remote_addr=(LOOPBACK, self.target_port),
                    family=socket.AF_INET,
                )
            finally:
                queued = self._udp_waiting.pop(client, [])
            self._udp_upstreams[client] = transport
            for datagram in queued:
                transport.sendto(datagram)

        loop.create_task(open_upstream())

    def _to_client(self, data: bytes, client: tuple[str, int]) -> None:
        if self._up.is_set() and self._udp_listener is not None:
            self._udp_listener.sendto(data, client)


class _ClientSide(asyncio.DatagramProtocol):
    def __init__(self, relay: LinkRelay) -> None:
        self.relay = relay

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.relay._from_client(data, addr)


class _PeerSide(asyncio.DatagramProtocol):
    def __init__(self, relay: LinkRelay, client: tuple[str, int]) -> None:
        self.relay, self.client = relay, client

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.relay._to_client(data, self.client)
