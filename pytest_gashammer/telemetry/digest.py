"""What an edge keeps of its final rows: counts, per-second figures, latency sketches and the
oracle's compact state, so the rows themselves can be forgotten.

An edge feeds every row to :meth:`RunDigest.add` once, when it becomes final (the telemetry
cursor's rule, ``telemetry/stream.py``), then drops it from its :class:`~.records.TxLog`. The
digest's memory grows with the run's seconds, senders, templates and blocks, never with its
transactions: per-second buckets, one nonce range list per sender, one gas sum per block, the
first :data:`EVIDENCE_LIMIT` offending transactions of each kind with exact counts, and latency
samples folded into a sketch past :data:`EXACT_SAMPLES`.

The oracle (``oracle/invariants.py``) and the result (``hive/aggregate.py``) read digests, never
rows. A digest is plain data on the wire (:meth:`RunDigest.to_data`).
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from pytest_gashammer.chain.keccak import KeccakStream
from pytest_gashammer.telemetry.fault_tally import FaultTally, Flow
from pytest_gashammer.telemetry.records import NOT_YET, STATUS_REJECTED, TxLog
from pytest_gashammer.telemetry.sketch import (
    EVIDENCE_LIMIT,
    EXACT_SAMPLES,
    SKETCH_RELATIVE_ACCURACY,
    FirstByRow,
    LatencySketch,
    lowest_rows,
)

__all__ = [
    "BUCKET_FIELDS",
    "EVIDENCE_LIMIT",
    "EXACT_SAMPLES",
    "SKETCH_RELATIVE_ACCURACY",
    "FirstByRow",
    "LatencySketch",
    "NonceRanges",
    "RunDigest",
]

#: Per-second bucket fields, in their array order.
BUCKET_FIELDS = ("offered_gas", "offered_tx", "included_gas", "included_tx")
#: What a digest counts per template: transactions and the included ones' gas (used where known).
TEMPLATE_FIELDS = ("sent", "accepted", "rejected", "included", "included_gas")
#: The template name of the self-transfers that fill nonce gaps (template index -1).
FILLER = "nonce-gap filler"


class NonceRanges:
    """One sender's included nonces as sorted half-open ranges, and the nonces included twice."""

    def __init__(self) -> None:
        self.ranges: list[list[int]] = []
        self.reused: list[int] = []
        self.reused_count = 0

    def add(self, nonce: int) -> None:
        ranges = self.ranges
        if ranges and ranges[-1][1] == nonce:  # the common case: the next nonce in order
            ranges[-1][1] = nonce + 1
            if len(ranges) > 1 and ranges[-2][1] == ranges[-1][0]:
                ranges[-2][1] = ranges.pop()[1]
            return
        index = bisect.bisect_right(ranges, [nonce, math.inf]) - 1
        if index >= 0 and ranges[index][0] <= nonce < ranges[index][1]:
            self.reused_count += 1
            bisect.insort(self.reused, nonce)  # the lowest, whatever order they came in
            del self.reused[EVIDENCE_LIMIT:]
            return
        if index >= 0 and ranges[index][1] == nonce:
            ranges[index][1] = nonce + 1
        else:
            index += 1
            ranges.insert(index, [nonce, nonce + 1])
        following = index + 1
        if following < len(ranges) and ranges[following][0] == ranges[index][1]:
            ranges[index][1] = ranges.pop(following)[1]

    @property
    def highest(self) -> int:
        return self.ranges[-1][1] - 1 if self.ranges else -1

    def missing(self, start: int, foreign: Iterable[int] = ()) -> list[int]:
        """Nonces from ``start`` to the highest included one that were never included (less ``foreign``)."""
        skip = set(foreign)
        holes: list[int] = []
        expected = start
        for low, high in self.ranges:
            holes.extend(n for n in range(expected, low) if n not in skip)
            expected = max(expected, high)
        return holes


