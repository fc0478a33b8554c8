"""The live API's HTTP server: aiohttp on :class:`~pytest_gashammer._loop_server.LoopServer`.

It reads a :class:`~pytest_gashammer.serve.board.LiveBoard` and never writes to it, except for a
stop request, which the board hands to the hive. Routes (docs/live-api.md):

- ``GET /`` the live page; ``GET /metrics`` Prometheus text;
- ``GET /api/v1/status | runs | runs/{id} | edges`` JSON, and any ``/api/v1/<name>`` added with
  :meth:`LiveBoard.add_endpoint`;
- ``GET /api/v1/events`` Server-Sent Events: the kept events, then new ones as they happen
  (``Last-Event-ID`` or ``?since=N`` resumes after event N);
- ``POST /api/v1/runs/{id}/stop`` a graceful stop (:func:`~pytest_gashammer.serve.bind.stop_refusal`
  decides who may).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
from importlib import resources
from typing import Any

from pytest_gashammer._loop_server import LoopServer
from pytest_gashammer.errors import ConfigError
from pytest_gashammer.options import SERVE
from pytest_gashammer.serve.bind import Bind, stop_refusal
from pytest_gashammer.serve.board import LiveBoard

API = "/api/v1"
#: A comment line on an idle event stream this often (s), so proxies and browsers keep it open.
KEEPALIVE_S = 15.0
#: Where the page's initial figures go (the page draws them before its event stream connects).
INITIAL_MARK = "/*GASHAMMER_INITIAL*/null"


def plain(value: Any) -> Any:
    """``value`` as strict JSON data: NaN and infinities become null (browsers refuse them)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(key): plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [plain(item) for item in value]
    if value is None or isinstance(value, str | int | bool):
        return value
    if hasattr(value, "item"):  # numpy scalars
        return plain(value.item())
    return str(value)


def dumps(value: Any) -> str:
    return json.dumps(plain(value), separators=(",", ":"), allow_nan=False)


def sse_frame(seq: int, name: str, data: Any) -> bytes:
    """One Server-Sent Event: its id (the board's sequence number), its name and its JSON on one line."""
    if "\n" in name or "\r" in name:
        raise ValueError(f"an event name must be one line, not {name!r}")
    return f"id: {seq}\nevent: {name}\ndata: {dumps(data)}\n\n".encode()


def page(board: LiveBoard) -> str:
    """The live page with the session's figures so far inlined, so it draws before any event arrives."""
    template = resources.files("pytest_gashammer.serve").joinpath("page.html").read_text(encoding="utf-8")
    runs = board.runs_json()
    latest = board.run_json(runs[-1]["id"]) if runs else None
    initial = {"last_event": board.last_seq, "runs": runs, "run": latest}
    # "</" cannot end the script element it sits in once escaped.
    return template.replace(INITIAL_MARK, dumps(initial).replace("</", "<\\/"))


