"""Container devnets for real: the locally built anvil image in Docker, through real pytest runs.

Needs a Docker daemon: the ``docker_daemon`` fixture uses the running one or starts one (installing
``docker.io`` with apt when missing, as root), and every test here skips, saying why, where it
cannot. No registry is used: the anvil image is built from the plugin's pinned anvil binary.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from pytest_gashammer.chain.rpc import call
from pytest_gashammer.devnet import ownership
from pytest_gashammer.devnet.container import NITRO_IMAGE, ContainerNodes, anvil_preset, resolve_spec
from pytest_gashammer.devnet.factory import DevnetOptions, open_devnet
from pytest_gashammer.devnet.npm import cache_dir
from pytest_gashammer.errors import DevnetError

#: The real cache (pytester gives inner sessions another HOME): the pinned anvil the image holds.
CACHE = cache_dir()

pytestmark = pytest.mark.usefixtures("anvil_image")


def containers(client: Any, **labels: str) -> list[Any]:
    """The plugin's containers (all states), narrowed by label values."""
    wanted = [ownership.LABEL_OWNER_PID] + [f"{key}={value}" for key, value in labels.items()]
    return list(client.containers.list(all=True, filters={"label": wanted}))


def inner_env(pytester: pytest.Pytester) -> None:
    pytester._monkeypatch.setenv("GASHAMMER_CACHE_DIR", str(CACHE))


END_TO_END = """
import json, os

import docker
import pytest


def test_the_devnet_is_a_labelled_container_on_host_networking(devnet):
    assert devnet.kind == "container" and devnet.chain_id == 412346 == devnet.web3.eth.chain_id
    assert devnet.rpc_url.startswith("http://127.0.0.1:") and not devnet.rpc_url.endswith(":8545")
    assert devnet.feed_url.startswith("ws://127.0.0.1:") and devnet.ws_url.startswith("ws://127.0.0.1:")
    assert devnet.web3.eth.get_balance(devnet.funder.address) == 10**24
    assert devnet.node_version.startswith("anvil/v1.7.1")
    container = docker.from_env().containers.get(devnet.node.container_id)
    assert container.attrs["HostConfig"]["NetworkMode"] == "host"
    labels = {key: value for key, value in container.labels.items() if key.startswith("gashammer.")}
    assert labels["gashammer.owner_pid"] == str(os.getpid())
    with open(os.environ["GASHAMMER_TEST_OUT"] + ".devnet", "w") as out:
        json.dump({"name": container.name, "labels": labels}, out)


@pytest.mark.gashammer(gas_per_sec="3M", duration="3s", warmup="1s", seed=11, receipts="all")
def test_a_scenario_on_the_container(hammer):
    result = hammer.run()
    with open(os.environ["GASHAMMER_TEST_OUT"] + ".run", "w") as out:
        json.dump({"verdicts": {v.name: v.status for v in result.verdicts}, "kind": result.devnet_kind,
                   "included": result.included, "lost": result.lost,
                   "gas": result.included_gas_per_sec}, out)


def test_fails_on_purpose(devnet):
    assert devnet.chain_id == 1, "failing on purpose"
"""


def test_a_scenario_runs_on_the_anvil_container_and_teardown_removes_it(
    pytester: pytest.Pytester, docker_daemon: Any
) -> None:
    inner_env(pytester)
    pytester.makepyfile(test_inner=END_TO_END)
    out = pytester.path / "out"
    telemetry = pytester.path / "telemetry"
    pytester._monkeypatch.setenv("GASHAMMER_TEST_OUT", str(out))
    started = time.monotonic()
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "--gashammer-devnet", "container:anvil",
        "--gashammer-parquet", str(telemetry), "-rf", timeout=240,
    )  # fmt: skip
    took = time.monotonic() - started
    text = result.stdout.str()
    result.assert_outcomes(passed=2, failed=1)
    facts = json.loads(Path(f"{out}.devnet").read_text())
    run = json.loads(Path(f"{out}.run").read_text())
    labels = facts["labels"]
    assert set(labels) >= {
        "gashammer.run",
        "gashammer.owner_pid",
        "gashammer.owner_start",
        "gashammer.owner_host",
    }
    # Every verdict passes at 3 Mgas/s (receipts="all": balances are checked too).
    assert run["kind"] == "container" and run["lost"] == 0 and run["included"] > 0
    assert set(run["verdicts"].values()) == {"passed"}, run["verdicts"]
    assert run["gas"] > 2e6
    # The failing test's report carries the container's last lines.
    assert "gashammer devnet log (container, last lines)" in text
    section = text.split("gashammer devnet log (container, last lines)", 1)[1]
    assert "eth_" in section.split("short test summary")[0]
    # Teardown removed the container, and its log was saved beside the telemetry.
    assert not containers(docker_daemon, **{"gashammer.run": labels["gashammer.run"]})
    saved = telemetry / "devnet-logs" / f"{facts['name']}.log"
    assert "Listening on 127.0.0.1:" in saved.read_text()
    print(f"end to end: {took:.1f} s, {run['gas'] / 1e6:.2f} Mgas/s included")


