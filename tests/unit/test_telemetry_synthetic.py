"""A synthetic edge report with realistic columns, for telemetry and report tests and the benchmark.

``synthetic_report(rows)`` builds, with numpy and no chain, what an edge hands back after a run at a
steady rate: 250 ms blocks, a mix of templates, a few rejections of several kinds, a few accepted
transactions that are never included, sampled receipts, a sequencer feed that carries every included
transaction shortly before its block is seen (with one reconnect and one gap), and the blocks. It is
fed through the real ``build_result`` and ``evaluate``, so a stored run of it has real key figures.
"""

from __future__ import annotations

import math
from array import array
from dataclasses import dataclass
from typing import Any

import numpy as np

from pytest_gashammer.hive.aggregate import build_result
from pytest_gashammer.oracle.invariants import evaluate
from pytest_gashammer.results import RunResult
from pytest_gashammer.scenario.spec import ScenarioPlan, compile_plan, parse_spec
from pytest_gashammer.telemetry.digest import RunDigest
from pytest_gashammer.telemetry.records import (
    STATUS_ACCEPTED,
    STATUS_INCLUDED,
    STATUS_REJECTED,
    BlockRecord,
    EdgeReport,
    TxLog,
)

ORIGIN_NS = 5_000_000_000_000  # the edge's monotonic clock at plan t=0
WALL_ORIGIN_NS = 1_763_683_200_000_000_000  # 2025-11-21 00:00:00 UTC
BLOCK_NS = 250_000_000
TEMPLATES = ("transfer", "erc20", "storage")
TEMPLATE_GAS = (21_000, 51_000, 230_000)
ERROR_KINDS = ("nonce_too_low", "txpool_full", "insufficient_funds")


@dataclass
class SyntheticRun:
    plan: ScenarioPlan
    report: EdgeReport
    result: RunResult
    receipt_stride: int
    #: The edge's rows and its correlator's shipped columns, as the edge held them before forgetting.
    txs: TxLog
    feed_columns: dict[str, Any] | None


def _column(typecode: str, values: np.ndarray) -> array:
    column = array(typecode)
    column.frombytes(np.ascontiguousarray(values, dtype=np.dtype(typecode)).tobytes())
    return column


def synthetic_plan(rows: int, *, tx_per_sec: float = 1000.0) -> ScenarioPlan:
    seconds = rows / tx_per_sec
    mean_gas = sum(TEMPLATE_GAS) / len(TEMPLATE_GAS)
    spec = parse_spec(
        {
            "gas_per_sec": tx_per_sec * mean_gas,
            "duration": max(seconds * 0.8, 0.1),
            "warmup": 0,
            "ramp": max(seconds * 0.1, 0.0),
            "cooldown": max(seconds * 0.1, 0.0),
            "workload": {"transfer": 1.0, "erc20": 1.0, "storage": 1.0},
            "senders": 64,
        }
    )
    return compile_plan(spec, name="synthetic", seed=7)


