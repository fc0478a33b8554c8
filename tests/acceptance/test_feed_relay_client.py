"""The feed relay and client against a real anvil: wire format, handshake, resume, faults.

One devnet and one relay serve most tests (module scope); tests that need a relay with other settings
(a fault hook, a small catch-up size, a restart) start their own on the same chain. Every wait is
bounded, everything listens on loopback only, and every relay is stopped on every exit path.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from eth_account import Account

from pytest_gashammer.chain.keccak import keccak256
from pytest_gashammer.chain.rpc import call
from pytest_gashammer.chain.tx import raw_transaction_from_json
from pytest_gashammer.devnet.embedded import EmbeddedDevnet
from pytest_gashammer.fault.faults import RpcCall, RpcFault
from pytest_gashammer.fault.rpc_proxy import RpcProxy
from pytest_gashammer.feed import (
    BroadcastMessage,
    Correlator,
    FeedChainMismatch,
    FeedClient,
    FeedMessage,
    FeedRelay,
    decode_broadcast,
    encode_broadcast,
)
from tests.acceptance.conftest import alive, child_pids, process_name

RECIPIENT = "0x1111222233334444555566667777888899990000"
FAST = {"initial_backoff": 0.05, "max_backoff": 0.2}


@pytest.fixture(scope="module")
def chain() -> Iterator[EmbeddedDevnet]:
    with EmbeddedDevnet(feed=False).start() as devnet:
        pid = devnet.pid
        yield devnet
    assert pid is None or not alive(pid), f"the devnet's anvil (pid {pid}) outlived its fixture"


def own_anvils() -> set[int]:
    return {pid for pid in child_pids(os.getpid()) if process_name(pid) == "anvil" and alive(pid)}


def relay_threads() -> int:
    return sum(1 for t in threading.enumerate() if t.name == "gashammer-feed-relay" and t.is_alive())


@pytest.fixture(autouse=True)
def nothing_left_behind(chain: EmbeddedDevnet) -> Iterator[None]:
    """No anvil child and no relay thread outlives a test.

    The suite's ``no_new_anvil`` looks at every anvil on the machine and kills the ones it did not see
    before; another session running its own tests at the same time would lose its nodes. This check
    looks only at this process's children and kills nothing.
    """
    anvils, threads = own_anvils(), relay_threads()
    yield
    deadline = time.monotonic() + 5
    while (own_anvils() - anvils or relay_threads() > threads) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not own_anvils() - anvils, "a test left an anvil process running"
    assert relay_threads() <= threads, "a test left a feed relay thread running"


@pytest.fixture(scope="module")
def relay(chain: EmbeddedDevnet) -> Iterator[FeedRelay]:
    with FeedRelay(chain.rpc_url, chain.chain_id, start_block=0) as feed:
        assert feed.wait_for_sequence(2, timeout=10)
        yield feed
    assert not feed.running
    assert not any(t.name == "gashammer-feed-relay" and t.is_alive() for t in threading.enumerate())


# ------------------------------------------------------------------------------------------- helpers


def sign_transfers(chain: EmbeddedDevnet, count: int, **extra: Any) -> list[Any]:
    account = Account.from_key(chain.funder.key)
    nonce = int(call(chain.rpc_url, "eth_getTransactionCount", [account.address, "pending"]), 16)
    signed = []
    for offset in range(count):
        tx = {
            "chainId": chain.chain_id,
            "nonce": nonce + offset,
            "gas": 21_000,
            "to": RECIPIENT,
            "value": offset + 1,
            "maxFeePerGas": 10 * 10**9,
            "maxPriorityFeePerGas": 10**9,
            "type": 2,
            **extra,
        }
        signed.append(account.sign_transaction(tx))
    return signed


def submit(chain: EmbeddedDevnet, signed: list[Any]) -> list[str]:
    return [call(chain.rpc_url, "eth_sendRawTransaction", ["0x" + tx.raw_transaction.hex()]) for tx in signed]


def block(chain: EmbeddedDevnet, number: int) -> dict[str, Any]:
    answer = call(chain.rpc_url, "eth_getBlockByNumber", [hex(number), False])
    assert isinstance(answer, dict), f"block {number} not served"
    return answer


def run_client(client: FeedClient, until: Callable[[], bool], timeout: float, during: Any = None) -> None:
    """Run ``client`` until ``until()`` or ``timeout``; ``during(client)`` is an optional coroutine run alongside."""

    async def main() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(client.run(stop))
        side = asyncio.create_task(during(client)) if during else None
        try:
            deadline = time.monotonic() + timeout
            while not until() and not task.done() and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
        finally:
            stop.set()
            if side is not None:
                side.cancel()
                await asyncio.gather(side, return_exceptions=True)
            await asyncio.wait_for(task, timeout=10)

    asyncio.run(main())


async def raw_frames(url: str, count: int, headers: dict[str, str], timeout: float = 10) -> list[str]:
    from websockets.asyncio.client import connect

    async with connect(url, additional_headers=headers, proxy=None, compression=None, max_size=None) as ws:
        return [str(await asyncio.wait_for(ws.recv(), timeout)) for _ in range(count)]


def sequences(frames: list[str]) -> list[list[int]]:
    return [[m.sequence_number for m in decode_broadcast(frame).messages] for frame in frames]


# ------------------------------------------------------------------------------------ wire and chain


def test_feed_messages_carry_the_chains_blocks(chain: EmbeddedDevnet, relay: FeedRelay) -> None:
    correlator = Correlator()
    received: list[FeedMessage] = []

    def on_message(message: FeedMessage, arrival_ns: int) -> None:
        received.append(message)
        correlator.on_message(message, arrival_ns)

    single = sign_transfers(chain, 1)
    client = FeedClient(relay.url, expected_chain_id=chain.chain_id, on_message=on_message, **FAST)
    for row, tx in enumerate(single):
        correlator.register(bytes(tx.hash), row, time.monotonic_ns())
    sent = submit(chain, single)
    time.sleep(0.3)  # the next transfers land in a later block
    batch = sign_transfers(chain, 3)
    for row, tx in enumerate(batch, start=1):
        correlator.register(bytes(tx.hash), row, time.monotonic_ns())
    relay.prime(bytes(batch[0].hash), bytes(batch[0].raw_transaction))  # one from the submitter, two fetched
    sent += submit(chain, batch)
    run_client(client, lambda: correlator.matched == 4, timeout=10)

    assert correlator.matched == 4, client.stats
    first = received[0].sequence_number
    assert [m.sequence_number for m in received] == list(range(first, first + len(received)))
    for message in received:
        on_chain = block(chain, message.sequence_number)
        assert list(message.tx_hashes) == on_chain["transactions"]
        assert message.block_hash == on_chain["hash"]
        assert message.timestamp == int(on_chain["timestamp"], 16)
        assert message.kind == 3 and message.l2_msg[0] == (4 if len(message.transactions) == 1 else 3)
    carried = {h for m in received for h in m.tx_hashes}
    assert set(sent) <= carried
    stats = relay.stats
    assert stats.raw_primed >= 1 and stats.raw_fetched >= 3 and not stats.errors

    blocks = [
        (n, block(chain, n)["hash"], block(chain, n)["transactions"])
        for n in range(received[0].sequence_number, received[-1].sequence_number + 1)
    ]
    findings = correlator.check_against_chain(blocks)
    assert findings.ok, findings.problems()
    assert findings.included == 4 and findings.messages_checked == len(received)
    assert all(latency >= 0 for latency in correlator.feed_latencies())
    # The relay keeps the bytes of the blocks it relayed whole, for the batch poster: the chain's own.
    for _, block_hash, hashes in blocks:
        kept = relay.raw_block(block_hash)
        assert kept is not None and ["0x" + keccak256(raw).hex() for raw in kept] == hashes
    assert relay.raw_block("0x" + "ab" * 32) is None


def test_re_encoded_transactions_hash_to_their_hashes(chain: EmbeddedDevnet) -> None:
    """The relay's fast path rebuilds raw bytes from JSON; every envelope anvil accepts must round-trip."""
    funder = Account.from_key(chain.funder.key)
    delegator, authority = Account.from_key("0x" + "11" * 32), Account.from_key("0x" + "22" * 32)
    call(chain.rpc_url, "anvil_setBalance", [delegator.address, hex(10**18)])
    nonce = int(call(chain.rpc_url, "eth_getTransactionCount", [funder.address, "pending"]), 16)
    gas_price = {"gasPrice": 10 * 10**9}
    fees = {"maxFeePerGas": 10 * 10**9, "maxPriorityFeePerGas": 10**9}
    access = [{"address": RECIPIENT, "storageKeys": ["0x" + "00" * 31 + "01"]}]
    common = {"chainId": chain.chain_id, "value": 5}
    unsigned = [
        {**common, **gas_price, "gas": 21_000, "to": RECIPIENT},  # legacy (EIP-155)
        {**common, **gas_price, "gas": 30_000, "to": RECIPIENT, "accessList": access, "type": 1},
        {**common, **fees, "gas": 60_000, "to": RECIPIENT, "data": "0x" + "ab" * 40, "accessList": access},
        {**common, **fees, "gas": 100_000, "data": "0x600060005360016000f3"},  # contract creation
    ]
    signed = [funder.sign_transaction({**tx, "nonce": nonce + i}) for i, tx in enumerate(unsigned)]
    authorization = authority.sign_authorization(
        {"chainId": chain.chain_id, "address": RECIPIENT, "nonce": 0}
    )
    signed.append(
        delegator.sign_transaction(
            {
                **common,
                **fees,
                "gas": 100_000,
                "to": RECIPIENT,
                "nonce": 0,
                "authorizationList": [authorization],
            }
        )
    )
    hashes = submit(chain, signed)
    deadline = time.monotonic() + 10
    for tx, tx_hash in zip(signed, hashes, strict=True):
        found = None
        while time.monotonic() < deadline:
            found = call(chain.rpc_url, "eth_getTransactionByHash", [tx_hash])
            if found and found.get("blockHash"):
                break
            time.sleep(0.05)
        assert found is not None and found.get("blockHash"), f"anvil did not include {tx_hash}"
        assert raw_transaction_from_json(found) == bytes(tx.raw_transaction), found.get("type")


