"""Timeline faults on the feed path, each seen by a websockets client through a real FeedProxy in front
of a loopback feed that sends a numbered message every 20 ms: a disconnect and its refusals, a stall
delivered late and in order, messages dropped and asked for again, and the switch thrown from other
threads."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect

from pytest_gashammer.fault import FeedDisconnect, FeedDrop, FeedProxy, FeedStall, SkipSequence
from pytest_gashammer.feed import decode_broadcast
from tests.unit.timeline_upstreams import Feed


@pytest.fixture
def feed() -> Iterator[Feed]:
    upstream = Feed(interval=0.02)
    with upstream:
        yield upstream


def url_of(feed: Feed) -> str:
    assert feed.server is not None
    return f"ws://127.0.0.1:{feed.server.socket.getsockname()[1]}"


def dial(url: str, requested: int | None = None) -> ClientConnection:
    headers = {"Arbitrum-Feed-Client-Version": "2"}
    if requested is not None:
        headers["Arbitrum-Requested-Sequence-Number"] = str(requested)
    return connect(url, additional_headers=headers, open_timeout=5)


def sequences(client: ClientConnection, count: int, timeout: float = 2.0) -> list[int]:
    out: list[int] = []
    while len(out) < count:
        out.extend(m.sequence_number for m in decode_broadcast(client.recv(timeout=timeout)).messages)
    return out


def in_thread(action: Any) -> None:
    thread = threading.Thread(target=action)
    thread.start()
    thread.join(5)


# ------------------------------------------------------------------------------------- disconnect


def test_disconnect_closes_every_client_refuses_new_ones_and_lets_them_resume(feed: Feed) -> None:
    cut = FeedDisconnect(armed=False)
    with FeedProxy(url_of(feed), faults=[cut]) as proxy, dial(proxy.url) as first, dial(proxy.url) as second:
        seen = sequences(first, 3)
        sequences(second, 1)
        in_thread(cut.arm)
        for client in (first, second):
            with pytest.raises(ConnectionClosed):
                while True:
                    seen.extend(m.sequence_number for m in decode_broadcast(client.recv(timeout=2)).messages)
        with pytest.raises(InvalidStatus) as refused:
            dial(proxy.url, requested=seen[-1] + 1)
        assert refused.value.response.status_code == 503
        assert b"feed.disconnect is armed" in refused.value.response.body
        upstream_dials = len(feed.requested)
        in_thread(cut.disarm)
        with dial(proxy.url, requested=seen[-1] + 1) as again:
            resumed = sequences(again, 2)
        stats = proxy.stats
    assert resumed[:2] == [seen[-1] + 1, seen[-1] + 2], "the client resumes where it asked"
    assert len(feed.requested) == upstream_dials + 1 and feed.requested[-1] == seen[-1] + 1
    assert cut.stats["connections"] == 2 and cut.stats["refused"] == 1
    assert stats.refused == 1 and stats.closed_by_faults == 2
    assert cut.summary() == "feed.disconnect closed 2 connections and refused 1 handshakes"


# ------------------------------------------------------------------------------------------ stall


def test_stall_sends_nothing_while_armed_then_delivers_it_late_and_in_order(feed: Feed) -> None:
    stall = FeedStall(armed=False)
    with FeedProxy(url_of(feed), faults=[stall]) as proxy, dial(proxy.url) as client:
        before = sequences(client, 3)
        in_thread(stall.arm)
        # Frames already in flight when the switch flipped may still come; then silence.
        quiet_from = time.monotonic()
        trickle: list[int] = []
        with pytest.raises(TimeoutError):
            while True:
                trickle.extend(m.sequence_number for m in decode_broadcast(client.recv(timeout=0.3)).messages)
        assert time.monotonic() - quiet_from < 0.5 and len(trickle) <= 2
        client.ping().wait(1)  # the connection is open and answers pings
        held_before_disarm = stall.stats["messages"]
        in_thread(stall.disarm)
        late = sequences(client, int(held_before_disarm) + 3)
        stats = proxy.stats
    delivered = before + trickle + late
    assert delivered == list(range(delivered[0], delivered[0] + len(delivered))), "nothing lost or reordered"
    assert held_before_disarm >= 10, "about 0.3 s of 20 ms messages were held"
    assert stats.frames_released == stall.stats["released_frames"] >= held_before_disarm
    assert stall.summary().startswith(f"feed.stall held {stall.touched} messages")


def test_a_stall_closes_a_connection_that_holds_more_than_its_cap(feed: Feed) -> None:
    stall = FeedStall(max_held_frames=3)
    with FeedProxy(url_of(feed), faults=[stall]) as proxy, dial(proxy.url) as client:
        started = time.monotonic()
        with pytest.raises(ConnectionClosed):
            client.recv(timeout=2)
        assert time.monotonic() - started < 1
        assert proxy.stats.closed_by_faults == 1
    assert stall.stats["overflow"] == 1 and stall.stats["frames"] == 4


# ------------------------------------------------------------------------------------------- drop


def test_drop_loses_messages_and_a_reconnecting_client_asks_for_them_upstream(feed: Feed) -> None:
    drop = FeedDrop(armed=False)
    with FeedProxy(url_of(feed), faults=[drop]) as proxy:
        with dial(proxy.url) as client:
            before = sequences(client, 3)
            in_thread(drop.arm)
            time.sleep(0.2)
            in_thread(drop.disarm)
            after = sequences(client, 2)
        # Frames in flight at a switch may pass; the first one after the loss shows the gap.
        delivered = before + after
        first_missing = next(n for n in range(delivered[0], delivered[-1]) if n not in delivered)
        with dial(proxy.url, requested=first_missing) as again:
            recovered = sequences(again, 3)
    lost = drop.affected
    assert len(lost) >= 5 and lost == list(range(lost[0], lost[0] + len(lost))), "a run of messages lost"
    assert first_missing == lost[0] and not set(lost) & set(delivered)
    assert feed.requested[-1] == first_missing, "the requested number went upstream"
    assert recovered[0] == first_missing
    assert (
        drop.touched == len(lost) and drop.summary() == f"feed.drop dropped {len(lost)} messages in transit"
    )


# -------------------------------------------------------------------------------- with the others


def test_timeline_and_promise_faults_share_the_proxy(feed: Feed) -> None:
    skip = SkipSequence(sequence=4)
    drop = FeedDrop(armed=False)
    with FeedProxy(url_of(feed), faults=[skip, drop]) as proxy, dial(proxy.url) as client:
        got = sequences(client, 5)
        assert proxy.stats.fault_errors == 0
    assert got[:5] == [1, 2, 3, 5, 6] and skip.affected == [4] and drop.touched == 0


def test_stopping_a_stalled_proxy_is_prompt(feed: Feed) -> None:
    stall = FeedStall()
    proxy = FeedProxy(url_of(feed), faults=[stall]).start()
    with dial(proxy.url) as client:
        time.sleep(0.1)
        started = time.monotonic()
        proxy.stop()
        assert time.monotonic() - started < 3 and not proxy.running
        with pytest.raises(ConnectionClosed):
            client.recv(timeout=2)
