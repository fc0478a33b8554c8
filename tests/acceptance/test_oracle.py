"""The oracle on a healthy chain: every invariant holds, SLOs and selections behave as documented."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.usefixtures("no_new_anvil")


def test_twenty_runs_on_a_healthy_devnet_raise_no_false_alarm(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_healthy="""
        import pytest
        from pytest_gashammer.oracle import INVARIANTS
        from pytest_gashammer.vocabulary import CONFIRMATIONS, L1_INVARIANT_NAMES

        @pytest.mark.gashammer(gas_per_sec="500k", duration="1s", warmup=0, receipts="all",
                               workload={"transfer": 0.5, "erc20": 0.3, "revert": 0.2})
        @pytest.mark.parametrize("attempt", range(20))
        def test_healthy(hammer, attempt):
            # Every other run is transfers only, where value conservation can be checked too.
            workload = {"transfer": 1.0} if attempt % 2 else {"transfer": 0.5, "erc20": 0.3, "revert": 0.2}
            result = hammer.run(seed=1000 + attempt, workload=workload)
            statuses = {v.name: v.status for v in result.verdicts}
            # The devnet's L1 is judged too; a 1 s run may end before an assertion is confirmed.
            assert list(statuses) == [*INVARIANTS, *L1_INVARIANT_NAMES]
            assert statuses.pop(CONFIRMATIONS) in ("passed", "inconclusive")
            if not attempt % 2:
                assert statuses.pop("balance_conservation") == "inconclusive"
            assert set(statuses.values()) == {"passed"}, [v.describe() for v in result.verdicts if v.status != "passed"]
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", timeout=600)
    result.assert_outcomes(passed=20)


def test_slos_pass_and_fail_with_the_measured_figures(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_slo="""
        import pytest

        @pytest.mark.gashammer(gas_per_sec="500k", duration="1s", warmup=0,
                               slo={"inclusion_p99": "5s", "feed_p99": "5s", "min_gas_ratio": 0.9,
                                    "max_error_rate": 0, "max_lost": 0})
        def test_met(hammer):
            result = hammer.run()
            assert [v.name for v in result.verdicts if v.name.startswith("slo.")] == [
                "slo.inclusion_p99", "slo.feed_p99", "slo.min_gas_ratio", "slo.max_error_rate", "slo.max_lost"]
            assert all(v.status == "passed" for v in result.verdicts if v.name.startswith("slo."))
            assert result.passed

        @pytest.mark.gashammer(gas_per_sec="500k", duration="1s", warmup=0, slo={"inclusion_p99": "1ms"})
        def test_missed(hammer):
            hammer.run()
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", timeout=300)
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*?FAILED? slo.inclusion_p99: inclusion p99 * > 1 ms*"])


def test_invariant_selection_inconclusive_policy_and_bad_names(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_select="""
        import pytest

        @pytest.mark.gashammer(gas_per_sec="500k", duration="1s", warmup=0, invariants=["inclusion", "receipt_status"])
        def test_only_two(hammer):
            result = hammer.run()
            assert [v.name for v in result.verdicts] == ["inclusion", "receipt_status"]

        @pytest.mark.gashammer(gas_per_sec="500k", duration="1s", warmup=0, receipts=0)
        def test_inconclusive_is_not_a_failure_by_default(hammer):
            result = hammer.run()
            assert result.verdict("receipt_status").status == "inconclusive"
            assert result.passed

        @pytest.mark.gashammer(gas_per_sec="500k", duration="1s", warmup=0, receipts=0, fail_inconclusive=True)
        def test_inconclusive_fails_when_asked(hammer):
            hammer.run()

        @pytest.mark.gashammer(gas_per_sec="500k", skip_invariants=["no_such_invariant"])
        def test_bad_name(hammer):
            hammer.run()

        @pytest.mark.gashammer(gas_per_sec="500k", slo={"p99": "1s"})
        def test_bad_slo(hammer):
            hammer.run()
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-rfE", timeout=300)
    result.assert_outcomes(passed=2, failed=1, errors=2)
    result.stdout.fnmatch_lines_random(
        [
            "*?INCONCLUSIVE? receipt_status: no receipt was checked*",
            "*skip_invariants: unknown invariant 'no_such_invariant'; accepted: inclusion, *",
            "*slo: unknown objective 'p99'; accepted: accept_p50, *",
        ]
    )


def test_fail_fast_stops_the_run_at_the_first_broken_promise(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_fast="""
        import pytest
        from pytest_gashammer.workload.transfer import TransferTemplate

        class ExpectsRevert(TransferTemplate):
            name = "expects-revert"
            expected_status = 0

        @pytest.mark.gashammer(gas_per_sec="500k", duration="60s", warmup=0, fail_fast=True,
                               workload={"test_fast:ExpectsRevert": 1.0})
        def test_fast(hammer):
            result = hammer.run(check=False)
            assert result.verdict("receipt_status").status == "failed"
            assert result.stopped_early.startswith("fail-fast: receipt_status broke on 0x")
            assert result.duration < 30
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", timeout=300)
    result.assert_outcomes(passed=1)


def test_asserting_a_verdict_shows_its_evidence(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_assert="""
        import pytest
        from pytest_gashammer.workload.transfer import TransferTemplate

        class ExpectsRevert(TransferTemplate):
            name = "expects-revert"
            expected_status = 0

        @pytest.mark.gashammer(gas_per_sec="500k", duration="1s", warmup=0,
                               workload={"test_assert:ExpectsRevert": 1.0})
        def test_assert(hammer):
            result = hammer.run(check=False)
            assert result.verdict("inclusion") == "passed"
            assert result.verdict("receipt_status") == "passed"
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", timeout=300)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*verdict 'receipt_status' is 'failed', not 'passed'*",
            "*?FAILED? receipt_status: * receipt(s) with an unexpected status*",
            "*0x* (test_assert:ExpectsRevert: status 1, expected 0)*",
        ]
    )


def test_fail_fast_stops_a_run_with_several_edges(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_fast_everywhere="""
        import pytest
        from pytest_gashammer.workload.transfer import TransferTemplate

        class ExpectsRevert(TransferTemplate):
            name = "expects-revert"
            expected_status = 0

        @pytest.mark.gashammer(gas_per_sec="500k", duration="60s", warmup=0, fail_fast=True,
                               workload={"test_fast_everywhere:ExpectsRevert": 1.0})
        def test_fast(hammer):
            result = hammer.run(check=False)
            assert result.verdict("receipt_status").status == "failed"
            assert len(result.edges) == 2
            assert result.duration < 40
        """
    )
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "--gashammer-edges", "2*popen", timeout=300
    )
    result.assert_outcomes(passed=1)
