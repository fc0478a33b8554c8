"""Turning the edges' reports into one :class:`RunResult`."""

from __future__ import annotations

import math
import statistics
from array import array
from collections.abc import Sequence
from typing import Any

from pytest_gashammer.chain.keccak import keccak256
from pytest_gashammer.results import (
    FALLBACK_NOTE,
    FEES_NOTE,
    EdgeSummary,
    Latency,
    LatencyStats,
    RunResult,
    Verdict,
)
from pytest_gashammer.scenario.spec import ScenarioPlan
from pytest_gashammer.telemetry.records import NOT_YET, STATUS_REJECTED, EdgeReport, merge_rejections


def build_result(
    plan: ScenarioPlan,
    reports: Sequence[EdgeReport],
    verdicts: list[Verdict],
    *,
    chain_id: int,
    devnet_kind: str,
    node_version: str,
    duration: float,
    edge_shares: Sequence[float] | None = None,
    start_skews: Sequence[float] | None = None,
) -> RunResult:
    sustain = plan.sustain
    window = max(sustain.length, 1e-9)
    offered_gas = accepted_gas = 0.0
    offered_tx = 0
    sent = accepted = rejected = included = lost = 0
    accept_latencies: list[float] = []
    feed_latencies: list[float] = []
    first_sustain_inclusion, last_sustain_inclusion = math.inf, -math.inf
    included_gas = 0.0
    included_tx = 0
    feed: dict[str, Any] | None = None
    inclusion_latencies: list[float] = []
    errors: dict[str, int] = {}
    buckets: dict[int, dict[str, float]] = {}

    for report in reports:
        log = report.txs
        origin = report.clock_origin_ns
        for kind, count in report.errors.items():
            errors[kind] = errors.get(kind, 0) + count
        feed_arrivals: array[int] | None = None
        if report.feed_columns is not None:
            feed_arrivals = array("q")
            feed_arrivals.frombytes(report.feed_columns["arrival_ns"])
            feed = merge_feed_facts(feed, report)
        for row in range(len(log)):
            intended = (log.intended_ns[row] - origin) / 1e9
            gas = float(log.gas(row))
            in_sustain = sustain.start <= intended < sustain.end and log.template[row] >= 0
            if log.sent_ns[row] != NOT_YET:
                sent += 1
            if log.state[row] == STATUS_REJECTED:
                rejected += 1
            was_accepted = log.accepted_ns[row] != NOT_YET or log.included_ns[row] != NOT_YET
            if was_accepted:
                accepted += 1
            if log.included_ns[row] != NOT_YET:
                included += 1
                included_at = (log.included_ns[row] - origin) / 1e9
                bucket = buckets.setdefault(math.floor(included_at), _empty_bucket())
                bucket["included_gas"] += gas
                bucket["included_tx"] += 1
            elif was_accepted:
                lost += 1
            if log.template[row] >= 0:
                bucket = buckets.setdefault(math.floor(intended), _empty_bucket())
                bucket["offered_gas"] += log.gas_planned[row]
                bucket["offered_tx"] += 1
            if not in_sustain:
                continue
            offered_gas += log.gas_planned[row]
            offered_tx += 1
            if was_accepted:
                accepted_gas += log.gas_planned[row]
            if log.accepted_ns[row] != NOT_YET:
                accept_latencies.append((log.accepted_ns[row] - log.intended_ns[row]) / 1e9)
            if log.included_ns[row] != NOT_YET:
                inclusion_latencies.append((log.included_ns[row] - log.intended_ns[row]) / 1e9)
                included_at = (log.included_ns[row] - origin) / 1e9
                first_sustain_inclusion = min(first_sustain_inclusion, included_at)
                last_sustain_inclusion = max(last_sustain_inclusion, included_at)
                included_gas += gas
                included_tx += 1
            if feed_arrivals is not None and row < len(feed_arrivals) and feed_arrivals[row] != NOT_YET:
                feed_latencies.append((feed_arrivals[row] - log.intended_ns[row]) / 1e9)

    # The sustain phase's transactions were included over the span from the first to the last
    # block holding one. A chain that keeps up includes them over the sustain phase itself (the
    # span differs from it by at most a block interval, either way: block boundaries fall anywhere);
    # a chain that falls behind stretches the span over the drain, and the rate is what it managed.
    inclusion_span = max(window, last_sustain_inclusion - first_sustain_inclusion - _block_interval(reports))

    shares = list(edge_shares) if edge_shares is not None else [1.0 / max(len(reports), 1)] * len(reports)
    skews = list(start_skews) if start_skews is not None else [0.0] * len(reports)
    edges = [
        EdgeSummary(
            edge_id=report.edge_id,
            host=report.host,
            sent=sum(1 for value in report.txs.sent_ns if value != NOT_YET),
            included=sum(1 for value in report.txs.included_ns if value != NOT_YET),
            target_share=share,
            start_skew=skew,
            tx_digest="0x" + keccak256(bytes(report.txs.hashes)).hex(),
        )
        for report, share, skew in zip(reports, shares, skews, strict=True)
    ]
    timeline = [
        {"second": float(second), **values} for second, values in sorted(buckets.items()) if second >= 0
    ]
    notes = run_notes(reports)
    return RunResult(
        name=plan.name,
        seed=plan.seed,
        target_gas_per_sec=plan.target_gas_per_sec,
        offered_gas_per_sec=offered_gas / window,
        accepted_gas_per_sec=accepted_gas / window,
        included_gas_per_sec=included_gas / inclusion_span,
        sent=sent,
        accepted=accepted,
        rejected=rejected,
        included=included,
        lost=lost,
        latency=Latency(
            accept=LatencyStats.of(accept_latencies),
            inclusion=LatencyStats.of(inclusion_latencies),
            feed=LatencyStats.of(feed_latencies),
        ),
        feed=feed,
        errors=errors,
        verdicts=verdicts,
        duration=duration,
        sustain_seconds=sustain.length,
        chain_id=chain_id,
        devnet_kind=devnet_kind,
        node_version=node_version,
        edges=edges,
        offered_tx_per_sec=offered_tx / window,
        included_tx_per_sec=included_tx / inclusion_span,
        blocks_observed=len({block.number for report in reports for block in report.blocks}),
        receipts_checked=sum(report.receipts_checked for report in reports),
        receipts_expected=sum(report.receipts_expected for report in reports),
        receipts_via=" + ".join(
            dict.fromkeys(report.receipts_via for report in reports if report.receipts_via)
        ),
        stopped_early=next((report.stopped_early for report in reports if report.stopped_early), None),
        notes=notes,
        timeline=timeline,
        rejections=merge_rejections([report.rejections for report in reports]),
    )


