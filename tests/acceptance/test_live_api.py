"""The live API during real runs on the embedded devnet: every endpoint, the event stream, the
metrics against the final result, the live page in headless Chromium, and a stop through the API.

Two pytest runs: one local (a thread in the test reads the API while the load runs, the outer test
opens the live page in Chromium meanwhile), one under xdist (the server lives in the controller)
that a POST stops.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from typing import Any

import pytest

from pytest_gashammer.devnet.base import free_port
from pytest_gashammer.telemetry.parquet import load
from tests.acceptance.test_report_in_browser import CONSOLE, chromium, find_chromium

pytestmark = pytest.mark.usefixtures("no_new_anvil")


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as answer:
        return json.loads(answer.read())


# The inner test's helpers: read the API from a thread while the run goes on, and the event stream.
INNER_HELPERS = """
import json, threading, time, urllib.error, urllib.request
from pathlib import Path

BASE = "http://127.0.0.1:{port}"

def get(path, method="GET", token=None):
    request = urllib.request.Request(BASE + path, method=method, data=b"" if method == "POST" else None)
    if token:
        request.add_header("Authorization", "Bearer " + token)
    try:
        with urllib.request.urlopen(request, timeout=5) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()

def events_until_finished(seen, ready):
    with urllib.request.urlopen(BASE + "/api/v1/events", timeout=120) as stream:
        ready.set()
        seq = 0
        for raw in stream:
            line = raw.decode().rstrip("\\n")
            if line.startswith("id: "):
                seq = int(line[4:])
            elif line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                seen.append((seq, name, json.loads(line[6:])))
                if name == "run.finished":
                    return

def while_running(watch, until):
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not until(watch):
        status = json.loads(get("/api/v1/status")[1])
        for run_id in status["running"]:
            watch["status"] = status
            watch["run"] = json.loads(get("/api/v1/runs/" + run_id)[1])
            watch["runs"] = json.loads(get("/api/v1/runs")[1])
            watch["edges"] = json.loads(get("/api/v1/edges")[1])
            watch["at"] = time.time()
        time.sleep(0.3)
"""


def test_the_live_api_follows_a_real_run_and_its_page_draws_in_chromium(pytester: pytest.Pytester) -> None:
    port = free_port()
    try:
        binary: str | None = find_chromium()
        no_browser = ""
    except pytest.skip.Exception as exc:
        binary, no_browser = None, str(exc)
    browser_done = pytester.path / "browser-done"
    pytester.makepyfile(
        test_live=INNER_HELPERS.format(port=port)
        + f"""
import pytest
from prometheus_client.parser import text_string_to_metric_families

@pytest.mark.gashammer(gas_per_sec="3M", warmup="1s", duration="6s", seed=5,
                       faults=[{{"kind": "node.pause", "at": "3s", "duration": "1s"}}])
