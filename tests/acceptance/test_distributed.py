"""Distributed runs: xdist workers and execnet gateways as edges of one hive."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pytest_gashammer.devnet.base import free_port

pytestmark = pytest.mark.usefixtures("no_new_anvil")

REPORTING_SCENARIO = """
import json, os
import pytest

@pytest.mark.gashammer(gas_per_sec="{rate}", duration="{duration}", warmup=0, seed=77,
                       max_fee_per_gas=5_000_000_000, max_priority_fee_per_gas=1_000_000_000)
def test_distributed(hammer):
    result = hammer.run()
    edges = [dict(edge_id=e.edge_id, sent=e.sent, included=e.included, share=e.target_share,
                  skew=e.start_skew, digest=e.tx_digest) for e in result.edges]
    with open(os.environ["GASHAMMER_TEST_OUT"], "w") as out:
        json.dump(dict(edges=edges, sent=result.sent, included=result.included, lost=result.lost,
                       target=result.target_gas_per_sec, included_gas=result.included_gas_per_sec,
                       offered_gas=result.offered_gas_per_sec,
                       verdicts={{v.name: v.status for v in result.verdicts}}), out)
"""


def run_scenario(pytester: pytest.Pytester, *args: str, rate: str = "2M", duration: str = "3s") -> dict:
    pytester.makepyfile(test_dist=REPORTING_SCENARIO.format(rate=rate, duration=duration))
    out = pytester.path / f"out-{time.monotonic_ns()}.json"
    pytester._monkeypatch.setenv("GASHAMMER_TEST_OUT", str(out))
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", *args, timeout=300)
    result.assert_outcomes(passed=1)
    return json.loads(out.read_text())


@pytest.mark.parametrize("workers", [2, 4])
def test_every_worker_is_an_edge_and_counts_add_up(pytester: pytest.Pytester, workers: int) -> None:
    facts = run_scenario(pytester, "-n", str(workers))
    edges = facts["edges"]
    assert sorted(edge["edge_id"] for edge in edges) == [f"gw{i}" for i in range(workers)]
    assert all(edge["sent"] > 0 and edge["included"] == edge["sent"] for edge in edges)
    assert sum(edge["sent"] for edge in edges) == facts["sent"]
    assert sum(edge["included"] for edge in edges) == facts["included"]
    assert sum(edge["share"] for edge in edges) == pytest.approx(1.0)
    assert facts["lost"] == 0
    assert facts["verdicts"]["edges"] == "passed"
    # Every invariant holds; value conservation needs receipts="all", so it says it cannot tell.
    assert facts["verdicts"].pop("balance_conservation") == "inconclusive"
    # The devnet's L1 is judged too; a 3 s run may end before an assertion is confirmed on it.
    assert facts["verdicts"].pop("confirmations") in ("passed", "inconclusive")
    assert set(facts["verdicts"].values()) == {"passed"}
    # Started together: the hive's start signal reaches every edge within a fraction of a second.
    assert max(edge["skew"] for edge in edges) < 0.5


def test_a_seed_reproduces_each_edges_transactions(pytester: pytest.Pytester) -> None:
    first = run_scenario(pytester, "-n", "2")
    second = run_scenario(pytester, "-n", "2")
    digests = lambda facts: {edge["edge_id"]: edge["digest"] for edge in facts["edges"]}  # noqa: E731
    assert digests(first) == digests(second)
    assert len(set(digests(first).values())) == 2  # the edges' transactions differ from each other


def test_gateway_edges_without_xdist(pytester: pytest.Pytester) -> None:
    facts = run_scenario(pytester, "--gashammer-edges", "2*popen")
    assert sorted(edge["edge_id"] for edge in facts["edges"]) == ["edge0", "edge1"]
    assert all(edge["sent"] > 0 for edge in facts["edges"])
    assert facts["lost"] == 0


def test_a_remote_edge_over_an_execnet_socket_gateway(pytester: pytest.Pytester, tmp_path: Path) -> None:
    """A socket server on loopback stands in for a remote machine running an edge."""
    import execnet

    port = free_port()
    server_script = Path(execnet.__file__).parent / "script" / "socketserver.py"
    server = subprocess.Popen(
        [sys.executable, str(server_script), f"127.0.0.1:{port}"],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        time.sleep(1.0)
        facts = run_scenario(
            pytester, "--gashammer-edges", f"socket=127.0.0.1:{port}", "--gashammer-edges", "popen"
        )
        assert sorted(edge["edge_id"] for edge in facts["edges"]) == ["edge0", "edge1"]
        assert all(edge["sent"] > 0 and edge["included"] == edge["sent"] for edge in facts["edges"])
    finally:
        server.kill()
        server.wait(10)


def test_eight_edges_on_two_cores_keep_the_rate(pytester: pytest.Pytester) -> None:
    facts = run_scenario(pytester, "-n", "8", rate="4M", duration="5s")
    assert len(facts["edges"]) == 8
    assert facts["lost"] == 0
    # Eight edges and the node share two cores here (CI ran this at 3.93M of 4M once): the rate's
    # bar is the hot-path benchmark; this checks that eight edges keep it within a few percent.
    assert facts["offered_gas"] == pytest.approx(facts["target"], rel=0.03)
    assert facts["included_gas"] == pytest.approx(facts["target"], rel=0.03)


LOW_RATE_MANY_EDGES = """
import json, os
import pytest

