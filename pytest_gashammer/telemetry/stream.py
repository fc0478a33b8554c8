"""Streaming telemetry off an edge while it runs: Arrow record batches of what became final, and IPC frames.

Why stream: a long run at 10k tx/s holds millions of rows. Shipping them all at the end costs the
edge a burst of memory and the hive a burst of work, and a run cut short would ship nothing. So an
edge periodically (about once a second) asks a :class:`TransactionCursor` for the rows that became
*final* since its last call, turns that batch into IPC frames of bounded size (:func:`to_ipc_frames`)
and sends them to the hive, which appends them to Parquet as they come.

A row is final when nothing about it can still change in a way the report cares about:

- rejected (and not a transport failure, which the node may still have taken), sent longer ago than
  the grace period;
- included and answered by the node (so its accept time is known), its receipt fetched if it was on
  the receipt sample (unless ``receipt_wait_s`` ran out), and included longer ago than the grace
  period, so a feed arrival that trails the block still makes it in;
- or anything still open when the run ends (``poll(final=True)``): accepted but never included is
  ``lost``, never answered or never sent is ``pending``.

Cost: each call looks only at the rows that were open after the previous call plus the rows added
since (numpy vector operations over zero-copy views of the :class:`~pytest_gashammer.telemetry.records.TxLog`
columns), so the work is O(new rows + rows in flight), never O(run length), and no Python object is
made per row. A row is emitted exactly once: it leaves the open set when it is emitted.

Threading: call a cursor on the thread that appends to the log (the edge's event loop). The views it
takes lock the log's arrays against resizing while they exist; they are released before each call
returns, so an ``append`` on the same thread afterwards is always fine, but one from another thread
*during* a call would raise ``BufferError``.
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import pyarrow as pa

from pytest_gashammer.telemetry.records import (
    NOT_YET,
    STATUS_INCLUDED,
    STATUS_REJECTED,
    BlockRecord,
    TxLog,
)
from pytest_gashammer.telemetry.schema import BLOCKS, EVENTS, STATES, TRANSACTIONS

#: The ``transactions`` columns the sequencer feed fills (the correlator's columns, in this order).
_FEED_COLUMNS = ("feed_arrival_ns", "feed_sequence", "feed_position", "feed_appearances")

__all__ = [
    "DEFAULT_FRAME_BYTES",
    "RUN_CLOCK_COLUMNS",
    "EdgeTelemetry",
    "GAP_FILLER_TEMPLATE",
    "MAX_FRAME_BYTES",
    "BlockCursor",
    "ClockMap",
    "FeedEventCursor",
    "TelemetryEvent",
    "TransactionCursor",
    "blocks_batch",
    "estimate_offset_ns",
    "events_batch",
    "feed_events",
    "frames_to_columns",
    "from_ipc",
    "plan_phase_events",
    "rebase",
    "to_ipc",
    "to_ipc_frames",
]

#: Template name stored for the self-transfers an edge sends to fill a nonce hole (template index -1).
GAP_FILLER_TEMPLATE = "gap_filler"
#: Frames at or above this size would stall an execnet pipe shared with xdist's own messages.
MAX_FRAME_BYTES = 1 << 20
#: What :func:`to_ipc_frames` aims for: a quarter of the ceiling leaves room for a slow consumer.
DEFAULT_FRAME_BYTES = 256 * 1024

_STATE_INCLUDED, _STATE_REJECTED, _STATE_LOST, _STATE_PENDING = range(4)
_INT64_MAX = (1 << 63) - 1


# ---------------------------------------------------------------------------------------------
# clocks


@dataclass(frozen=True)
class ClockMap:
    """Maps one edge's monotonic nanoseconds onto the run clock (ns since the run's t=0 on the hive).

    ``clock_origin_ns`` and ``wall_origin_ns`` are the edge's monotonic and wall clocks read at the
    same instant (its plan t=0; :class:`~pytest_gashammer.telemetry.records.EdgeReport` carries both).
    ``run_origin_unix_ns`` is the run's t=0 on the hive's wall clock. ``edge_offset_ns`` is how far
    the hive's wall clock is ahead of the edge's (0 on the same machine; for an edge on another
    machine the hive estimates it, see :func:`estimate_offset_ns`). The monotonic clock carries the
    time between origins, so a wall-clock step during the run does not bend the timeline.
    """

    clock_origin_ns: int
    wall_origin_ns: int
    run_origin_unix_ns: int
    edge_offset_ns: int = 0

    @classmethod
    def local(cls, clock_origin_ns: int, wall_origin_ns: int) -> ClockMap:
        """The run clock of a single edge in the hive's process: its own plan t=0 is the run's t=0."""
        return cls(clock_origin_ns, wall_origin_ns, run_origin_unix_ns=wall_origin_ns)

    @property
    def shift_ns(self) -> int:
        """What to add to an edge monotonic time to get run-clock time."""
        return self.wall_origin_ns + self.edge_offset_ns - self.run_origin_unix_ns - self.clock_origin_ns

    @property
    def start_skew_ns(self) -> int:
        """When this edge's plan t=0 happened on the run clock (its start skew)."""
        return self.wall_origin_ns + self.edge_offset_ns - self.run_origin_unix_ns

    def to_run(self, edge_ns: int) -> int:
        return edge_ns + self.shift_ns