def test_live(hammer):
    seen, ready, watch = [], threading.Event(), {{}}
    reader = threading.Thread(target=events_until_finished, args=(seen, ready), daemon=True)
    reader.start()
    assert ready.wait(10)
    poller = threading.Thread(
        target=while_running, args=(watch, lambda w: len(w.get("run", {{}}).get("seconds", [])) >= 4), daemon=True
    )
    poller.start()
    result = hammer.run()
    poller.join(10)
    reader.join(30)
    assert not reader.is_alive()

    # While it ran: the run, its figures so far, the edge.
    assert watch["status"]["running"] == ["run-1"] and watch["status"]["edges_up"] == 1
    running = watch["run"]
    assert running["state"] == "running" and running["plan"]["name"] == "test_live"
    assert running["target_gas_per_sec"] == 3_000_000
    assert running["verdicts"] is None and len(running["seconds"]) >= 4
    assert any(second["included_gas_per_sec"] > 0 for second in running["seconds"])
    assert any(second["target_gas_per_sec"] > 0 for second in running["seconds"])
    assert [run["id"] for run in watch["runs"]] == ["run-1"]
    (edge,) = watch["edges"]
    assert edge["id"] == "local" and edge["state"] == "up" and edge["sent"] > 0
    assert watch["at"] - edge["last_heartbeat_unix"] < 3

    # The event stream, in order.
    names = [name for _, name, _ in seen]
    assert [seq for seq, _, _ in seen] == sorted(seq for seq, _, _ in seen)
    assert names[:2] == ["edge.joined", "run.queued"] and names[2] == "run.started"
    phases = [data["phase"] for _, name, data in seen if name == "run.phase"]
    assert "sustain" in phases
    assert names.index("fault.begin") < names.index("fault.end") < names.index("verdict")
    (begin,) = [data for _, name, data in seen if name == "fault.begin"]
    assert begin["kind"] == "node.pause" and 2.5 < begin["t"] < 4.5
    verdicts = [data["name"] for _, name, data in seen if name == "verdict"]
    assert verdicts == [verdict.name for verdict in result.verdicts]
    assert names[-1] == "run.finished" and seen[-1][2]["state"] == "finished" and seen[-1][2]["passed"]
    assert names.index("run.second") < names.index("verdict")

    # After it: the run with its verdicts, the edge's totals, the metrics equal to the result.
    finished = json.loads(get("/api/v1/runs/run-1")[1])
    assert finished["state"] == "finished" and finished["result"]["sent"] == result.sent
    assert [v["name"] for v in finished["verdicts"]] == [v.name for v in result.verdicts]
    assert finished["totals"]["included"] == result.included
    (edge,) = json.loads(get("/api/v1/edges")[1])
    assert (edge["sent"], edge["included"]) == (result.sent, result.included)
    status, text = get("/metrics")
    assert status == 200
    families = {{family.name: family for family in text_string_to_metric_families(text)}}
    for metric, figure in (("sent", result.sent), ("accepted", result.accepted),
                           ("rejected", result.rejected), ("included", result.included)):
        samples = families["gashammer_" + metric + "_transactions"].samples
        assert sum(s.value for s in samples if s.labels["run"] == "run-1") == figure, metric
    by_outcome, templates = {{}}, set()
    for s in families["gashammer_template_transactions"].samples:
        by_outcome[s.labels["outcome"]] = by_outcome.get(s.labels["outcome"], 0) + s.value
        templates.add(s.labels["template"])
    assert by_outcome == {{"sent": result.sent, "accepted": result.accepted,
                          "rejected": result.rejected, "included": result.included}}
    assert "transfer" in templates
    gas = families["gashammer_included_gas"].samples
    assert sum(s.value for s in gas) >= 21_000 * result.included
    for name, stats in (("inclusion", result.latency.inclusion), ("feed", result.latency.feed)):
        counts = [s for s in families["gashammer_" + name + "_latency_seconds"].samples if s.name.endswith("_count")]
        assert [s.value for s in counts] == [stats.count], name
    assert families["gashammer_edges_up"].samples[0].value == 1
    (info,) = families["gashammer_run_info"].samples
    assert info.labels["state"] == "finished" and info.labels["name"] == "test_live"

    # Hold the server until the browser outside has read the live page.
    deadline = time.monotonic() + 240
    while not Path({str(browser_done)!r}).exists() and time.monotonic() < deadline:
        time.sleep(0.2)
