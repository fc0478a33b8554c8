"""Timeline faults on the JSON-RPC path, each measured through a real RpcProxy on loopback: added
latency, the error share, resets and black holes as clients see them, the bandwidth cap, and the switch
thrown from other threads while requests flow."""

from __future__ import annotations

import asyncio
import errno
import json
import random
import socket
import threading
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest

from pytest_gashammer.chain.rpc import AsyncRpcClient, TransportError, call
from pytest_gashammer.chain.rpc import RpcError as ClientRpcError
from pytest_gashammer.fault import (
    FaultProxyError,
    RpcBandwidth,
    RpcBlackhole,
    RpcError,
    RpcLatency,
    RpcProxy,
    RpcReset,
    TimelineFault,
)
from tests.unit.timeline_upstreams import Node


@pytest.fixture
def node() -> Iterator[Node]:
    upstream = Node()
    with upstream:
        yield upstream


def url_of(node: Node) -> str:
    return node.http.url


def batch(methods: list[str], first_id: int = 1) -> bytes:
    return json.dumps(
        [{"jsonrpc": "2.0", "id": first_id + i, "method": m, "params": []} for i, m in enumerate(methods)]
    ).encode()


def post_blocking(url: str, body: bytes) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return int(response.status), response.read()


def timed_call(url: str, method: str = "eth_chainId") -> float:
    started = time.monotonic()
    call(url, method)
    return time.monotonic() - started


def in_thread(action: Any) -> None:
    """Run ``action`` on another thread and wait for it, as a scheduler would throw the switch."""
    thread = threading.Thread(target=action)
    thread.start()
    thread.join(5)


async def post(session: aiohttp.ClientSession, url: str, body: bytes, timeout: float = 5.0) -> Any:
    async with session.post(url, data=body, timeout=aiohttp.ClientTimeout(total=timeout)) as response:
        return json.loads(await response.read())


# ------------------------------------------------------------------------------------ the switch


