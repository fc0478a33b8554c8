"""Container devnets without Docker: presets, option parsing, ready checks, root filesystems, ownership."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account

from pytest_gashammer import options
from pytest_gashammer.devnet import images, ownership
from pytest_gashammer.devnet.base import NITRO_DEV_ADDRESS, NITRO_DEV_CHAIN_ID, NITRO_DEV_KEY
from pytest_gashammer.devnet.container import (
    NITRO_IMAGE,
    PLACEHOLDERS,
    ContainerSpec,
    _pick_ports,
    nitro_preset,
    resolve_spec,
    wait_ready,
)
from pytest_gashammer.devnet.factory import DevnetOptions, open_devnet
from pytest_gashammer.errors import DevnetError
from pytest_gashammer.plugin import _devnet_backend

PORTS = {"rpc_port": 40101, "ws_port": 40102, "feed_port": 40103, "auth_port": 40104}


# ----------------------------------------------------------------------------------------------
# the Nitro preset


def test_the_nitro_preset_runs_the_pinned_image_in_dev_mode_on_loopback_ports() -> None:
    spec = nitro_preset()
    assert spec.image == NITRO_IMAGE == "offchainlabs/nitro-node:v3.7.1-926f1ab"
    assert spec.placeholders() == list(PLACEHOLDERS)
    argv = spec.argv(PORTS)
    # --dev first: what follows overrides what it expands to (pflag: the last value wins).
    assert argv[0] == "--dev"

    def value(flag: str) -> str:
        return argv[argv.index(flag) + 1]

    assert value("--http.addr") == value("--ws.addr") == value("--auth.addr") == "127.0.0.1"
    assert value("--node.feed.output.addr") == "127.0.0.1"
    assert (
        value("--http.port"),
        value("--ws.port"),
        value("--node.feed.output.port"),
        value("--auth.port"),
    ) == (
        "40101",
        "40102",
        "40103",
        "40104",
    )
    assert "--node.feed.output.enable" in argv
    assert "eth" in value("--http.api").split(",") and "eth" in value("--ws.api").split(",")
    assert not any("{" in token for token in argv)
    assert not any("8545" in token or "8547" in token or "0.0.0.0" in token for token in argv)


def test_the_nitro_preset_serves_its_own_feed_and_funds_with_the_dev_key() -> None:
    spec = nitro_preset()
    rpc, ws, feed = spec.urls(PORTS)
    assert (rpc, ws, feed) == ("http://127.0.0.1:40101", "ws://127.0.0.1:40102", "ws://127.0.0.1:40103")
    assert spec.funder_key == NITRO_DEV_KEY and spec.chain_id == NITRO_DEV_CHAIN_ID == 412346
    assert spec.kind == "nitro" and spec.ready == "tx"
    # Nitro's own feed is the devnet's; the plugin adds no relay, no anvil funding, no pool watch.
    assert not (spec.relay_feed or spec.fund or spec.pool_watch or spec.builder)
    assert "docker pull offchainlabs/nitro-node:v3.7.1-926f1ab" in spec.how_to_get


def test_the_anvil_preset_runs_like_the_embedded_devnet() -> None:
    spec = resolve_spec("container:anvil")
    assert spec.image == images.anvil_image_tag() and spec.builder == "anvil"
    argv = spec.argv({"rpc_port": 40111})
    assert argv[argv.index("--port") + 1] == "40111" and argv[argv.index("--host") + 1] == "127.0.0.1"
    assert argv[argv.index("--chain-id") + 1] == "412346" and argv[argv.index("--block-time") + 1] == "0.25"
    assert spec.urls({"rpc_port": 40111}) == ("http://127.0.0.1:40111", "ws://127.0.0.1:40111", None)
    assert spec.fund and spec.relay_feed and spec.pool_watch and spec.ready == "block"
    assert spec.kind == "container"


# ----------------------------------------------------------------------------------------------
# choosing a spec


def test_a_preset_image_under_another_tag_keeps_the_preset() -> None:
    spec = resolve_spec("container:offchainlabs/nitro-node:v3.9.9-6b0af88")
    assert spec.image == "offchainlabs/nitro-node:v3.9.9-6b0af88" and spec.name == "nitro"
    assert spec.argv(PORTS)[0] == "--dev" and spec.ready == "tx"
    assert resolve_spec("nitro") == nitro_preset()


def test_any_image_takes_its_command_ready_check_and_funder_from_options() -> None:
    key = "0x" + "11" * 32
    spec = resolve_spec(
        "container:example/geth:1.15",
        command="--http --http.addr 127.0.0.1 --http.port {rpc_port} --ws --ws.port {ws_port} --dev",
        ready="rpc",
        funder_key=key,
    )
    assert spec.image == "example/geth:1.15" and spec.name == "geth"
    assert spec.placeholders() == ["rpc_port", "ws_port"]
    assert spec.argv({"rpc_port": 1, "ws_port": 2})[4] == "1"
    assert spec.urls({"rpc_port": 1, "ws_port": 2}) == ("http://127.0.0.1:1", "ws://127.0.0.1:2", None)
    assert spec.ready == "rpc" and spec.funder_key == key
    assert not (spec.fund or spec.relay_feed or spec.builder)


def test_an_image_without_a_preset_or_a_command_is_one_line_naming_the_option() -> None:
    with pytest.raises(DevnetError) as info:
        resolve_spec("container:example/geth:1.15")
    message = str(info.value)
    assert "--gashammer-container-command" in message and "{rpc_port}" in message and "\n" not in message


def test_a_command_must_say_where_the_rpc_port_goes() -> None:
    with pytest.raises(DevnetError, match=r"must say where the RPC port goes with \{rpc_port\}"):
        resolve_spec("container:example/geth:1.15", command="--http --http.port 8545")


def test_an_unknown_ready_check_is_refused() -> None:
    with pytest.raises(DevnetError, match="'soon' is not a ready check; use block, tx, rpc"):
        resolve_spec("nitro", ready="soon")


def test_picked_ports_are_distinct_and_never_8545() -> None:
    for _ in range(20):
        ports = _pick_ports(PLACEHOLDERS)
        assert sorted(ports) == sorted(PLACEHOLDERS)
        assert len(set(ports.values())) == 4 and 8545 not in ports.values()


# ----------------------------------------------------------------------------------------------
# --gashammer-devnet and the factory


@pytest.mark.parametrize(
    "value", ["embedded", "ethereumjs", "nitro", "container:anvil", "container:example/geth:1.15"]
)
def test_the_devnet_option_accepts_container_backends(value: str) -> None:
    assert _devnet_backend(value) == value


@pytest.mark.parametrize("value", ["container", "container:", "docker", "geth"])
def test_the_devnet_option_refuses_others_naming_every_choice(value: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError) as info:
        _devnet_backend(value)
    assert (
        str(info.value)
        == f"{value!r} is not a devnet backend; use embedded, ethereumjs, network, nitro or container:IMAGE"
    )


def test_container_options_without_a_container_backend_are_refused() -> None:
    with pytest.raises(DevnetError) as info:
        open_devnet(DevnetOptions(container_command="--port {rpc_port}"))
    assert str(info.value) == (
        "--gashammer-container-command is for a devnet in a container; pass --gashammer-devnet "
        "container:IMAGE (or nitro), or drop it"
    )
    with pytest.raises(DevnetError, match="--gashammer-container-ready is for a devnet in a container"):
        open_devnet(DevnetOptions(backend="ethereumjs", container_ready="tx"))


def test_a_bare_container_backend_is_refused() -> None:
    with pytest.raises(DevnetError, match="use one of embedded, ethereumjs, network, nitro, container:IMAGE"):
        open_devnet(DevnetOptions(backend="container"))


def test_without_a_daemon_the_backend_is_one_line_saying_how_to_get_one(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-docker.sock")
    with pytest.raises(DevnetError) as info:
        open_devnet(DevnetOptions(backend="container:example/geth:1", container_command="--port {rpc_port}"))
    message = str(info.value)
    assert message.startswith(f"no Docker daemon answers at unix://{tmp_path}/no-docker.sock (")
    assert "dockerd" in message and "apt-get install -y docker.io" in message and "\n" not in message


# ----------------------------------------------------------------------------------------------
# ready checks against a fake node


class FakeChain:
    """A JSON-RPC endpoint that answers what a ready check asks, like a Nitro sequencer by default:
    no block until a transaction arrives."""

    def __init__(self, chain_id: int = NITRO_DEV_CHAIN_ID, empty_blocks: bool = False) -> None:
        self.chain_id = chain_id
        self.empty_blocks = empty_blocks
        self.block = 0
        self.sent: list[str] = []
        self.calls: list[str] = []

    def answer(self, method: str, params: list[Any]) -> Any:
        self.calls.append(method)
        if method == "eth_chainId":
            return hex(self.chain_id)
        if method == "eth_blockNumber":
            if self.empty_blocks and self.calls.count("eth_blockNumber") > 2:
                self.block += 1
            return hex(self.block)
        if method == "eth_getTransactionCount":
            return "0x5"
        if method == "eth_gasPrice":
            return hex(10**8)
        if method == "eth_estimateGas":
            return hex(300_000)  # Nitro: L1 data costs L2 gas
        if method == "eth_sendRawTransaction":
            self.sent.append(params[0])
            return "0x" + "00" * 32
        if method == "eth_getTransactionReceipt":
            if self.sent and self.calls.count("eth_getTransactionReceipt") > 1:
                self.block = 1
                return {"blockNumber": "0x1", "status": "0x1"}
            return None
        raise AssertionError(f"unexpected {method}")


@pytest.fixture
def fake_chain() -> Iterator[tuple[FakeChain, int]]:
    chain = FakeChain()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            body = json.dumps(
                {
                    "jsonrpc": "2.0",
                    "id": request["id"],
                    "result": chain.answer(request["method"], request["params"]),
                }
            ).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield chain, server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


class FakeNode:
    def __init__(self, port: int, running: bool = True) -> None:
        self.rpc_url = f"http://127.0.0.1:{port}"
        self._running = running

    def running(self) -> tuple[bool, str]:
        return self._running, "running" if self._running else "exited with code 1"


def test_the_tx_ready_check_sends_a_dev_key_self_transfer_and_waits_for_its_block(
    fake_chain: tuple[FakeChain, int],
) -> None:
    chain, port = fake_chain
    assert wait_ready(FakeNode(port), nitro_preset(), timeout=10) == NITRO_DEV_CHAIN_ID  # type: ignore[arg-type]
    assert len(chain.sent) == 1
    raw = chain.sent[0]
    assert Account.recover_transaction(raw) == NITRO_DEV_ADDRESS
    from eth_account.typed_transactions import TypedTransaction
    from hexbytes import HexBytes

    tx = TypedTransaction.from_bytes(HexBytes(raw)).as_dict()
    assert "0x" + bytes(tx["to"]).hex() == NITRO_DEV_ADDRESS.lower()
    assert tx["value"] == 0 and tx["nonce"] == 5 and tx["chainId"] == NITRO_DEV_CHAIN_ID
    assert int(tx["gas"]) >= 300_000  # the node's estimate, not 21,000
    assert chain.block == 1


def test_the_block_ready_check_waits_for_a_new_block(fake_chain: tuple[FakeChain, int]) -> None:
    chain, port = fake_chain
    chain.empty_blocks = True
    spec = ContainerSpec(name="x", image="x", command=("{rpc_port}",), ready="block")
    assert wait_ready(FakeNode(port), spec, timeout=10) == NITRO_DEV_CHAIN_ID  # type: ignore[arg-type]
    assert chain.block >= 1 and chain.sent == []


def test_a_node_without_blocks_times_out_naming_what_it_waited_for(fake_chain: tuple[FakeChain, int]) -> None:
    _chain, port = fake_chain
    spec = ContainerSpec(name="x", image="x", command=("{rpc_port}",), ready="block")
    with pytest.raises(DevnetError, match=r"was not ready within 0.5 s \(waiting for a block\)"):
        wait_ready(FakeNode(port), spec, timeout=0.5)  # type: ignore[arg-type]


def test_a_wrong_chain_id_and_a_dead_container_are_named(fake_chain: tuple[FakeChain, int]) -> None:
    chain, port = fake_chain
    chain.chain_id = 1
    with pytest.raises(DevnetError, match="reports chain id 1, expected 412346"):
        wait_ready(FakeNode(port), nitro_preset(), timeout=5)  # type: ignore[arg-type]
    dead = FakeNode(1, running=False)  # nothing listens there: the container exited
    with pytest.raises(DevnetError, match=r"\(offchainlabs/nitro-node:v3.7.1-926f1ab\) exited with code 1"):
        wait_ready(dead, nitro_preset(), timeout=5)  # type: ignore[arg-type]


# ----------------------------------------------------------------------------------------------
# the anvil image's root filesystem


LDD = """\tlinux-vdso.so.1 (0x00007ffd)
\tlibgcc_s.so.1 => /lib/x86_64-linux-gnu/libgcc_s.so.1 (0x00007f29)
\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f28)
\t/lib64/ld-linux-x86-64.so.2 (0x00007f29)
"""


def test_ldd_output_gives_the_libraries_and_the_loader() -> None:
    assert images.parse_ldd(LDD) == [
        "/lib/x86_64-linux-gnu/libgcc_s.so.1",
        "/lib/x86_64-linux-gnu/libc.so.6",
        "/lib64/ld-linux-x86-64.so.2",
    ]
    with pytest.raises(DevnetError, match="needs libfoo.so.1, which this machine does not have"):
        images.parse_ldd("\tlibfoo.so.1 => not found\n", "anvil")


def fake_inputs(tmp_path: Path, content: bytes = b"\x7fELF anvil") -> tuple[Path, list[str]]:
    binary = tmp_path / "anvil"
    binary.write_bytes(content)
    library = tmp_path / "libc.so.6"
    library.write_bytes(b"libc")
    loader = tmp_path / "ld-real.so"
    loader.write_bytes(b"loader")
    link = tmp_path / "ld-linux-x86-64.so.2"
    link.symlink_to(loader)
    return binary, [str(library), str(link)]


def test_the_root_filesystem_holds_the_binary_its_libraries_passwd_and_tmp(tmp_path: Path) -> None:
    binary, libraries = fake_inputs(tmp_path)
    entries = {entry.path: entry for entry in images.anvil_rootfs(binary, libraries)}
    assert entries["usr/local/bin/anvil"].content() == b"\x7fELF anvil"
    assert entries["usr/local/bin/anvil"].mode == 0o755
    # A symlinked library's real bytes go under the linked name.
    linked = entries[libraries[1].lstrip("/")]
    assert linked.content() == b"loader"
    assert b"nobody:x:65534" in entries["etc/passwd"].content()
    assert entries["tmp"].is_dir and entries["tmp"].mode == 0o1777
    assert entries["usr"].is_dir and entries["usr/local/bin"].is_dir and entries["etc"].is_dir
    assert list(entries) == sorted(entries)


def test_the_tarball_is_reproducible_and_the_digest_follows_the_content(tmp_path: Path) -> None:
    binary, libraries = fake_inputs(tmp_path)
    entries = images.anvil_rootfs(binary, libraries)
    first, second = tmp_path / "a.tar", tmp_path / "b.tar"
    images.write_rootfs(entries, first)
    os.utime(binary, (1, 1))  # a touched file changes nothing
    images.write_rootfs(images.anvil_rootfs(binary, libraries), second)
    assert first.read_bytes() == second.read_bytes()
    digest = images.inputs_digest(entries, images.ANVIL_CHANGES)
    assert digest == images.inputs_digest(images.anvil_rootfs(binary, libraries), images.ANVIL_CHANGES)
    binary.write_bytes(b"\x7fELF another anvil")
    assert images.inputs_digest(images.anvil_rootfs(binary, libraries), images.ANVIL_CHANGES) != digest
    assert images.inputs_digest(entries, (*images.ANVIL_CHANGES, "ENV X=1")) != digest
    import tarfile

    with tarfile.open(first) as tar:
        members = {member.name: member for member in tar.getmembers()}
    assert members["usr/local/bin/anvil"].mtime == 0 and members["usr/local/bin/anvil"].uid == 0
    assert members["tmp"].isdir()


def fake_client_tree(tmp_path: Path) -> Path:
    """An npm install directory shaped like the client's: cli.js, a dependency, a .bin shim, addons."""
    install = tmp_path / "ethereumjs-x"
    cli = install / images.EJS_CLI
    cli.parent.mkdir(parents=True)
    cli.write_text("#!/usr/bin/env node\n")
    cli.chmod(0o755)
    dependency = install / "node_modules" / "dep" / "index.js"
    dependency.parent.mkdir(parents=True)
    dependency.write_text("module.exports = 1\n")
    shims = install / "node_modules" / ".bin"
    shims.mkdir()
    (shims / "ethereumjs").symlink_to(cli)
    arch = {"x86_64": "x64", "aarch64": "arm64"}.get(os.uname().machine, os.uname().machine)
    for name in (f"linux-{arch}/level.node", f"linux-{arch}/level.musl.node", "darwin-x64/level.node"):
        addon = install / "node_modules" / "level" / "prebuilds" / name
        addon.parent.mkdir(parents=True, exist_ok=True)
        addon.write_bytes(b"addon")
    return install


