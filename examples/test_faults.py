"""Chaos on the run's timeline: the node paused for 2 s, then 2 s of 100 ms extra RPC latency.

A healthy chain loses nothing to either: what the pause held back is included once the node runs
again (delayed, not lost), and the run says how long each fault took to recover from.
"""

import pytest


@pytest.mark.gashammer(
    gas_per_sec="4M",
    duration="14s",
    warmup="1s",
    faults=[
        {"kind": "node.pause", "at": "sustain+3s", "duration": "2s"},
        {"kind": "rpc.latency", "at": "sustain+9s", "duration": "2s", "ms": 100, "jitter_ms": 20},
    ],
    slo={"recovery_s": "5s", "fault_lost": 0},
)
def test_a_paused_node_and_slow_rpc_lose_nothing(hammer):
    result = hammer.run()

    pause = result.fault("node.pause")
    # While the node was stopped, nothing was included; what was sent then waited for it.
    assert pause.included_gas_per_sec_during < 0.2 * result.target_gas_per_sec
    assert pause.inclusion_p99_during > 1.0
    assert pause.delayed > 0 and pause.lost == 0
    assert pause.recovered_after_s is not None

    latency = result.fault("rpc.latency")
    assert latency.lost == 0