# ---------------------------------------------------------------------------------------- handshake


def test_handshake_headers_liveness_and_version_check(chain: EmbeddedDevnet, relay: FeedRelay) -> None:
    from websockets.asyncio.client import connect
    from websockets.exceptions import InvalidStatus

    async def handshake(headers: dict[str, str]) -> Any:
        async with connect(relay.url, additional_headers=headers, proxy=None, compression=None) as ws:
            return ws.response.headers

    headers = asyncio.run(handshake({"Arbitrum-Feed-Client-Version": "2"}))
    assert headers["Arbitrum-Feed-Server-Version"] == "2"
    assert headers["Arbitrum-Chain-Id"] == str(chain.chain_id)

    for bad in ({"Arbitrum-Feed-Client-Version": "1"}, {"Arbitrum-Requested-Sequence-Number": "twelve"}):
        with pytest.raises(InvalidStatus) as raised:
            asyncio.run(handshake(bad))
        assert raised.value.response.status_code == 400

    for path in ("/livenessprobe", "/feed/livenessprobe?x=1"):
        with urllib.request.urlopen(f"http://127.0.0.1:{relay.port}{path}", timeout=5) as answer:
            assert answer.status == 200
    with pytest.raises(urllib.error.HTTPError) as raised_http:
        urllib.request.urlopen(f"http://127.0.0.1:{relay.port}/", timeout=5)
    assert raised_http.value.code != 200  # a plain GET elsewhere is not a health check