def run_notes(reports: Sequence[EdgeReport]) -> list[str]:
    """The edges' notes, each text once (every edge says the same fallback), then the fees the run
    signed with, over all edges."""
    notes = list(dict.fromkeys(note for report in reports for note in report.notes))
    caps = [report.fee_caps for report in reports if report.fee_caps]
    if not caps:
        return notes
    low, high = min(c["low"] for c in caps), max(c["high"] for c in caps)
    changes = sum(c["changes"] for c in caps)
    base_fees = [c["base_fee_high"] for c in caps if "base_fee_high" in c]
    seen = f"; highest base fee seen {max(base_fees):,} wei" if base_fees else ""
    if changes:
        notes.append(
            f"{FEES_NOTE}fee caps used {low:,}..{high:,} wei: re-priced {changes} time(s) as the base fee moved{seen}"
        )
    else:
        notes.append(f"{FEES_NOTE}fee cap {high:,} wei throughout{seen}")
    ceiling = max(c["ceiling"] for c in caps)
    if base_fees and max(base_fees) > ceiling:
        notes.append(
            f"{FALLBACK_NOTE}the base fee reached {max(base_fees):,} wei, above the highest fee cap the senders "
            f"were funded for ({ceiling:,} wei): transactions signed then could not be included; set "
            "max_fee_per_gas= higher"
        )
    return notes


def _block_interval(reports: Sequence[EdgeReport]) -> float:
    """Median time between consecutive blocks as the edges saw them (0 when unknown)."""
    gaps: list[float] = []
    for report in reports:
        seen = sorted((block.number, block.observed_ns) for block in report.blocks)
        gaps.extend(
            (later[1] - earlier[1]) / 1e9 / (later[0] - earlier[0])
            for earlier, later in zip(seen, seen[1:], strict=False)
            if later[0] > earlier[0]
        )
    return statistics.median(gaps) if gaps else 0.0


def merge_feed_facts(merged: dict[str, Any] | None, report: EdgeReport) -> dict[str, Any]:
    """Feed stats and cross-check findings of every edge that followed the feed, keyed by edge id."""
    merged = merged or {"edges": {}}
    merged["edges"][report.edge_id] = {"stats": report.feed_stats, "findings": report.feed_findings}
    return merged


def _empty_bucket() -> dict[str, float]:
    return {"offered_gas": 0.0, "offered_tx": 0.0, "included_gas": 0.0, "included_tx": 0.0}
