"""A ramp: warm up at 10 % of the target, climb to 10 Mgas/s, hold, then wind down."""

import pytest


@pytest.mark.gashammer(
    gas_per_sec="10M",
    warmup="2s",
    ramp="5s",
    duration="8s",
    cooldown="3s",
    arrival="poisson",  # seeded, so the run replays exactly
    seed=2026,
)
def test_ramp_to_10_mgas_per_second(hammer):
    result = hammer.run()
    assert result.lost == 0
    assert result.included_gas_per_sec == pytest.approx(result.target_gas_per_sec, rel=0.1)