def test_chain_id_mismatch_is_fatal_with_a_clear_message(relay: FeedRelay) -> None:
    client = FeedClient(relay.url, expected_chain_id=1, **FAST)
    before = relay.stats.connections
    with pytest.raises(FeedChainMismatch) as raised:
        run_client(client, lambda: False, timeout=5)
    message = str(raised.value)
    assert "412346" in message and " 1;" in message and "\n" not in message
    assert relay.stats.connections - before <= 1  # no retry
    assert client.stats.connects == 0 and client.events[-1].kind == "fatal"


# ------------------------------------------------------------------------------------- resume rules


def test_requested_sequence_replays_exactly_the_missing_messages(relay: FeedRelay) -> None:
    assert relay.wait_for_sequence(8, timeout=10)
    head = relay.head_sequence
    assert head is not None
    first = head - 4
    for header in (str(first), hex(first)):
        frames = asyncio.run(
            raw_frames(
                relay.url,
                3,
                {"Arbitrum-Feed-Client-Version": "2", "Arbitrum-Requested-Sequence-Number": header},
            )
        )
        got = [seq for frame in sequences(frames) for seq in frame]
        assert got == list(range(first, first + len(got))), got
        assert len(got) >= 5
        assert len(sequences(frames)[0]) >= 5  # the replay is one catch-up frame

    oldest = relay.oldest_sequence
    for header in ("0", str(head + 1000)):
        frames = asyncio.run(raw_frames(relay.url, 1, {"Arbitrum-Requested-Sequence-Number": header}))
        assert sequences(frames)[0][0] == oldest  # the whole backlog


