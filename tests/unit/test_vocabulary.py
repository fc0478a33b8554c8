"""One vocabulary of invariant and SLO objective names: what the marker accepts is what the oracle implements."""

from __future__ import annotations

import subprocess
import sys
from types import SimpleNamespace

import pytest

from pytest_gashammer import vocabulary
from pytest_gashammer.errors import ConfigError
from pytest_gashammer.oracle.engine import ENGINE_INVARIANTS
from pytest_gashammer.oracle.invariants import BASIC_INVARIANTS, INVARIANTS
from pytest_gashammer.oracle.l1 import L1_INVARIANTS
from pytest_gashammer.oracle.network import NETWORK_INVARIANTS
from pytest_gashammer.oracle.slo import OBJECTIVE_CHECKS, evaluate_slos
from pytest_gashammer.scenario.arguments import parse_slo
from pytest_gashammer.scenario.spec import parse_spec


def test_the_oracle_implements_every_invariant_name_in_catalogue_order() -> None:
    assert tuple(INVARIANTS) == vocabulary.INVARIANT_NAMES
    assert tuple(BASIC_INVARIANTS) == vocabulary.BASIC_INVARIANT_NAMES
    assert tuple(L1_INVARIANTS) == vocabulary.L1_INVARIANT_NAMES
    assert tuple(ENGINE_INVARIANTS) == vocabulary.ENGINE_INVARIANT_NAMES
    assert tuple(NETWORK_INVARIANTS) == vocabulary.NETWORK_INVARIANT_NAMES
    assert vocabulary.ALL_INVARIANT_NAMES == (
        vocabulary.INVARIANT_NAMES
        + vocabulary.L1_INVARIANT_NAMES
        + vocabulary.ENGINE_INVARIANT_NAMES
        + vocabulary.NETWORK_INVARIANT_NAMES
    )
    assert len(set(vocabulary.ALL_INVARIANT_NAMES)) == len(vocabulary.ALL_INVARIANT_NAMES)


@pytest.mark.parametrize("name", vocabulary.INVARIANT_NAMES)
def test_each_invariant_names_its_verdict_after_itself(name: str) -> None:
    assert INVARIANTS[name]([], 30.0).name == name


def test_the_oracle_checks_every_objective_name() -> None:
    assert set(OBJECTIVE_CHECKS) == set(vocabulary.OBJECTIVES)
    assert len(set(vocabulary.OBJECTIVES)) == len(vocabulary.OBJECTIVES)


def measured_run() -> SimpleNamespace:
    """What ``evaluate_slos`` reads of a result: every latency (batch-posting lag, Engine API too) 1 s, 90 % of
    the target gas, 10 % rejected, 3 lost."""
    stats = SimpleNamespace(p50=1.0, p90=1.0, p99=1.0, max=1.0, count=100)
    return SimpleNamespace(
        latency=SimpleNamespace(**dict.fromkeys(vocabulary.LATENCY_KINDS, stats)),
        l1=SimpleNamespace(batch_lag=stats),
        engine=SimpleNamespace(**dict.fromkeys(vocabulary.ENGINE_LATENCY_KINDS, stats)),
        included_gas_per_sec=900_000.0,
        target_gas_per_sec=1_000_000.0,
        sent=100,
        rejected=10,
        errors={"nonce_too_low": 10},
        lost=3,
        faults=[
            SimpleNamespace(label="node.pause #0", recovered_after_s=1.5, lost=2, lost_examples=["0xab"]),
            SimpleNamespace(label="rpc.latency #1", recovered_after_s=0.5, lost=0, lost_examples=[]),
        ],
    )


# For each objective, a bound the measured run meets and one it breaks.
BOUNDS = {
    **dict.fromkeys(vocabulary.LATENCY_OBJECTIVES, (2.0, 0.5)),
    vocabulary.MIN_GAS_RATIO: (0.5, 0.95),
    vocabulary.MAX_ERROR_RATE: (0.2, 0.05),
    vocabulary.MAX_LOST: (5, 1),
    vocabulary.FAULT_LOST: (2, 1),
    vocabulary.RECOVERY_S: (2.0, 1.0),
    **dict.fromkeys(vocabulary.L1_LAG_OBJECTIVES, (2.0, 0.5)),
    **dict.fromkeys(vocabulary.ENGINE_OBJECTIVES, (2.0, 0.5)),
}


