"""Soak benchmark: memory and CPU of every process of one long gashammer run, sampled as it runs.

    python benchmarks/bench_soak.py --minutes N --rate R [--workers K] [--mix transfer=0.8,erc20=0.2]
                                    [--interval 10] [--out FILE.json]

The script writes one marked load test into a temporary directory
(``@pytest.mark.gashammer(gas_per_sec=R, duration="<N*60>s", workload={...})``; the test calls
``hammer.run(check=False)`` and dumps ``result.to_dict()`` as JSON) and runs pytest on it in a
subprocess (``-n K`` when K > 0, ``-p no:cacheprovider``) against the embedded devnet. While it runs,
every ``--interval`` seconds it reads, from ``/proc``, the RSS (``VmRSS``) and CPU seconds (utime +
stime) of each process role:

- ``pytest``: the pytest process (the hive; without ``-n`` also the only edge),
- ``worker1`` .. ``workerK``: the xdist workers (children of pytest running python), in start order,
- ``node``: the anvil process(es) under pytest.

As the project's standard for measurements says, the node is pinned to one CPU and the generator to
the other: pytest runs under ``taskset -c 1`` (its workers inherit that), and each anvil is moved to
CPU 0 with ``taskset -a -cp 0 PID`` as soon as it appears. Without two CPUs or without taskset the run
is not pinned, and the script says so.

At the end it prints, per role, the RSS growth per minute (least-squares slope of RSS over time from
minute 1 to the end) and the growth between minute 1 and minute 4 (when the run lasts that long),
then the run's figures. Times count from the start of pytest, so minute 1 skips startup, funding and
the first seconds of load.

Exit code 1 when the run failed (pytest failed, no result, a failed verdict, or the run was stopped)
or sent nothing; 0 otherwise. Every process the run starts is stopped on exit and on Ctrl-C, and the
run is killed if it is still going ``N + 5`` minutes after it started.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.pinning import GENERATOR_CPU, NODE_CPU, pin_to, pinning_problem  # noqa: E402

MINUTE = 60.0
#: Growth is measured from here: the first minute holds interpreter start, devnet start and funding.
GROWTH_FROM = 1 * MINUTE
GROWTH_TO = 4 * MINUTE
MIN_SLOPE_SAMPLES = 3
#: How often the process tree is scanned (to pin a new anvil quickly), independent of --interval.
SCAN_SECONDS = 0.5
#: After the run's own length, how long it may take (setup, drain, teardown) before it is killed.
GRACE_SECONDS = 5 * MINUTE
NODE_COMMANDS = ("anvil",)

TEST_TEMPLATE = '''\
"""Written by benchmarks/bench_soak.py: one soak run; the result goes to a JSON file for the bench."""

import json
import time

import pytest


@pytest.mark.gashammer(gas_per_sec={rate!r}, duration={duration!r}, workload={workload!r})
def test_soak(hammer):
    with open({result_path!r} + ".started", "w") as out:  # the system-wide monotonic clock
        out.write(repr(time.monotonic()))
    result = hammer.run(check=False)
    with open({result_path!r}, "w") as out:
        json.dump(result.to_dict(), out, default=str)
'''


# ---------------------------------------------------------------------------------------------
# arguments and the test file


def parse_mix(text: str) -> dict[str, float]:
    """``transfer=0.8,erc20=0.2`` as the marker's ``workload`` (a template name alone is weight 1)."""
    mix: dict[str, float] = {}
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        name, _, weight = part.partition("=")
        name = name.strip()
        if not name:
            raise ValueError(f"--mix: {part!r} has no template name")
        try:
            share = float(weight) if weight.strip() else 1.0
        except ValueError:
            raise ValueError(f"--mix: {part!r}: the share must be a number") from None
        if not (math.isfinite(share) and share > 0):
            raise ValueError(f"--mix: {part!r}: the share must be positive")
        mix[name] = mix.get(name, 0.0) + share
    if not mix:
        raise ValueError("--mix is empty; use e.g. transfer=0.8,erc20=0.2")
    return mix


def render_test(rate: str, seconds: float, workload: Mapping[str, float], result_path: str) -> str:
    """The source of the soak test module."""
    return TEST_TEMPLATE.format(
        rate=rate, duration=f"{seconds:g}s", workload=dict(workload), result_path=result_path
    )