def estimate_offset_ns(hive_sent_unix_ns: int, edge_unix_ns: int, hive_received_unix_ns: int) -> int:
    """Hive wall clock minus edge wall clock, from one ping: the hive stamps a request, the edge answers
    with its ``time.time_ns()``, the hive stamps the answer. Assumes the answer was read halfway
    through the round trip, so the error is at most half the round trip: take the ping with the
    shortest round trip of a few."""
    return (hive_sent_unix_ns + hive_received_unix_ns) // 2 - edge_unix_ns


# ---------------------------------------------------------------------------------------------
# array helpers


def _view(values: Any) -> np.ndarray:
    """A zero-copy numpy view of an ``array.array`` (or bytes). Drop it before the owner grows."""
    if isinstance(values, bytes | bytearray | memoryview):
        return np.frombuffer(values, dtype=np.uint8)
    return np.frombuffer(values, dtype=np.dtype(values.typecode))


def _typed(values: Any, dtype: str) -> np.ndarray:
    """Copy-free numpy array over ``bytes`` that hold ``dtype`` items (a ``to_columns`` payload)."""
    return np.frombuffer(values, dtype=np.dtype(dtype))


def _int(values: np.ndarray, null: np.ndarray | None, type_: pa.DataType) -> pa.Array:
    if null is not None and null.any():
        return pa.array(values, type=type_, mask=null)
    return pa.array(values, type=type_)


def _dictionary(indices: np.ndarray, dictionary: pa.Array, null: np.ndarray | None = None) -> pa.Array:
    index_array = _int(indices.astype(np.int32, copy=False), null, pa.int32())
    return pa.DictionaryArray.from_arrays(index_array, dictionary)


def _constant(value: str, length: int) -> pa.Array:
    return pa.DictionaryArray.from_arrays(pa.array(np.zeros(length, dtype=np.int32)), pa.array([value]))


def _hashes(flat: np.ndarray, rows: np.ndarray) -> pa.Array:
    picked = flat.reshape(-1, 32)[rows]
    return pa.FixedSizeBinaryArray.from_buffers(
        pa.binary(32), len(rows), [None, pa.py_buffer(picked.tobytes())]
    )


def _phase_spans(phases: Iterable[Any] | None) -> tuple[list[str], np.ndarray, np.ndarray]:
    names: list[str] = []
    starts: list[int] = []
    ends: list[int] = []
    for phase in phases or ():
        if isinstance(phase, Mapping):
            name, start, end = phase["name"], phase["start"], phase["end"]
        else:
            name, start, end = phase.name, phase.start, phase.end
        names.append(str(name))
        starts.append(round(float(start) * 1e9))
        ends.append(round(float(end) * 1e9))
    return names, np.array(starts, dtype=np.int64), np.array(ends, dtype=np.int64)


# ---------------------------------------------------------------------------------------------
# transactions


