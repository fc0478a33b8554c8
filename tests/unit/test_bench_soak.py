"""The soak benchmark's pure parts: /proc parsing, process roles, RSS growth, the table, the verdict."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import pytest

_PATH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_soak.py"
_SPEC = importlib.util.spec_from_file_location("bench_soak", _PATH)
assert _SPEC is not None and _SPEC.loader is not None
bench = importlib.util.module_from_spec(_SPEC)
sys.modules["bench_soak"] = bench  # dataclasses resolve their module through sys.modules
_SPEC.loader.exec_module(bench)

Proc = bench.Proc
Sample = bench.Sample

# proc(5) field layout: pid (comm) state ppid pgrp session tty tpgid flags minflt cminflt majflt
# cmajflt utime stime cutime cstime priority nice threads itrealvalue starttime vsize rss ...
STAT = "4242 (weird) name (x)) S 17 4242 4242 0 -1 4194304 900 0 0 0 250 50 7 3 20 0 12 0 98765 1000 200"


def test_stat_is_split_at_the_last_parenthesis_and_sums_user_and_system_time() -> None:
    comm, ppid, ticks, start = bench.parse_stat(STAT)
    assert comm == "weird) name (x)"
    assert ppid == 17
    assert ticks == 300  # utime 250 + stime 50; the children's 7 + 3 are not this process's
    assert start == 98765


def test_vmrss_is_read_in_kb_and_missing_for_a_zombie() -> None:
    assert (
        bench.parse_vmrss_kb("Name:\tanvil\nVmPeak:\t  9000 kB\nVmRSS:\t  123456 kB\nThreads: 9\n") == 123456
    )
    assert bench.parse_vmrss_kb("Name:\tanvil\nState:\tZ (zombie)\n") is None


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc")
def test_usage_of_this_process_is_read_from_proc() -> None:
    usage = bench.read_usage(os.getpid())
    assert usage is not None
    rss_mb, cpu_s = usage
    assert 1 < rss_mb < 100_000
    assert cpu_s > 0


def fake_tree() -> dict[int, object]:
    """pytest (100) with two xdist workers started out of pid order, an anvil under it, one under a
    worker (an isolated run), an npm install, and processes that are not under pytest at all."""
    procs = [
        Proc(1, 0, "systemd"),
        Proc(100, 50, "python", start=10, cmdline=("/venv/bin/python", "-m", "pytest", "t.py", "-n", "2")),
        Proc(101, 100, "python3", start=30, cmdline=("/venv/bin/python3", "-u", "-c", "import sys")),
        Proc(102, 100, "python3", start=20, cmdline=("/venv/bin/python3", "-u", "-c", "import sys")),
        Proc(200, 100, "anvil", start=40, cmdline=("/cache/bin/anvil", "--port", "40000")),
        Proc(201, 101, "anvil", start=50, cmdline=("/cache/bin/anvil", "--port", "40001")),
        Proc(300, 100, "npm install @fo", start=15, cmdline=("npm", "install")),
        Proc(301, 102, "python3", start=60, cmdline=("/venv/bin/python3", "-c", "pass")),
        Proc(400, 1, "python3", start=5),  # another pytest on the machine
        Proc(401, 400, "anvil", start=6),  # ... and its node
    ]
    return {proc.pid: proc for proc in procs}


def test_roles_come_from_the_process_tree_under_pytest() -> None:
    roles = bench.classify(100, fake_tree())
    assert roles == {
        "pytest": [100],
        "worker1": [102],  # started first
        "worker2": [101],
        "node": [200, 201],
        "other": [300, 301],  # a python grandchild is not a worker
    }


def test_without_xdist_there_are_no_workers_and_a_vanished_root_has_no_roles() -> None:
    tree = {pid: proc for pid, proc in fake_tree().items() if pid in (100, 200)}
    assert bench.classify(100, tree) == {"pytest": [100], "node": [200]}
    assert bench.classify(999, fake_tree()) == {}


def test_role_order_puts_workers_by_number() -> None:
    roles = ["node", "worker10", "other", "worker2", "pytest"]
    assert bench.role_order(roles) == ["pytest", "worker2", "worker10", "node", "other"]


def test_least_squares_slope() -> None:
    assert bench.least_squares_slope([(0, 1), (1, 3), (2, 5), (3, 7)]) == pytest.approx(2.0)
    assert bench.least_squares_slope([(0, 0), (1, 1), (2, 1)]) == pytest.approx(0.5)
    assert bench.least_squares_slope([(5, 1)]) is None
    assert bench.least_squares_slope([(5, 1), (5, 2)]) is None


def linear_samples(until: float, step: float = 10.0) -> list[object]:
    """The node's RSS: 500 MB of startup by minute 1, then 0.5 MB/s (30 MB/min)."""
    samples = []
    t = step
    while t <= until:
        rss = 20 + t * 8 if t < 60 else 500 + (t - 60) * 0.5
        samples.append(Sample(t=t, rss_mb={"node": rss}, cpu_s={"node": t / 2}, pids={"node": [200]}))
        t += step
    return samples