def pytest_command(python: str, test_file: str, workers: int, pin: bool) -> list[str]:
    argv = [python, "-m", "pytest", test_file, "-p", "no:cacheprovider", "--gashammer-progress", "off"]
    if workers > 0:
        argv += ["-n", str(workers)]
    if pin:
        argv = ["taskset", "-c", str(GENERATOR_CPU), *argv]
    return argv


# ---------------------------------------------------------------------------------------------
# /proc


@dataclasses.dataclass(frozen=True)
class Proc:
    """What the classification needs to know about one process."""

    pid: int
    ppid: int
    comm: str
    #: Start time in clock ticks since boot: with the pid, it names a process even after pid reuse.
    start: int = 0
    cmdline: tuple[str, ...] = ()


def parse_stat(text: str) -> tuple[str, int, int, int]:
    """``/proc/PID/stat``: (comm, ppid, utime + stime in clock ticks, start time in ticks)."""
    # comm is in parentheses and may itself hold spaces and parentheses: split at the last ')'.
    head, _, tail = text.rpartition(")")
    comm = head.partition("(")[2]
    fields = tail.split()
    # fields[0] is field 3 (state) of proc(5): ppid is field 4, utime 14, stime 15, starttime 22.
    ppid = int(fields[1])
    cpu_ticks = int(fields[11]) + int(fields[12])
    start = int(fields[19])
    return comm, ppid, cpu_ticks, start


def parse_vmrss_kb(status: str) -> int | None:
    """``VmRSS`` from ``/proc/PID/status`` in kB (None for a zombie or kernel thread, which has none)."""
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return None


def is_python(proc: Proc) -> bool:
    names = [proc.comm, *(os.path.basename(arg) for arg in proc.cmdline[:1])]
    return any(name.startswith("python") for name in names)


def is_node(proc: Proc) -> bool:
    names = [proc.comm, *(os.path.basename(arg) for arg in proc.cmdline[:1])]
    return any(name in NODE_COMMANDS for name in names)


def descendants(root: int, procs: Mapping[int, Proc]) -> list[int]:
    """``root`` and every process below it, parents before children."""
    children: dict[int, list[int]] = {}
    for proc in procs.values():
        children.setdefault(proc.ppid, []).append(proc.pid)
    if root not in procs:
        return []
    order = [root]
    for pid in order:  # grows while it is walked: breadth first
        order.extend(sorted(children.get(pid, ())))
    return order


def classify(root: int, procs: Mapping[int, Proc]) -> dict[str, list[int]]:
    """Roles of the processes under ``root``: ``pytest``, ``worker1``.., ``node``, ``other``.

    Workers are the python children of the pytest process (xdist's execnet gateways), numbered in
    start order; the node is every anvil anywhere below it (an isolated run's devnet lives under a
    worker). Roles with no process are left out.
    """
    tree = descendants(root, procs)
    roles: dict[str, list[int]] = {}
    if not tree:
        return roles
    roles["pytest"] = [root]
    workers = sorted(
        (procs[pid] for pid in tree[1:] if procs[pid].ppid == root and is_python(procs[pid])),
        key=lambda proc: (proc.start, proc.pid),
    )
    for index, worker in enumerate(workers, 1):
        roles[f"worker{index}"] = [worker.pid]
    nodes = [pid for pid in tree[1:] if is_node(procs[pid])]
    if nodes:
        roles["node"] = nodes
    known = {pid for pids in roles.values() for pid in pids}
    others = [pid for pid in tree if pid not in known]
    if others:
        roles["other"] = others
    return roles


def read_proc(pid: int) -> Proc | None:
    try:
        comm, ppid, _, start = parse_stat(Path(f"/proc/{pid}/stat").read_text())
    except (OSError, ValueError, IndexError):
        return None
    return Proc(pid=pid, ppid=ppid, comm=comm, start=start)


def scan_tree(root: int) -> dict[int, Proc]:
    """Every live process under ``root`` (and root), with command lines."""
    procs: dict[int, Proc] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit() and (proc := read_proc(int(entry.name))) is not None:
            procs[proc.pid] = proc
    tree: dict[int, Proc] = {}
    for pid in descendants(root, procs):
        try:
            raw = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        cmdline = tuple(part.decode(errors="replace") for part in raw.split(b"\0") if part)
        tree[pid] = dataclasses.replace(procs[pid], cmdline=cmdline)
    return tree