class TransactionCursor:
    """Emits each row of a :class:`TxLog` once, as an Arrow batch in the ``transactions`` schema, when
    it becomes final (see the module docstring).

    ``templates`` are the plan's template names by index (gap fillers, index -1, become
    ``"gap_filler"``); ``sender_addresses`` the edge's senders by local index and ``sender_offset``
    its first sender's global index (``EdgeAssignment.sender_start``); ``receipt_stride`` the edge's
    receipt sampling (row ``r`` is on the sample when ``r % stride == 0``; 0 = no receipts);
    ``feed`` a live :class:`~pytest_gashammer.feed.correlator.Correlator` or its ``to_columns()``;
    ``phases`` the plan's phases (objects or dicts with ``name``, ``start``, ``end`` in seconds).
    """

    def __init__(
        self,
        log: TxLog,
        *,
        run_id: str,
        edge_id: str,
        clock: ClockMap,
        templates: Sequence[str],
        sender_addresses: Sequence[str] | None = None,
        sender_offset: int = 0,
        receipt_stride: int = 0,
        feed: Any = None,
        phases: Iterable[Any] | None = None,
        grace_s: float = 2.0,
        receipt_wait_s: float | None = None,
        hold_error_kinds: Iterable[str] = ("transport",),
    ) -> None:
        self.log = log
        self.run_id = run_id
        self.edge_id = edge_id
        self.clock = clock
        self.feed = feed
        self.receipt_stride = max(int(receipt_stride), 0)
        self.sender_offset = sender_offset
        self.grace_ns = round(grace_s * 1e9)
        self.receipt_wait_ns = None if receipt_wait_s is None else round(receipt_wait_s * 1e9)
        self.hold_error_kinds = frozenset(hold_error_kinds)
        self._templates = pa.array([*map(str, templates), GAP_FILLER_TEMPLATE], type=pa.string())
        self._filler_code = len(self._templates) - 1
        self._addresses = pa.array(list(sender_addresses), type=pa.string()) if sender_addresses else None
        self._states = pa.array(STATES, type=pa.string())
        phase_names, self._phase_starts, self._phase_ends = _phase_spans(phases)
        self._phases = pa.array(phase_names, type=pa.string())
        self._seen = 0
        self._open = np.empty(0, dtype=np.int64)
        self._emitted = 0
        self._closed = False

    @property
    def emitted(self) -> int:
        """Rows emitted so far."""
        return self._emitted

    @property
    def open_rows(self) -> int:
        """Rows seen but not final yet (in flight, awaiting a receipt, or within the grace period)."""
        return int(self._open.size)

    @property
    def closed(self) -> bool:
        return self._closed

    def poll(self, *, now_ns: int | None = None, final: bool = False) -> pa.RecordBatch | None:
        """The rows that became final since the last call, in row order; ``None`` if there are none.

        ``now_ns`` is the edge's ``time.monotonic_ns()`` (read here when omitted). ``final=True``
        emits every remaining row and closes the cursor; later calls return ``None``.
        """
        if self._closed:
            return None
        if now_ns is None:
            now_ns = time.monotonic_ns()
        candidates, done = self._candidates(now_ns, final)
        rows = np.sort(candidates[done])
        batch = self.batch(rows) if rows.size else None
        # Only now that the batch exists do the rows leave the open set: a failure above loses nothing.
        self._advance(candidates, done, final)
        return batch

    def poll_rows(self, *, now_ns: int | None = None, final: bool = False) -> np.ndarray:
        """Like :meth:`poll`, the rows that became final, as row numbers (ascending), no batch made:
        for an edge that digests them and builds a batch (:meth:`batch`) only when it streams."""
        if self._closed:
            return np.empty(0, dtype=np.int64)
        if now_ns is None:
            now_ns = time.monotonic_ns()
        candidates, done = self._candidates(now_ns, final)
        rows = np.sort(candidates[done])
        self._advance(candidates, done, final)
        return rows

    def first_open(self) -> int:
        """The lowest row not final yet (every row below it was emitted): what the log may forget below."""
        return int(self._open.min()) if self._open.size else self._seen

    def _candidates(self, now_ns: int, final: bool) -> tuple[np.ndarray, np.ndarray]:
        size = len(self.log)
        fresh = np.arange(self._seen, size, dtype=np.int64)
        candidates = np.concatenate((self._open, fresh)) if self._open.size else fresh
        candidates = candidates[candidates < size]  # rows signed ahead and dropped unsent are gone
        done = np.ones(candidates.size, dtype=bool) if final else self._final_mask(candidates, now_ns)
        return candidates, done

    def _advance(self, candidates: np.ndarray, done: np.ndarray, final: bool) -> None:
        self._seen = max(self._seen, int(candidates.max()) + 1) if candidates.size else self._seen
        self._open = candidates[~done]
        self._emitted += int(done.sum())
        self._closed = final

    def _final_mask(self, rows: np.ndarray, now_ns: int) -> np.ndarray:
        log = self.log
        index = rows - log.base
        # Each view is a temporary: indexing with ``index`` copies, and the view is gone with the
        # expression, so nothing keeps the log's arrays locked once this returns.
        included = _view(log.included_ns)[index]
        accepted = _view(log.accepted_ns)[index]
        error = _view(log.error)[index]
        state = _view(log.state)[index]
        sent = _view(log.sent_ns)[index]
        status = _view(log.receipt_status)[index] if self.receipt_stride else None
        horizon = now_ns - self.grace_ns
        answered = (accepted != NOT_YET) | (error != NOT_YET)
        ready = (included != NOT_YET) & answered & (included <= horizon)
        if status is not None:
            sampled = (rows % self.receipt_stride) == 0
            waiting = sampled & (status == NOT_YET)
            if self.receipt_wait_ns is not None:
                waiting &= included > now_ns - self.receipt_wait_ns
            ready &= ~waiting
        rejected = (state == STATUS_REJECTED) & (included == NOT_YET) & (sent != NOT_YET) & (sent <= horizon)
        held = [code for code, kind in enumerate(log.error_kinds) if kind in self.hold_error_kinds]
        if held:
            rejected &= ~np.isin(error, held)
        return ready | rejected

    def batch(self, rows: np.ndarray) -> pa.RecordBatch:
        """The ``transactions`` rows of ``rows`` (row numbers the log still holds)."""
        log = self.log
        index = rows - log.base
        cols: dict[str, np.ndarray] = {}
        flat = None
        try:
            for column in TxLog.COLUMNS:
                cols[column.name] = _view(getattr(log, column.name))[index]  # fancy indexing copies
            flat = _view(log.hashes)
            tx_hash = _hashes(flat, index)
            error_kinds = list(log.error_kinds)
        finally:
            flat = None  # release the bytearray's buffer before returning
        shift = self.clock.shift_ns
        n = rows.size

        def run_time(values: np.ndarray) -> pa.Array:
            null = values == NOT_YET
            return _int(np.where(null, 0, values + shift), null, pa.int64())

        included_null = cols["included_ns"] == NOT_YET
        accepted_null = cols["accepted_ns"] == NOT_YET
        state = np.full(n, _STATE_PENDING, dtype=np.int32)
        state[~accepted_null] = _STATE_LOST
        state[cols["state"] == STATUS_REJECTED] = _STATE_REJECTED
        state[(~included_null) | (cols["state"] == STATUS_INCLUDED)] = _STATE_INCLUDED

        template = cols["template"].astype(np.int32)
        template[template < 0] = self._filler_code

        sender_local = cols["sender"].astype(np.int64)
        if self._addresses is not None:
            unique, inverse = np.unique(sender_local, return_inverse=True)
            known = unique < len(self._addresses)
            dictionary = self._addresses.take(pa.array(np.where(known, unique, 0)))
            sender = _dictionary(inverse.reshape(-1), dictionary, ~known[inverse.reshape(-1)])
        else:
            sender = pa.nulls(n, pa.dictionary(pa.int32(), pa.string()))

        error_null = cols["error"] < 0
        error = _dictionary(
            np.where(error_null, 0, cols["error"]), pa.array(error_kinds, type=pa.string()), error_null
        )

        if self._phases:
            t = cols["intended_ns"] - self.clock.clock_origin_ns
            index = np.searchsorted(self._phase_starts, t, side="right") - 1
            inside = (index >= 0) & (t < self._phase_ends[np.maximum(index, 0)])
            phase = _dictionary(np.where(inside, index, 0), self._phases, ~inside)
        else:
            phase = pa.nulls(n, pa.dictionary(pa.int32(), pa.string()))

        receipt_null = cols["receipt_status"] == NOT_YET
        sampled = (
            (rows % self.receipt_stride == 0) & ~included_null
            if self.receipt_stride
            else np.zeros(n, dtype=bool)
        )
        # One array per stored column, by name: a TxLog column whose stored form is not made here
        # fails on the first batch (and in the unit tests), never silently.
        arrays = {
            "run_id": _constant(self.run_id, n),
            "edge_id": _constant(self.edge_id, n),
            "row": pa.array(rows, type=pa.int64()),
            "tx_hash": tx_hash,
            "template": _dictionary(template, self._templates),
            "sender_index": pa.array(sender_local + self.sender_offset, type=pa.int32()),
            "sender": sender,
            "nonce": pa.array(cols["nonce"], type=pa.int64()),
            "gas_planned": pa.array(cols["gas_planned"], type=pa.int64()),
            "gas_used": _int(cols["gas_used"], cols["gas_used"] == NOT_YET, pa.int64()),
            "receipt_status": _int(
                np.where(receipt_null, 0, cols["receipt_status"]), receipt_null, pa.int8()
            ),
            "receipt_sampled": pa.array(sampled, type=pa.bool_()),
            "state": _dictionary(state, self._states),
            "error_kind": error,
            "phase": phase,
            "scheduled_ns": pa.array(cols["intended_ns"] + shift, type=pa.int64()),
            "sent_ns": run_time(cols["sent_ns"]),
            "accepted_ns": run_time(cols["accepted_ns"]),
            "included_ns": run_time(cols["included_ns"]),
            "block_number": _int(cols["block_number"], cols["block_number"] == NOT_YET, pa.int64()),
            "inclusions": pa.array(cols["inclusions"], type=pa.int8()),
            **dict(zip(_FEED_COLUMNS, self._feed_columns(rows), strict=True)),
        }
        return pa.RecordBatch.from_arrays([arrays[name] for name in TRANSACTIONS.names], schema=TRANSACTIONS)

    def _feed_columns(self, rows: np.ndarray) -> list[pa.Array]:
        n = rows.size
        feed = self.feed
        if feed is None:
            return [
                pa.nulls(n, pa.int64()),
                pa.nulls(n, pa.int64()),
                pa.nulls(n, pa.int32()),
                pa.nulls(n, pa.int8()),
            ]
        arrival = sequence = position = appearances = None
        try:
            if isinstance(feed, Mapping):
                base = feed.get("base", 0)
                arrival = _typed(feed["arrival_ns"], "q")
                sequence = _typed(feed["sequence"], "q")
                position = _typed(feed["position"], "l")
                appearances = _typed(feed["appearances"], "b")
            else:
                base = getattr(feed, "base", 0)
                arrival = _view(feed.arrival_ns)
                sequence = _view(feed.sequence)
                position = _view(feed.position)
                appearances = _view(feed.appearances)
            held = rows - base
            known = (held >= 0) & (held < min(arrival.size, sequence.size, position.size, appearances.size))
            safe = np.where(known, held, 0)
            if arrival.size:
                got_arrival = arrival[safe]
                got_sequence = sequence[safe]
                got_position = position[safe]
                got_appearances = appearances[safe]
            else:
                got_arrival = got_sequence = got_position = np.full(n, NOT_YET, dtype=np.int64)
                got_appearances = np.zeros(n, dtype=np.int8)
        finally:
            arrival = sequence = position = appearances = None
        arrived = known & (got_arrival != NOT_YET)
        shift = self.clock.shift_ns
        return [
            _int(np.where(arrived, got_arrival + shift, 0), ~arrived, pa.int64()),
            _int(np.where(arrived, got_sequence, 0), ~arrived, pa.int64()),
            _int(np.where(arrived, got_position, 0), ~arrived, pa.int32()),
            _int(np.where(known, got_appearances, 0), ~known, pa.int8()),
        ]


