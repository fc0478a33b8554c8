"""A minimal consensus layer: builds a block at a set interval over the Engine API.

A post-merge execution client builds no block on its own; something must tell it when and on
what. The :class:`ConsensusDriver` plays that part for a single-node devnet. Per block:
``forkchoiceUpdated(head, payload attributes)`` → ``getPayload`` → ``newPayload`` (must be
``VALID``) → ``forkchoiceUpdated(new head)`` (must be ``VALID``). Timestamps are whole seconds,
``max(parent + 1, now)``, so they strictly increase even when blocks come faster than one a second.

It runs in a daemon thread of the process that owns the devnet. A failed block is recorded as an
incident (the devnet's :meth:`~pytest_gashammer.devnet.base.Devnet.incidents`, which runs report
as ``devnet:`` notes) and retried at the next tick from the head the node reports. Tests halt and
restart block production with :meth:`ConsensusDriver.pause` and :meth:`ConsensusDriver.resume`
and change its pace with :meth:`ConsensusDriver.set_interval` (node faults do both, and pause it
while the node is stopped or restarting, so those faults record no failed build);
:meth:`ConsensusDriver.build_block` builds one block on demand (paused or not), which later Engine
API workloads build on.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from pytest_gashammer.chain.engine import ZERO_HASH, EngineClient, EngineError
from pytest_gashammer.chain.keccak import keccak256
from pytest_gashammer.chain.rpc import RpcError, TransportError, call

logger = logging.getLogger(__name__)

DEFAULT_INTERVAL = 1.0
ZERO_ADDRESS = "0x" + "00" * 20
#: Recent build times kept for :meth:`ConsensusDriver.stats` (older ones only count in the totals).
RECENT_BUILDS = 1024
MAX_INCIDENTS = 200


def next_timestamp(parent_timestamp: int, now: float) -> int:
    """A block's timestamp: whole seconds, after its parent's, and the wall clock's when it can be."""
    return max(parent_timestamp + 1, int(now))


