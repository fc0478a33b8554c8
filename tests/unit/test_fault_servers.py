"""The proxies themselves, on loopback against small fake upstreams: transparency, ids, handshakes,
failures, and a lifecycle that never leaks a thread or a socket. No node is started."""

from __future__ import annotations

import asyncio
import http.server
import json
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect
from websockets.sync.server import Server, ServerConnection, serve

from pytest_gashammer._version import __version__
from pytest_gashammer.chain.rpc import AsyncRpcClient, TransportError, call
from pytest_gashammer.devnet.base import free_port
from pytest_gashammer.fault import (
    DropTransactions,
    FaultProxyError,
    FeedProxy,
    RpcCall,
    RpcFault,
    RpcProxy,
    SkipSequence,
)
from pytest_gashammer.feed import FeedMessage, decode_broadcast, encode_broadcast

# ------------------------------------------------------------------------------- fake JSON-RPC node


class FakeNode(http.server.BaseHTTPRequestHandler):
    """Answers every call with ``{"method": ..., "id": ...}``; ``boom`` is HTTP 500; ``refuse`` in a
    batch refuses the whole batch with one error object."""

    bodies: list[bytes] = []
    headers_seen: list[dict[str, str]] = []

    def do_POST(self) -> None:  # noqa: N802 - the http.server API
        body = self.rfile.read(int(self.headers["Content-Length"]))
        FakeNode.bodies.append(body)
        FakeNode.headers_seen.append({name.lower(): value for name, value in self.headers.items()})
        try:
            payload = json.loads(body)
        except ValueError:
            self._send(200, b'{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"Parse error"}}')
            return
        items = payload if isinstance(payload, list) else [payload]
        if any(item.get("method") == "boom" for item in items):
            self._send(500, b"kaput")
            return
        if isinstance(payload, list) and any(item.get("method") == "refuse" for item in items):
            self._send(200, b'{"jsonrpc":"2.0","id":null,"error":{"code":-32600,"message":"no batches"}}')
            return
        answers = [
            {"jsonrpc": "2.0", "id": item["id"], "result": {"method": item["method"], "id": item["id"]}}
            for item in items
            if "id" in item
        ]
        out: Any = answers if isinstance(payload, list) else (answers[0] if answers else None)
        self._send(200, b"" if out is None else json.dumps(out).encode())

    def _send(self, status: int, payload: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def node() -> Iterator[str]:
    FakeNode.bodies = []
    FakeNode.headers_seen = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), FakeNode)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def post(url: str, body: bytes) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def signed_raw() -> tuple[str, str]:
    from pytest_gashammer.chain.signer import FastSigner

    tx = FastSigner("0x" + "22" * 32, 412346).sign(
        {
            "type": 2,
            "nonce": 0,
            "to": None,
            "value": 0,
            "gas": 60_000,
            "maxFeePerGas": 1,
            "maxPriorityFeePerGas": 1,
        }
    )
    return tx.raw_hex, tx.hash_hex


# ---------------------------------------------------------------------------------- rpc proxy


def test_a_batch_goes_upstream_under_the_proxys_ids_and_comes_back_under_the_clients(node: str) -> None:
    batch = [
        {"jsonrpc": "2.0", "id": "x", "method": "a", "params": []},
        {"jsonrpc": "2.0", "id": 5, "method": "b", "params": [1]},
        {"jsonrpc": "2.0", "method": "note", "params": []},
        {"jsonrpc": "2.0", "id": "x", "method": "c"},  # a duplicate id is the client's business
    ]
    with RpcProxy(node) as proxy:
        status, body = post(proxy.url, json.dumps(batch).encode())
        stats = proxy.stats
    assert status == 200
    upstream = json.loads(FakeNode.bodies[-1])
    assert [item.get("id") for item in upstream] == [0, 1, None, 3]
    assert [item["result"]["method"] for item in json.loads(body)] == ["a", "b", "c"]
    assert [item["id"] for item in json.loads(body)] == ["x", 5, "x"]
    assert [item["result"]["id"] for item in json.loads(body)] == [0, 1, 3]
    assert (
        stats.calls == 4
        and stats.forwarded_calls == 4
        and stats.methods == {"a": 1, "b": 1, "note": 1, "c": 1}
    )