def test_the_ethereumjs_root_filesystem_holds_node_the_client_tree_and_no_shims(tmp_path: Path) -> None:
    node, libraries = fake_inputs(tmp_path)
    install = fake_client_tree(tmp_path)
    entries = {entry.path: entry for entry in images.ethereumjs_rootfs(node, install, libraries)}
    assert entries["usr/local/bin/node"].content() == node.read_bytes()
    cli = f"{images.EJS_ROOT}/{images.EJS_CLI.as_posix()}"
    assert (
        entries[cli].mode == 0o755 and entries[f"{images.EJS_ROOT}/node_modules/dep/index.js"].mode == 0o644
    )
    assert not any("/.bin/" in path for path in entries), "npm's command shims are symlinks: left out"
    assert entries[libraries[1].lstrip("/")].content() == b"loader"
    assert b"nobody:x:65534" in entries["etc/passwd"].content() and entries["tmp"].mode == 0o1777
    assert list(entries) == sorted(entries)
    # The entry point runs the client's CLI at the path the tree puts it.
    assert f'ENTRYPOINT ["/usr/local/bin/node", "/{cli}"]' in images.ETHEREUMJS_CHANGES
    # Only this machine's glibc addons are asked for their libraries.
    arch = {"x86_64": "x64", "aarch64": "arm64"}.get(os.uname().machine, os.uname().machine)
    addons = [path.relative_to(install).as_posix() for path in images.native_addons(install)]
    assert addons == [f"node_modules/level/prebuilds/linux-{arch}/level.node"]
    digest = images.inputs_digest(list(entries.values()), images.ETHEREUMJS_CHANGES)
    (install / "node_modules" / "dep" / "index.js").write_text("module.exports = 2\n")
    changed = images.ethereumjs_rootfs(node, install, libraries)
    assert images.inputs_digest(changed, images.ETHEREUMJS_CHANGES) != digest