XDIST = """
import json, os
from pathlib import Path

import docker
import pytest


@pytest.mark.parametrize("index", range(4))
def test_a_worker_sees_the_hives_container(devnet, index):
    client = docker.from_env()
    owned = {c.name: c.labels["gashammer.owner_pid"] for c in client.containers.list(
        all=True, filters={"label": "gashammer.owner_pid"})}
    Path(os.environ["GASHAMMER_TEST_OUT"], f"{os.environ['PYTEST_XDIST_WORKER']}-{index}.json").write_text(
        json.dumps({"owned": owned, "rpc": devnet.rpc_url, "kind": devnet.kind, "pid": os.getpid(),
                    "controller": os.getppid()}))


def test_fails_on_purpose(devnet):
    assert devnet.chain_id == 1, "failing on purpose"


@pytest.mark.gashammer(gas_per_sec="2M", duration="2s", warmup=0, seed=21, receipts="all")
def test_a_run_on_every_edge(hammer):
    result = hammer.run()
    Path(os.environ["GASHAMMER_TEST_OUT"], "run.json").write_text(json.dumps({
        "edges": len(result.edges), "verdicts": {v.name: v.status for v in result.verdicts}}))
"""


def test_under_xdist_the_hive_owns_the_one_container(pytester: pytest.Pytester, docker_daemon: Any) -> None:
    inner_env(pytester)
    pytester.makepyfile(test_inner=XDIST)
    outdir = pytester.path / "seen"
    outdir.mkdir()
    pytester._monkeypatch.setenv("GASHAMMER_TEST_OUT", str(outdir))
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "-n", "4", "--gashammer-devnet", "container:anvil", timeout=240
    )
    result.assert_outcomes(passed=5, failed=1)
    # The worker's failing report gets the log of the container the controller owns.
    assert "gashammer devnet log (container, last lines)" in result.stdout.str()
    seen = [json.loads(path.read_text()) for path in outdir.glob("gw*.json")]
    assert seen
    controller = {entry["controller"] for entry in seen}
    assert len(controller) == 1
    workers = {entry["pid"] for entry in seen}
    for entry in seen:
        assert entry["kind"] == "container" and entry["rpc"] == seen[0]["rpc"]
        mine = [name for name, owner in entry["owned"].items() if int(owner) in controller]
        assert len(mine) == 1, entry["owned"]  # one container, the controller's
        assert not [name for name, owner in entry["owned"].items() if int(owner) in workers]
    run = json.loads((outdir / "run.json").read_text())
    assert run["edges"] == 4 and set(run["verdicts"].values()) == {"passed"}, run
    assert not containers(docker_daemon, **{ownership.LABEL_OWNER_PID: str(next(iter(controller)))})


HOLD = """
import time


def test_hold_the_devnet(devnet):
    print("CONTAINER", devnet.node.name, flush=True)
    time.sleep(120)
"""