def test_a_single_call_stays_single(node: str) -> None:
    with RpcProxy(node) as proxy:
        assert call(proxy.url, "eth_chainId") == {"method": "eth_chainId", "id": 0}
    assert isinstance(json.loads(FakeNode.bodies[-1]), dict)


def test_local_answers_keep_their_place_and_are_not_forwarded(node: str) -> None:
    raw, tx_hash = signed_raw()
    drop = DropTransactions(every=1)
    batch = [
        {"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []},
        {"jsonrpc": "2.0", "id": 2, "method": "eth_sendRawTransaction", "params": [raw]},
        {"jsonrpc": "2.0", "id": 3, "method": "eth_blockNumber", "params": []},
    ]
    with RpcProxy(node, faults=[drop]) as proxy:
        _, body = post(proxy.url, json.dumps(batch).encode())
        assert proxy.stats.local_answers == 1
    assert [item["method"] for item in json.loads(FakeNode.bodies[-1])] == ["eth_chainId", "eth_blockNumber"]
    answers = json.loads(body)
    assert answers[1] == {"jsonrpc": "2.0", "id": 2, "result": tx_hash}
    assert [answers[0]["result"]["method"], answers[2]["result"]["method"]] == [
        "eth_chainId",
        "eth_blockNumber",
    ]
    assert drop.affected == [tx_hash]


def test_a_batch_refused_as_a_whole_gives_every_call_the_error(node: str) -> None:
    batch = [{"jsonrpc": "2.0", "id": i, "method": m, "params": []} for i, m in ((7, "a"), (8, "refuse"))]
    with RpcProxy(node) as proxy:
        _, body = post(proxy.url, json.dumps(batch).encode())
    assert json.loads(body) == [
        {"jsonrpc": "2.0", "id": 7, "error": {"code": -32600, "message": "no batches"}},
        {"jsonrpc": "2.0", "id": 8, "error": {"code": -32600, "message": "no batches"}},
    ]


def test_what_is_not_json_rpc_passes_through_byte_for_byte(node: str) -> None:
    with RpcProxy(node) as proxy:
        status, body = post(proxy.url, b"not json at all")
        assert proxy.stats.passthrough_requests == 1
    assert FakeNode.bodies[-1] == b"not json at all"
    assert status == 200 and json.loads(body)["error"]["code"] == -32700


def test_an_upstream_http_error_passes_through(node: str) -> None:
    with RpcProxy(node) as proxy:
        status, body = post(proxy.url, json.dumps({"jsonrpc": "2.0", "id": 1, "method": "boom"}).encode())
        assert proxy.stats.upstream_http_errors == 1
    assert (status, body) == (500, b"kaput")


def test_an_unreachable_upstream_is_http_502_which_clients_see_as_transport_errors() -> None:
    upstream = f"http://127.0.0.1:{free_port()}"
    with RpcProxy(upstream) as proxy:
        status, body = post(proxy.url, json.dumps({"jsonrpc": "2.0", "id": 1, "method": "x"}).encode())
        assert status == 502 and f"rpc proxy cannot reach {upstream}".encode() in body

        async def ask() -> None:
            async with AsyncRpcClient(proxy.url, retries=0) as client:
                await client.call("eth_chainId")

        with pytest.raises(TransportError, match="HTTP 502"):
            asyncio.run(ask())
        assert proxy.stats.upstream_failures == 2


def test_the_clients_identification_headers_reach_the_node(node: str) -> None:
    with RpcProxy(node) as proxy:
        call(proxy.url, "eth_chainId")
    seen = FakeNode.headers_seen[-1]
    assert seen["x-gashammer-version"] == __version__
    assert seen["user-agent"].startswith("GasHammer/")


class Slow(RpcFault):
    def on_request(self, call: RpcCall) -> None:
        call.delay = 0.3


class Broken(RpcFault):
    def on_answer(self, call: RpcCall) -> None:
        raise RuntimeError("bug in a fault")


def test_a_delay_holds_the_request_back(node: str) -> None:
    with RpcProxy(node, faults=[Slow()]) as proxy:
        started = time.monotonic()
        call(proxy.url, "eth_chainId")
        assert time.monotonic() - started >= 0.3


def test_a_fault_that_raises_is_counted_and_the_request_still_answered(node: str) -> None:
    with RpcProxy(node, faults=[Broken()]) as proxy:
        assert call(proxy.url, "eth_chainId") == {"method": "eth_chainId", "id": 0}
        stats = proxy.stats
    assert stats.fault_errors == 1
    assert stats.last_error == "Broken.on_answer(eth_chainId): RuntimeError: bug in a fault"


def test_faults_can_be_added_while_the_proxy_runs(node: str) -> None:
    raw, tx_hash = signed_raw()
    with RpcProxy(node) as proxy:
        assert call(proxy.url, "eth_sendRawTransaction", [raw]) == {
            "method": "eth_sendRawTransaction",
            "id": 0,
        }
        proxy.faults.append(DropTransactions(every=1))
        assert call(proxy.url, "eth_sendRawTransaction", [raw]) == tx_hash


def test_lifecycle_start_once_stop_twice_and_nothing_left_listening(node: str) -> None:
    proxy = RpcProxy(node)
    with pytest.raises(FaultProxyError, match="the rpc proxy is not started; call start"):
        _ = proxy.url
    assert proxy.start() is proxy.start()
    port = proxy.port
    assert proxy.url == f"http://127.0.0.1:{port}" and proxy.running
    keep_alive = socket.create_connection(("127.0.0.1", port))  # an idle client must not hold stop()
    try:
        started = time.monotonic()
        proxy.stop()
        proxy.stop()
        assert time.monotonic() - started < 5
    finally:
        keep_alive.close()
    assert not proxy.running
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()


def test_a_taken_port_is_one_clear_error(node: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(
            FaultProxyError, match=rf"rpc proxy cannot listen on 127.0.0.1:{port} .*; pick another"
        ):
            RpcProxy(node, port=port).start()


def test_bad_arguments_name_the_fix() -> None:
    with pytest.raises(ValueError, match="must be an http:// or https:// JSON-RPC URL"):
        RpcProxy("ws://127.0.0.1:1")
    with pytest.raises(TypeError, match="is not an RpcFault; feed faults go to FeedProxy"):
        RpcProxy("http://127.0.0.1:1", faults=[SkipSequence(nth=1)])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="must be a ws:// or wss:// feed URL"):
        FeedProxy("http://127.0.0.1:1")
    with pytest.raises(TypeError, match="is not a FeedFault; JSON-RPC faults go to RpcProxy"):
        FeedProxy("ws://127.0.0.1:1", faults=[DropTransactions(nth=1)])  # type: ignore[list-item]


# --------------------------------------------------------------------------------- fake feed


def frame(*sequences: int) -> str:
    return encode_broadcast(
        [
            FeedMessage.for_block(s, [b"\x02" + bytes([s]) * 40], block_hash=None, timestamp=1)
            for s in sequences
        ]
    )


class FakeFeed:
    """A feed server that sends ``frames`` to each client, then closes with ``close_code``."""

    def __init__(self, frames: list[str], *, close_code: int = 1001, refuse: bool = False) -> None:
        self.frames = frames
        self.close_code = close_code
        self.refuse = refuse
        self.requests: list[dict[str, str]] = []
        self.server: Server | None = None
        self.thread: threading.Thread | None = None

    def process_request(self, connection: ServerConnection, request: Any) -> Any:
        self.requests.append({name.lower(): value for name, value in request.headers.raw_items()})
        if self.refuse:
            return connection.respond(400, "bad requested sequence number\n")
        return None

    def process_response(self, connection: ServerConnection, request: Any, response: Any) -> None:
        response.headers["Arbitrum-Feed-Server-Version"] = "2"
        response.headers["Arbitrum-Chain-Id"] = "412346"

    def handler(self, connection: ServerConnection) -> None:
        for text in self.frames:
            connection.send(text)
        connection.close(code=self.close_code, reason="upstream says bye")

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


def read_all(url: str, headers: dict[str, str]) -> tuple[list[str | bytes], dict[str, str], int | None]:
    received: list[str | bytes] = []
    with connect(url, additional_headers=headers, open_timeout=5) as client:
        response_headers = dict(client.response.headers.raw_items()) if client.response else {}
        try:
            while True:
                received.append(client.recv(timeout=5))
        except ConnectionClosed as exc:
            code = exc.rcvd.code if exc.rcvd else None
    return received, response_headers, code


def test_the_nitro_handshake_passes_through_both_ways() -> None:
    fake = FakeFeed([frame(5)])
    with fake as upstream, FeedProxy(upstream) as proxy:
        headers = {"Arbitrum-Feed-Client-Version": "2", "X-GasHammer-Version": __version__}
        received, served, code = read_all(proxy.url, headers)
    assert served["Arbitrum-Feed-Server-Version"] == "2" and served["Arbitrum-Chain-Id"] == "412346"
    assert fake.requests[-1]["x-gashammer-version"] == __version__
    assert "arbitrum-requested-sequence-number" not in fake.requests[-1]
    assert received == [frame(5)], "an untouched frame is forwarded byte for byte"
    assert code == 1001, "the upstream's close code reaches the client"


def test_the_requested_sequence_number_goes_upstream_and_older_messages_are_not_offered() -> None:
    fake = FakeFeed([frame(3, 4, 5, 6), frame(7)])
    skip = SkipSequence(nth=1)
    with fake as upstream, FeedProxy(upstream, faults=[skip]) as proxy:
        headers = {"Arbitrum-Feed-Client-Version": "2", "Arbitrum-Requested-Sequence-Number": "5"}
        received, _, _ = read_all(proxy.url, headers)
        stats = proxy.stats
    sent = fake.requests[-1]
    assert sent["arbitrum-requested-sequence-number"] == "5" and sent["arbitrum-feed-client-version"] == "2"
    delivered = [m.sequence_number for text in received for m in decode_broadcast(text).messages]
    assert delivered == [3, 4, 6, 7], "the backlog below 5 passes; 5 is the first candidate"
    assert skip.affected == [5]
    assert (stats.frames_rewritten, stats.messages_in, stats.messages_out) == (1, 5, 4)


def test_a_frame_left_without_messages_is_not_sent() -> None:
    with (
        FakeFeed([frame(5), frame(6)]) as upstream,
        FeedProxy(upstream, faults=[SkipSequence(sequence=5)]) as proxy,
    ):
        received, _, _ = read_all(proxy.url, {})
        assert proxy.stats.frames_dropped == 1
    assert received == [frame(6)]


def test_an_undecodable_frame_is_forwarded_as_is() -> None:
    with (
        FakeFeed(["{not a feed frame"]) as upstream,
        FeedProxy(upstream, faults=[SkipSequence(nth=1)]) as proxy,
    ):
        received, _, _ = read_all(proxy.url, {})
        assert proxy.stats.decode_errors == 1
    assert received == ["{not a feed frame"]


def test_an_upstream_refusal_passes_through_and_a_dead_upstream_is_502() -> None:
    with FakeFeed([], refuse=True) as upstream, FeedProxy(upstream) as proxy:
        with pytest.raises(InvalidStatus) as refused:
            read_all(proxy.url, {})
        assert refused.value.response.status_code == 400
        assert refused.value.response.body == b"bad requested sequence number\n"
    dead = f"ws://127.0.0.1:{free_port()}"
    with FeedProxy(dead) as proxy:
        with pytest.raises(InvalidStatus) as unreachable:
            read_all(proxy.url, {})
        assert unreachable.value.response.status_code == 502
        assert f"feed proxy cannot reach {dead}".encode() in unreachable.value.response.body
        assert proxy.stats.upstream_failures == 1


def test_the_feed_proxy_answers_liveness_probes_and_stops_promptly() -> None:
    with FakeFeed([]) as upstream:
        proxy = FeedProxy(upstream).start()
        with urllib.request.urlopen(f"http://127.0.0.1:{proxy.port}/livenessprobe", timeout=5) as response:
            assert response.status == 200
        started = time.monotonic()
        proxy.stop()
        proxy.stop()
        assert time.monotonic() - started < 5 and not proxy.running