# ---------------------------------------------------------------------------------------------
# blocks


def _hash_bytes(value: str | bytes | None) -> bytes | None:
    if value is None:
        return None
    if isinstance(value, bytes | bytearray):
        return bytes(value) if len(value) == 32 else None
    text = value[2:] if value[:2] in ("0x", "0X") else value
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        return None
    return raw if len(raw) == 32 else None


def blocks_batch(
    records: Sequence[BlockRecord], *, run_id: str, edge_id: str, clock: ClockMap
) -> pa.RecordBatch:
    """The ``blocks`` rows of the blocks an edge observed (a few per second: plain Python is fine)."""
    shift = clock.shift_ns
    n = len(records)
    return pa.RecordBatch.from_arrays(
        [
            _constant(run_id, n),
            _constant(edge_id, n),
            pa.array([r.number for r in records], type=pa.int64()),
            pa.array([_hash_bytes(r.hash) for r in records], type=pa.binary(32)),
            pa.array([_hash_bytes(r.parent_hash) for r in records], type=pa.binary(32)),
            pa.array([r.timestamp for r in records], type=pa.int64()),
            pa.array([r.gas_used for r in records], type=pa.int64()),
            pa.array([r.gas_limit for r in records], type=pa.int64()),
            pa.array([r.tx_count for r in records], type=pa.int32()),
            pa.array(
                [
                    r.base_fee if r.base_fee is not None and r.base_fee <= _INT64_MAX else None
                    for r in records
                ],
                type=pa.int64(),
            ),
            pa.array([r.observed_ns + shift for r in records], type=pa.int64()),
        ],
        schema=BLOCKS,
    )


