"""What an edge keeps of its final rows for each fault on the run's timeline, and the run's flow.

The hive knows when each fault began and ended; an edge knows its transactions. Each edge digests
its rows against the plan's fault windows (:class:`FaultTally`) and into a flow of quarter-second
slots (:class:`Flow`), so the hive can say per fault: the inclusion p99 before, during and after,
how many transactions it delayed and lost, and when the backlog drained, without rows crossing the
wire. Every part merges across edges.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from pytest_gashammer.results import FAULT_LOST_LOOKBACK_S, FAULT_WINDOW_MIN_S
from pytest_gashammer.telemetry.sketch import FirstByRow, LatencySketch, lowest_rows

#: Latency histogram of the transactions in flight during a fault: log-spaced bins from 1 ms to
#: 1000 s (about 6 % wide each), enough to count those above a threshold read after the run.
HISTOGRAM_EDGES = np.logspace(-3, 3, 241)
#: The flow's slot, in seconds: fine enough to place a drained backlog within a block or two.
FLOW_SLOT_S = 0.25


def during_end(start: float, end: float) -> float:
    """Where a fault's "during" window ends: its end, or a second after an instant fault's begin."""
    return max(end, start + 1.0)


class FaultTally:
    """One fault window's share of an edge's rows (see the module docstring)."""

    def __init__(self, start: float, end: float) -> None:
        self.start = float(start)
        self.end = float(end)
        self.before = LatencySketch()
        self.during = LatencySketch()
        self.after = LatencySketch()
        self.in_flight = np.zeros(HISTOGRAM_EDGES.size + 1, dtype=np.int64)
        self.lost = 0
        self.lost_first = FirstByRow()

    @property
    def window(self) -> float:
        return max(during_end(self.start, self.end) - self.start, FAULT_WINDOW_MIN_S)

    def add(
        self,
        rows: np.ndarray,
        intended: np.ndarray,
        latency: np.ndarray,
        included_at: np.ndarray,
        included: np.ndarray,
        lost: np.ndarray,
        hash_of: Any,
    ) -> None:
        """``intended`` and ``included_at`` in run-clock seconds; ``latency`` in seconds."""
        start, stop = self.start, during_end(self.start, self.end)
        for sketch, low, high in (
            (self.before, start - self.window, start),
            (self.during, start, stop),
            (self.after, stop, stop + self.window),
        ):
            chosen = included & (intended >= low) & (intended < high)
            if sketch is self.before:
                # The healthy latency: what the fault caught in flight belongs to "during".
                chosen &= included_at < start
            sketch.add(latency[chosen])
        flying = included & (intended < stop) & (included_at >= start)
        if flying.any():
            bins = np.searchsorted(HISTOGRAM_EDGES, latency[flying], side="right")
            self.in_flight += np.bincount(bins, minlength=self.in_flight.size)
        lost_here = lost & (intended >= start - FAULT_LOST_LOOKBACK_S) & (intended < stop)
        self.lost += int(lost_here.sum())
        for position in lowest_rows(lost_here, rows, self.lost_first):
            self.lost_first.add(int(rows[position]), hash_of(position))

    def delayed_beyond(self, threshold: float) -> int:
        """Transactions in flight during the fault whose latency exceeded ``threshold`` seconds
        (to the histogram's resolution: the bin holding the threshold counts in full above it)."""
        if not math.isfinite(threshold):
            return 0
        first = int(np.searchsorted(HISTOGRAM_EDGES, threshold, side="right"))
        return int(self.in_flight[first:].sum())

    def merge(self, other: FaultTally) -> None:
        self.before.merge(other.before)
        self.during.merge(other.during)
        self.after.merge(other.after)
        self.in_flight += other.in_flight
        self.lost += other.lost
        for row, item in other.lost_first.pairs:
            self.lost_first.add(row, item)

    def to_data(self) -> dict[str, Any]:
        return {
            "start": self.start,
            "end": self.end,
            "before": self.before.to_data(),
            "during": self.during.to_data(),
            "after": self.after.to_data(),
            "in_flight": self.in_flight.tolist(),
            "lost": self.lost,
            "lost_first": self.lost_first.to_data(),
        }

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> FaultTally:
        tally = cls(data["start"], data["end"])
        tally.before = LatencySketch.from_data(data["before"])
        tally.during = LatencySketch.from_data(data["during"])
        tally.after = LatencySketch.from_data(data["after"])
        tally.in_flight = np.asarray(data["in_flight"], dtype=np.int64)
        tally.lost = int(data["lost"])
        tally.lost_first = FirstByRow(data["lost_first"])
        return tally


class Flow:
    """Per quarter-second slot of the run clock: transactions that will be included, by intended
    slot; and those included, with their gas, by inclusion slot. The backlog at a slot's end is
    the running difference of the first two."""

    def __init__(self) -> None:
        self.slots: dict[int, list[float]] = {}

    def add(
        self, intended: np.ndarray, included_at: np.ndarray, gas: np.ndarray, included: np.ndarray
    ) -> None:
        if not included.any():
            return
        self._count(np.floor(intended[included] / FLOW_SLOT_S).astype(np.int64), None, 0)
        self._count(np.floor(included_at[included] / FLOW_SLOT_S).astype(np.int64), gas[included], 1)

    def _count(self, slots: np.ndarray, gas: np.ndarray | None, field: int) -> None:
        keys, inverse = np.unique(slots, return_inverse=True)
        counts = np.bincount(inverse)
        sums = np.bincount(inverse, weights=gas) if gas is not None else np.zeros(keys.size)
        for key, count, total in zip(keys.tolist(), counts.tolist(), sums.tolist(), strict=True):
            slot = self.slots.get(key)
            if slot is None:
                slot = self.slots[key] = [0.0, 0.0, 0.0]
            slot[field] += count
            if gas is not None:
                slot[2] += total

    def merge(self, other: Flow) -> None:
        for key, (intended, included, gas) in other.slots.items():
            slot = self.slots.setdefault(key, [0.0, 0.0, 0.0])
            slot[0] += intended
            slot[1] += included
            slot[2] += gas

    def series(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(slot start times, backlog at each slot's end, included gas per slot)``, gap-free."""
        if not self.slots:
            empty = np.zeros(0)
            return empty, empty, empty
        low, high = min(self.slots), max(self.slots)
        size = high - low + 1
        intended = np.zeros(size)
        included = np.zeros(size)
        gas = np.zeros(size)
        for key, (sent, landed, landed_gas) in self.slots.items():
            intended[key - low] = sent
            included[key - low] = landed
            gas[key - low] = landed_gas
        times = (np.arange(size) + low) * FLOW_SLOT_S
        return times, np.cumsum(intended) - np.cumsum(included), gas

    def to_data(self) -> dict[int, list[float]]:
        return {key: list(slot) for key, slot in self.slots.items()}

    @classmethod
    def from_data(cls, data: dict[Any, Sequence[float]]) -> Flow:
        flow = cls()
        flow.slots = {int(key): [float(value) for value in slot] for key, slot in data.items()}
        return flow