def test_the_switch_records_windows_and_is_idempotent_from_many_threads() -> None:
    fault = RpcLatency(10, armed=False)
    assert not fault.armed and fault.windows == [] and fault.events == []
    before = time.time_ns()
    threads = [threading.Thread(target=fault.arm) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert fault.armed and len(fault.windows) == 1, "eight arms from eight threads open one window"
    fault.disarm()
    fault.disarm()
    fault.arm()
    windows = fault.windows
    assert len(windows) == 2 and windows[1]["disarmed_ns"] is None
    assert before <= windows[0]["armed_ns"] <= windows[0]["disarmed_ns"] <= windows[1]["armed_ns"]
    assert [e["event"] for e in fault.events] == ["armed", "disarmed", "armed"]
    assert fault.stats == {"kind": "rpc.latency", "windows": 2, "requests": 0}
    assert isinstance(fault, TimelineFault) and RpcLatency(1).armed, "armed by default, like every fault"


def test_bad_arguments_name_the_fix() -> None:
    with pytest.raises(ValueError, match=r"RpcLatency: ms=-1 must be a non-negative number"):
        RpcLatency(-1)
    with pytest.raises(ValueError, match=r"RpcError: rate=0 must be a share in \(0, 1\]"):
        RpcError(0)
    with pytest.raises(ValueError, match=r"RpcError: rate=1.5 must be a share"):
        RpcError(1.5)
    with pytest.raises(ValueError, match=r"RpcBlackhole: max_held=0 must be a positive integer"):
        RpcBlackhole(max_held=0)
    with pytest.raises(ValueError, match=r"RpcBandwidth: bytes_per_sec=0 must be a positive integer"):
        RpcBandwidth(0)


# ---------------------------------------------------------------------------------------- latency


def test_latency_adds_its_delay_with_seeded_jitter_once_per_request(node: Node) -> None:
    latency = RpcLatency(120, jitter_ms=40, seed=5)
    draws = random.Random(5)
    expected = [120 + draws.uniform(-40, 40) for _ in range(6)]
    with RpcProxy(url_of(node), faults=[latency]) as proxy:
        direct = min(timed_call(url_of(node)) for _ in range(3))
        took = [timed_call(proxy.url) for _ in range(5)]
        status, _ = post_blocking(proxy.url, batch(["a", "b", "c"]))  # a batch is one request, one draw
    assert status == 200
    for seconds, wanted_ms in zip(took, expected, strict=False):
        assert wanted_ms / 1000 <= seconds < wanted_ms / 1000 + direct + 0.1
    stats = latency.stats
    assert (stats["requests"], stats["calls"]) == (6, 8)
    assert stats["delay_s"] == pytest.approx(sum(expected) / 1000)
    assert latency.summary().startswith("rpc.latency delayed 6 requests (8 calls) by 120 ± 40 ms (mean ")


def test_latency_applies_only_between_arm_and_disarm_thrown_from_another_thread(node: Node) -> None:
    latency = RpcLatency(200, armed=False)
    with RpcProxy(url_of(node), faults=[latency]) as proxy:
        assert timed_call(proxy.url) < 0.15
        in_thread(latency.arm)
        assert timed_call(proxy.url) >= 0.2
        in_thread(latency.disarm)
        assert timed_call(proxy.url) < 0.15
    assert [w["touched"] for w in latency.windows] == [1]
    assert latency.events[1]["touched"] == 1


# ------------------------------------------------------------------------------------------ errors


def test_errors_answer_exactly_their_share_locally_and_forward_the_rest(node: Node) -> None:
    error = RpcError(0.25)
    with RpcProxy(url_of(node), faults=[error]) as proxy:
        answers: list[dict[str, Any]] = []
        for first in range(1, 41, 10):
            _, body = post_blocking(proxy.url, batch(["eth_blockNumber"] * 10, first))
            answers.extend(json.loads(body))
        stats = proxy.stats
    errors = [a for a in answers if "error" in a]
    assert [a["id"] for a in errors] == list(range(4, 41, 4)), "every 4th call, by count"
    assert {(a["error"]["code"], a["error"]["message"]) for a in errors} == {
        (-32603, "internal error (injected by gashammer rpc.error)")
    }
    assert len(node.calls) == 30, "an answered call is never forwarded"
    assert stats.local_answers == 10
    assert error.touched == 10 and error.summary() == "rpc.error answered 10 calls with -32603"


def test_errors_keep_to_their_methods_and_clients_see_the_code(node: Node) -> None:
    error = RpcError(1.0, code=-32005, message="limit exceeded", methods={"eth_sendRawTransaction"})
    with RpcProxy(url_of(node), faults=[error]) as proxy:
        assert call(proxy.url, "eth_chainId") == {"method": "eth_chainId", "id": 0}
        with pytest.raises(ClientRpcError) as refused:
            call(proxy.url, "eth_sendRawTransaction", ["0x00"])
    assert (refused.value.code, refused.value.message) == (-32005, "limit exceeded")
    assert [c["method"] for c in node.calls] == ["eth_chainId"]


# ------------------------------------------------------------------------------------------ resets


def test_reset_refuses_every_request_with_a_tcp_reset_while_armed(node: Node) -> None:
    reset = RpcReset(armed=False)

    async def scenario(proxy: RpcProxy) -> None:
        async with aiohttp.ClientSession() as session:
            assert (await post(session, proxy.url, batch(["a"])))[0]["result"]["method"] == "a"
            in_thread(reset.arm)
            for _ in range(3):
                with pytest.raises(aiohttp.ClientOSError) as seen:
                    await post(session, proxy.url, batch(["b"]))
                assert seen.value.errno == errno.ECONNRESET
            async with AsyncRpcClient(proxy.url, retries=0) as client:
                with pytest.raises(TransportError, match="reset by peer"):
                    await client.call("eth_chainId")
            in_thread(reset.disarm)
            assert (await post(session, proxy.url, batch(["c"])))[0]["result"]["method"] == "c"

    with RpcProxy(url_of(node), faults=[reset]) as proxy:
        asyncio.run(scenario(proxy))
        assert proxy.stats.resets >= 4
    assert [c["method"] for c in node.calls] == ["a", "c"], "nothing reached the node while armed"
    stats = reset.stats
    # The session's kept-alive connection was reset at arm; the client may have tried it before
    # noticing, so its failure is that reset rather than a request's.
    assert stats["connections"] == 1 and stats["requests"] in (3, 4)
    assert reset.summary() == f"rpc.reset reset {stats['requests']} requests and 1 connections open at arm"


def test_arming_a_reset_closes_connections_already_open(node: Node) -> None:
    reset = RpcReset(armed=False)
    slow = RpcLatency(400)  # holds one request in flight while the reset is armed
    with RpcProxy(url_of(node), faults=[slow, reset]) as proxy:
        idle = socket.create_connection(("127.0.0.1", proxy.port), timeout=5)
        body = batch(["a"])
        idle.sendall(
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        assert b"HTTP/1.1 200" in idle.recv(65536)  # answered, and kept alive
        busy: dict[str, Any] = {}

        def ask() -> None:
            try:
                call(proxy.url, "slow")
            except TransportError as exc:
                busy["error"] = str(exc)

        asker = threading.Thread(target=ask)
        asker.start()
        time.sleep(0.15)
        in_thread(reset.arm)
        asker.join(5)
        with pytest.raises(ConnectionResetError):
            idle.recv(65536)
        idle.close()
    assert "reset by peer" in busy["error"] or "Connection reset" in busy["error"], busy
    assert reset.stats["connections"] == 2


# --------------------------------------------------------------------------------------- blackhole


def test_blackhole_requests_time_out_and_are_dropped_not_answered_at_disarm(node: Node) -> None:
    hole = RpcBlackhole(armed=False)

    async def scenario(proxy: RpcProxy) -> None:
        async with aiohttp.ClientSession() as session:
            in_thread(hole.arm)
            with pytest.raises(TimeoutError):
                await post(session, proxy.url, batch(["lost"]), timeout=0.3)
            waiting = asyncio.ensure_future(post(session, proxy.url, batch(["held"]), timeout=5))
            await asyncio.sleep(0.2)
            assert hole.held >= 1 and not waiting.done()
            started = time.monotonic()
            await asyncio.to_thread(hole.disarm)
            with pytest.raises(aiohttp.ClientError):
                await waiting  # the held request's connection is reset, never answered late
            assert time.monotonic() - started < 0.5
            assert (await post(session, proxy.url, batch(["after"])))[0]["result"]["method"] == "after"

    with RpcProxy(url_of(node), faults=[hole]) as proxy:
        asyncio.run(scenario(proxy))
    assert [c["method"] for c in node.calls] == ["after"]
    stats = hole.stats
    assert stats["requests"] == 2 and stats["dropped"] + stats.get("abandoned", 0) == 2
    assert hole.held == 0


def test_blackhole_holds_at_most_its_cap_and_resets_the_rest(node: Node) -> None:
    hole = RpcBlackhole(max_held=3)

    async def scenario(proxy: RpcProxy) -> list[Any]:
        async with aiohttp.ClientSession() as session:
            tasks = [
                asyncio.ensure_future(post(session, proxy.url, batch(["x"]), timeout=1.0)) for _ in range(5)
            ]
            await asyncio.sleep(0.3)
            assert hole.held == 3
            return await asyncio.gather(*tasks, return_exceptions=True)

    with RpcProxy(url_of(node), faults=[hole]) as proxy:
        outcomes = asyncio.run(scenario(proxy))
        started = time.monotonic()
    assert time.monotonic() - started < 2, "stop lets held requests go at once"
    assert sum(isinstance(o, aiohttp.ClientOSError) and o.errno == errno.ECONNRESET for o in outcomes) == 2
    assert sum(isinstance(o, TimeoutError) for o in outcomes) == 3
    assert hole.stats["overflow"] == 2 and hole.stats["requests"] == 3 and node.calls == []


def test_stopping_the_proxy_lets_held_requests_go_promptly(node: Node) -> None:
    hole = RpcBlackhole()
    proxy = RpcProxy(url_of(node), faults=[hole]).start()
    errors: list[BaseException] = []

    def ask() -> None:
        try:
            call(proxy.url, "eth_chainId", timeout=10)
        except BaseException as exc:
            errors.append(exc)

    asker = threading.Thread(target=ask)
    asker.start()
    time.sleep(0.2)
    started = time.monotonic()
    proxy.stop()
    asker.join(5)
    assert time.monotonic() - started < 1.5 and not asker.is_alive()
    assert len(errors) == 1 and isinstance(errors[0], TransportError)


# --------------------------------------------------------------------------------------- bandwidth


def test_bandwidth_caps_the_bytes_both_ways(node: Node) -> None:
    rate = 200_000
    pipe = RpcBandwidth(rate)
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "pad", "params": [100_000], "p": "y" * 60_000})
    with RpcProxy(url_of(node), faults=[pipe]) as proxy:
        started = time.monotonic()
        status, _ = post_blocking(proxy.url, body.encode())
        took = time.monotonic() - started
    stats = pipe.stats
    assert status == 200 and stats["bytes_in"] == len(body) and stats["bytes_out"] > 100_000
    floor = (stats["bytes_in"] + stats["bytes_out"] - 2 * pipe.burst_bytes) / rate
    assert floor * 0.95 <= took < floor + 0.4, (took, floor)
    assert stats["wait_s"] == pytest.approx(took, abs=0.2)