def test_catch_up_frames_are_capped(chain: EmbeddedDevnet, relay: FeedRelay) -> None:
    assert relay.catchup_messages == 240
    with FeedRelay(chain.rpc_url, chain.chain_id, start_block=0, catchup_messages=4) as small:
        assert small.wait_for_sequence(12, timeout=10)
        frames = asyncio.run(raw_frames(small.url, 3, {"Arbitrum-Requested-Sequence-Number": "0"}))
    assert sequences(frames)[:3] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11]]


@pytest.mark.parametrize("abrupt", [False, True], ids=["close-frame", "tcp-drop"])
def test_client_reconnects_and_resumes_without_gap_or_duplicate(relay: FeedRelay, abrupt: bool) -> None:
    client = FeedClient(relay.url, expected_chain_id=relay.chain_id, **FAST)
    state: dict[str, int] = {}

    async def cut(client: FeedClient) -> None:
        while client.stats.messages < 3:
            await asyncio.sleep(0.02)
        state["cut_at"] = client.last_sequence or 0
        await asyncio.to_thread(relay.disconnect_clients, abrupt=abrupt)

    run_client(
        client,
        lambda: "cut_at" in state and (client.last_sequence or 0) >= state["cut_at"] + 4,
        timeout=15,
        during=cut,
    )
    stats = client.stats
    assert stats.reconnects == 1, client.events
    assert stats.gaps == [] and stats.duplicates == [] and stats.decode_errors == {}
    kinds = [event.kind for event in client.events]
    assert kinds[:1] == ["connect"] and "disconnect" in kinds and "reconnect" in kinds
    reconnect = next(event for event in client.events if event.kind == "reconnect")
    disconnect = next(event for event in client.events if event.kind == "disconnect")
    assert reconnect.sequence == (disconnect.sequence or 0) + 1  # resumed from last + 1
    assert reconnect.ns - disconnect.ns < 1e9  # the first reconnect is immediate
    assert stats.last_sequence is not None and stats.first_sequence is not None
    assert stats.messages == stats.last_sequence - stats.first_sequence + 1


def test_client_resumes_across_a_relay_restart_on_the_same_port(chain: EmbeddedDevnet) -> None:
    first = FeedRelay(chain.rpc_url, chain.chain_id).start()
    port = first.port
    second: FeedRelay | None = None
    client = FeedClient(first.url, expected_chain_id=chain.chain_id, **FAST)
    try:

        async def restart(client: FeedClient) -> None:
            nonlocal second
            while client.stats.messages < 2:
                await asyncio.sleep(0.02)
            await asyncio.to_thread(first.stop)
            await asyncio.sleep(0.3)  # the client retries with backoff meanwhile
            resume = client.next_sequence
            second = FeedRelay(chain.rpc_url, chain.chain_id, port=port, start_block=resume)
            await asyncio.to_thread(second.start)

        run_client(
            client,
            lambda: second is not None and client.stats.reconnects >= 1 and client.stats.messages >= 6,
            timeout=15,
            during=restart,
        )
    finally:
        first.stop()
        if second is not None:
            second.stop()
    stats = client.stats
    assert stats.reconnects == 1 and stats.gaps == [] and stats.duplicates == [], client.events
    assert stats.connect_failures >= 1  # the port was closed for a while


# -------------------------------------------------------------------------------------------- faults


def test_a_dropped_message_is_reported_as_a_gap_naming_it(chain: EmbeddedDevnet) -> None:
    head = int(call(chain.rpc_url, "eth_blockNumber"), 16)
    dropped = head + 3

    def drop(frame: BroadcastMessage) -> BroadcastMessage:
        kept = tuple(m for m in frame.messages if m.sequence_number != dropped)
        return frame if len(kept) == len(frame.messages) else BroadcastMessage(1, kept, None)

    with FeedRelay(chain.rpc_url, chain.chain_id, start_block=head, transform=drop) as relay:
        client = FeedClient(relay.url, expected_chain_id=chain.chain_id, **FAST)
        run_client(client, lambda: (client.last_sequence or 0) >= dropped + 2, timeout=10)
    stats = client.stats
    assert stats.gaps == [(dropped, dropped + 1)] and stats.missing_messages == 1
    gap = next(event for event in client.events if event.kind == "gap")
    assert gap.sequence == dropped and f"{dropped} missing" in gap.detail


