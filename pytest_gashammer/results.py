"""What a run returns to the test: :class:`RunResult`, its parts, and the run figures it carries.

This module sits at the bottom of the package (it imports nothing of the project): the oracle makes
verdicts, the hive builds results, telemetry stores them, the reports and the ``gashammer`` command
read them back, and all of them import these types from here.

Each run figure is declared once, in :data:`RUN_FIGURES` (name, kind, unit, help). ``RunResult`` holds
it, :meth:`RunResult.summary_dict` and the stored ``runs`` table (schema and row, in
``telemetry/``) derive from the declaration, and so do the terminal summary and the HTML report.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Sequence
from typing import Any, Literal, Protocol

#: What starts a note the devnet backend added to a run (the terminal summary prints those).
DEVNET_NOTE = "devnet: "


#: What starts a note on a fallback the run took (polling for heads, a tip of 0, ...), a note on
#: the fees it paid, and one on the JSON-RPC calls it had to ask again (what it rode out): the
#: terminal summary prints them, the HTML report every note.
FALLBACK_NOTE = "fallback: "
FEES_NOTE = "fees: "
RETRY_NOTE = "retries: "


def devnet_notes(notes: Iterable[str]) -> list[str]:
    return [note for note in notes if note.startswith(DEVNET_NOTE)]


def run_notes(notes: Iterable[str]) -> list[str]:
    """The fallback, fee and retry notes, in order: what the summary says about how the run was done."""
    return [note for note in notes if note.startswith((FALLBACK_NOTE, FEES_NOTE, RETRY_NOTE))]


class Ascending(Protocol):
    """Samples in ascending order that can be indexed: a sorted list, or a sorted numpy array."""

    def __len__(self) -> int: ...

    def __getitem__(self, index: int, /) -> Any: ...


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
        """The statistics of ``samples`` in any order (the caller's sequence is left as it is)."""
        return cls.of_sorted(sorted(samples))

    @classmethod
    def of_sorted(cls, ordered: Ascending) -> LatencyStats:
        """The statistics of ascending ``ordered`` samples: a list, or a sorted numpy array (stored runs)."""
        if len(ordered) == 0:
            nan = math.nan
            return cls(nan, nan, nan, nan, 0)
        return cls(
            nearest_rank(ordered, 0.50),
            nearest_rank(ordered, 0.90),
            nearest_rank(ordered, 0.99),
            float(ordered[-1]),
            len(ordered),
        )

    def as_dict(self) -> dict[str, float]:
        return dataclasses.asdict(self)


#: The statistics every latency carries, in the order the stored ``latency_<name>_<stat>`` columns use.
LATENCY_STATS: tuple[str, ...] = tuple(field.name for field in dataclasses.fields(LatencyStats))


def nearest_rank(ordered: Ascending, quantile: float) -> float:
    """The smallest sample with at least ``quantile`` of the ascending ``ordered`` samples at or below it."""
    if len(ordered) == 0:
        return math.nan
    rank = max(1, math.ceil(quantile * len(ordered)))
    return float(ordered[rank - 1])


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
class FaultImpact:
    """One fault of the run's timeline: when it was active, what it did to the run, how it recovered.

    Times are run-clock seconds (t=0 is the plan's start); ``*_unix_ns`` the same moments on the
    hive's wall clock. Rates and latencies are measured over three windows of the fault's length
    (at least :data:`FAULT_WINDOW_MIN_S`): just before it began, while it was active, and just after
    it ended; a window the run did not cover holds ``nan``. ``recovered_after_s`` runs from the
    fault's end until the included gas rate is back within 5 % of the target and the backlog
    (accepted, not yet included) is back to its level before the fault; ``None`` if the run ended
    first. ``delayed`` counts transactions in flight while it was active (intended before its end,
    included after its begin) whose inclusion latency exceeded the before-window p99; ``lost``
    counts transactions intended from :data:`FAULT_LOST_LOOKBACK_S` before its begin to its end that
    were accepted and never included, the first of them named in ``lost_examples``. ``error`` says
    why the fault could not be applied or undone (the run then fails its ``faults`` verdict).
    """

    index: int
    kind: str
    params: dict[str, Any]
    planned_at: float
    planned_duration: float
    started_at: float | None = None
    ended_at: float | None = None
    started_unix_ns: int | None = None
    ended_unix_ns: int | None = None
    included_gas_per_sec_before: float = math.nan
    included_gas_per_sec_during: float = math.nan
    included_gas_per_sec_after: float = math.nan
    inclusion_p99_before: float = math.nan
    inclusion_p99_during: float = math.nan
    inclusion_p99_after: float = math.nan
    recovered_after_s: float | None = None
    delayed: int = 0
    lost: int = 0
    lost_examples: list[str] = dataclasses.field(default_factory=list)
    #: What the fault's mechanism reported (calls it answered, connections it closed, ...).
    effect: dict[str, Any] = dataclasses.field(default_factory=dict)
    error: str | None = None

    @property
    def label(self) -> str:
        """``node.pause #0`` : the kind and the fault's place in the marker's list."""
        return f"{self.kind} #{self.index}"


#: The shortest before/during/after window a fault's impact is measured over, in seconds.
FAULT_WINDOW_MIN_S = 2.0
#: How long before a fault's begin a lost transaction may have been intended and still count as
#: lost in it (it was in flight when the fault began).
FAULT_LOST_LOOKBACK_S = 5.0


@dataclasses.dataclass(frozen=True)
class L1Batch:
    """One sequencer batch delivered on the L1 while the run was watched.

    ``first_l2_block``/``last_l2_block`` are the L2 blocks its messages are (``None`` when its call
    could not be read; ``decode_error`` says why its data could not be, when it could not: a blob
    batch has a block range but no data read); ``seen_at`` is the run-clock second the monitor
    first saw its ``SequencerBatchDelivered`` log; ``lag_max_s`` the longest batch-posting lag of
    the run's L2 blocks it carried (``nan`` when it carried none of them).
    """

    sequence_number: int
    l1_block: int
    l1_tx: str
    before_acc: str
    after_acc: str
    delayed_messages_read: int
    data_bytes: int
    l1_gas: int
    first_l2_block: int | None
    last_l2_block: int | None
    l2_transactions: int
    seen_at: float
    lag_max_s: float = math.nan
    decode_error: str | None = None


@dataclasses.dataclass(frozen=True)
class L1Assertion:
    """One assertion on the rollup seen while the run was watched, and its confirmation.

    Times are run-clock seconds the monitor first saw the ``AssertionCreated`` /
    ``AssertionConfirmed`` log; ``confirmed_at`` is ``None`` while unconfirmed.
    """

    assertion_hash: str
    parent_hash: str
    #: Batches the assertion read: it covers batches ``0 .. inbox_position - 1``.
    inbox_position: int
    l2_block_hash: str
    created_l1_block: int
    created_at: float
    confirmed_l1_block: int | None = None
    confirmed_at: float | None = None


@dataclasses.dataclass(frozen=True)
class L1Figures:
    """What the L1 monitor saw of the run (``RunResult.l1``): batches, lags, costs, assertions.

    ``batch_lag`` is, per L2 block of the run, the seconds from the block's first sighting on the
    L2 to its batch's first sighting on the L1. ``assertion_lag``: per batch of the run, from its
    sighting to the first assertion covering it; ``confirmation_lag``: per assertion, from creation
    to confirmation. Per-batch and per-transaction means cover the batches that carried the run's
    blocks. ``batch_rows`` and ``assertion_rows`` are the detail (stored as the ``batches`` and
    ``assertions`` Parquet tables).
    """

    l1_rpc_url: str
    sequencer_inbox: str
    rollup: str | None
    batches: int
    blocks_of_run: int
    blocks_posted: int
    batch_lag: LatencyStats
    bytes_per_batch: float
    l1_gas_per_batch: float
    bytes_per_l2_tx: float
    l1_gas_per_l2_tx: float
    assertions: int
    confirmations: int
    assertion_lag: LatencyStats
    confirmation_lag: LatencyStats
    batch_rows: list[L1Batch] = dataclasses.field(default_factory=list)
    assertion_rows: list[L1Assertion] = dataclasses.field(default_factory=list)
    #: What kept the monitor from seeing everything (an L1 that stopped answering, batch data it could
    #: not fetch): each makes the L1 invariants it touches inconclusive.
    problems: list[str] = dataclasses.field(default_factory=list)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> L1Figures:
        fields = dict(data)
        for name in ("batch_lag", "assertion_lag", "confirmation_lag"):
            fields[name] = LatencyStats(**fields[name])
        fields["batch_rows"] = [L1Batch(**row) for row in fields.get("batch_rows") or ()]
        fields["assertion_rows"] = [L1Assertion(**row) for row in fields.get("assertion_rows") or ()]
        return cls(**fields)


@dataclasses.dataclass(frozen=True)
class EngineCallRow:
    """One Engine API call of the run (``RunResult.engine.call_rows``, the ``engine_calls`` Parquet table).

    ``t`` is seconds on the run clock; ``method`` without prefix or version (``forkchoiceUpdated``,
    ``getPayload``, ``newPayload``); ``status`` the payload status, ``OK`` for an answer without one,
    ``ERROR`` for a call that failed (``error`` says how).
    """

    t: float
    method: str
    version: int
    latency: float
    status: str
    block_number: int | None = None
    block_hash: str | None = None
    transactions: int | None = None
    payload_id: str | None = None
    latest_valid_hash: str | None = None
    with_attributes: bool = False
    error: str | None = None


@dataclasses.dataclass(frozen=True)
class EngineBlockRow:
    """One block the consensus driver built during the run (``RunResult.engine.block_rows``, the
    ``engine_blocks`` Parquet table): how long the client took to build and to import it, next to its
    size, and the driver's own CPU for it."""

    t: float
    number: int
    block_hash: str
    transactions: int
    gas_used: int
    build_s: float
    import_s: float
    driver_cpu_s: float = math.nan
    head_after: str | None = None


@dataclasses.dataclass(frozen=True)
class EngineFigures:
    """The Engine API as the plugin's consensus driver saw it during the run (``RunResult.engine``).

    Per method, the latency of every call (``forkchoice_updated`` counts both kinds, with and without
    payload attributes); per block, ``block_build`` (fcU with attributes + getPayload: the client
    assembling the block) and ``block_import`` (newPayload + fcU: executing and selecting it).
    ``statuses`` counts the answers per method and status (``VALID``, ``SYNCING``, ``OK``, ``ERROR``...).
    """

    version: int
    blocks_built: int
    calls: int
    failed_calls: int
    forkchoice_updated: LatencyStats
    get_payload: LatencyStats
    new_payload: LatencyStats
    block_build: LatencyStats
    block_import: LatencyStats
    transactions_per_block: float
    driver_cpu_per_block_s: float
    statuses: dict[str, dict[str, int]] = dataclasses.field(default_factory=dict)
    call_rows: list[EngineCallRow] = dataclasses.field(default_factory=list)
    block_rows: list[EngineBlockRow] = dataclasses.field(default_factory=list)
    #: Calls and blocks the driver's bounded log no longer held when the run ended (a very long run).
    dropped: int = 0

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EngineFigures:
        fields = dict(data)
        for name in ("forkchoice_updated", "get_payload", "new_payload", "block_build", "block_import"):
            fields[name] = LatencyStats(**fields[name])
        fields["call_rows"] = [EngineCallRow(**row) for row in fields.get("call_rows") or ()]
        fields["block_rows"] = [EngineBlockRow(**row) for row in fields.get("block_rows") or ()]
        return cls(**fields)


@dataclasses.dataclass(frozen=True)
class NetworkEvent:
    """One event of a multi-node network, as the devp2p simulation names them.

    ``source`` is ``"control"`` for what the test (or a fault) asked (``node_started``,
    ``node_stopped``, ``connect``, ``disconnect``, ``partition``, ``heal``, ...) and ``"live"`` for
    what the network did (``peer_connected``, ``peer_dropped``, ``head``, ``syncing``, ...).
    """

    at: float  # unix seconds
    source: str
    kind: str
    node: str
    peer: str = ""
    number: int | None = None
    detail: str = ""

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class NetworkNode:
    """One node of a multi-node devnet as the network checks left it (``RunResult.network.nodes``).

    ``head_*`` is its head once the checks were done; ``converged_after_s`` how long after the load
    ended it held the builder's head (``None``: not within the bound); ``syncing`` its last
    ``eth_syncing`` answer was not false; ``error`` why it could not be read.
    """

    name: str
    rpc_url: str
    head_number: int | None = None
    head_hash: str | None = None
    converged_after_s: float | None = None
    syncing: bool | None = None
    error: str | None = None


@dataclasses.dataclass(frozen=True)
class NetworkFigures:
    """What the network checks saw of a multi-node devnet after the run (``RunResult.network``).

    ``first_block``..``last_block`` are the run's heights on the builder; ``heights_checked`` of
    them were read from every node (all of them up to a bound, an even sample beyond), and
    ``receipts_checked`` transactions of those blocks asked of every node. ``events`` are the
    network's own events while the run lasted (the ``network_events`` Parquet table), the latest
    kept when there were more than the figures hold (``events_dropped`` says how many were not).
    """

    nodes: list[NetworkNode]
    first_block: int
    last_block: int
    heights_checked: int = 0
    receipts_checked: int = 0
    converge_bound_s: float = 0.0
    #: The run's t=0 in Unix seconds, as the hive knew it: the events' ``at`` minus it is run-clock time.
    time_origin: float = 0.0
    events: list[NetworkEvent] = dataclasses.field(default_factory=list)
    events_dropped: int = 0

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> NetworkFigures:
        fields = dict(data)
        fields["nodes"] = [NetworkNode(**node) for node in fields.get("nodes") or ()]
        fields["events"] = [NetworkEvent(**event) for event in fields.get("events") or ()]
        return cls(**fields)


@dataclasses.dataclass(frozen=True)
class CapacityStep:
    """One step of a capacity search: one run at a fixed offered rate, judged by the search's SLOs.

    ``offered_gas_per_sec`` is the rate the step offered (its plan's target); ``measured_offered`` the
    sustain phase's offered rate as the run measured it; ``included_gas_per_sec`` the mean of the
    step's included gas per whole second of its sustain phase but the first (the figure its
    ``min_gas_ratio`` was judged on: at saturation every second is full blocks, so it is the chain's
    ceiling; see ``oracle.capacity.judge_step``). Latencies are the sustain phase's inclusion latency from intended send
    time, in seconds (``nan`` when nothing was included). ``slos`` maps each SLO verdict name
    (``slo.inclusion_p99``), and each invariant that overload breaks by design (``inclusion``,
    ``acceptance``), to its status; ``passed`` when every SLO verdict passed and neither invariant
    failed. ``run_id`` is the step's telemetry run (``None`` without ``--gashammer-parquet``).

    ``steadiness`` says whether the step's rate had settled when it was judged
    (``oracle.capacity.judge_steadiness``): ``steady``; ``settling`` (its included rate still moved
    between the halves of the step, and it was held for ``max_step`` without settling); ``falling
    behind`` (its backlog grew: past the chain's limit, so the step missed, in ``slos`` as ``steady``
    failed); ``too short`` (too few whole seconds to tell); ``stopped early`` (cut short past the
    limit); empty in a search stored before steadiness was judged. ``held`` is the sustain phase, in
    seconds, of the run the step was judged on, and ``attempts`` how many runs the step took (a step
    not yet steady is run again, held longer, up to ``max_step``).
    """

    index: int
    offered_gas_per_sec: float
    measured_offered: float
    included_gas_per_sec: float
    inclusion_p50: float
    inclusion_p99: float
    lost: int
    slos: dict[str, str]
    passed: bool
    duration: float = 0.0
    run_id: str | None = None
    steadiness: str = ""
    held: float = 0.0
    attempts: int = 1


@dataclasses.dataclass(frozen=True)
class CapacityFigures:
    """What a capacity search found (``RunResult.capacity``); rates in gas per second.

    ``max_gas_per_sec``: the highest offered rate at which every SLO held (``None`` when not even the
    first step did). ``knee_gas_per_sec``: the last offered rate before inclusion latency climbs
    steeply (the first step whose p99 is more than twice the lowest step's, and at least a quarter
    second more); ``None`` when it never did over the rates tried. ``max_ci_low`` / ``max_ci_high``: a
    95 % interval for the maximum: the search brackets it between the maximum and the lowest failing
    rate, and each end is widened by the sampling noise measured there (the bootstrap 95 % interval of
    the mean of the step's per-second included gas, over its sustain phase); ``max_ci_high`` is
    ``None`` when no step failed (the maximum is at least ``to``). ``stopped`` says why the search
    ended; ``slos`` are the objectives each step was judged by.
    """

    max_gas_per_sec: float | None
    knee_gas_per_sec: float | None
    max_ci_low: float | None
    max_ci_high: float | None
    steps: list[CapacityStep]
    stopped: str
    slos: dict[str, float] = dataclasses.field(default_factory=dict)
    first_failing_gas_per_sec: float | None = None

    @property
    def max_ci(self) -> tuple[float | None, float | None]:
        return (self.max_ci_low, self.max_ci_high)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CapacityFigures:
        fields = dict(data)
        fields["steps"] = [
            CapacityStep(**{key: _nan_if_none(value) if key.startswith("inclusion_") else value
                            for key, value in step.items()})
            for step in fields.get("steps") or ()
        ]  # fmt: skip
        return cls(**fields)


def _nan_if_none(value: Any) -> Any:
    """A latency stored as JSON null (``nan`` has no JSON form) read back as ``nan``."""
    return math.nan if value is None else value


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
    #: Receipts checked, of those expected (rows included and on the receipt sample), and the method
    #: they were fetched with.
    receipts_checked: int = 0
    receipts_expected: int = 0
    receipts_via: str = ""
    stopped_early: str | None = None
    notes: list[str] = dataclasses.field(default_factory=list)
    timeline: list[dict[str, float]] = dataclasses.field(default_factory=list)
    #: Sequencer-feed facts: client stats (reconnects, gaps, duplicates, decode errors) and the
    #: feed-versus-chain cross-checks. ``None`` when the run did not follow a feed.
    feed: dict[str, Any] | None = None
    #: When true (marker ``fail_inconclusive=True``), an inconclusive verdict fails the run too.
    fail_inconclusive: bool = False
    #: What the node said when it refused transactions, verbatim and merged over the edges: dicts
    #: with ``kind``, ``code`` (None without a JSON-RPC answer), ``message``, ``count``, ``first_tx``,
    #: ``sender``, ``nonce``; the first distinct messages per kind, the most frequent first.
    rejections: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    #: The faults of the marker's ``faults=`` timeline, in the marker's order (empty without faults).
    faults: list[FaultImpact] = dataclasses.field(default_factory=list)
    #: What the L1 monitor saw (batches, lags, assertions); ``None`` when the target has no L1.
    l1: L1Figures | None = None
    #: What the Engine API calls of the plugin's consensus driver showed (latencies per method, build
    #: and import time per block); ``None`` when the plugin does not build the target's blocks.
    engine: EngineFigures | None = None
    #: What every node of a multi-node devnet held after the run (heads, the events of the network);
    #: ``None`` for a single node.
    network: NetworkFigures | None = None
    #: What a capacity search found (``capacity={...}``): the maximum, the knee, their steps; ``None``
    #: for an ordinary run. A search's result is its step at the maximum, with this attached.
    capacity: CapacityFigures | None = None
    #: The run's id in the Parquet store (``runs.run_id``); ``None`` when the run was not stored.
    run_id: str | None = None

    def fault(self, kind: str) -> FaultImpact:
        """The first fault of ``kind`` (e.g. ``"node.pause"``)."""
        for impact in self.faults:
            if impact.kind == kind:
                return impact
        raise KeyError(f"no fault of kind {kind!r}; have {[impact.kind for impact in self.faults]}")

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
        """Key figures as plain data, for reports, JUnit properties and other processes.

        Every figure of :data:`RUN_FIGURES` by name, plus the verdicts (name, status, summary) and
        the notes the devnet added (``devnet_notes``) and the fallback and fee notes (``run_notes``).
        """
        summary = {figure.name: figure.plain(figure.value(self)) for figure in RUN_FIGURES}
        summary["verdicts"] = [
            {"name": v.name, "status": v.status, "summary": v.summary} for v in self.verdicts
        ]
        summary["devnet_notes"] = devnet_notes(self.notes)
        summary["run_notes"] = run_notes(self.notes)
        return summary

    def to_dict(self) -> dict[str, Any]:
        """Every field as plain data (numbers, strings, lists, dicts), for another process."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunResult:
        """The result :meth:`to_dict` described."""
        fields = dict(data)
        fields["latency"] = Latency(
            **{name: LatencyStats(**stats) for name, stats in fields["latency"].items()}
        )
        fields["verdicts"] = [Verdict(**verdict) for verdict in fields["verdicts"]]
        fields["edges"] = [EdgeSummary(**edge) for edge in fields["edges"]]
        fields["faults"] = [FaultImpact(**impact) for impact in fields.get("faults") or ()]
        fields["l1"] = L1Figures.from_dict(fields["l1"]) if fields.get("l1") else None
        fields["engine"] = EngineFigures.from_dict(fields["engine"]) if fields.get("engine") else None
        fields["capacity"] = CapacityFigures.from_dict(fields["capacity"]) if fields.get("capacity") else None
        fields["network"] = NetworkFigures.from_dict(fields["network"]) if fields.get("network") else None
        return cls(**fields)


# ---------------------------------------------------------------------------------------------
# run figures, declared once

FigureKind = Literal["int", "float", "str", "bool", "latency", "json"]


@dataclasses.dataclass(frozen=True)
class Figure:
    """One figure of a run: how :class:`RunResult` holds it, how it is stored, what it means.

    ``kind`` decides the stored type: ``int`` int64, ``float`` float64 (``nan`` stored as null),
    ``str`` string, ``bool`` bool, ``json`` a JSON string in ``<name>_json``, and ``latency`` one
    column per statistic, ``<name>_<stat>`` (see :data:`LATENCY_STATS`).
    """

    name: str
    kind: FigureKind
    unit: str
    help: str
    #: Where :class:`RunResult` holds it, a dotted attribute path; default ``name``.
    attribute: str = ""
    #: The ``runs`` column (the column prefix for a latency); default ``name`` (``<name>_json`` for json).
    column: str = ""
    #: Known when the run starts: the ``runs`` row takes it from the run's facts, the result only
    #: fills it in when those lack it.
    at_start: bool = False
    #: Never null in the ``runs`` table.
    required: bool = False
    #: Its value in the summary of a stored run that lacks it (a float: ``nan``).
    missing: Any = None
    #: A short label for the terminal summary; default ``name``.
    label: str = ""

    @property
    def stored_as(self) -> str:
        if self.column:
            return self.column
        return f"{self.name}_json" if self.kind == "json" else self.name

    @property
    def columns(self) -> tuple[str, ...]:
        """The ``runs`` columns that hold it."""
        if self.kind == "latency":
            return tuple(f"{self.stored_as}_{stat}" for stat in LATENCY_STATS)
        return (self.stored_as,)

    @property
    def short_label(self) -> str:
        return self.label or self.name

    def value(self, result: RunResult) -> Any:
        value: Any = result
        for part in (self.attribute or self.name).split("."):
            value = getattr(value, part)
        return value

    def plain(self, value: Any) -> Any:
        """``value`` as the summary carries it: plain data, a copy of anything mutable."""
        if self.kind == "latency":
            return value.as_dict()
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            return dataclasses.asdict(value)
        if isinstance(value, dict):
            return dict(value)
        if isinstance(value, list):
            return [
                dataclasses.asdict(item)
                if dataclasses.is_dataclass(item) and not isinstance(item, type)
                else item
                for item in value
            ]
        return value


_RATE, _TX_RATE, _SECONDS, _TX, _RECEIPTS = "gas/s", "tx/s", "s", "transactions", "receipts"

# Latencies run from each sustain-phase transaction's intended send time; the help says to where.

#: Every figure of a run, in the order the ``runs`` table stores them (after the run's own facts).
RUN_FIGURES: tuple[Figure, ...] = (
    Figure("name", "str", "", "the scenario's name", column="scenario", at_start=True, required=True),
    Figure("seed", "int", "", "the seed every random choice derives from", at_start=True, required=True),
    Figure("target_gas_per_sec", "float", _RATE, "the plan's sustain rate", at_start=True, required=True),
    Figure("chain_id", "int", "", "the chain id the devnet reported", at_start=True),
    Figure("devnet_kind", "str", "", "the devnet backend: embedded, external, ...", at_start=True),
    Figure("node_version", "str", "", "the node's client version, e.g. anvil 1.7.1", at_start=True),
    Figure("passed", "bool", "", "no verdict failed (nor was inconclusive, with fail_inconclusive)"),
    Figure("stopped_early", "str", "", "why the run stopped before its plan ended"),
    Figure("duration", "float", _SECONDS, "wall time of the run, setup included", column="duration_s"),
    Figure("sustain_seconds", "float", _SECONDS, "length of the sustain phase"),
    Figure("offered_gas_per_sec", "float", _RATE, "gas scheduled in the sustain phase per second"),
    Figure("accepted_gas_per_sec", "float", _RATE, "the part of it the node accepted"),
    Figure("included_gas_per_sec", "float", _RATE, "the part included, over the span it took"),
    Figure("offered_tx_per_sec", "float", _TX_RATE, "transactions scheduled in the sustain phase per second"),
    Figure("included_tx_per_sec", "float", _TX_RATE, "the part included, over the span it took"),
    Figure("sent", "int", _TX, "transactions sent, whole run", missing=0),
    Figure("accepted", "int", _TX, "transactions the node accepted (or a block showed)", missing=0),
    Figure("rejected", "int", _TX, "transactions the node refused", missing=0),
    Figure("included", "int", _TX, "transactions seen in a block", missing=0),
    Figure("lost", "int", _TX, "accepted but never seen in a block", missing=0),
    Figure("blocks_observed", "int", "blocks", "distinct blocks the edges saw", missing=0, label="blocks"),
    # No ``missing`` value: a run stored before these figures existed shows no receipt line, not "0 of 0".
    Figure("receipts_checked", "int", _RECEIPTS, "receipts obtained and checked", label="checked"),
    Figure(
        "receipts_expected",
        "int",
        _RECEIPTS,
        "receipts wanted: transactions included and on the receipt sample (marker receipts=)",
        label="expected",
    ),
    Figure(
        "receipts_via",
        "str",
        "",
        "how receipts were fetched: eth_getBlockReceipts per block, or eth_getTransactionReceipt per "
        "transaction where the node refused that (edges that differ are joined with ' + ')",
        missing="",
    ),
    Figure(
        "latency_accept",
        "latency",
        _SECONDS,
        "to the node's answer",
        attribute="latency.accept",
        label="accept",
    ),
    Figure(
        "latency_inclusion",
        "latency",
        _SECONDS,
        "to the block",
        attribute="latency.inclusion",
        label="inclusion",
    ),
    Figure(
        "latency_feed", "latency", _SECONDS, "to the sequencer feed", attribute="latency.feed", label="feed"
    ),
    Figure("errors", "json", "", "errors by kind, over every edge", missing={}),
    Figure(
        "feed", "json", "", "per edge: feed client stats and feed-versus-chain findings (None without a feed)"
    ),
    Figure("notes", "json", "", "notes of the edges and the devnet, in order", missing=[]),
    Figure(
        "rejections",
        "json",
        "",
        "the node's refusals verbatim: kind, code, message, count, first transaction (per kind, "
        "the first distinct messages)",
        missing=[],
    ),
    Figure(
        "faults",
        "json",
        "",
        "the faults of the marker's timeline: kind, params, begin and end, included gas rate and "
        "inclusion p99 before / during / after, recovery, delayed and lost transactions",
        missing=[],
    ),
    Figure(
        "l1",
        "json",
        "",
        "what the L1 monitor saw: batches, batch-posting lag per L2 block, bytes and L1 gas per batch "
        "and per L2 transaction, assertion and confirmation lags, per-batch and per-assertion rows "
        "(None without an L1)",
    ),
    Figure(
        "engine",
        "json",
        "",
        "the Engine API calls of the plugin's consensus driver: latency per method, build and import "
        "time per block against its size, statuses, per-call and per-block rows (None when the plugin "
        "does not build the target's blocks)",
    ),
    Figure(
        "capacity",
        "json",
        "",
        "what a capacity search found: the maximum and the knee (gas/s), a 95 % interval for the maximum, "
        "why it stopped, the SLOs, and per step its offered and included gas/s, inclusion p50 and p99, "
        "each SLO's status and its run id (None for an ordinary run)",
    ),
    Figure(
        "network",
        "json",
        "",
        "what every node of a multi-node devnet held after the run: per node its head, how long it took "
        "to reach the builder's, whether it was syncing; heights and receipts compared; the network's "
        "events (None for a single node)",
    ),
)

FIGURES: dict[str, Figure] = {figure.name: figure for figure in RUN_FIGURES}


#: The counts a summary shows in one line: transactions by what became of them, and blocks.
COUNT_FIGURES: tuple[Figure, ...] = tuple(
    f for f in RUN_FIGURES if f.kind == "int" and f.unit not in ("", _RECEIPTS)
)
#: Receipt coverage, "checked X of Y": a line of its own in summaries and reports.
RECEIPTS_CHECKED, RECEIPTS_EXPECTED, RECEIPTS_VIA = (
    FIGURES["receipts_checked"],
    FIGURES["receipts_expected"],
    FIGURES["receipts_via"],
)


def receipts_line(checked: int, expected: int, via: str) -> str:
    """``checked X of Y`` with the method, as summaries and reports print receipt coverage."""
    if not expected and not checked:
        return "none expected"
    share = f" ({checked / expected:.0%})" if expected and checked < expected else ""
    return f"checked {checked:,} of {expected:,}{share}" + (f" via {via}" if via else "")


#: The latencies, each a :class:`LatencyStats`.
LATENCY_FIGURES: tuple[Figure, ...] = tuple(f for f in RUN_FIGURES if f.kind == "latency")


def rate_figures() -> list[tuple[str, Figure, Figure | None]]:
    """The sustain-phase rates a summary shows against the target: ``(label, gas rate, tx rate)``.

    ``<label>_gas_per_sec`` pairs with ``<label>_tx_per_sec`` when that figure exists.
    """
    return [
        (label, figure, FIGURES.get(f"{label}_tx_per_sec"))
        for figure in RUN_FIGURES
        if figure.unit == _RATE and not figure.at_start
        for label in (figure.name.removesuffix("_gas_per_sec"),)
    ]
