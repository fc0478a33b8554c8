"""Your own template next to the built-in ones: a counter bump per sender, ERC-20 transfers and
fresh storage writes, sharing 4 Mgas/s by weight."""

import pytest


@pytest.mark.gashammer(
    gas_per_sec="4M",
    duration="5s",
    warmup="1s",
    workload={
        "my_templates:SenderCounter": {"share": 2.0, "step": 3},  # module:Class, with a parameter
        "erc20": 1.0,
        "storage": {"share": 1.0, "slots": 4},
    },
)
def test_custom_template_in_a_mix(hammer):
    result = (
        hammer.run()
    )  # fails if any transaction is lost, duplicated, out of nonce order or has the wrong status

    assert result.rejected == 0
    assert result.included_gas_per_sec == pytest.approx(result.target_gas_per_sec, rel=0.1)
