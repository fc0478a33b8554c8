"""Inclusion tracking by following blocks, never by polling receipts per transaction.

New heads arrive over a WebSocket ``newHeads`` subscription when the node offers one, else by
polling ``eth_blockNumber``. Every new block is fetched once with
``eth_getBlockByNumber(n, false)`` (hashes only) and its transaction hashes are matched against
what the edge has in flight. Per-transaction receipt polling costs about twenty times the client
CPU; a block fetch serves every transaction in the block.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from pytest_gashammer._version import request_headers
from pytest_gashammer.chain.rpc import AsyncRpcClient, RpcError, TransportError
from pytest_gashammer.telemetry.records import BlockRecord, describe_stall

BlockHandler = Callable[[BlockRecord, list[str]], None]


class StallClock:
    """The longest time the chain went without a new block while transactions were outstanding.

    Fed by the follower: :meth:`tick` on every head poll (``advanced`` when the head moved). Time
    with nothing outstanding does not count: a chain that builds blocks only on demand is idle,
    not stuck.
    """

    def __init__(self, head: int) -> None:
        self.head = head
        self.waiting_since_ns: int | None = None
        self.longest_ns = 0
        self.longest_head = head

    def tick(self, now_ns: int, head: int, busy: bool) -> None:
        if self.waiting_since_ns is not None:
            waited = now_ns - self.waiting_since_ns
            if waited > self.longest_ns:
                self.longest_ns, self.longest_head = waited, self.head
        if head > self.head:
            self.head = head
            self.waiting_since_ns = None
        if not busy:
            self.waiting_since_ns = None
        elif self.waiting_since_ns is None:
            self.waiting_since_ns = now_ns

    def facts(self, now_ns: int, bound_s: float) -> dict[str, Any]:
        """Plain data for :attr:`EdgeReport.chain_stall`; ``open_s`` is the stall still on at ``now_ns``."""
        open_ns = now_ns - self.waiting_since_ns if self.waiting_since_ns is not None else 0
        longest_ns, longest_head = self.longest_ns, self.longest_head
        if open_ns >= longest_ns:
            longest_ns, longest_head = open_ns, self.head
        return {
            "longest_s": longest_ns / 1e9,
            "head": longest_head,
            "open_s": open_ns / 1e9,
            "last_head": self.head,
            "bound_s": bound_s,
        }


def stalled_at_end(stall: dict[str, Any], inclusion_timeout: float) -> str | None:
    """The stall to name in the lost-transaction evidence: the chain made no block for the whole
    drain (or longer than ``max_block_gap``) while transactions waited; None when it was moving."""
    if stall["open_s"] >= min(stall["bound_s"], inclusion_timeout):
        return describe_stall(stall["open_s"], stall["last_head"])
    return None


class BlockFollower:
    """Calls ``on_block(record, tx_hashes)`` once per block, in order, from ``start_block`` + 1 on."""

    def __init__(
        self,
        rpc: AsyncRpcClient,
        on_block: BlockHandler,
        *,
        ws_url: str | None,
        start_block: int,
        poll_interval: float = 0.1,
        max_blocks_per_fetch: int = 16,
        busy: Callable[[], bool] | None = None,
    ) -> None:
        """``busy()`` says whether transactions are waiting for a block: only then does a chain
        without a new block count as stalled (default: always)."""
        self._rpc = rpc
        self._on_block = on_block
        self._ws_url = ws_url
        self._last = start_block
        self._poll_interval = poll_interval
        self._max_blocks = max_blocks_per_fetch
        self._wake = asyncio.Event()
        self._fetching = asyncio.Lock()  # catch_up() and the fetch loop must never hand a block over twice
        self._head = start_block
        # "websocket" only once the node has answered the subscription: until then heads are polled
        # at the fast interval, so a slow or refused subscription never delays seeing a block.
        self.mode = "polling"
        self.errors: Counter[str] = Counter()
        self.last_error: str | None = None
        self._busy = busy
        self.stall = StallClock(start_block)
        #: Why heads were polled rather than pushed (no ws_url, subscription refused, socket
        #: failed); None while the subscription works. Said in the run's notes.
        self.polling_reason: str | None = None if ws_url else "no WebSocket URL (ws_url) for the node"

    @property
    def last_block(self) -> int:
        return self._last

    async def run(self, stop: asyncio.Event) -> None:
        tasks = [asyncio.create_task(self._fetch_loop(stop))]
        if self._ws_url:
            tasks.append(asyncio.create_task(self._subscribe_loop(stop)))
        tasks.append(asyncio.create_task(self._poll_loop(stop)))
        try:
            await stop.wait()
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task

    async def catch_up(self) -> None:
        """Fetch up to the node's current head now (used before deciding what is lost)."""
        with contextlib.suppress(RpcError, TransportError):
            self._note_head(int(await self._rpc.call("eth_blockNumber"), 16))
        await self._fetch_pending()

    def _count(self, kind: str, message: str) -> None:
        self.errors[kind] += 1
        self.last_error = message

    def _note_head(self, number: int) -> None:
        if number > self._head:
            self._head = number
            self._wake.set()
            self._tick()

    def _tick(self) -> None:
        self.stall.tick(time.monotonic_ns(), self._head, self._busy is None or self._busy())

    def stall_facts(self, bound_s: float) -> dict[str, Any]:
        """The longest wait for a block while transactions were outstanding, so far (see :class:`StallClock`)."""
        self._tick()
        return self.stall.facts(time.monotonic_ns(), bound_s)

    def degradation_note(self) -> str | None:
        """What the run lost by polling for heads, when it did; None when newHeads worked throughout."""
        if self.polling_reason is None:
            return None
        return (
            f"head tracking polled eth_blockNumber every {self._poll_interval:g} s instead of a newHeads "
            f"subscription: {self.polling_reason}"
        )

    async def _subscribe_loop(self, stop: asyncio.Event) -> None:
        from websockets.asyncio.client import connect

        assert self._ws_url is not None
        while not stop.is_set():
            try:
                async with connect(
                    self._ws_url,
                    max_size=None,
                    open_timeout=5,
                    close_timeout=2,
                    additional_headers=request_headers(),
                ) as socket:
                    # The run ends by cancelling this task; leaving the block on a cancellation
                    # would close with 1011 (internal error), so a normal end closes with 1000 first.
                    try:
                        await self._follow_socket(socket)
                    except asyncio.CancelledError:
                        with contextlib.suppress(Exception):
                            await socket.close()
                        raise
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the polling loop keeps tracking while the socket is down
                self.mode = "polling"
                self._count("ws_disconnect", f"newHeads subscription: {type(exc).__name__}: {exc}")
                if self.polling_reason is None or not self.polling_reason.startswith("eth_subscribe"):
                    self.polling_reason = f"the newHeads socket failed ({type(exc).__name__}: {exc})"
                await asyncio.sleep(0.5)
                continue
            if self.polling_reason is not None and self.polling_reason.startswith("eth_subscribe"):
                return

    async def _follow_socket(self, socket: Any) -> None:
        """Subscribe to newHeads on ``socket`` and note every head until it closes or refuses."""
        await socket.send(
            json.dumps({"jsonrpc": "2.0", "id": 1, "method": "eth_subscribe", "params": ["newHeads"]})
        )
        async for frame in socket:
            message = json.loads(frame)
            if isinstance(message, dict) and message.get("id") == 1:
                if "result" in message:
                    self.mode = "websocket"
                else:
                    # Refused (e.g. -32601): the node will never push heads; polling
                    # goes on, and the socket is closed normally rather than retried.
                    self.polling_reason = f"eth_subscribe refused: {_rpc_error_text(message)}"
                    return
            head = message.get("params", {}).get("result") if isinstance(message, dict) else None
            if isinstance(head, dict) and "number" in head:
                self._note_head(int(head["number"], 16))

    async def _poll_loop(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            # With a live subscription, polling only guards against late or missed notifications.
            interval = self._poll_interval if self.mode == "polling" else 0.25
            try:
                self._note_head(int(await self._rpc.call("eth_blockNumber"), 16))
            except (RpcError, TransportError, ValueError, TypeError) as exc:
                self._count("head_poll", f"eth_blockNumber: {exc}")
            self._tick()
            await asyncio.sleep(interval)

    async def _fetch_loop(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await self._wake.wait()
            self._wake.clear()
            await self._fetch_pending()

    async def _fetch_pending(self) -> None:
        async with self._fetching:
            await self._fetch_pending_locked()

    async def _fetch_pending_locked(self) -> None:
        while self._last < self._head:
            first = self._last + 1
            last = min(self._head, self._last + self._max_blocks)
            observed = time.monotonic_ns()
            try:
                blocks = await self._rpc.batch(
                    [("eth_getBlockByNumber", [hex(number), False]) for number in range(first, last + 1)]
                )
            except TransportError as exc:
                self._count("block_fetch", str(exc))
                await asyncio.sleep(0.1)
                return
            for number, block in zip(range(first, last + 1), blocks, strict=True):
                if not isinstance(block, dict):
                    # Not served yet (a node can announce a head before serving it) or an error:
                    # stop here and retry from this block on the next wake.
                    if isinstance(block, Exception):
                        self._count("block_fetch", str(block))
                    self._wake.set()
                    await asyncio.sleep(0.02)
                    return
                try:
                    record = parse_block(block, observed)
                except (KeyError, TypeError, ValueError) as exc:
                    # A malformed block is counted and skipped; tracking must go on.
                    self._count("block_malformed", f"block {number}: {type(exc).__name__}: {exc}")
                    self._last = number
                    continue
                if record.number != number:
                    self._count("block_mismatch", f"asked for block {number}, got {record.number}")
                self._last = number
                self._on_block(record, list(block.get("transactions") or []))


def _rpc_error_text(message: dict[str, Any]) -> str:
    error = message.get("error")
    if isinstance(error, dict):
        return f"JSON-RPC error {error.get('code')}: {error.get('message')}"
    return json.dumps(message)[:200]


def parse_block(block: dict[str, Any], observed_ns: int) -> BlockRecord:
    base_fee = block.get("baseFeePerGas")
    return BlockRecord(
        number=int(block["number"], 16),
        hash=str(block["hash"]),
        parent_hash=str(block["parentHash"]),
        timestamp=int(block["timestamp"], 16),
        gas_used=int(block["gasUsed"], 16),
        gas_limit=int(block["gasLimit"], 16),
        tx_count=len(block.get("transactions") or []),
        observed_ns=observed_ns,
        base_fee=int(base_fee, 16) if base_fee else None,
    )