def read_usage(pid: int) -> tuple[float, float] | None:
    """(RSS in MB, CPU seconds) of a live process, or None when it is gone."""
    try:
        rss_kb = parse_vmrss_kb(Path(f"/proc/{pid}/status").read_text())
        _, _, ticks, _ = parse_stat(Path(f"/proc/{pid}/stat").read_text())
    except (OSError, ValueError, IndexError):
        return None
    if rss_kb is None:
        return None
    return rss_kb / 1024, ticks / os.sysconf("SC_CLK_TCK")


# ---------------------------------------------------------------------------------------------
# samples and what they show


@dataclasses.dataclass
class Sample:
    t: float  # seconds since pytest started
    rss_mb: dict[str, float]
    cpu_s: dict[str, float]
    pids: dict[str, list[int]]


def take_sample(t: float, roles: Mapping[str, Sequence[int]]) -> Sample:
    sample = Sample(t=t, rss_mb={}, cpu_s={}, pids={})
    for role, pids in roles.items():
        usages = [usage for pid in pids if (usage := read_usage(pid)) is not None]
        if usages:
            sample.rss_mb[role] = sum(rss for rss, _ in usages)
            sample.cpu_s[role] = sum(cpu for _, cpu in usages)
            sample.pids[role] = list(pids)
    return sample


def cpu_percent(previous: Sample | None, current: Sample, role: str) -> float | None:
    """The role's CPU use between two samples in % of one core; None across a change of processes."""
    if previous is None or role not in current.cpu_s or role not in previous.cpu_s:
        return None
    if previous.pids.get(role) != current.pids.get(role) or current.t <= previous.t:
        return None
    return (current.cpu_s[role] - previous.cpu_s[role]) / (current.t - previous.t) * 100


def least_squares_slope(points: Sequence[tuple[float, float]]) -> float | None:
    """Slope of y over x by least squares; None with fewer than two distinct x."""
    if len(points) < 2:
        return None
    mean_x = sum(x for x, _ in points) / len(points)
    mean_y = sum(y for _, y in points) / len(points)
    spread = sum((x - mean_x) ** 2 for x, _ in points)
    if spread == 0:
        return None
    return sum((x - mean_x) * (y - mean_y) for x, y in points) / spread


def series(samples: Iterable[Sample], role: str) -> list[tuple[float, float]]:
    return [(sample.t, sample.rss_mb[role]) for sample in samples if role in sample.rss_mb]


def growth_per_minute(samples: Sequence[Sample], role: str, start: float = GROWTH_FROM) -> float | None:
    """MB per minute: the least-squares slope of the role's RSS from ``start`` seconds to the end.

    None with fewer than :data:`MIN_SLOPE_SAMPLES` samples there: two would be one difference, and
    the last sample often falls in the end of the run, when the hive builds the result.
    """
    points = [(t, rss) for t, rss in series(samples, role) if t >= start]
    slope = least_squares_slope(points) if len(points) >= MIN_SLOPE_SAMPLES else None
    return None if slope is None else slope * MINUTE


def value_at(points: Sequence[tuple[float, float]], t: float) -> float | None:
    """The value at ``t``, linear between the samples either side; None outside the sampled span."""
    for (t0, y0), (t1, y1) in zip(points, points[1:], strict=False):
        if t0 <= t <= t1:
            return y0 if t1 == t0 else y0 + (y1 - y0) * (t - t0) / (t1 - t0)
    if points and points[-1][0] == t:
        return points[-1][1]
    return None


def growth_between(
    samples: Sequence[Sample], role: str, start: float = GROWTH_FROM, end: float = GROWTH_TO
) -> float | None:
    """MB the role's RSS grew from ``start`` to ``end`` seconds; None when the run does not span both."""
    points = series(samples, role)
    before, after = value_at(points, start), value_at(points, end)
    return None if before is None or after is None else after - before


def role_order(roles: Iterable[str]) -> list[str]:
    """pytest, the workers by number, the node, then anything else."""

    def key(role: str) -> tuple[int, int, str]:
        if role == "pytest":
            return (0, 0, role)
        if role.startswith("worker") and role[6:].isdigit():
            return (1, int(role[6:]), role)
        if role == "node":
            return (2, 0, role)
        return (3, 0, role)

    return sorted(set(roles), key=key)


def table_header(roles: Sequence[str]) -> str:
    return "     t s" + "".join(f" | {role:>9} MB  CPU%" for role in roles)


