"""An SLO-style assertion: at 8 Mgas/s, 99 % of transactions are in a block within a second."""

import pytest


@pytest.mark.gashammer(gas_per_sec="8M", duration="10s", warmup="2s")
def test_inclusion_p99_under_one_second(hammer, devnet):
    result = hammer.run()

    # Latency is measured from each transaction's intended send time, so a slow node cannot hide
    # its backlog by slowing the sender down.
    assert result.latency.inclusion.p99 < 1.0, f"inclusion p99 {result.latency.inclusion.p99:.3f} s"
    assert result.latency.accept.p99 < 0.5

    # The devnet fixture is there for your own checks too.
    assert devnet.web3.eth.get_block("latest")["number"] > 0