def test_a_message_lost_once_in_transit_is_asked_for_again_and_recovered(chain: EmbeddedDevnet) -> None:
    """The relay's write of one message is lost the first time: the client notices the gap, reconnects
    asking for that number, gets it from the relay's backlog, and skips what it already had."""
    head = int(call(chain.rpc_url, "eth_blockNumber"), 16)
    lost = head + 3
    served: list[int] = []

    def lose_once(frame: BroadcastMessage) -> BroadcastMessage:
        kept = tuple(m for m in frame.messages if m.sequence_number != lost or lost in served)
        served.extend(m.sequence_number for m in frame.messages)
        return frame if len(kept) == len(frame.messages) else BroadcastMessage(1, kept, None)

    delivered: list[int] = []
    with FeedRelay(chain.rpc_url, chain.chain_id, start_block=head, transform=lose_once) as relay:
        client = FeedClient(
            relay.url,
            expected_chain_id=chain.chain_id,
            on_message=lambda message, _ns: delivered.append(message.sequence_number),
            **FAST,
        )
        run_client(
            client,
            lambda: client.stats.recovered_messages >= 1 and (client.last_sequence or 0) >= lost + 4,
            timeout=15,
        )
    stats = client.stats
    assert stats.gaps == [(lost, lost + 1)] and stats.recovered_gaps == [(lost, lost + 1)]
    assert stats.recovered_messages == 1 and stats.recoveries == 1 and stats.replayed >= 1
    assert stats.duplicates == [] and stats.late == []
    assert sorted(delivered) == list(range(head, head + len(delivered)))  # each exactly once
    assert delivered.index(lost) > delivered.index(lost + 1)  # it came back after its successor
    kinds = [event.kind for event in client.events]
    assert kinds.index("gap") < kinds.index("reconnect") < kinds.index("gap_recovered")
    reconnect = next(event for event in client.events if event.kind == "reconnect")
    assert reconnect.sequence == lost  # asked for the first missing number, not last + 1


def test_a_repeated_message_is_a_duplicate_and_is_not_delivered_twice(chain: EmbeddedDevnet) -> None:
    head = int(call(chain.rpc_url, "eth_blockNumber"), 16)
    repeated = head + 2
    sent: dict[int, FeedMessage] = {}

    def repeat(frame: BroadcastMessage) -> BroadcastMessage:
        for item in frame.messages:
            sent.setdefault(item.sequence_number, item)
        if any(m.sequence_number == repeated + 1 for m in frame.messages):
            return BroadcastMessage(1, (sent[repeated], *frame.messages), None)
        return frame

    delivered: list[int] = []
    with FeedRelay(chain.rpc_url, chain.chain_id, start_block=head, transform=repeat) as relay:
        client = FeedClient(
            relay.url,
            expected_chain_id=chain.chain_id,
            on_message=lambda message, _ns: delivered.append(message.sequence_number),
            **FAST,
        )
        run_client(client, lambda: (client.last_sequence or 0) >= repeated + 2, timeout=10)
    assert client.stats.duplicates == [repeated] and client.stats.gaps == []
    assert delivered == list(range(head, head + len(delivered)))
    duplicate = next(event for event in client.events if event.kind == "duplicate")
    assert duplicate.sequence == repeated


def test_malformed_frames_are_counted_not_fatal(chain: EmbeddedDevnet) -> None:
    head = int(call(chain.rpc_url, "eth_blockNumber"), 16)

    def corrupt(frame: BroadcastMessage) -> BroadcastMessage | str:
        carried = {m.sequence_number for m in frame.messages}
        if head + 2 in carried:
            return '{"version":1,"messages":[\n'  # not JSON
        if head + 4 in carried:  # valid JSON, bad base64 in l2Msg
            return encode_broadcast(frame.messages).replace('"l2Msg":"', '"l2Msg":"!!')
        return frame

    with FeedRelay(chain.rpc_url, chain.chain_id, start_block=head, transform=corrupt) as relay:
        # Without gap recovery: asked for again, the corrupted frames would be corrupted again.
        client = FeedClient(relay.url, expected_chain_id=chain.chain_id, recover_gaps=False, **FAST)
        run_client(client, lambda: (client.last_sequence or 0) >= head + 6, timeout=10)
    stats = client.stats
    assert stats.decode_errors == {"bad_json": 1, "bad_base64": 1}
    assert stats.gaps == [(head + 2, head + 3), (head + 4, head + 5)]
    assert stats.reconnects == 0 and stats.last_sequence is not None and stats.last_sequence >= head + 6


