"""The Engine API invariants and figures over the consensus driver's records, and the marker's ``engine={...}``."""

from __future__ import annotations

import pytest

from pytest_gashammer.chain.engine import BlockBuild, EngineCall
from pytest_gashammer.errors import ConfigError
from pytest_gashammer.oracle.engine import (
    EngineRun,
    PoolAfterDrain,
    engine_figures,
    engine_unavailable,
    engine_verdicts,
)
from pytest_gashammer.scenario.arguments import parse_engine
from pytest_gashammer.scenario.spec import compile_plan, parse_spec
from pytest_gashammer.vocabulary import ENGINE_INVARIANT_NAMES

T0 = 1_700_000_000.0


def block_hash(number: int) -> str:
    return "0x" + f"{number:064x}"


def healthy_block(number: int, *, at: float, transactions: int = 2, version: int = 3) -> list[EngineCall]:
    """The four calls the driver makes per block, each answered as a healthy client answers."""
    parent, new, payload_id = block_hash(number - 1), block_hash(number), f"0x{number:016x}"
    return [
        EngineCall(
            "forkchoiceUpdated",
            version,
            at,
            0.010,
            "VALID",
            block_hash=parent,
            payload_id=payload_id,
            latest_valid_hash=parent,
            with_attributes=True,
        ),
        EngineCall(
            "getPayload",
            version,
            at + 0.02,
            0.030,
            "OK",
            block_number=number,
            block_hash=new,
            parent_hash=parent,
            transactions=transactions,
            gas_used=21_000 * transactions,
            payload_id=payload_id,
        ),
        EngineCall(
            "newPayload",
            version,
            at + 0.06,
            0.050,
            "VALID",
            block_number=number,
            block_hash=new,
            parent_hash=parent,
            transactions=transactions,
            latest_valid_hash=new,
        ),
        EngineCall(
            "forkchoiceUpdated", version, at + 0.12, 0.005, "VALID", block_hash=new, latest_valid_hash=new
        ),
    ]


def build(number: int, *, at: float, head_after: str | None = "same", transactions: int = 2) -> BlockBuild:
    new = block_hash(number)
    return BlockBuild(
        number=number,
        block_hash=new,
        parent_hash=block_hash(number - 1),
        timestamp=int(at),
        transactions=transactions,
        gas_used=21_000 * transactions,
        started_at=at,
        build_s=0.04,
        import_s=0.055,
        payload_id=f"0x{number:016x}",
        head_after=new if head_after == "same" else head_after,
        driver_cpu_s=0.005,
    )


def healthy_run(blocks: int = 5, pool: PoolAfterDrain | None = None) -> EngineRun:
    calls = [call for n in range(1, blocks + 1) for call in healthy_block(n, at=T0 + n)]
    builds = [build(n, at=T0 + n) for n in range(1, blocks + 1)]
    return EngineRun(calls, builds, version=3, pool=pool or PoolAfterDrain(0, waited_s=0.3))


def statuses(run: EngineRun) -> dict[str, str]:
    return {verdict.name: verdict.status for verdict in engine_verdicts(run)}


def test_a_healthy_client_passes_every_engine_invariant() -> None:
    verdicts = engine_verdicts(healthy_run())
    assert [verdict.name for verdict in verdicts] == list(ENGINE_INVARIANT_NAMES)
    assert {verdict.status for verdict in verdicts} == {"passed"}, [v.describe() for v in verdicts]


def test_a_valid_payload_answered_invalid_fails_payload_valid_naming_the_block() -> None:
    run = healthy_run()
    calls = list(run.calls)
    index = next(i for i, call in enumerate(calls) if call.method == "newPayload" and call.block_number == 3)
    calls[index] = EngineCall(
        "newPayload",
        3,
        calls[index].started_at,
        0.01,
        "INVALID",
        block_number=3,
        block_hash=block_hash(3),
        latest_valid_hash=block_hash(2),
        error="made up by a proxy",
    )
    verdicts = {v.name: v for v in engine_verdicts(EngineRun(calls, run.builds, 3, pool=run.pool))}
    failed = verdicts["engine_payload_valid"]
    assert failed.status == "failed"
    assert (
        "1 of 5 payload(s)" in failed.summary and "block 3" in failed.summary and "INVALID" in failed.summary
    )
    # Naming the parent as the latest valid ancestor is what INVALID should say: consistent.
    assert verdicts["engine_latest_valid_hash"].status == "passed"


