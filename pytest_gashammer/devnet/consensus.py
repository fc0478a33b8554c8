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

It speaks the Engine API version of its client (1-4: :mod:`pytest_gashammer.chain.engine`), and
:meth:`ConsensusDriver.configure` changes the version, the pace, the fee recipient and how many
synthetic withdrawals each block carries for one run (:meth:`ConsensusDriver.restore` puts the
previous settings back).

It measures itself: every Engine API call becomes an :class:`~pytest_gashammer.chain.engine.EngineCall`
(through the client's observer) and every block a :class:`~pytest_gashammer.chain.engine.BlockBuild`,
with the client's times and the CPU time the driver's own thread spent on it, so a slow block can be
told apart as the client's or the driver's. Both are kept in bounded memory
(:data:`MAX_CALLS`, :data:`MAX_BUILDS`; :meth:`ConsensusDriver.dropped` counts what fell out) and read
by time window (:meth:`ConsensusDriver.calls_between`, :meth:`ConsensusDriver.builds_between`).
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from pytest_gashammer.chain.engine import (
    ENGINE_VERSIONS,
    FORK_OF_VERSION,
    ZERO_HASH,
    BlockBuild,
    EngineCall,
    EngineClient,
    EngineError,
    check_version,
    fork_version,
    payload_attributes,
    served_versions,
)
from pytest_gashammer.chain.keccak import keccak256
from pytest_gashammer.chain.rpc import RpcError, TransportError, call
from pytest_gashammer.errors import ConfigError, DevnetError

logger = logging.getLogger(__name__)

DEFAULT_INTERVAL = 1.0
ZERO_ADDRESS = "0x" + "00" * 20
#: Recent build times kept for :meth:`ConsensusDriver.stats` (older ones only count in the totals).
RECENT_BUILDS = 1024
MAX_INCIDENTS = 200
#: Engine API calls and block builds kept for :meth:`ConsensusDriver.calls_between` and
#: :meth:`ConsensusDriver.builds_between`: at the client's best pace (about 14 blocks a second, four
#: calls each) about half an hour of calls, and hours of builds at one a second; a few hundred bytes each.
MAX_CALLS = 100_000
MAX_BUILDS = 20_000
#: Each synthetic withdrawal credits this many gwei (0.001 ether) to its validator's address.
WITHDRAWAL_GWEI = 1_000_000
#: Synthetic withdrawals cycle through this many validators (and so this many addresses).
WITHDRAWAL_VALIDATORS = 64


def withdrawal_address(validator_index: int) -> str:
    """The address a synthetic validator withdraws to: fixed per validator, owned by no key anyone
    holds, so its balance counts withdrawals only."""
    digest = keccak256(b"gashammer-withdrawal:" + validator_index.to_bytes(8, "big"))
    return "0x" + digest[12:].hex()


def synthetic_withdrawals(first_index: int, count: int) -> list[dict[str, str]]:
    """``count`` withdrawals (``WithdrawalV1``) numbered from ``first_index``, validators in turn."""
    withdrawals = []
    for index in range(first_index, first_index + count):
        validator = index % WITHDRAWAL_VALIDATORS
        withdrawals.append(
            {
                "index": hex(index),
                "validatorIndex": hex(validator),
                "address": withdrawal_address(validator),
                "amount": hex(WITHDRAWAL_GWEI),
            }
        )
    return withdrawals


@dataclasses.dataclass(frozen=True)
class DriverSettings:
    """What :meth:`ConsensusDriver.configure` sets for a run; what it returns is the previous ones."""

    interval: float
    version: int
    withdrawals_per_block: int
    fee_recipient: str


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

    ``rpc_url`` is read to find the head to build on (at start and after a failure) and, after each
    block, the head the node names (:attr:`BlockBuild.head_after`). The driver observes ``engine``'s
    calls (an observer the client already has is called too).
    """

    def __init__(
        self,
        engine: EngineClient,
        rpc_url: str,
        *,
        interval: float = DEFAULT_INTERVAL,
        fee_recipient: str = ZERO_ADDRESS,
        withdrawals_per_block: int = 0,
        clock: Callable[[], float] = time.time,
        max_calls: int = MAX_CALLS,
        max_builds: int = MAX_BUILDS,
    ) -> None:
        if not interval > 0:
            raise ValueError(f"the block interval must be greater than zero, got {interval!r}")
        self.rpc_url = rpc_url
        self.interval = interval
        self.fee_recipient = _check_address(fee_recipient)
        self.withdrawals_per_block = _check_withdrawals(withdrawals_per_block, engine.version)
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
        # The records: every call, every block, bounded; what fell out is counted.
        self._records_lock = threading.Lock()
        self._calls: collections.deque[EngineCall] = collections.deque(maxlen=max_calls)
        self._builds: collections.deque[BlockBuild] = collections.deque(maxlen=max_builds)
        self._calls_dropped = 0
        self._builds_dropped = 0
        self._block_calls = threading.local()  # the calls of the block this thread is building
        self._served: tuple[int, ...] | None = None  # Engine API versions the node serves, once asked
        #: The next withdrawal's index: it increases over the chain's life (read back from the head).
        self._withdrawal_index = 0
        self.engine = engine
        self._attach(engine)
        #: Called with each block's payload and execution requests once the node has made it its
        #: head, in the driver's thread with the build lock held (a network replays the block into
        #: its other nodes here); what it raises is logged, and the block stands.
        self.on_block: Callable[[dict[str, Any], list[str]], None] | None = None

    # -- records --------------------------------------------------------------------------------
    def _attach(self, engine: EngineClient) -> None:
        """Make ``engine``'s observer record into this driver (keeping an observer it had)."""
        current = engine.observer
        if current is None:
            engine.observer = self._observe
        elif current == self._observe or getattr(current, "driver", None) is self:
            return
        else:
            engine.observer = _Both(current, self._observe, driver=self)

    def _observe(self, record: EngineCall) -> None:
        with self._records_lock:
            if len(self._calls) == self._calls.maxlen:
                self._calls_dropped += 1
            self._calls.append(record)
        block_calls = getattr(self._block_calls, "calls", None)
        if block_calls is not None:
            block_calls.append(record)

    def _add_build(self, build: BlockBuild) -> None:
        with self._records_lock:
            if len(self._builds) == self._builds.maxlen:
                self._builds_dropped += 1
            self._builds.append(build)

    def calls_between(self, start_unix: float, end_unix: float) -> list[EngineCall]:
        """The Engine API calls that started in ``[start_unix, end_unix]``, oldest first."""
        with self._records_lock:
            return [rec for rec in self._calls if start_unix <= rec.started_at <= end_unix]

    def builds_between(self, start_unix: float, end_unix: float) -> list[BlockBuild]:
        """The blocks whose building started in ``[start_unix, end_unix]``, oldest first."""
        with self._records_lock:
            return [build for build in self._builds if start_unix <= build.started_at <= end_unix]

    def dropped(self) -> tuple[int, int]:
        """How many call records and block builds fell out of the bounded memory so far."""
        with self._records_lock:
            return self._calls_dropped, self._builds_dropped

    # -- settings -------------------------------------------------------------------------------
    def settings(self) -> DriverSettings:
        return DriverSettings(
            interval=self.interval,
            version=self.engine.version,
            withdrawals_per_block=self.withdrawals_per_block,
            fee_recipient=self.fee_recipient,
        )

    def served_versions(self) -> tuple[int, ...]:
        """The Engine API versions the node serves (``engine_exchangeCapabilities``, asked once)."""
        if self._served is None:
            try:
                capabilities = self.engine.exchange_capabilities(
                    [f"engine_{name}V{number}" for number in ENGINE_VERSIONS for name in _METHODS]
                )
            except EngineError as exc:
                raise DevnetError(f"the node's Engine API versions could not be read: {exc}") from None
            self._served = tuple(served_versions(capabilities))
        return self._served

    def configure(
        self,
        *,
        interval: float | None = None,
        version: int | None = None,
        withdrawals_per_block: int | None = None,
        fee_recipient: str | None = None,
    ) -> DriverSettings:
        """Set what is given (None keeps it) from the next block on; returns the previous settings.

        Every value is checked before any is applied: a bad one is a one-line
        :class:`~pytest_gashammer.errors.ConfigError`; a version the node does not serve, or one
        that cannot build on the chain's fork, a :class:`~pytest_gashammer.errors.DevnetError`. A
        block in progress is finished first.
        """
        previous = self.settings()
        if interval is not None and (
            not isinstance(interval, int | float) or not 0 < interval < float("inf")
        ):
            raise ConfigError(f"the block interval must be a positive number of seconds, got {interval!r}")
        new_version = previous.version
        if version is not None:
            try:
                new_version = check_version(version)
            except ValueError as exc:
                raise ConfigError(str(exc)) from None
        new_withdrawals = (
            previous.withdrawals_per_block if withdrawals_per_block is None else withdrawals_per_block
        )
        _check_withdrawals(new_withdrawals, new_version)
        new_recipient = previous.fee_recipient if fee_recipient is None else _check_address(fee_recipient)
        if new_version != previous.version:
            self._check_served(new_version)
        if not self._build_lock.acquire(timeout=CONFIGURE_TIMEOUT):
            raise DevnetError(
                f"a block was still being built after {CONFIGURE_TIMEOUT:.0f} s; not configured"
            )
        try:
            if new_version != self.engine.version:
                engine = self.engine.with_version(new_version)
                self._attach(engine)
                self.engine = engine
            self.withdrawals_per_block = new_withdrawals
            self.fee_recipient = new_recipient
        finally:
            self._build_lock.release()
        if interval is not None and interval != self.interval:
            self.set_interval(float(interval))
        return previous

    def restore(self, settings: DriverSettings) -> None:
        """Put back what :meth:`configure` returned."""
        self.configure(
            interval=settings.interval,
            version=settings.version,
            withdrawals_per_block=settings.withdrawals_per_block,
            fee_recipient=settings.fee_recipient,
        )

    def _check_served(self, version: int) -> None:
        served = self.served_versions()
        if version not in served:
            offered = ", ".join(f"V{number}" for number in served) or "none of V1-V4"
            raise DevnetError(
                f"the node does not serve Engine API V{version} (forkchoiceUpdated, getPayload and "
                f"newPayload); it serves {offered}"
            )
        head_fork = fork_version(self._read_block())
        if version != head_fork:
            raise DevnetError(
                f"Engine API V{version} builds {FORK_OF_VERSION[version]} blocks, and this chain's head is a "
                f"{FORK_OF_VERSION[head_fork]} block: use version {head_fork}"
            )

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
        # CPU of this thread only: while it waits for the client's answer it uses none, so this is
        # the driver's own cost of a block (attributes, JWTs, JSON, the records).
        cpu_started = time.thread_time()
        started = time.monotonic()
        started_at = time.time()
        engine = self.engine
        if engine.observer is None or not (
            engine.observer == self._observe or getattr(engine.observer, "driver", None) is self
        ):
            self._attach(engine)  # a client swapped in from outside is recorded too
        version = engine.version
        timestamp = next_timestamp(parent.timestamp, self._clock())
        withdrawals = synthetic_withdrawals(
            self._withdrawal_index, self.withdrawals_per_block if version >= 2 else 0
        )
        attributes = payload_attributes(
            version,
            timestamp=timestamp,
            # Nothing on a devnet needs it random; derived from the number, it differs per block.
            prev_randao="0x" + keccak256((parent.number + 1).to_bytes(32, "big")).hex(),
            fee_recipient=self.fee_recipient,
            withdrawals=withdrawals,
            parent_beacon_block_root=ZERO_HASH,
        )
        calls: list[EngineCall] = []
        self._block_calls.calls = calls
        try:
            choice = engine.forkchoice_updated(parent.hash, attributes)
            assert choice.payload_id is not None  # forkchoice_updated checks it with attributes
            envelope = engine.get_payload(choice.payload_id)
            payload = envelope["executionPayload"]
            requests = list(envelope.get("executionRequests") or [])
            engine.new_payload(payload, [], ZERO_HASH, requests)
            engine.forkchoice_updated(payload["blockHash"])
        finally:
            self._block_calls.calls = None
        head = Head(int(payload["blockNumber"], 16), payload["blockHash"], int(payload["timestamp"], 16))
        elapsed = time.monotonic() - started
        self._withdrawal_index += len(withdrawals)
        head_after = self._read_head_hash()
        with self._state_lock:
            self._head = head
            self._blocks_built += 1
            self._build_total += elapsed
            self._build_max = max(self._build_max, elapsed)
            self._recent.append(elapsed)
        latencies = [record.latency for record in calls]
        self._add_build(
            BlockBuild(
                number=head.number,
                block_hash=head.hash,
                parent_hash=str(payload.get("parentHash", parent.hash)),
                timestamp=head.timestamp,
                transactions=len(payload.get("transactions") or ()),
                gas_used=int(payload.get("gasUsed", "0x0"), 16),
                started_at=started_at,
                build_s=sum(latencies[:2]),
                import_s=sum(latencies[2:4]),
                payload_id=str(choice.payload_id),
                head_after=head_after,
                driver_cpu_s=time.thread_time() - cpu_started,
                version=version,
                withdrawals=len(withdrawals),
            )
        )
        if self.on_block is not None:
            try:
                self.on_block(payload, requests)
            except Exception:
                logger.exception("consensus: the block listener failed on block %d", head.number)
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

    def _read_block(self) -> dict[str, Any]:
        block: Any = call(self.rpc_url, "eth_getBlockByNumber", ["latest", False], timeout=30)
        if not isinstance(block, dict):
            raise TransportError(f"eth_getBlockByNumber('latest') answered {str(block)[:80]}")
        return block

    def _read_head(self) -> Head:
        block = self._read_block()
        # Withdrawal indexes go on from the chain's: the head's last one, when it carries any.
        withdrawals = block.get("withdrawals")
        if isinstance(withdrawals, list) and withdrawals:
            try:
                last = int(withdrawals[-1]["index"], 16)
            except (KeyError, TypeError, ValueError):
                last = -1
            self._withdrawal_index = max(self._withdrawal_index, last + 1)
        return Head(int(block["number"], 16), str(block["hash"]), int(block["timestamp"], 16))

    def _read_head_hash(self) -> str | None:
        try:
            return str(self._read_block()["hash"])
        except (RpcError, TransportError, KeyError):
            return None

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


_METHODS = ("forkchoiceUpdated", "getPayload", "newPayload")
#: How long :meth:`ConsensusDriver.configure` waits for a block in progress (a slow client's big
#: block can take a minute).
CONFIGURE_TIMEOUT = 180.0


class _Both:
    """Two observers in turn: one that raises does not keep the other from its record."""

    def __init__(
        self, first: Callable[[EngineCall], None], second: Callable[[EngineCall], None], *, driver: object
    ) -> None:
        self.first, self.second, self.driver = first, second, driver

    def __call__(self, record: EngineCall) -> None:
        try:
            self.first(record)
        finally:
            self.second(record)


def _check_address(value: str) -> str:
    text = value if isinstance(value, str) else ""
    if (
        len(text) != 42
        or text[:2].lower() != "0x"
        or any(c not in "0123456789abcdefABCDEF" for c in text[2:])
    ):
        raise ConfigError(f"the fee recipient must be a 0x-prefixed 20-byte address, got {value!r}")
    return text


def _check_withdrawals(count: int, version: int) -> int:
    if isinstance(count, bool) or not isinstance(count, int) or count < 0:
        raise ConfigError(f"withdrawals per block must be a whole number, 0 or more, got {count!r}")
    if count and version < 2:
        raise ConfigError(
            f"Engine API V{version} (Paris) blocks carry no withdrawals; use version 2 or later, or 0 withdrawals"
        )
    return count
