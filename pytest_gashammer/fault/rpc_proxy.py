"""An HTTP JSON-RPC proxy that forwards everything to a healthy node and lets faults lie on its behalf.

Why it exists: to prove that each invariant catches the promise it guards, a test needs a chain that
breaks exactly that promise and nothing else. Real nodes do not misbehave on demand, so the proxy sits
between the edges and a healthy node (``--gashammer-rpc-url <proxy.url>``, or an
``EdgeAssignment.rpc_url``) and applies :class:`~pytest_gashammer.fault.faults.RpcFault` objects to
every JSON-RPC call, inside batches too.

How a request flows: the body is split into calls (:class:`~pytest_gashammer.fault.faults.RpcCall`);
every fault's ``on_request`` sees every call (and may answer it locally, or add delay); the calls no
fault answered are forwarded upstream as one request of the same shape (a single call stays single, a
batch stays a batch) with the proxy's own ids, so the client's ids can never collide upstream; every
fault's ``on_answer`` then sees every answered call and may rewrite it; the answers go back with the
client's ids, in the client's order. A body that is not JSON-RPC is forwarded byte for byte and
answered verbatim, an upstream HTTP error is passed through verbatim, and an unreachable upstream is
HTTP 502, which clients treat as a transport error and retry.

Timeline faults (:class:`~pytest_gashammer.fault.rpc_timeline.RpcTimelineFault`: latency, errors,
resets, a black hole, a bandwidth cap) act per HTTP request while armed: at its arrival (reset it, or
hold it), on its body and answer bytes (pace them), and on its delay; they are bound to the proxy's
loop so that arming and disarming from another thread can act on connections already open. A request
whose connection is gone by the time its delay ends is not forwarded (it was lost with its connection).

WebSocket is not served: a client given the proxy as its only endpoint (no ``ws_url``) follows blocks by
polling ``eth_blockNumber``, so every block it sees passes through the faults. A fault that raises is a
bug in the fault: it is counted in :attr:`RpcProxy.stats` (``fault_errors``, ``last_error``) and the
request is still answered, so a broken fault shows up as a missing effect plus a counter, never as a
hung client.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import Sequence
from typing import Any

from pytest_gashammer.fault._server import LoopServer
from pytest_gashammer.fault.faults import RpcCall, RpcFault
from pytest_gashammer.fault.rpc_timeline import RpcTimelineFault, reset_transport

__all__ = ["RpcProxy", "RpcProxyStats"]

MAX_BODY_BYTES = 256 * 1024 * 1024
"""Largest request body accepted: far above any batch an edge sends."""
MAX_DELAY = 600.0
"""Longest delay a fault can add to one request (seconds); a larger value is clamped to it."""
_NOT_FORWARDED_HEADERS = frozenset(
    {"host", "content-length", "content-type", "connection", "keep-alive", "transfer-encoding", "te",
     "upgrade", "proxy-authorization", "proxy-connection", "accept-encoding", "trailer"}
)  # fmt: skip


def forwarded_headers(headers: Any) -> dict[str, str]:
    """The client's headers worth passing upstream (its identification), without hop-by-hop ones."""
    return {name: value for name, value in headers.items() if name.lower() not in _NOT_FORWARDED_HEADERS}


@dataclasses.dataclass
class RpcProxyStats:
    """Counters of a proxy, read with :attr:`RpcProxy.stats` (a copy)."""

    requests: int = 0
    calls: int = 0
    forwarded_calls: int = 0
    local_answers: int = 0
    passthrough_requests: int = 0
    upstream_failures: int = 0
    upstream_http_errors: int = 0
    fault_errors: int = 0
    methods: dict[str, int] = dataclasses.field(default_factory=dict)
    resets: int = 0
    lost_in_delay: int = 0
    last_error: str | None = None


class _Verbatim(Exception):
    """The upstream's HTTP answer is passed to the client unchanged."""

    def __init__(self, status: int, body: bytes, content_type: str | None) -> None:
        super().__init__(status)
        self.status = status
        self.body = body
        self.content_type = content_type


