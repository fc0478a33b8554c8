"""What serving the live API costs the load generator: edge CPU per transaction, served or not.

    python benchmarks/bench_live_api.py [--rate 10M] [--seconds 10] [--rounds 2]

One embedded devnet; a local hive (the edge in this process, as in a plain pytest run) runs the same
scenario ``--rounds`` times without the live API and as often with it, interleaved (off, on, off,
on, ...) so that a machine that slows down over time does not favour one side. With the live API,
the hive feeds a :class:`~pytest_gashammer.serve.board.LiveBoard` served on loopback, and a client
process does what a dashboard and Prometheus do: it holds the event stream open and reads
``/metrics``, ``/api/v1/runs/{id}`` and ``/api/v1/edges`` every second.

Figures per run: transactions sent, the edge thread's CPU time per transaction (read with
``time.thread_time`` on the edge's own thread, so the server's and the client's threads are not in
it), and this process's CPU per transaction (which includes the hive and the server, not the
client). Reports the medians; never gates (exit code 0).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.bench_hot_path import process_cpu  # noqa: E402
from pytest_gashammer.devnet.embedded import EmbeddedDevnet  # noqa: E402
from pytest_gashammer.edge.runtime import EdgeRuntime  # noqa: E402
from pytest_gashammer.hive import local  # noqa: E402
from pytest_gashammer.scenario.spec import compile_plan, parse_spec  # noqa: E402
from pytest_gashammer.serve import start_server  # noqa: E402

#: The edge thread's CPU seconds, by run, written by the edge thread itself as it ends.
EDGE_CPU: list[float] = []


class MeasuredEdge(EdgeRuntime):
    """The edge runtime, reporting its own thread's CPU time when its thread ends."""

    def _thread_main(self) -> None:
        try:
            super()._thread_main()
        finally:
            EDGE_CPU.append(time.thread_time())


#: The dashboard and scraper, in a process of its own as a browser and Prometheus would be: the
#: event stream held open, and ``/metrics``, the run and the edges read every second.
DASHBOARD = """
import sys, threading, time, urllib.request
url = sys.argv[1]
def follow():
    try:
        with urllib.request.urlopen(url + "api/v1/events", timeout=600) as stream:
            for _ in stream:
                pass
    except OSError:
        pass
threading.Thread(target=follow, daemon=True).start()
deadline = time.monotonic() + 600
while time.monotonic() < deadline:
    time.sleep(1.0)
    for path in ("metrics", "api/v1/runs/run-1", "api/v1/edges"):
        try:
            with urllib.request.urlopen(url + path, timeout=5) as answer:
                answer.read()
        except OSError:
            pass  # the run id is not there before the run is queued (404)
"""


def one_run(devnet: Any, plan: Any, served: bool) -> dict[str, float]:
    board = server = client = None
    if served:
        board, server = start_server("0")
        client = subprocess.Popen([sys.executable, "-c", DASHBOARD, server.url])
    try:
        hive = local.LocalHive(devnet, live=board)
        cpu_before, _ = process_cpu()
        result = hive.run(plan)
        cpu_after, _ = process_cpu()
    finally:
        if client is not None:
            client.kill()
            client.wait(10)
        if server is not None:
            server.stop()
    sent = max(result.sent, 1)
    return {
        "sent": result.sent,
        "included": result.included,
        "edge_us_per_tx": EDGE_CPU[-1] / sent * 1e6,
        "process_us_per_tx": (cpu_after - cpu_before) / sent * 1e6,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rate", default="10M", help="gas per second (default 10M)")
    parser.add_argument("--seconds", type=int, default=10, help="sustain seconds per run (default 10)")
    parser.add_argument("--rounds", type=int, default=2, help="runs per side, interleaved (default 2)")
    args = parser.parse_args(argv)
    local.EdgeRuntime = MeasuredEdge  # type: ignore[misc]
    figures: dict[bool, list[dict[str, float]]] = {False: [], True: []}
    with EmbeddedDevnet().start() as devnet:
        for round_ in range(args.rounds):
            for served in (False, True):
                spec = parse_spec({"gas_per_sec": args.rate, "duration": f"{args.seconds}s", "warmup": "1s"})
                plan = compile_plan(spec, name="bench_live_api", seed=9000 + 2 * round_ + served)
                run = one_run(devnet, plan, served)
                figures[served].append(run)
                print(
                    f"round {round_ + 1} {'served ' if served else 'no serve'}: sent {run['sent']:.0f}  "
                    f"edge {run['edge_us_per_tx']:.0f} us/tx  process {run['process_us_per_tx']:.0f} us/tx",
                    flush=True,
                )
    print()
    print(f"{'':12}{'edge CPU/tx':>14}{'process CPU/tx':>17}   (medians of {args.rounds}, {args.rate} gas/s)")
    for served in (False, True):
        runs = figures[served]
        edge = statistics.median(run["edge_us_per_tx"] for run in runs)
        process = statistics.median(run["process_us_per_tx"] for run in runs)
        print(f"{'served' if served else 'no serve':12}{edge:>11.0f} us{process:>14.0f} us")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
