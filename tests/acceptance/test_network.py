"""A 4-node EthereumJS network in a real pytest run: the ``network`` fixture, steps, partition and
heal, events, snapshots loaded into a fresh network, and a node fed a conflicting block.

One pytester session holds every check, so the four nodes start once (about 200 MB each)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from pytest_gashammer.devnet.base import free_port

pytestmark = pytest.mark.skipif(
    shutil.which("node") is None or shutil.which("npm") is None,
    reason="the network's EthereumJS nodes need Node.js and npm on PATH (the plugin installs the client with npm)",
)

NETWORK_TESTS = """
import json
import os
import threading
import time
import urllib.request

import pytest

from pytest_gashammer.chain.signer import FastSigner
from pytest_gashammer.network import Step, StepFailed, expect

OUT = os.environ["GASHAMMER_TEST_OUT"]
TO = "0x" + "33" * 20


def record(key, value):
    data = json.load(open(OUT)) if os.path.exists(OUT) else {}
    data[key] = value
    json.dump(data, open(OUT, "w"))


def transfer(network, via, to=TO, value=1):
    signer = FastSigner(network.funder.key, network.chain_id)
    nonce = int(network.node(via).rpc("eth_getTransactionCount", network.funder.address, "pending"), 16)
    return signer.sign({"type": 2, "chainId": network.chain_id, "nonce": nonce, "to": to, "value": value,
                        "gas": 21000, "maxFeePerGas": 10**10, "maxPriorityFeePerGas": 10**9})


def heights(network):
    return {node.name: int(node.rpc("eth_blockNumber"), 16) for node in network.nodes}


def test_a_healthy_network_agrees(network):
    assert [node.name for node in network.nodes] == ["node0", "node1", "node2", "node3"]
    network.run(Step(expect=expect.head_at_least(3), trigger="new_head", timeout=60))
    result = network.run(Step(expect=expect.same_head(), trigger=200, timeout=30))
    top = min(heights(network).values())
    for number in range(1, top + 1):
        blocks = [node.rpc("eth_getBlockByNumber", hex(number), False) for node in network.nodes]
        assert len({(b["hash"], b["stateRoot"]) for b in blocks}) == 1, (number, blocks)
    record("healthy", {"heights": heights(network), "table": result.table()})


def test_the_seed_example_a_transaction_reaches_every_node(network):
    tx = transfer(network, "node2")
    result = network.run(Step(
        action=lambda net: net.node("node2").rpc("eth_sendRawTransaction", tx.raw_hex),
        expect=expect.tx_included(tx.hash_hex),
        trigger="new_head",
        timeout=60,
    ))
    assert result.passed and result.action_value == tx.hash_hex
    assert all(outcome.met and outcome.elapsed > 0 for outcome in result.nodes.values())
    assert result.elapsed == max(outcome.elapsed for outcome in result.nodes.values())
    assert any(event.kind == "head" for event in result.events)
    record("seed", {name: outcome.elapsed for name, outcome in result.nodes.items()})
    print(result.table())