def table_row(previous: Sample | None, sample: Sample, roles: Sequence[str]) -> str:
    cells = []
    for role in roles:
        rss = sample.rss_mb.get(role)
        cpu = cpu_percent(previous, sample, role)
        rss_text = f"{rss:12.1f}" if rss is not None else f"{'-':>12}"
        cpu_text = f"{cpu:5.0f}" if cpu is not None else f"{'-':>5}"
        cells.append(f" | {rss_text} {cpu_text}")
    return f"{sample.t:8.1f}" + "".join(cells)


def format_table(samples: Sequence[Sample], roles: Sequence[str]) -> list[str]:
    lines = [table_header(roles)]
    previous: Sample | None = None
    for sample in samples:
        lines.append(table_row(previous, sample, roles))
        previous = sample
    return lines


def format_growth(samples: Sequence[Sample], roles: Sequence[str], origin: float = 0.0) -> list[str]:
    """Growth per role, minutes counted from ``origin`` (seconds after pytest started: the test's start)."""

    def mb(value: float | None, unit: str) -> str:
        return f"{value:+.1f} {unit}" if value is not None else "n/a"

    last = samples[-1].t if samples else 0.0
    lines = [
        f"RSS growth, minutes counted from the test's start ({origin:.0f} s after pytest started): "
        f"(least-squares slope from minute {GROWTH_FROM / MINUTE:g} to the end at {last:.0f} s; "
        f"change from minute {GROWTH_FROM / MINUTE:g} to minute {GROWTH_TO / MINUTE:g}; "
        f"n/a: fewer than {MIN_SLOPE_SAMPLES} samples from minute {GROWTH_FROM / MINUTE:g}):"
    ]
    for role in roles:
        points = series(samples, role)
        if not points:
            continue
        between = growth_between(samples, role, origin + GROWTH_FROM, origin + GROWTH_TO)
        span = "" if between is not None else " (run too short)"
        lines.append(
            f"  {role:>9}: {mb(growth_per_minute(samples, role, origin + GROWTH_FROM), 'MB/min'):>14}   "
            f"min 1->4: {mb(between, 'MB')}{span}   RSS {points[0][1]:.1f} -> {points[-1][1]:.1f} MB"
        )
    return lines


# ---------------------------------------------------------------------------------------------
# the run's figures


def run_figures(result: Mapping[str, Any]) -> dict[str, Any]:
    """The figures the bench prints from ``RunResult.to_dict()``."""
    return {
        "sent": result.get("sent", 0),
        "accepted": result.get("accepted", 0),
        "included": result.get("included", 0),
        "lost": result.get("lost", 0),
        "target_gas_per_sec": result.get("target_gas_per_sec", math.nan),
        "included_gas_per_sec": result.get("included_gas_per_sec", math.nan),
        "included_tx_per_sec": result.get("included_tx_per_sec", math.nan),
        "inclusion_p99_s": (result.get("latency") or {}).get("inclusion", {}).get("p99", math.nan),
        "stopped_early": result.get("stopped_early"),
        "verdicts": {v["name"]: v["status"] for v in result.get("verdicts", [])},
    }


def format_figures(figures: Mapping[str, Any]) -> list[str]:
    p99 = figures["inclusion_p99_s"]
    p99_text = f"{p99 * 1000:,.0f} ms" if isinstance(p99, int | float) and math.isfinite(p99) else "n/a"
    lines = [
        f"run: sent {figures['sent']:,}  included {figures['included']:,}  lost {figures['lost']:,}",
        f"     included {figures['included_gas_per_sec'] / 1e6:.2f} Mgas/s of {figures['target_gas_per_sec'] / 1e6:.2f} "
        f"({figures['included_tx_per_sec']:,.0f} tx/s)  inclusion p99 {p99_text}",
        "     verdicts: "
        + ("  ".join(f"{name}:{status}" for name, status in figures["verdicts"].items()) or "none"),
    ]
    if figures.get("stopped_early"):
        lines.append(f"     stopped early: {figures['stopped_early']}")
    return lines


def failure_reasons(
    returncode: int | None, figures: Mapping[str, Any] | None, killed: str | None
) -> list[str]:
    """Why the bench exits non-zero; empty when the run passed and sent something."""
    reasons = []
    if killed:
        reasons.append(killed)
    elif returncode != 0:
        reasons.append(f"pytest exited with {returncode}")
    if figures is None:
        reasons.append("the test wrote no result")
        return reasons
    if not figures["sent"]:
        reasons.append("nothing was sent")
    failed = [name for name, status in figures["verdicts"].items() if status == "failed"]
    if failed:
        reasons.append("failed verdicts: " + ", ".join(failed))
    if figures.get("stopped_early"):
        reasons.append(f"the run stopped early: {figures['stopped_early']}")
    return reasons


