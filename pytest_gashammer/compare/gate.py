"""The gate of ``--gashammer-compare``: runs just stored, against their baseline runs."""

from __future__ import annotations

import os
from collections.abc import Sequence

from pytest_gashammer.compare.baseline import baseline_runs
from pytest_gashammer.compare.compare import Comparison, comparability, compare_runs
from pytest_gashammer.compare.samples import load_samples
from pytest_gashammer.compare.thresholds import Threshold


def gate_runs(
    directory: str | os.PathLike[str],
    baseline_name: str,
    *,
    run_ids: Sequence[str | None],
    nodeid: str,
    thresholds: Sequence[Threshold] = (),
) -> Comparison:
    """Compare stored runs ``run_ids`` of test ``nodeid`` (one ``hammer.run()``: one run, or its
    repeats) with the baseline's runs of the same test and scenario, each side pooled. Runs that
    cannot be compared come back with the ``difference``, against the baseline's first run of the
    test when none of them has the same scenario."""
    stored = [run_id for run_id in run_ids if run_id is not None]
    comparison = Comparison(nodeid, baseline_name, [], stored or ["-"])
    if len(stored) < len(run_ids) or not stored:
        comparison.difference = "the run was not stored (an isolated=True run keeps no telemetry)"
        return comparison
    rows = [
        row for row in baseline_runs(directory, baseline_name) if (row.get("test_nodeid") or "") == nodeid
    ]
    if not rows:
        comparison.difference = f"baseline {baseline_name!r} has no run of this test"
        return comparison
    news = [load_samples(directory, run_id) for run_id in stored]
    matching = [row for row in rows if comparability(row, news[0].row) is None]
    if not matching:
        comparison.baseline_runs = [rows[0]["run_id"]]
        comparison.difference = comparability(rows[0], news[0].row)
        return comparison
    baselines = [load_samples(directory, row["run_id"]) for row in matching]
    return compare_runs(baselines, news, baseline_name=baseline_name, thresholds=thresholds)


def compare_stored(
    directory: str | os.PathLike[str],
    baseline_name: str,
    run_ids: Sequence[str],
    *,
    thresholds: Sequence[Threshold] = (),
) -> list[Comparison]:
    """Compare stored ``run_ids`` with baseline ``baseline_name``: the runs of each test and scenario
    together (repeats pooled), in the order their first run started, as the gate does; the steps of
    a capacity search are left out (the search's row is compared)."""
    from pytest_gashammer.telemetry.parquet import load

    rows = load(directory, run_ids=list(run_ids), tables=("runs",)).runs.to_pylist()
    # A capacity search's steps are compared as the search (its own row, with what it found).
    rows = [row for row in rows if row.get("capacity_search") is None]
    rows.sort(key=lambda row: (row["started_at"], row["run_id"]))
    groups: list[list[dict]] = []
    comparisons = []
    for row in rows:
        if row["status"] != "finished":
            comparison = Comparison(row.get("test_nodeid") or "", baseline_name, [], [row["run_id"]])
            comparison.difference = f"the run did not finish (status {row['status']})"
            comparisons.append(comparison)
            continue
        group = next((g for g in groups if comparability(g[0], row) is None), None)
        if group is None:
            groups.append([row])
        else:
            group.append(row)
    for group in groups:
        comparisons.append(
            gate_runs(
                directory,
                baseline_name,
                run_ids=[row["run_id"] for row in group],
                nodeid=group[0].get("test_nodeid") or "",
                thresholds=thresholds,
            )
        )
    return comparisons