def test_each_image_the_plugin_builds_has_a_tag_and_a_builder() -> None:
    assert set(images.BUILDERS) == set(images.TAGS) == {"anvil", "ethereumjs"}
    assert images.TAGS["ethereumjs"]().startswith("gashammer/ethereumjs:")


def test_the_image_command_prints_one_line_without_a_daemon(tmp_path: Path) -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "pytest_gashammer.devnet.images", "anvil"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "DOCKER_HOST": f"unix://{tmp_path}/none.sock"},
        check=False,
    )
    assert completed.returncode == 1 and completed.stdout == ""
    assert (
        completed.stderr.startswith("error: no Docker daemon answers at")
        and completed.stderr.count("\n") == 1
    )


# ----------------------------------------------------------------------------------------------
# ownership and the sweep


def test_owner_labels_name_this_process_and_its_start_time() -> None:
    labels = ownership.owner_labels("run1")
    assert labels[ownership.LABEL_RUN] == "run1" and labels[ownership.LABEL_OWNER_PID] == str(os.getpid())
    assert labels[ownership.LABEL_OWNER_START] == ownership.process_start_time(os.getpid()) != ""
    assert ownership.owner_alive(os.getpid(), labels[ownership.LABEL_OWNER_START])
    assert not ownership.orphaned(labels)