@pytest.mark.gashammer(gas_per_sec="1M", duration="5s", warmup=0, workload={"transfer": 1.0}, receipts="all")
def test_low_rate(hammer):
    result = hammer.run(check=False)
    with open(os.environ["GASHAMMER_TEST_OUT"], "w") as out:
        json.dump(dict(edges=[e.edge_id for e in result.edges], sent=result.sent, rejected=result.rejected,
                       included=result.included, lost=result.lost, notes=result.notes,
                       senders=hammer.plan().senders,
                       verdicts={v.name: v.status for v in result.verdicts}), out)
    result.check()
"""


def test_more_edges_than_senders_at_a_low_rate_rejects_nothing(pytester: pytest.Pytester) -> None:
    """Ten workers at 1 Mgas/s: more edges than the plan's senders, yet every edge sends from funded senders."""
    pytester.makepyfile(test_low=LOW_RATE_MANY_EDGES)
    out = pytester.path / "out.json"
    pytester._monkeypatch.setenv("GASHAMMER_TEST_OUT", str(out))
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-n", "10", timeout=600)
    result.assert_outcomes(passed=1)
    facts = json.loads(out.read_text())
    assert facts["senders"] < 10  # the plan alone would fund fewer senders than there are edges
    assert sorted(facts["edges"]) == sorted(f"gw{i}" for i in range(10))
    assert facts["sent"] > 0
    assert facts["rejected"] == 0
    assert facts["included"] == facts["sent"]
    assert facts["lost"] == 0
    assert facts["verdicts"].pop("confirmations") in ("passed", "inconclusive")  # the devnet's L1
    assert set(facts["verdicts"].values()) == {"passed"}, facts["verdicts"]
    assert (
        f"hive: 10 edges need a sender each: ran 10 senders, not the plan's {facts['senders']}"
        in facts["notes"]
    )


KILL_SCENARIO = """
import os, signal, threading, time
import pytest

def siblings():
    parent = os.getppid()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            status = open(f"/proc/{entry}/status").read()
            cmdline = open(f"/proc/{entry}/cmdline", "rb").read()
        except OSError:
            continue
        ppid = int(next(l.split()[1] for l in status.splitlines() if l.startswith("PPid:")))
        if ppid == parent and b"python" in cmdline.split(b"\\0")[0]:
            found.append(int(entry))
    return found

@pytest.mark.gashammer(gas_per_sec="1M", duration="6s", warmup=0)
def test_run_survives_a_lost_edge(hammer, devnet):
    # ``devnet`` starts the shared devnet now: the three seconds below count the run, not its start.
    box = {}
    runner = threading.Thread(target=lambda: box.setdefault("result", hammer.run(check=False)))
    runner.start()
    time.sleep(3)  # well into the run
    (victim,) = siblings()
    os.kill(victim, signal.SIGKILL)
    runner.join(120)
    assert not runner.is_alive(), "the run hung after losing an edge"
    result = box["result"]
    verdict = result.verdict("edges")
    assert verdict.status == "failed"
    assert any(entry.startswith("gw") for entry in verdict.evidence["lost"])
    assert 0 < verdict.evidence["lost_share"] < 1
    assert [e.edge_id for e in result.edges] != []  # the survivor's report made it
    with pytest.raises(AssertionError, match="edge"):
        result.check()
"""


def test_a_worker_killed_mid_run_fails_the_run_naming_it_without_hanging(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_kill=KILL_SCENARIO)
    started = time.monotonic()
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "-n", "2", "--max-worker-restart", "0", timeout=300
    )
    assert time.monotonic() - started < 120
    result.stdout.fnmatch_lines(["*edges:failed*"])
    result.assert_outcomes(passed=1)


ISOLATED = """
import pytest

@pytest.mark.gashammer(gas_per_sec="1M", duration="2s", warmup=0, isolated=True)
@pytest.mark.parametrize("copy", range(2))
def test_isolated(hammer, copy):
    result = hammer.run()
    assert [e.edge_id for e in result.edges] == ["local"]
    assert result.devnet_kind == "embedded"
"""


def test_isolated_scenarios_run_on_their_own_devnets_in_parallel(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_isolated=ISOLATED)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-n", "2", timeout=300)
    result.assert_outcomes(passed=2)
