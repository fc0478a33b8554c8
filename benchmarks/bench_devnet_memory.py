"""Memory of the embedded devnet's anvil over one long run, with or without pruned history.

    python benchmarks/bench_devnet_memory.py [--rate 50M] [--duration 240s] [--history pruned]
        [--workload transfer=0.8,erc20=0.2] [--interval 10]

Writes a one-test file in a temporary directory and runs it with ``pytest`` in a subprocess, as a
user would (``--gashammer-node-history HISTORY``; the devnet is the session's embedded one). While
it runs, the script reads the anvil process's ``VmRSS`` from ``/proc/PID/status`` every
``--interval`` seconds and prints it against the time since the test called ``hammer.run()`` (the
run's setup, funding and token deployment, comes first and takes a few seconds). At the end it
prints the run's included gas rate and verdicts and the RSS at minute 1 and at the last full minute.

``--keep-transactions-seconds`` and ``--keep-states-seconds`` try other pruned-history windows than
the plugin's (:mod:`pytest_gashammer.devnet.anvil`), through a ``conftest.py`` beside the test. The
pytest process's own memory is printed for context only. Reports and never gates (exit code 0).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

TEST = """
import json, time
import pytest

@pytest.mark.gashammer(gas_per_sec={rate!r}, duration={duration!r}, warmup=0, workload={workload!r})
def test_soak(hammer):
    with open("started", "w") as marker:
        marker.write(repr(time.time()))
    result = hammer.run(check=False)
    with open("result.json", "w") as out:
        json.dump(result.summary_dict(), out, default=str)
"""


def rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def descendants(root: int) -> list[int]:
    """Every process below ``root`` (Linux /proc), parents before children."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            for line in (entry / "status").read_text().splitlines():
                if line.startswith("PPid:"):
                    parents[int(entry.name)] = int(line.split()[1])
                    break
        except OSError:
            continue
    found, frontier = [], [root]
    while frontier:
        parent = frontier.pop()
        children = [pid for pid, ppid in parents.items() if ppid == parent]
        found.extend(children)
        frontier.extend(children)
    return found


def find_anvil(root: int) -> int | None:
    for pid in descendants(root):
        try:
            if Path(f"/proc/{pid}/comm").read_text().strip() == "anvil":
                return pid
        except OSError:
            continue
    return None


def parse_workload(text: str) -> dict[str, float]:
    return {name: float(share) for name, share in (part.split("=") for part in text.split(","))}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rate", default="50M")
    parser.add_argument("--duration", default="240s")
    parser.add_argument("--history", default="pruned", choices=("auto", "full", "pruned"))
    parser.add_argument("--workload", default="transfer=0.8,erc20=0.2")
    parser.add_argument("--interval", type=float, default=10.0)
    parser.add_argument("--keep-transactions-seconds", type=float, default=None)
    parser.add_argument("--keep-states-seconds", type=float, default=None)
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="gashammer-memory-"))
    source = TEST.format(rate=args.rate, duration=args.duration, workload=parse_workload(args.workload))
    (workdir / "test_soak.py").write_text(textwrap.dedent(source))
    overrides = {
        "KEEP_TRANSACTIONS_SECONDS": args.keep_transactions_seconds,
        "KEEP_STATES_SECONDS": args.keep_states_seconds,
    }
    lines = [f"anvil.{name} = {value!r}" for name, value in overrides.items() if value is not None]
    if lines:
        conftest = ["from pytest_gashammer.devnet import anvil", *lines]
        (workdir / "conftest.py").write_text("\n".join(conftest) + "\n")
        print("overrides: " + "; ".join(lines))
    environment = {**os.environ, "PYTHONPATH": str(REPO)}
    command = [
        sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "test_soak.py",
        "--gashammer-node-history", args.history, "--gashammer-progress", "off",
    ]  # fmt: skip
    print(f"{args.rate} for {args.duration}, workload {args.workload}, history {args.history}; in {workdir}")
    with open(workdir / "pytest.log", "w") as log:
        child = subprocess.Popen(command, cwd=workdir, env=environment, stdout=log, stderr=subprocess.STDOUT)
        samples: list[tuple[float, float, float | None]] = []
        anvil = None
        try:
            while child.poll() is None:
                time.sleep(args.interval if anvil else 0.5)
                anvil = anvil or find_anvil(child.pid)
                started = workdir / "started"
                if anvil is None or not started.exists():
                    continue
                since = time.time() - float(started.read_text())
                node = rss_mb(anvil)
                if node is None:
                    continue
                samples.append((since, node, rss_mb(child.pid)))
                print(
                    f"  t={since:6.0f} s  anvil RSS {node:8.1f} MB  pytest RSS {samples[-1][2] or 0:8.1f} MB"
                )
                sys.stdout.flush()
        finally:
            if child.poll() is None:
                child.terminate()
                child.wait(30)
    print((workdir / "pytest.log").read_text()[-3000:])
    result_file = workdir / "result.json"
    if result_file.exists():
        summary = json.loads(result_file.read_text())
        print(
            f"included {summary['included_gas_per_sec'] / 1e6:.2f} Mgas/s of {summary['target_gas_per_sec'] / 1e6:.0f}; "
            f"lost {summary['lost']}; verdicts "
            + ", ".join(f"{v['name']}:{v['status']}" for v in summary.get("verdicts", []))
        )

    def at(seconds: float) -> str:
        if not samples:
            return "-"
        since, node, _ = min(samples, key=lambda sample: abs(sample[0] - seconds))
        return f"{node:.0f} MB (t={since:.0f} s)"

    last_minute = round(max((sample[0] for sample in samples), default=0) / 60)
    print(f"anvil RSS at minute 1: {at(60)}; at minute {last_minute}: {at(60 * last_minute)}")


if __name__ == "__main__":
    main()