def test_a_dead_owner_and_a_reused_pid_are_both_gone() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    assert not ownership.owner_alive(child.pid, "")
    # Same pid, another start time: a later process that got the pid, not the owner.
    assert not ownership.owner_alive(os.getpid(), "1")
    labels = ownership.owner_labels() | {ownership.LABEL_OWNER_PID: str(child.pid)}
    assert ownership.orphaned(labels)
    assert not ownership.orphaned(labels | {ownership.LABEL_OWNER_HOST: "another-machine"})


class FakeContainer:
    def __init__(self, name: str, labels: dict[str, str]) -> None:
        self.name, self.labels, self.removed = name, labels, False

    def remove(self, force: bool = False, v: bool = False) -> None:
        assert force
        self.removed = True


class FakeClient:
    def __init__(self, containers: list[FakeContainer]) -> None:
        self._containers = containers
        self.filters: list[Any] = []
        self.containers = self

    def list(self, all: bool = False, filters: Any = None) -> list[FakeContainer]:  # noqa: A002
        self.filters.append(filters)
        return self._containers


def test_the_sweep_removes_only_containers_whose_owner_is_gone() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    mine = FakeContainer("mine", ownership.owner_labels())
    orphan = FakeContainer("orphan", ownership.owner_labels() | {ownership.LABEL_OWNER_PID: str(child.pid)})
    elsewhere = FakeContainer(
        "elsewhere",
        ownership.owner_labels()
        | {ownership.LABEL_OWNER_PID: str(child.pid), ownership.LABEL_OWNER_HOST: "other"},
    )
    client = FakeClient([mine, orphan, elsewhere])
    assert ownership.sweep(client) == ["orphan"]
    assert orphan.removed and not mine.removed and not elsewhere.removed
    assert client.filters == [{"label": ownership.LABEL_OWNER_PID}]


def test_records_name_dead_owners_only(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("GASHAMMER_CACHE_DIR", str(tmp_path))
    assert ownership.dead_records() == [] and ownership.sweep_if_recorded() == []
    ownership.record_owner()
    assert len(list(ownership.records_dir().iterdir())) == 1 and ownership.dead_records() == []
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    import socket

    dead = ownership.records_dir() / f"{socket.gethostname()}-{child.pid}-123.owner"
    dead.touch()
    assert ownership.dead_records() == [dead]
    ownership.forget_owner()
    assert list(ownership.records_dir().iterdir()) == [dead]
    # No daemon answers: the record stays for the next session, and nothing raises.
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/none.sock")
    assert ownership.sweep_if_recorded() == [] and dead.exists()


def test_container_backends_are_declared_in_options() -> None:
    assert options.DEVNET_BACKENDS[0] == "embedded"
    assert set(options.CONTAINER_BACKENDS) <= set(options.DEVNET_BACKENDS)
    assert options.backend_kind("container:anvil") == "container" and options.backend_kind("nitro") == "nitro"
