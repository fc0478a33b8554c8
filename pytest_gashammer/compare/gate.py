"""The gate of ``--gashammer-compare``: a run just stored, against its baseline run."""

from __future__ import annotations

import os
from collections.abc import Sequence

from pytest_gashammer.compare.baseline import baseline_runs
from pytest_gashammer.compare.compare import Comparison, comparability, compare_runs, match_baseline
from pytest_gashammer.compare.samples import load_samples
from pytest_gashammer.compare.thresholds import Threshold


def gate_run(
    directory: str | os.PathLike[str],
    baseline_name: str,
    *,
    run_id: str | None,
    nodeid: str,
    occurrence: int,
    thresholds: Sequence[Threshold] = (),
) -> Comparison:
    """Compare stored run ``run_id`` (the ``occurrence``-th run of test ``nodeid`` in its session,
    from 0) with the baseline's run of the same test and place; a run that cannot be compared comes
    back with its ``difference``."""
    comparison = Comparison(nodeid, baseline_name, None, run_id or "-")
    if run_id is None:
        comparison.difference = "the run was not stored (an isolated=True run keeps no telemetry)"
        return comparison
    rows = baseline_runs(directory, baseline_name)
    row = match_baseline(rows, nodeid, occurrence)
    if row is None:
        had = sum(1 for r in rows if (r.get("test_nodeid") or "") == nodeid)
        comparison.difference = (
            f"baseline {baseline_name!r} has no run of this test"
            if had == 0
            else f"baseline {baseline_name!r} has {had} run(s) of this test, this is run #{occurrence + 1}"
        )
        return comparison
    new = load_samples(directory, run_id)
    difference = comparability(row, new.row)
    if difference is not None:
        comparison.baseline_run = row["run_id"]
        comparison.difference = difference
        return comparison
    return compare_runs(
        load_samples(directory, row["run_id"]), new, baseline_name=baseline_name, thresholds=thresholds
    )


def compare_stored(
    directory: str | os.PathLike[str],
    baseline_name: str,
    run_ids: Sequence[str],
    *,
    thresholds: Sequence[Threshold] = (),
) -> list[Comparison]:
    """Compare stored ``run_ids`` (in the order they started) with baseline ``baseline_name``: each
    run against the baseline's run of the same test and place, as the gate did in the session."""
    from pytest_gashammer.telemetry.parquet import load

    rows = load(directory, run_ids=list(run_ids), tables=("runs",)).runs.to_pylist()
    rows.sort(key=lambda row: (row["started_at"], row["run_id"]))
    seen: dict[str, int] = {}
    comparisons = []
    for row in rows:
        nodeid = row.get("test_nodeid") or ""
        occurrence = seen.get(nodeid, 0)
        seen[nodeid] = occurrence + 1
        if row["status"] != "finished":
            comparison = Comparison(nodeid, baseline_name, None, row["run_id"])
            comparison.difference = f"the run did not finish (status {row['status']})"
            comparisons.append(comparison)
            continue
        comparisons.append(
            gate_run(
                directory,
                baseline_name,
                run_id=row["run_id"],
                nodeid=nodeid,
                occurrence=occurrence,
                thresholds=thresholds,
            )
        )
    return comparisons
