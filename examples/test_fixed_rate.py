"""Fixed-rate native transfers: 5 Mgas/s for 10 s on the embedded devnet, every transaction tracked."""

import pytest


@pytest.mark.gashammer(gas_per_sec="5M", duration="10s", warmup="2s", workload={"transfer": 1.0})
def test_transfers_at_5_mgas_per_second(hammer):
    result = hammer.run()  # fails the test if any transaction is lost, duplicated or out of nonce order

    # Gas-first: the chain must absorb what was offered.
    assert result.included_gas_per_sec >= 0.95 * result.target_gas_per_sec
    assert result.rejected == 0