@pytest.mark.parametrize("objective", vocabulary.OBJECTIVES)
def test_each_objective_turns_into_a_verdict_of_its_name_that_can_pass_and_fail(objective: str) -> None:
    met, broken = BOUNDS[objective]
    (passed,) = evaluate_slos(measured_run(), parse_slo({objective: met}))
    (failed,) = evaluate_slos(measured_run(), parse_slo({objective: broken}))
    assert passed.name == failed.name == vocabulary.slo_verdict_name(objective) == f"slo.{objective}"
    assert (passed.status, failed.status) == ("passed", "failed"), (passed.summary, failed.summary)


def test_the_marker_accepts_exactly_the_vocabulary() -> None:
    spec = parse_spec(
        {
            "gas_per_sec": "1M",
            "invariants": list(vocabulary.ALL_INVARIANT_NAMES),
            "skip_invariants": list(vocabulary.BASIC_INVARIANT_NAMES + vocabulary.L1_INVARIANT_NAMES[:1]),
            "slo": dict.fromkeys(vocabulary.OBJECTIVES, 1),
        }
    )
    assert spec.invariants == vocabulary.ALL_INVARIANT_NAMES
    assert vocabulary.BATCH_SEQUENCE in spec.skip_invariants
    assert [name for name, _ in spec.slo] == list(vocabulary.OBJECTIVES)
    with pytest.raises(ConfigError, match=r"^invariants: unknown invariant 'edges'; accepted: inclusion, "):
        parse_spec({"gas_per_sec": "1M", "invariants": ["edges"]})
    with pytest.raises(ConfigError, match=r"^slo: unknown objective 'p99'; accepted: accept_p50, "):
        parse_spec({"gas_per_sec": "1M", "slo": {"p99": "1s"}})


def test_validating_names_does_not_import_the_oracle() -> None:
    code = (
        "import sys\n"
        "from pytest_gashammer.scenario import parse_spec, compile_plan\n"
        "spec = parse_spec({'gas_per_sec': '2M', 'invariants': ['inclusion'], 'skip_invariants': ['gas_model'],"
        " 'slo': {'inclusion_p99': '2s', 'min_gas_ratio': 0.9}})\n"
        "compile_plan(spec, name='t', seed=1)\n"
        "print(sorted(m for m in sys.modules if m.startswith('pytest_gashammer.oracle')))\n"
    )
    completed = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert completed.stdout.strip() == "[]"


def every_subclass(cls: type) -> list[type]:
    return [sub for direct in cls.__subclasses__() for sub in (direct, *every_subclass(direct))]


def test_every_fault_names_invariants_or_objectives_of_the_vocabulary() -> None:
    from pytest_gashammer import fault

    faults = {cls.__name__: cls.caught_by for cls in every_subclass(fault.Fault) if cls.caught_by}
    assert len(faults) >= 15  # the built-in faults that break one promise each
    names = set(vocabulary.ALL_INVARIANT_NAMES) | set(vocabulary.OBJECTIVES)
    for name, caught_by in faults.items():
        assert set(caught_by) <= names, name
    assert {"SkipBlocks", "ReorderBatchTransactions", "DuplicateBatch", "LateBatches"} <= set(faults)
    assert faults["EngineSyncing"] == (vocabulary.ENGINE_HEAD, vocabulary.ENGINE_PAYLOAD_VALID)
    assert faults["EngineInvalid"] == (vocabulary.ENGINE_PAYLOAD_VALID,)
    assert faults["EngineWithholdPayload"] == (vocabulary.ENGINE_PAYLOAD_IDS,)


def test_fault_objectives_are_inconclusive_without_faults_and_name_a_fault_that_never_recovered() -> None:
    run = measured_run()
    run.faults = []
    for objective in (vocabulary.RECOVERY_S, vocabulary.FAULT_LOST):
        (verdict,) = evaluate_slos(run, parse_slo({objective: 1}))
        assert verdict.status == "inconclusive" and "faults=" in verdict.summary
    run = measured_run()
    run.faults[1].recovered_after_s = None
    (verdict,) = evaluate_slos(run, parse_slo({vocabulary.RECOVERY_S: "10s"}))
    assert verdict.status == "failed" and "rpc.latency #1" in verdict.summary