# ---------------------------------------------------------------------------------------------
# running it


class Run:
    """pytest in its own process group, watched; everything it started is stopped by :meth:`stop`."""

    def __init__(self, argv: list[str], cwd: Path, log_path: Path, pin: bool) -> None:
        env = dict(os.environ)
        # The checkout's package, not whatever is installed; the workers inherit it.
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
        self.log_path = log_path
        self._log = open(log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: one signal reaches pytest and its workers
        )  # fmt: skip
        self.started = time.monotonic()
        self.pin = pin
        #: Every process seen under pytest, by (pid, start ticks), so stop() never signals a reused pid.
        self.seen: dict[int, Proc] = {}
        self.pinned: dict[int, str] = {}

    def scan(self) -> dict[str, list[int]]:
        tree = scan_tree(self.process.pid)
        self.seen.update(tree)
        roles = classify(self.process.pid, tree)
        if self.pin:
            for pid in roles.get("node", []):
                if pid not in self.pinned:
                    self.pinned[pid] = pin_to(pid, NODE_CPU)
                    print(f"  node pid {pid}: {self.pinned[pid]}", flush=True)
        return roles

    def stop(self) -> None:
        if self.process.poll() is None:
            # SIGINT first: pytest tears down (the devnet fixture stops anvil); then SIGKILL.
            for sig, wait in ((signal.SIGINT, 15.0), (signal.SIGKILL, 5.0)):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, sig)
                try:
                    self.process.wait(timeout=wait)
                    break
                except subprocess.TimeoutExpired:
                    continue
        # anvil runs in a session of its own (the plugin's ManagedProcess) and dies with pytest's
        # spawner thread; anything still there that the run started is killed here.
        for pid, proc in self.seen.items():
            now = read_proc(pid)
            if pid != self.process.pid and now is not None and now.start == proc.start:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(OSError):
            self._log.close()


