"""The live API without a chain: bind rules, who may stop, SSE frames, routes, metrics, the board."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from pytest_gashammer.errors import ConfigError
from pytest_gashammer.results import Verdict
from pytest_gashammer.scenario.spec import compile_plan, parse_spec
from pytest_gashammer.serve.bind import Bind, parse_bind, stop_refusal
from pytest_gashammer.serve.board import EVENT_BACKLOG, STOPPED, LiveBoard
from pytest_gashammer.serve.metrics import LATENCY_BUCKETS, latency_histogram, registry_for, render
from pytest_gashammer.serve.server import LiveServer, dumps, page, sse_frame
from pytest_gashammer.telemetry.sketch import LatencySketch

# -- bind rules ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "host", "port", "loopback"),
    [
        ("8080", "127.0.0.1", 8080, True),
        ("0", "127.0.0.1", 0, True),
        ("localhost:9000", "localhost", 9000, True),
        ("0.0.0.0:9000", "0.0.0.0", 9000, False),
        ("10.1.2.3:1", "10.1.2.3", 1, False),
        ("[::1]:7000", "::1", 7000, True),
        ("[::]:7000", "::", 7000, False),
        ("myhost:80", "myhost", 80, False),
    ],
)
def test_a_bind_is_loopback_unless_a_host_is_written_out(
    text: str, host: str, port: int, loopback: bool
) -> None:
    bind = parse_bind(text)
    assert (bind.host, bind.port, bind.loopback) == (host, port, loopback)


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("http", "PORT must be a number"),
        ("70000", "not a TCP port"),
        (":80", "host before ':' is empty"),
        ("::1:80", "[HOST]:PORT"),
        ("[::1]80", "[HOST]:PORT"),
    ],
)
def test_a_bad_bind_is_a_one_line_error_naming_the_option(text: str, says: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_bind(text)
    message = str(caught.value)
    assert "--gashammer-serve" in message and says in message and "\n" not in message


def test_a_wildcard_bind_is_opened_through_loopback() -> None:
    assert Bind("0.0.0.0", 1).url(8123) == "http://127.0.0.1:8123/"
    assert Bind("::", 1).url(8123) == "http://[::1]:8123/"
    assert Bind("::1", 5).url() == "http://[::1]:5/"


# -- who may stop a run -----------------------------------------------------------------------------

LOOPBACK, PUBLIC = Bind("127.0.0.1", 0), Bind("0.0.0.0", 0)


def test_without_a_token_loopback_may_stop_and_the_network_never() -> None:
    assert stop_refusal(LOOPBACK, None, None) is None
    refused = stop_refusal(PUBLIC, None, "Bearer anything")
    assert refused is not None and refused.status == 403 and "--gashammer-serve-token" in refused.reason


@pytest.mark.parametrize("bind", [LOOPBACK, PUBLIC])
def test_with_a_token_only_the_token_stops(bind: Bind) -> None:
    missing = stop_refusal(bind, "s3cret", None)
    wrong = stop_refusal(bind, "s3cret", "Bearer s3cre")
    assert missing is not None and missing.status == 401
    assert wrong is not None and wrong.status == 403
    assert stop_refusal(bind, "s3cret", "Bearer s3cret") is None


# -- SSE and JSON ------------------------------------------------------------------------------------


def test_an_event_is_one_sse_frame_with_id_name_and_one_json_line() -> None:
    frame = sse_frame(7, "run.second", {"t": 1.5, "p99": float("nan"), "text": "a\nb"})
    assert frame == b'id: 7\nevent: run.second\ndata: {"t":1.5,"p99":null,"text":"a\\nb"}\n\n'
    with pytest.raises(ValueError, match="one line"):
        sse_frame(1, "bad\nname", {})


def test_json_is_strict_for_browsers() -> None:
    assert json.loads(dumps({"x": float("inf"), "y": (1, 2), 3: {4}})) == {"x": None, "y": [1, 2], "3": [4]}


# -- the board ----------------------------------------------------------------------------------------


def plan(name: str = "test_load") -> Any:
    spec = parse_spec({"gas_per_sec": "2M", "duration": "4s", "warmup": "1s", "workload": {"transfer": 1.0}})
    return compile_plan(spec, name=name, seed=1)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def result(verdicts: list[Verdict], stopped: str | None = None) -> Any:
    return SimpleNamespace(
        verdicts=verdicts,
        passed=all(v.status != "failed" for v in verdicts),
        stopped_early=stopped,
        summary_dict=lambda: {"sent": 10, "verdicts": [v.name for v in verdicts]},
    )


def run_a_run(board: LiveBoard, clock: Clock, stops: list[str]) -> str:
    run_id = board.run_queued(plan())
    board.edge_joined("gw0", "box")
    fault = SimpleNamespace(index=0, kind="node.pause", started_at=None, ended_at=None, error=None)
    board.run_started(run_id, ["gw0"], stop=stops.append, faults=[fault])
    assert not board.due(run_id)
    clock.now += 1.0
    assert board.due(run_id)
    board.tick(run_id, phase="setup", elapsed=0.0, edges={"gw0": {"sent": 0}}, inclusion_p99=None)
    fault.started_at = 1.0
    for second, sent in ((1, 40), (2, 80)):
        clock.now += 1.0
        board.tick(
            run_id,
            phase="warmup" if second == 1 else "sustain",
            elapsed=float(second),
            edges={
                "gw0": {
                    "sent": sent,
                    "accepted": sent,
                    "included": sent - 5,
                    "included_gas": 21_000 * (sent - 5),
                }
            },
            inclusion_p99=0.4,
        )
    fault.ended_at = 2.5
    return run_id


def test_the_board_orders_a_runs_events_and_rates_each_second() -> None:
    clock = Clock()
    board = LiveBoard(clock=clock)
    stops: list[str] = []
    run_id = run_a_run(board, clock, stops)
    board.run_finished(
        run_id,
        result([Verdict("inclusion", "passed", "ok")]),
        edges={"gw0": {"sent": 90, "accepted": 90, "rejected": 0, "included": 90, "included_gas": 1_890_000}},
    )
    names = [name for _, name, _ in board.events_since(0)]
    assert names == [
        "run.queued", "edge.joined", "run.started", "run.second", "run.phase", "run.second", "fault.begin",
        "run.phase", "run.second", "fault.end", "verdict", "run.finished",
    ]  # fmt: skip
    seconds = board.run_json(run_id)["seconds"]  # type: ignore[index]
    assert [s["phase"] for s in seconds] == ["setup", "warmup", "sustain"]
    assert seconds[2]["sent_tx_per_sec"] == 40.0 and seconds[2]["included_gas_per_sec"] == 21_000 * 40
    assert seconds[0]["target_gas_per_sec"] == 0.0 and seconds[2]["target_gas_per_sec"] > 0
    assert board.edges_json() == [
        {"id": "gw0", "host": "box", "state": "up", "last_heartbeat_unix": board.edges["gw0"].last_heartbeat_unix,
         "lost_reason": None, "sent": 90, "included": 90}
    ]  # fmt: skip
    assert board.request_stop(run_id, "me") == (
        409,
        f"run {run_id} is finished; only a running run can be stopped",
    )
    assert stops == []
    # A late subscriber resumes after the last event it saw; the backlog is bounded.
    last = board.last_seq
    board.edge_lost("gw0", "no heartbeat")
    assert [name for _, name, _ in board.events_since(last)] == ["edge.lost"]
    for index in range(EVENT_BACKLOG + 5):
        board.publish("network.block", {"n": index})
    assert len(board.events_since(0)) == EVENT_BACKLOG
    with pytest.raises(ValueError, match="one word"):
        board.publish("network\nblock", {})


def test_a_stop_through_the_api_reaches_the_hive_once_and_fails_a_stopped_verdict() -> None:
    clock = Clock()
    board = LiveBoard(clock=clock)
    stops: list[str] = []
    assert board.request_stop("run-9", "me")[0] == 404
    queued = board.run_queued(plan("later"))
    assert board.request_stop(queued, "me")[0] == 409
    run_id = run_a_run(board, clock, stops)
    status, message = board.request_stop(run_id, "POST from 127.0.0.1")
    assert status == 202 and "stopping" in message
    assert stops == ["stopped through the live API (POST from 127.0.0.1)"]
    assert board.request_stop(run_id, "again")[0] == 409 and len(stops) == 1
    verdict = board.stopped_verdict(run_id)
    assert verdict is not None and verdict.name == STOPPED and verdict.status == "failed"
    assert "t=2.0 s of a 5.0 s plan" in verdict.summary
    assert board.stopped_verdict(queued) is None
    board.run_finished(run_id, result([verdict], stopped=stops[0]), edges={})
    assert board.run_json(run_id)["state"] == "stopped"  # type: ignore[index]


def test_a_finished_runs_metrics_are_its_final_figures_by_edge_and_template() -> None:
    clock = Clock()
    board = LiveBoard(clock=clock)
    run_id = run_a_run(board, clock, [])
    final = {"sent": 90, "accepted": 88, "rejected": 2, "included": 88, "included_gas": 1_848_000}
    by_template = {
        "transfer": {"sent": 60, "accepted": 59, "rejected": 1, "included": 59, "included_gas": 1_239_000},
        "erc20": {"sent": 30, "accepted": 29, "rejected": 1, "included": 29, "included_gas": 609_000},
    }
    bounds, cumulative = list(LATENCY_BUCKETS), [index for index in range(len(LATENCY_BUCKETS))]
    board.run_finished(
        run_id,
        result([Verdict("inclusion", "passed", "ok")]),
        edges={"gw0": final},
        templates={"gw0": by_template},
        histograms={"inclusion": (bounds, cumulative, 4.5, 20)},
    )
    body, kind = render(registry_for(board))
    assert kind.startswith("text/plain")
    families = {family.name: family for family in text_string_to_metric_families(body.decode())}
    for name, figure in final.items():
        family = "gashammer_included_gas" if name == "included_gas" else f"gashammer_{name}_transactions"
        assert [sample.value for sample in families[family].samples] == [figure]
    templated = {
        (sample.labels["template"], sample.labels["outcome"]): sample.value
        for sample in families["gashammer_template_transactions"].samples
    }
    assert templated[("transfer", "rejected")] == 1 and templated[("erc20", "included")] == 29
    assert len(templated) == 8
    gas = {s.labels["template"]: s.value for s in families["gashammer_template_included_gas"].samples}
    assert gas == {"transfer": 1_239_000, "erc20": 609_000}
    histogram = {
        s.name: s for s in families["gashammer_inclusion_latency_seconds"].samples if "le" not in s.labels
    }
    assert histogram["gashammer_inclusion_latency_seconds_count"].value == 20
    assert histogram["gashammer_inclusion_latency_seconds_sum"].value == 4.5
    assert families["gashammer_target_gas_per_second"].samples[0].value == 0.0  # the run is over
    assert board.run_json(run_id)["templates"] == {"gw0": by_template}  # type: ignore[index]


def test_extra_endpoints_need_a_new_name() -> None:
    board = LiveBoard()
    board.add_endpoint("network", lambda: {"nodes": 3})
    for taken in ("network", "runs", "not a name"):
        with pytest.raises(ValueError, match="taken or not an identifier"):
            board.add_endpoint(taken, dict)


def test_latency_histograms_count_samples_at_or_below_each_bound() -> None:
    import numpy as np

    exact = LatencySketch()
    exact.add(np.array([0.05, 0.2, 0.2, 1.0, 70.0]))
    folded = LatencySketch(exact_limit=2)
    folded.add(np.array([0.3, 0.3, 4.0]))
    bounds, cumulative, total, count = latency_histogram([exact, folded])
    assert bounds == list(LATENCY_BUCKETS) and count == 8
    at = dict(zip(bounds, cumulative, strict=True))
    assert (
        at[0.05] == 1 and at[0.25] == 3 and at[0.5] == 5 and at[1.0] == 6 and at[5.0] == 7 and at[60.0] == 7
    )
    assert total == pytest.approx(71.45 + 4.6, rel=0.01)


# -- routes, over a real socket ----------------------------------------------------------------------------


@pytest.fixture
def served() -> Iterator[tuple[LiveBoard, LiveServer, Clock, list[str]]]:
    clock = Clock()
    board = LiveBoard(clock=clock)
    server = LiveServer(board, parse_bind("0"), token="s3cret").start()
    stops: list[str] = []
    try:
        yield board, server, clock, stops
    finally:
        server.stop()
    assert not server.running


def fetch(url: str, *, method: str = "GET", token: str | None = None) -> tuple[int, str, str]:
    request = urllib.request.Request(url, method=method, data=b"" if method == "POST" else None)
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, answer.headers.get("Content-Type", ""), answer.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers.get("Content-Type", ""), exc.read().decode()


def test_every_route_answers_over_http(served: tuple[LiveBoard, LiveServer, Clock, list[str]]) -> None:
    board, server, clock, stops = served
    assert server.url.startswith("http://127.0.0.1:") and server.port > 0
    board.add_endpoint("network", lambda: {"nodes": 3})
    run_id = run_a_run(board, clock, stops)
    base = server.url.rstrip("/")

    status, kind, body = fetch(base + "/api/v1/status")
    assert status == 200 and kind.startswith("application/json")
    assert json.loads(body)["running"] == [run_id] and json.loads(body)["endpoints"] == ["network"]
    assert json.loads(fetch(base + "/api/v1/runs")[2])[0]["id"] == run_id
    assert len(json.loads(fetch(base + f"/api/v1/runs/{run_id}")[2])["seconds"]) == 3
    assert json.loads(fetch(base + "/api/v1/edges")[2])[0]["sent"] == 80
    assert json.loads(fetch(base + "/api/v1/network")[2]) == {"nodes": 3}
    assert fetch(base + "/api/v1/runs/run-77")[0] == 404
    assert fetch(base + "/api/v1/nothing")[0] == 404
    assert fetch(base + "/nothing")[0] == 404

    metrics = fetch(base + "/metrics")
    assert metrics[0] == 200 and metrics[1].startswith("text/plain")
    families = {family.name: family for family in text_string_to_metric_families(metrics[2])}
    (sent,) = families["gashammer_sent_transactions"].samples
    assert sent.name == "gashammer_sent_transactions_total" and sent.value == 80
    assert sent.labels == {"run": run_id, "edge": "gw0"}
    assert families["gashammer_edges_up"].samples[0].value == 1

    page_status, page_kind, html = fetch(base + "/")
    assert page_status == 200 and page_kind.startswith("text/html")
    assert "GASHAMMER_INITIAL" not in html and f'"id":"{run_id}"' in html

    # Stops: the token decides; a wrong method is refused.
    assert fetch(base + f"/api/v1/runs/{run_id}/stop", method="POST")[0] == 401
    assert fetch(base + f"/api/v1/runs/{run_id}/stop", method="POST", token="nope")[0] == 403
    assert stops == []
    assert fetch(base + f"/api/v1/runs/{run_id}/stop", token="s3cret")[0] == 405
    status, _, body = fetch(base + f"/api/v1/runs/{run_id}/stop", method="POST", token="s3cret")
    assert status == 202 and "stopping" in json.loads(body)["message"] and len(stops) == 1


def test_the_event_stream_replays_then_follows_and_resumes(
    served: tuple[LiveBoard, LiveServer, Clock, list[str]],
) -> None:
    board, server, clock, stops = served
    run_id = run_a_run(board, clock, stops)
    kept = board.last_seq
    seen: list[tuple[int, str]] = []

    def read(since: int, until: str) -> None:
        """Take whole frames (blank-line separated) until the event named ``until``."""
        request = urllib.request.Request(f"{server.url}api/v1/events?since={since}")
        with urllib.request.urlopen(request, timeout=10) as stream:
            assert stream.headers["Content-Type"] == "text/event-stream"
            buffer = b""
            while True:
                buffer += stream.read1(65536)
                *frames, buffer = buffer.split(b"\n\n")
                for frame in frames:
                    fields = dict(line.split(": ", 1) for line in frame.decode().splitlines())
                    seen.append((int(fields["id"]), fields["event"]))
                    json.loads(fields["data"])
                    if fields["event"] == until:
                        return

    reader = threading.Thread(target=read, args=(0, "run.finished"), daemon=True)
    reader.start()
    board.run_finished(run_id, result([Verdict("inclusion", "passed", "ok")]), edges={})
    reader.join(10)
    assert not reader.is_alive()
    assert [name for _, name in seen][-2:] == ["verdict", "run.finished"]
    assert [seq for seq, _ in seen] == list(range(1, board.last_seq + 1))
    seen.clear()
    read(kept, "run.finished")  # Last-Event-ID-style resume: only what came after
    assert [name for _, name in seen] == ["fault.end", "verdict", "run.finished"]


def test_a_taken_port_is_a_one_line_error(served: tuple[LiveBoard, LiveServer, Clock, list[str]]) -> None:
    _, server, _, _ = served
    with pytest.raises(
        ConfigError, match=r"^--gashammer-serve: cannot listen on 127\.0\.0\.1:\d+ .*pick another port"
    ):
        LiveServer(LiveBoard(), Bind("127.0.0.1", server.port)).start()


def test_the_page_is_one_offline_file() -> None:
    html = page(LiveBoard())
    assert "<script src" not in html and "http://" not in html.replace("http://www.w3.org/2000/svg", "")
    assert "const INITIAL = {" in html