def test_syncing_answers_fail_payload_valid_and_must_name_no_latest_valid_hash() -> None:
    run = healthy_run(3)
    calls = [
        EngineCall("newPayload", 3, T0 + 9, 0.001, "SYNCING", block_number=4, block_hash=block_hash(4)),
        EngineCall(
            "forkchoiceUpdated",
            3,
            T0 + 9.1,
            0.001,
            "SYNCING",
            block_hash=block_hash(4),
            latest_valid_hash=block_hash(3),
        ),
    ]
    run = EngineRun([*run.calls, *calls], run.builds, 3, pool=run.pool)
    verdicts = {v.name: v for v in engine_verdicts(run)}
    assert verdicts["engine_payload_valid"].status == "failed"
    assert verdicts["engine_head"].status == "failed"
    assert "SYNCING" in verdicts["engine_head"].summary
    lvh = verdicts["engine_latest_valid_hash"]
    assert lvh.status == "failed" and "SYNCING must name none" in lvh.summary


def test_a_head_that_did_not_follow_fails_engine_head() -> None:
    run = healthy_run(3)
    builds = [*run.builds[:2], build(3, at=T0 + 3, head_after=block_hash(2))]
    verdict = {v.name: v for v in engine_verdicts(EngineRun(run.calls, builds, 3, pool=run.pool))}[
        "engine_head"
    ]
    assert verdict.status == "failed"
    assert (
        f"block 3 ({block_hash(3)}) selected, yet the node's head right after was {block_hash(2)}"
        in verdict.summary
    )


def test_a_valid_status_naming_another_block_fails_latest_valid_hash() -> None:
    run = healthy_run(2)
    calls = list(run.calls)
    calls[2] = EngineCall(
        "newPayload",
        3,
        calls[2].started_at,
        0.05,
        "VALID",
        block_number=1,
        block_hash=block_hash(1),
        latest_valid_hash=block_hash(7),
    )
    verdict = {v.name: v for v in engine_verdicts(EngineRun(calls, run.builds, 3, pool=run.pool))}[
        "engine_latest_valid_hash"
    ]
    assert verdict.status == "failed" and "not the block it validated" in verdict.summary


def test_a_withheld_payload_id_and_an_unknown_payload_fail_payload_ids() -> None:
    run = healthy_run(3)
    withheld = EngineCall(
        "forkchoiceUpdated",
        3,
        T0 + 10,
        0.01,
        "VALID",
        block_hash=block_hash(3),
        latest_valid_hash=block_hash(3),
        with_attributes=True,
    )
    unknown = [
        EngineCall(
            "forkchoiceUpdated",
            3,
            T0 + 11,
            0.01,
            "VALID",
            block_hash=block_hash(3),
            latest_valid_hash=block_hash(3),
            payload_id="0xdead",
            with_attributes=True,
        ),
        EngineCall(
            "getPayload",
            3,
            T0 + 11.1,
            0.01,
            "ERROR",
            payload_id="0xdead",
            error="JSON-RPC error -38001: Unknown payload",
        ),
    ]
    verdict = {
        v.name: v for v in engine_verdicts(EngineRun([*run.calls, withheld, *unknown], run.builds, 3))
    }["engine_payload_ids"]
    assert verdict.status == "failed"
    assert verdict.summary.startswith("2 problem(s); first: forkchoiceUpdatedV3")
    assert any(
        "0xdead" in finding and "Unknown payload" in finding for finding in verdict.evidence["findings"]
    )


def test_a_build_in_progress_at_the_end_of_the_log_is_not_a_missing_payload() -> None:
    run = healthy_run(2)
    last = EngineCall(
        "forkchoiceUpdated",
        3,
        T0 + 50,
        0.01,
        "VALID",
        block_hash=block_hash(2),
        latest_valid_hash=block_hash(2),
        payload_id="0xbeef",
        with_attributes=True,
    )
    verdicts = {
        v.name: v.status for v in engine_verdicts(EngineRun([*run.calls, last], run.builds, 3, pool=run.pool))
    }
    assert verdicts["engine_payload_ids"] == "passed"


