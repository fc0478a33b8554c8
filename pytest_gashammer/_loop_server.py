"""A server that runs on its own asyncio event loop in a daemon thread, owned by synchronous code.

The feed relay and the fault proxies are owned by fixtures and tests, which are synchronous: each
serves from a daemon thread with a private event loop. ``start()`` returns once clients can
connect, ``stop()`` is idempotent and bounded in time, and the server is a context manager.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import Awaitable
from typing import Any, Self

from pytest_gashammer.errors import GashammerError

LOOPBACK = "127.0.0.1"


class LoopServer:
    """Runs :meth:`_serve` on a private event loop in a daemon thread.

    Subclasses implement :meth:`_serve`: bind, store the port in ``self._port``, call
    ``self._ready.set()``, wait for ``stop``, and release everything they opened before returning.
    """

    #: How the server names itself in errors; its thread is ``gashammer-<kind>`` unless
    #: :attr:`thread_name` says otherwise.
    kind = "server"
    thread_name: str | None = None
    #: The error raised when the server cannot start.
    error: type[GashammerError] = GashammerError

    def __init__(self, *, host: str = LOOPBACK, port: int = 0, startup_timeout: float = 10.0) -> None:
        if not 0 <= port <= 65535:
            raise ValueError(f"port={port} is not a TCP port; pass 0 for a free one")
        if startup_timeout <= 0:
            raise ValueError(f"startup_timeout={startup_timeout} must be positive, e.g. 10.0")
        self.host = host
        self._requested_port = port
        self.startup_timeout = startup_timeout
        self._port: int | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop_event: asyncio.Event | None = None
        self._ready = threading.Event()
        self._done = threading.Event()
        self._failure: BaseException | None = None

    # -- host-facing API ------------------------------------------------------------------------
    @property
    def port(self) -> int:
        if self._port is None:
            raise self.error(f"the {self.kind} is not started; call start() first")
        return self._port

    @property
    def running(self) -> bool:
        """True from ``start()`` until the server's thread has finished."""
        return self._thread is not None and not self._done.is_set()

    def start(self) -> Self:
        """Start listening; returns once clients can connect. Raises :attr:`error`."""
        if self._thread is not None:
            return self
        name = self.thread_name or f"gashammer-{self.kind}"
        self._thread = threading.Thread(target=self._thread_main, name=name, daemon=True)
        self._thread.start()
        if not self._ready.wait(self.startup_timeout) and self._failure is None:
            self.stop()
            raise self.error(self._startup_timeout_message())
        if self._failure is not None:
            failure = self._failure
            self.stop()
            if isinstance(failure, self.error):
                raise failure
            raise self.error(f"{self.kind} failed to start: {type(failure).__name__}: {failure}")
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Close the listening socket and every connection. Idempotent, returns within ``timeout``."""
        loop, event, thread = self._loop, self._stop_event, self._thread
        if loop is not None and event is not None:
            with contextlib.suppress(RuntimeError):  # the loop already closed
                loop.call_soon_threadsafe(event.set)
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
        self._stopped()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- for subclasses -------------------------------------------------------------------------
    def _startup_timeout_message(self) -> str:
        return (
            f"{self.kind} did not start within {self.startup_timeout:g} s; raise startup_timeout "
            "or check that the machine is not overloaded"
        )

    def _listen_socket(self) -> socket.socket:
        """A TCP socket bound to ``host`` and the requested port, the bound port kept in ``_port``;
        an unusable address raises :attr:`error` with :meth:`_bind_failed_message`."""
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.host, self._requested_port))
        except OSError as exc:
            sock.close()
            raise self.error(self._bind_failed_message(exc)) from None
        self._port = int(sock.getsockname()[1])
        return sock

    def _bind_failed_message(self, exc: OSError) -> str:
        return (
            f"{self.kind} cannot listen on {self.host}:{self._requested_port} ({exc}); "
            "pick another port or port=0"
        )

    def _crashed_after_start(self, exc: BaseException) -> None:
        """The serving coroutine failed after ``start()`` returned. Default: keep the failure."""
        self._failure = exc

    def _stopped(self) -> None:
        """Called when ``stop()`` returns and when the thread ends: wake anyone waiting on the server."""

    async def _serve(self, stop: asyncio.Event) -> None:
        raise NotImplementedError

    async def _wait_bounded(self, awaitable: Awaitable[Any], timeout: float) -> None:
        """Await ``awaitable`` for at most ``timeout`` seconds, ignoring its failure (used in cleanup)."""
        with contextlib.suppress(TimeoutError, asyncio.CancelledError, Exception):
            await asyncio.wait_for(awaitable, timeout)

    # -- thread ---------------------------------------------------------------------------------
    def _thread_main(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            self._stop_event = asyncio.Event()
            loop.run_until_complete(self._serve(self._stop_event))
        except BaseException as exc:  # reported by start(); after a successful start, by the hook
            if not self._ready.is_set():
                self._failure = exc
            else:
                self._crashed_after_start(exc)
        finally:
            with contextlib.suppress(Exception):
                loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()
            self._done.set()
            self._ready.set()
            self._stopped()
