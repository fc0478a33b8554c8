"""Telemetry from real pytest sessions: Parquet that agrees with the results, the report, hooks."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pytest_gashammer.telemetry.parquet import load

pytestmark = pytest.mark.usefixtures("no_new_anvil")

SCENARIO = """
import json, os
import pytest

# A fifth of the transactions is refused on purpose; the acceptance bound says that is expected.
@pytest.mark.gashammer(gas_per_sec="1M", duration="2s", warmup=0, max_rejected_share=0.4,
                       workload={"transfer": 0.8, "tests_templates:Refused": 0.2})
def test_recorded(hammer):
    result = hammer.run(check=False)
    with open(os.environ["GASHAMMER_TEST_OUT"], "w") as out:
        json.dump(dict(sent=result.sent, accepted=result.accepted, rejected=result.rejected,
                       included=result.included, lost=result.lost, seed=result.seed,
                       edges=len(result.edges), acceptance=result.verdict("acceptance").status,
                       rejections=result.rejections), out)
"""

TEMPLATES = """
from pytest_gashammer.workload.transfer import TransferTemplate

class Refused(TransferTemplate):
    name = "refused"

    def build(self, sender_index, rng):
        fields = super().build(sender_index, rng)
        fields["value"] = 10**30  # more than any sender holds: the node refuses it
        return fields
"""

CONFTEST = """
import json, os

def pytest_gashammer_report_sections(config, directory):
    return [("Team notes", "<p id='team-notes'>reviewed by the load team</p>")]

def pytest_gashammer_summary_lines(config, nodeid, run, lines):
    lines.append("  custom     lines from conftest")

def pytest_gashammer_run_finished(item, result):
    with open(os.environ["GASHAMMER_TEST_OUT"] + ".hook", "w") as out:
        out.write(result.name)
"""


def counts_by_state(tables) -> dict[str, int]:
    states = tables.transactions.column("state").to_pylist()
    return {state: states.count(state) for state in set(states)}


@pytest.mark.parametrize("workers", [0, 2], ids=["one-process", "xdist-2"])
def test_parquet_agrees_with_the_run_result_and_the_report_renders(
    pytester: pytest.Pytester, workers: int
) -> None:
    pytester.makepyfile(test_recorded=SCENARIO, tests_templates=TEMPLATES)
    pytester.makeconftest(CONFTEST)
    out = pytester.path / "result.json"
    pytester._monkeypatch.setenv("GASHAMMER_TEST_OUT", str(out))
    args = ["-p", "no:cacheprovider", "--gashammer-parquet", "telemetry", "--gashammer-report", "report.html"]
    if workers:
        args += ["-n", str(workers)]
    result = pytester.runpytest_subprocess(*args, timeout=300)
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines_random(
        ["*custom     lines from conftest*", "*gashammer report: *report.html*"]
    )
    facts = json.loads(out.read_text())
    assert Path(str(out) + ".hook").read_text() == "test_recorded"

    tables = load(pytester.path / "telemetry")
    (run_id,) = tables.run_ids()
    run = tables.runs.to_pylist()[0]
    assert run["status"] == "finished"
    assert run["seed"] == facts["seed"]
    assert tables.transactions.num_rows == facts["sent"]
    states = counts_by_state(tables)
    assert states.get("included", 0) == facts["included"] > 0
    assert states.get("rejected", 0) == facts["rejected"] > 0
    assert facts["acceptance"] == "passed"
    # The node's words for the refused fifth, and the same in the stored run.
    assert {entry["kind"] for entry in facts["rejections"]} == {"insufficient_funds"}
    assert sum(entry["count"] for entry in facts["rejections"]) == facts["rejected"]
    assert json.loads(run["rejections_json"]) == facts["rejections"]
    assert states.get("lost", 0) == facts["lost"] == 0
    assert tables.edges.num_rows == facts["edges"] == max(workers, 1)
    assert tables.verdicts.num_rows >= 4
    assert tables.blocks.num_rows > 0

    page = (pytester.path / "report.html").read_text()
    assert "id='team-notes'" in page and "Team notes" in page
    assert "<svg" in page
    assert 'src="http' not in page and 'href="http' not in page  # opens offline


def test_a_run_cut_short_by_ctrl_c_leaves_readable_parquet(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_long="""
        import pytest

        @pytest.mark.gashammer(gas_per_sec="1M", duration="120s", warmup=0)
        def test_long(hammer):
            hammer.run()
        """
    )
    run = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            "--gashammer-parquet",
            "telemetry",
            "test_long.py",
        ],
        cwd=pytester.path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        env={**os.environ},
    )
    try:
        time.sleep(12)  # devnet, funding, then several seconds of load
        os.kill(run.pid, signal.SIGINT)
        run.wait(timeout=60)
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
    tables = load(pytester.path / "telemetry")
    (row,) = tables.runs.to_pylist()
    assert row["status"] == "interrupted"
    assert tables.transactions.num_rows > 100
