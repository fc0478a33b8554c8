"""Faults on a run's timeline against the healthy embedded devnet: each kind happens (its effect is
measured), the run recovers, every verdict passes, and ``result.faults`` says so.

One pytest session runs every kind as its own marked test (one devnet for all of them); each test
checks its own fault's entry, so a failure names the kind.
"""

from __future__ import annotations

import json
import os
import sys

import pytest

from tests.acceptance.conftest import (
    ACCEPTANCE,
    anvil_processes,
    node_outlives_a_sigkilled_pytest,
    process_state,
)

pytestmark = pytest.mark.usefixtures("no_new_anvil")

# Every kind, with what a healthy chain shows while it is active. The test body below gets the
# fault's FaultImpact as `f` and the result as `r`.
KINDS = {
    "node.pause": (
        {},
        "f.included_gas_per_sec_during < 0.2 * r.target_gas_per_sec and f.inclusion_p99_during > 1.0 and f.delayed > 0",
    ),
    "node.mining_stop": (
        {},
        "f.included_gas_per_sec_during < 0.2 * r.target_gas_per_sec and f.inclusion_p99_during > 1.0",
    ),
    "node.slow_blocks": ({"interval": 1}, "f.inclusion_p99_during > 0.6 and f.inclusion_p99_before < 0.6"),
    "node.restart": ({}, "f.ended_at - f.started_at < 5"),
    "rpc.latency": (
        {"ms": 150, "jitter_ms": 10},
        "f.inclusion_p99_during > f.inclusion_p99_before + 0.1 and f.effect['requests'] > 0",
    ),
    "rpc.error": ({"rate": 0.3}, "f.effect['calls'] > 0"),
    "rpc.reset": ({}, "f.effect['requests'] + f.effect.get('connections', 0) > 0"),
    "rpc.blackhole": (
        {},
        "f.included_gas_per_sec_during < 0.2 * r.target_gas_per_sec and f.effect['requests'] > 0",
    ),
    "rpc.bandwidth": (
        {"bytes_per_sec": 20_000},
        "f.inclusion_p99_during > f.inclusion_p99_before and f.effect['waits'] > 0",
    ),
    "feed.disconnect": ({}, "f.effect['connections'] > 0"),
    "feed.stall": ({}, "f.effect['messages'] > 0 and f.effect['released_frames'] > 0"),
    "feed.drop": ({}, "f.effect['messages'] > 0"),
}


def test_every_kind_happens_recovers_and_passes_on_the_healthy_devnet(pytester: pytest.Pytester) -> None:
    tests = []
    for kind, (params, effect) in KINDS.items():
        fault = {
            "kind": kind,
            "at": "sustain+2s",
            **({} if kind == "node.restart" else {"duration": "1500ms"}),
            **params,
        }
        name = kind.replace(".", "_")
        recovery = 6 if kind == "node.restart" else 3
        tests.append(
            f"""
@pytest.mark.gashammer(gas_per_sec="3M", duration="6s", warmup="1s", faults=[{fault!r}])
def test_{name}(hammer):
    r = hammer.run(check=False)
    f = r.fault({kind!r})
    print("FAULT", json.dumps({{"kind": f.kind, "effect": f.effect, "recovered": f.recovered_after_s,
          "p99": [f.inclusion_p99_before, f.inclusion_p99_during, f.inclusion_p99_after],
          "gas": [f.included_gas_per_sec_before, f.included_gas_per_sec_during, f.included_gas_per_sec_after],
          "delayed": f.delayed, "lost": f.lost, "feed": r.feed is not None}}, default=str))
    assert f.error is None and f.started_at is not None and f.ended_at is not None
    assert abs(f.started_at - f.planned_at) < 0.5, f
    assert r.verdict("faults").status == "passed", r.verdict("faults")
    assert {effect}, f
    assert f.recovered_after_s is not None and f.recovered_after_s < {recovery}, f
    failed = [v for v in r.failed_verdicts]
    if {kind!r} == "node.restart" and r.lost:
        # A killed node forgets its pool: those transactions are lost, and lost in this fault.
        assert f.lost == r.lost, f
        (inclusion,) = failed
        assert inclusion.name == "inclusion" and f"during node.restart #0" in inclusion.summary, inclusion
        assert inclusion.evidence["lost_during_faults"]["node.restart #0"]["lost"] == r.lost
    else:
        assert not failed, [v.describe() for v in failed]
        assert r.lost == 0 and f.lost == 0
"""
        )
    pytester.makepyfile("import json\nimport pytest\n" + "".join(tests))
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-s", "-q")
    # -q prints progress dots on the same line as a test's output: find the marker anywhere.
    lines = [json.loads(line.split("FAULT ", 1)[1]) for line in result.outlines if "FAULT {" in line]
    print("\n".join(json.dumps(line) for line in lines))
    result.assert_outcomes(passed=len(KINDS))
    assert sorted(line["kind"] for line in lines) == sorted(KINDS)


