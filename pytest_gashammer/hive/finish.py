"""The end of a run, the same for every hive: verdicts, the merged result, devnet notes, telemetry."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from typing import Any

from pytest_gashammer.results import DEVNET_NOTE, RunResult, Verdict
from pytest_gashammer.scenario.spec import ScenarioPlan
from pytest_gashammer.telemetry.records import EdgeReport

logger = logging.getLogger(__name__)


def finish_run(
    plan: ScenarioPlan,
    reports: Sequence[EdgeReport],
    *,
    devnet: Any,
    node_version: str,
    duration: float,
    incidents_before: int,
    shares: Sequence[float],
    telemetry: Any = None,
    telemetry_run: str | None = None,
    origin_unix_ns: int | None = None,
    leading_verdicts: Sequence[Verdict] = (),
    start_skews: Sequence[float] | None = None,
    notes: Sequence[str] = (),
    fault_records: Sequence[Any] | None = None,
    l1_watch: Any = None,
    engine_watch: Any = None,
    status: str | None = None,
    network_watch: Any = None,
) -> RunResult:
    """Judge ``reports`` (one per edge that delivered, with its gas ``shares``) and close the run.

    ``leading_verdicts`` come before the oracle's (the controller's ``edges`` verdict); ``notes``
    are the hive's own remarks on how it ran the plan. ``fault_records`` are the run's faults as the
    schedule applied them (:class:`~pytest_gashammer.fault.timeline.FaultRecord`): their impact goes
    into ``result.faults`` and the ``faults`` verdict. ``l1_watch`` (an
    :class:`~pytest_gashammer.hive.l1_watch.L1Watch`, where the devnet has an L1) waits for the run's
    last L2 block to be posted: its figures go into ``result.l1``, its verdicts after the oracle's.
    ``engine_watch`` (an :class:`~pytest_gashammer.hive.engine_watch.EngineWatch`, where the plugin
    builds the target's blocks) waits for the client's pool to drain: its figures go into
    ``result.engine``, its verdicts after the L1's. ``network_watch`` (a
    :class:`~pytest_gashammer.hive.network_watch.NetworkWatch`, where the devnet has several nodes)
    waits for the nodes to agree and compares them: its figures go into ``result.network``, its
    verdicts after the engine's. The devnet's standing notes (a pruned
    history) and its incidents since ``incidents_before`` become ``devnet:`` notes. The telemetry
    run, when there is one, ends with the result, and with ``status`` when given (``stopped``).
    """
    from pytest_gashammer.hive.aggregate import build_result
    from pytest_gashammer.oracle import evaluate_plan, finish_result, name_faults

    impacts = []
    if plan.faults:
        from pytest_gashammer.hive.fault_impact import fault_impacts
        from pytest_gashammer.hive.faulting import faults_verdict

        impacts = fault_impacts(plan, list(reports), list(fault_records or ()))
        leading_verdicts = [*leading_verdicts, faults_verdict(impacts)]
    verdicts = [*leading_verdicts, *evaluate_plan(plan, list(reports))]
    from pytest_gashammer.hive.engine_watch import engine_asked_without_driver
    from pytest_gashammer.hive.l1_watch import l1_asked_without_l1
    from pytest_gashammer.hive.network_watch import network_asked_without_network

    # Each watch's figures and verdicts, in this order; without the watch, the verdicts of a plan
    # that asked for its invariants anyway (inconclusive, saying why).
    watched = []
    for watch, asked_without in (
        (l1_watch, l1_asked_without_l1),
        (engine_watch, engine_asked_without_driver),
        (network_watch, network_asked_without_network),
    ):
        if watch is not None:
            figures, watch_verdicts = watch.finish(origin_unix_ns)
            verdicts += watch_verdicts
        else:
            figures = None
            verdicts += asked_without(plan, devnet.kind)
        watched.append(figures)
    l1, engine, network = watched
    result = build_result(
        plan,
        list(reports),
        verdicts,
        chain_id=devnet.chain_id,
        devnet_kind=devnet.kind,
        node_version=node_version,
        duration=duration,
        # Per-edge shares and start skews describe distributed runs only; one local edge has neither.
        edge_shares=list(shares) if start_skews is not None else None,
        start_skews=list(start_skews) if start_skews is not None else None,
    )
    if impacts:
        result = name_faults(dataclasses.replace(result, faults=impacts))
    if l1 is not None:
        result = dataclasses.replace(result, l1=l1)
    if engine is not None:
        result = dataclasses.replace(result, engine=engine)
    if network is not None:
        result = dataclasses.replace(result, network=network)
    result.notes.extend(notes)
    result.notes.extend(DEVNET_NOTE + note for note in devnet.notes())
    result.notes.extend(DEVNET_NOTE + incident for incident in devnet.incidents()[incidents_before:])
    result = finish_result(plan, result)
    if telemetry is not None and telemetry_run is not None:
        # The test's process finds the stored run by it (the regression gate reads it back).
        result = dataclasses.replace(result, run_id=telemetry_run)
        telemetry.end(
            telemetry_run,
            reports=list(reports),
            shares=list(shares),
            origin_unix_ns=origin_unix_ns,
            result=result,
            status=status,
        )
    logger.debug(
        "run %r finished: %d report(s), %d verdict(s)", plan.name, len(reports), len(result.verdicts)
    )
    return result


def publish_finished(live: Any, live_run: str, result: RunResult, reports: Sequence[EdgeReport]) -> None:
    """Give the live API's board the finished run: each edge's final counters, from the same digests
    the result sums, so the served counters equal the result's; the same by template; and the
    latency histograms."""
    from pytest_gashammer.serve.metrics import latency_histogram
    from pytest_gashammer.telemetry.digest import BUCKET_FIELDS, TEMPLATE_FIELDS

    gas = BUCKET_FIELDS.index("included_gas")
    edges = {
        report.edge_id: {
            "sent": report.digest.sent,
            "accepted": report.digest.accepted,
            "rejected": report.digest.rejected,
            "included": report.digest.included,
            "included_gas": int(sum(bucket[gas] for bucket in report.digest.buckets.values())),
        }
        for report in reports
    }
    templates = {
        report.edge_id: {
            name: dict(zip(TEMPLATE_FIELDS, counts, strict=True))
            for name, counts in report.digest.by_template.items()
        }
        for report in reports
    }
    histograms = {
        "inclusion": latency_histogram([report.digest.inclusion_latency for report in reports]),
        "feed": latency_histogram([report.digest.feed_latency for report in reports]),
    }
    live.run_finished(live_run, result, edges=edges, templates=templates, histograms=histograms)


def abandon_run(telemetry: Any, telemetry_run: str | None, status: str) -> None:
    """End a telemetry run that produced no result (``status`` "failed" or "interrupted")."""
    if telemetry is not None and telemetry_run is not None:
        logger.debug("telemetry run %s ends %s", telemetry_run, status)
        telemetry.end(telemetry_run, reports=[], shares=[], origin_unix_ns=None, status=status)