def test_bandwidth_is_shared_by_concurrent_connections(node: Node) -> None:
    rate = 100_000
    pipe = RpcBandwidth(rate, burst_bytes=0)
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "pad", "params": [40_000]}).encode()

    async def scenario(proxy: RpcProxy) -> float:
        async with aiohttp.ClientSession() as session:
            started = time.monotonic()
            await asyncio.gather(*(post(session, proxy.url, body) for _ in range(3)))
            return time.monotonic() - started

    with RpcProxy(url_of(node), faults=[pipe]) as proxy:
        took = asyncio.run(scenario(proxy))
    out = pipe.stats["bytes_out"]
    assert out > 120_000
    assert out / rate * 0.95 <= took < out / rate + 0.4, "three answers share one pipe"


def test_disarming_the_bandwidth_cap_frees_a_slow_answer_at_once(node: Node) -> None:
    pipe = RpcBandwidth(20_000)
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "pad", "params": [100_000]}).encode()
    with RpcProxy(url_of(node), faults=[pipe]) as proxy:
        timer = threading.Timer(0.4, pipe.disarm)
        timer.start()
        started = time.monotonic()
        post_blocking(proxy.url, body)  # 5 s at 20 kB/s
        took = time.monotonic() - started
        timer.join()
    assert 0.4 <= took < 0.8