def test_a_pool_left_with_transactions_fails_and_an_unreadable_one_is_inconclusive() -> None:
    left = healthy_run(pool=PoolAfterDrain(3, queued=1, waited_s=5.0, examples=("0xaa", "0xbb")))
    verdict = {v.name: v for v in engine_verdicts(left)}["engine_pool_drained"]
    assert verdict.status == "failed"
    assert verdict.summary.startswith("4 transaction(s) still in the client's pool 5.0 s after the run")
    assert verdict.evidence["examples"] == ["0xaa", "0xbb"]
    unread = healthy_run(pool=PoolAfterDrain(None, problem="txpool_content: method not found"))
    verdict = {v.name: v for v in engine_verdicts(unread)}["engine_pool_drained"]
    assert verdict.status == "inconclusive" and "method not found" in verdict.summary


def test_a_run_with_no_engine_calls_is_inconclusive_everywhere_never_passed() -> None:
    run = EngineRun([], [], version=3, pool=None)
    assert set(statuses(run).values()) == {"inconclusive"}
    assert [v.status for v in engine_unavailable("no driver", only=["engine_head"])] == ["inconclusive"]
    assert [v.name for v in engine_verdicts(healthy_run(), skip=["engine_head"])] == [
        name for name in ENGINE_INVARIANT_NAMES if name != "engine_head"
    ]


def test_the_figures_split_build_from_import_and_count_statuses() -> None:
    run = healthy_run(4)
    figures = engine_figures(run, time_origin=T0)
    assert (figures.version, figures.blocks_built, figures.calls, figures.failed_calls) == (3, 4, 16, 0)
    assert figures.forkchoice_updated.count == 8 and figures.get_payload.count == 4
    assert figures.new_payload.p99 == pytest.approx(0.05)
    assert figures.block_build.p50 == pytest.approx(0.04) and figures.block_import.max == pytest.approx(0.055)
    assert figures.transactions_per_block == 2
    assert figures.driver_cpu_per_block_s == pytest.approx(0.005)
    assert figures.statuses == {
        "forkchoiceUpdated": {"VALID": 8},
        "getPayload": {"OK": 4},
        "newPayload": {"VALID": 4},
    }
    assert figures.call_rows[0].t == pytest.approx(1.0) and figures.block_rows[-1].number == 4


def test_the_marker_engine_settings_are_checked_and_carried_to_the_plan() -> None:
    settings = parse_engine(
        {"version": 2, "withdrawals": 3, "block_interval": "500ms", "fee_recipient": "0x" + "AB" * 20}
    )
    assert settings == (
        ("block_interval", 0.5),
        ("version", 2),
        ("withdrawals", 3),
        ("fee_recipient", "0x" + "ab" * 20),
    )
    plan = compile_plan(parse_spec({"gas_per_sec": "1M", "engine": {"version": 3}}), name="t", seed=1)
    assert plan.engine == (("version", 3),)
    assert type(plan).from_dict(plan.to_dict()) == plan


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ([1], r"^engine=\[1\] must be a dict of the driver's settings, e.g. engine="),
        ({"version": 5}, r"^engine\['version'\]=5 must be one of 1, 2, 3, 4$"),
        ({"block_interval": 0}, r"^engine\['block_interval'\]=0 must be longer than zero"),
        ({"withdrawals": -1}, r"^engine\['withdrawals'\]=-1 must be an integer >= 0"),
        ({"fee_recipient": "0x12"}, r"^engine\['fee_recipient'\]='0x12' must be an address"),
        (
            {"interval": "1s"},
            r"^engine: unknown key 'interval' \(did you mean 'block_interval'\?\); accepted: block_interval, version, withdrawals",
        ),
        ({"version": 1, "withdrawals": 2}, r"^engine: withdrawals need Engine API version 2 or later"),
    ],
)
def test_bad_engine_settings_are_one_line_errors(value: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_spec({"gas_per_sec": "1M", "engine": value})