class _AppendOnlyCursor:
    """Emits what was appended to a growing list since the last call; subclasses turn it into Arrow."""

    def __init__(self, items: Sequence[Any], *, run_id: str, edge_id: str, clock: ClockMap) -> None:
        self.items = items
        self.run_id = run_id
        self.edge_id = edge_id
        self.clock = clock
        self._next = 0

    def poll(self) -> pa.RecordBatch | None:
        end = len(self.items)
        if end <= self._next:
            return None
        fresh = self.items[self._next : end]
        self._next = end
        return self._batch(fresh)

    def _batch(self, fresh: Sequence[Any]) -> pa.RecordBatch:
        raise NotImplementedError


class BlockCursor(_AppendOnlyCursor):
    """Emits the blocks appended to an edge's block list since the last call (blocks are final when seen)."""

    def _batch(self, fresh: Sequence[BlockRecord]) -> pa.RecordBatch:
        return blocks_batch(fresh, run_id=self.run_id, edge_id=self.edge_id, clock=self.clock)


# ---------------------------------------------------------------------------------------------
# events


class TelemetryEvent(NamedTuple):
    """One row of the ``events`` table before it becomes Arrow. ``t_ns`` is on the run clock.

    ``kind`` is an open vocabulary (see ``schema.EVENT_KINDS``); the other fields are filled when
    they apply: ``sequence`` (a feed sequence number), ``block_number``, ``tx_hash`` (32 bytes or
    0x-hex), ``value`` (a number the kind defines: a count, a rate, a duration in seconds) and
    ``detail`` (free text, or JSON when the kind has structure).
    """

    t_ns: int
    kind: str
    edge_id: str | None = None
    sequence: int | None = None
    block_number: int | None = None
    tx_hash: str | bytes | None = None
    value: float | None = None
    detail: str | None = None