class RunDigest:
    """An edge's final rows, digested (see the module docstring).

    ``origin_ns`` is the edge's monotonic time of the plan's t=0; ``sustain`` the sustain phase
    as ``(start, end)`` seconds; ``inclusion_timeout`` the marker's bound for ``late``; the
    template lists are indexed like the log's ``template`` column (-1 is a nonce-gap filler).
    """

    def __init__(
        self,
        *,
        origin_ns: int,
        sustain: tuple[float, float],
        inclusion_timeout: float,
        templates: Sequence[str],
        expected_status: Sequence[int],
        gas_estimate: Sequence[float],
        gas_tolerance: Sequence[float],
        fault_windows: Sequence[Sequence[float]] = (),
    ) -> None:
        """``fault_windows``: each fault's planned ``(start, end)`` on the run clock, in the plan's order."""
        self.origin_ns = origin_ns
        self.sustain = (float(sustain[0]), float(sustain[1]))
        self.inclusion_timeout = float(inclusion_timeout)
        self.templates = list(templates)
        self.expected_status = list(expected_status)
        self.gas_estimate = [float(value) for value in gas_estimate]
        self.gas_tolerance = [float(value) for value in gas_tolerance]
        self.rows = 0
        self.sent = self.accepted = self.rejected = self.included = self.lost = 0
        #: Among sent rows: accepted, and refused without being accepted (the acceptance verdict's view).
        self.sent_accepted = self.sent_rejected = 0
        self.late = 0
        self.lost_first = FirstByRow()
        self.late_first = FirstByRow()
        self.nonces: dict[int, NonceRanges] = {}
        self.receipts_with_status = 0
        self.wrong_status = 0
        self.wrong_status_first = FirstByRow()
        self.gas_measured = 0
        self.gas_outside = 0
        self.gas_outside_first = FirstByRow()
        #: Per block number: ``[receipt gas, receipts]`` of the rows whose receipt was checked.
        self.block_receipts: dict[int, list[int]] = {}
        #: Included rows without a checked receipt, and included rows that moved value (not fillers).
        self.included_without_receipt = 0
        self.included_moving_value = 0
        #: Per second of the run clock: :data:`BUCKET_FIELDS`.
        self.buckets: dict[int, list[float]] = {}
        #: Per template name (fillers: :data:`FILLER`): :data:`TEMPLATE_FIELDS`.
        self.by_template: dict[str, list[int]] = {}
        self.sustain_offered_gas = 0.0
        self.sustain_offered_tx = 0
        self.sustain_accepted_gas = 0.0
        self.sustain_included_gas = 0.0
        self.sustain_included_tx = 0
        self.first_sustain_inclusion = math.inf
        self.last_sustain_inclusion = -math.inf
        self.accept_latency = LatencySketch()
        self.inclusion_latency = LatencySketch()
        self.feed_latency = LatencySketch()
        #: Highest accepted (or included) nonce per sender, for the session's nonce memory.
        self.highest_taken: dict[int, int] = {}
        self._order = KeccakStream()
        self._ordered = 0
        self._tx_digest: str | None = None
        #: Per fault of the plan, what its window did to these rows; and the run's flow (backlog).
        self.faults = [FaultTally(start, end) for start, end in fault_windows]
        self.flow = Flow()

    # -- the rows ------------------------------------------------------------------------------
    def add(self, log: TxLog, rows: np.ndarray, feed_arrivals: np.ndarray | None = None) -> None:
        """Digest ``rows`` (row numbers, all held by ``log``), each exactly once, when final.

        ``feed_arrivals`` gives each row's feed arrival (edge monotonic ns, ``NOT_YET`` if none).
        """
        if not rows.size:
            return
        index = rows - log.base

        def column(name: str) -> np.ndarray:
            values = getattr(log, name)
            return np.frombuffer(values, dtype=np.dtype(values.typecode))[index]

        template = column("template").astype(np.int64)
        sender = column("sender").astype(np.int64)
        nonce = column("nonce")
        planned = column("gas_planned")
        used = column("gas_used")
        status = column("receipt_status")
        state = column("state")
        intended = column("intended_ns")
        sent_ns = column("sent_ns")
        accepted_ns = column("accepted_ns")
        included_ns = column("included_ns")
        block = column("block_number")
        flat = np.frombuffer(log.hashes, dtype=np.uint8).reshape(-1, 32)[index]

        def hash_of(position: int) -> str:
            return "0x" + flat[position].tobytes().hex()

        self.rows += int(rows.size)
        sent = sent_ns != NOT_YET
        included = included_ns != NOT_YET
        accepted = (accepted_ns != NOT_YET) | included
        rejected = state == STATUS_REJECTED
        self.sent += int(sent.sum())
        self.accepted += int(accepted.sum())
        self.rejected += int(rejected.sum())
        self.included += int(included.sum())
        self.sent_accepted += int((sent & accepted).sum())
        self.sent_rejected += int((sent & ~accepted & rejected).sum())

        lost = accepted & ~included
        self.lost += int(lost.sum())
        self._name(lost, rows, self.lost_first, hash_of)
        late = included & (included_ns - sent_ns > round(self.inclusion_timeout * 1e9))
        self.late += int(late.sum())
        self._name(late, rows, self.late_first, hash_of)

        for position in np.flatnonzero(included).tolist():
            ranges = self.nonces.get(int(sender[position]))
            if ranges is None:
                ranges = self.nonces[int(sender[position])] = NonceRanges()
            ranges.add(int(nonce[position]))
        taken = np.flatnonzero(accepted)
        if taken.size:
            for who, highest in _max_by(sender[taken], nonce[taken]):
                if highest > self.highest_taken.get(who, -1):
                    self.highest_taken[who] = highest

        self._receipts(rows, template, status, used, block, included, hash_of)

        gas = np.where(used != NOT_YET, used, planned).astype(np.float64)
        self._by_template(template, (sent, accepted, rejected, included), gas)
        seconds_intended = np.floor((intended - self.origin_ns) / 1e9).astype(np.int64)
        offered = template >= 0
        self._bucket(seconds_intended[offered], planned[offered].astype(np.float64), 0)
        included_at = (included_ns - self.origin_ns) / 1e9
        self._bucket(np.floor(included_at[included]).astype(np.int64), gas[included], 2)

        t = (intended - self.origin_ns) / 1e9
        start, end = self.sustain
        sustain = offered & (t >= start) & (t < end)
        self.sustain_offered_gas += float(planned[sustain].sum())
        self.sustain_offered_tx += int(sustain.sum())
        self.sustain_accepted_gas += float(planned[sustain & accepted].sum())
        answered = sustain & (accepted_ns != NOT_YET)
        self.accept_latency.add((accepted_ns[answered] - intended[answered]) / 1e9)
        landed = sustain & included
        self.inclusion_latency.add((included_ns[landed] - intended[landed]) / 1e9)
        if landed.any():
            self.first_sustain_inclusion = min(self.first_sustain_inclusion, float(included_at[landed].min()))
            self.last_sustain_inclusion = max(self.last_sustain_inclusion, float(included_at[landed].max()))
        self.sustain_included_gas += float(gas[landed].sum())
        self.sustain_included_tx += int(landed.sum())
        if feed_arrivals is not None:
            fed = sustain & (feed_arrivals != NOT_YET)
            self.feed_latency.add((feed_arrivals[fed] - intended[fed]) / 1e9)
        self.flow.add(t, included_at, gas, included)
        if self.faults:
            latency = (included_ns - intended) / 1e9
            for tally in self.faults:
                tally.add(rows, t, latency, included_at, included, lost, hash_of)

    def _by_template(self, template: np.ndarray, masks: tuple[np.ndarray, ...], gas: np.ndarray) -> None:
        """Add these rows to :attr:`by_template`: one bincount per figure (index -1, a filler, is 0)."""
        kinds = len(self.templates) + 1
        shifted = template + 1
        figures = [np.bincount(shifted[mask], minlength=kinds) for mask in masks]
        figures.append(np.bincount(shifted[masks[3]], weights=gas[masks[3]], minlength=kinds))
        for kind in np.flatnonzero(np.add.reduce(figures)).tolist():
            name = self.templates[kind - 1] if kind else FILLER
            counts = self.by_template.setdefault(name, [0] * len(TEMPLATE_FIELDS))
            for field, figure in enumerate(figures):
                counts[field] += int(figure[kind])

    def _receipts(
        self,
        rows: np.ndarray,
        template: np.ndarray,
        status: np.ndarray,
        used: np.ndarray,
        block: np.ndarray,
        included: np.ndarray,
        hash_of: Any,
    ) -> None:
        checked = status != NOT_YET
        self.receipts_with_status += int(checked.sum())
        expected = np.ones(template.size, dtype=np.int64)
        known = template >= 0
        if known.any():
            expected[known] = np.asarray(self.expected_status, dtype=np.int64)[template[known]]
        wrong = checked & (status != expected)
        self.wrong_status += int(wrong.sum())
        for position in lowest_rows(wrong, rows, self.wrong_status_first):
            kind = int(template[position])
            name = self.templates[kind] if kind >= 0 else "nonce-gap filler"
            self.wrong_status_first.add(
                int(rows[position]),
                f"{hash_of(position)} ({name}: status {int(status[position])}, expected {int(expected[position])})",
            )

        measured = known & (used != NOT_YET)
        self.gas_measured += int(measured.sum())
        if measured.any():
            estimate = np.zeros(template.size)
            tolerance = np.zeros(template.size)
            estimate[measured] = np.asarray(self.gas_estimate)[template[measured]]
            tolerance[measured] = np.asarray(self.gas_tolerance)[template[measured]]
            outside = measured & (np.abs(used - estimate) > tolerance * estimate + 1e-9)
            self.gas_outside += int(outside.sum())
            for position in lowest_rows(outside, rows, self.gas_outside_first):
                kind = int(template[position])
                self.gas_outside_first.add(
                    int(rows[position]),
                    f"{hash_of(position)} ({self.templates[kind]}: used {int(used[position]):,}, "
                    f"model {estimate[position]:,.0f} ±{tolerance[position]:.0%})",
                )

        with_receipt = (used != NOT_YET) & (block != NOT_YET)
        if with_receipt.any():
            numbers, inverse = np.unique(block[with_receipt], return_inverse=True)
            sums = np.bincount(inverse, weights=used[with_receipt].astype(np.float64))
            counts = np.bincount(inverse)
            for number, gas_sum, count in zip(numbers.tolist(), sums.tolist(), counts.tolist(), strict=True):
                entry = self.block_receipts.setdefault(number, [0, 0])
                entry[0] += int(round(gas_sum))
                entry[1] += count
        self.included_without_receipt += int((included & (used == NOT_YET)).sum())
        self.included_moving_value += int((included & (template >= 0)).sum())

    def _bucket(self, seconds: np.ndarray, gas: np.ndarray, first_field: int) -> None:
        if not seconds.size:
            return
        keys, inverse = np.unique(seconds, return_inverse=True)
        gas_sums = np.bincount(inverse, weights=gas)
        counts = np.bincount(inverse)
        for key, gas_sum, count in zip(keys.tolist(), gas_sums.tolist(), counts.tolist(), strict=True):
            bucket = self.buckets.get(key)
            if bucket is None:
                bucket = self.buckets[key] = [0.0, 0.0, 0.0, 0.0]
            bucket[first_field] += gas_sum
            bucket[first_field + 1] += count

    @staticmethod
    def _name(mask: np.ndarray, rows: np.ndarray, kept: FirstByRow, hash_of: Any) -> None:
        for position in lowest_rows(mask, rows, kept):
            kept.add(int(rows[position]), hash_of(position))

    # -- evidence as lists, first offenders first ------------------------------------------------
    @property
    def lost_hashes(self) -> list[str]:
        return self.lost_first.items

    @property
    def late_hashes(self) -> list[str]:
        return self.late_first.items

    @property
    def wrong_status_items(self) -> list[str]:
        return self.wrong_status_first.items

    @property
    def gas_outside_items(self) -> list[str]:
        return self.gas_outside_first.items

    # -- the run's transactions in order -----------------------------------------------------------
    def absorb_order(self, log: TxLog, end: int) -> None:
        """Fold the hashes of rows up to ``end`` (exclusive, all held) into the run's transaction digest.

        Called before rows are forgotten and once at the end: the digest covers every row in row
        order, whenever the rows were forgotten.
        """
        if end <= self._ordered:
            return
        first = self._ordered - log.base
        self._order.update(bytes(log.hashes[first * 32 : (end - log.base) * 32]))
        self._ordered = end

    def close_order(self) -> None:
        self._tx_digest = "0x" + self._order.digest().hex()

    @property
    def tx_digest(self) -> str:
        """Keccak-256 over every row's hash in row order (after :meth:`close_order`)."""
        if self._tx_digest is None:
            raise RuntimeError("RunDigest.tx_digest read before close_order()")
        return self._tx_digest

    # -- plain data --------------------------------------------------------------------------------
    _PLAIN = (
        "origin_ns", "sustain", "inclusion_timeout", "templates", "expected_status", "gas_estimate",
        "gas_tolerance", "rows", "sent", "accepted", "rejected", "included", "lost", "sent_accepted",
        "sent_rejected", "late", "receipts_with_status", "wrong_status", "gas_measured", "gas_outside",
        "block_receipts",
        "included_without_receipt", "included_moving_value", "buckets", "sustain_offered_gas",
        "sustain_offered_tx", "sustain_accepted_gas", "sustain_included_gas", "sustain_included_tx",
        "first_sustain_inclusion", "last_sustain_inclusion", "highest_taken",
    )  # fmt: skip

    def to_data(self) -> dict[str, Any]:
        data = {name: getattr(self, name) for name in self._PLAIN}
        data["sustain"] = list(self.sustain)
        data["block_receipts"] = {number: list(entry) for number, entry in self.block_receipts.items()}
        data["buckets"] = {second: list(bucket) for second, bucket in self.buckets.items()}
        data["by_template"] = {name: list(counts) for name, counts in self.by_template.items()}
        data["nonces"] = {
            sender: (ranges.ranges, ranges.reused, ranges.reused_count)
            for sender, ranges in self.nonces.items()
        }
        data["latency"] = {
            "accept": self.accept_latency.to_data(),
            "inclusion": self.inclusion_latency.to_data(),
            "feed": self.feed_latency.to_data(),
        }
        data["tx_digest"] = self._tx_digest
        for name in _EVIDENCE:
            data[name] = getattr(self, name).to_data()
        data["faults"] = [tally.to_data() for tally in self.faults]
        data["flow"] = self.flow.to_data()
        return data

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> RunDigest:
        digest = cls.__new__(cls)
        for name in cls._PLAIN:
            setattr(digest, name, data[name])
        digest.sustain = (float(data["sustain"][0]), float(data["sustain"][1]))
        digest.block_receipts = {int(n): list(entry) for n, entry in data["block_receipts"].items()}
        digest.buckets = {int(s): list(bucket) for s, bucket in data["buckets"].items()}
        digest.by_template = {str(name): list(counts) for name, counts in data.get("by_template", {}).items()}
        digest.highest_taken = {int(s): int(n) for s, n in data["highest_taken"].items()}
        digest.nonces = {}
        for sender, (ranges, reused, reused_count) in data["nonces"].items():
            entry = digest.nonces[int(sender)] = NonceRanges()
            entry.ranges = [list(pair) for pair in ranges]
            entry.reused = list(reused)
            entry.reused_count = reused_count
        latency = data["latency"]
        digest.accept_latency = LatencySketch.from_data(latency["accept"])
        digest.inclusion_latency = LatencySketch.from_data(latency["inclusion"])
        digest.feed_latency = LatencySketch.from_data(latency["feed"])
        digest._order = KeccakStream()
        digest._ordered = 0
        digest._tx_digest = data["tx_digest"]
        for name in _EVIDENCE:
            setattr(digest, name, FirstByRow(data[name]))
        digest.faults = [FaultTally.from_data(tally) for tally in data.get("faults") or ()]
        digest.flow = Flow.from_data(data.get("flow") or {})
        return digest

    @classmethod
    def of_log(cls, log: TxLog, feed_arrivals: np.ndarray | None = None, **settings: Any) -> RunDigest:
        """Every row of ``log`` digested at once (tests, and an edge's last rows)."""
        digest = cls(**settings)
        rows = np.arange(log.base, len(log), dtype=np.int64)
        digest.add(log, rows, feed_arrivals)
        digest.absorb_order(log, len(log))
        digest.close_order()
        return digest


#: The digest's evidence lists, by attribute.
_EVIDENCE = ("lost_first", "late_first", "wrong_status_first", "gas_outside_first")


def _max_by(keys: np.ndarray, values: np.ndarray) -> list[tuple[int, int]]:
    """``(key, max value)`` per distinct key."""
    unique, inverse = np.unique(keys, return_inverse=True)
    highest = np.full(unique.size, np.iinfo(np.int64).min, dtype=np.int64)
    np.maximum.at(highest, inverse, values.astype(np.int64))
    return list(zip(unique.tolist(), highest.tolist(), strict=True))
