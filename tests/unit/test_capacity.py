"""The capacity search without a chain: the marker argument, the ramp and bisection, the knee, the
interval of the maximum, and the hive's driver over a fake step runner that models a chain of known
capacity (each step's SLOs evaluated by the real oracle)."""

from __future__ import annotations

import dataclasses
import json
import math
import random
from typing import Any

import pytest

from pytest_gashammer.errors import ConfigError
from pytest_gashammer.hive import timeouts
from pytest_gashammer.hive.capacity import CAPACITY_VERDICT, run_capacity
from pytest_gashammer.oracle import finish_result
from pytest_gashammer.oracle.capacity import (
    DEFAULT_SLOS,
    CapacitySearch,
    bootstrap_mean_interval,
    capacity_figures,
    find_knee,
)
from pytest_gashammer.results import CapacityFigures, CapacityStep, Latency, LatencyStats, RunResult, Verdict
from pytest_gashammer.scenario.arguments import parse_capacity
from pytest_gashammer.scenario.spec import ScenarioPlan, capacity_step_plan, compile_plan, parse_spec

# ----------------------------------------------------------------------------------------------
# the marker argument


def test_capacity_fills_every_key_and_normalises_rates_and_durations() -> None:
    settings = dict(parse_capacity({"from": "1M", "to": "200M", "step": "8s"}))
    assert settings == {
        "from": 1e6,
        "to": 200e6,
        "step": 8.0,
        "max_step": 24.0,
        "max_steps": 16,
        "resolution": 0.05,
        "max_time": 1800.0,
    }


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("1M..2M", "capacity='1M..2M' must be a dict of the search's settings"),
        ({"to": "2M"}, "capacity needs 'from', the first offered gas rate"),
        ({"from": "1M"}, "capacity needs 'to', the highest offered gas rate"),
        ({"from": "2M", "to": "1M"}, "capacity: 'to' (1M) must be above 'from' (2M)"),
        ({"from": "fast", "to": "2M"}, "capacity['from']='fast' is not a gas rate"),
        ({"from": "1M", "to": "2M", "step": "500ms"}, "capacity['step']='500ms' must be at least 1 s"),
        ({"from": "1M", "to": "2M", "max_steps": 1}, "capacity['max_steps']=1 must be an integer >= 2"),
        (
            {"from": "1M", "to": "2M", "step": "4s", "max_step": "2s"},
            "capacity['max_step']='2s' is shorter than 'step' (4s): a step is held at least 'step', "
            "e.g. 'max_step': '12s'",
        ),
        (
            {"from": "1M", "to": "2M", "resolution": 1.5},
            "capacity['resolution']=1.5 must be a share in (0, 1)",
        ),
        ({"from": "1M", "to": "2M", "max_time": 0}, "capacity['max_time']=0 must be longer than zero"),
        ({"from": "1M", "to": "2M", "factor": 3}, "capacity: unknown key 'factor'; accepted: from, to, step"),
    ],
)
def test_each_bad_capacity_is_one_line_naming_it(value: Any, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_spec({"capacity": value})
    text = str(info.value)
    assert message in text and "\n" not in text, text


def test_gas_per_sec_defaults_to_from_and_must_agree_with_it() -> None:
    spec = parse_spec({"capacity": {"from": "2M", "to": "8M", "step": "3s"}})
    assert spec.gas_per_sec == 2e6
    assert parse_spec({"gas_per_sec": 2_000_000, "capacity": {"from": "2M", "to": "8M"}}).gas_per_sec == 2e6
    with pytest.raises(ConfigError, match=r"gas_per_sec='5M' and capacity\['from'\]='2M' differ"):
        parse_spec({"gas_per_sec": "5M", "capacity": {"from": "2M", "to": "8M"}})
    assert spec.replace() == spec
    # hammer.run(capacity=...) moves the search, its rate with it.
    moved = spec.replace(capacity={"from": "3M", "to": "9M"})
    assert moved.gas_per_sec == 3e6 and dict(moved.capacity)["to"] == 9e6


def test_a_search_plan_sustains_for_step_with_senders_for_to_and_steps_scale_every_phase() -> None:
    spec = parse_spec(
        {"capacity": {"from": "1M", "to": "64M", "step": "3s"}, "warmup": "1s", "duration": "60s"}
    )
    plan = compile_plan(spec, name="t", seed=1)
    assert plan.is_capacity_search and plan.sustain.length == 3.0 and plan.sending_time == 4.0
    assert plan.senders == compile_plan(parse_spec({"gas_per_sec": "64M"}), name="t", seed=1).senders
    step = capacity_step_plan(plan, 4e6, index=2, search="run-x", slo=DEFAULT_SLOS)
    assert not step.is_capacity_search and (step.capacity_step, step.capacity_search) == (2, "run-x")
    assert [(p.name, p.gas_from, p.gas_to) for p in step.phases] == [
        ("warmup", 4e5, 4e5),
        ("sustain", 4e6, 4e6),
    ]
    assert dict(step.slo) == DEFAULT_SLOS
    assert ScenarioPlan.from_dict(json.loads(json.dumps(step.to_dict()))) == step


def test_the_callers_wait_covers_the_whole_search() -> None:
    spec = parse_spec({"capacity": {"from": "1M", "to": "64M", "step": "3s", "max_time": "20m"}})
    plan = compile_plan(spec, name="t", seed=1)
    step = capacity_step_plan(plan, 2e6, index=0, search=None, slo=DEFAULT_SLOS)
    assert timeouts.answer_timeout(plan) > 1200 + timeouts.answer_timeout(step)


# ----------------------------------------------------------------------------------------------
# the search over a chain of known capacity


def rates_tried(
    capacity: float, start: float, stop: float, **settings: Any
) -> tuple[list[float], CapacitySearch]:
    search = CapacitySearch(
        start, stop, max_steps=settings.pop("max_steps", 16), resolution=settings.pop("resolution", 0.05)
    )
    tried: list[float] = []
    while (rate := search.next_rate()) is not None:
        tried.append(rate)
        search.record(rate, rate <= capacity)
    return tried, search


def test_the_ramp_doubles_until_a_step_fails_then_bisects_to_the_resolution() -> None:
    tried, search = rates_tried(5.3e6, 1e6, 200e6)
    assert tried[:4] == [1e6, 2e6, 4e6, 8e6]  # the ramp; 8M failed, nothing higher is tried
    assert max(tried) == 8e6
    assert tried[4] == 6e6  # then halfway between the last pass and the first failure
    assert search.highest_passed is not None and search.lowest_failed is not None
    assert search.highest_passed <= 5.3e6 < search.lowest_failed <= search.highest_passed * 1.05
    assert search.stopped.startswith("resolution")


def test_the_search_ends_at_to_when_every_step_met_the_slos() -> None:
    tried, search = rates_tried(1e12, 1e6, 5e6)
    assert tried == [1e6, 2e6, 4e6, 5e6] and search.stopped.startswith("the highest rate ('to'")


def test_the_search_ends_when_not_even_from_met_the_slos() -> None:
    tried, search = rates_tried(1e5, 1e6, 5e6)
    assert tried == [1e6] and search.highest_passed is None and "first step" in search.stopped


def test_the_search_takes_at_most_max_steps() -> None:
    tried, search = rates_tried(5.3e6, 1e6, 200e6, max_steps=5, resolution=0.001)
    assert len(tried) == 5 and search.stopped.startswith("max_steps")


def step(index: int, rate: float, p99: float, passed: bool = True) -> CapacityStep:
    return CapacityStep(index, rate, rate, rate, p99 / 2, p99, 0, {}, passed)


def test_the_knee_is_the_last_rate_before_latency_climbs_steeply() -> None:
    steps = [step(0, 1e6, 0.30), step(1, 2e6, 0.35), step(3, 3e6, 0.50), step(2, 4e6, 1.40, False)]
    assert find_knee(steps) == 3e6
    # Twice as slow, but by 60 ms: noise on a fast chain, not a knee.
    assert find_knee([step(0, 1e6, 0.03), step(1, 2e6, 0.09)]) is None
    assert find_knee([step(0, 1e6, 0.3)]) is None


def test_the_bootstrap_interval_holds_the_mean_and_narrows_with_samples() -> None:
    rng = random.Random(5)
    few = [1e6 + rng.gauss(0, 1e5) for _ in range(5)]
    many = [1e6 + rng.gauss(0, 1e5) for _ in range(200)]
    low_few, high_few = bootstrap_mean_interval(few, seed=1) or (0, 0)
    low_many, high_many = bootstrap_mean_interval(many, seed=1) or (0, 0)
    assert low_few < sum(few) / 5 < high_few
    assert low_many < sum(many) / 200 < high_many
    assert high_many - low_many < (high_few - low_few) / 2
    assert bootstrap_mean_interval([1.0], seed=1) is None
    assert bootstrap_mean_interval(few, seed=1) == bootstrap_mean_interval(few, seed=1)


def test_the_interval_of_the_maximum_is_the_bracket_widened_by_the_noise_at_each_end() -> None:
    steps = [step(0, 4e6, 0.3), step(1, 8e6, 5.0, False), step(2, 6e6, 2.5, False), step(3, 5e6, 0.4)]
    flat = {index: [s.included_gas_per_sec] * 8 for index, s in enumerate(steps)}
    figures = capacity_figures(steps, flat, stopped="x", slos=DEFAULT_SLOS)
    assert (figures.max_gas_per_sec, figures.first_failing_gas_per_sec) == (5e6, 6e6)
    assert figures.max_ci == (5e6, 6e6)  # no noise: the bracket itself
    noisy = {3: [5e6 + d for d in (-4e5, 3e5, -1e5, 2e5, 0.0, -2e5)], 2: [6e6 + d for d in (-1e5, 1e5) * 3]}
    widened = capacity_figures(steps, noisy, stopped="x", slos=DEFAULT_SLOS)
    assert widened.max_ci_low is not None and widened.max_ci_high is not None
    assert widened.max_ci_low < 5e6 and widened.max_ci_high > 6e6
    none_failed = capacity_figures([step(0, 4e6, 0.3)], {}, stopped="x", slos=DEFAULT_SLOS)
    assert none_failed.max_ci == (4e6, None)


# ----------------------------------------------------------------------------------------------
# the hive's driver, on a fake chain

CEILING = 5.3e6  # gas/s the fake chain includes at most


def fake_chain_step(plan: ScenarioPlan, *, duplicate_at: float | None = None) -> RunResult:
    """What a chain of capacity CEILING does with one step: includes up to its ceiling, and past it the
    backlog grows through the step, so latency climbs; the SLOs are the real oracle's over it."""
    rate = plan.target_gas_per_sec
    included = min(rate, CEILING)
    behind = max(0.0, 1 - CEILING / rate)
    p99 = 0.3 + plan.sustain.length * behind
    latency = LatencyStats(p99 / 2, p99, p99, p99, 100)
    start = plan.sustain.start
    rng = random.Random(int(rate))
    timeline = [
        {
            "second": float(second),
            "included_gas": included * (1 + rng.uniform(-0.02, 0.02)),
            "offered_gas": rate,
        }
        for second in range(math.ceil(start), math.floor(plan.sustain.end))
    ]
    verdicts = [Verdict("inclusion", "passed", "all included"), Verdict("nonce_contiguity", "passed", "ok")]
    if duplicate_at is not None and rate >= duplicate_at:
        verdicts.append(Verdict("no_duplicate_inclusion", "failed", "1 duplicate", {"duplicates": ["0xab"]}))
    result = RunResult(
        name=plan.name,
        seed=plan.seed,
        target_gas_per_sec=rate,
        offered_gas_per_sec=rate,
        accepted_gas_per_sec=rate,
        included_gas_per_sec=included,
        sent=100,
        accepted=100,
        rejected=0,
        included=100,
        lost=0,
        latency=Latency(accept=latency, inclusion=latency),
        errors={},
        verdicts=verdicts,
        duration=plan.sending_time + 1,
        sustain_seconds=plan.sustain.length,
        chain_id=1,
        devnet_kind="fake",
        node_version="fake 1",
        timeline=timeline,
        notes=["fees: fee cap 2 wei throughout"],
    )
    return finish_result(plan, result)


class FakeDevnet:
    chain_id = 1
    kind = "fake"


def search_plan(**capacity: Any) -> ScenarioPlan:
    marker = {"capacity": {"from": "1M", "to": "200M", "step": "4s", **capacity}, "warmup": 0}
    return compile_plan(parse_spec(marker), name="test_capacity", seed=3)


def test_the_hive_finds_a_known_capacity_within_the_resolution() -> None:
    plans: list[ScenarioPlan] = []

    def run_step(plan: ScenarioPlan) -> tuple[RunResult, str | None]:
        plans.append(plan)
        return fake_chain_step(plan), f"step-{len(plans) - 1}"

    result = run_capacity(search_plan(), run_step, devnet=FakeDevnet(), node_version="fake 1")
    figures = result.capacity
    assert figures is not None and figures.max_gas_per_sec is not None
    # Met the SLOs (included / offered >= 0.98, p99 <= 2 s) up to CEILING / 0.98.
    assert CEILING * 0.95 <= figures.max_gas_per_sec <= CEILING / 0.98
    assert figures.first_failing_gas_per_sec is not None
    assert figures.first_failing_gas_per_sec <= figures.max_gas_per_sec * 1.05
    assert figures.max_ci_low is not None and figures.max_ci_high is not None
    assert figures.max_ci_low < figures.max_gas_per_sec < figures.max_ci_high
    assert [p.capacity_step for p in plans] == list(range(len(plans)))
    assert [s.run_id for s in figures.steps] == [f"step-{i}" for i in range(len(plans))]
    assert all(dict(p.slo) == DEFAULT_SLOS for p in plans)
    # The result is the step at the maximum, its verdicts the capacity verdict and the invariants.
    assert result.target_gas_per_sec == figures.max_gas_per_sec and result.name == "test_capacity"
    assert [v.name for v in result.verdicts] == [CAPACITY_VERDICT, "inclusion", "nonce_contiguity"] or [
        v.name for v in result.verdicts
    ] == [CAPACITY_VERDICT, "nonce_contiguity"]
    assert result.passed
    failing = next(s for s in figures.steps if not s.passed)
    assert failing.slos["slo.min_gas_ratio"] == "failed"
    assert result.notes.count("fees: fee cap 2 wei throughout") == 1
    assert result.notes[-1].startswith("capacity: max ")
    # Plain data and back, as the controller answers a worker.
    again = RunResult.from_dict(json.loads(json.dumps(result.to_dict())))
    assert again.capacity == figures


def test_a_broken_promise_at_any_step_fails_the_search_naming_the_step() -> None:
    def run_step(plan: ScenarioPlan) -> tuple[RunResult, str | None]:
        return fake_chain_step(plan, duplicate_at=4e6), None

    result = run_capacity(search_plan(), run_step, devnet=FakeDevnet(), node_version="fake 1")
    assert result.verdict(CAPACITY_VERDICT) == "passed"
    duplicate = result.verdict("no_duplicate_inclusion")
    assert duplicate == "failed" and duplicate.summary.startswith("step #2 (4.00 Mgas/s): ")
    with pytest.raises(AssertionError, match="no_duplicate_inclusion"):
        result.check()


def test_a_search_whose_first_step_misses_the_slos_fails_saying_lower_from() -> None:
    def run_step(plan: ScenarioPlan) -> tuple[RunResult, str | None]:
        return fake_chain_step(plan), None

    plan = search_plan(**{"from": "20M"})
    result = run_capacity(plan, run_step, devnet=FakeDevnet(), node_version="fake 1")
    assert result.capacity is not None and len(result.capacity.steps) == 1
    verdict = result.verdict(CAPACITY_VERDICT)
    assert verdict == "failed" and "lower capacity['from']" in verdict.summary
    assert "slo.min_gas_ratio" in verdict.summary


def test_the_search_starts_no_step_that_would_end_past_max_time(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [0.0]
    monkeypatch.setattr("pytest_gashammer.hive.capacity.time.monotonic", lambda: clock[0])

    def run_step(plan: ScenarioPlan) -> tuple[RunResult, str | None]:
        clock[0] += 30.0  # every step takes 30 s
        return fake_chain_step(plan), None

    result = run_capacity(search_plan(max_time="100s"), run_step, devnet=FakeDevnet(), node_version="fake 1")
    assert result.capacity is not None
    assert len(result.capacity.steps) == 3 and result.capacity.stopped.startswith("max_time")


def test_the_search_writes_its_own_runs_row_after_its_steps() -> None:
    calls: list[tuple[str, Any]] = []

    class Recorder:
        def begin(self, plan: ScenarioPlan, devnet: Any, *, node_version: str, **named: Any) -> str:
            target = named.get("target_gas_per_sec")
            calls.append(
                ("begin", (plan.capacity_step, plan.capacity_search, plan.target_gas_per_sec, target))
            )
            return str(named["run_id"])

        def end(self, run_id: str, **fields: Any) -> None:
            calls.append(("end", (run_id, fields.get("result"))))

    searches: list[str | None] = []

    def run_step(plan: ScenarioPlan) -> tuple[RunResult, str | None]:
        searches.append(plan.capacity_search)
        return fake_chain_step(plan), None

    result = run_capacity(
        search_plan(max_steps=3), run_step, devnet=FakeDevnet(), node_version="fake 1", telemetry=Recorder()
    )
    # Written once the steps ran, under the id they named, with the search's own plan (at 'from': two
    # searches of one test compare whatever maximum each found) and the maximum's rate as its target.
    (search_id,) = set(searches)
    assert search_id and len(searches) == 3
    assert calls == [("begin", (None, None, 1e6, 4e6)), ("end", (search_id, result))]
    assert result.run_id == search_id  # the gate compares the search's row, where its figures are
    assert isinstance(result.capacity, CapacityFigures) and len(result.capacity.steps) == 3


def test_capacity_figures_survive_nan_latencies_in_json() -> None:
    figures = capacity_figures([step(0, 1e6, math.nan, False)], {}, stopped="x", slos=DEFAULT_SLOS)
    data = json.loads(json.dumps(dataclasses.asdict(figures)).replace("NaN", "null"))
    again = CapacityFigures.from_dict(data)
    assert math.isnan(again.steps[0].inclusion_p99)


def test_a_step_clearly_past_the_limit_is_stopped_and_does_not_count_as_met() -> None:
    from pytest_gashammer.oracle.capacity import judge_step, past_limit

    assert past_limit({"inclusion_p99": 2.0}, 3.9) is None
    assert past_limit({"inclusion_p99": 2.0}, None) is None
    assert past_limit({"min_gas_ratio": 0.98}, 60.0) is None  # no latency bound: runs to its end
    why = past_limit({"inclusion_p99": 2.0}, 4.5)
    assert why == "capacity: clearly past the limit: recent inclusion p99 4.50 s > 2 x the 2 s bound"
    plan = capacity_step_plan(search_plan(), 4e6, index=1, search=None, slo=DEFAULT_SLOS)
    result = fake_chain_step(plan)
    assert judge_step(result, 1, slos=DEFAULT_SLOS).passed
    stopped = judge_step(dataclasses.replace(result, stopped_early=why), 1, slos=DEFAULT_SLOS)
    assert not stopped.passed and stopped.slos["stopped_past_limit"] == "failed"


def test_the_controller_runs_a_whole_search_as_one_queue_item_and_answers_with_its_figures(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from pytest_gashammer.hive.controller import HiveController

    class Devnet(FakeDevnet):
        node_version = "fake 1"

        def close(self) -> None:
            pass

    controller = HiveController(lambda: Devnet())
    ran: list[tuple[int | None, int]] = []

    def execute_one(plan: ScenarioPlan, progress: Any = None) -> RunResult:
        ran.append((plan.capacity_step, controller.queued))
        return fake_chain_step(plan)

    monkeypatch.setattr(controller, "_execute_one", execute_one)
    try:
        result = controller.run(search_plan(max_steps=5))
    finally:
        controller.close()
    assert [step for step, _ in ran] == [0, 1, 2, 3, 4]
    assert result.capacity is not None and len(result.capacity.steps) == 5
    assert result.capacity.max_gas_per_sec == 4e6 and result.verdict(CAPACITY_VERDICT) == "passed"


def test_a_saturated_step_is_judged_on_its_per_second_included_gas_not_the_runs_span_figure() -> None:
    """Seen on anvil (4.2 Mgas/s by construction, 0.5 s blocks, 4 s steps): offered 5 Mgas/s, the
    run's included_gas_per_sec said 5.00 Mgas/s (its span less a block interval undercounts N full
    blocks by two intervals), while every second of the step included 4.2 Mgas."""
    from pytest_gashammer.oracle.capacity import judge_step, per_second_included_gas

    plan = capacity_step_plan(search_plan(), 5e6, index=5, search=None, slo=DEFAULT_SLOS)
    result = dataclasses.replace(
        fake_chain_step(plan),
        included_gas_per_sec=5e6,
        timeline=[{"second": float(s), "included_gas": 4.2e6} for s in range(0, 9)],
    )
    samples = per_second_included_gas(result, plan.sustain.start, plan.sustain.end)
    assert samples == [4.2e6] * 3  # the sustain phase's whole seconds but its first
    step = judge_step(result, 5, slos=DEFAULT_SLOS, samples=samples)
    assert step.included_gas_per_sec == 4.2e6
    assert step.slos["slo.min_gas_ratio"] == "failed" and not step.passed
    assert judge_step(result, 5, slos=DEFAULT_SLOS).slos["slo.min_gas_ratio"] == "passed"


def test_a_step_that_kept_up_is_not_judged_short_by_a_block_that_fell_outside_its_seconds() -> None:
    """Seen in CI (anvil, 0.5 s blocks of 252 kgas, 0.5 Mgas/s offered, a third of its ceiling): lost
    0, p99 0.57 s, the run's included rate 500.5 kgas/s, but one of the five whole seconds held one
    block, not two, so their mean read 449.4 kgas/s and the step missed min_gas_ratio."""
    from pytest_gashammer.oracle.capacity import judge_step, steady_included_gas

    plan = capacity_step_plan(search_plan(), 5e5, index=0, search=None, slo=DEFAULT_SLOS)
    result = dataclasses.replace(fake_chain_step(plan), included_gas_per_sec=500_500.0)
    samples = [504_000.0, 504_000.0, 252_000.0, 504_000.0, 504_000.0]
    step = judge_step(result, 0, slos=DEFAULT_SLOS, samples=samples)
    assert step.passed and step.slos["slo.min_gas_ratio"] == "passed"
    assert step.included_gas_per_sec == 500_500.0  # the median second, no more than the run measured
    # Without the run's figure (or with none measured) the mean stands.
    assert steady_included_gas(samples) == steady_included_gas(samples, math.nan) == 453_600.0
    # A saturated chain's seconds are alike: the median is the mean, and the step misses.
    full = [420_000.0, 210_000.0, 630_000.0, 420_000.0, 420_000.0]  # one block late: still 420 kgas/s
    saturated = judge_step(result, 0, slos=DEFAULT_SLOS, samples=full)
    assert saturated.included_gas_per_sec == 420_000.0 and not saturated.passed
    # A higher median is never taken past the run's own included rate.
    short = dataclasses.replace(result, included_gas_per_sec=460_000.0)
    assert judge_step(short, 0, slos=DEFAULT_SLOS, samples=samples).included_gas_per_sec == 460_000.0


# ----------------------------------------------------------------------------------------------
# steadiness: a step is judged on a rate the chain holds


def test_steadiness_from_synthetic_per_second_samples() -> None:
    from pytest_gashammer.oracle.capacity import judge_steadiness

    offered = [2e6] * 6
    # Keeps up, a block's worth of noise each second: steady.
    steady = judge_steadiness([1.98e6, 2.04e6, 1.96e6, 2.02e6, 2.0e6, 1.97e6], offered)
    assert steady.steady and steady.state == "steady" and abs(steady.backlog_growth) < 0.05e6
    # Still ramping up (the included rate climbs towards the offer, the backlog shrinking): settling.
    ramping = judge_steadiness([1.2e6, 1.5e6, 1.8e6, 2.1e6, 2.2e6, 2.2e6], offered)
    assert ramping.state == "settling" and ramping.second_half > ramping.first_half
    # Flat at the chain's ceiling, below the offer: the backlog grows by 0.8 Mgas every second.
    behind = judge_steadiness([1.2e6] * 6, offered)
    assert behind.state == "falling behind" and behind.backlog_growth == pytest.approx(0.8e6)
    assert "falling behind" in behind.describe() and "+0.8 Mgas/s" in behind.describe()
    # Falling behind more and more: behind, not merely settling.
    assert judge_steadiness([2e6, 1.9e6, 1.6e6, 1.4e6, 1.2e6, 1.0e6], offered).state == "falling behind"
    assert judge_steadiness([2e6], [2e6]).state == "too short"


def test_whole_blocks_on_either_side_of_a_seconds_edge_are_noise_not_a_trend() -> None:
    from pytest_gashammer.oracle.capacity import judge_steadiness

    # Seen on anvil (0.5 s blocks of 0.5 Mgas, 1 Mgas/s offered, kept up): the seconds held 1, 2, 3,
    # 2, 1 and 2 blocks as the blocks were seen either side of a second's edge.
    included = [1.008e6, 1.491e6, 1.008e6, 0.504e6, 0.987e6]
    offered = [1.008e6, 0.987e6, 1.008e6, 0.987e6, 1.008e6]
    lumpy = judge_steadiness(included, offered)
    assert lumpy.state == "steady", lumpy  # the halves' difference is within twice its noise
    assert lumpy.backlog_growth > 0.1 * 1e6  # more than the tolerance alone would have allowed
    # One second a half has no spread of its own: the tolerance alone decides, and a step that
    # differs by more is held longer, for more seconds; it is not falling behind, having included
    # all it was offered over the step.
    assert judge_steadiness([1.512e6, 0.987e6], [1.008e6, 0.987e6]).state == "settling"
    assert judge_steadiness([1.512e6, 0.504e6], [1.008e6, 0.987e6]).state == "settling"


def test_only_a_step_still_settling_is_held_longer_up_to_max_step() -> None:
    from pytest_gashammer.oracle.capacity import Steadiness, longer_hold

    assert longer_hold(Steadiness("settling"), 4.0, 12.0) == 8.0
    assert longer_hold(Steadiness("settling"), 8.0, 12.0) == 12.0
    assert longer_hold(Steadiness("settling"), 12.0, 12.0) is None
    assert longer_hold(Steadiness("too short"), 1.0, 3.0) == 2.0
    assert longer_hold(Steadiness("steady"), 4.0, 12.0) is None
    assert longer_hold(Steadiness("falling behind"), 4.0, 12.0) is None  # past the limit as it is


def test_a_step_falling_behind_misses_even_when_its_slos_hold() -> None:
    from pytest_gashammer.oracle.capacity import Steadiness, judge_step

    plan = capacity_step_plan(search_plan(), 4e6, index=1, search=None, slo=DEFAULT_SLOS)
    result = fake_chain_step(plan)
    behind = judge_step(result, 1, slos={"inclusion_p99": 2.0}, steadiness=Steadiness("falling behind"))
    assert not behind.passed and behind.slos["steady"] == "failed" and behind.steadiness == "falling behind"
    # Never settled but kept up: judged by its SLOs, the steadiness said.
    settling = judge_step(result, 1, slos=DEFAULT_SLOS, steadiness=Steadiness("settling"), held=12.0)
    assert settling.passed and settling.slos["steady"] == "inconclusive" and settling.held == 12.0


def test_a_step_not_yet_steady_is_run_again_held_longer_and_judged_on_that_run() -> None:
    held: list[float] = []

    def run_step(plan: ScenarioPlan) -> tuple[RunResult, str | None]:
        held.append(plan.sustain.length)
        result = fake_chain_step(plan)
        if plan.sustain.length < 8.0 and plan.target_gas_per_sec == 2e6:
            # The first hold of the 2 Mgas/s step: the included rate still climbs through it.
            start = math.ceil(plan.sustain.start)
            ramp = [
                {"second": float(start + k), "included_gas": 1.2e6 + 0.3e6 * k, "offered_gas": 2e6}
                for k in range(5)
            ]
            result = dataclasses.replace(result, timeline=ramp)
        return result, f"run-{len(held)}"

    result = run_capacity(search_plan(max_steps=2), run_step, devnet=FakeDevnet(), node_version="fake 1")
    assert held == [4.0, 4.0, 8.0]  # 1 Mgas/s steady at once; 2 Mgas/s held again, twice as long
    assert result.capacity is not None
    first, second = result.capacity.steps
    assert (first.steadiness, first.held, first.attempts) == ("steady", 4.0, 1)
    assert (second.steadiness, second.held, second.attempts, second.run_id) == ("steady", 8.0, 2, "run-3")
    # Past the ceiling the step falls behind: judged at once, never held longer.
    held.clear()
    run_capacity(
        search_plan(**{"from": "8M", "to": "16M", "max_steps": 2}),
        run_step,
        devnet=FakeDevnet(),
        node_version="x",
    )
    assert held == [4.0]


def test_a_step_held_longer_stretches_its_sustain_phase_and_moves_what_follows() -> None:
    spec = parse_spec(
        {"capacity": {"from": "1M", "to": "8M", "step": "4s"}, "warmup": "1s", "cooldown": "2s"}
    )
    plan = compile_plan(spec, name="t", seed=1)
    longer = capacity_step_plan(plan, 2e6, index=0, search=None, slo=DEFAULT_SLOS, hold=8.0)
    assert [(p.name, p.start, p.end) for p in longer.phases] == [
        ("warmup", 0.0, 1.0),
        ("sustain", 1.0, 9.0),
        ("cooldown", 9.0, 11.0),
    ]