def events_batch(run_id: str, events: Sequence[TelemetryEvent]) -> pa.RecordBatch:
    n = len(events)

    def labels(values: list[str | None]) -> pa.Array:
        return pa.array(values, type=pa.string()).dictionary_encode()

    return pa.RecordBatch.from_arrays(
        [
            _constant(run_id, n),
            pa.array([e.t_ns for e in events], type=pa.int64()),
            labels([e.kind for e in events]),
            labels([e.edge_id for e in events]),
            pa.array([e.sequence for e in events], type=pa.int64()),
            pa.array([e.block_number for e in events], type=pa.int64()),
            pa.array([_hash_bytes(e.tx_hash) for e in events], type=pa.binary(32)),
            pa.array([e.value for e in events], type=pa.float64()),
            pa.array([e.detail for e in events], type=pa.string()),
        ],
        schema=EVENTS,
    )


def feed_events(events: Iterable[Any], *, edge_id: str, clock: ClockMap) -> list[TelemetryEvent]:
    """Feed-client events (``FeedEvent`` objects or ``EdgeReport.feed_events`` tuples
    ``(kind, ns, detail, sequence)``) as ``feed_<kind>`` telemetry events on the run clock."""
    shift = clock.shift_ns
    converted = []
    for event in events:
        if isinstance(event, tuple):
            kind, ns, detail, sequence = event
        else:
            kind, ns, detail, sequence = event.kind, event.ns, event.detail, event.sequence
        converted.append(TelemetryEvent(ns + shift, f"feed_{kind}", edge_id, sequence, detail=detail or None))
    return converted


class FeedEventCursor(_AppendOnlyCursor):
    """Emits the feed-client events appended to a list since the last call (``FeedClient.events``)."""

    def _batch(self, fresh: Sequence[Any]) -> pa.RecordBatch:
        return events_batch(self.run_id, feed_events(fresh, edge_id=self.edge_id, clock=self.clock))


def plan_phase_events(plan: Mapping[str, Any], *, offset_ns: int = 0) -> list[TelemetryEvent]:
    """A ``phase_change`` event at the planned start of each phase of ``ScenarioPlan.to_dict()``,
    plus one named ``done`` at the end of sending (``value`` = the phase's target gas/s at its start)."""
    events = []
    phases = list(plan.get("phases") or ())
    for phase in phases:
        events.append(
            TelemetryEvent(
                round(float(phase["start"]) * 1e9) + offset_ns,
                "phase_change",
                value=float(phase["gas_from"]),
                detail=str(phase["name"]),
            )
        )
    if phases:
        end = round(float(phases[-1]["end"]) * 1e9) + offset_ns
        events.append(TelemetryEvent(end, "phase_change", value=0.0, detail="done"))
    return events


# ---------------------------------------------------------------------------------------------
# everything an edge streams


