"""The compact parts a digest is built from: latency sketches and the first offenders by row.

Shared by the run's digest (``digest.py``) and the per-fault tallies (``fault_tally.py``).
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from pytest_gashammer.results import LatencyStats, nearest_rank

#: Offending transactions kept by name per kind of finding; the counts stay exact.
EVIDENCE_LIMIT = 20
#: Latency samples kept exactly; past it a sketch holds them (see :class:`LatencySketch`).
EXACT_SAMPLES = 100_000
#: The sketch's relative accuracy: a percentile read from it is within this share of a sample
#: whose rank is the percentile's (DDSketch's guarantee).
SKETCH_RELATIVE_ACCURACY = 0.005


class LatencySketch:
    """Latency samples in seconds: exact up to :data:`EXACT_SAMPLES`, then a DDSketch.

    A short run's percentiles are exact nearest-rank figures; a soak's are DDSketch estimates
    within :data:`SKETCH_RELATIVE_ACCURACY` (relative) of the true sample at that rank. The count
    and the maximum stay exact either way. Mergeable across edges (:meth:`merge`).
    """

    def __init__(self, exact_limit: int = EXACT_SAMPLES) -> None:
        self.exact_limit = exact_limit
        self._exact: list[np.ndarray] = []
        self._exact_count = 0
        self._sketch: Any = None
        self.count = 0
        self.max = -math.inf

    @property
    def exact(self) -> bool:
        """Whether every sample is still held exactly."""
        return self._sketch is None

    def add(self, samples: np.ndarray) -> None:
        if not samples.size:
            return
        samples = np.asarray(samples, dtype=np.float64)
        self.count += int(samples.size)
        self.max = max(self.max, float(samples.max()))
        if self._sketch is None:
            self._exact.append(samples.copy())
            self._exact_count += int(samples.size)
            if self._exact_count > self.exact_limit:
                self._fold()
        else:
            self._sketch_add(samples)

    def _fold(self) -> None:
        from ddsketch import DDSketch

        self._sketch = DDSketch(relative_accuracy=SKETCH_RELATIVE_ACCURACY)
        for part in self._exact:
            self._sketch_add(part)
        self._exact = []
        self._exact_count = 0

    def _sketch_add(self, samples: np.ndarray) -> None:
        # Equal samples (latencies on one block share a value) go in once, weighted.
        values, counts = np.unique(samples, return_counts=True)
        add = self._sketch.add
        for value, count in zip(values.tolist(), counts.tolist(), strict=True):
            add(value, count)

    def merge(self, other: LatencySketch) -> None:
        if other.count == 0:
            return
        self.count += other.count
        self.max = max(self.max, other.max)
        if other._sketch is None and self._sketch is None:
            self._exact.extend(other._exact)
            self._exact_count += other._exact_count
            if self._exact_count > self.exact_limit:
                self._fold()
            return
        if self._sketch is None:
            self._fold()
        if other._sketch is None:
            for part in other._exact:
                self._sketch_add(part)
        else:
            self._sketch.merge(other._sketch)

    def stats(self) -> LatencyStats:
        if self.count == 0:
            return LatencyStats.of([])
        if self._sketch is None:
            ordered = np.sort(np.concatenate(self._exact))
            return LatencyStats(
                nearest_rank(ordered, 0.50),
                nearest_rank(ordered, 0.90),
                nearest_rank(ordered, 0.99),
                float(ordered[-1]),
                int(ordered.size),
            )
        pick = self._sketch.get_quantile_value
        # A sketch's estimate never exceeds the largest sample, which is known exactly.
        return LatencyStats(
            min(float(pick(0.50)), self.max),
            min(float(pick(0.90)), self.max),
            min(float(pick(0.99)), self.max),
            self.max,
            self.count,
        )

    def counts_at_or_below(self, bounds: Sequence[float]) -> tuple[list[int], float]:
        """How many samples are at or below each of ``bounds`` (ascending), and their sum: a
        histogram's cumulative buckets. Exact while the samples are; from the sketch's bins after."""
        if self.count == 0:
            return [0] * len(bounds), 0.0
        if self._sketch is None:
            ordered = np.sort(np.concatenate(self._exact))
            below = np.searchsorted(ordered, np.asarray(bounds, dtype=np.float64), side="right")
            return [int(value) for value in below], float(ordered.sum())
        store, value_of = self._sketch._store, self._sketch._mapping.value
        weights = [
            (value_of(store.offset + index), weight) for index, weight in enumerate(store.bins) if weight
        ]
        zero = self._sketch._zero_count
        counts = [
            int(round(zero + sum(weight for value, weight in weights if value <= bound))) for bound in bounds
        ]
        return counts, float(self._sketch.sum)

    def to_data(self) -> dict[str, Any]:
        data: dict[str, Any] = {"count": self.count, "max": self.max, "limit": self.exact_limit}
        if self._sketch is None:
            data["exact"] = np.concatenate(self._exact).tobytes() if self._exact else b""
        else:
            # The sketch as (bin key, weight) pairs of its positive store; latencies are never negative.
            store = self._sketch._store
            data["bins"] = [
                (store.offset + index, weight) for index, weight in enumerate(store.bins) if weight
            ]
            data["zero"] = self._sketch._zero_count
        return data

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> LatencySketch:
        sketch = cls(data.get("limit", EXACT_SAMPLES))
        sketch.count = data["count"]
        sketch.max = data["max"]
        if "exact" in data:
            values = np.frombuffer(data["exact"], dtype=np.float64)
            sketch._exact = [values.copy()] if values.size else []
            sketch._exact_count = int(values.size)
            return sketch
        from ddsketch import DDSketch

        sketch._sketch = DDSketch(relative_accuracy=SKETCH_RELATIVE_ACCURACY)
        value_of = sketch._sketch._mapping.value
        for key, weight in data["bins"]:
            sketch._sketch.add(value_of(key), weight)
        if data.get("zero"):
            sketch._sketch.add(0.0, data["zero"])
        return sketch


class FirstByRow:
    """The :data:`EVIDENCE_LIMIT` offending items with the lowest rows, whatever order rows became
    final in: the evidence names the run's first offenders, as a pass over every row would."""

    def __init__(self, pairs: Iterable[Sequence[Any]] = ()) -> None:
        self.pairs: list[tuple[int, str]] = sorted((int(row), str(item)) for row, item in pairs)

    def add(self, row: int, item: str) -> None:
        if len(self.pairs) >= EVIDENCE_LIMIT and row > self.pairs[-1][0]:
            return
        bisect.insort(self.pairs, (row, item))
        del self.pairs[EVIDENCE_LIMIT:]

    def room_below(self) -> int:
        """Rows above this one cannot enter (any row can while there is room)."""
        return self.pairs[-1][0] if len(self.pairs) >= EVIDENCE_LIMIT else 2**62

    @property
    def items(self) -> list[str]:
        return [item for _, item in self.pairs]

    def to_data(self) -> list[list[Any]]:
        return [[row, item] for row, item in self.pairs]


def lowest_rows(mask: np.ndarray, rows: np.ndarray, kept: FirstByRow) -> list[int]:
    """Positions of ``mask`` whose rows could still be among ``kept``'s first, lowest rows first."""
    positions = np.flatnonzero(mask & (rows <= kept.room_below()))
    if positions.size > EVIDENCE_LIMIT:
        positions = positions[np.argsort(rows[positions], kind="stable")[:EVIDENCE_LIMIT]]
    return positions.tolist()