def synthetic_report(
    rows: int = 20_000, *, tx_per_sec: float = 1000.0, seed: int = 7, edge_id: str = "e0", feed: bool = True
) -> SyntheticRun:
    rng = np.random.default_rng(seed)
    plan = synthetic_plan(rows, tx_per_sec=tx_per_sec)
    row = np.arange(rows, dtype=np.int64)
    template = rng.integers(0, len(TEMPLATES), rows).astype(np.int16)
    template[-3:] = -1  # nonce-gap fillers at the end, as an edge sends them
    senders = 64
    sender = (row % senders).astype(np.int64)
    nonce = row // senders
    gas_planned = np.array(TEMPLATE_GAS, dtype=np.int64)[np.maximum(template, 0)]
    intended = ORIGIN_NS + (row * (1e9 / tx_per_sec)).astype(np.int64)
    sent = intended + rng.integers(100_000, 3_000_000, rows)
    accept_delay = rng.lognormal(math.log(2e6), 0.6, rows).astype(np.int64)
    rejected = rng.random(rows) < 0.004
    lost = ~rejected & (rng.random(rows) < 0.0005)
    accepted_ns = np.where(rejected, -1, sent + accept_delay)
    # Included in the first block at least 1.5 blocks after acceptance; observed 20 ms after it closes.
    block_index = np.where(rejected | lost, -1, (accepted_ns - ORIGIN_NS) // BLOCK_NS + 2)
    block_index[rows // 2 : rows // 2 + rows // 50] += 4  # a slow stretch mid-run
    included_ns = np.where(block_index >= 0, ORIGIN_NS + block_index * BLOCK_NS + 20_000_000, -1)
    start_block = 100
    block_number = np.where(block_index >= 0, start_block + block_index, -1)
    error = np.where(rejected, rng.integers(0, len(ERROR_KINDS), rows), -1).astype(np.int16)
    state = np.full(rows, STATUS_ACCEPTED, dtype=np.int8)
    state[rejected] = STATUS_REJECTED
    state[block_index >= 0] = STATUS_INCLUDED
    stride = max(1, rows // 2000)
    sampled = (row % stride == 0) & (block_index >= 0)
    receipt_status = np.where(sampled, 1, -1).astype(np.int8)
    gas_used = np.where(sampled, (gas_planned * 0.97).astype(np.int64), -1)

    log = TxLog()
    log.template = _column("h", template)
    log.sender = _column("l", sender)
    log.nonce = _column("q", nonce)
    log.gas_planned = _column("q", gas_planned)
    log.intended_ns = _column("q", intended)
    log.sent_ns = _column("q", sent)
    log.accepted_ns = _column("q", accepted_ns)
    log.included_ns = _column("q", included_ns)
    log.block_number = _column("q", block_number)
    log.receipt_status = _column("b", receipt_status)
    log.gas_used = _column("q", gas_used)
    log.error = _column("h", error)
    log.state = _column("b", state)
    log.inclusions = _column("b", (block_index >= 0).astype(np.int8))
    log.hashes = bytearray(rng.bytes(32 * rows))
    for kind in ERROR_KINDS:
        log.error_code(kind)

    last_block = int(block_index.max()) if rows else 0
    per_block = np.bincount(block_index[block_index >= 0], minlength=last_block + 1)
    gas_per_block = np.bincount(
        block_index[block_index >= 0], weights=gas_planned[block_index >= 0], minlength=last_block + 1
    )
    blocks = [
        BlockRecord(
            number=start_block + index,
            hash="0x" + bytes([index % 256, (index >> 8) % 256]).hex() * 16,
            parent_hash="0x" + bytes([(index - 1) % 256, ((index - 1) >> 8) % 256]).hex() * 16,
            timestamp=1_763_683_200 + index // 4,
            gas_used=int(gas_per_block[index]),
            gas_limit=1_000_000_000,
            tx_count=int(per_block[index]),
            observed_ns=ORIGIN_NS + index * BLOCK_NS + 20_000_000,
            base_fee=100_000_000,
        )
        for index in range(last_block + 1)
    ]

    feed_columns = feed_stats = feed_findings = None
    feed_events: list[tuple[str, int, str, int | None]] = []
    if feed:
        arrival = np.where(block_index >= 0, included_ns - rng.integers(5_000_000, 15_000_000, rows), -1)
        feed_columns = {
            "sequence_offset": 0,
            "intended_ns": intended.tobytes(),
            "arrival_ns": arrival.astype(np.int64).tobytes(),
            "sequence": np.where(block_index >= 0, block_number, -1).astype(np.int64).tobytes(),
            "position": np.where(block_index >= 0, row % 100, -1).astype(np.dtype("l")).tobytes(),
            "appearances": (block_index >= 0).astype(np.int8).tobytes(),
        }
        included_count = int((block_index >= 0).sum())
        feed_stats = {
            "messages": last_block + 1,
            "transactions": included_count,
            "connects": 2,
            "reconnects": 1,
            "connect_failures": 0,
            "decode_errors": {},
            "gap_count": 1,
            "missing_messages": 2,
            "duplicate_count": 0,
            "first_sequence": start_block,
            "last_sequence": start_block + last_block,
            "last_error": None,
        }
        feed_findings = {
            "included": included_count,
            "in_feed": included_count,
            "missing_from_feed": 0,
            "duplicated_in_feed": 0,
            "feed_only": 0,
            "order_violations": 0,
            "hash_mismatches": 0,
            "messages_spanning_blocks": 0,
            "blocks_missing_from_feed": 0,
        }
        middle = ORIGIN_NS + (rows // 2) * int(1e9 / tx_per_sec)
        feed_events = [
            ("connect", ORIGIN_NS - 50_000_000, "ws://127.0.0.1:9642", start_block),
            ("disconnect", middle, "connection closed", None),
            ("reconnect", middle + 300_000_000, "resumed", start_block + 10),
            ("gap", middle + 310_000_000, "2 message(s) missing", start_block + 11),
        ]
    errors = {
        kind: int((error == code).sum()) for code, kind in enumerate(ERROR_KINDS) if (error == code).any()
    }
    errors["tracker_poll_timeout"] = 2
    report = EdgeReport(
        edge_id=edge_id,
        host="synthetic-host",
        clock_origin_ns=ORIGIN_NS,
        wall_origin_ns=WALL_ORIGIN_NS,
        digest=RunDigest.of_log(
            log,
            np.frombuffer(feed_columns["arrival_ns"], dtype=np.int64) if feed_columns else None,
            origin_ns=ORIGIN_NS,
            sustain=(plan.sustain.start, plan.sustain.end),
            inclusion_timeout=plan.inclusion_timeout,
            templates=list(TEMPLATES),
            expected_status=[1, 1, 1],
            gas_estimate=[float(g) for g in TEMPLATE_GAS],
            gas_tolerance=[0.1, 0.1, 0.1],
        ),
        blocks=blocks,
        templates=list(TEMPLATES),
        template_expected_status=[1, 1, 1],
        template_gas_model=[float(g) for g in TEMPLATE_GAS],
        template_gas_tolerance=[0.1, 0.1, 0.1],
        sender_addresses=[f"0x{index:040x}" for index in range(senders)],
        sender_start_nonces=[0] * senders,
        sender_foreign_nonces=[[] for _ in range(senders)],
        errors=errors,
        receipts_checked=int(sampled.sum()),
        receipts_skipped=int((block_index >= 0).sum() - sampled.sum()),
        receipts_expected=int(sampled.sum()),
        receipts_via="eth_getBlockReceipts",
        sending_finished_ns=int(intended[-1]) if rows else -1,
        feed_stats=feed_stats,
        feed_events=feed_events,
        feed_findings=feed_findings,
        rejections=[
            {"kind": kind, "code": -32000, "message": f"{kind.replace('_', ' ')} <as the node says>",
             "count": count, "first_tx": "0x" + "ab" * 32, "sender": f"0x{0:040x}", "nonce": 0}
            for kind, count in errors.items()
            if kind in ERROR_KINDS
        ],
    )  # fmt: skip
    result = build_result(
        plan,
        [report],
        evaluate([report], plan.inclusion_timeout),
        chain_id=412346,
        devnet_kind="embedded",
        node_version="anvil 1.7.1",
        duration=rows / tx_per_sec + 3.0,
    )
    return SyntheticRun(plan, report, result, stride, log, feed_columns)


def feed_of(run: SyntheticRun) -> dict[str, Any] | None:
    return run.feed_columns


def test_the_synthetic_report_is_internally_consistent() -> None:
    run = synthetic_report(4_000)
    log = run.txs
    assert len(log) == 4_000
    result = run.result
    assert result.sent == 4_000
    assert result.rejected > 0 and result.lost > 0
    assert result.included + result.lost + result.rejected == result.sent
    assert result.latency.feed.count > 0
    assert {v.name: v.status for v in result.verdicts}["inclusion"] == "failed"  # the lost ones
