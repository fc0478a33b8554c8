"""A network whose nodes run from a container image, in a real pytest run: ``--gashammer-network-image
ethereumjs`` builds the plugin's image of the pinned client (no registry), and the three nodes are
host-network containers on loopback ports. The same session runs a load test on that network as its
devnet, a step whose transaction crosses two devp2p links, and a node stopped and started again as a
new container on its old chain. A test asking for an image this machine lacks, or for one that does
not run the client, gets one line.

Needs a Docker daemon: the ``docker_daemon`` fixture uses the running one or starts one (installing
``docker.io`` with apt when missing, as root); without one the test skips, saying why."""

from __future__ import annotations

import json
import os
import shutil
from typing import Any

import pytest

from pytest_gashammer.devnet import ownership
from pytest_gashammer.devnet.images import ensure_anvil_image, ensure_ethereumjs_image
from pytest_gashammer.devnet.npm import cache_dir

pytestmark = pytest.mark.skipif(
    shutil.which("node") is None or shutil.which("npm") is None,
    reason="the ethereumjs image holds this machine's Node.js and the client npm installs",
)

#: The real cache (pytester gives inner sessions another HOME): the client the image holds.
CACHE = cache_dir()

CONTAINER_NETWORK = """
import json
import os
import time

import docker
import pytest

from pytest_gashammer.chain.signer import FastSigner
from pytest_gashammer.network import Step, expect

OUT = os.environ["GASHAMMER_TEST_OUT"]


def record(key, value):
    data = json.load(open(OUT)) if os.path.exists(OUT) else {}
    data[key] = value
    json.dump(data, open(OUT, "w"))


def heights(network):
    return {node.name: int(node.rpc("eth_blockNumber"), 16) for node in network.nodes}


@pytest.mark.gashammer(gas_per_sec="100k", duration="3s", warmup=0, seed=41, senders=3,
                       max_priority_fee_per_gas=10**9, network={"send_to": "builder", "converge_within": "60s"})
def test_a_load_run_on_container_nodes(devnet, hammer):
    result = hammer.run(check=False)
    record("run", {"verdicts": {verdict.name: verdict.status for verdict in result.verdicts},
                   "summaries": {verdict.name: verdict.summary for verdict in result.verdicts},
                   "included": result.included, "lost": result.lost})


def test_every_node_is_a_labelled_host_network_container_of_the_image(network):
    client = docker.from_env()
    seen = {}
    for node in network.nodes:
        container = client.containers.get(node.container_id)
        assert container.attrs["HostConfig"]["NetworkMode"] == "host"
        assert container.attrs["State"]["Pid"] == node.pid
        assert node.log_path.is_file()  # followed as the container writes it
        assert node.rpc_url.startswith("http://127.0.0.1:") and node.client_version.startswith("EthereumJS/0.10.5")
        seen[node.name] = {
            "image": container.image.tags, "user": container.attrs["Config"]["User"],
            "owner_pid": container.labels.get("gashammer.owner_pid"),
            "node_label": container.labels.get("gashammer.network-node"),
            "name": container.name,
        }
    record("containers", seen)
    record("described_image", network.describe()["image"])
    record("test_pid", os.getpid())


def test_a_transaction_sent_to_the_far_end_is_included_on_every_node(network):
    signer = FastSigner(network.funder.key, network.chain_id)
    via = network.node("node2")
    nonce = int(via.rpc("eth_getTransactionCount", network.funder.address.lower(), "pending"), 16)
    tx = signer.sign({"type": 2, "chainId": network.chain_id, "nonce": nonce, "to": "0x" + "44" * 20,
                      "value": 1, "gas": 21000, "maxFeePerGas": 10**10, "maxPriorityFeePerGas": 10**9})
    result = network.run(Step(action=lambda net: via.rpc("eth_sendRawTransaction", tx.raw_hex),
                              expect=expect.tx_included(tx.hash_hex), trigger="new_head", timeout=60))
    record("step", {name: outcome.elapsed for name, outcome in result.nodes.items()})


def test_a_stopped_container_node_starts_again_on_its_chain(network):
    node = network.node("node1")
    before_id, port = node.container_id, node.rpc_url
    network.run(Step(expect=expect.head_at_least(max(heights(network).values()) + 1), trigger="new_head",
                     timeout=60))
    height = heights(network)["node1"]
    stopped_at = time.time()
    network.stop("node1")
    assert node.container_id is None and not node.running
    network.run(Step(expect=expect.head_at_least(height + 2), trigger="new_head", timeout=60, nodes=("node0",)))
    network.start("node1")
    first_answer = int(node.rpc("eth_blockNumber"), 16)
    result = network.run(Step(expect=expect.same_head(), trigger="new_head", timeout=90))
    record("restart", {"before": height, "first_answer": first_answer, "same_port": node.rpc_url == port,
                       "new_container": node.container_id not in (None, before_id),
                       "caught_up_after": result.nodes["node1"].elapsed,
                       "events": [[event.kind, event.node] for event in network.history(stopped_at)]})


@pytest.mark.gashammer_network(nodes=2, image="gashammer/no-such-image:0")
def test_a_missing_image_is_one_line(network):
    pass


@pytest.mark.gashammer_network(nodes=2, image=os.environ["GASHAMMER_OTHER_IMAGE"])
def test_an_image_that_is_not_the_client_is_one_line(network):
    pass
"""


