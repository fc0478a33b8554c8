"""A POST-only HTTP server on loopback for the unit tests' fake nodes.

A fake node gives ``respond(headers, body) -> (status, body)``; this class owns the socket, the thread
and the HTTP details. ``with LoopbackHttp(respond) as server: server.url``.
"""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Callable, Mapping
from typing import Any

#: ``(request headers, request body) -> (HTTP status, response body)``.
Respond = Callable[[Mapping[str, str], bytes], tuple[int, bytes]]


def json_reply(answer: Any, status: int = 200) -> tuple[int, bytes]:
    """``answer`` as a JSON response body."""
    return status, json.dumps(answer).encode()


def bearer_token(headers: Mapping[str, str]) -> str:
    """The token of an ``Authorization: Bearer ...`` header ('' without one)."""
    return str(headers.get("Authorization") or "").removeprefix("Bearer ")


class LoopbackHttp:
    """Answers every POST with ``respond``; bound at construction (``url`` is known at once), served from
    :meth:`__enter__` until :meth:`__exit__`. ``keep_alive`` speaks HTTP/1.1 as real nodes do."""

    def __init__(self, respond: Respond, *, keep_alive: bool = False) -> None:
        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1" if keep_alive else "HTTP/1.0"

            def do_POST(self) -> None:  # noqa: N802 - the http.server API
                body = self.rfile.read(int(self.headers["Content-Length"]))
                status, data = respond(self.headers, body)
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> LoopbackHttp:
        self.thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)
