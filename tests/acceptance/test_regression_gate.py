"""The regression gate on real sessions: a baseline, the same build again, and a rerun behind a slow proxy.

One anvil devnet (the embedded devnet's node, started here) serves three pytest sessions as an
external endpoint, so the devnet is the same in all three and only the path to it changes: the third
session reaches it through an RPC proxy that holds every request 200 ms, the latency a slower
sequencer front end (or a slower build of one) would add.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

# The tests call `main(["compare", ...])` in this process, and the store it reads imports numpy. pytester
# drops the modules a test imported when the test ends, and numpy's C extension cannot be loaded twice in one
# process, so the second test's compare failed when this file ran alone. Loaded here, numpy stays loaded.
import pytest_gashammer.compare.baseline  # noqa: F401
from pytest_gashammer.cli import main
from pytest_gashammer.devnet.embedded import EmbeddedDevnet
from pytest_gashammer.fault import RpcFault, RpcProxy

pytestmark = pytest.mark.usefixtures("no_new_anvil")

SCENARIO = """
import pytest

@pytest.mark.gashammer(gas_per_sec="2M", duration="4s", warmup="1s")
def test_gate(hammer):
    hammer.run()
"""

FAIL = "included_gas_per_sec:-5%,inclusion_p99:+10%"


class Slow(RpcFault):
    """Holds every JSON-RPC request ``seconds`` before forwarding it."""

    def __init__(self, seconds: float) -> None:
        super().__init__()
        self.seconds = seconds

    def on_request(self, call) -> None:  # type: ignore[no-untyped-def]
        call.delay = self.seconds


def _session(pytester: pytest.Pytester, url: str, key: str, *args: str) -> pytest.RunResult:
    return pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "--gashammer-rpc-url", url, "--gashammer-funder-key", key,
        "--gashammer-parquet", "store", *args, timeout=240,
    )  # fmt: skip


def _search_session(pytester: pytest.Pytester, devnet: EmbeddedDevnet, *args: str) -> pytest.RunResult:
    """A session on ``devnet`` that follows its heads over the WebSocket (why: the capacity search test below)."""
    return _session(pytester, devnet.rpc_url, devnet.funder.key, "--gashammer-ws-url", devnet.ws_url, *args)


def _comparison(stdout: list[str]) -> list[str]:
    return [line for line in stdout if "compare " in line]


def test_the_same_build_passes_the_gate_and_a_slower_path_fails_it_on_inclusion_latency(
    pytester: pytest.Pytester, capsys: pytest.CaptureFixture[str]
) -> None:
    pytester.makepyfile(test_gate=SCENARIO)
    with EmbeddedDevnet(l1=False, feed=False).start() as devnet:
        key = devnet.funder.key
        saved = _session(pytester, devnet.rpc_url, key, "--gashammer-save", "main")
        saved.assert_outcomes(passed=1)
        saved.stdout.fnmatch_lines(["*gashammer baseline 'main': 1 finished run(s) in *main.json*"])

        again = _session(
            pytester, devnet.rpc_url, key, "--gashammer-compare", "main", "--gashammer-compare-fail", FAIL
        )
        table = _comparison(again.stdout.lines)
        shown = ["same build:", *table]
        again.assert_outcomes(passed=1)
        assert any("inclusion_p99" in line and "threshold inclusion_p99:+10%" in line for line in table)
        assert not any("FAILED" in line for line in table)

        with RpcProxy(devnet.rpc_url, faults=[Slow(0.2)]).start() as proxy:
            slowed = _session(
                pytester, proxy.url, key, "--gashammer-compare", "main", "--gashammer-compare-fail", FAIL,
                "--junitxml", "junit.xml", "--gashammer-report", "report.html",
            )  # fmt: skip
        table = _comparison(slowed.stdout.lines)
        shown += ["behind a 200 ms proxy:", *table]
        slowed.assert_outcomes(failed=1)
        assert slowed.ret == 1
        # The failure reads like criterion: the metric, baseline, now, change, interval, verdict.
        slowed.stdout.fnmatch_lines(
            [
                "*regression*regressed against baseline 'main': inclusion_p99 +*past inclusion_p99:+10%*",
                "*inclusion_p99 *[[]+*%, +*%]*regressed (past inclusion_p99:+10%: FAILED)*",
            ]
        )

    # The figures are in the JUnit properties and the report has the comparison.
    properties = {
        prop.get("name"): prop.get("value") for prop in ET.parse(pytester.path / "junit.xml").iter("property")
    }
    assert properties["gashammer.test_gate.compare.baseline"] == "main"
    assert properties["gashammer.test_gate.compare.inclusion_p99.verdict"] == "regressed"
    assert float(properties["gashammer.test_gate.compare.inclusion_p99.low"]) > 0.10
    page = (pytester.path / "report.html").read_text()
    assert "Comparison with baseline main" in page and "FAILED" in page

    # The command prints the same comparisons from the store: the same build, then the slowed one.
    capsys.readouterr()
    store = str(pytester.path / "store")
    assert main(["compare", store, "main", "--json", "--fail", FAIL]) == 1  # the newest run: the slowed one
    (newest,) = json.loads(capsys.readouterr().out)
    p99 = next(change for change in newest["changes"] if change["metric"] == "inclusion_p99")
    assert p99["failed"] and p99["verdict"] == "regressed"
    print("\n".join(shown))  # the figures, for -rP
    assert Path(store, "baselines", "main.json").is_file()


TWO_TESTS = """
import pytest