class RpcProxy(LoopServer):
    """Forwards JSON-RPC over HTTP to ``upstream_url``, applying ``faults`` in order.

    ``RpcProxy(node.rpc_url, faults=[DropTransactions(every=10)]).start()`` listens on a free port of
    127.0.0.1 (:attr:`url`); ``stop()`` is idempotent and bounded; use it as a context manager.
    ``faults`` is a list: add to it or remove from it at any time, from any thread (a request uses the
    faults present when it arrives).
    """

    kind = "rpc proxy"

    def __init__(
        self,
        upstream_url: str,
        *,
        faults: Sequence[RpcFault] = (),
        port: int = 0,
        timeout: float = 30.0,
        startup_timeout: float = 10.0,
    ) -> None:
        if not upstream_url.startswith(("http://", "https://")):
            raise ValueError(
                f"upstream_url {upstream_url!r} must be an http:// or https:// JSON-RPC URL, e.g. http://127.0.0.1:8547"
            )
        for fault in faults:
            if not isinstance(fault, RpcFault):
                raise TypeError(f"faults: {fault!r} is not an RpcFault; feed faults go to FeedProxy")
        if timeout <= 0:
            raise ValueError(f"timeout={timeout} must be positive, e.g. 30.0")
        super().__init__(port=port, startup_timeout=startup_timeout)
        self.upstream_url = upstream_url
        self.faults: list[RpcFault] = list(faults)
        self.timeout = timeout
        self._stats = RpcProxyStats()
        self._session: Any = None
        self._runner: Any = None
        self._bound: set[RpcTimelineFault] = set()

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``: give it to clients as their JSON-RPC endpoint."""
        return f"http://{self.host}:{self.port}"

    @property
    def stats(self) -> RpcProxyStats:
        """A copy of the counters (safe from any thread)."""
        return dataclasses.replace(self._stats, methods=dict(self._stats.methods))

    def __repr__(self) -> str:
        where = self.url if self._port is not None else "not started"
        return f"<{type(self).__name__} {where} -> {self.upstream_url} faults={self.faults!r}>"

    # -- serving --------------------------------------------------------------------------------
    async def _serve(self, stop: asyncio.Event) -> None:
        import aiohttp
        from aiohttp import web

        app = web.Application(client_max_size=MAX_BODY_BYTES)
        app.router.add_route("POST", "/{tail:.*}", self._handle)
        runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=1.0)
        self._runner = runner
        sock = self._listen_socket()
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=64, keepalive_timeout=30),
            timeout=aiohttp.ClientTimeout(total=self.timeout),
            headers={"Content-Type": "application/json"},
        )
        try:
            await runner.setup()
            site = web.SockSite(runner, sock)
            await site.start()
            for fault in list(self.faults):
                if isinstance(fault, RpcTimelineFault):
                    self._bind(fault)
            self._ready.set()
            await stop.wait()
        finally:
            self._unbind_all()  # first: a request a black hole holds is let go (reset), not waited for
            await self._wait_bounded(runner.cleanup(), 3.0)
            await self._wait_bounded(self._session.close(), 2.0)
            sock.close()

    async def _handle(self, request: Any) -> Any:
        from aiohttp import web

        self._stats.requests += 1
        timeline = [fault for fault in list(self.faults) if isinstance(fault, RpcTimelineFault)]
        if not timeline:  # the common case: no timeline fault, nothing to gate or pace
            return await self._answer(request, await request.read(), ())
        for fault in timeline:
            if fault not in self._bound:
                self._bind(fault)
        armed = [fault for fault in timeline if fault.armed]
        for fault in armed:
            if await self._guarded_async(fault, fault.on_arrival(request), False):
                self._stats.resets += 1
                reset_transport(request.transport)
                return web.Response()  # written nowhere: the connection is gone
        body = await request.read()
        for fault in armed:
            await self._guarded_async(fault, fault.throttle("in", len(body)), None)
        response = await self._answer(request, body, armed)
        pacers = [fault for fault in timeline if fault.throttles and fault.armed]
        if not pacers or not response.body:
            return response
        return await self._paced(request, response, pacers)

    async def _answer(self, request: Any, body: bytes, armed: Sequence[RpcTimelineFault]) -> Any:
        """The answer to one request's ``body``: faults applied, held back, forwarded, rewritten.

        ``armed`` are the timeline faults armed when the request arrived: they add their delay.
        """
        from aiohttp import web

        stats = self._stats
        try:
            payload = json.loads(body)
        except ValueError:
            payload = None
        items = [payload] if isinstance(payload, dict) else payload
        if not isinstance(items, list) or not items or not all(isinstance(item, dict) for item in items):
            stats.passthrough_requests += 1
            extra_delay = self._timeline_delay(armed, 0)
            if extra_delay > 0:
                await asyncio.sleep(min(extra_delay, MAX_DELAY))
            return await self._passthrough(body, forwarded_headers(request.headers))
        single = isinstance(payload, dict)
        calls = [RpcCall.from_request(item, index) for index, item in enumerate(items)]
        stats.calls += len(calls)
        for call in calls:
            stats.methods[call.method] = stats.methods.get(call.method, 0) + 1
        faults = list(self.faults)
        for fault in faults:
            for call in calls:
                if call.forward:
                    self._guarded(fault, fault.on_request, call)
        extra_delay = self._timeline_delay(armed, len(calls)) if armed else 0.0
        delay = min(max((call.delay for call in calls), default=0.0) + extra_delay, MAX_DELAY)
        if delay > 0:
            await asyncio.sleep(delay)
            if request.transport is None:
                # The connection went (reset by a fault, or the client gave up) while the request was
                # held back: it is lost with its connection, as on a wire, and never reaches the node.
                stats.lost_in_delay += 1
                return web.Response()
        stats.local_answers += sum(1 for call in calls if not call.forward)
        forwarded = [call for call in calls if call.forward]
        if forwarded:
            try:
                await self._forward(forwarded, items, single, forwarded_headers(request.headers))
            except _Verbatim as answer:
                stats.upstream_http_errors += 1
                return web.Response(status=answer.status, body=answer.body, content_type=answer.content_type)
            except _UpstreamDown as exc:
                stats.upstream_failures += 1
                stats.last_error = str(exc)
                return web.Response(status=502, text=f"{exc}\n")
        for fault in faults:
            for call in calls:
                if call.answer is not None:
                    self._guarded(fault, fault.on_answer, call)
        answers = [call.answer for call in calls if call.answer is not None and not call.is_notification]
        if single:
            text = json.dumps(answers[0]) if answers else ""
        else:
            text = json.dumps(answers) if answers else ""
        return web.Response(text=text, content_type="application/json")

    async def _paced(self, request: Any, response: Any, pacers: list[RpcTimelineFault]) -> Any:
        """Send ``response`` in chunks, each let through by every pacing fault first."""
        from aiohttp import web

        body = bytes(response.body)
        streamed = web.StreamResponse(status=response.status)
        streamed.content_type = response.content_type
        streamed.content_length = len(body)
        await streamed.prepare(request)
        size = min(fault.chunk_size() for fault in pacers)
        for start in range(0, len(body), size):
            chunk = body[start : start + size]
            for fault in pacers:
                if fault.armed:
                    await self._guarded_async(fault, fault.throttle("out", len(chunk)), None)
            await streamed.write(chunk)
        await streamed.write_eof()
        return streamed

    # -- timeline faults ------------------------------------------------------------------------
    def _timeline_delay(self, armed: Sequence[RpcTimelineFault], calls: int) -> float:
        delay = 0.0
        for fault in armed:
            try:
                delay += fault.request_delay(calls)
            except Exception as exc:  # a bug in a fault must not take the proxy down: count it, go on
                self._fault_failed(fault, "request_delay", exc)
        return delay

    def _bind(self, fault: RpcTimelineFault) -> None:
        assert self._loop is not None
        self._bound.add(fault)
        fault.bind(self, self._loop, self._on_switch)

    def _on_switch(self, fault: Any, armed: bool, window: int) -> None:
        """On the loop: a bound timeline fault was armed or disarmed."""
        if not self.running:
            return
        try:
            fault.on_switch(self, armed, window)
        except Exception as exc:
            self._fault_failed(fault, "on_switch", exc)

    def _unbind_all(self) -> None:
        for fault in list(self._bound):
            fault.unbind(self)
            try:
                fault.on_unbind(self)
            except Exception as exc:
                self._fault_failed(fault, "on_unbind", exc)
        self._bound.clear()

    def reset_connections(self) -> int:
        """Reset every connection open to the proxy now (idle or busy); how many. On the loop only."""
        server = self._runner.server if self._runner is not None else None
        if server is None:
            return 0
        reset = sum(1 for handler in server.connections if reset_transport(handler.transport))
        self._stats.resets += reset
        return reset

    async def _guarded_async(self, fault: RpcTimelineFault, hook: Any, failed: Any) -> Any:
        try:
            return await hook
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug in a fault must not take the proxy down: count it, go on
            self._fault_failed(fault, hook.__qualname__.rsplit(".", 1)[-1], exc)
            return failed

    def _fault_failed(self, fault: Any, hook: str, exc: Exception) -> None:
        self._stats.fault_errors += 1
        self._stats.last_error = f"{fault.name}.{hook}: {type(exc).__name__}: {exc}"

    def _guarded(self, fault: RpcFault, hook: Any, call: RpcCall) -> None:
        try:
            hook(call)
        except Exception as exc:  # a bug in a fault must not take the proxy down: count it, go on
            self._stats.fault_errors += 1
            self._stats.last_error = (
                f"{fault.name}.{hook.__name__}({call.method}): {type(exc).__name__}: {exc}"
            )

    async def _forward(
        self, calls: list[RpcCall], items: list[dict[str, Any]], single: bool, headers: dict[str, str]
    ) -> None:
        """Send ``calls`` upstream under the proxy's ids and put each answer on its call."""
        outgoing = []
        for proxy_id, call in enumerate(calls):
            request = dict(items[call.index])
            if not call.is_notification:
                request["id"] = proxy_id
            outgoing.append(request)
        body = json.dumps(outgoing[0] if single else outgoing).encode()
        status, content_type, payload = await self._post(body, headers)
        if status != 200:
            raise _Verbatim(status, payload, content_type)
        self._stats.forwarded_calls += len(calls)
        try:
            answer = json.loads(payload)
        except ValueError:
            raise _Verbatim(status, payload, content_type) from None
        if isinstance(answer, dict) and not single:
            # The upstream refused the batch as a whole: every call gets that error under its own id.
            for call in calls:
                if not call.is_notification:
                    call.answer = {**answer, "id": call.request_id}
            return
        answers = [answer] if isinstance(answer, dict) else answer if isinstance(answer, list) else []
        by_id: dict[Any, dict[str, Any]] = {
            item.get("id"): item for item in answers if isinstance(item, dict)
        }
        for proxy_id, call in enumerate(calls):
            if call.is_notification:
                continue
            found = by_id.get(proxy_id)
            if found is None and single and len(answers) == 1 and isinstance(answers[0], dict):
                found = answers[0]  # a node that answers a single call with a null or odd id
            if found is not None:
                call.answer = {**found, "id": call.request_id}

    async def _passthrough(self, body: bytes, headers: dict[str, str]) -> Any:
        from aiohttp import web

        try:
            status, content_type, payload = await self._post(body, headers)
        except _UpstreamDown as exc:
            self._stats.upstream_failures += 1
            self._stats.last_error = str(exc)
            return web.Response(status=502, text=f"{exc}\n")
        return web.Response(status=status, body=payload, content_type=content_type)

    async def _post(self, body: bytes, headers: dict[str, str]) -> tuple[int, str | None, bytes]:
        import aiohttp

        try:
            async with self._session.post(self.upstream_url, data=body, headers=headers) as response:
                payload = await response.read()
                content_type = response.content_type or None
                return response.status, content_type, payload
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            raise _UpstreamDown(
                f"{self.kind} cannot reach {self.upstream_url} ({type(exc).__name__}: {exc}); check that the node runs"
            ) from None


class _UpstreamDown(Exception):
    """The upstream node did not answer at the HTTP level."""
