"""Faults on a run's timeline: the marker's faults= validated and placed, the schedule that applies
and undoes them on time, and the impact read from the edges' digests."""

from __future__ import annotations

import dataclasses
import math
import threading
import time
from typing import Any

import pytest

from pytest_gashammer.errors import ConfigError
from pytest_gashammer.fault.timeline import (
    FAULT_KINDS,
    FaultKind,
    FaultSchedule,
    FaultTargets,
    register_fault_kind,
)
from pytest_gashammer.hive.fault_impact import fault_impacts
from pytest_gashammer.hive.faulting import faults_verdict
from pytest_gashammer.oracle import name_faults
from pytest_gashammer.results import FaultImpact
from pytest_gashammer.scenario.faults import check_fault_target
from pytest_gashammer.scenario.spec import compile_plan, parse_spec
from tests.unit.edge_reports import Log, report_of
from tests.unit.test_results import run_result


def spec_with(*faults: dict[str, Any], **marker: Any) -> Any:
    return parse_spec({"gas_per_sec": "1M", "duration": "10s", **marker, "faults": list(faults)})


# ------------------------------------------------------------------------------ the marker side


@pytest.mark.parametrize(
    ("fault", "message"),
    [
        (
            {"kind": "node.paus", "at": 1, "duration": 1},
            r"^faults\[0\]: unknown fault kind 'node.paus' \(did you mean 'node.pause'\?\); known: rpc.latency, ",
        ),
        ({"kind": "rpc.latency", "at": 1, "duration": 1}, r"^faults\[0\] rpc.latency needs ms=\.\.\., "),
        (
            {"kind": "rpc.latency", "at": 1, "duration": 1, "ms": 10, "msec": 3},
            r"^faults\[0\] rpc.latency: unknown parameter 'msec' \(did you mean 'ms'\?\); accepted: at, duration, ms, jitter_ms$",
        ),
        (
            {"kind": "rpc.error", "at": 1, "duration": 1, "rate": 2},
            r"^faults\[0\] rpc.error rate=2 must be in \(0, 1\]",
        ),
        (
            {"kind": "rpc.error", "at": 1, "duration": 1, "rate": 0.5, "code": 7},
            r"^faults\[0\] rpc.error code=7 is out of range \[-32768, -32000\]",
        ),
        ({"kind": "node.pause", "at": 1}, r"^faults\[0\] node.pause needs duration=\.\.\., "),
        ({"kind": "node.pause", "duration": 1}, r"^faults\[0\] node.pause needs at=\.\.\., "),
        (
            {"kind": "node.pause", "at": "soon", "duration": 1},
            r"^faults\[0\] node.pause: at='soon' names no phase; ",
        ),
        (
            {"kind": "node.pause", "at": "sustain+20s", "duration": 1},
            r"^faults\[0\] node.pause runs 21-22 s, past the end of the run at 11 s; ",
        ),
        (
            {"kind": "node.pause", "at": "ramp+1s", "duration": 1},
            r"^faults\[0\] node.pause: at='ramp\+1.0s' names the ramp phase, which this scenario does not have",
        ),
        (
            {"kind": "node.pause", "at": 1, "duration": "0s"},
            r"^faults\[0\] node.pause duration='0s' must be longer than zero",
        ),
        ("node.pause", r"^faults\[0\]='node.pause' must be a dict, e.g. "),
    ],
)
def test_a_bad_fault_is_one_line_naming_the_fault_and_the_fix(fault: Any, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as caught:
        spec_with(fault)
    assert "\n" not in str(caught.value)


def test_faults_must_be_a_list_and_node_faults_take_turns() -> None:
    with pytest.raises(ConfigError, match=r"^faults='x' must be a list of dicts"):
        parse_spec({"gas_per_sec": "1M", "faults": "x"})
    with pytest.raises(
        ConfigError,
        match=r"faults\[1\] node.restart begins at 2 s while faults\[0\] node.pause is still active",
    ):
        spec_with({"kind": "node.pause", "at": 1, "duration": 3}, {"kind": "node.restart", "at": 2})
    # Faults on different paths may overlap.
    spec_with(
        {"kind": "node.pause", "at": 1, "duration": 3},
        {"kind": "rpc.latency", "at": 2, "duration": 3, "ms": 5},
    )


def test_faults_are_placed_on_the_run_clock_by_seconds_or_phase_and_scale_with_the_run() -> None:
    spec = spec_with(
        {"kind": "node.pause", "at": "sustain+3s", "duration": "2s"},
        {"kind": "rpc.latency", "at": "9s", "duration": "1s", "ms": 100},
        {"kind": "node.restart", "at": "sustain+8s"},
    )
    plan = compile_plan(spec, name="t", seed=1)
    assert [(f["kind"], f["start"], f["end"]) for f in plan.faults] == [
        ("node.pause", 4.0, 6.0),
        ("rpc.latency", 9.0, 10.0),
        ("node.restart", 9.0, 9.0),
    ]
    assert plan.faults[1]["params"] == {"ms": 100.0, "jitter_ms": 0}
    scaled = compile_plan(spec, name="t", seed=1, duration_scale=0.5)
    assert [(f["start"], f["end"]) for f in scaled.faults] == [(2.0, 3.0), (4.5, 5.0), (4.5, 4.5)]
    assert type(plan).from_dict(plan.to_dict()) == plan
    assert spec.replace() == spec


def test_faults_a_target_cannot_take_are_refused_with_the_fix() -> None:
    pause = [{"kind": "node.pause"}]
    with pytest.raises(
        ConfigError,
        match=r"^faults\[0\] node.pause needs a devnet the plugin started; .*\(drop --gashammer-rpc-url\)",
    ):
        check_fault_target(pause, where="--gashammer-rpc-url", controlled=False)
    with pytest.raises(
        ConfigError,
        match=r"^faults\[0\] node.pause: the x devnet cannot pause its node \(it offers: restart\)",
    ):
        check_fault_target(pause, where="the x devnet", node_supports=frozenset({"restart"}))
    with pytest.raises(
        ConfigError, match=r"^faults\[0\] feed.stall needs a sequencer feed; the ethereumjs devnet has none"
    ):
        check_fault_target([{"kind": "feed.stall"}], where="the ethereumjs devnet", has_feed=False)
    check_fault_target([{"kind": "rpc.reset"}], where="--gashammer-rpc-url", controlled=False, has_feed=False)


def test_the_registry_takes_a_backend_s_own_kind_once() -> None:
    kind = FaultKind("test.nothing", "node", "does nothing", lambda *_: lambda: None, node_operation="pause")
    try:
        assert register_fault_kind(kind) is kind
        with pytest.raises(ValueError, match="already registered"):
            register_fault_kind(
                FaultKind("test.nothing", "node", "again", kind.begin, node_operation="pause")
            )
        with pytest.raises(ValueError, match="needs a mechanism"):
            register_fault_kind(FaultKind("test.proxy", "rpc", "no mechanism", kind.begin))
    finally:
        FAULT_KINDS.pop("test.nothing", None)


# ------------------------------------------------------------------------------- the schedule


class FakeNode:
    """Records each operation with the time it happened; ``fail`` names operations that raise."""

    supports = frozenset({"pause", "restart", "mining_stop", "slow_blocks"})

    def __init__(self, fail: tuple[str, ...] = ()) -> None:
        self.calls: list[tuple[str, float]] = []
        self.fail = fail
        self.origin = time.monotonic()

    def _do(self, name: str) -> None:
        self.calls.append((name, time.monotonic() - self.origin))
        if name in self.fail:
            raise RuntimeError(f"{name} broke")

    def pause(self) -> None:
        self._do("pause")

    def resume(self) -> None:
        self._do("resume")

    def restart(self, downtime: float = 0.0) -> None:
        self._do("restart")

    def stop_mining(self) -> None:
        self._do("stop_mining")

    def set_block_interval(self, seconds: float) -> None:
        self._do("set_block_interval")

    def restore_mining(self) -> None:
        self._do("restore_mining")

    def undo_all(self) -> None:
        self._do("undo_all")


def steps(*faults: tuple[str, float, float], params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    return [
        {"index": index, "kind": kind, "start": start, "end": end, "params": dict(params or {})}
        for index, (kind, start, end) in enumerate(faults)
    ]


def test_the_schedule_begins_and_ends_each_fault_on_the_run_clock() -> None:
    node = FakeNode()
    schedule = FaultSchedule(
        steps(("node.pause", 0.1, 0.3), ("node.slow_blocks", 0.4, 0.5), params={"interval": 1.0}),
        FaultTargets(node=node),
    )
    schedule.start(node.origin)
    time.sleep(0.7)
    records = schedule.close()
    assert [name for name, _ in node.calls] == [
        "pause",
        "resume",
        "set_block_interval",
        "restore_mining",
        "undo_all",
    ]
    for (name, at), planned in zip(node.calls, (0.1, 0.3, 0.4, 0.5), strict=False):
        assert planned <= at < planned + 0.1, (name, at)
    assert [(r.error, round(r.started_at or -1, 1), round(r.ended_at or -1, 1)) for r in records] == [
        (None, 0.1, 0.3),
        (None, 0.4, 0.5),
    ]
    assert records[0].ended_unix_ns - records[0].started_unix_ns == pytest.approx(0.2e9, abs=0.05e9)


def test_closing_the_schedule_undoes_what_is_active_and_skips_what_has_not_begun() -> None:
    node = FakeNode()
    schedule = FaultSchedule(
        steps(("node.pause", 0.0, 30.0), ("node.mining_stop", 40.0, 50.0)), FaultTargets(node=node)
    )
    schedule.start(node.origin)
    time.sleep(0.2)
    closing = threading.Thread(target=schedule.close)
    closing.start()
    closing.join(5)
    assert not closing.is_alive()
    assert [name for name, _ in node.calls] == ["pause", "resume", "undo_all"]
    first, second = schedule.records
    assert first.ended_at is not None and first.ended_at < 1.0
    assert second.started_at is None and second.ended_at is None
    assert schedule.close() == schedule.records  # twice is harmless


def test_a_fault_that_cannot_begin_or_be_undone_is_recorded_not_raised() -> None:
    node = FakeNode(fail=("pause", "restore_mining"))
    schedule = FaultSchedule(
        steps(("node.pause", 0.0, 0.1), ("node.mining_stop", 0.15, 0.2)), FaultTargets(node=node)
    )
    schedule.start(node.origin)
    time.sleep(0.4)
    records = schedule.close()
    assert records[0].error == "node.pause could not begin: RuntimeError: pause broke"
    assert records[1].error == "node.mining_stop could not be undone: RuntimeError: restore_mining broke"
    verdict = faults_verdict(
        fault_impacts(compile_plan(spec_with(), name="t", seed=1), [], [])
        or [
            FaultImpact(
                index=r.index,
                kind=r.kind,
                params={},
                planned_at=r.start,
                planned_duration=r.end - r.start,
                started_at=r.started_at,
                ended_at=r.ended_at,
                error=r.error,
            )
            for r in records
        ]
    )
    assert verdict.status == "failed"
    assert "node.pause #0: node.pause could not begin" in verdict.summary


# --------------------------------------------------------------------------------- the impact


def run_with_pause(lose: int = 0) -> tuple[Any, Any]:
    """10 s of sustain at 100 tx/s (2.1 Mgas/s); the chain stops including from 4 s to 6 s and the
    backlog is included at 6.5 s; ``lose`` transactions sent during the pause are never included."""
    plan = compile_plan(
        spec_with(
            {"kind": "node.pause", "at": "sustain+3s", "duration": "2s"},
            gas_per_sec=2_100_000,
            warmup="1s",
            warmup_rate=1.0,
        ),
        name="t",
        seed=1,
    )
    log = Log()
    for nonce in range(1100):
        step = nonce
        intended = step / 100
        if 4.0 <= intended < 6.0 and nonce % 7 == 0 and lose:
            log.add(intended=intended, sent=intended, accepted=intended + 0.01, nonce=nonce)
            lose -= 1
        else:
            included = 6.5 if 3.9 <= intended < 6.0 else math.floor(intended / 0.25) * 0.25 + 0.25
            log.add(
                intended=intended,
                sent=intended,
                accepted=intended + 0.01,
                included=included,
                status=1,
                gas_used=21_000,
                nonce=nonce,
            )
    windows = tuple((f["start"], f["end"]) for f in plan.faults)
    report = report_of(log, sustain=(1.0, 11.0), fault_windows=windows)
    return plan, report


def test_a_pause_shows_before_during_after_recovery_and_delayed_from_the_digest() -> None:
    from pytest_gashammer.fault.timeline import FaultRecord

    plan, report = run_with_pause()
    record = FaultRecord(
        index=0, kind="node.pause", params={}, start=4.0, end=6.0, started_at=4.0, ended_at=6.0
    )
    (impact,) = fault_impacts(plan, [report], [record])
    assert impact.label == "node.pause #0"
    assert impact.included_gas_per_sec_before == pytest.approx(2_100_000, rel=0.1)
    assert impact.included_gas_per_sec_during < 0.1 * 2_100_000
    assert impact.inclusion_p99_before <= 0.25
    assert 2.0 <= impact.inclusion_p99_during <= 2.6
    assert impact.recovered_after_s is not None and 0.25 <= impact.recovered_after_s <= 1.0
    assert 200 <= impact.delayed <= 215  # the 2 s of sends plus those in flight at its begin
    assert impact.lost == 0 and impact.error is None


def test_transactions_lost_in_a_fault_are_counted_and_named_in_the_inclusion_verdict() -> None:
    from pytest_gashammer.fault.timeline import FaultRecord
    from pytest_gashammer.results import Verdict

    plan, report = run_with_pause(lose=5)
    record = FaultRecord(
        index=0, kind="node.pause", params={}, start=4.0, end=6.0, started_at=4.0, ended_at=6.0
    )
    (impact,) = fault_impacts(plan, [report], [record])
    assert impact.lost == 5 and len(impact.lost_examples) == 5
    result = dataclasses.replace(run_result([Verdict("inclusion", "failed", "5 lost")]), faults=[impact])
    named = name_faults(result)
    (verdict,) = named.verdicts
    assert verdict.summary == "5 lost (5 during node.pause #0)"
    assert verdict.evidence["lost_during_faults"]["node.pause #0"]["examples"] == impact.lost_examples


def test_a_chain_that_never_catches_up_never_recovers() -> None:
    from pytest_gashammer.fault.timeline import FaultRecord

    plan = compile_plan(
        spec_with({"kind": "node.pause", "at": "sustain+3s", "duration": "2s"}, gas_per_sec=2_100_000),
        name="t",
        seed=1,
    )
    log = Log()
    for step in range(1100):
        intended = step / 100
        # After the fault, every transaction waits 3 s: the backlog stays high to the end.
        latency = 0.25 if intended < 4.0 else 3.0
        log.add(
            intended=intended,
            sent=intended,
            accepted=intended,
            included=intended + latency,
            status=1,
            gas_used=21_000,
            nonce=step,
        )
    report = report_of(log, fault_windows=((4.0, 6.0),))
    record = FaultRecord(
        index=0, kind="node.pause", params={}, start=4.0, end=6.0, started_at=4.0, ended_at=6.0
    )
    (impact,) = fault_impacts(plan, [report], [record])
    assert impact.recovered_after_s is None


def test_faults_are_refused_against_a_public_chain_whatever_else_is_given() -> None:
    from types import SimpleNamespace

    from pytest_gashammer.hive.faulting import FaultRig

    plan = compile_plan(spec_with({"kind": "rpc.latency", "at": 1, "duration": 1, "ms": 5}), name="t", seed=1)
    mainnet = SimpleNamespace(chain_id=42161, kind="external", feed_url=None, rpc_url="http://127.0.0.1:9")
    with pytest.raises(
        ConfigError, match=r"^faults are refused against chain id 42161 \(Arbitrum One\), whatever"
    ):
        FaultRig.open(plan, mainnet)  # type: ignore[arg-type]
    assert FaultRig.open(compile_plan(spec_with(), name="t", seed=1), mainnet) is None  # type: ignore[arg-type]


def test_a_window_off_the_slot_grid_still_measures_the_rate_exactly() -> None:
    import numpy as np

    from pytest_gashammer.hive.fault_impact import _gas_rate

    times = np.arange(0, 40) * 0.25
    gas = np.full(times.size, 250_000.0)  # 1 Mgas/s
    for low in (2.0, 2.02, 2.1, 2.24, 2.26):
        assert _gas_rate(times, gas, low, low + 2.0, observed_end=10.0) == pytest.approx(1e6), low
    assert _gas_rate(times, gas, 9.0, 11.0, observed_end=10.0) != _gas_rate(
        times, gas, 9.0, 11.0, observed_end=10.0
    )
