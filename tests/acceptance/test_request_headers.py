"""Every request the plugin makes identifies it with the GasHammer headers."""

from __future__ import annotations

import asyncio
import http.server
import json
import threading
from collections.abc import Iterator

import pytest

from pytest_gashammer._version import __version__, build_sha
from pytest_gashammer.chain.rpc import AsyncRpcClient, call


class RecordingHandler(http.server.BaseHTTPRequestHandler):
    seen: list[dict[str, str]] = []  # header names lower-cased: HTTP header names are case-insensitive

    def do_POST(self) -> None:  # noqa: N802 - the http.server API
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        RecordingHandler.seen.append({name.lower(): value for name, value in self.headers.items()})
        answer: object
        if isinstance(body, list):
            answer = [{"jsonrpc": "2.0", "id": item["id"], "result": "0x1"} for item in body]
        else:
            answer = {"jsonrpc": "2.0", "id": body["id"], "result": "0x1"}
        payload = json.dumps(answer).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def recording_server() -> Iterator[str]:
    RecordingHandler.seen = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), RecordingHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def expected_headers() -> dict[str, str]:
    sha = build_sha()
    return {
        "User-Agent": f"GasHammer/{__version__} ({sha})",
        "X-Powered-By": f"GasHammer/{__version__}",
        "X-GasHammer-Version": __version__,
        "X-GasHammer-Build": sha,
    }


def test_blocking_and_async_clients_send_the_identification_headers(recording_server: str) -> None:
    assert call(recording_server, "eth_chainId") == "0x1"

    async def hot_path() -> None:
        async with AsyncRpcClient(recording_server, connections=2) as client:
            assert await client.call("eth_blockNumber") == "0x1"
            assert await client.batch([("eth_chainId", []), ("eth_blockNumber", [])]) == ["0x1", "0x1"]

    asyncio.run(hot_path())
    assert len(RecordingHandler.seen) == 3
    for headers in RecordingHandler.seen:
        for name, value in expected_headers().items():
            assert headers.get(name.lower()) == value, (name, headers)
        assert headers.get("content-type") == "application/json"