def test_a_bad_fault_is_one_line_at_collection(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.gashammer(gas_per_sec="1M", faults=[{"kind": "node.pasue", "at": "2s", "duration": "1s"}])
        def test_typo(hammer):
            hammer.run()

        @pytest.mark.gashammer(gas_per_sec="1M", duration="5s", faults=[{"kind": "node.pause", "at": "sustain+9s", "duration": "1s"}])
        def test_too_late(hammer):
            hammer.run()

        @pytest.mark.gashammer(gas_per_sec="1M", faults=[{"kind": "node.pause", "at": "2s", "duration": "1s"}])
        def test_external(hammer):
            hammer.run()
        """
    )
    result = pytester.runpytest_subprocess(
        "-p",
        "no:cacheprovider",
        "-k",
        "typo or too_late",
    )
    result.assert_outcomes(errors=2)
    result.stdout.fnmatch_lines(
        [
            "*faults[[]0[]]: unknown fault kind 'node.pasue' (did you mean 'node.pause'?); known: *",
            "*faults[[]0[]] node.pause runs 10-11 s, past the end of the run at 6 s; move it earlier*",
        ]
    )
    external = pytester.runpytest_subprocess(
        "-p",
        "no:cacheprovider",
        "-k",
        "external",
        "--gashammer-rpc-url",
        "http://127.0.0.1:9",
        "--gashammer-funder-key",
        "0x" + "11" * 32,
    )
    external.assert_outcomes(errors=1)
    external.stdout.fnmatch_lines(
        [
            "*faults[[]0[]] node.pause needs a devnet the plugin started; --gashammer-rpc-url (an external node) is not one*"
        ]
    )
    assert "Traceback" not in external.stdout.str()


KILLED_DURING_PAUSE = """
import pytest

@pytest.mark.gashammer(gas_per_sec="1M", duration="30s", warmup=0,
                       faults=[{"kind": "node.pause", "at": "1s", "duration": "25s"}])
def test_paused(hammer, devnet):
    print("NODE", devnet.pid, flush=True)
    hammer.run()
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG and /proc are Linux")
def test_pytest_killed_during_a_node_pause_leaves_no_stopped_process_and_no_process(
    pytester: pytest.Pytester,
) -> None:
    state = node_outlives_a_sigkilled_pytest(pytester, KILLED_DURING_PAUSE, "NODE")
    assert state in ("", "Z"), f"the node outlived pytest in state {state!r}"
    tag = os.environ["GASHAMMER_TEST_TAG"]
    assert not [pid for pid in anvil_processes(tag) if process_state(pid) == "T"]


def test_faults_under_xdist_run_in_the_controller_and_the_example_passes(pytester: pytest.Pytester) -> None:
    example = pytester.path / "test_faults_example.py"
    example.write_text((ACCEPTANCE.parent.parent / "examples" / "test_faults.py").read_text())
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-n", "2", "-q")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        ["*fault node.pause #0 at *recovered after*0 lost*", "*fault rpc.latency #1 at *"]
    )
