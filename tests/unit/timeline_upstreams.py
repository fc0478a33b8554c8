"""Small loopback upstreams for the timeline fault tests: a JSON-RPC node and a sequencer feed.

The node answers every call with ``{"method": ..., "id": ...}`` (``pad`` with ``params[0]`` bytes of
padding, to make answers as large as a test needs) and records every body it got. The feed sends one
message per frame, numbered from the client's ``Arbitrum-Requested-Sequence-Number`` (or 1), every
``interval`` seconds until the client leaves, as a Nitro feed replays from a requested number.
"""

from __future__ import annotations

import http.server
import json
import threading
import time
from typing import Any

from websockets.exceptions import ConnectionClosed
from websockets.sync.server import Server, ServerConnection, serve

from pytest_gashammer.feed import FeedMessage, encode_broadcast


class _NodeHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as a real node
    node: Node

    def do_POST(self) -> None:  # noqa: N802 - the http.server API
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.node.bodies.append(body)
        payload = json.loads(body)
        items = payload if isinstance(payload, list) else [payload]
        answers = []
        for item in items:
            if "id" not in item:
                continue
            if item["method"] == "pad":
                result: Any = "x" * int(item["params"][0])
            else:
                result = {"method": item["method"], "id": item["id"]}
            answers.append({"jsonrpc": "2.0", "id": item["id"], "result": result})
        out = answers if isinstance(payload, list) else answers[0]
        data = json.dumps(out).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


class Node:
    """A JSON-RPC node on loopback; ``with Node() as url``."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []
        handler = type("Handler", (_NodeHandler,), {"node": self})
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def calls(self) -> list[dict[str, Any]]:
        """Every call the node received, in order."""
        out: list[dict[str, Any]] = []
        for body in self.bodies:
            payload = json.loads(body)
            out.extend(payload if isinstance(payload, list) else [payload])
        return out

    def __enter__(self) -> str:
        self.thread.start()
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __exit__(self, *exc_info: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


def feed_frame(sequence: int) -> str:
    return encode_broadcast(
        [
            FeedMessage.for_block(
                sequence, [b"\x02" + bytes([sequence % 256]) * 40], block_hash=None, timestamp=1
            )
        ]
    )


class Feed:
    """A sequencer feed on loopback; ``with Feed() as url``. ``requested`` lists what clients asked for."""

    def __init__(self, interval: float = 0.02) -> None:
        self.interval = interval
        self.requested: list[int | None] = []
        self.server: Server | None = None
        self.thread: threading.Thread | None = None

    def process_request(self, connection: ServerConnection, request: Any) -> Any:
        value = request.headers.get("Arbitrum-Requested-Sequence-Number")
        self.requested.append(int(value) if value else None)
        return None

    def process_response(self, connection: ServerConnection, request: Any, response: Any) -> None:
        response.headers["Arbitrum-Feed-Server-Version"] = "2"
        response.headers["Arbitrum-Chain-Id"] = "412346"

    def handler(self, connection: ServerConnection) -> None:
        value = (
            connection.request.headers.get("Arbitrum-Requested-Sequence-Number")
            if connection.request
            else None
        )
        sequence = int(value) if value else 1
        try:
            while True:
                connection.send(feed_frame(sequence))
                sequence += 1
                time.sleep(self.interval)
        except ConnectionClosed:
            pass

    def __enter__(self) -> str:
        self.server = serve(
            self.handler,
            "127.0.0.1",
            0,
            process_request=self.process_request,
            process_response=self.process_response,
        )
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        return f"ws://127.0.0.1:{self.server.socket.getsockname()[1]}"

    def __exit__(self, *exc_info: object) -> None:
        assert self.server is not None and self.thread is not None
        self.server.shutdown()
        self.thread.join(5)