def test_a_sigkilled_pytest_leaves_a_container_the_next_session_sweeps(
    pytester: pytest.Pytester, docker_daemon: Any
) -> None:
    inner_env(pytester)
    pytester.makepyfile(test_hold=HOLD)
    run = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-s", "-q", "test_hold.py",
         "--gashammer-devnet", "container:anvil"],
        cwd=pytester.path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    name = None
    output: list[str] = []
    try:
        assert run.stdout is not None
        for raw in run.stdout:
            line = raw.decode(errors="replace")
            output.append(line)
            if line.startswith("CONTAINER "):
                name = line.split()[1]
                break
        assert name is not None, "".join(output)[-2000:]
        os.kill(run.pid, signal.SIGKILL)
        run.wait(timeout=10)
        left = containers(docker_daemon, **{ownership.LABEL_OWNER_PID: str(run.pid)})
        assert [container.name for container in left] == [name]  # no teardown ran: it is left
        assert left[0].status == "running"

        pytester.makepyfile(test_next="def test_nothing():\n    pass\n")
        started = time.monotonic()
        pytester.runpytest_subprocess("-p", "no:cacheprovider", "test_next.py", timeout=120).assert_outcomes(
            passed=1
        )
        assert not containers(docker_daemon, **{ownership.LABEL_OWNER_PID: str(run.pid)})
        print(f"the next session swept the leftover; it took {time.monotonic() - started:.1f} s")
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
        for container in containers(docker_daemon, **{ownership.LABEL_OWNER_PID: str(run.pid)}):
            container.remove(force=True)


ABANDON = """
from pytest_gashammer.devnet.container import ContainerDevnet, resolve_spec

devnet = ContainerDevnet(resolve_spec("container:anvil")).start()
print(devnet.node.name, flush=True)
"""  # exits without close(): the atexit hook removes the container


def test_an_interpreter_exit_without_close_removes_the_container(docker_daemon: Any) -> None:
    completed = subprocess.run(
        [sys.executable, "-c", ABANDON],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "GASHAMMER_CACHE_DIR": str(CACHE)},
        check=True,
    )
    name = completed.stdout.strip()
    assert name.startswith("gashammer-anvil-")
    assert not [container for container in containers(docker_daemon) if container.name == name]


def test_two_nodes_of_one_image_each_on_its_own_ports(docker_daemon: Any, tmp_path: Path) -> None:
    with ContainerNodes(anvil_preset(), 2, log_dir=tmp_path) as group:
        first, second = group.nodes
        assert first.rpc_url != second.rpc_url and not set(first.ports.values()) & set(second.ports.values())
        for node in group.nodes:
            assert int(call(node.rpc_url, "eth_chainId"), 16) == 412346
        # Two chains: a block on one is not on the other.
        call(first.rpc_url, "evm_mine")
        assert (
            call(first.rpc_url, "eth_getBlockByNumber", ["latest", False])["hash"]
            != call(second.rpc_url, "eth_getBlockByNumber", ["latest", False])["hash"]
        )
        run_id = first.run_id
        assert len(containers(docker_daemon, **{ownership.LABEL_RUN: run_id})) == 2
    assert not containers(docker_daemon, **{ownership.LABEL_RUN: run_id})
    assert sorted(path.name for path in tmp_path.glob("*.log")) == sorted(
        [f"{first.name}.log", f"{second.name}.log"]
    )


def test_a_missing_image_is_one_line_saying_how_to_get_it(docker_daemon: Any) -> None:
    with pytest.raises(DevnetError) as info:
        open_devnet(
            DevnetOptions(backend="container:gashammer/no-such-image:0", container_command="{rpc_port}")
        )
    assert str(info.value) == (
        "image gashammer/no-such-image:0 is not on this machine's Docker; load it with `docker load` or "
        "build it (the plugin never pulls)"
    )


def test_the_real_nitro_image_when_it_is_here(docker_daemon: Any, tmp_path: Path) -> None:
    """Opt-in: runs only where `docker image inspect` finds the pinned Nitro image (no pull here)."""
    import docker

    try:
        docker_daemon.images.get(NITRO_IMAGE)
    except docker.errors.ImageNotFound:
        pytest.skip(
            f"{NITRO_IMAGE} is not on this machine (docker image inspect finds nothing) and is never pulled; "
            f"`docker pull {NITRO_IMAGE}` where a registry is reachable to run this test"
        )
    from pytest_gashammer.devnet.container import ContainerDevnet

    devnet = ContainerDevnet(resolve_spec("nitro"), log_dir=tmp_path).start()
    try:
        assert devnet.kind == "nitro" and devnet.chain_id == 412346
        assert devnet.feed_url == devnet.node.feed_url and devnet.feed_url is not None
        assert int(call(devnet.rpc_url, "eth_blockNumber"), 16) >= 1  # the ready check's transfer
        assert int(call(devnet.rpc_url, "eth_getBalance", [devnet.funder.address, "latest"]), 16) > 10**18
    finally:
        devnet.close()