def test_a_partitioned_minority_falls_behind_and_catches_up(network):
    # A second sender for the minority's transaction, funded first (its nonces are its own).
    minority_key = "0x" + "5a" * 32
    minority = FastSigner(minority_key, network.chain_id)
    funding = transfer(network, "node0", to=minority.address, value=10**18)
    network.run(Step(action=lambda net: net.builder.rpc("eth_sendRawTransaction", funding.raw_hex),
                     expect=expect.tx_included(funding.hash_hex), timeout=60))
    load_hashes, stop = [], threading.Event()

    def load():  # transfers through node1, the majority's side, five a second, while partitioned
        signer = FastSigner(network.funder.key, network.chain_id)
        nonce = int(network.node("node1").rpc("eth_getTransactionCount", network.funder.address, "latest"), 16)
        while not stop.wait(0.2) and len(load_hashes) < 200:
            tx = signer.sign({"type": 2, "chainId": network.chain_id, "nonce": nonce, "to": TO, "value": 1,
                              "gas": 21000, "maxFeePerGas": 10**10, "maxPriorityFeePerGas": 10**9})
            load_hashes.append(network.node("node1").rpc("eth_sendRawTransaction", tx.raw_hex))
            nonce += 1

    sender = threading.Thread(target=load, daemon=True)
    sender.start()
    try:
        network.partition(["node0", "node1", "node2"], ["node3"])
        before = heights(network)
        stranded = minority.sign({"type": 2, "chainId": network.chain_id, "nonce": 0, "to": TO, "value": 1,
                                  "gas": 21000, "maxFeePerGas": 10**10, "maxPriorityFeePerGas": 10**9})
        network.node("node3").rpc("eth_sendRawTransaction", stranded.raw_hex)
        network.run(Step(expect=expect.head_at_least(before["node0"] + 3), trigger="new_head", timeout=60,
                         nodes=("node0",)))
        during = heights(network)
        assert during["node3"] <= before["node3"] + 1 < during["node0"] - 1, during
        assert network.builder.rpc("eth_getTransactionReceipt", stranded.hash_hex) is None  # held with the link
        # A step that nobody can meet while partitioned fails with the per-node table.
        with pytest.raises(StepFailed) as failed:
            network.run(Step(expect=expect.same_head(), trigger=250, timeout=2, nodes=("node3",)))
        assert "node3" in str(failed.value) and "NO" in str(failed.value)
        result = network.run(Step(action=lambda net: net.heal(), expect=expect.same_head(), trigger="new_head",
                                  timeout=60))
        assert result.passed
    finally:
        stop.set()
        sender.join(10)
        network.heal()  # the next tests share the network
    assert len(load_hashes) >= 10
    # Every load transaction is on every node, and the minority's transaction crossed the healed link.
    settled = network.run(Step(expect=lambda node: all(node.rpc("eth_getTransactionReceipt", h) for h in
                                                      load_hashes + [stranded.hash_hex]),
                               trigger="new_head", timeout=60))
    record("partition", {"during": during, "catch_up": {n: o.elapsed for n, o in result.nodes.items()},
                         "behind": during["node0"] - during["node3"], "load": len(load_hashes),
                         "settled": {n: o.elapsed for n, o in settled.nodes.items()}})
    print(result.table())


def test_disconnect_stop_start_and_the_event_stream(network):
    network.disconnect("node1", "node2")
    network.connect("node1", "node2")
    network.stop("node3")
    stopped = network.node("node3")
    assert not stopped.running
    builder_height = int(network.builder.rpc("eth_blockNumber"), 16)
    network.run(Step(expect=expect.head_at_least(builder_height + 2), trigger="new_head", timeout=60,
                     nodes=("node0",)))
    network.start("node3")
    network.run(Step(expect=expect.same_head(), trigger="new_head", timeout=60))
    events = network.history()
    assert [e.at for e in events] == sorted(e.at for e in events)
    kinds = [(e.source, e.kind) for e in events]
    for wanted in [("control", "node_created"), ("control", "node_started"), ("control", "partition"),
                   ("control", "heal"), ("control", "disconnect"), ("control", "connect"),
                   ("control", "node_stopped"), ("live", "head"), ("live", "peer_connected"),
                   ("live", "caught_up")]:
        assert wanted in kinds, wanted
    record("events", sorted({f"{s}:{k}" for s, k in kinds}))


def test_a_snapshot_is_saved_for_another_session(network):
    path = network.save(os.environ["GASHAMMER_SNAPSHOT"])
    saved = json.loads(path.read_text())
    assert saved["nodes"] == ["node0", "node1", "node2", "node3"] and len(saved["edges"]) == 6
    assert saved["head"] == saved["payloads"][-1]["payload"]["blockHash"]
    record("snapshot", {"blocks": len(saved["payloads"]), "head": saved["head"]})


def test_the_live_api_serves_the_network_and_its_events(network):
    base = "http://127.0.0.1:" + os.environ["GASHAMMER_SERVE_PORT"]
    described = json.load(urllib.request.urlopen(base + "/api/v1/network", timeout=10))
    assert [node["name"] for node in described["nodes"]] == ["node0", "node1", "node2", "node3"]
    assert described["builder"] == "node0" and len(described["links"]) == 6
    assert all(node["running"] and node["head"] >= 1 for node in described["nodes"]), described
    names = []
    with urllib.request.urlopen(base + "/api/v1/events", timeout=30) as stream:
        for raw in stream:
            line = raw.decode().rstrip("\\n")
            if line.startswith("event: "):
                names.append(line[7:])
            if "network.heal" in names and "network.head" in names and "network.node_stopped" in names:
                break
    assert names.index("network.partition") < names.index("network.heal"), names[:40]
    record("live", sorted(set(names)))


