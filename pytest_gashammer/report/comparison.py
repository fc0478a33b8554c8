"""The HTML report's comparison section: each run against its baseline run (``--gashammer-compare``)."""

from __future__ import annotations

import html
import os
from collections.abc import Sequence

from pytest_gashammer.compare.compare import Comparison, format_percent, format_value
from pytest_gashammer.compare.gate import compare_stored
from pytest_gashammer.compare.thresholds import NOISE_THRESHOLD, Threshold

_STYLE = {"regressed": "color:#b00020;font-weight:bold", "improved": "color:#1b7f3b;font-weight:bold"}


def comparison_section(
    directory: str | os.PathLike[str],
    baseline_name: str,
    run_ids: Sequence[str],
    *,
    thresholds: Sequence[Threshold] = (),
) -> tuple[str, str]:
    """``(title, html)`` of the comparison of ``run_ids`` with baseline ``baseline_name``."""
    comparisons = compare_stored(directory, baseline_name, run_ids, thresholds=thresholds)
    return f"Comparison with baseline {baseline_name}", comparison_html(comparisons)


def comparison_html(comparisons: Sequence[Comparison]) -> str:
    parts = [
        "<p>Change of each metric against the baseline run of the same test, with its 95 % bootstrap "
        f"interval over per-second samples; a change is a regression or an improvement only when the "
        f"whole interval lies beyond ±{NOISE_THRESHOLD:.0%}, and fails a threshold only when the whole "
        "interval is past it.</p>"
    ]
    for comparison in comparisons:
        e = html.escape
        title = f"{comparison.test_nodeid} — run {', '.join(comparison.new_runs)}"
        if comparison.baseline_runs:
            title += f" vs {', '.join(comparison.baseline_runs)}"
        parts.append(f"<h3>{e(title)}</h3>")
        if not comparison.comparable:
            parts.append(
                f"<p class='comparison-not-comparable'>not comparable: {e(comparison.difference or '')}</p>"
            )
            continue
        if comparison.notes:
            parts.append("<p>" + "; ".join(e(note) for note in comparison.notes) + "</p>")
        rows = []
        for change in comparison.changes:
            verdict = change.verdict + (f" — past {change.threshold}, FAILED" if change.failed else "")
            style = _STYLE.get(change.verdict, "")
            rows.append(
                "<tr>"
                f"<td>{e(change.metric)}</td><td>{e(format_value(change.baseline, change.unit))}</td>"
                f"<td>{e(format_value(change.now, change.unit))}</td><td>{e(format_percent(change.change))}</td>"
                f"<td>[{e(format_percent(change.low))}, {e(format_percent(change.high))}]</td>"
                f"<td>{e(change.threshold or '')}</td><td style='{style}'>{e(verdict)}</td></tr>"
            )
        parts.append(
            "<table class='comparison'><thead><tr><th>metric</th><th>baseline</th><th>now</th><th>change</th>"
            "<th>95 % interval</th><th>threshold</th><th>verdict</th></tr></thead><tbody>"
            + "".join(rows)
            + "</tbody></table>"
        )
    return "\n".join(parts)
