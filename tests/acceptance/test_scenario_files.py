"""A scenario file's scenarios are tests like marked functions: run under xdist against the devnet,
judged by the same verdicts and SLOs, reported the same way, with errors at the file's lines."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

pytestmark = pytest.mark.usefixtures("no_new_anvil")

SCENARIOS = """\
defaults:
  gas_per_sec: 1M
  warmup: 0s
  duration: 2s
scenarios:
  transfers:
    workload: {transfer: 0.7, erc20: 0.3}
    slo: {inclusion_p99: 5s, max_lost: 0}
  misses_its_slo:
    slo: {inclusion_p99: 1ms}
  typo:
    workload:
      transfr: 1.0
"""


def test_scenario_files_run_as_tests_under_xdist(pytester: pytest.Pytester) -> None:
    pytester.makefile(".yaml", gashammer_l2=SCENARIOS)
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "-n", "2", "-rA", "--junitxml=junit.xml", timeout=300
    )
    # Distributed to the workers by node id: both valid scenarios ran load, one broke its SLO.
    result.assert_outcomes(passed=1, failed=1, errors=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines_random(
        [
            "*PASSED gashammer_l2.yaml::transfers*",
            "*gashammer run 'misses_its_slo' (seed *) broke 1 invariant(s):*",
            "*[[]FAILED[]] slo.inclusion_p99: inclusion p99 * > 1 ms*",
            "scenario misses_its_slo: gashammer_l2.yaml:9",
            "gashammer_l2.yaml:13:7: workload.transfr: unknown template 'transfr' (did you mean 'transfer'?)*",
            "*gashammer: 2 run(s)*",
            "gashammer_l2.yaml::transfers  [[]transfers[]] seed=* chain=412346*",
        ]
    )
    stdout = result.stdout.str()
    assert "Traceback" not in stdout and "pytest_gashammer/" not in stdout
    # The run's figures and verdicts reach the JUnit report as a marked test's do.
    cases = {case.get("name"): case for case in ET.parse(pytester.path / "junit.xml").iter("testcase")}
    properties = {prop.get("name"): prop.get("value") for prop in cases["transfers"].iter("property")}
    assert float(properties["gashammer.transfers.included_gas_per_sec"]) > 0.9e6
    assert properties["gashammer.transfers.lost"] == "0"
    assert properties["gashammer.transfers.verdict.slo.max_lost"] == "passed"