class EdgeTelemetry:
    """The three streams of one edge in one run, polled together: transactions, blocks, feed events.

    ``blocks`` is the edge's list of :class:`BlockRecord` (appended as blocks are seen) and
    ``feed_events`` the feed client's event list (or ``None`` without a feed), ``duplicates`` the
    edge's list of hashes it saw included a second time (``duplicate_inclusion`` events, stamped
    when polled); ``cursor_options`` go to :class:`TransactionCursor`. Call :meth:`frames` on the edge's event-loop thread about once a
    second and ``frames(final=True)`` once after the last receipt was fetched; hand each
    ``(table, frame)`` to the hive.
    """

    def __init__(
        self,
        log: TxLog,
        *,
        run_id: str,
        edge_id: str,
        clock: ClockMap,
        blocks: Sequence[BlockRecord],
        feed_events: Sequence[Any] | None = None,
        duplicates: Sequence[str] | None = None,
        max_frame_bytes: int = DEFAULT_FRAME_BYTES,
        **cursor_options: Any,
    ) -> None:
        self.transactions = TransactionCursor(
            log, run_id=run_id, edge_id=edge_id, clock=clock, **cursor_options
        )
        self.blocks = BlockCursor(blocks, run_id=run_id, edge_id=edge_id, clock=clock)
        self.feed_events = (
            FeedEventCursor(feed_events, run_id=run_id, edge_id=edge_id, clock=clock)
            if feed_events is not None
            else None
        )
        self.max_frame_bytes = max_frame_bytes
        self.run_id = run_id
        self.edge_id = edge_id
        self.clock = clock
        self.duplicates = duplicates
        self._duplicates_seen = 0

    def poll(
        self, *, now_ns: int | None = None, final: bool = False, rows: np.ndarray | None = None
    ) -> list[tuple[str, pa.RecordBatch]]:
        """``(table, batch)`` for each stream that has something new (blocks first, so a reader of
        the hive's files never sees a transaction's block missing for long).

        ``rows``: the transactions to stream, when the caller polled the cursor itself
        (:meth:`TransactionCursor.poll_rows`); else the cursor is polled here.
        """
        found: list[tuple[str, pa.RecordBatch]] = []
        blocks = self.blocks.poll()
        if blocks is not None:
            found.append(("blocks", blocks))
        if self.feed_events is not None:
            events = self.feed_events.poll()
            if events is not None:
                found.append(("events", events))
        if self.duplicates is not None and len(self.duplicates) > self._duplicates_seen:
            at = self.clock.to_run(time.monotonic_ns() if now_ns is None else now_ns)
            fresh = self.duplicates[self._duplicates_seen :]
            self._duplicates_seen += len(fresh)
            noticed = [TelemetryEvent(at, "duplicate_inclusion", self.edge_id, tx_hash=h) for h in fresh]
            found.append(("events", events_batch(self.run_id, noticed)))
        if rows is None:
            transactions = self.transactions.poll(now_ns=now_ns, final=final)
        else:
            transactions = self.transactions.batch(rows) if rows.size else None
        if transactions is not None:
            found.append(("transactions", transactions))
        return found

    def frames(
        self, *, now_ns: int | None = None, final: bool = False, rows: np.ndarray | None = None
    ) -> list[tuple[str, bytes]]:
        """:meth:`poll` as IPC frames of at most ``max_frame_bytes``. The batches are immutable
        copies: to spare the event loop, poll on it and encode them in another thread instead."""
        return [
            (table, frame)
            for table, batch in self.poll(now_ns=now_ns, final=final, rows=rows)
            for frame in to_ipc_frames(batch, max_bytes=self.max_frame_bytes)
        ]


#: The run-clock columns of each streamed table (what :func:`rebase` shifts).
RUN_CLOCK_COLUMNS: dict[str, tuple[str, ...]] = {
    "transactions": ("scheduled_ns", "sent_ns", "accepted_ns", "included_ns", "feed_arrival_ns"),
    "blocks": ("observed_ns",),
    "events": ("t_ns",),
}


def rebase(table: str, batch: pa.RecordBatch, shift_ns: int) -> pa.RecordBatch:
    """``batch`` with every run-clock column of ``table`` moved by ``shift_ns`` (nulls stay null).

    For a hive that lets edges stream on their own clock (``ClockMap.local``) and places them on the
    run clock as frames arrive: ``shift_ns`` is then the edge's start skew.
    """
    if shift_ns == 0:
        return batch
    import pyarrow.compute as pc

    columns = list(batch.columns)
    for name in RUN_CLOCK_COLUMNS[table]:
        index = batch.schema.get_field_index(name)
        columns[index] = pc.add(columns[index], pa.scalar(shift_ns, pa.int64()))
    return pa.RecordBatch.from_arrays(columns, schema=batch.schema)