# ----------------------------------------------------------------------------------- under traffic


def test_switching_from_another_thread_under_traffic_loses_nothing_silently(node: Node) -> None:
    """A scheduler throws switches while a client keeps calling: every call is answered, refused with
    the injected error, or reset; none hangs, no fault raises, and each window counts what it did."""
    faults: list[Any] = [RpcError(0.5, armed=False), RpcReset(armed=False), RpcLatency(5, armed=False)]
    outcomes = {"answered": 0, "error": 0, "reset": 0}

    async def traffic(proxy: RpcProxy, stop: threading.Event) -> None:
        async with AsyncRpcClient(proxy.url, retries=0, timeout=3) as client:
            while not stop.is_set():
                try:
                    await client.call("eth_chainId")
                    outcomes["answered"] += 1
                except ClientRpcError:
                    outcomes["error"] += 1
                except TransportError:
                    outcomes["reset"] += 1

    def schedule(stop: threading.Event) -> None:
        for fault in faults * 4:
            fault.arm()
            time.sleep(0.04)
            fault.disarm()
        stop.set()

    stop = threading.Event()
    with RpcProxy(url_of(node), faults=faults) as proxy:
        scheduler = threading.Thread(target=schedule, args=(stop,))
        scheduler.start()
        asyncio.run(asyncio.wait_for(traffic(proxy, stop), 10))
        scheduler.join(5)
        stats = proxy.stats
    assert stats.fault_errors == 0, stats.last_error
    reset = faults[1].stats
    assert outcomes["error"] == faults[0].touched > 0
    # A request in flight when the reset is armed fails too, and may already have reached the node.
    assert reset["requests"] <= outcomes["reset"] <= reset["requests"] + reset["connections"]
    assert 0 < outcomes["answered"] <= len(node.calls) <= outcomes["answered"] + reset["connections"]
    for fault in faults:
        assert len(fault.windows) == 4 and all(w["disarmed_ns"] is not None for w in fault.windows)
        assert sum(w["touched"] for w in fault.windows) == fault.touched


def test_the_proxy_thread_reports_its_cpu_time(node: Node) -> None:
    proxy = RpcProxy(url_of(node))
    with pytest.raises(FaultProxyError, match="the rpc proxy is not running; start"):
        proxy.thread_cpu_seconds()
    with proxy:
        before = proxy.thread_cpu_seconds()
        _, body = post_blocking(proxy.url, batch(["eth_blockNumber"] * 2000))
        spent = proxy.thread_cpu_seconds() - before
    assert len(json.loads(body)) == 2000
    assert 0 < spent < 2, "splitting, forwarding and joining 2,000 calls costs the proxy's thread CPU"