"""
    )
    page: dict[str, Any] = {}

    def open_page() -> None:
        try:
            deadline = time.monotonic() + 240
            while time.monotonic() < deadline:  # until the run has a few seconds of figures to draw
                try:
                    runs = get_json(f"http://127.0.0.1:{port}/api/v1/runs")
                    if runs and len(get_json(f"http://127.0.0.1:{port}/api/v1/runs/run-1")["seconds"]) >= 3:
                        break
                except OSError:
                    pass
                time.sleep(0.3)
            if binary is not None:
                page["loaded"] = chromium(
                    binary, pytester.path / "profile", "--dump-dom", f"http://127.0.0.1:{port}/"
                )
        finally:
            browser_done.touch()

    browser = threading.Thread(target=open_page, daemon=True)
    browser.start()
    outcome = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "--gashammer-serve", f"127.0.0.1:{port}"
    )
    browser.join(30)
    outcome.stdout.fnmatch_lines([f"gashammer live API: http://127.0.0.1:{port}/"])
    outcome.assert_outcomes(passed=1)
    if binary is None:
        pytest.skip(f"every API check passed; the live page was not opened: {no_browser}")
    loaded = page["loaded"]
    assert loaded.returncode == 0, loaded.stderr[-2000:]
    console = [line for line in loaded.stderr.splitlines() if CONSOLE.search(line)]
    assert console == [], "the live page logged to the console:\n" + "\n".join(console)
    dom = loaded.stdout
    assert 'id="run-title"' in dom and "run-1" in dom
    for chart in ("chart-gas", "chart-latency"):
        start = dom.index(f'id="{chart}"')
        svg = dom[start : dom.index("</svg>", start)]
        assert '<path d="M' in svg, f"{chart} has no line drawn"


def test_a_post_stops_a_run_under_xdist_which_drains_and_says_it_was_stopped(
    pytester: pytest.Pytester,
) -> None:
    port = free_port()
    pytester.makepyfile(
        test_stop=INNER_HELPERS.format(port=port)
        + """
import pytest

def stop_when_sending(answers):
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        running = json.loads(get("/api/v1/status")[1])["running"]
        if running and len(json.loads(get("/api/v1/runs/" + running[0])[1])["seconds"]) >= 3:
            for token in (None, "wrong", "s3cret"):
                answers.append(get("/api/v1/runs/" + running[0] + "/stop", method="POST", token=token))
            return
        time.sleep(0.2)

@pytest.mark.gashammer(gas_per_sec="2M", warmup="1s", duration="40s", seed=6)
def test_stopped(hammer):
    answers = []
    stopper = threading.Thread(target=stop_when_sending, args=(answers,), daemon=True)
    stopper.start()
    started = time.monotonic()
    result = hammer.run(check=False)
    stopper.join(10)
    assert [status for status, _ in answers] == [401, 403, 202], answers
    assert time.monotonic() - started < 30
    assert result.stopped_early.startswith("stopped through the live API (POST from 127.0.0.1)")
    stopped = result.verdict("stopped")
    assert stopped.status == "failed" and "of a 41.0 s plan" in stopped.summary
    assert not result.passed
    # Drained: what was accepted was followed to its block, and judged.
    assert result.included == result.accepted > 0 and result.lost == 0
    assert result.verdict("inclusion").status in ("passed", "inconclusive")
    run = json.loads(get("/api/v1/runs/run-1")[1])
    assert run["state"] == "stopped" and run["stop_reason"] == result.stopped_early
    assert get("/api/v1/runs/run-1/stop", method="POST", token="s3cret")[0] == 409
"""
    )
    outcome = pytester.runpytest_subprocess(
        "-p",
        "no:cacheprovider",
        "-n",
        "1",
        "--gashammer-serve",
        f"127.0.0.1:{port}",
        "--gashammer-serve-token",
        "s3cret",
        "--gashammer-parquet",
        "telemetry",
    )
    outcome.stdout.fnmatch_lines([f"gashammer live API: http://127.0.0.1:{port}/"])
    outcome.assert_outcomes(passed=1)
    stored = load(pytester.path / "telemetry", tables=["runs", "verdicts"])
    (run,) = stored.runs.to_pylist()
    assert run["status"] == "stopped" and run["stopped_early"].startswith("stopped through the live API")
    verdicts = {row["name"]: row["status"] for row in stored.verdicts.to_pylist()}
    assert verdicts["stopped"] == "failed"


def test_a_bad_bind_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_nothing="def test_nothing():\n    pass\n")
    outcome = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--gashammer-serve", "host:http")
    outcome.stderr.fnmatch_lines(["*--gashammer-serve 'host:http': PORT must be a number, e.g. 8080*"])
    assert outcome.ret == pytest.ExitCode.USAGE_ERROR
    assert "Traceback" not in outcome.stderr.str()