@pytest.mark.gashammer(gas_per_sec="1M", duration="3s", warmup="1s")
def test_same(hammer):
    hammer.run()

@pytest.mark.gashammer(gas_per_sec="1M", duration="{duration}", warmup="1s")
def test_changed(hammer):
    hammer.run()
"""


def test_under_xdist_on_the_embedded_devnet_a_changed_marker_is_not_comparable(
    pytester: pytest.Pytester,
) -> None:
    """Workers run the tests, the controller stores the runs: the gate reads them back in the worker."""
    args = ["-p", "no:cacheprovider", "-n", "2", "--gashammer-parquet", "store", "--gashammer-no-l1"]
    pytester.makepyfile(test_two=TWO_TESTS.replace("{duration}", "3s"))
    saved = pytester.runpytest_subprocess(*args, "--gashammer-save", "main", timeout=240)
    saved.assert_outcomes(passed=2)
    pytester.makepyfile(test_two=TWO_TESTS.replace("{duration}", "2s"))
    compared = pytester.runpytest_subprocess(
        *args, "--gashammer-compare", "main", "--gashammer-compare-fail", FAIL, timeout=240
    )
    compared.assert_outcomes(passed=2)  # not comparable is reported, and fails nothing
    compared.stdout.fnmatch_lines_random(
        [
            "*compare    test_two.py::test_changed  run *  vs baseline 'main' run *",
            "*compare      not comparable: the scenario changed: phases warmup 1s + sustain 3s -> warmup 1s + sustain 2s",
            "*compare    test_two.py::test_same  run *  vs baseline 'main' run *",
            "*compare      inclusion_p99 *[[]*%, *%]*threshold inclusion_p99:+10%*",
            "*regression:passed*",
            "*regression:inconclusive*",
        ]
    )


CAPACITY_SEARCH = """
import pytest

@pytest.mark.gashammer(
    capacity={"from": "0.5M", "to": "8M", "step": "5s", "max_step": "10s", "max_steps": 3},
    warmup="1s",
    receipts=100,
    inclusion_timeout="20s",
)
def test_ceiling(hammer):
    hammer.run()
"""


def test_the_gate_on_a_capacity_search_passes_the_same_chain_and_fails_a_lower_ceiling(
    pytester: pytest.Pytester, capsys: pytest.CaptureFixture[str]
) -> None:
    """Two anvils of known ceilings (0.5 s blocks, zero base fee): 142 transfers a block, 5.96 Mgas/s,
    and 16, 0.67 Mgas/s. On the first the search meets 0.5, 1 and 2 Mgas/s (its maximum is at least
    2); on the second it meets 0.5 and misses 1 and 0.75 (in 0.5 .. 0.75 Mgas/s), so the whole
    interval of the change is below -5 %. The same chain again finds the same maximum.
    Each end of a bracket is widened by the noise of its step's per-second included gas, and a block
    falling on either side of a second's edge moves a whole block's gas to the next second: seconds
    of 1, 2 and 3 Mgas at 2 Mgas/s once widened a maximum's low end to 1.4 Mgas/s. So the ceilings
    are far apart, the first one at three times the highest rate, and the second search's bracket
    ends at 0.75 Mgas/s: no such widening closes that gap. Steps hold 5 s, so that each half of a
    step has two seconds and a block on the wrong side of an edge shows as spread, not as a chain
    falling behind; heads come over the WebSocket, so blocks are seen when built, not on a 0.1 s poll."""
    pytester.makepyfile(test_search=CAPACITY_SEARCH)
    fail = "capacity:-5%"
    shown: list[str] = []
    with (
        EmbeddedDevnet(block_time=0.5, gas_limit=3_000_000, base_fee=0, l1=False, feed=False).start() as wide,
        EmbeddedDevnet(block_time=0.5, gas_limit=350_000, base_fee=0, l1=False, feed=False).start() as narrow,
    ):
        saved = _search_session(pytester, wide, "--gashammer-save", "main")
        saved.assert_outcomes(passed=1)
        again = _search_session(
            pytester, wide, "--gashammer-compare", "main", "--gashammer-compare-fail", fail
        )
        table = _comparison(again.stdout.lines)
        shown += ["same chain:", *table]
        again.assert_outcomes(passed=1)
        # The search's own row is compared with the baseline's search (not a step with a step).
        assert any("capacity " in line and "(threshold capacity:-5%)" in line for line in table), table
        assert not any("not comparable" in line or "FAILED" in line for line in table), table

        lower = _search_session(
            pytester, narrow, "--gashammer-compare", "main", "--gashammer-compare-fail", fail
        )
        table = _comparison(lower.stdout.lines)
        shown += ["lower ceiling:", *table]
        lower.assert_outcomes(failed=1)
        lower.stdout.fnmatch_lines(
            [
                "*regression*regressed against baseline 'main': capacity -*past capacity:-5%*",
                "*capacity *[[]-*%, -*%]*regressed (past capacity:-5%: FAILED)*",
            ]
        )
    # The command compares the newest search of the test (not one of its steps) the same way.
    capsys.readouterr()
    assert main(["compare", str(pytester.path / "store"), "main", "--json", "--fail", fail]) == 1
    (newest,) = json.loads(capsys.readouterr().out)
    (change,) = newest["changes"]
    assert change["metric"] == "capacity" and change["failed"] and change["verdict"] == "regressed"
    print("\n".join(shown))  # the figures, for -rP