def test_a_network_of_container_nodes(pytester: pytest.Pytester, docker_daemon: Any) -> None:
    tag = ensure_ethereumjs_image(docker_daemon)
    other = ensure_anvil_image(docker_daemon)  # an image whose entry point is not the client
    pytester.makepyfile(test_container_network=CONTAINER_NETWORK)
    out = pytester.path / "out.json"
    pytester._monkeypatch.setenv("GASHAMMER_TEST_OUT", str(out))
    pytester._monkeypatch.setenv("GASHAMMER_CACHE_DIR", str(CACHE))
    pytester._monkeypatch.setenv("GASHAMMER_OTHER_IMAGE", other)
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "-p", "no:randomly",
        "--gashammer-devnet", "network",
        "--gashammer-network-image", "ethereumjs",
        "--gashammer-network-nodes", "3",
        "--gashammer-network-topology", "line",
        timeout=600,
    )  # fmt: skip
    facts = json.loads(out.read_text()) if out.exists() else {}
    assert result.ret == 1, (facts, result.stdout.str()[-6000:])
    result.assert_outcomes(passed=4, errors=2)
    result.stdout.fnmatch_lines(
        [
            "*test_a_missing_image_is_one_line*",
            "*image gashammer/no-such-image:0 is not on this machine's Docker; use image='ethereumjs'*",
        ]
    )
    result.stdout.fnmatch_lines(
        [
            "*test_an_image_that_is_not_the_client_is_one_line*",
            f"*node? (image {other}): EthereumJS exited with code 2 at start: *Usage: anvil*",
        ]
    )
    # The load run on the container nodes: everything sent is included, and the nodes agree.
    run = facts["run"]
    assert run["included"] > 0 and run["lost"] == 0, run
    for name in ("inclusion", "network_converged", "network_same_blocks", "network_receipts"):
        assert run["verdicts"][name] == "passed", (name, run["summaries"][name])
    # Every node is a container of the built image, run as this user, owned by the inner session.
    containers = facts["containers"]
    assert sorted(containers) == ["node0", "node1", "node2"] and facts["described_image"] == tag
    for name, container in containers.items():
        assert container["image"] == [tag] and container["node_label"] == name
        assert container["user"] == f"{os.getuid()}:{os.getgid()}"
        assert container["owner_pid"] == str(facts["test_pid"])
    # node2 reaches node0 only through node1 in a line: its transaction crossed two links.
    assert sorted(facts["step"]) == ["node0", "node1", "node2"]
    assert all(elapsed is not None for elapsed in facts["step"].values())
    # A restarted node is a new container on the same ports, its chain kept in the bound data dir.
    restart = facts["restart"]
    assert restart["same_port"] and restart["new_container"], restart
    assert restart["first_answer"] >= restart["before"], restart
    assert restart["caught_up_after"] is not None, restart
    assert ["node_stopped", "node1"] in restart["events"] and ["caught_up", "node1"] in restart["events"], (
        restart
    )
    # Nothing of the inner session is left in Docker.
    left = docker_daemon.containers.list(
        all=True, filters={"label": f"{ownership.LABEL_OWNER_PID}={facts['test_pid']}"}
    )
    assert left == [], [container.name for container in left]
