"""What a run returns to the test: :class:`RunResult` and its parts."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Sequence
from typing import Any, Literal

#: What starts a note the devnet backend added to a run (the terminal summary prints those).
DEVNET_NOTE = "devnet: "


def devnet_notes(notes: Iterable[str]) -> list[str]:
    return [note for note in notes if note.startswith(DEVNET_NOTE)]


VerdictStatus = Literal["passed", "failed", "inconclusive"]


@dataclasses.dataclass(frozen=True)
class LatencyStats:
    """Percentiles in seconds; ``nan`` when nothing was measured."""

    p50: float
    p90: float
    p99: float
    max: float
    count: int

    @classmethod
    def of(cls, samples: Sequence[float]) -> LatencyStats:
        if not samples:
            nan = math.nan
            return cls(nan, nan, nan, nan, 0)
        ordered = sorted(samples)

        def pick(quantile: float) -> float:
            # Nearest-rank: the smallest sample with at least `quantile` of samples at or below it.
            rank = max(1, math.ceil(quantile * len(ordered)))
            return ordered[rank - 1]

        return cls(pick(0.50), pick(0.90), pick(0.99), ordered[-1], len(ordered))

    def as_dict(self) -> dict[str, float]:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class Latency:
    """Submit-to-accept and submit-to-inclusion, measured from each transaction's *intended* send time."""

    accept: LatencyStats
    inclusion: LatencyStats
    #: Intended send time to the transaction's arrival in the sequencer feed (empty without a feed).
    feed: LatencyStats = dataclasses.field(default_factory=lambda: LatencyStats.of([]))


@dataclasses.dataclass(frozen=True)
class Verdict:
    """One invariant's outcome with the evidence a person needs to act on it."""

    name: str
    status: VerdictStatus
    summary: str
    evidence: dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return self.status != "failed"

    def __eq__(self, other: object) -> bool:
        # ``assert result.verdict("inclusion") == "passed"`` reads naturally and, on failure, pytest
        # shows the evidence (see the plugin's pytest_assertrepr_compare).
        if isinstance(other, str):
            return self.status == other
        if isinstance(other, Verdict):
            return (self.name, self.status, self.summary, self.evidence) == (
                other.name,
                other.status,
                other.summary,
                other.evidence,
            )
        return NotImplemented

    def __hash__(self) -> int:
        return hash((self.name, self.status, self.summary))

    def describe(self, limit: int = 10) -> str:
        """The verdict and its evidence, one item per line, the first ``limit`` items of each list."""
        lines = [f"[{self.status.upper()}] {self.name}: {self.summary}"]
        for key, value in self.evidence.items():
            if isinstance(value, list | tuple):
                lines.append(f"    {key}:")
                lines.extend(f"      {item}" for item in value[:limit])
                if len(value) > limit:
                    lines.append(f"      ... {len(value) - limit} more in the evidence")
            else:
                lines.append(f"    {key}: {value}")
        return "\n".join(lines)


@dataclasses.dataclass(frozen=True)
class EdgeSummary:
    edge_id: str
    host: str
    sent: int
    included: int
    target_share: float
    start_skew: float
    #: keccak of every transaction hash this edge signed, in order: equal digests, same transactions.
    tx_digest: str = ""


@dataclasses.dataclass(frozen=True)
class RunResult:
    """The outcome of one ``hammer.run()``. Rates are sustain-phase averages in gas per second."""

    name: str
    seed: int
    target_gas_per_sec: float
    offered_gas_per_sec: float
    accepted_gas_per_sec: float
    included_gas_per_sec: float
    sent: int
    accepted: int
    rejected: int
    included: int
    lost: int
    latency: Latency
    errors: dict[str, int]
    verdicts: list[Verdict]
    duration: float
    sustain_seconds: float
    chain_id: int
    devnet_kind: str
    node_version: str
    edges: list[EdgeSummary] = dataclasses.field(default_factory=list)
    offered_tx_per_sec: float = 0.0
    included_tx_per_sec: float = 0.0
    blocks_observed: int = 0
    stopped_early: str | None = None
    notes: list[str] = dataclasses.field(default_factory=list)
    timeline: list[dict[str, float]] = dataclasses.field(default_factory=list)
    #: Sequencer-feed facts: client stats (reconnects, gaps, duplicates, decode errors) and the
    #: feed-versus-chain cross-checks. ``None`` when the run did not follow a feed.
    feed: dict[str, Any] | None = None
    #: When true (marker ``fail_inconclusive=True``), an inconclusive verdict fails the run too.
    fail_inconclusive: bool = False

    @property
    def passed(self) -> bool:
        return not self.failed_verdicts

    @property
    def failed_verdicts(self) -> list[Verdict]:
        failing = ("failed", "inconclusive") if self.fail_inconclusive else ("failed",)
        return [verdict for verdict in self.verdicts if verdict.status in failing]

    def verdict(self, name: str) -> Verdict:
        for verdict in self.verdicts:
            if verdict.name == name:
                return verdict
        raise KeyError(f"no verdict named {name!r}; have {[v.name for v in self.verdicts]}")

    def check(self) -> None:
        """Raise ``AssertionError`` listing every failed verdict with its evidence."""
        __tracebackhide__ = True
        failed = self.failed_verdicts
        if failed:
            header = f"gashammer run {self.name!r} (seed {self.seed}) broke {len(failed)} invariant(s):"
            raise AssertionError("\n".join([header, *(verdict.describe() for verdict in failed)]))

    def summary_dict(self) -> dict[str, Any]:
        """Key figures as plain data, for reports, JUnit properties and other processes."""
        return {
            "name": self.name,
            "seed": self.seed,
            "target_gas_per_sec": self.target_gas_per_sec,
            "offered_gas_per_sec": self.offered_gas_per_sec,
            "accepted_gas_per_sec": self.accepted_gas_per_sec,
            "included_gas_per_sec": self.included_gas_per_sec,
            "offered_tx_per_sec": self.offered_tx_per_sec,
            "included_tx_per_sec": self.included_tx_per_sec,
            "sent": self.sent,
            "accepted": self.accepted,
            "rejected": self.rejected,
            "included": self.included,
            "lost": self.lost,
            "latency_accept": self.latency.accept.as_dict(),
            "latency_inclusion": self.latency.inclusion.as_dict(),
            "latency_feed": self.latency.feed.as_dict(),
            "feed": self.feed,
            "errors": dict(self.errors),
            "verdicts": [{"name": v.name, "status": v.status, "summary": v.summary} for v in self.verdicts],
            "duration": self.duration,
            "chain_id": self.chain_id,
            "devnet_kind": self.devnet_kind,
            "node_version": self.node_version,
            "blocks_observed": self.blocks_observed,
            "stopped_early": self.stopped_early,
            "devnet_notes": devnet_notes(self.notes),
        }
