"""Open-loop arrival times at a gas rate, and the template mix they carry."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import pytest

from pytest_gashammer.workload.rate import ArrivalSchedule, Phase

TRANSFER_GAS = 21_000


def flat(rate: float, seconds: float, start: float = 0.0, name: str = "sustain") -> Phase:
    return Phase(name, start, start + seconds, rate, rate)


def drain(schedule: ArrivalSchedule, limit: int = 1_000_000) -> list[tuple[float, int]]:
    """Every arrival; fails instead of hanging when the schedule does not end."""
    arrivals = []
    while (arrival := schedule.next()) is not None:
        arrivals.append(arrival)
        assert len(arrivals) <= limit, f"the schedule did not end after {limit} arrivals"
    return arrivals


def transfers(i: int) -> float:
    return TRANSFER_GAS


def schedule(
    phases: Sequence[Phase],
    shares: Sequence[float] = (1.0,),
    gas: Callable[[int], float] = transfers,
    **options: object,
) -> ArrivalSchedule:
    return ArrivalSchedule(phases, shares, gas, **options)  # type: ignore[arg-type]


# ----------------------------------------------------------------------------------------------
# constant arrivals


@pytest.mark.parametrize(
    ("rate", "seconds"), [(2_100_000, 10.0), (2_000_000, 10.0), (20_000_000, 3.0), (50_000, 7.0)]
)
def test_constant_arrivals_match_the_gas_rate(rate: float, seconds: float) -> None:
    arrivals = drain(schedule([flat(rate, seconds)]))
    expected = rate * seconds / TRANSFER_GAS
    assert abs(len(arrivals) - round(expected)) <= 1


def test_constant_arrivals_are_evenly_spaced() -> None:
    arrivals = drain(schedule([flat(2_100_000, 10.0)]))  # 100 tx/s
    times = [t for t, _ in arrivals]
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    assert len(times) == pytest.approx(1000, abs=1)
    assert min(gaps) == pytest.approx(0.01, rel=1e-6)
    assert max(gaps) == pytest.approx(0.01, rel=1e-6)
    assert times[0] == pytest.approx(0.01, rel=1e-6)


def test_arrivals_start_at_the_first_phase_start() -> None:
    arrivals = drain(schedule([flat(2_100_000, 1.0, start=5.0)]))
    assert 5.0 <= arrivals[0][0] <= 5.0 + 0.0101
    assert arrivals[-1][0] <= 6.0
    assert len(arrivals) == pytest.approx(100, abs=1)


def test_expected_transactions_matches_what_is_produced() -> None:
    phases = [flat(2_100_000, 2.0, name="warmup"), Phase("ramp", 2.0, 6.0, 2_100_000, 4_200_000)]
    arrivals = drain(schedule(phases))
    expected = (2_100_000 * 2 + 3_150_000 * 4) / TRANSFER_GAS  # 200 + 600
    assert schedule(phases).expected_transactions() == pytest.approx(expected)
    assert abs(len(arrivals) - expected) <= 1


def test_no_phases_means_no_arrivals() -> None:
    assert drain(schedule([])) == []
    assert drain(schedule([Phase("sustain", 3.0, 3.0, 1e6, 1e6)])) == []


def test_zero_rate_phase_is_skipped_without_arrivals() -> None:
    phases = [Phase("idle", 0.0, 5.0, 0.0, 0.0), flat(2_100_000, 1.0, start=5.0)]
    arrivals = drain(schedule(phases))
    assert all(t > 5.0 for t, _ in arrivals)
    assert len(arrivals) == pytest.approx(100, abs=1)


# ----------------------------------------------------------------------------------------------
# ramps


def test_linear_ramp_count_matches_the_integral_and_density_increases() -> None:
    ramp = Phase("ramp", 0.0, 10.0, 0.0, 4_200_000)  # 0 -> 200 tx/s
    arrivals = drain(schedule([ramp]))
    integral = 0.5 * 4_200_000 * 10.0 / TRANSFER_GAS  # 1000 transactions
    assert abs(len(arrivals) - integral) <= 1
    per_second = [0] * 10
    for t, _ in arrivals:
        per_second[min(int(t), 9)] += 1
    assert per_second == sorted(per_second)
    assert per_second[0] < per_second[-1]
    # Second k carries 20 * (k + 0.5) transactions on average: 10, 30, ..., 190.
    for k, count in enumerate(per_second):
        assert abs(count - 20 * (k + 0.5)) <= 1


def test_cooldown_density_decreases() -> None:
    cooldown = Phase("cooldown", 0.0, 10.0, 4_200_000, 0.0)
    arrivals = drain(schedule([cooldown]))
    per_second = [0] * 10
    for t, _ in arrivals:
        per_second[min(int(t), 9)] += 1
    assert per_second == sorted(per_second, reverse=True)
    assert abs(len(arrivals) - 1000) <= 1


def test_arrival_times_follow_the_cumulative_gas_of_a_ramp() -> None:
    # Rate r(t) = 420_000 t gas/s: cumulative gas 210_000 t^2, so arrival n is at sqrt(n / 10).
    arrivals = drain(schedule([Phase("ramp", 0.0, 10.0, 0.0, 4_200_000)]))
    for n in (1, 10, 250, 999):
        assert arrivals[n - 1][0] == pytest.approx(math.sqrt(n / 10), rel=1e-6)


def test_arrivals_across_flat_phases_and_a_ramp_follow_the_cumulative_gas() -> None:
    # 2 s at 4.2 Mgas/s, a ramp to 8.4 Mgas/s over 2 s, 2 s at 8.4 Mgas/s; one arrival per 21,000 gas.
    phases = [
        Phase("warmup", 0.0, 2.0, 4_200_000, 4_200_000),
        Phase("ramp", 2.0, 4.0, 4_200_000, 8_400_000),
        Phase("sustain", 4.0, 6.0, 8_400_000, 8_400_000),
    ]

    def cumulative_gas(t: float) -> float:
        if t <= 2.0:
            return 4_200_000 * t
        if t <= 4.0:
            return 8_400_000 + 4_200_000 * (t - 2.0) + 1_050_000 * (t - 2.0) ** 2
        return 8_400_000 + 12_600_000 + 8_400_000 * (t - 4.0)

    arrivals = drain(schedule(phases))
    # The 1,800th arrival falls exactly on the end; rounding may put it just past it.
    assert abs(len(arrivals) - cumulative_gas(6.0) / TRANSFER_GAS) <= 1
    for n, (t, _) in enumerate(arrivals, start=1):
        assert cumulative_gas(t) == pytest.approx(n * TRANSFER_GAS, rel=1e-9), f"arrival {n} at {t}"


def test_nearly_flat_ramp_still_advances_time() -> None:
    ramp = Phase("ramp", 0.0, 1.0, 20_000_000, 20_000_000 + 1e-6)
    arrivals = drain(schedule([ramp]), limit=2_000)
    assert abs(len(arrivals) - 20_000_000 / TRANSFER_GAS) <= 1
    assert arrivals[0][0] > 0


# ----------------------------------------------------------------------------------------------
# ordering and bounds


@pytest.mark.parametrize("arrival", ["constant", "poisson"])
def test_arrival_times_never_decrease_and_never_pass_the_end(arrival: str) -> None:
    phases = [
        flat(420_000, 1.0, name="warmup"),
        Phase("ramp", 1.0, 3.0, 420_000, 4_200_000),
        flat(4_200_000, 2.0, start=3.0),
        Phase("cooldown", 5.0, 6.0, 4_200_000, 0.0),
    ]
    sched = schedule(phases, arrival=arrival, seed=11)
    arrivals = drain(sched)
    times = [t for t, _ in arrivals]
    assert times == sorted(times)
    assert times[-1] <= sched.end == 6.0
    assert times[0] >= 0.0
    assert sched.next() is None  # stays finished


# ----------------------------------------------------------------------------------------------
# the template mix


def test_weighted_round_robin_gives_an_exact_two_to_one_mix_over_every_prefix() -> None:
    gas = {0: 21_000, 1: 42_000}
    arrivals = drain(schedule([flat(2_100_000, 30.0)], shares=[0.5, 0.5], gas=gas.__getitem__))
    # Equal gas shares with one template twice as heavy: two light transactions per heavy one.
    assert len(arrivals) == pytest.approx(2_100_000 * 30 / 28_000, abs=1)
    light = 0
    for n, (_, template) in enumerate(arrivals, start=1):
        light += template == 0
        assert abs(light - 2 * n / 3) <= 1, f"after {n} arrivals {light} were light"
    assert {template for _, template in arrivals} == {0, 1}


def test_equal_gas_equal_shares_alternate() -> None:
    arrivals = drain(schedule([flat(2_100_000, 1.0)], shares=[0.5, 0.5]))
    templates = [template for _, template in arrivals]
    assert all(a != b for a, b in zip(templates, templates[1:], strict=False))


def test_three_way_mix_stays_within_one_transaction_of_its_share() -> None:
    gas = {0: 21_000, 1: 50_000, 2: 100_000}
    shares = [0.2, 0.3, 0.5]
    weights = [shares[i] / gas[i] for i in range(3)]
    tx_share = [w / sum(weights) for w in weights]
    arrivals = drain(schedule([flat(3_000_000, 10.0)], shares=shares, gas=gas.__getitem__))
    counts = [0, 0, 0]
    for n, (_, template) in enumerate(arrivals, start=1):
        counts[template] += 1
        for i in range(3):
            assert abs(counts[i] - tx_share[i] * n) <= 1
    # The gas actually offered is split by the requested shares.
    offered = [counts[i] * gas[i] for i in range(3)]
    for i in range(3):
        assert offered[i] / sum(offered) == pytest.approx(shares[i], abs=0.01)


def test_single_template_is_always_index_zero() -> None:
    assert {template for _, template in drain(schedule([flat(2_100_000, 1.0)]))} == {0}


# ----------------------------------------------------------------------------------------------
# poisson arrivals


def test_poisson_arrivals_are_reproducible_from_the_seed() -> None:
    first = drain(schedule([flat(2_100_000, 5.0)], arrival="poisson", seed=42))
    second = drain(schedule([flat(2_100_000, 5.0)], arrival="poisson", seed=42))
    other = drain(schedule([flat(2_100_000, 5.0)], arrival="poisson", seed=43))
    assert first == second
    assert first != other


def test_poisson_count_over_a_long_phase_is_near_the_mean() -> None:
    mean = 2_100_000 * 100.0 / TRANSFER_GAS  # 10_000
    for seed in (1, 2, 3):
        count = len(drain(schedule([flat(2_100_000, 100.0)], arrival="poisson", seed=seed)))
        assert abs(count - mean) <= 5 * math.sqrt(mean)


def test_poisson_gaps_are_irregular_and_average_to_the_constant_spacing() -> None:
    arrivals = drain(schedule([flat(2_100_000, 50.0)], arrival="poisson", seed=5))
    times = [t for t, _ in arrivals]
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    mean_gap = sum(gaps) / len(gaps)
    assert mean_gap == pytest.approx(0.01, rel=0.1)
    # Exponential gaps: the spread is about the mean, not near zero as with constant arrivals.
    spread = math.sqrt(sum((g - mean_gap) ** 2 for g in gaps) / len(gaps))
    assert spread == pytest.approx(mean_gap, rel=0.2)


# ----------------------------------------------------------------------------------------------
# scaling and the gas model


@pytest.mark.parametrize("arrival", ["constant", "poisson"])
def test_gas_scale_half_halves_the_count(arrival: str) -> None:
    phases = [flat(2_100_000, 20.0)]
    full = len(drain(schedule(phases, arrival=arrival, seed=3)))
    half_sched = schedule(phases, arrival=arrival, seed=3, gas_scale=0.5)
    half = len(drain(half_sched))
    assert half_sched.expected_transactions() == pytest.approx(1000)
    if arrival == "constant":
        assert full == pytest.approx(2000, abs=1)
        assert half == pytest.approx(1000, abs=1)
    else:
        assert abs(half - 1000) <= 5 * math.sqrt(1000)
        assert half < full


def test_mean_gas_is_the_share_weighted_harmonic_mean() -> None:
    gas = {0: 21_000, 1: 42_000}
    sched = schedule([flat(1e6, 1.0)], shares=[0.5, 0.5], gas=gas.__getitem__)
    assert sched.mean_gas() == pytest.approx(28_000)


def test_a_heavier_gas_model_mid_run_lowers_the_transaction_rate() -> None:
    model = {"gas": 21_000.0}
    sched = schedule([flat(2_100_000, 10.0)], gas=lambda i: model["gas"])
    before: list[float] = []
    after: list[float] = []
    while (arrival := sched.next()) is not None:
        if arrival[0] < 5.0:
            before.append(arrival[0])
            continue
        # From t=5 on the chain is found to charge twice the modelled gas.
        model["gas"] = 42_000.0
        after.append(arrival[0])
    assert len(before) == pytest.approx(500, abs=1)
    assert len(after) == pytest.approx(250, abs=2)
    late_gaps = [b - a for a, b in zip(after[1:], after[2:], strict=False)]
    assert min(late_gaps) == pytest.approx(0.02, rel=1e-6)
    assert max(late_gaps) == pytest.approx(0.02, rel=1e-6)


def test_gas_model_change_shifts_the_mix_to_keep_gas_shares() -> None:
    model = {0: 21_000.0, 1: 21_000.0}
    sched = schedule([flat(4_200_000, 20.0)], shares=[0.5, 0.5], gas=model.__getitem__)
    counts_after = [0, 0]
    while (arrival := sched.next()) is not None:
        t, template = arrival
        if t >= 10.0:
            model[1] = 63_000.0  # template 1 turns out three times heavier
            counts_after[template] += 1
    # Equal gas shares now need three light transactions per heavy one.
    assert counts_after[0] / counts_after[1] == pytest.approx(3.0, rel=0.02)
