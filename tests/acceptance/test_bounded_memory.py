"""An edge on a real anvil holds only what is in flight: final rows are digested, streamed and forgotten
while the run goes, and the result is the same as if it had kept them."""

from __future__ import annotations

from typing import Any

import pytest

from pytest_gashammer.devnet.embedded import EmbeddedDevnet
from pytest_gashammer.edge import runtime as edge_runtime
from pytest_gashammer.oracle.invariants import evaluate
from pytest_gashammer.scenario.spec import compile_plan, parse_spec
from tests.acceptance.edge_rows import assignment_on, run_with_rows

pytestmark = pytest.mark.usefixtures("no_new_anvil")


def test_an_edge_forgets_final_rows_during_the_run_and_loses_none(monkeypatch: pytest.MonkeyPatch) -> None:
    held: list[tuple[int, int, int]] = []  # (rows so far, rows held, forgotten transactions remembered)
    settle = edge_runtime._EdgeSession._settle_rows

    def watched(session: Any, *, final: bool) -> Any:
        digest = settle(session, final=final)
        if not final:
            held.append((len(session.log), session.log.held, session.inclusion.forgotten.count))
        return digest

    monkeypatch.setattr(edge_runtime._EdgeSession, "_settle_rows", watched)
    plan = compile_plan(
        parse_spec({"gas_per_sec": "10M", "duration": "8s", "warmup": 0, "receipts": 100}),
        name="forget",
        seed=9,
    )
    with EmbeddedDevnet().start() as devnet:
        assignment = assignment_on(devnet, plan, feed_url=devnet.feed_url)
        report, rows = run_with_rows(assignment)
    # Late in the run the edge holds a few seconds of rows, not the run.
    total, late_held, forgotten = held[-2]
    assert total > 2_000 and late_held < total / 2, held
    assert forgotten > 0, "forgotten included transactions are remembered for duplicate detection"
    # Nothing was lost on the way: every row streamed once, every verdict as with every row kept.
    assert rows.num_rows == report.digest.rows == report.digest.included
    verdicts = {verdict.name: verdict.status for verdict in evaluate([report], plan.inclusion_timeout)}
    assert {name for name, status in verdicts.items() if status != "passed"} <= {"balance_conservation"}, (
        verdicts
    )
