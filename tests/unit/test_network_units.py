"""The network's pure parts: topologies, step triggers and results, the event log, snapshot reading,
and the link relay (real loopback sockets: it holds bytes while cut and delivers them after)."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from pytest_gashammer.errors import ConfigError
from pytest_gashammer.network import Network, Step, StepFailed, StepResult, topology_edges
from pytest_gashammer.network.events import CONTROL, LIVE, EventLog
from pytest_gashammer.network.link import LinkRelay
from pytest_gashammer.network.network import _read_snapshot
from pytest_gashammer.network.steps import NodeOutcome, _trigger_period

NAMES = ["node0", "node1", "node2", "node3"]


def test_topologies() -> None:
    assert len(topology_edges(NAMES, "mesh")) == 6
    assert topology_edges(NAMES, "star") == [("node0", "node1"), ("node0", "node2"), ("node0", "node3")]
    assert topology_edges(NAMES, "line") == [("node0", "node1"), ("node1", "node2"), ("node2", "node3")]
    assert topology_edges(NAMES, "ring")[-1] == ("node3", "node0")
    assert topology_edges(NAMES, [["node2", "node0"], ("node0", "node2")]) == [("node0", "node2")]


@pytest.mark.parametrize(
    ("topology", "message"),
    [
        ("tree", "is not one of mesh, ring, star, line"),
        ([["node0", "node9"]], "must name two different nodes"),
    ],
)
def test_bad_topologies_are_one_line(topology: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as error:
        topology_edges(NAMES, topology)  # type: ignore[arg-type]
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("nodes", [0, 17, True, "4"])
def test_a_network_size_out_of_range_is_refused(nodes: object) -> None:
    with pytest.raises(ConfigError, match="a network has 1 to 16 nodes"):
        Network(nodes)  # type: ignore[arg-type]


def test_triggers() -> None:
    assert _trigger_period("new_head") is None
    assert _trigger_period(250) == 0.25
    assert _trigger_period("100ms") == 0.1
    assert _trigger_period(["node1"]) is None
    for bad in ("soon", 0, -5, True):
        with pytest.raises(ConfigError, match="trigger"):
            _trigger_period(bad)


def test_a_step_needs_an_expectation_and_a_sane_timeout() -> None:
    with pytest.raises(ConfigError, match="expect"):
        Step()
    with pytest.raises(ConfigError, match="timeout"):
        Step(expect=lambda node: True, timeout=0)
    with pytest.raises(ConfigError, match="action"):
        Step(action="send", expect=lambda node: True)  # type: ignore[arg-type]


def test_a_step_result_table_names_the_node_that_missed() -> None:
    result = StepResult(
        nodes={"node0": NodeOutcome("node0", True, 1.0, 0.5, 2), "node3": NodeOutcome("node3", checks=9)},
        events=[],
        started_at=0.0,
        action_seconds=0.01,
        elapsed=None,
        timed_out=True,
    )
    assert not result.passed
    text = str(StepFailed(result))
    assert text.startswith("node3 did not meet the expectation before the timeout")
    assert "node0    yes     0.500 s" in text and "node3    NO" in text


def test_the_event_log_orders_bounds_and_fans_out() -> None:
    log = EventLog(max_events=3)
    with log.subscribe() as subscription:
        for number in range(5):
            log.emit(LIVE, "head", "node1", number=number)
        log.emit(CONTROL, "heal", "")
        assert [event.number for event in log.all()] == [3, 4, None] and log.dropped == 3
        got = list(subscription.iterate(timeout=0))
        assert [event.kind for event in got] == ["head"] * 5 + ["heal"]
        assert [event.at for event in got] == sorted(event.at for event in got)
    assert subscription.get(timeout=0) is None


def test_snapshot_reading_errors_are_one_line(tmp_path) -> None:  # type: ignore[no-untyped-def]
    bad = tmp_path / "snap.json"
    bad.write_text("{not json")
    with pytest.raises(ConfigError, match="not a network snapshot"):
        _read_snapshot(bad)
    with pytest.raises(ConfigError, match="lacks genesis"):
        _read_snapshot(
            {"format": 1, "nodes": [], "edges": [], "payloads": [], "fork": "cancun", "block_interval": 1}
        )


def _echo_server() -> tuple[socket.socket, int]:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()

    def serve() -> None:
        connection, _ = server.accept()
        with connection:
            while data := connection.recv(4096):
                connection.sendall(data)

    threading.Thread(target=serve, daemon=True).start()
    return server, server.getsockname()[1]


def test_a_cut_link_holds_bytes_and_delivers_them_after_restore() -> None:
    server, port = _echo_server()
    with (
        server,
        LinkRelay(port) as relay,
        socket.create_connection(("127.0.0.1", relay.port), timeout=5) as client,
    ):
        client.sendall(b"before")
        assert client.recv(100) == b"before"
        relay.cut()
        client.sendall(b"held")
        client.settimeout(0.5)
        with pytest.raises(TimeoutError):
            client.recv(100)
        relay.restore()
        client.settimeout(5)
        assert client.recv(100) == b"held"
        assert relay.connections == 1 and relay.bytes_relayed >= 2 * len(b"before") + 2 * len(b"held")


def test_a_cut_link_drops_datagrams() -> None:
    target = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    target.bind(("127.0.0.1", 0))
    target.settimeout(2)
    with target, LinkRelay(target.getsockname()[1]) as relay:
        sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        with sender:
            sender.sendto(b"ping", ("127.0.0.1", relay.port))
            data, via = target.recvfrom(100)
            assert data == b"ping"
            target.sendto(b"pong", via)
            sender.settimeout(2)
            assert sender.recvfrom(100)[0] == b"pong"
            relay.cut()
            sender.sendto(b"lost", ("127.0.0.1", relay.port))
            target.settimeout(0.5)
            with pytest.raises(TimeoutError):
                target.recvfrom(100)
            relay.restore()
            time.sleep(0.05)
            sender.sendto(b"again", ("127.0.0.1", relay.port))
            target.settimeout(2)
            assert target.recvfrom(100)[0] == b"again"


@pytest.mark.parametrize("image", ["", "  ", 7])
def test_a_network_image_must_name_one(image: object) -> None:
    with pytest.raises(ConfigError, match="the network's image is 'ethereumjs'"):
        Network(2, image=image)  # type: ignore[arg-type]


def test_a_network_runs_natively_unless_given_an_image() -> None:
    assert Network(2).image is None
    assert Network(2, image=" ethereumjs ").image == "ethereumjs"


def test_a_node_from_an_image_gets_the_client_flags_and_its_state_bound_at_the_same_path(
    monkeypatch: pytest.MonkeyPatch, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    from pytest_gashammer.devnet import container
    from pytest_gashammer.devnet.ethereumjs import client_args, client_argv
    from pytest_gashammer.network.node import NetworkNode

    started: list[dict[str, object]] = []

    class Recorder:
        def __init__(self, image: str, command: list[str], **kwargs: object) -> None:
            started.append({"image": image, "command": command, **kwargs})

    monkeypatch.setattr(container, "ContainerProcess", Recorder)
    node = NetworkNode(
        "node1", node_binary=None, cli=None, genesis_path=tmp_path / "genesis.json", jwt_path=tmp_path / "jwt.hex",
        jwt_secret=b"\x01" * 32, engine_version=4, state_dir=tmp_path, log_dir=tmp_path, image="img:1",
    )  # fmt: skip
    node._starts = 1
    node._spawn(7001, 7002, 7003)
    flags = client_args(
        genesis_path=tmp_path / "genesis.json", data_dir=tmp_path / "node1", jwt_path=tmp_path / "jwt.hex",
        rpc_port=7001, engine_port=7002, p2p_port=7003, max_peers=16,
    )  # fmt: skip
    assert started[0]["image"] == "img:1" and started[0]["command"] == flags
    assert started[0]["mounts"] == [tmp_path] and started[0]["log_path"] == tmp_path / "node1.log"
    assert client_argv(tmp_path / "node", tmp_path / "cli.js", **node._flags(7001, 7002, 7003)) == [
        str(tmp_path / "node"), str(tmp_path / "cli.js"), *flags,
    ]  # fmt: skip
    assert "from img:1" in repr(node)
