"""The ``acceptance`` invariant: a run that did nothing, or whose load the node refused, never passes.

And the node's refusals, kept verbatim per edge and merged over edges, quoted in the evidence.
"""

from __future__ import annotations

import pytest

from pytest_gashammer.oracle import evaluate_plan
from pytest_gashammer.oracle.invariants import acceptance, evaluate
from pytest_gashammer.scenario.spec import compile_plan, parse_spec
from pytest_gashammer.telemetry.records import RejectionSample, describe_rejection, merge_rejections
from tests.unit.edge_reports import Log, report_of

EJS = "replacement gas too low, got tip 0, min: 0, got fee 202, min: 374"


def refused(count: int, *, kind: str = "replacement_underpriced", message: str = EJS) -> list[dict]:
    sample = RejectionSample()
    for n in range(count):
        sample.add(kind, -32602, message, f"0x{n:064x}", "0xA11CE00000000000000000000000000000000001", n)
    return sample.to_list()


def test_every_transaction_refused_fails_quoting_the_node() -> None:
    log = Log()
    for n in range(49):
        log.add(intended=n * 0.1, sent=n * 0.1, rejected="replacement_underpriced", nonce=n)
    report = report_of(log, errors={"replacement_underpriced": 49}, rejections=refused(49))
    verdict = acceptance([report], 30.0)
    assert verdict.status == "failed"
    assert verdict.summary == "no transaction was accepted: the node refused 49 of 49 sent"
    (said,) = verdict.evidence["what_the_node_said"]
    assert said.startswith(f"replacement_underpriced (code -32602): {EJS!r} x49, first 0x")
    assert EJS in verdict.describe()


def test_nothing_sent_fails_naming_the_cause() -> None:
    verdict = acceptance([report_of(Log())], 30.0)
    assert verdict.status == "failed"
    assert "no transaction was sent" in verdict.summary and "gas_per_sec or duration" in verdict.summary
    stopped = acceptance([report_of(Log(), stopped_early="interrupted by Ctrl-C")], 30.0)
    assert stopped.status == "failed" and "interrupted by Ctrl-C" in stopped.summary
    assert acceptance([], 30.0).status == "failed"


def test_sent_but_never_answered_is_not_accepted_either() -> None:
    log = Log()
    log.add(intended=0.0, sent=0.0, rejected="transport")
    log.add(intended=0.1, sent=0.1)  # no answer at all (a stop cut it off)
    verdict = acceptance([report_of(log)], 30.0)
    assert verdict.status == "failed" and "(1 got no answer)" in verdict.summary


@pytest.mark.parametrize(
    ("refused_count", "bound", "status"),
    [(0, 0.0, "passed"), (1, 0.1, "passed"), (2, 0.1, "failed"), (2, 0.2, "passed"), (9, 1.0, "passed")],
)
def test_the_refused_share_is_held_to_the_bound(refused_count: int, bound: float, status: str) -> None:
    log = Log()
    for n in range(10 - refused_count):
        log.ok(float(n), nonce=n)
    for n in range(refused_count):
        log.add(intended=20.0 + n, sent=20.0 + n, rejected="txpool_full", nonce=100 + n)
    report = report_of(log, rejections=refused(refused_count, kind="txpool_full", message="txpool is full"))
    verdict = acceptance([report], 30.0, max_rejected_share=bound)
    assert verdict.status == status, verdict.summary
    assert f"max_rejected_share={bound:g}" in verdict.summary
    if refused_count:
        assert "'txpool is full'" in verdict.evidence["what_the_node_said"][0]


def test_the_plan_carries_the_bound_to_the_oracle() -> None:
    log = Log()
    for n in range(8):
        log.ok(float(n), nonce=n)
    for n in range(2):
        log.add(intended=20.0 + n, sent=20.0 + n, rejected="txpool_full", nonce=100 + n)
    reports = [report_of(log)]
    strict = compile_plan(parse_spec({"gas_per_sec": "1M"}), name="x", seed=1)
    lenient = compile_plan(parse_spec({"gas_per_sec": "1M", "max_rejected_share": 0.25}), name="x", seed=1)
    by_name = lambda verdicts: {v.name: v.status for v in verdicts}  # noqa: E731
    assert by_name(evaluate_plan(strict, reports))["acceptance"] == "failed"
    assert by_name(evaluate_plan(lenient, reports))["acceptance"] == "passed"
    assert by_name(evaluate(reports, 30.0))["acceptance"] == "failed"  # the default bound, 0.1
    settings = {"acceptance": {"max_rejected_share": 0.5}}
    assert by_name(evaluate(reports, 30.0, settings=settings))["acceptance"] == "passed"


def test_a_healthy_run_passes_with_no_evidence() -> None:
    log = Log()
    for n in range(5):
        log.ok(float(n), nonce=n)
    verdict = acceptance([report_of(log)], 30.0)
    assert verdict.status == "passed" and verdict.evidence == {}
    assert verdict.summary.startswith("5 of 5 sent transactions accepted, 0 refused")


def test_the_sample_keeps_the_first_distinct_messages_per_kind_with_exact_counts() -> None:
    sample = RejectionSample(limit=2)
    for n in range(5):
        sample.add(
            "nonce_too_low", -32000, f"nonce too low: next nonce {n + 10}, tx nonce {n}", "0x1", "0xa", n
        )
    sample.add("nonce_too_low", -32000, "nonce too low: next nonce 10, tx nonce 0", "0x2", "0xa", 0)
    sample.add("transport", None, "eth_sendRawTransaction: timed out", "0x3", "0xb", 7)
    entries = sample.to_list()
    assert [(e["kind"], e["count"]) for e in entries] == [
        ("nonce_too_low", 2),
        ("nonce_too_low", 1),
        ("transport", 1),
    ]
    assert entries[0]["first_tx"] == "0x1" and entries[0]["nonce"] == 0
    assert describe_rejection(entries[2]).startswith(
        "transport (no JSON-RPC answer): 'eth_sendRawTransaction"
    )


def test_edges_samples_merge_adding_equal_messages_most_frequent_first() -> None:
    one = refused(3)
    two = refused(5) + refused(1, kind="txpool_full", message="txpool is full")
    merged = merge_rejections([one, two])
    assert [(e["kind"], e["count"]) for e in merged] == [("replacement_underpriced", 8), ("txpool_full", 1)]
    many = [[dict(e, message=f"m{n}", count=n + 1) for e in refused(1)] for n in range(15)]
    assert len(merge_rejections(many, limit=10)) == 10
    assert merge_rejections(many, limit=10)[0]["message"] == "m14"