def next_tick(previous_tick: float, interval: float, now: float) -> float:
    """When to build the next block: one interval after the last tick, skipping ticks already past.

    A block that took longer than the interval is not followed by a burst of catch-up blocks,
    which would leave a slow node no time to answer the load.
    """
    tick = previous_tick + interval
    if tick < now:
        tick += ((now - tick) // interval + 1) * interval
    return tick


@dataclasses.dataclass(frozen=True)
class Head:
    number: int
    hash: str
    timestamp: int


@dataclasses.dataclass(frozen=True)
class DriverStats:
    """What the driver did so far. Times are seconds of wall time per block (all four calls)."""

    blocks_built: int
    failures: int
    head: Head | None
    paused: bool
    build_seconds_total: float
    build_seconds_max: float
    recent_build_seconds: tuple[float, ...]


class ConsensusDriver:
    """Builds a block every ``interval`` seconds on the node behind ``engine`` (and ``rpc_url``).

    ``rpc_url`` is read only to find the head to build on (at start and after a failure).
    """

    def __init__(
        self,
        engine: EngineClient,
        rpc_url: str,
        *,
        interval: float = DEFAULT_INTERVAL,
        fee_recipient: str = ZERO_ADDRESS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not interval > 0:
            raise ValueError(f"the block interval must be greater than zero, got {interval!r}")
        self.engine = engine
        self.rpc_url = rpc_url
        self.interval = interval
        self.fee_recipient = fee_recipient
        self._clock = clock
        self.incidents: list[str] = []
        self._head: Head | None = None
        self._blocks_built = 0
        self._failures = 0
        self._failures_in_a_row = 0
        self._last_failure = ""
        self._build_total = 0.0
        self._build_max = 0.0
        self._recent: collections.deque[float] = collections.deque(maxlen=RECENT_BUILDS)
        self._build_lock = threading.Lock()  # one block at a time: the thread, build_block, pause
        self._state_lock = threading.Lock()
        self._running = threading.Event()  # set: the thread builds at each tick; clear: paused
        self._running.set()
        self._stop = threading.Event()
        self._paced = threading.Event()  # set: the interval changed, the wait for the next tick ends
        self._thread: threading.Thread | None = None

    # -- lifecycle ------------------------------------------------------------------------------
    def start(self) -> ConsensusDriver:
        """Read the head from the node and start building in a daemon thread."""
        if self._thread is not None:
            return self
        self._head = self._read_head()
        self._thread = threading.Thread(target=self._loop, name="gashammer-consensus", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> bool:
        """Stop building; True once the thread has ended (a block in progress finishes first)."""
        self._stop.set()
        self._running.set()  # wake a paused loop so it sees the stop
        self._paced.set()
        thread = self._thread
        if thread is None:
            return True
        thread.join(timeout)
        return not thread.is_alive()

    def pause(self, timeout: float = 120.0) -> Head | None:
        """Halt block production; returns the head once no block is being built.

        A block already in progress is finished first (waiting up to ``timeout``). Until
        :meth:`resume`, the thread builds nothing; :meth:`build_block` still works.
        """
        self._running.clear()
        if not self._build_lock.acquire(timeout=timeout):
            raise TimeoutError(f"a block was still being built after {timeout:.0f} s; not paused yet")
        self._build_lock.release()
        return self._head

    def resume(self) -> None:
        """Build again from the next tick on."""
        self._running.set()

    def set_interval(self, seconds: float) -> None:
        """Build a block every ``seconds`` from now on: the next one ``seconds`` after the last tick
        (at once if that is past)."""
        if not seconds > 0:
            raise ValueError(f"the block interval must be greater than zero, got {seconds!r}")
        self.interval = float(seconds)
        self._paced.set()

    def forget_head(self) -> None:
        """Read the head from the node before the next block (the node restarted, or another
        builder moved it)."""
        with self._build_lock:
            self._head = None

    def use_engine(self, engine: EngineClient) -> EngineClient:
        """Build through ``engine`` from the next block on; the client used so far.

        Swapped under the build lock, so a block in progress finishes on the client it began with
        (the fault rig puts an Engine API proxy in front of the node this way, and takes it out).
        """
        with self._build_lock:
            previous, self.engine = self.engine, engine
        return previous

    @property
    def paused(self) -> bool:
        return not self._running.is_set()

    # -- building -------------------------------------------------------------------------------
    def build_block(self) -> Head:
        """Build, import and select one block on the current head; the new head.

        Raises :class:`~pytest_gashammer.chain.engine.EngineError` (a call failed or a status was
        not ``VALID``) or a JSON-RPC error while finding the head.
        """
        with self._build_lock:
            return self._build_locked()

    def _build_locked(self) -> Head:
        try:
            return self._build_on(self._head or self._read_head())
        except BaseException:
            self._head = None  # ask the node where its head is before the next try
            raise

    def _build_on(self, parent: Head) -> Head:
        started = time.monotonic()
        timestamp = next_timestamp(parent.timestamp, self._clock())
        attributes = {
            "timestamp": hex(timestamp),
            # Nothing on a devnet needs it random; derived from the number, it differs per block.
            "prevRandao": "0x" + keccak256((parent.number + 1).to_bytes(32, "big")).hex(),
            "suggestedFeeRecipient": self.fee_recipient,
            "withdrawals": [],
            "parentBeaconBlockRoot": ZERO_HASH,
        }
        choice = self.engine.forkchoice_updated(parent.hash, attributes)
        assert choice.payload_id is not None  # forkchoice_updated checks it with attributes
        payload = self.engine.get_payload(choice.payload_id)["executionPayload"]
        self.engine.new_payload(payload, [], ZERO_HASH)
        self.engine.forkchoice_updated(payload["blockHash"])
        head = Head(int(payload["blockNumber"], 16), payload["blockHash"], int(payload["timestamp"], 16))
        elapsed = time.monotonic() - started
        with self._state_lock:
            self._head = head
            self._blocks_built += 1
            self._build_total += elapsed
            self._build_max = max(self._build_max, elapsed)
            self._recent.append(elapsed)
        return head

    def stats(self) -> DriverStats:
        with self._state_lock:
            return DriverStats(
                blocks_built=self._blocks_built,
                failures=self._failures,
                head=self._head,
                paused=self.paused,
                build_seconds_total=self._build_total,
                build_seconds_max=self._build_max,
                recent_build_seconds=tuple(self._recent),
            )

    @property
    def head(self) -> Head | None:
        return self._head

    def _read_head(self) -> Head:
        block: Any = call(self.rpc_url, "eth_getBlockByNumber", ["latest", False], timeout=30)
        if not isinstance(block, dict):
            raise TransportError(f"eth_getBlockByNumber('latest') answered {str(block)[:80]}")
        return Head(int(block["number"], 16), str(block["hash"]), int(block["timestamp"], 16))

    def _loop(self) -> None:
        tick = time.monotonic()
        while not self._stop.is_set():
            if not self._running.is_set():
                self._running.wait()
                tick = time.monotonic()  # resumed: build right away, then on the interval
                continue
            failed = False
            with self._build_lock:
                # Checked under the lock: pause() returns only once no block can start behind it.
                if self._stop.is_set() or not self._running.is_set():
                    continue
                try:
                    self._build_locked()
                except Exception as exc:
                    if self._stop.is_set():
                        break  # the node is going away with the devnet: not an incident
                    if not isinstance(exc, EngineError | RpcError | TransportError):
                        # A malformed answer (or a bug): a driver thread that died would halt the
                        # chain without a word, so it is an incident like any failure.
                        logger.exception("consensus: unexpected error building a block")
                    self._failed(exc)
                    failed = True
            if not failed:
                self._recovered()
            built_at = tick
            tick = next_tick(built_at, self.interval, time.monotonic())
            while not self._stop.is_set():
                delay = tick - time.monotonic()
                if delay <= 0 or not self._paced.wait(delay):
                    break
                self._paced.clear()  # a new interval counts from the last tick, at once if that is past
                tick = max(built_at + self.interval, time.monotonic())

    def _failed(self, exc: Exception) -> None:
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if not isinstance(exc, EngineError | RpcError | TransportError):
            message = f"{type(exc).__name__}: {message}"
        with self._state_lock:
            self._failures += 1
            self._failures_in_a_row += 1
            repeat = message == self._last_failure
            self._last_failure = message
        logger.warning("consensus: block building failed: %s", message)
        if not repeat:
            self._incident(f"consensus: building a block failed: {message}")

    def _recovered(self) -> None:
        with self._state_lock:
            failures, self._failures_in_a_row, self._last_failure = self._failures_in_a_row, 0, ""
        if failures:
            self._incident(f"consensus: blocks again after {failures} failed attempt(s)")

    def _incident(self, message: str) -> None:
        if len(self.incidents) < MAX_INCIDENTS:
            self.incidents.append(message)

    def __repr__(self) -> str:
        return f"<ConsensusDriver every {self.interval:g} s, {self._blocks_built} blocks, head={self._head}>"