def log_tail(path: Path, lines: int) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def _terminate(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt  # SIGTERM stops the bench as Ctrl-C does: through the finally blocks


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, required=True, help="length of the sustain phase")
    parser.add_argument("--rate", required=True, help="target gas rate, e.g. 20M")
    parser.add_argument("--workers", type=int, default=0, help="xdist workers (-n); 0 runs without xdist")
    parser.add_argument("--mix", default="transfer=1", help="workload shares, e.g. transfer=0.8,erc20=0.2")
    parser.add_argument("--interval", type=float, default=10.0, help="seconds between samples (default 10)")
    parser.add_argument("--out", metavar="FILE.json", help="write the samples and figures as JSON")
    args = parser.parse_args(argv)

    from pytest_gashammer.errors import ConfigError
    from pytest_gashammer.scenario.units import parse_gas_rate

    try:
        rate = parse_gas_rate(args.rate, what="--rate")
        mix = parse_mix(args.mix)
    except (ConfigError, ValueError) as exc:
        parser.error(str(exc))
    if not (args.minutes > 0 and math.isfinite(args.minutes)):
        parser.error("--minutes must be positive")
    if args.workers < 0:
        parser.error("--workers must be 0 or more")
    interval = max(args.interval, 1.0)
    seconds = args.minutes * MINUTE
    limit = seconds + GRACE_SECONDS

    problem = pinning_problem(os.cpu_count(), shutil.which("taskset"))
    pin = problem is None
    load = " ".join(f"{value:.2f}" for value in os.getloadavg())
    print(f"machine: {os.cpu_count()} CPUs, Python {sys.version.split()[0]}, load average {load}")
    print(
        f"pinning: node on CPU {NODE_CPU}, pytest and its workers on CPU {GENERATOR_CPU}"
        if pin
        else f"pinning skipped: {problem}"
    )
    print(
        f"run: {rate / 1e6:g} Mgas/s for {args.minutes:g} min, workload {mix}, "
        f"{f'{args.workers} xdist workers' if args.workers else 'no xdist'}; a sample every {interval:g} s; "
        f"killed after {limit / MINUTE:g} min"
    )

    signal.signal(signal.SIGTERM, _terminate)
    workdir = Path(tempfile.mkdtemp(prefix="gashammer-soak-"))
    samples: list[Sample] = []
    run: Run | None = None
    killed: str | None = None
    try:
        result_path = workdir / "result.json"
        test_file = workdir / "test_soak.py"
        test_file.write_text(render_test(args.rate, seconds, mix, str(result_path)))
        (workdir / "pytest.ini").write_text("[pytest]\n")  # the temp dir is the rootdir, no ini found above
        command = pytest_command(sys.executable, str(test_file), args.workers, pin)
        print(f"command: {' '.join(command)}\n", flush=True)

        roles_shown = role_order(["pytest", *(f"worker{i}" for i in range(1, args.workers + 1)), "node"])
        print(table_header(roles_shown), flush=True)
        run = Run(command, workdir, workdir / "pytest.log", pin)
        next_sample = interval
        while True:
            roles = run.scan()
            elapsed = time.monotonic() - run.started
            if elapsed >= next_sample and run.process.poll() is None:
                samples.append(take_sample(elapsed, roles))
                print(
                    table_row(samples[-2] if len(samples) > 1 else None, samples[-1], roles_shown), flush=True
                )
                while next_sample <= elapsed:  # a late tick (a slow scan) skips, never bunches up
                    next_sample += interval
            if run.process.poll() is not None:
                break
            if elapsed > limit:
                killed = f"killed: still running {limit / MINUTE:g} min after it started"
                break
            time.sleep(SCAN_SECONDS)
    except KeyboardInterrupt:
        killed = "interrupted"
    finally:
        if run is not None:
            run.stop()
    try:
        return report(args, samples, run, workdir / "result.json", killed, pin, problem)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def report(
    args: argparse.Namespace,
    samples: list[Sample],
    run: Run | None,
    result_path: Path,
    killed: str | None,
    pin: bool,
    problem: str | None,
) -> int:
    seen_roles = role_order(role for sample in samples for role in sample.rss_mb)
    if killed:
        print(f"\n{killed}")
    returncode = run.process.returncode if run is not None else None
    duration = (time.monotonic() - run.started) if run is not None else 0.0
    print(f"\npytest exited with {returncode} after {duration:.0f} s")
    others = {
        proc.comm
        for sample in samples
        for pid in sample.pids.get("other", [])
        if run is not None and (proc := run.seen.get(pid)) is not None
    }
    if others:
        print(f"other processes under pytest (column 'other'): {', '.join(sorted(others))}")
    print()
    origin = 0.0
    with contextlib.suppress(OSError, ValueError):
        started = float(Path(str(result_path) + ".started").read_text())
        origin = max(started - run.started, 0.0) if run is not None else 0.0
    print("\n".join(format_growth(samples, seen_roles, origin)))

    result: dict[str, Any] | None = None
    with contextlib.suppress(OSError, ValueError):
        result = json.loads(result_path.read_text())
    figures = run_figures(result) if result is not None else None
    print()
    if figures is not None:
        print("\n".join(format_figures(figures)))
    reasons = failure_reasons(returncode, figures, killed)
    if reasons:
        print("\nFAILED: " + "; ".join(reasons))
        if run is not None:
            print(f"last lines of pytest's output:\n{log_tail(run.log_path, 40)}")

    if args.out:
        data = {
            "args": vars(args),
            "cpus": os.cpu_count(),
            "pinning": (
                {"node_cpu": NODE_CPU, "generator_cpu": GENERATOR_CPU, "nodes": run.pinned if run else {}}
                if pin
                else {"skipped": problem}
            ),
            "pytest_returncode": returncode,
            "seconds": duration,
            "samples": [
                dataclasses.asdict(sample)
                | {"cpu_pct": {role: cpu_percent(prev, sample, role) for role in sample.cpu_s}}
                for prev, sample in zip([None, *samples], samples, strict=False)
            ],
            "test_started_s": origin,
            "growth": {
                role: {
                    "mb_per_minute": growth_per_minute(samples, role, origin + GROWTH_FROM),
                    "mb_minute1_to_4": growth_between(
                        samples, role, origin + GROWTH_FROM, origin + GROWTH_TO
                    ),
                }
                for role in seen_roles
            },
            "figures": figures,
            "failures": reasons,
            "result": result,
        }
        Path(args.out).write_text(json.dumps(data, indent=1, default=str))
        print(f"\nwrote {args.out}")
    return 1 if reasons else 0


if __name__ == "__main__":
    sys.exit(main())
