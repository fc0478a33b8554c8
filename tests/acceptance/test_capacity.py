"""The capacity search against a chain whose capacity is known by construction (issue #20).

An anvil with a 2.1 Mgas block gas limit (100 transfers), a block every 0.5 s and a zero base fee
(anvil keeps a zero base fee constant, so full blocks do not drive fees up) includes at most
2.1 Mgas x 2 blocks/s = 4.2 Mgas/s, whatever is offered. A marked test with ``capacity={...}`` and
the default SLOs (no loss, included/offered >= 0.98, inclusion p99 <= 2 s) must find a maximum
within 15 % of that ceiling; the run's Parquet store and HTML report must carry the search and its
steps.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import pytest

from pytest_gashammer.devnet.embedded import EmbeddedDevnet

pytestmark = pytest.mark.usefixtures("no_new_anvil")

GAS_LIMIT = 2_100_000
BLOCK_TIME = 0.5
CEILING = GAS_LIMIT / BLOCK_TIME  # gas per second: no more fits in the blocks

INNER = """
import json
import pytest


@pytest.mark.gashammer(
    capacity={"from": "1M", "to": "16M", "step": "4s", "max_steps": 9, "max_time": "150s"},
    warmup="1s",
    receipts=200,
    inclusion_timeout="20s",
)
def test_capacity(hammer):
    result = hammer.run()
    capacity = result.capacity
    print("CAPACITY " + json.dumps({
        "max": capacity.max_gas_per_sec,
        "knee": capacity.knee_gas_per_sec,
        "ci": [capacity.max_ci_low, capacity.max_ci_high],
        "first_failing": capacity.first_failing_gas_per_sec,
        "stopped": capacity.stopped,
        "steps": [[s.offered_gas_per_sec, s.included_gas_per_sec, s.inclusion_p99, s.passed]
                  for s in capacity.steps],
    }))
    assert capacity.max_gas_per_sec is not None
"""


@pytest.fixture(scope="module")
def small_chain() -> Iterator[EmbeddedDevnet]:
    node = EmbeddedDevnet(
        block_time=BLOCK_TIME, gas_limit=GAS_LIMIT, base_fee=0, l1=False, feed=False
    ).start()
    try:
        yield node
    finally:
        node.close()


def test_the_search_finds_a_ceiling_known_by_construction(
    pytester: pytest.Pytester, small_chain: EmbeddedDevnet
) -> None:
    pytester.makepyfile(test_inner=INNER)
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "-s",
        "--gashammer-rpc-url", small_chain.rpc_url,
        "--gashammer-ws-url", str(small_chain.ws_url),
        "--gashammer-funder-key", small_chain.funder.key,
        "--gashammer-parquet", "telemetry",
        "--gashammer-report", "report.html",
        "--gashammer-progress", "off",
    )  # fmt: skip
    output = result.stdout.str()
    assert result.ret == 0, output
    printed = re.search(r"CAPACITY (\{.*\})", output)
    assert printed is not None, output
    found = json.loads(printed.group(1))
    steps = "\n".join(f"  offered {o:,.0f} included {i:,.0f} p99 {p:.3f} s {'met' if ok else 'missed'}"
                      for o, i, p, ok in found["steps"])  # fmt: skip
    print(f"ceiling {CEILING:,.0f} gas/s; found {found}\n{steps}")
    # Within 15 % of the ceiling, both ways.
    assert abs(found["max"] - CEILING) <= 0.15 * CEILING, (found, steps)
    # Every second of a saturated step is full blocks: what it included is the ceiling itself.
    for offered, included, _, _ in found["steps"]:
        assert included <= CEILING * 1.05, steps
        if offered >= 1.1 * CEILING:
            assert included >= CEILING * 0.95, steps
    low, high = found["ci"]
    assert low <= found["max"] and (high is None or high >= found["first_failing"])
    # The terminal summary has the search's lines; the report its section with one row per step.
    result.stdout.fnmatch_lines(
        ["*capacity   max *(95 % *)*knee*steps, stopped on*", "*step 0: offered 1.00 Mgas/s*"]
    )
    page = (pytester.path / "report.html").read_text(encoding="utf-8")
    assert page.count('<tr class="capacity-step') == len(found["steps"])
    assert 'data-chart="capacity-envelope"' in page
    assert re.search(r"capacity step \d+\)", page)
