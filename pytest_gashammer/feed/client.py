"""A sequencer-feed client that behaves like Nitro's own, and counts everything that goes wrong.

Why it exists: the feed is where a load test sees a transaction sequenced, so the client must be at
least as robust as the nodes that read the feed in production (reconnect, resume without loss) and
more talkative than them (every gap, duplicate, bad frame and reconnect is counted and timestamped,
because those are findings about the chain under test, not noise).

Behaviour, with Nitro's defaults:

- Handshake: sends ``Arbitrum-Feed-Client-Version: 2`` and, once it knows where it is,
  ``Arbitrum-Requested-Sequence-Number: <last + 1>``. Checks the server's ``Arbitrum-Chain-Id`` and
  ``Arbitrum-Feed-Server-Version``: a mismatch is fatal (:class:`FeedChainMismatch`,
  :class:`FeedVersionMismatch`) and never retried; a missing header is fatal only when
  ``require_chain_id`` / ``require_feed_version`` is set.
- Backoff: a failed connect waits ``initial_backoff`` (1 s) and doubles up to ``max_backoff`` (64 s),
  no jitter. After an established connection drops, the first reconnect is immediate; the backoff
  resets after any good frame.
- Liveness: the server pings every 5 s; the client pings too and drops a connection whose server has
  not answered for ``read_timeout`` (20 s, Nitro's ``feed.input.timeout``). An idle but healthy feed
  (a Nitro devnet with no traffic makes no blocks) is not a failure.
- Frames are decoded with :func:`~pytest_gashammer.feed.codec.decode_broadcast`; a
  :class:`~pytest_gashammer.feed.codec.FeedDecodeError` is counted by kind and the client keeps going.
- Sequence numbers: a jump is a gap ``(expected, got)``, a number already delivered is a duplicate;
  duplicates are not delivered again. A number that fills an earlier gap is delivered and counted as
  late. Messages below ``start_sequence`` (a server that sends its whole backlog) are skipped.
- Gap recovery (``recover_gaps``, on by default; beyond Nitro's client, which leaves gaps to its
  L1 reader): a gap still open ``gap_wait`` (0.25 s) after it was seen, so not a mere reordering,
  makes the client reconnect asking for the first missing number (``Arbitrum-Requested-Sequence-
  Number``); the server's backlog serves the missing messages again, then what was already
  delivered (skipped quietly, counted as ``replayed``), then live ones. A gap whose every message
  came back this way is *recovered* (``recovered_gaps``): lost in transit, not by the feed. A
  number the server does not serve again is asked for at most ``recovery_attempts`` times, then
  left a gap.

``on_message(message, arrival_ns)`` is called once per new message, in feed order, with the
``time.monotonic_ns()`` at which its frame arrived (taken before decoding, so decode cost is not
latency). It runs on the client's event loop: keep it fast (the correlator is); an exception it raises
ends :meth:`FeedClient.run`, since it is a bug in the consumer, not a fault of the feed.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import Callable
from typing import Any

from pytest_gashammer.errors import GashammerError
from pytest_gashammer.feed.codec import FeedDecodeError, FeedMessage, decode_broadcast
from pytest_gashammer.feed.relay import (
    FEED_CHAIN_ID_HEADER,
    FEED_CLIENT_VERSION_HEADER,
    FEED_SERVER_VERSION,
    FEED_SERVER_VERSION_HEADER,
    REQUESTED_SEQUENCE_HEADER,
)

__all__ = [
    "EVENT_KINDS",
    "FeedChainMismatch",
    "FeedClient",
    "FeedClientError",
    "FeedClientStats",
    "FeedEvent",
    "FeedVersionMismatch",
    "MessageHandler",
]

MessageHandler = Callable[[FeedMessage, int], None]

EVENT_KINDS = (
    "connect",
    "connect_failed",
    "disconnect",
    "reconnect",
    "gap",
    "gap_recovered",
    "duplicate",
    "late",
    "decode_error",
    "fatal",
)
"""Kinds of :class:`FeedEvent`, for telemetry."""

_MAX_LISTED = 10_000  # offending sequence numbers kept per list; counts keep going past it


class FeedClientError(GashammerError):
    """A fatal feed problem: retrying cannot help, so :meth:`FeedClient.run` raises it."""


class FeedChainMismatch(FeedClientError):
    """The feed belongs to another chain than the one under test."""


class FeedVersionMismatch(FeedClientError):
    """The feed server speaks another feed protocol version."""


@dataclasses.dataclass(frozen=True, slots=True)
class FeedEvent:
    """One thing that happened to the feed connection; ``ns`` is ``time.monotonic_ns()``."""

    kind: str
    ns: int
    detail: str = ""
    sequence: int | None = None


@dataclasses.dataclass
class FeedClientStats:
    """Counters of a client, read with :attr:`FeedClient.stats` (a copy)."""

    messages: int = 0
    transactions: int = 0
    frames: int = 0
    connects: int = 0
    reconnects: int = 0
    connect_failures: int = 0
    decode_errors: dict[str, int] = dataclasses.field(default_factory=dict)
    #: ``(expected, got)`` of each jump whose skipped numbers have not all come late (yet).
    gaps: list[tuple[int, int]] = dataclasses.field(default_factory=list)
    gap_count: int = 0
    #: Sequence numbers skipped and not delivered since (a late one no longer counts).
    missing_messages: int = 0
    #: ``(expected, got)`` of each jump whose skipped numbers all came later: messages out of order.
    out_of_order: list[tuple[int, int]] = dataclasses.field(default_factory=list)
    out_of_order_count: int = 0
    duplicates: list[int] = dataclasses.field(default_factory=list)
    duplicate_count: int = 0
    late: list[int] = dataclasses.field(default_factory=list)
    #: Gaps (as in ``gaps``) whose every message came back on a reconnect that asked for them.
    recovered_gaps: list[tuple[int, int]] = dataclasses.field(default_factory=list)
    recovered_gap_count: int = 0
    recovered_messages: int = 0
    #: Reconnects made to recover a gap, and messages they served again that were already delivered.
    recoveries: int = 0
    replayed: int = 0
    skipped_before_start: int = 0
    first_sequence: int | None = None
    last_sequence: int | None = None
    confirmed_sequence: int | None = None
    connected: bool = False
    last_error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class FeedClient:
    """Reads a Nitro sequencer feed, resumes across reconnects, counts gaps, duplicates and bad frames.

    Run it as a task on any event loop: ``await client.run(stop_event)``; it returns when
    ``stop_event`` is set and raises :class:`FeedClientError` only for a fatal mismatch. Not
    thread-safe: read :attr:`stats` and :attr:`events` from the loop's thread, or after ``run`` returns
    (a copy taken from another thread is consistent enough for progress lines).
    """

    def __init__(
        self,
        url: str,
        *,
        expected_chain_id: int | None,
        start_sequence: int | None = None,
        on_message: MessageHandler | None = None,
        on_event: Callable[[FeedEvent], None] | None = None,
        initial_backoff: float = 1.0,
        max_backoff: float = 64.0,
        read_timeout: float = 20.0,
        open_timeout: float = 10.0,
        require_chain_id: bool = False,
        require_feed_version: bool = False,
        max_frame_bytes: int | None = 256 * 1024 * 1024,
        max_events: int = 10_000,
        recover_gaps: bool = True,
        gap_wait: float = 0.25,
        recovery_attempts: int = 2,
    ) -> None:
        if not url.startswith(("ws://", "wss://")):
            raise ValueError(f"feed URL {url!r} must start with ws:// or wss://, e.g. ws://127.0.0.1:9642")
        if initial_backoff < 0 or max_backoff < initial_backoff:
            raise ValueError(
                f"backoff {initial_backoff}..{max_backoff} s: need 0 <= initial_backoff <= max_backoff"
            )
        self.url = url
        self.expected_chain_id = expected_chain_id
        self.start_sequence = start_sequence
        self.on_message = on_message
        self.on_event = on_event
        self.initial_backoff = initial_backoff
        self.max_backoff = max_backoff
        self.read_timeout = read_timeout
        self.open_timeout = open_timeout
        self.require_chain_id = require_chain_id
        self.require_feed_version = require_feed_version
        self.max_frame_bytes = max_frame_bytes
        self.max_events = max_events
        self.recover_gaps = recover_gaps
        self.gap_wait = gap_wait
        self.recovery_attempts = recovery_attempts
        self.events: list[FeedEvent] = []
        self.events_dropped = 0
        self.server_headers: dict[str, str] = {}
        self._stats = FeedClientStats()
        self._missing: set[int] = set()
        #: Missing numbers still worth asking for again (recovery attempts left).
        self._recoverable: set[int] = set()
        #: The gap each missing number belongs to (index into ``_gap_list``), and per gap the numbers
        #: still missing: a gap is recovered when its count reaches zero through recovery alone.
        self._gap_of: dict[int, int] = {}
        self._gap_list: list[list[int]] = []  # [expected, got, still missing, filled late]
        self._tries: dict[int, int] = {}
        #: When the oldest recoverable gap was seen (or a recovery attempt ended short).
        self._gap_seen_ns: int | None = None
        #: On a connection opened to recover: the number asked for, and the last number delivered
        #: before it (what the server sends up to it is a replay).
        self._recovering: int | None = None
        self._replay_until: int | None = None
        self._connection: Any = None

    # -- state ----------------------------------------------------------------------------------
    @property
    def stats(self) -> FeedClientStats:
        s = self._stats
        return dataclasses.replace(
            s, decode_errors=dict(s.decode_errors), gaps=list(s.gaps), duplicates=list(s.duplicates),
            late=list(s.late), recovered_gaps=list(s.recovered_gaps),
        )  # fmt: skip

    @property
    def connected(self) -> bool:
        return self._stats.connected

    @property
    def last_sequence(self) -> int | None:
        return self._stats.last_sequence

    @property
    def next_sequence(self) -> int | None:
        """What the client asks for on its next dial: the first missing number worth asking for
        again, else last received + 1, or ``start_sequence``."""
        if self.recover_gaps and self._recoverable:
            return min(self._recoverable)
        last = self._stats.last_sequence
        return self.start_sequence if last is None else last + 1

    @property
    def contiguous_sequence(self) -> int | None:
        """The last number up to which everything arrived or was given up on: ``last_sequence``,
        unless a gap is still being recovered (then just below its first missing number)."""
        if self.recover_gaps and self._recoverable:
            return min(self._recoverable) - 1
        return self._stats.last_sequence

    def _event(self, kind: str, detail: str = "", sequence: int | None = None, ns: int | None = None) -> None:
        event = FeedEvent(kind, time.monotonic_ns() if ns is None else ns, detail, sequence)
        if len(self.events) < self.max_events:
            self.events.append(event)
        else:
            self.events_dropped += 1
        if self.on_event is not None:
            self.on_event(event)

    # -- connection loop ------------------------------------------------------------------------
    async def run(self, stop: asyncio.Event) -> None:
        """Read the feed until ``stop`` is set. Raises :class:`FeedClientError` on a fatal mismatch."""
        from websockets.exceptions import InvalidHandshake, InvalidStatus

        backoff = self.initial_backoff
        immediate = False
        attempt = 0
        while not stop.is_set():
            if attempt:
                if immediate:
                    immediate = False
                else:
                    if await _wait(stop, backoff):
                        return
                    backoff = min(backoff * 2, self.max_backoff)
            attempt += 1
            try:
                connection = await self._connect()
            except asyncio.CancelledError:
                raise
            except FeedClientError:
                raise
            except (InvalidStatus, InvalidHandshake, OSError, TimeoutError, EOFError) as exc:
                self._stats.connect_failures += 1
                detail = _describe_connect_error(exc)
                self._stats.last_error = detail
                self._event("connect_failed", detail)
                continue
            good_read = await self._read(connection, stop)
            if good_read:
                backoff = self.initial_backoff
            # Nitro reconnects at once after a working connection drops, then backs off.
            immediate = True

    async def _connect(self) -> Any:
        from websockets.asyncio.client import connect

        from pytest_gashammer._version import request_headers

        headers = {FEED_CLIENT_VERSION_HEADER: str(FEED_SERVER_VERSION), **request_headers()}
        requested = self.next_sequence
        if requested is not None:
            headers[REQUESTED_SEQUENCE_HEADER] = str(requested)
        recovering = self.recover_gaps and bool(self._recoverable)
        connection = await connect(
            self.url,
            additional_headers=headers,
            compression=None,
            proxy=None,
            open_timeout=self.open_timeout,
            ping_interval=min(5.0, self.read_timeout / 4),
            ping_timeout=self.read_timeout,
            close_timeout=2,
            max_size=self.max_frame_bytes,
            max_queue=64,
        )
        assert connection.response is not None  # set once the opening handshake succeeded
        response_headers = connection.response.headers
        self.server_headers = {key: value for key, value in response_headers.raw_items()}
        try:
            self._check_server(response_headers)
        except FeedClientError as exc:
            self._event("fatal", str(exc))
            await connection.close()
            raise
        if recovering and requested is not None:
            self._start_recovery(requested)
        return connection

    # -- gap recovery ---------------------------------------------------------------------------
    def _start_recovery(self, requested: int) -> None:
        """This connection asked for ``requested``, the first missing number: count a try for every
        number it should serve again."""
        self._stats.recoveries += 1
        self._recovering = requested
        self._replay_until = self._stats.last_sequence
        for seq in self._recoverable:
            self._tries[seq] = self._tries.get(seq, 0) + 1

    def _end_recovery(self, now_ns: int) -> None:
        """The recovery connection caught up: what it did not serve is asked for again later, or,
        out of tries, left a gap."""
        self._recovering = self._replay_until = None
        for seq in [seq for seq in self._recoverable if self._tries.get(seq, 0) >= self.recovery_attempts]:
            self._recoverable.discard(seq)
        self._gap_seen_ns = now_ns if self._recoverable else None

    def _recovery_wait(self, now_ns: int) -> float | None:
        """Seconds until a recovery reconnect is due (0: now), None when none is pending."""
        if not self.recover_gaps or not self._recoverable or self._recovering is not None:
            return None
        if self._gap_seen_ns is None:
            self._gap_seen_ns = now_ns
        return max(0.0, self._gap_seen_ns / 1e9 + self.gap_wait - now_ns / 1e9)

    def _filled(self, seq: int, arrival: int, *, recovered: bool) -> None:
        """``seq``, missing, arrived: by recovery, or late on its own."""
        stats = self._stats
        self._missing.discard(seq)
        stats.missing_messages -= 1
        self._recoverable.discard(seq)
        self._tries.pop(seq, None)
        index = self._gap_of.pop(seq, None)
        gap = self._gap_list[index] if index is not None else None
        if gap is not None:
            gap[2] -= 1
            gap[3] += 0 if recovered else 1
        if recovered:
            stats.recovered_messages += 1
            if gap is not None and gap[2] == 0 and gap[3] == 0:
                stats.recovered_gap_count += 1
                if len(stats.recovered_gaps) < _MAX_LISTED:
                    stats.recovered_gaps.append((gap[0], gap[1]))
                self._event("gap_recovered", f"{gap[0]}..{gap[1] - 1} served again", gap[0], arrival)
        else:
            if len(stats.late) < _MAX_LISTED:
                stats.late.append(seq)
            self._event("late", f"sequence {seq} arrived after {stats.last_sequence}", seq, arrival)
            if gap is not None and gap[2] == 0 and gap[3] == gap[1] - gap[0]:
                # Every number of the jump came late on its own: messages out of order, no loss.
                span = (gap[0], gap[1])
                stats.gap_count -= 1
                with contextlib.suppress(ValueError):
                    stats.gaps.remove(span)
                stats.out_of_order_count += 1
                if len(stats.out_of_order) < _MAX_LISTED:
                    stats.out_of_order.append(span)
        if not self._recoverable:
            self._gap_seen_ns = None

    def _check_server(self, headers: Any) -> None:
        chain = headers.get(FEED_CHAIN_ID_HEADER)
        if chain is None:
            if self.require_chain_id:
                raise FeedChainMismatch(
                    f"feed {self.url} sent no {FEED_CHAIN_ID_HEADER} header; point the feed URL at a Nitro "
                    "feed or drop require_chain_id"
                )
        elif self.expected_chain_id is not None:
            try:
                served = int(chain.strip())
            except ValueError:
                served = None
            if served != self.expected_chain_id:
                raise FeedChainMismatch(
                    f"feed {self.url} serves chain id {chain.strip()} but the chain under test is "
                    f"{self.expected_chain_id}; point the feed URL at this chain's sequencer feed"
                )
        version = headers.get(FEED_SERVER_VERSION_HEADER)
        if version is None:
            if self.require_feed_version:
                raise FeedVersionMismatch(
                    f"feed {self.url} sent no {FEED_SERVER_VERSION_HEADER} header; point the feed URL at a "
                    "Nitro feed or drop require_feed_version"
                )
        elif version.strip() != str(FEED_SERVER_VERSION):
            raise FeedVersionMismatch(
                f"feed {self.url} speaks feed version {version.strip()}, this client speaks "
                f"{FEED_SERVER_VERSION}; use a Nitro release with feed version {FEED_SERVER_VERSION}"
            )

    async def _read(self, connection: Any, stop: asyncio.Event) -> bool:
        """Read frames until the connection ends or ``stop``; True if at least one frame was good."""
        from websockets.exceptions import ConnectionClosed

        stats = self._stats
        stats.connects += 1
        stats.connected = True
        self._connection = connection
        if stats.connects > 1:
            stats.reconnects += 1
            self._event("reconnect", f"resuming from {self.next_sequence}", self.next_sequence)
        self._event("connect", self.url, self.next_sequence)
        good = False
        reason = "stopped"
        stopper = asyncio.ensure_future(stop.wait())
        receiver: asyncio.Future[Any] | None = None
        try:
            while True:
                if receiver is None:
                    receiver = asyncio.ensure_future(connection.recv())
                wait = self._recovery_wait(time.monotonic_ns())
                done, _ = await asyncio.wait(
                    (receiver, stopper), timeout=wait, return_when=asyncio.FIRST_COMPLETED
                )
                if receiver not in done:
                    # Stopped, or a gap waited long enough: reconnect asking for it.
                    receiver.cancel()
                    with contextlib.suppress(asyncio.CancelledError, ConnectionClosed):
                        await receiver
                    if stopper not in done:
                        reason = f"recovering from sequence {self.next_sequence}"
                    break
                try:
                    frame = receiver.result()
                except ConnectionClosed as exc:
                    reason = _describe_close(exc)
                    break
                receiver = None
                arrival = time.monotonic_ns()
                if self._on_frame(frame, arrival):
                    good = True
                if self._recovery_wait(arrival) == 0.0:
                    reason = f"recovering from sequence {self.next_sequence}"
                    break
        finally:
            stopper.cancel()
            stats.connected = False
            self._connection = None
            # A connection that ends while recovering counts as a try; the next dial asks again.
            if self._recovering is not None:
                self._end_recovery(time.monotonic_ns())
            with contextlib.suppress(Exception):
                await asyncio.wait_for(connection.close(), timeout=3)
            self._event("disconnect", reason, stats.last_sequence)
            if reason != "stopped" and not reason.startswith("recovering"):
                stats.last_error = reason
        return good

    # -- frames ---------------------------------------------------------------------------------
    def _on_frame(self, frame: str | bytes, arrival: int) -> bool:
        stats = self._stats
        stats.frames += 1
        try:
            broadcast = decode_broadcast(frame)
        except FeedDecodeError as exc:
            kind = exc.kind
            stats.decode_errors[kind] = stats.decode_errors.get(kind, 0) + 1
            stats.last_error = f"{kind}: {exc}"
            self._event("decode_error", f"{kind}: {exc}", exc.sequence_number, arrival)
            return False
        if broadcast.confirmed_sequence_number is not None:
            stats.confirmed_sequence = broadcast.confirmed_sequence_number
        on_message = self.on_message
        for message in broadcast.messages:
            if self._admit(message.sequence_number, arrival):
                stats.messages += 1
                stats.transactions += len(message.transactions)
                if on_message is not None:
                    on_message(message, arrival)
        return True

    def _admit(self, seq: int, arrival: int) -> bool:
        """Sequence bookkeeping: True if ``seq`` is new and should be delivered."""
        new = self._sequence(seq, arrival)
        if self._recovering is not None and (self._replay_until is None or seq >= self._replay_until):
            self._end_recovery(arrival)  # caught up with what was delivered before the recovery
        return new

    def _sequence(self, seq: int, arrival: int) -> bool:
        stats = self._stats
        last = stats.last_sequence
        if last is None:
            start = self.start_sequence
            if start is not None and seq < start:
                stats.skipped_before_start += 1
                return False
            if start is not None and seq > start:
                self._gap(start, seq, arrival)
            stats.first_sequence = seq
            stats.last_sequence = seq
            return True
        if seq == last + 1:
            stats.last_sequence = seq
            return True
        if seq > last + 1:
            self._gap(last + 1, seq, arrival)
            stats.last_sequence = seq
            return True
        if seq in self._missing:
            self._filled(seq, arrival, recovered=self._recovering is not None)
            return True
        if self.start_sequence is not None and seq < self.start_sequence:
            stats.skipped_before_start += 1
            return False
        if self._recovering is not None:
            stats.replayed += 1  # served again because the recovery asked from before it
            return False
        stats.duplicate_count += 1
        if len(stats.duplicates) < _MAX_LISTED:
            stats.duplicates.append(seq)
        self._event("duplicate", f"sequence {seq} again (last {last})", seq, arrival)
        return False

    def _gap(self, expected: int, got: int, arrival: int) -> None:
        stats = self._stats
        stats.gap_count += 1
        stats.missing_messages += got - expected
        if len(stats.gaps) < _MAX_LISTED:
            stats.gaps.append((expected, got))
        if len(self._missing) < 100_000:
            numbers = range(expected, min(got, expected + 100_000 - len(self._missing)))
            self._missing.update(numbers)
            self._gap_of.update(dict.fromkeys(numbers, len(self._gap_list)))
            self._gap_list.append([expected, got, len(numbers), 0])
            if self.recover_gaps:
                self._recoverable.update(numbers)
                if self._gap_seen_ns is None:
                    self._gap_seen_ns = arrival
        missing = f"{expected}" if got == expected + 1 else f"{expected}..{got - 1}"
        self._event("gap", f"expected {expected}, got {got}: {missing} missing", expected, arrival)


async def _wait(stop: asyncio.Event, seconds: float) -> bool:
    """Sleep ``seconds`` unless ``stop`` is set first; True if stopped."""
    if seconds <= 0:
        return stop.is_set()
    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)
    return stop.is_set()


def _describe_connect_error(exc: BaseException) -> str:
    response = getattr(exc, "response", None)
    status = getattr(response, "status_code", None)
    if status is not None:
        body = bytes(getattr(response, "body", b"") or b"").decode("utf-8", "replace").strip()
        return f"HTTP {status} from the feed server" + (f": {body[:120]}" if body else "")
    return f"{type(exc).__name__}: {exc}"


def _describe_close(exc: BaseException) -> str:
    rcvd = getattr(exc, "rcvd", None)
    if rcvd is not None:
        return f"closed by the server ({rcvd.code}{' ' + rcvd.reason if rcvd.reason else ''})"
    return f"connection lost ({type(exc).__name__})"
