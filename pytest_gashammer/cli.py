"""``gashammer``: look at stored telemetry, and check scenario files, without pytest.

    gashammer report DIR [-o report.html] [--run RUN_ID ...] [--title TEXT]
    gashammer summary DIR [--run RUN_ID ...]
    gashammer compare DIR BASE [NEW] [--fail THRESHOLDS] [--json]
    gashammer schema
    gashammer validate FILE_OR_DIR ...

Why a separate command: telemetry outlives the session that wrote it. A CI job keeps the Parquet
directory as an artifact; later anyone re-renders the HTML report from it, or prints the same
per-run summary pytest printed, without re-running the load. Problems the user can fix (a missing
or foreign directory, an unknown run id) are one line on stderr and exit status 2.

``schema`` prints the JSON Schema of scenario files (for an editor's YAML validation) and
``validate`` checks scenario files as pytest would collect them, one located line per problem,
exit status 1 when there is any: a CI step or a pre-commit hook that needs no devnet.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pytest_gashammer._version import __version__
from pytest_gashammer.results import LATENCY_STATS, RUN_FIGURES, Figure, devnet_notes, run_notes

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gashammer",
        description="Render reports and summaries from pytest-gashammer telemetry (a --gashammer-parquet "
        "directory); print the scenario files' JSON Schema, or check scenario files.",
    )
    parser.add_argument("--version", action="version", version=f"pytest-gashammer {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    # What both commands read: the telemetry directory and, optionally, which runs of it.
    source = argparse.ArgumentParser(add_help=False)
    source.add_argument(
        "directory", metavar="DIR", help="telemetry directory written with --gashammer-parquet"
    )
    source.add_argument(
        "--run", dest="runs", action="append", metavar="RUN_ID", help="only this run (repeatable)"
    )

    report = commands.add_parser(
        "report",
        parents=[source],
        help="write the self-contained HTML report of a telemetry directory",
        description="Write the self-contained HTML report (opens offline) of a telemetry directory.",
    )
    report.add_argument(
        "-o", "--output", metavar="FILE", help="where to write the report (default: DIR/report.html)"
    )
    report.add_argument("--title", help="page title (default: gashammer report)")
    report.add_argument(
        "--compare",
        metavar="BASE",
        help="add a section comparing the runs with baseline BASE (--gashammer-save)",
    )

    compare = commands.add_parser(
        "compare",
        help="compare stored runs with a baseline, as --gashammer-compare does",
        description="Compare runs of a telemetry directory with baseline BASE (saved with --gashammer-save): "
        "per metric the change, its 95%% bootstrap interval over per-second samples, and a verdict. "
        "Exit status 1 when a --fail threshold is exceeded.",
    )
    compare.add_argument(
        "directory", metavar="DIR", help="telemetry directory written with --gashammer-parquet"
    )
    compare.add_argument("base", metavar="BASE", help="the baseline's name")
    compare.add_argument(
        "new",
        metavar="NEW",
        nargs="?",
        help="a baseline name or a run id (default: the newest run of each test that is not in BASE)",
    )
    compare.add_argument(
        "--fail",
        metavar="THRESHOLDS",
        help="e.g. included_gas_per_sec:-5%%,inclusion_p99:+10%%, as --gashammer-compare-fail",
    )
    compare.add_argument("--json", action="store_true", help="print the comparisons as JSON")

    commands.add_parser(
        "summary",
        parents=[source],
        help="print the per-run summary pytest printed",
        description="Print the per-run summary (as at the end of a pytest session) of a telemetry directory.",
    )
    commands.add_parser(
        "schema",
        help="print the JSON Schema of scenario files (gashammer_*.yaml)",
        description="Print the JSON Schema of scenario files, generated from the marker's arguments, for "
        "an editor's YAML validation.",
    )
    validate = commands.add_parser(
        "validate",
        help="check scenario files without running them",
        description="Check scenario files as pytest would collect them: one line per problem, "
        "FILE:LINE:COLUMN: KEY: what is wrong. Exit status 1 when there is any problem. A directory "
        "stands for the scenario files under it.",
    )
    validate.add_argument("paths", metavar="FILE", nargs="+", help="a scenario file, or a directory of them")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``gashammer`` console script; returns the exit status."""
    arguments = _parser().parse_args(argv)
    try:
        if arguments.command == "report":
            return _report(arguments)
        if arguments.command == "compare":
            return _compare(arguments)
        if arguments.command == "schema":
            return _schema()
        if arguments.command == "validate":
            return _validate(arguments.paths)
        return _summary(arguments)
    except _UsageError as exc:
        print(f"gashammer: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as exc:
        print(
            f"gashammer: error: {exc.strerror or exc} ({exc.filename or ''})".rstrip(" ()"), file=sys.stderr
        )
        return EXIT_FAILURE


class _UsageError(Exception):
    pass


def _schema() -> int:
    from pytest_gashammer.scenario.files import file_schema

    print(json.dumps(file_schema(), indent=2))
    return EXIT_OK


def _validate(paths: Sequence[str]) -> int:
    from pytest_gashammer.scenario.files import file_problems, scenario_paths

    files = scenario_paths([Path(path) for path in paths])
    if not files:
        raise _UsageError(f"no scenario files (gashammer_*.yaml, *.gashammer.yaml) in {', '.join(paths)}")
    for path in files:
        _importable_like_pytest(path)
    problems = [problem for path in files for problem in file_problems(path)]
    for problem in problems:
        print(problem)
    checked = f"{len(files)} scenario file(s)"
    print(f"gashammer: {checked}, {len(problems) or 'no'} problem(s)", file=sys.stderr)
    return EXIT_FAILURE if problems else EXIT_OK


def _importable_like_pytest(path: Path) -> None:
    """Put on ``sys.path`` what pytest's default import mode would before collecting ``path``: the
    directory of each ``conftest.py`` above it that is not in a package, so a template named by
    import path in a scenario file imports here as it does under pytest."""
    for directory in path.resolve().parents:
        conftest = (directory / "conftest.py").is_file() and not (directory / "__init__.py").is_file()
        if conftest and str(directory) not in sys.path:
            sys.path.insert(0, str(directory))


def _load_summary(directory: str, runs: Sequence[str] | None) -> tuple[Any, list[str]]:
    from pytest_gashammer.telemetry.parquet import TelemetryDirectoryError, load

    try:
        tables = load(directory, tables=("runs", "verdicts", "edges"))
    except (TelemetryDirectoryError, ValueError) as exc:
        raise _UsageError(str(exc)) from None
    known = tables.run_ids()
    if runs:
        unknown = [run for run in runs if run not in known]
        if unknown:
            listed = ", ".join(known[:5]) + (" ..." if len(known) > 5 else "")
            raise _UsageError(
                f"no run {unknown[0]!r} in {directory} (it has {len(known)} run(s): {listed or 'none'})"
            )
        return tables, list(runs)
    return tables, known


def _report(arguments: argparse.Namespace) -> int:
    from pytest_gashammer.report.html import render_report
    from pytest_gashammer.telemetry.parquet import TelemetryDirectoryError

    _, run_ids = _load_summary(arguments.directory, arguments.runs)
    output = Path(arguments.output) if arguments.output else Path(arguments.directory) / "report.html"
    sections = []
    if arguments.compare:
        from pytest_gashammer.compare.baseline import read_baseline
        from pytest_gashammer.errors import ConfigError
        from pytest_gashammer.report.comparison import comparison_section

        try:
            in_base = {
                entry["run_id"] for entry in read_baseline(arguments.directory, arguments.compare)["runs"]
            }
        except ConfigError as exc:
            raise _UsageError(str(exc)) from None
        others = [run_id for run_id in run_ids if run_id not in in_base]
        sections.append(comparison_section(arguments.directory, arguments.compare, others))
    try:
        written = render_report(
            arguments.directory, output, run_ids=run_ids, title=arguments.title, extra_sections=sections
        )
    except TelemetryDirectoryError as exc:
        raise _UsageError(str(exc)) from None
    print(f"wrote {written} ({len(run_ids)} run(s))")
    return EXIT_OK


def _compare(arguments: argparse.Namespace) -> int:
    from pytest_gashammer.compare.baseline import baseline_names, read_baseline
    from pytest_gashammer.compare.gate import compare_stored
    from pytest_gashammer.compare.thresholds import parse_thresholds
    from pytest_gashammer.errors import ConfigError

    try:
        thresholds = parse_thresholds(arguments.fail) if arguments.fail else ()
        base = read_baseline(arguments.directory, arguments.base)
    except ConfigError as exc:
        raise _UsageError(f"{exc}") from None
    tables, known = _load_summary(arguments.directory, None)
    in_base = {entry["run_id"] for entry in base.get("runs", ())}
    if arguments.new is None:
        # The newest run of each test that the baseline does not hold (a capacity search's own row,
        # not one of its steps: what it found is there).
        newest: dict[str, str] = {}
        for run_id in known:  # in the order they started
            row = next(r for r in tables.runs.to_pylist() if r["run_id"] == run_id)
            if run_id not in in_base and row.get("capacity_search") is None:
                newest[row.get("test_nodeid") or run_id] = run_id
        run_ids = list(newest.values())
    elif arguments.new in baseline_names(arguments.directory):
        run_ids = [
            entry["run_id"] for entry in read_baseline(arguments.directory, arguments.new).get("runs", ())
        ]
    elif arguments.new in known:
        run_ids = [arguments.new]
    else:
        raise _UsageError(
            f"{arguments.new!r} is neither a baseline nor a run of {arguments.directory}; "
            f"baselines: {', '.join(baseline_names(arguments.directory)) or 'none'}"
        )
    if not run_ids:
        raise _UsageError(f"no run to compare with {arguments.base!r} in {arguments.directory}")
    comparisons = compare_stored(arguments.directory, arguments.base, run_ids, thresholds=thresholds)
    if arguments.json:
        print(json.dumps([comparison.to_dict() for comparison in comparisons], indent=2))
    else:
        for comparison in comparisons:
            print("\n".join(comparison.lines()))
    return EXIT_FAILURE if any(comparison.failed for comparison in comparisons) else EXIT_OK


def _summary(arguments: argparse.Namespace) -> int:
    from pytest_gashammer.report.terminal import format_run_summary

    tables, run_ids = _load_summary(arguments.directory, arguments.runs)
    if not run_ids:
        print(f"{arguments.directory}: no runs")
        return EXIT_OK
    verdicts = tables.verdicts.to_pylist()
    by_id = {row["run_id"]: row for row in tables.runs.to_pylist()}
    print(f"gashammer: {len(run_ids)} run(s) in {arguments.directory}")
    for run_id in run_ids:
        row = by_id[run_id]
        nodeid = row.get("test_nodeid") or run_id
        if row.get("sent") is None:
            lines = [
                f"{nodeid}  [{row['scenario']}] seed={row['seed']}  run {run_id}",
                f"  status     {row['status']}: no result was recorded for this run",
                *_stored_counts(arguments.directory, run_id),
            ]
        else:
            lines = format_run_summary(
                nodeid, summary_dict(row, [v for v in verdicts if v["run_id"] == run_id])
            )
            lines[0] += f"  run {run_id}"
        print("\n".join(lines))
    return EXIT_OK


def _stored_counts(directory: str, run_id: str) -> list[str]:
    from pytest_gashammer.telemetry.parquet import load

    tables = load(directory, run_ids=[run_id], tables=("transactions",), columns={"transactions": ["state"]})
    states = tables.transactions.column("state").cast("string").value_counts().to_pylist()
    if not states:
        return ["  stored     no transactions"]
    counts = "  ".join(f"{item['values']} {item['counts']:,}" for item in states)
    return [f"  stored     {tables.transactions.num_rows:,} transactions: {counts}"]


def summary_dict(run: dict[str, Any], verdicts: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """A ``runs`` row (and its verdict rows) as ``RunResult.summary_dict()``, the input of the
    terminal summary, so stored runs print exactly as live ones did."""
    summary = {figure.name: _stored_figure(figure, run) for figure in RUN_FIGURES}
    summary["verdicts"] = [
        {"name": v["name"], "status": v["status"], "summary": v["summary"]} for v in verdicts
    ]
    summary["devnet_notes"] = devnet_notes(summary["notes"] or ())
    summary["run_notes"] = run_notes(summary["notes"] or ())
    return summary


def _stored_figure(figure: Figure, run: dict[str, Any]) -> Any:
    """One figure as the summary holds it, read back from its ``runs`` columns."""
    if figure.kind == "latency":
        stats = {stat: run.get(column) for column, stat in zip(figure.columns, LATENCY_STATS, strict=True)}
        return {
            stat: int(value or 0) if stat == "count" else math.nan if value is None else float(value)
            for stat, value in stats.items()
        }
    value = run.get(figure.stored_as)
    if value is None or (figure.kind == "json" and not value):
        return math.nan if figure.kind == "float" else figure.plain(figure.missing)
    if figure.kind == "json":
        return json.loads(value)
    if figure.kind == "float":
        return float(value)
    return value


if __name__ == "__main__":
    sys.exit(main())
