"""How much history the embedded anvil keeps: chosen from the session's longest planned run, or forced."""

from __future__ import annotations

import pytest

from pytest_gashammer.devnet.anvil import KEEP_TRANSACTIONS_SECONDS, AnvilHistory, choose_history
from pytest_gashammer.devnet.embedded import BLOCK_TIME
from pytest_gashammer.devnet.factory import DevnetOptions, open_devnet
from pytest_gashammer.errors import DevnetError
from pytest_gashammer.hive.controller import HiveController
from pytest_gashammer.options import NODE_HISTORY, PRUNE_AFTER_SECONDS
from pytest_gashammer.plugin import SESSION_KEY
from pytest_gashammer.scenario.spec import compile_plan, parse_spec, planned_seconds

# ----------------------------------------------------------------------------------------------
# the choice


def test_auto_keeps_the_full_history_up_to_the_threshold_and_prunes_past_it() -> None:
    assert PRUNE_AFTER_SECONDS == 180.0
    assert not choose_history("auto", 30.0).pruned
    assert not choose_history("auto", PRUNE_AFTER_SECONDS).pruned
    longer = choose_history("auto", PRUNE_AFTER_SECONDS + 0.5)
    assert longer.pruned
    assert "the longest planned run sends for 180.5 s, over 180 s" in longer.reason


def test_auto_without_a_planned_run_keeps_the_full_history() -> None:
    choice = choose_history("auto", None)
    assert not choice.pruned
    assert "no run planned" in choice.reason


@pytest.mark.parametrize("longest", [None, 5.0, 3600.0])
def test_an_explicit_mode_overrides_the_planned_length(longest: float | None) -> None:
    assert choose_history("pruned", longest).pruned
    assert not choose_history("full", longest).pruned
    assert choose_history("pruned", longest).reason == f"{NODE_HISTORY} pruned"


def test_a_bad_mode_is_a_one_line_error_naming_the_modes() -> None:
    with pytest.raises(DevnetError) as info:
        choose_history("sometimes", 10.0)
    message = str(info.value)
    assert NODE_HISTORY in message and "'sometimes'" in message
    assert "auto, full, pruned" in message
    assert "\n" not in message


def test_pruned_history_keeps_a_minute_of_transactions_and_no_past_state() -> None:
    pruned = AnvilHistory(pruned=True, reason="test")
    assert BLOCK_TIME == 0.25
    assert KEEP_TRANSACTIONS_SECONDS == 60.0
    # 250 ms blocks: 240 blocks of transactions. --prune-history without a number: no past state.
    assert pruned.argv(BLOCK_TIME) == ["--prune-history", "--transaction-block-keeper", "240"]
    assert pruned.kept_blocks(1.0) == 60
    assert pruned.kept_blocks(12.0) == 5
    assert AnvilHistory(pruned=False, reason="test").argv(BLOCK_TIME) == []


def test_the_pruned_description_says_what_is_kept_and_why() -> None:
    text = choose_history("auto", 600.0).describe(BLOCK_TIME)
    assert text.startswith(
        "anvil history pruned: keeps the transactions and receipts of the last 240 blocks (60 s) and no past state"
    )
    assert text.endswith("the longest planned run sends for 600 s, over 180 s)")
    assert choose_history("full", None).describe(BLOCK_TIME).startswith("anvil keeps its full history")


# ----------------------------------------------------------------------------------------------
# the planned length the choice is made from


def test_planned_seconds_is_the_compiled_plans_sending_time() -> None:
    spec = parse_spec(
        {"gas_per_sec": "1M", "duration": "3m", "warmup": "20s", "ramp": "10s", "cooldown": "5s"}
    )
    assert planned_seconds(spec) == 215.0
    assert planned_seconds(spec, 0.5) == 107.5
    plan = compile_plan(spec, name="x", seed=1, duration_scale=0.5)
    assert plan.sending_time == planned_seconds(spec, 0.5)


def _collected_longest(pytester: pytest.Pytester, *args: str) -> float | None:
    pytester.makepyfile(
        test_runs="""
        import pytest

        @pytest.mark.gashammer(gas_per_sec="1M", duration="10s", warmup=0)
        def test_short(hammer):
            pass

        @pytest.mark.gashammer(gas_per_sec="1M", duration="3m", warmup="30s")
        def test_long(hammer):
            pass

        @pytest.mark.gashammer(gas_per_sec="1M", duration="1h", nonsense=1)
        def test_invalid(hammer):
            pass

        def test_plain(devnet):
            pass
        """
    )
    recorder = pytester.inline_run("--collect-only", "-p", "no:cacheprovider", *args)
    (call,) = recorder.getcalls("pytest_collection_finish")
    return call.session.config.stash[SESSION_KEY].longest_run  # type: ignore[no-any-return]


def test_the_session_knows_its_longest_planned_run_from_collection(pytester: pytest.Pytester) -> None:
    # warmup 30 s + 3 min of sustain; the invalid marker fails its test and counts for nothing.
    assert _collected_longest(pytester) == 210.0
    assert choose_history("auto", 210.0).pruned


def test_the_duration_scale_and_deselection_count(pytester: pytest.Pytester) -> None:
    assert _collected_longest(pytester, "--gashammer-duration-scale", "0.5") == 105.0
    assert _collected_longest(pytester, "-k", "short") == 10.0
    assert _collected_longest(pytester, "-k", "plain") is None


def test_the_longest_of_what_workers_report_reaches_the_controller() -> None:
    controller = HiveController(lambda: None)
    try:
        controller.plan_longest_run(None)
        assert controller.longest_run is None
        controller.plan_longest_run(40.0)
        controller.plan_longest_run(300.0)
        controller.plan_longest_run(20.0)
        assert controller.longest_run == 300.0
    finally:
        controller.close()


# ----------------------------------------------------------------------------------------------
# the option


def test_a_bad_option_value_is_a_one_line_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_nothing="def test_nothing():\n    pass\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", f"{NODE_HISTORY}=sometimes")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    (line,) = [line for line in result.stderr.lines if "sometimes" in line]
    assert "is not a history mode; use auto, full, pruned" in line


def test_a_bad_environment_value_is_refused_the_same_way(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_nothing="def test_nothing():\n    pass\n")
    pytester._monkeypatch.setenv("GASHAMMER_NODE_HISTORY", "half")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "'half' is not a history mode" in result.stderr.str()


@pytest.mark.parametrize(
    "options",
    [
        DevnetOptions(node_history="pruned", rpc_url="http://127.0.0.1:1", funder_key="0x01"),
        DevnetOptions(node_history="full", backend="ethereumjs"),
    ],
)
def test_an_explicit_history_for_a_node_the_plugin_does_not_run_as_anvil_is_refused(
    options: DevnetOptions,
) -> None:
    with pytest.raises(DevnetError) as info:
        open_devnet(options)
    message = str(info.value)
    assert f"{NODE_HISTORY} {options.node_history} sets the history of the embedded anvil devnet" in message
    assert "\n" not in message
