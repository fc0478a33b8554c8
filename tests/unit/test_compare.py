"""Regression gating: the thresholds' parser, the bootstrap, comparability, stored comparisons, the CLI."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from pytest_gashammer.cli import main
from pytest_gashammer.compare.baseline import baseline_runs, read_baseline, save_baseline
from pytest_gashammer.compare.compare import comparability, compare_runs, regression_verdict, verdict_of
from pytest_gashammer.compare.gate import compare_stored, gate_runs
from pytest_gashammer.compare.samples import RunSamples
from pytest_gashammer.compare.stats import Change, latency_histograms, quantile_change, rate_change
from pytest_gashammer.compare.thresholds import Threshold, parse_thresholds
from pytest_gashammer.errors import ConfigError
from pytest_gashammer.report.comparison import comparison_section
from pytest_gashammer.telemetry.parquet import ParquetRunWriter
from tests.unit.test_telemetry_parquet import store
from tests.unit.test_telemetry_synthetic import synthetic_report

NODEID = "tests/test_load.py::test_transfers"

# ------------------------------------------------------------------------------------ thresholds


def test_thresholds_parse_signed_and_unsigned_percentages() -> None:
    assert parse_thresholds("included_gas_per_sec:-5%, inclusion_p99:+10%") == (
        Threshold("included_gas_per_sec", -0.05),
        Threshold("inclusion_p99", 0.10),
    )
    # Unsigned: the direction in which the metric gets worse.
    assert parse_thresholds("included_gas_per_sec:5%,inclusion_p99:2.5%,capacity:5%") == (
        Threshold("included_gas_per_sec", -0.05),
        Threshold("inclusion_p99", 0.025),
        Threshold("capacity", -0.05),
    )
    assert str(Threshold("inclusion_p99", 0.10)) == "inclusion_p99:+10%"


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ("throughput:-5%", ["'throughput:-5%'", "unknown metric 'throughput'", "included_gas_per_sec"]),
        ("included_gas_per_sec:-5", ["'included_gas_per_sec:-5'", "included_gas_per_sec:-5%"]),
        ("inclusion_p99:-10%", ["'inclusion_p99:-10%'", "better lower", "inclusion_p99:+10%"]),
        ("included_gas_per_sec:+5%", ["better higher", "included_gas_per_sec:-5%"]),
        ("inclusion_p99:0%", ["more than 0%", "inclusion_p99:+5%"]),
        ("inclusion_p99:+1%,inclusion_p99:+2%", ["has a threshold already"]),
        (" , ", ["names no threshold", "included_gas_per_sec:-5%"]),
        ("inclusion_p99", ["'inclusion_p99' is not METRIC:PERCENT", "inclusion_p99:+5%"]),
    ],
)
def test_bad_thresholds_are_one_line_errors_naming_the_token_and_the_fix(text: str, names: list[str]) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_thresholds(text)
    message = str(caught.value)
    assert "\n" not in message
    for name in names:
        assert name in message


def test_a_threshold_fails_only_when_the_whole_interval_is_past_it() -> None:
    latency = Threshold("inclusion_p99", 0.10)
    assert latency.exceeded(0.11, 0.30)
    assert not latency.exceeded(0.05, 0.30)  # the interval reaches below the threshold
    rate = Threshold("included_gas_per_sec", -0.05)
    assert rate.exceeded(-0.20, -0.06)
    assert not rate.exceeded(-0.20, -0.01)
    assert not rate.exceeded(float("nan"), float("nan"))


# ------------------------------------------------------------------------------------- bootstrap


def test_a_known_shift_of_a_rate_is_detected_with_an_interval_around_it() -> None:
    rng = np.random.default_rng(1)
    base = rng.normal(10e6, 0.3e6, 30)
    slower = rng.normal(9e6, 0.3e6, 30)  # 10 % lower
    change = rate_change("included_gas_per_sec", base, slower)
    assert change.low < change.change < change.high
    assert change.low > -0.13 and change.high < -0.07
    assert verdict_of(change, higher_is_better=True) == "regressed"
    assert verdict_of(change, higher_is_better=False) == "improved"


def test_the_interval_widens_for_few_seconds() -> None:
    from pytest_gashammer.compare.stats import expanded_tail

    # The expanded percentile interval: the tails shrink as the seconds do, and tend to 2.5 %.
    tails = [expanded_tail(n) for n in (3, 4, 5, 10, 30, 1000)]
    assert tails == sorted(tails) and tails[0] < 1e-4 and 1.8 < tails[-2] < 1.95 and 2.45 < tails[-1] < 2.5
    rng = np.random.default_rng(4)
    few = rate_change("included_gas_per_sec", rng.normal(10, 1, 4), rng.normal(10, 1, 4))
    many = rate_change("included_gas_per_sec", rng.normal(10, 1, 40), rng.normal(10, 1, 40))
    assert few.high - few.low > 2 * (many.high - many.low)


def test_identical_samples_are_no_change_and_the_bootstrap_is_deterministic() -> None:
    rng = np.random.default_rng(2)
    base = rng.normal(10e6, 0.5e6, 20)
    same = rate_change("included_gas_per_sec", base, base.copy())
    assert same.change == 0.0
    assert same.low < 0 < same.high
    assert verdict_of(same, higher_is_better=True) == "no change"
    assert rate_change("included_gas_per_sec", base, base * 1.01) == rate_change(
        "included_gas_per_sec", base, base * 1.01
    )


def _latencies(rng: np.random.Generator, seconds: int, per_second: int, shift: float = 0.0):
    where = np.repeat(np.arange(seconds), per_second)
    values = rng.lognormal(np.log(0.3), 0.3, where.size) + shift
    return latency_histograms(where, values, seconds), np.sort(values)


def test_a_latency_quantile_shift_is_detected_and_noise_is_not() -> None:
    rng = np.random.default_rng(3)
    base, base_sorted = _latencies(rng, 5, 200)
    again, again_sorted = _latencies(rng, 5, 200)
    slow, slow_sorted = _latencies(rng, 5, 200, shift=0.2)
    p99 = [float(s[int(np.ceil(0.99 * s.size)) - 1]) for s in (base_sorted, again_sorted, slow_sorted)]
    noise = quantile_change("inclusion_p99", 0.99, base, again, (p99[0], p99[1]))
    assert not Threshold("inclusion_p99", 0.10).exceeded(noise.low, noise.high)
    shifted = quantile_change("inclusion_p99", 0.99, base, slow, (p99[0], p99[2]))
    assert shifted.low > 0.10
    assert verdict_of(shifted, higher_is_better=False) == "regressed"
    assert Threshold("inclusion_p99", 0.10).exceeded(shifted.low, shifted.high)
    assert shifted == quantile_change("inclusion_p99", 0.99, base, slow, (p99[0], p99[2]))


def test_no_samples_is_not_measured_and_few_seconds_give_no_interval() -> None:
    change = rate_change("included_gas_per_sec", np.array([]), np.array([1.0]))
    assert verdict_of(change, higher_is_better=True) == "not measured"
    # Two seconds against two: a 30 % drop is shown, and judged by nothing (it could be noise).
    short = rate_change("included_gas_per_sec", np.array([10.0, 10.2]), np.array([7.0, 7.1]))
    assert short.change == pytest.approx(-0.3, abs=0.01)
    assert verdict_of(short, higher_is_better=True) == "too few seconds (under 3)"
    assert not Threshold("included_gas_per_sec", -0.05).exceeded(short.low, short.high)
    assert verdict_of(Change(0.0, -0.01, 0.01), higher_is_better=True) == "no change"


# --------------------------------------------------------------------------------- comparability


def _row(**changes: object) -> dict:
    plan = {"name": "test_x", "seed": 1, "nodeid": NODEID, "target_gas_per_sec": 2e6, "phases": [[0, 4]]}
    plan.update(changes.pop("plan", {}))  # type: ignore[call-overload]
    row = {"test_nodeid": NODEID, "devnet_kind": "embedded", "plan_json": json.dumps(plan)}
    row.update(changes)
    return row


def test_comparability_names_what_differs() -> None:
    assert comparability(_row(), _row()) is None
    assert comparability(_row(), _row(plan={"seed": 99})) is None  # the same load, other transactions
    assert (
        comparability(_row(), _row(devnet_kind="ethereumjs"))
        == "devnet embedded in the baseline, ethereumjs now"
    )
    changed = comparability(_row(), _row(plan={"target_gas_per_sec": 4e6}))
    assert changed == "the scenario changed: target_gas_per_sec 2000000.0 -> 4000000.0"
    phases = [{"name": "warmup", "start": 0, "end": 1}, {"name": "sustain", "start": 1, "end": 4}]
    shorter = [phases[0], {**phases[1], "end": 3}]
    assert comparability(_row(plan={"phases": phases}), _row(plan={"phases": shorter})) == (
        "the scenario changed: phases warmup 1s + sustain 3s -> warmup 1s + sustain 2s"
    )
    assert "another test" in (comparability(_row(), _row(test_nodeid="t.py::other")) or "")


# ----------------------------------------------------------------------------- stored comparisons


def _slowed(run, seconds: float):
    """The same run with every inclusion ``seconds`` later (a chain behind a slow proxy)."""
    included = np.frombuffer(run.txs.included_ns, dtype=np.int64).copy()
    included[included >= 0] += int(seconds * 1e9)
    run.txs.included_ns = type(run.txs.included_ns)("q", included.tobytes())
    return run


@pytest.fixture(scope="module")
def telemetry(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    directory = tmp_path_factory.mktemp("telemetry")
    runs = {}
    with ParquetRunWriter(directory) as writer:
        runs["base"] = store(writer, synthetic_report(8_000, seed=7), nodeid=NODEID)
        runs["again"] = store(writer, synthetic_report(8_000, seed=8), nodeid=NODEID)
        runs["slow"] = store(writer, _slowed(synthetic_report(8_000, seed=9), 0.3), nodeid=NODEID)
        runs["other_plan"] = store(writer, synthetic_report(6_000, seed=7), nodeid=NODEID)
        runs["other_test"] = store(writer, synthetic_report(8_000, seed=7), nodeid="tests/t.py::test_new")
    path, saved = save_baseline(directory, "main", [runs["base"]])
    assert saved == 1 and path == directory / "baselines" / "main.json"
    return directory, runs


# The synthetic run's slow stretch (2 % of its rows, in one second) decides its p99, so p99's interval
# is wide (resampling that second in or out): the median is the latency these tests gate on.
THRESHOLDS = parse_thresholds("included_gas_per_sec:-5%,inclusion_p50:+10%,inclusion_p99:+10%")


def test_a_baseline_names_its_runs_with_their_origin(telemetry: tuple[Path, dict[str, str]]) -> None:
    directory, runs = telemetry
    document = read_baseline(directory, "main")
    assert [entry["run_id"] for entry in document["runs"]] == [runs["base"]]
    assert {"git_commit", "host", "plugin_version", "node_version"} <= set(document)
    assert [row["run_id"] for row in baseline_runs(directory, "main")] == [runs["base"]]
    with pytest.raises(
        ConfigError, match=r"no baseline 'pr' in .* \(it has main\); save one with --gashammer-save pr"
    ):
        read_baseline(directory, "pr")


def test_the_same_load_again_passes_the_gate(telemetry: tuple[Path, dict[str, str]]) -> None:
    directory, runs = telemetry
    comparison = gate_runs(directory, "main", run_ids=[runs["again"]], nodeid=NODEID, thresholds=THRESHOLDS)
    assert comparison.comparable and comparison.baseline_runs == [runs["base"]]
    assert not comparison.failed
    by_metric = {change.metric: change for change in comparison.changes}
    assert set(by_metric) >= {"included_gas_per_sec", "inclusion_p99", "inclusion_p50", "accept_p99"}
    for change in by_metric.values():
        assert change.low <= change.high
    assert regression_verdict(comparison).status == "passed"


def test_a_slower_run_fails_the_gate_on_inclusion_latency_and_names_it(
    telemetry: tuple[Path, dict[str, str]],
) -> None:
    directory, runs = telemetry
    comparison = gate_runs(directory, "main", run_ids=[runs["slow"]], nodeid=NODEID, thresholds=THRESHOLDS)
    (failed,) = comparison.failed
    assert failed.metric == "inclusion_p50" and failed.verdict == "regressed"
    assert failed.low > 0.10
    p99 = next(change for change in comparison.changes if change.metric == "inclusion_p99")
    assert p99.low < 0.10 < p99.high and not p99.failed  # one slow second: not significant
    verdict = regression_verdict(comparison)
    assert verdict.status == "failed"
    assert verdict.summary.startswith("regressed against baseline 'main': inclusion_p50 +")
    table = "\n".join(comparison.lines())
    assert "metric" in table and "95% interval" in table and "past inclusion_p50:+10%: FAILED" in table


def test_runs_that_are_not_comparable_say_why(telemetry: tuple[Path, dict[str, str]]) -> None:
    directory, runs = telemetry
    other_plan = gate_runs(directory, "main", run_ids=[runs["other_plan"]], nodeid=NODEID)
    assert other_plan.difference is not None and other_plan.difference.startswith("the scenario changed: ")
    assert "phases" in other_plan.difference
    assert other_plan.lines()[-1] == f"  not comparable: {other_plan.difference}"
    verdict = regression_verdict(other_plan)
    assert verdict.status == "inconclusive" and verdict.summary.startswith(
        "not comparable: the scenario changed"
    )
    new_test = gate_runs(directory, "main", run_ids=[runs["other_test"]], nodeid="tests/t.py::test_new")
    assert new_test.difference == "baseline 'main' has no run of this test"
    unstored = gate_runs(directory, "main", run_ids=[None], nodeid=NODEID)
    assert unstored.difference is not None and "not stored" in unstored.difference


def test_repeats_are_pooled_and_noted(telemetry: tuple[Path, dict[str, str]]) -> None:
    directory, runs = telemetry
    single = gate_runs(directory, "main", run_ids=[runs["again"]], nodeid=NODEID, thresholds=THRESHOLDS)
    pooled = gate_runs(
        directory, "main", run_ids=[runs["again"], runs["slow"]], nodeid=NODEID, thresholds=THRESHOLDS
    )
    assert pooled.comparable and pooled.new_runs == [runs["again"], runs["slow"]]
    assert "1 baseline run(s) against 2 now, each side pooled" in pooled.notes
    assert "2 runs " in pooled.lines()[0]
    p50 = {c.metric: c for c in pooled.changes}["inclusion_p50"]
    # Half the pooled seconds are 300 ms slower: the median moves, less than the slowed run's alone.
    assert 0 < p50.change < {c.metric: c for c in single.changes}["inclusion_p50"].change + 0.75


def test_stored_comparisons_and_the_report_section(telemetry: tuple[Path, dict[str, str]]) -> None:
    directory, runs = telemetry
    (again,) = compare_stored(directory, "main", [runs["again"]], thresholds=THRESHOLDS)
    (slow,) = compare_stored(directory, "main", [runs["slow"]], thresholds=THRESHOLDS)
    assert (again.new_runs, bool(again.failed), slow.new_runs, bool(slow.failed)) == (
        [runs["again"]],
        False,
        [runs["slow"]],
        True,
    )
    # Runs of one test and scenario are compared together (repeats), each test and scenario apart.
    together, other_test = compare_stored(
        directory, "main", [runs["slow"], runs["other_test"], runs["again"]], thresholds=THRESHOLDS
    )
    assert together.new_runs == [runs["again"], runs["slow"]]  # in the order they ran
    assert other_test.difference == "baseline 'main' has no run of this test"
    title, page = comparison_section(directory, "main", [runs["slow"]], thresholds=THRESHOLDS)
    assert title == "Comparison with baseline main"
    assert "inclusion_p50" in page and "FAILED" in page and "95 % interval" in page


def test_the_cli_prints_the_table_and_json_and_fails_past_a_threshold(
    telemetry: tuple[Path, dict[str, str]], capsys: pytest.CaptureFixture[str]
) -> None:
    directory, runs = telemetry
    fail = "included_gas_per_sec:-5%,inclusion_p50:+10%"
    assert main(["compare", str(directory), "main", runs["again"], "--fail", fail]) == 0
    assert "no change" in capsys.readouterr().out
    assert main(["compare", str(directory), "main", runs["slow"], "--fail", fail]) == 1
    out = capsys.readouterr().out
    assert "past inclusion_p50:+10%: FAILED" in out
    assert main(["compare", str(directory), "main", runs["slow"], "--json"]) == 0
    (data,) = json.loads(capsys.readouterr().out)
    assert data["comparable"] and data["baseline_runs"] == [runs["base"]]
    p50 = next(change for change in data["changes"] if change["metric"] == "inclusion_p50")
    assert p50["verdict"] == "regressed" and p50["low"] > 0.1 and not p50["failed"]  # no --fail
    # Without NEW: the newest run of each test that the baseline does not hold.
    assert main(["compare", str(directory), "main"]) == 0
    out = capsys.readouterr().out
    assert "not comparable: the scenario changed" in out and "has no run of this test" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["main", "nosuch"], "'nosuch' is neither a baseline nor a run"),
        (["pr"], "no baseline 'pr'"),
        (["main", "--fail", "inclusion_p99:-3%"], "better lower"),
        (["bad name"], "baseline name 'bad name' must be"),
    ],
)
def test_cli_compare_errors_are_one_line_and_exit_status_2(
    telemetry: tuple[Path, dict[str, str]], capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    directory, _ = telemetry
    assert main(["compare", str(directory), *args]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err


# --------------------------------------------------------------------------------------- options


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--gashammer-save", "main"], "--gashammer-save main needs --gashammer-parquet DIR"),
        (["--gashammer-compare", "main"], "--gashammer-compare main needs --gashammer-parquet DIR"),
        (
            ["--gashammer-compare-fail", "inclusion_p99:+10%"],
            "--gashammer-compare-fail needs --gashammer-compare",
        ),
        (["--gashammer-compare-fail", "p99:+10%"], "unknown metric 'p99'"),
        (["--gashammer-save", "a/b"], "baseline name 'a/b' must be"),
        (
            ["--gashammer-parquet", "store", "--gashammer-compare", "main"],
            "no baseline 'main' in store (it has none)",
        ),
    ],
)
def test_gate_options_are_one_line_usage_errors(
    pytester: pytest.Pytester, args: list[str], message: str
) -> None:
    pytester.makepyfile("def test_nothing(): pass")
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert message in result.stderr.str()


def test_the_report_command_adds_the_comparison_section(
    telemetry: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    directory, runs = telemetry
    output = tmp_path / "report.html"
    assert (
        main(
            [
                "report",
                str(directory),
                "-o",
                str(output),
                "--run",
                runs["base"],
                "--run",
                runs["slow"],
                "--compare",
                "main",
            ]
        )
        == 0
    )
    page = output.read_text()
    assert "Comparison with baseline main" in page and "inclusion_p99" in page


def test_slowed_fixture_really_is_slower(telemetry: tuple[Path, dict[str, str]]) -> None:
    directory, runs = telemetry
    from pytest_gashammer.compare.samples import load_samples

    base, slow = load_samples(directory, runs["base"]), load_samples(directory, runs["slow"])
    assert slow.value("inclusion_p50") > base.value("inclusion_p50") + 0.25
    assert dataclasses.is_dataclass(base) and base.seconds >= 5


def test_repeat_runs_the_plan_n_times_and_hands_the_repeats_over_together() -> None:
    from pytest_gashammer.hive.hammer import Hammer
    from pytest_gashammer.scenario.spec import parse_spec

    class CountingHive:
        def __init__(self) -> None:
            self.plans: list = []

        def run(self, plan, *, progress=None):  # type: ignore[no-untyped-def]
            self.plans.append(plan)
            return dataclasses.replace(synthetic_report(300).result, run_id=f"run-{len(self.plans)}")

    hive = CountingHive()
    seen: list = []
    together: list = []
    hammer = Hammer(
        name="test_x",
        nodeid=NODEID,
        spec=parse_spec({"gas_per_sec": "1M", "duration": "1s"}),
        hive=hive,  # type: ignore[arg-type]
        seed=1,
        duration_scale=1.0,
        progress_factory=lambda: None,
        on_result=seen.append,
        repeat=3,
        on_runs=together.append,
    )
    last = hammer.run(check=False)
    assert len(hive.plans) == 3 and len({id(plan) for plan in hive.plans}) == 1  # one plan, three runs
    assert [r.run_id for r in seen] == ["run-1", "run-2", "run-3"] and last.run_id == "run-3"
    assert [[r.run_id for r in group] for group in together] == [["run-1", "run-2", "run-3"]]


def test_the_terminal_summary_prints_the_comparison_under_the_verdicts() -> None:
    from pytest_gashammer.report.terminal import format_run_summary

    summary = synthetic_report(300).result.summary_dict()
    summary["comparison"] = ["t.py::test_x  run a  vs baseline 'main' run b", "  metric  baseline"]
    lines = format_run_summary("t.py::test_x", summary)
    at = next(i for i, line in enumerate(lines) if line.startswith("  verdicts"))
    assert lines[at + 1 : at + 3] == [
        "  compare    t.py::test_x  run a  vs baseline 'main' run b",
        "  compare      metric  baseline",
    ]


# ------------------------------------------------------------------------------ capacity searches


def _search(maximum: float | None, low: float | None, high: float | None, first: float = 1e6) -> RunSamples:
    found = {
        "max_gas_per_sec": maximum,
        "max_ci_low": low,
        "max_ci_high": high,
        "steps": [{"offered_gas_per_sec": first}],
    }
    row = _row(run_id="s", capacity_json=json.dumps(found))
    return RunSamples("s", row, json.loads(row["plan_json"]), 0)


def test_a_capacity_search_is_compared_on_what_it_found_with_the_brackets_as_interval() -> None:
    fail = (Threshold("capacity", -0.05),)
    # The same chain again: the brackets overlap, whichever step the noise flipped.
    same = compare_runs(
        [_search(3e6, 2.9e6, 6.2e6)], [_search(3e6, 2.9e6, 6.2e6)], baseline_name="b", thresholds=fail
    )
    (change,) = same.changes  # only what the search found: its row has no transactions
    assert change.metric == "capacity" and change.change == 0.0 and not change.failed
    assert change.verdict == "no change" and change.low < -0.5 and change.high > 1.0
    # A chain with a lower ceiling: its whole bracket is below the baseline's.
    lower = compare_runs(
        [_search(3e6, 2.9e6, None)], [_search(1e6, 0.97e6, 1.6e6)], baseline_name="b", thresholds=fail
    )
    (change,) = lower.changes
    assert change.change == pytest.approx(-2 / 3) and change.high == pytest.approx(1.6 / 2.9 - 1)
    assert change.failed and change.verdict == "regressed"
    assert "capacity" in regression_verdict(lower).summary and regression_verdict(lower).status == "failed"
    # Not even the first rate met the SLOs now: below 1 Mgas/s, a regression from 3 Mgas/s.
    none = compare_runs(
        [_search(3e6, 2.9e6, 6e6)], [_search(None, None, None)], baseline_name="b", thresholds=fail
    )
    (change,) = none.changes
    assert change.failed and change.verdict == "regressed" and change.high == pytest.approx(1 / 2.9 - 1)
    # Reaching 'to' now (no failing step): no upper end, never a regression.
    up = compare_runs(
        [_search(3e6, 2.9e6, 6e6)], [_search(8e6, 7.8e6, None)], baseline_name="b", thresholds=fail
    )
    assert up.changes[0].verdict == "improved" and not up.changes[0].failed