class LiveServer(LoopServer):
    """The live API for one board (see the module docstring); ``url`` once started."""

    kind = "live API server"
    thread_name = "gashammer-serve"
    error = ConfigError

    def __init__(self, board: LiveBoard, bind: Bind, *, token: str | None = None) -> None:
        super().__init__(host=bind.host, port=bind.port)
        self.board = board
        self.bind = bind
        self.token = token or None
        self._registry: Any = None
        self._streams: set[asyncio.Event] = set()
        self._stop_streams: asyncio.Event | None = None

    @property
    def url(self) -> str:
        return self.bind.url(self.port)

    def _bind_failed_message(self, exc: OSError) -> str:
        return (
            f"{SERVE}: cannot listen on {self.host}:{self._requested_port} ({exc}); pick another port, "
            "or 0 for a free one"
        )

    async def _serve(self, stop: asyncio.Event) -> None:
        from aiohttp import web

        from pytest_gashammer.serve.metrics import registry_for

        self._registry = registry_for(self.board)
        app = web.Application()
        app.router.add_get("/", self._page)
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get(f"{API}/status", self._json(self.board.status))
        app.router.add_get(f"{API}/runs", self._json(self.board.runs_json))
        app.router.add_get(f"{API}/edges", self._json(self.board.edges_json))
        app.router.add_get(f"{API}/events", self._events)
        app.router.add_get(API + "/runs/{run_id}", self._run)
        app.router.add_post(API + "/runs/{run_id}/stop", self._stop)
        app.router.add_get(API + "/{name}", self._extra)
        runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=1.0)
        sock = self._listen_socket()
        self._stop_streams = stop
        try:
            await runner.setup()
            await web.SockSite(runner, sock).start()
            self._ready.set()
            await stop.wait()
        finally:
            for wake in list(self._streams):
                wake.set()  # every event stream sees the stop and ends
            await self._wait_bounded(runner.cleanup(), 3.0)
            sock.close()

    # -- handlers -------------------------------------------------------------------------------
    @staticmethod
    def _reply(data: Any, status: int = 200) -> Any:
        from aiohttp import web

        return web.Response(status=status, text=dumps(data) + "\n", content_type="application/json")

    def _json(self, view: Any) -> Any:
        async def handler(request: Any) -> Any:
            return self._reply(view())

        return handler

    async def _page(self, request: Any) -> Any:
        from aiohttp import web

        return web.Response(text=page(self.board), content_type="text/html", charset="utf-8")

    async def _metrics(self, request: Any) -> Any:
        from aiohttp import web

        from pytest_gashammer.serve.metrics import render

        body, content_type = render(self._registry)
        response = web.Response(body=body)
        response.headers["Content-Type"] = content_type
        return response

    async def _run(self, request: Any) -> Any:
        run_id = request.match_info["run_id"]
        data = self.board.run_json(run_id)
        if data is None:
            return self._reply({"error": f"no run {run_id!r}; GET {API}/runs lists them"}, 404)
        return self._reply(data)

    async def _extra(self, request: Any) -> Any:
        name = request.match_info["name"]
        view = self.board.endpoint(name)
        if view is None:
            return self._reply(
                {"error": f"no endpoint {API}/{name}; GET {API}/status lists the extra ones"}, 404
            )
        return self._reply(view())

    async def _stop(self, request: Any) -> Any:
        refused = stop_refusal(self.bind, self.token, request.headers.get("Authorization"))
        if refused is not None:
            return self._reply({"error": refused.reason}, refused.status)
        peer = request.remote or "?"
        # The hive's stop sends messages to edges: off the event loop, which keeps serving meanwhile.
        status, message = await asyncio.get_running_loop().run_in_executor(
            None, self.board.request_stop, request.match_info["run_id"], f"POST from {peer}"
        )
        return self._reply({"message": message} if status < 400 else {"error": message}, status)

    async def _events(self, request: Any) -> Any:
        from aiohttp import web

        since_text = request.headers.get("Last-Event-ID") or request.query.get("since") or "0"
        try:
            since = int(since_text)
        except ValueError:
            return self._reply(
                {"error": f"since={since_text!r}: give the number of the last event seen"}, 400
            )
        response = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream",
                "Cache-Control": "no-cache",
                "X-Accel-Buffering": "no",
            }
        )
        await response.prepare(request)
        loop = asyncio.get_running_loop()
        wake = asyncio.Event()

        def listener() -> None:
            with contextlib.suppress(RuntimeError):  # the loop closed: the stream is over anyway
                loop.call_soon_threadsafe(wake.set)

        self._streams.add(wake)
        self.board.subscribe(listener)
        try:
            while self._stop_streams is not None and not self._stop_streams.is_set():
                wake.clear()
                for seq, name, data in self.board.events_since(since):
                    await response.write(sse_frame(seq, name, data))
                    since = seq
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wake.wait(), KEEPALIVE_S)
                    continue
                await response.write(b": keep-alive\n\n")
        except (ConnectionResetError, ConnectionError):
            pass  # the client went away
        finally:
            self.board.unsubscribe(listener)
            self._streams.discard(wake)
        return response
