"""Turning the edges' reports into one :class:`RunResult`."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from typing import Any

from pytest_gashammer.results import (
    FALLBACK_NOTE,
    FEES_NOTE,
    EdgeSummary,
    Latency,
    RunResult,
    Verdict,
)
from pytest_gashammer.scenario.spec import ScenarioPlan
from pytest_gashammer.telemetry.digest import BUCKET_FIELDS, LatencySketch
from pytest_gashammer.telemetry.records import EdgeReport, merge_rejections


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
    feed: dict[str, Any] | None = None
    errors: dict[str, int] = {}
    buckets: dict[int, list[float]] = {}
    digests = [report.digest for report in reports]
    accept_latency, inclusion_latency, feed_latency = LatencySketch(), LatencySketch(), LatencySketch()
    for report in reports:
        digest = report.digest
        for kind, count in report.errors.items():
            errors[kind] = errors.get(kind, 0) + count
        if report.feed_stats is not None:
            feed = merge_feed_facts(feed, report)
        # Each edge's seconds are on its own clock origin; a local run's single edge is the run clock.
        for second, values in digest.buckets.items():
            bucket = buckets.setdefault(second, [0.0, 0.0, 0.0, 0.0])
            for index, value in enumerate(values):
                bucket[index] += value
        accept_latency.merge(digest.accept_latency)
        inclusion_latency.merge(digest.inclusion_latency)
        feed_latency.merge(digest.feed_latency)
    offered_gas = sum(d.sustain_offered_gas for d in digests)
    offered_tx = sum(d.sustain_offered_tx for d in digests)
    accepted_gas = sum(d.sustain_accepted_gas for d in digests)
    included_gas = sum(d.sustain_included_gas for d in digests)
    included_tx = sum(d.sustain_included_tx for d in digests)
    first_sustain_inclusion = min((d.first_sustain_inclusion for d in digests), default=math.inf)
    last_sustain_inclusion = max((d.last_sustain_inclusion for d in digests), default=-math.inf)

    inclusion_span = included_span(
        window, first_sustain_inclusion, last_sustain_inclusion, _block_interval(reports)
    )

    shares = list(edge_shares) if edge_shares is not None else [1.0 / max(len(reports), 1)] * len(reports)
    skews = list(start_skews) if start_skews is not None else [0.0] * len(reports)
    edges = [
        EdgeSummary(
            edge_id=report.edge_id,
            host=report.host,
            sent=report.digest.sent,
            included=report.digest.included,
            target_share=share,
            start_skew=skew,
            tx_digest=report.digest.tx_digest,
        )
        for report, share, skew in zip(reports, shares, skews, strict=True)
    ]
    timeline = [
        {"second": float(second), **dict(zip(BUCKET_FIELDS, values, strict=True))}
        for second, values in sorted(buckets.items())
        if second >= 0
    ]
    notes = run_notes(reports)
    return RunResult(
        name=plan.name,
        seed=plan.seed,
        target_gas_per_sec=plan.target_gas_per_sec,
        offered_gas_per_sec=offered_gas / window,
        accepted_gas_per_sec=accepted_gas / window,
        included_gas_per_sec=included_gas / inclusion_span,
        sent=sum(d.sent for d in digests),
        accepted=sum(d.accepted for d in digests),
        rejected=sum(d.rejected for d in digests),
        included=sum(d.included for d in digests),
        lost=sum(d.lost for d in digests),
        latency=Latency(
            accept=accept_latency.stats(),
            inclusion=inclusion_latency.stats(),
            feed=feed_latency.stats(),
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


def included_span(window: float, first: float, last: float, block_interval: float) -> float:
    """The seconds over which the chain included the sustain phase's transactions, ``first`` and
    ``last`` being the first and last of them in a block (run clock), ``window`` the phase's length.

    A chain that keeps up includes each transaction within a block interval of its sending, so the
    first and last inclusions lie within one interval of the phase's ends: ``last - first`` stays
    under ``window + block_interval``, and the span is the phase itself (the blocks' boundaries fall
    anywhere, so the inclusions' own span would be off by up to an interval, either way). A chain
    that falls behind includes them later and later: ``N`` blocks from ``first`` to ``last`` were
    built over ``N`` intervals, from the start of the first (one interval before ``first``) to
    ``last``; that span is what it took, and the included rate is the chain's ceiling.
    """
    if not (math.isfinite(first) and math.isfinite(last)):
        return window
    if last - first <= window + block_interval:
        return window
    return last - first + block_interval


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
