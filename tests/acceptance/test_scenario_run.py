"""A marked test drives the embedded devnet at its target gas rate and reports what happened."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import pytest

pytestmark = pytest.mark.usefixtures("no_new_anvil")


def test_marked_scenario_hits_its_rate_and_tracks_every_transaction(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_load="""
        import math
        import pytest

        @pytest.mark.gashammer(gas_per_sec="2M", duration="4s", warmup="1s", seed=11)
        def test_transfers(hammer, devnet):
            result = hammer.run()
            assert result.target_gas_per_sec == 2_000_000
            assert result.seed == 11
            assert result.sent == result.accepted == result.included > 300
            assert result.rejected == 0 and result.lost == 0
            assert abs(result.offered_gas_per_sec / 2e6 - 1) < 0.02
            assert abs(result.included_gas_per_sec / 2e6 - 1) < 0.05
            assert 0 < result.latency.accept.p50 <= result.latency.accept.p99 <= result.latency.accept.max
            assert 0 < result.latency.inclusion.p50 <= result.latency.inclusion.p90 <= result.latency.inclusion.p99
            # 250 ms blocks: a transaction waits at most about one block plus tracking.
            assert result.latency.inclusion.p99 < 1.5
            statuses = {v.name: v.status for v in result.verdicts}
            assert list(statuses)[:4] == ["inclusion", "no_duplicate_inclusion", "nonce_contiguity", "receipt_status"]
            assert statuses.pop("balance_conservation") == "inconclusive"  # needs receipts="all"
            assert statuses.pop("confirmations") in ("passed", "inconclusive")  # the devnet's L1
            assert set(statuses.values()) == {"passed"}
            assert result.errors == {}
            # The embedded devnet's sequencer feed carried every transaction, in block order.
            assert devnet.feed_url.startswith("ws://127.0.0.1:")
            assert result.latency.feed.count == result.latency.inclusion.count
            assert 0 < result.latency.feed.p50 < 2.0
            (facts,) = result.feed["edges"].values()
            assert facts["stats"]["gap_count"] == 0 and facts["stats"]["duplicate_count"] == 0
            findings = facts["findings"]
            assert findings["included"] == result.included
            assert findings["missing_from_feed"] == findings["order_violations"] == findings["hash_mismatches"] == 0
            # The devnet fixture is Nitro-shaped and usable from the test itself.
            assert devnet.chain_id == 412346
            assert devnet.rpc_url.startswith("http://127.0.0.1:")
            assert devnet.ws_url.startswith("ws://127.0.0.1:")
            assert devnet.funder.address == "0x3f1Eae7D46d88F08fc2F8ed27FCb2AB183EB2d0E"
            assert devnet.funder.key.startswith("0x") and len(devnet.funder.key) == 66
            assert devnet.web3.eth.chain_id == 412346
            assert devnet.web3.eth.get_balance(devnet.funder.address) > 10**18
            latest = devnet.web3.eth.get_block("latest")
            assert latest["gasLimit"] >= 25_000_000  # 100 Mgas/s at 4 blocks a second
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        [
            "*gashammer: 1 run(s)*",
            "*test_load.py::test_transfers*seed=11 chain=412346 (embedded, anvil 1.7.1)*",
            "*target*2.00 Mgas/s*",
            "*included*Mgas/s*tx/s*",
            "*feed       p50 *",
            "*feed ?local? messages * reconnects 0  gaps 0  duplicates 0  decode errors 0  vs chain: consistent*",
            "*verdicts   inclusion:passed  no_duplicate_inclusion:passed  nonce_contiguity:passed  receipt_status:passed  "
            "receipt_block:passed  gas_model:passed*",
        ]
    )


def test_several_runs_in_one_test_with_overrides_and_options(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_multi="""
        import pytest

        @pytest.mark.gashammer(gas_per_sec="1M", duration="20s", warmup=0)
        def test_two_runs(hammer):
            plan = hammer.plan()
            assert plan.sustain.length == pytest.approx(2.0)  # 20 s scaled by 0.1
            first = hammer.run()
            second = hammer.run(gas_per_sec="2M", arrival="poisson")
            assert first.seed == second.seed == 7
            assert second.target_gas_per_sec == 2 * first.target_gas_per_sec
            assert second.included > first.included
            assert first.lost == second.lost == 0
        """
    )
    result = pytester.runpytest_subprocess(
        "-p",
        "no:cacheprovider",
        "--gashammer-duration-scale",
        "0.1",
        "--gashammer-seed",
        "7",
        "--junitxml",
        "results.xml",
    )
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*gashammer: 2 run(s)*"])
    properties = {
        prop.get("name"): prop.get("value")
        for prop in ET.parse(pytester.path / "results.xml").iter("property")
    }
    assert float(properties["gashammer.test_two_runs.included_gas_per_sec"]) > 0
    assert "gashammer.test_two_runs.inclusion_p99" in properties
    assert properties["gashammer.test_two_runs.lost"] == "0"


def test_a_broken_promise_fails_the_test_with_its_evidence(pytester: pytest.Pytester) -> None:
    # A template that claims its transactions revert: the chain (correctly) says they succeed,
    # so the receipt-status invariant must fail the test and name the transactions.
    pytester.makepyfile(
        test_verdict="""
        import pytest
        from pytest_gashammer.workload.transfer import TransferTemplate

        class ExpectsRevert(TransferTemplate):
            name = "expects-revert"
            expected_status = 0

        @pytest.mark.gashammer(gas_per_sec="500k", duration="2s", warmup=0,
                               workload={"test_verdict:ExpectsRevert": 1.0})
        def test_fails(hammer):
            hammer.run()

        @pytest.mark.gashammer(gas_per_sec="500k", duration="2s", warmup=0,
                               workload={"test_verdict:ExpectsRevert": 1.0})
        def test_inspects(hammer):
            result = hammer.run(check=False)
            verdict = result.verdict("receipt_status")
            assert not verdict.passed and verdict.status == "failed"
            assert result.verdict("inclusion").passed
            with pytest.raises(AssertionError, match="receipt_status"):
                result.check()
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*AssertionError: gashammer run 'test_fails' (seed *) broke 1 invariant(s):*",
            "*?FAILED? receipt_status: * receipt(s) with an unexpected status*",
            "*unexpected:",
            "*0x* (test_verdict:ExpectsRevert: status 1, expected 0)",
        ]
    )
    assert re.search(r"FAILED test_verdict.py::test_fails", result.stdout.str())
    # The failure points at the user's line, not into the plugin.
    assert "pytest_gashammer/hive" not in result.stdout.str()


def test_progress_line_during_a_long_run(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_slow="""
        import pytest

        @pytest.mark.gashammer(gas_per_sec="1M", duration="7s", warmup=0)
        def test_slow(hammer):
            hammer.run()
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--gashammer-progress", "on")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        ["*gashammer test_slow: sustain *s *gas/s (* tx/s) of 1.00 Mgas/s*p99*errors 0*"]
    )