def test_growth_per_minute_is_the_slope_after_minute_one() -> None:
    samples = linear_samples(300)
    assert bench.growth_per_minute(samples, "node") == pytest.approx(30.0)
    # The steep first minute would dominate a fit over the whole run.
    assert bench.least_squares_slope(bench.series(samples, "node")) * 60 > 60  # type: ignore[operator]
    assert bench.growth_per_minute(linear_samples(80), "node") == pytest.approx(30.0)  # 60, 70, 80
    assert bench.growth_per_minute(linear_samples(70), "node") is None  # 60, 70: one difference
    assert bench.growth_per_minute(samples, "worker1") is None


def test_growth_between_minutes_one_and_four_interpolates_and_needs_the_span() -> None:
    samples = linear_samples(250, step=25)  # samples at 50, 75, ..., 250: neither 60 nor 240 sampled
    # At 60 s: between 50 (420 MB) and 75 (507.5 MB); at 240 s: 590 MB exactly on the line.
    expected_60 = 420 + (507.5 - 420) * 10 / 25
    assert bench.growth_between(samples, "node") == pytest.approx(590 - expected_60)
    assert bench.growth_between(linear_samples(230), "node") is None
    late = [sample for sample in linear_samples(300) if sample.t > 60]  # the node appeared after minute 1
    assert bench.growth_between(late, "node") is None


def test_cpu_percent_between_samples_and_not_across_a_new_process() -> None:
    first = Sample(t=10, rss_mb={"node": 1}, cpu_s={"node": 2.0}, pids={"node": [200]})
    second = Sample(t=20, rss_mb={"node": 1}, cpu_s={"node": 7.0}, pids={"node": [200]})
    restarted = Sample(t=20, rss_mb={"node": 1}, cpu_s={"node": 0.5}, pids={"node": [201]})
    assert bench.cpu_percent(first, second, "node") == pytest.approx(50.0)
    assert bench.cpu_percent(None, second, "node") is None
    assert bench.cpu_percent(first, restarted, "node") is None


def test_table_shows_each_role_with_dashes_for_what_was_not_measured() -> None:
    samples = [
        Sample(t=10, rss_mb={"pytest": 70.0}, cpu_s={"pytest": 1.0}, pids={"pytest": [100]}),
        Sample(
            t=20,
            rss_mb={"pytest": 75.5, "node": 1234.25},
            cpu_s={"pytest": 3.5, "node": 9.0},
            pids={"pytest": [100], "node": [200]},
        ),
    ]
    lines = bench.format_table(samples, ["pytest", "node"])
    assert len(lines) == 3
    assert len({len(line) for line in lines}) == 1  # columns line up
    header = lines[0].split("|")
    assert "pytest MB  CPU%" in header[1] and "node MB  CPU%" in header[2]
    assert lines[1].split("|")[1].split() == ["70.0", "-"]
    assert lines[1].split("|")[2].split() == ["-", "-"]
    assert lines[2].split() == ["20.0", "|", "75.5", "25", "|", "1234.2", "-"]  # 2.5 CPU s in 10 s


def test_growth_lines_name_each_role_and_say_when_the_run_is_short() -> None:
    lines = bench.format_growth(linear_samples(120), ["node"])
    assert "+30.0 MB/min" in lines[1]
    assert "run too short" in lines[1]
    assert "RSS 100.0 -> 530.0 MB" in lines[1]