def test_stop_is_bounded_idempotent_and_closes_clients(chain: EmbeddedDevnet) -> None:
    relay = FeedRelay(chain.rpc_url, chain.chain_id).start()
    client = FeedClient(relay.url, expected_chain_id=chain.chain_id, initial_backoff=5.0, max_backoff=5.0)
    stopped: dict[str, float] = {}
    try:

        async def stop_relay(client: FeedClient) -> None:
            while not client.connected:
                await asyncio.sleep(0.02)
            began = time.monotonic()
            await asyncio.to_thread(relay.stop)
            await asyncio.to_thread(relay.stop)
            stopped["seconds"] = time.monotonic() - began

        run_client(
            client, lambda: "seconds" in stopped and not client.connected, timeout=10, during=stop_relay
        )
    finally:
        relay.stop()
    assert stopped["seconds"] < 5
    assert any(event.kind == "disconnect" for event in client.events)
    assert not relay.running


# ------------------------------------------------------------------- raw bytes the node holds back


class NoRawBytesFor(RpcFault):
    """The node answers ``null`` to ``eth_getRawTransactionByHash`` for ``tx_hash`` (set once the
    transfer is signed), ``times`` times: an overloaded node's empty answer."""

    def __init__(self, times: int) -> None:
        super().__init__()
        self.tx_hash, self.left = "", times

    def on_request(self, call: RpcCall) -> None:
        if (
            call.method == "eth_getRawTransactionByHash"
            and self.left > 0
            and str((call.params or [None])[0]).lower() == self.tx_hash
        ):
            self.left -= 1
            call.reply(None, by="test")


def relayed_through(
    chain: EmbeddedDevnet, fault: NoRawBytesFor, **settings: Any
) -> tuple[FeedRelay, list[FeedMessage]]:
    """Relay from the head on through a proxy with ``fault``; submit the fault's transfer, then one more,
    and collect the messages until the second transfer's block came."""
    head = int(call(chain.rpc_url, "eth_blockNumber"), 16)
    held, after = sign_transfers(chain, 2)
    fault.tx_hash = "0x" + bytes(held.hash).hex()
    received: list[FeedMessage] = []
    with RpcProxy(chain.rpc_url, faults=[fault]) as proxy:
        relay = FeedRelay(proxy.url, chain.chain_id, start_block=head + 1)
        for name, value in settings.items():
            setattr(relay, name, value)
        with relay:
            client = FeedClient(
                relay.url,
                expected_chain_id=chain.chain_id,
                on_message=lambda m, _: received.append(m),
                **FAST,
            )
            submit(chain, [held])
            time.sleep(0.2)  # the second transfer in a later block
            submit(chain, [after])
            wanted = "0x" + bytes(after.hash).hex()
            run_client(client, lambda: any(wanted in m.tx_hashes for m in received), timeout=20)
    return relay, received


def test_a_transaction_the_node_holds_back_is_asked_for_again_never_left_out(chain: EmbeddedDevnet) -> None:
    fault = NoRawBytesFor(times=3)
    relay, received = relayed_through(chain, fault)
    carried = [h for m in received for h in m.tx_hashes]
    assert fault.left == 0 and carried.count(fault.tx_hash) == 1, (fault.left, carried)
    stats = relay.stats
    assert stats.raw_retries >= 3 and stats.skipped_transactions == 0 and relay.incidents() == []


def test_a_transaction_the_node_never_gives_is_left_out_and_said(chain: EmbeddedDevnet) -> None:
    fault = NoRawBytesFor(times=1_000_000)
    relay, received = relayed_through(chain, fault, raw_retry_seconds=0.5)
    carried = [h for m in received for h in m.tx_hashes]
    assert fault.tx_hash not in carried and len(carried) == 1, carried
    assert relay.stats.skipped_transactions == 1
    # A block relayed without one of its transactions is not handed to other readers as whole.
    receipt = call(chain.rpc_url, "eth_getTransactionReceipt", [fault.tx_hash])
    assert relay.raw_block(receipt["blockHash"]) is None
    (incident,) = relay.incidents()
    assert "left 1 transaction(s) of block" in incident and fault.tx_hash in incident, incident