# ---------------------------------------------------------------------------------------------
# IPC frames


def to_ipc(batch: pa.RecordBatch) -> bytes:
    """One self-contained Arrow IPC stream (schema, dictionaries, the batch), as bytes.

    Self-contained on purpose: frames may be lost or reordered across edges, and each one decodes on
    its own. Use :func:`to_ipc_frames` to keep frames small.
    """
    sink = io.BytesIO()
    with pa.ipc.new_stream(sink, batch.schema) as writer:
        writer.write_batch(batch)
    return sink.getvalue()


def to_ipc_frames(batch: pa.RecordBatch, *, max_bytes: int = DEFAULT_FRAME_BYTES) -> list[bytes]:
    """``batch`` as IPC frames of at most ``max_bytes`` each (split by rows; a single row that does
    not fit still makes a frame of its own)."""
    if batch.num_rows == 0:
        return []
    per_row = max(batch.nbytes / batch.num_rows, 1.0)
    step = max(1, int(max_bytes * 0.7 / per_row))
    frames: list[bytes] = []
    pending = [(start, min(step, batch.num_rows - start)) for start in range(0, batch.num_rows, step)]
    while pending:  # bounded: every split halves a slice, and one-row slices are always accepted
        start, length = pending.pop(0)
        frame = to_ipc(batch.slice(start, length))
        if len(frame) <= max_bytes or length == 1:
            frames.append(frame)
            continue
        half = length // 2
        pending[0:0] = [(start, half), (start + half, length - half)]
    return frames


def from_ipc(frame: bytes | memoryview | pa.Buffer) -> pa.RecordBatch:
    """The batch in an IPC frame made by :func:`to_ipc` (several batches in one stream are merged)."""
    with pa.ipc.open_stream(frame) as reader:
        batches = list(reader)
        schema = reader.schema
    if len(batches) == 1:
        return batches[0]
    if not batches:
        return _empty_batch(schema)
    table = pa.Table.from_batches(batches, schema=schema).unify_dictionaries().combine_chunks()
    return table.to_batches()[0]


def frames_to_columns(
    frames: Iterable[bytes | memoryview | pa.Buffer],
    schema: pa.Schema,
    *,
    names: Sequence[str] | None = None,
    sort_by: str | None = None,
    null: int = NOT_YET,
) -> dict[str, np.ndarray]:
    """The rows of one table's IPC frames (as :func:`to_ipc_frames` made them, in any order) as numpy
    columns, for code that reads streamed rows outside the hive (benchmarks, tests).

    Integer columns come back as ``int64`` with nulls as ``null`` (the TxLog's ``NOT_YET`` by
    default, so arithmetic written against the log's columns reads them alike), booleans as
    ``bool`` (null as ``False``), anything else (dictionary strings, hashes) as an object array
    with ``None`` for null. ``schema`` (e.g. ``schema.TRANSACTIONS``) types the columns when there
    are no frames; ``names`` picks columns (all of them by default); ``sort_by`` orders the rows by
    one column (``"row"`` for transactions: frames arrive in the order rows became final).
    """
    batches = [from_ipc(frame) for frame in frames]
    table = pa.Table.from_batches(batches) if batches else schema.empty_table()
    if sort_by is not None and table.num_rows:
        # Each frame carries its own dictionaries; one per column makes the sort's take cheap.
        table = table.unify_dictionaries().sort_by(sort_by)
    columns: dict[str, np.ndarray] = {}
    for name in names if names is not None else table.column_names:
        values = table.column(name)
        kind = values.type
        if pa.types.is_integer(kind):
            columns[name] = np.asarray(values.fill_null(null).to_numpy(), dtype=np.int64)
        elif pa.types.is_boolean(kind):
            columns[name] = np.asarray(values.fill_null(False).to_numpy(), dtype=bool)
        else:
            if pa.types.is_dictionary(kind):
                values = values.cast(kind.value_type)
            columns[name] = np.array(values.to_pylist(), dtype=object)
    return columns


def _empty_batch(schema: pa.Schema) -> pa.RecordBatch:
    return pa.RecordBatch.from_arrays([pa.array([], type=field.type) for field in schema], schema=schema)


def json_detail(value: Any) -> str:
    """Compact JSON for ``detail``/``*_json`` columns: keys in their original order (summaries list
    errors largest first, evidence in the order the invariant wrote it), anything else as a string."""
    return json.dumps(value, separators=(",", ":"), default=str)