RESULT = {
    "sent": 1200,
    "accepted": 1200,
    "included": 1190,
    "lost": 10,
    "target_gas_per_sec": 2e7,
    "included_gas_per_sec": 1.98e7,
    "included_tx_per_sec": 943.0,
    "latency": {"inclusion": {"p50": 0.1, "p90": 0.2, "p99": 0.31, "max": 0.5, "count": 1190}},
    "verdicts": [
        {"name": "inclusion", "status": "failed", "summary": "10 lost", "evidence": {}},
        {"name": "balance_conservation", "status": "inconclusive", "summary": "", "evidence": {}},
    ],
    "stopped_early": None,
}


def test_run_figures_and_their_lines() -> None:
    figures = bench.run_figures(RESULT)
    assert figures["inclusion_p99_s"] == 0.31
    assert figures["verdicts"] == {"inclusion": "failed", "balance_conservation": "inconclusive"}
    text = "\n".join(bench.format_figures(figures))
    assert "sent 1,200  included 1,190  lost 10" in text
    assert "19.80 Mgas/s of 20.00" in text and "inclusion p99 310 ms" in text
    assert "inclusion:failed  balance_conservation:inconclusive" in text


def test_failure_reasons() -> None:
    passing = bench.run_figures({**RESULT, "verdicts": RESULT["verdicts"][1:]})
    assert bench.failure_reasons(0, passing, None) == []  # inconclusive is not a failure
    assert bench.failure_reasons(0, bench.run_figures(RESULT), None) == ["failed verdicts: inclusion"]
    assert bench.failure_reasons(0, {**passing, "sent": 0}, None) == ["nothing was sent"]
    assert bench.failure_reasons(1, passing, None) == ["pytest exited with 1"]
    assert bench.failure_reasons(-9, None, "killed: too long") == [
        "killed: too long",
        "the test wrote no result",
    ]


def test_mix_parsing() -> None:
    assert bench.parse_mix("transfer=0.8, erc20=0.2") == {"transfer": 0.8, "erc20": 0.2}
    assert bench.parse_mix("transfer") == {"transfer": 1.0}
    for bad in ("", "transfer=x", "=1", "transfer=0", "transfer=-1"):
        with pytest.raises(ValueError):
            bench.parse_mix(bad)


def test_the_test_module_and_the_command() -> None:
    source = bench.render_test("20M", 120.0, {"transfer": 0.8, "erc20": 0.2}, "/tmp/r.json")
    compile(source, "test_soak.py", "exec")
    assert (
        "@pytest.mark.gashammer(gas_per_sec='20M', duration='120s', "
        "workload={'transfer': 0.8, 'erc20': 0.2})" in source
    )
    assert "hammer.run(check=False)" in source and "'/tmp/r.json'" in source
    assert bench.pytest_command("py", "t.py", 2, pin=True) == [
        "taskset", "-c", "1", "py", "-m", "pytest", "t.py", "-p", "no:cacheprovider",
        "--gashammer-progress", "off", "-n", "2",
    ]  # fmt: skip
    assert "-n" not in bench.pytest_command("py", "t.py", 0, pin=False)
    assert bench.pytest_command("py", "t.py", 0, pin=False)[0] == "py"


def test_pinning_needs_two_cpus_and_taskset() -> None:
    assert bench.pinning_problem(2, "/usr/bin/taskset") is None
    assert "1 CPU" in (bench.pinning_problem(1, "/usr/bin/taskset") or "")
    assert "taskset" in (bench.pinning_problem(4, None) or "")


def test_minutes_count_from_the_tests_start_when_it_is_known() -> None:
    # Startup growth (8 MB/s) until 60 s; counted from a test that started 30 s in, minute 1 falls at
    # 90 s: the 3 minutes after it see the steady 0.5 MB/s only.
    lines = bench.format_growth(linear_samples(300), ["node"], origin=30.0)
    assert "30 s after pytest started" in lines[0]
    assert "min 1->4: +90.0 MB" in lines[1]
    assert "min 1->4: +90.0 MB" not in bench.format_growth(linear_samples(300), ["node"], origin=-30.0)[1]
