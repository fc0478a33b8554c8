"""Small loopback upstreams for the timeline fault tests: a JSON-RPC node and a sequencer feed.

The node answers every call with ``{"method": ..., "id": ...}`` (``pad`` with ``params[0]`` bytes of
padding, to make answers as large as a test needs) and records every body it got. The feed sends one
message per frame, numbered from the client's ``Arbitrum-Requested-Sequence-Number`` (or 1), every
``interval`` seconds until the client leaves, as a Nitro feed replays from a requested number.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Mapping
from typing import Any

from websockets.exceptions import ConnectionClosed
from websockets.sync.server import Server, ServerConnection, serve

from pytest_gashammer.feed import FeedMessage, encode_broadcast
from tests.unit.loopback_http import LoopbackHttp, json_reply


class Node:
    """A JSON-RPC node on loopback; ``with Node() as url``."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []
        self.http = LoopbackHttp(self._respond, keep_alive=True)  # keep-alive, as a real node

    def _respond(self, headers: Mapping[str, str], body: bytes) -> tuple[int, bytes]:
        self.bodies.append(body)
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
        return json_reply(answers if isinstance(payload, list) else answers[0])

    @property
    def calls(self) -> list[dict[str, Any]]:
        """Every call the node received, in order."""
        out: list[dict[str, Any]] = []
        for body in self.bodies:
            payload = json.loads(body)
            out.extend(payload if isinstance(payload, list) else [payload])
        return out

    def __enter__(self) -> str:
        return self.http.__enter__().url

    def __exit__(self, *exc_info: object) -> None:
        self.http.__exit__(*exc_info)


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