@pytest.mark.gashammer_network(nodes=2, topology="line", block_interval=0.5)
def test_a_marked_test_gets_a_network_of_its_own(network):
    assert [node.name for node in network.nodes] == ["node0", "node1"] and network.edges() == [("node0", "node1")]
    network.run(Step(expect=expect.head_at_least(4), trigger="new_head", timeout=60))
    record("own", {"pids": [node.pid for node in network.nodes]})


@pytest.mark.gashammer_network(nodes=2, topolgy="ring")
def test_a_misspelt_network_marker_is_one_line(network):
    pass


def test_a_node_fed_a_conflicting_block_diverges(network):
    conflicting = network.feed_conflicting_block("node3")
    network.run(Step(expect=expect.head_at_least(heights(network)["node0"] + 2), trigger="new_head",
                     timeout=60, nodes=("node0",)))
    with pytest.raises(StepFailed) as failed:
        network.run(Step(expect=expect.same_head(), trigger=250, timeout=2))
    assert "node3" in str(failed.value).split("did not meet")[0]
    number = int(network.node("node3").rpc("eth_getTransactionCount", TO, "latest"), 16)  # answers: alive
    ours = network.node("node3").head()
    theirs = network.node("node0").rpc("eth_getBlockByNumber", ours["number"], False)
    assert ours["hash"] == conflicting and ours["stateRoot"] != theirs["stateRoot"]
    record("diverged", {"number": int(ours["number"], 16), "alive": number >= 0})
"""


LOAD_SNAPSHOT = """
import json, sys
from pytest_gashammer.network import Network, Step, expect

saved = json.load(open(sys.argv[1]))
height = hex(len(saved["payloads"]))
with Network.load(sys.argv[1]) as fresh:
    heads = {node.name: node.rpc("eth_getBlockByNumber", height, False)["hash"] for node in fresh.nodes}
    fresh.run(Step(expect=expect.head_at_least(len(saved["payloads"]) + 1), trigger="new_head", timeout=60))
    built_on = int(fresh.builder.rpc("eth_blockNumber"), 16)
    print(json.dumps({"heads": heads, "nodes": [node.name for node in fresh.nodes], "built_on": built_on}))
"""


def test_a_four_node_network(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_network_checks=NETWORK_TESTS)
    out = pytester.path / "out.json"
    pytester._monkeypatch.setenv("GASHAMMER_TEST_OUT", str(out))
    port = free_port()
    pytester._monkeypatch.setenv("GASHAMMER_SERVE_PORT", str(port))
    snapshot = pytester.path / "snapshot.json"
    pytester._monkeypatch.setenv("GASHAMMER_SNAPSHOT", str(snapshot))
    result = pytester.runpytest_subprocess(
        "-p",
        "no:cacheprovider",
        "-p",
        "no:randomly",
        "-s",
        "--gashammer-serve",
        f"127.0.0.1:{port}",
        timeout=600,
    )
    result.assert_outcomes(passed=8, errors=1)
    result.stdout.fnmatch_lines(
        [
            "*test_a_misspelt_network_marker_is_one_line*",
            "*gashammer_network takes keyword arguments nodes, topology, block_interval, image; got topolgy (did you mean 'topology'?)*",
        ]
    )
    data = json.loads(out.read_text())
    assert set(data["seed"]) == {"node0", "node1", "node2", "node3"}
    assert data["partition"]["behind"] >= 2
    assert set(data["partition"]["catch_up"]) == {"node0", "node1", "node2", "node3"}
    assert data["snapshot"]["blocks"] >= 5
    # Another process loads the snapshot into a fresh network: every node reaches the same head hash,
    # and its driver builds on from there.
    loaded = subprocess.run(
        [sys.executable, "-c", LOAD_SNAPSHOT, str(snapshot)], capture_output=True, text=True, timeout=300
    )
    assert loaded.returncode == 0, loaded.stderr[-3000:]
    facts = json.loads(loaded.stdout.strip().splitlines()[-1])
    assert set(facts["heads"].values()) == {data["snapshot"]["head"]}, facts
    assert (
        facts["nodes"] == ["node0", "node1", "node2", "node3"]
        and facts["built_on"] > data["snapshot"]["blocks"]
    )
