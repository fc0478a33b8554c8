"""Devnets in containers: ``--gashammer-devnet nitro`` and ``--gashammer-devnet container:IMAGE``.

Containers run on testcontainers-python with **host networking**: the node listens on loopback
ports the plugin picks (never 8545), and nothing talks to a container bridge address. The image
must be on the machine already; the plugin never pulls (a registry may be unreachable, and the
node under test must not change under a test). Testcontainers' reaper, Ryuk, is an image too, so
it is switched off for the plugin's containers; cleanup is the plugin's own
(:mod:`~pytest_gashammer.devnet.ownership`): owner labels, removal at close and at exit, and a
sweep of containers whose pytest process died.

What runs in the container is a :class:`ContainerSpec`: the image, its command as a template
(``{rpc_port}``, ``{ws_port}``, ``{feed_port}``, ``{auth_port}`` are replaced by ports the plugin
picks; each placeholder present gets a port), the ready check, the funder and what the plugin
adds around the node. :data:`PRESETS` holds the known ones:

- ``anvil``: the plugin's own ``gashammer/anvil`` image (:mod:`~pytest_gashammer.devnet.images`
  builds it when missing), run like the embedded devnet: chain id 412346, a block every 250 ms, FIFO
  order, the Nitro dev account funded with ``anvil_setBalance``, the plugin's feed relay and pool
  watch beside it.
- ``nitro``: the pinned ``offchainlabs/nitro-node`` image in ``--dev`` mode (:data:`NITRO_IMAGE`;
  the flags and their sources are in docs/user-guide.md), its own sequencer feed as the devnet's
  ``feed_url``, Nitro's dev key as the funder. The sequencer makes no empty blocks, so it is
  ready once a self-transfer from the dev key is in a block.

Any other image takes its command from ``--gashammer-container-command`` (a preset's image under
another tag keeps the preset). Several nodes of one spec: :class:`ContainerNodes`, or
:meth:`ContainerDevnet.start_nodes` for nodes beside a devnet's own.

Docker and testcontainers are imported inside the functions that use them.
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import logging
import os
import re
import shlex
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from pytest_gashammer.chain.rpc import RpcError, TransportError, call
from pytest_gashammer.devnet import ownership
from pytest_gashammer.devnet.base import (
    FUNDER_BALANCE_WEI,
    NITRO_DEV_CHAIN_ID,
    NITRO_DEV_KEY,
    Devnet,
    Funder,
    IncidentLog,
    free_port,
)
from pytest_gashammer.errors import DevnetError
from pytest_gashammer.options import CONTAINER_COMMAND, CONTAINER_READY, CONTAINER_READY_MODES, DEVNET

#: The Nitro node the ``nitro`` preset runs: the tag OffchainLabs/nitro-devnode's run-dev-node.sh
#: defaults to (v3.7.1, commit 926f1ab). Tags are ``vX.Y.Z-<7-hex commit>``.
NITRO_IMAGE = "offchainlabs/nitro-node:v3.7.1-926f1ab"

#: Ready checks: ``rpc``: eth_chainId answers; ``block``: ... and a block is produced; ``tx``: ... and
#: a 0-value self-transfer from the funder is in a block (for sequencers that make no empty block).
READY_MODES = CONTAINER_READY_MODES
PLACEHOLDERS = ("rpc_port", "ws_port", "feed_port", "auth_port")
PORT_ATTEMPTS = 4
#: Lines of a node's log attached to a failing test's report.
LOG_TAIL_LINES = 60
#: Docker's own log files per container: bounded, a long load run must not fill the disk.
LOG_MAX_SIZE, LOG_MAX_FILES = "50m", "2"

logger = logging.getLogger(__name__)
_PLACEHOLDER = re.compile(r"\{(" + "|".join(PLACEHOLDERS) + r")\}")


@dataclasses.dataclass(frozen=True)
class ContainerSpec:
    """What a container devnet runs and how the plugin drives it; see the module docstring."""

    name: str
    image: str
    command: tuple[str, ...]
    ready: str = "block"
    funder_key: str = NITRO_DEV_KEY
    #: Give the funder FUNDER_BALANCE_WEI with ``anvil_setBalance`` once the node is ready.
    fund: bool = False
    #: The chain id the node must report; None: whatever it reports.
    chain_id: int | None = None
    #: Seconds per block the node is told to keep (None: unknown); for the devnet's notes and tests.
    block_time: float | None = None
    #: WebSocket on the RPC port (anvil) when the command has no ``{ws_port}``.
    ws_on_rpc_port: bool = False
    #: Run the plugin's Nitro-format feed relay over the node (a node without a feed of its own).
    relay_feed: bool = False
    #: Run the plugin's pool watch (anvil's stranded pool entries; see devnet/pool_watch.py).
    pool_watch: bool = False
    #: The plugin's image builder for ``image`` (``"anvil"``), or None: the image must be loaded.
    builder: str | None = None
    #: Devnet kind: a value of options.DEVNET_BACKENDS.
    kind: str = "container"
    startup_timeout: float = 60.0
    #: How to get the image onto this machine when it is missing (one clause).
    how_to_get: str = "load it with `docker load` or build it (the plugin never pulls)"

    def __post_init__(self) -> None:
        if self.ready not in READY_MODES:
            raise DevnetError(
                f"{CONTAINER_READY} {self.ready!r} is not a ready check; use {', '.join(READY_MODES)}"
            )

    def placeholders(self) -> list[str]:
        """The port placeholders the command uses, in PLACEHOLDERS order."""
        used = {match for token in self.command for match in _PLACEHOLDER.findall(token)}
        return [name for name in PLACEHOLDERS if name in used]

    def argv(self, ports: dict[str, int]) -> list[str]:
        """The container's command with each port placeholder replaced."""
        return [_PLACEHOLDER.sub(lambda match: str(ports[match.group(1)]), token) for token in self.command]

    def urls(self, ports: dict[str, int]) -> tuple[str, str | None, str | None]:
        """(rpc_url, ws_url, feed_url) of a node on these ports; loopback only."""
        rpc = f"http://127.0.0.1:{ports['rpc_port']}"
        if "ws_port" in ports:
            ws: str | None = f"ws://127.0.0.1:{ports['ws_port']}"
        else:
            ws = f"ws://127.0.0.1:{ports['rpc_port']}" if self.ws_on_rpc_port else None
        feed = f"ws://127.0.0.1:{ports['feed_port']}" if "feed_port" in ports else None
        return rpc, ws, feed


def anvil_preset() -> ContainerSpec:
    from pytest_gashammer.devnet.embedded import BLOCK_GAS_LIMIT, BLOCK_TIME
    from pytest_gashammer.devnet.images import anvil_image_tag

    command = (
        "--host", "127.0.0.1", "--port", "{rpc_port}",
        "--chain-id", str(NITRO_DEV_CHAIN_ID),
        "--block-time", str(BLOCK_TIME),
        "--gas-limit", str(BLOCK_GAS_LIMIT),
        "--order", "fifo",
        "--accounts", "0",
        "--no-request-size-limit",
    )  # fmt: skip
    return ContainerSpec(
        name="anvil",
        image=anvil_image_tag(),
        command=command,
        ready="block",
        fund=True,
        chain_id=NITRO_DEV_CHAIN_ID,
        block_time=BLOCK_TIME,
        ws_on_rpc_port=True,
        relay_feed=True,
        pool_watch=True,
        builder="anvil",
        startup_timeout=30.0,
        how_to_get="build it with `python -m pytest_gashammer.devnet.images anvil`",
    )


def nitro_preset(image: str = NITRO_IMAGE) -> ContainerSpec:
    # --dev expands in place (nitro cmd/util/confighelpers/configuration.go, devFlagArgs) to a
    # sequencer on chain 412346 with the dev account funded and no L1; the flags after it override
    # the HTTP port it sets (8547) and add what it leaves off: WebSocket, the feed output (off by
    # default and on every interface when on: wsbroadcastserver DefaultBroadcasterConfig) and the
    # auth RPC port, so that two nodes on one host never share a port.
    api = "net,web3,eth,arb,debug"
    command = (
        "--dev",
        "--http.addr", "127.0.0.1", "--http.port", "{rpc_port}", "--http.api", api,
        "--ws.addr", "127.0.0.1", "--ws.port", "{ws_port}", "--ws.api", api,
        "--auth.addr", "127.0.0.1", "--auth.port", "{auth_port}",
        "--node.feed.output.enable",
        "--node.feed.output.addr", "127.0.0.1",
        "--node.feed.output.port", "{feed_port}",
    )  # fmt: skip
    return ContainerSpec(
        name="nitro",
        image=image,
        command=command,
        ready="tx",
        funder_key=NITRO_DEV_KEY,
        chain_id=NITRO_DEV_CHAIN_ID,
        block_time=0.25,  # --execution.sequencer.max-block-speed's default
        kind="nitro",
        startup_timeout=120.0,
        how_to_get=(
            f"on a machine with registry access run `docker pull {image}` (or `docker save` it there and "
            "`docker load` it here); the plugin never pulls"
        ),
    )


#: The known specs by name: ``container:NAME`` (and ``nitro``) run them.
PRESETS = {"anvil": anvil_preset, "nitro": nitro_preset}


def _repository(reference: str) -> str:
    """``repo/name`` of an image reference without its tag or digest."""
    name = reference.split("@", 1)[0]
    head, _, tail = name.rpartition(":")
    return head if head and "/" not in tail else name


def resolve_spec(
    backend: str,
    *,
    command: str | None = None,
    ready: str | None = None,
    funder_key: str | None = None,
) -> ContainerSpec:
    """The spec ``--gashammer-devnet nitro`` / ``container:IMAGE`` and the container options ask for."""
    if backend == "nitro":
        base: ContainerSpec | None = nitro_preset()
        reference = "nitro"
    elif backend.startswith("container:") and backend[len("container:") :].strip():
        reference = backend[len("container:") :].strip()
        base = PRESETS[reference]() if reference in PRESETS else None
        if base is None:
            for make in PRESETS.values():
                preset = make()
                if _repository(preset.image) == _repository(reference):
                    base = dataclasses.replace(preset, image=reference)  # the preset under another tag
                    break
    else:
        raise DevnetError(f"{DEVNET} {backend!r} is not a container backend; use nitro or container:IMAGE")
    if base is None:
        if not command:
            raise DevnetError(
                f"{DEVNET} container:{reference} is not a preset ({', '.join(PRESETS)}): pass "
                f"{CONTAINER_COMMAND} with the image's command, {{rpc_port}} where the RPC port goes "
                "(e.g. '--http.port {rpc_port} --http.addr 127.0.0.1')"
            )
        base = ContainerSpec(name=_short_name(reference), image=reference, command=())
    spec = base
    if command:
        spec = dataclasses.replace(spec, command=tuple(shlex.split(command)))
        if "rpc_port" not in spec.placeholders():
            raise DevnetError(
                f"{CONTAINER_COMMAND} must say where the RPC port goes with {{rpc_port}} (the plugin picks a "
                f"free loopback port), e.g. '--http.port {{rpc_port}}'; got {command!r}"
            )
    if ready:
        spec = dataclasses.replace(spec, ready=ready)
    if funder_key:
        spec = dataclasses.replace(spec, funder_key=funder_key)
    return spec


def _short_name(reference: str) -> str:
    name = _repository(reference).rsplit("/", 1)[-1]
    return re.sub(r"[^a-zA-Z0-9_.-]", "-", name) or "image"


# ----------------------------------------------------------------------------------------------
# one container


#: What has a container up (ContainerNode, ContainerProcess): stopped at interpreter exit.
_live: set[Any] = set()
_live_lock = threading.Lock()
_ryuk_lock = threading.Lock()


class ContainerNode:
    """One container of a :class:`ContainerSpec` on its own loopback ports, stopped on every exit path."""

    def __init__(self, spec: ContainerSpec, *, index: int = 0, run_id: str = ownership.RUN_ID) -> None:
        self.spec = spec
        self.index = index
        self.run_id = run_id
        self.ports: dict[str, int] = {}
        self.name = ""
        self.chain_id: int | None = None
        self._container: Any = None  # testcontainers DockerContainer
        self._logs_saved: Path | None = None

    # -- identity -------------------------------------------------------------------------------
    @property
    def rpc_url(self) -> str:
        return self.spec.urls(self._require_ports())[0]

    @property
    def ws_url(self) -> str | None:
        return self.spec.urls(self._require_ports())[1]

    @property
    def feed_url(self) -> str | None:
        return self.spec.urls(self._require_ports())[2]

    @property
    def container_id(self) -> str | None:
        wrapped = self._wrapped()
        return str(wrapped.id) if wrapped is not None else None

    def _require_ports(self) -> dict[str, int]:
        if not self.ports:
            raise DevnetError(f"the {self.spec.name} container is not started; call start() first")
        return self.ports

    def _wrapped(self) -> Any:
        if self._container is None:
            return None
        try:
            return self._container.get_wrapped_container()
        except Exception:  # testcontainers asserts when nothing was created
            return None

    # -- lifecycle ------------------------------------------------------------------------------
    def start(self) -> ContainerNode:
        """Start the container and wait until it is ready; retries when a picked port was taken."""
        last = ""
        for _attempt in range(PORT_ATTEMPTS):
            self.ports = _pick_ports(self.spec.placeholders())
            self.name = f"gashammer-{self.spec.name}-{self.run_id[:8]}-{self.ports['rpc_port']}"
            self._run()
            try:
                self.chain_id = wait_ready(self, self.spec)
            except DevnetError as exc:
                tail = self.log_tail(20)
                self.stop()
                if _port_taken(tail):
                    last = tail
                    continue  # another process took a port between our probe and the node's bind
                raise DevnetError(f"{exc}{_tail_clause(tail)}") from None
            return self
        raise DevnetError(
            f"the {self.spec.name} container could not bind free loopback ports after {PORT_ATTEMPTS} tries"
            f"{_tail_clause(last)}"
        )

    def _run(self) -> None:
        self._container = _start_host_container(
            self, self.spec.image, self.spec.argv(self.ports), name=self.name,
            labels=ownership.owner_labels(self.run_id) | {"gashammer.node": str(self.index)},
        )  # fmt: skip

    def running(self) -> tuple[bool, str]:
        """(running, status) of the container as Docker sees it now."""
        wrapped = self._wrapped()
        if wrapped is None:
            return False, "not created"
        try:
            wrapped.reload()
        except Exception as exc:  # removed or the daemon went away
            return False, f"gone ({exc})"
        state = wrapped.attrs.get("State", {})
        status = str(state.get("Status", "unknown"))
        if status == "exited":
            status = f"exited with code {state.get('ExitCode')}"
        return state.get("Running", False) is True, status

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        """The last ``lines`` lines of the container's output ('' when there is none or it is gone)."""
        wrapped = self._wrapped()
        if wrapped is None:
            return self._saved_tail(lines)
        try:
            data = wrapped.logs(stdout=True, stderr=True, tail=lines)
        except Exception:  # removed already: read what was saved
            return self._saved_tail(lines)
        return bytes(data).decode(errors="replace")

    def _saved_tail(self, lines: int) -> str:
        if self._logs_saved is None:
            return ""
        try:
            text = self._logs_saved.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def save_logs(self, directory: Path) -> Path | None:
        """Write the container's whole output to ``directory/<name>.log``; the path (None if gone)."""
        wrapped = self._wrapped()
        if wrapped is None:
            return self._logs_saved
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / f"{self.name}.log"
        try:
            with open(path, "wb") as out:
                for chunk in wrapped.logs(stdout=True, stderr=True, stream=True, follow=False):
                    out.write(chunk)
        except Exception as exc:  # logs are evidence, not a reason to fail a session
            logger.warning("could not save the logs of %s: %s", self.name, exc)
            return None
        self._logs_saved = path
        return path

    def stop(self) -> None:
        """Remove the container (force: a stopped node is not waited for). Idempotent."""
        container, self._container = self._container, None
        if container is not None:
            _remove(container, self.name)
        _forget(self)

    def __repr__(self) -> str:
        where = f" rpc_url={self.rpc_url!r}" if self.ports else ""
        return f"<ContainerNode {self.name or self.spec.image}{where}>"


def _start_host_container(
    owner: Any,
    image: str,
    command: Sequence[str],
    *,
    name: str,
    labels: dict[str, str],
    mounts: Sequence[Path] = (),
    **kwargs: Any,
) -> Any:
    """Start ``image`` with ``command`` on the host's network, with the plugin's owner ``labels`` and
    bounded logs; the testcontainers ``DockerContainer``. Each directory of ``mounts`` is bound at
    its own path. ``owner`` (with a ``stop()``) is stopped at interpreter exit if nobody stopped it
    before. Extra ``kwargs`` go to Docker's ``run``."""
    import docker
    from docker.types import LogConfig
    from testcontainers.core.config import testcontainers_config
    from testcontainers.core.container import DockerContainer

    container = (
        DockerContainer(image)
        .with_command(list(command))
        .with_name(name)
        .with_kwargs(
            network_mode="host",
            labels=labels,
            log_config=LogConfig(
                type=LogConfig.types.JSON, config={"max-size": LOG_MAX_SIZE, "max-file": LOG_MAX_FILES}
            ),
            **kwargs,
        )
    )
    for path in mounts:
        container = container.with_volume_mapping(str(path), str(path), "rw")
    with _live_lock:
        first = not _live
        _live.add(owner)
    if first:
        ownership.record_owner()  # before the container exists: a SIGKILL now is still swept
    # Ryuk is an image from a registry: off for this start only, so that a user's own
    # testcontainers in the same process keep theirs.
    with _ryuk_lock:
        saved = testcontainers_config.ryuk_disabled
        testcontainers_config.ryuk_disabled = True
        try:
            container.start()
        except docker.errors.DockerException as exc:
            _remove(container, name)
            _forget(owner)
            raise DevnetError(f"Docker could not start {image}: {' '.join(str(exc).split())[:300]}") from None
        except BaseException:  # Ctrl-C while Docker creates it: remove what was created
            _remove(container, name)
            _forget(owner)
            raise
        finally:
            testcontainers_config.ryuk_disabled = saved
    return container


def _remove(container: Any, name: str) -> None:
    try:
        container.stop()  # remove(force=True, v=True), then closes its client
    except Exception as exc:  # gone already, or the daemon is: the sweep remains
        if "No such container" not in str(exc) and "404" not in str(exc):
            logger.warning("could not remove container %s: %s", name, exc)


def _forget(owner: Any) -> None:
    with _live_lock:
        _live.discard(owner)
        last = not _live
    if last:
        ownership.forget_owner()


def _pick_ports(names: Sequence[str]) -> dict[str, int]:
    ports: dict[str, int] = {}
    while len(ports) < len(names):
        port = free_port()
        if port != 8545 and port not in ports.values():
            ports[names[len(ports)]] = port
    return ports


def _port_taken(log: str) -> bool:
    lowered = log.lower()
    return "address already in use" in lowered or "addrinuse" in lowered


def _tail_clause(tail: str) -> str:
    lines = [line.strip() for line in tail.strip().splitlines() if line.strip()]
    return f"; its last output: {' | '.join(lines[-3:])[-300:]}" if lines else ""


def wait_ready(node: ContainerNode, spec: ContainerSpec, *, timeout: float | None = None) -> int:
    """Wait for ``node`` to pass ``spec.ready``; its chain id. :class:`DevnetError` on a dead node or timeout."""
    timeout = spec.startup_timeout if timeout is None else timeout
    deadline = time.monotonic() + timeout
    url = node.rpc_url
    chain_id: int | None = None
    while chain_id is None:
        try:
            chain_id = int(call(url, "eth_chainId", timeout=2), 16)
        except (TransportError, RpcError):
            _check_alive(node, spec, url, deadline, timeout)
            time.sleep(0.1)
    if spec.chain_id is not None and chain_id != spec.chain_id:
        raise DevnetError(f"the {spec.name} container reports chain id {chain_id}, expected {spec.chain_id}")
    try:
        if spec.ready == "block":
            first = int(call(url, "eth_blockNumber", timeout=5), 16)
            while int(call(url, "eth_blockNumber", timeout=5), 16) <= first:
                _check_alive(node, spec, url, deadline, timeout, waiting_for="a block")
                time.sleep(0.05)
        elif spec.ready == "tx":

            def check() -> None:
                _check_alive(node, spec, url, deadline, timeout, waiting_for="a self-transfer's block")

            send_ready_transfer(url, spec.funder_key, chain_id, check=check)
    except (RpcError, TransportError) as exc:
        raise DevnetError(f"the {spec.name} container failed its {spec.ready!r} ready check: {exc}") from None
    return chain_id


def _check_alive(
    node: ContainerNode, spec: ContainerSpec, url: str, deadline: float, timeout: float,
    *, waiting_for: str = "an answer",
) -> None:  # fmt: skip
    running, status = node.running()
    if not running:
        raise DevnetError(f"the {spec.name} container ({spec.image}) {status} before it was ready")
    if time.monotonic() > deadline:
        raise DevnetError(
            f"the {spec.name} container on {url} was not ready within {timeout:g} s (waiting for {waiting_for})"
        )


def ready_transfer(funder_key: str, chain_id: int, nonce: int, gas: int, gas_price: int) -> tuple[str, str]:
    """(raw hex, hash) of a 0-value self-transfer from the funder: the ``tx`` ready check's transaction."""
    from pytest_gashammer.chain.signer import FastSigner

    signer = FastSigner(funder_key, chain_id)
    signed = signer.sign({
        "type": 2, "chainId": chain_id, "nonce": nonce, "to": signer.address, "value": 0, "data": b"",
        "gas": gas, "maxFeePerGas": 2 * gas_price + 1, "maxPriorityFeePerGas": 0,
    })  # fmt: skip
    return signed.raw_hex, signed.hash_hex


def send_ready_transfer(url: str, funder_key: str, chain_id: int, *, check: Callable[[], None]) -> int:
    """Send a 0-value self-transfer from the funder and wait for its block; the block number.

    For a sequencer that builds no empty block (Nitro: the sequencer waits for a transaction), this is
    how to see one produced. The gas comes from eth_estimateGas: on Nitro a transfer costs more than
    21,000 (the L1 data fee is charged in L2 gas).
    """
    from pytest_gashammer.chain.signer import FastSigner

    address = FastSigner(funder_key, chain_id).address
    nonce = int(call(url, "eth_getTransactionCount", [address, "pending"], timeout=5), 16)
    gas_price = int(call(url, "eth_gasPrice", timeout=5), 16)
    estimate = int(
        call(url, "eth_estimateGas", [{"from": address, "to": address, "value": "0x0"}], timeout=10), 16
    )
    raw, tx_hash = ready_transfer(funder_key, chain_id, nonce, estimate + estimate // 5, gas_price)
    try:
        call(url, "eth_sendRawTransaction", [raw], timeout=10)
    except RpcError as exc:
        raise DevnetError(f"the node refused the ready check's self-transfer from {address}: {exc}") from None
    while True:
        receipt = call(url, "eth_getTransactionReceipt", [tx_hash], timeout=5)
        if receipt:
            return int(receipt["blockNumber"], 16)
        check()
        time.sleep(0.05)


@atexit.register
def _stop_all() -> None:
    """Interpreter exit without the devnet's close (a crash in teardown, os._exit excepted)."""
    with _live_lock:
        nodes = list(_live)
    for node in nodes:
        with contextlib.suppress(Exception):
            node.stop()


# ----------------------------------------------------------------------------------------------
# a process in a container


class ContainerProcess:
    """One command in a host-network container, handled like a local process.

    It has :class:`~pytest_gashammer.devnet.process.ManagedProcess`'s surface (``pid``, ``poll``,
    ``kill``, ``stop``, ``log_tail``, ``log_path``), so code written for a process of the plugin's
    runs it in a container unchanged: the network's nodes from an image do. The caller picks the
    ports and puts them in ``command``; each directory of ``mounts`` is bound at its own path, and the
    command runs as this process's user, so what it writes there stays the caller's. The container
    carries the plugin's owner labels (swept if this process dies), and its output is written to
    ``log_path`` as it comes, by a thread that follows the container's log.
    """

    def __init__(
        self,
        image: str,
        command: Sequence[str],
        *,
        name: str,
        log_path: Path,
        mounts: Sequence[Path] = (),
        labels: dict[str, str] | None = None,
        run_id: str = ownership.RUN_ID,
    ) -> None:
        self.image = image
        self.name = name
        self.log_path = log_path
        self._returncode: int | None = None
        self._container: Any = _start_host_container(
            self, image, command, name=name, labels=ownership.owner_labels(run_id) | (labels or {}),
            mounts=mounts, user=f"{os.getuid()}:{os.getgid()}",
        )  # fmt: skip
        self._wrapped = self._container.get_wrapped_container()
        self._wrapped.reload()
        self.pid = int(self._wrapped.attrs.get("State", {}).get("Pid") or 0)
        self.container_id = str(self._wrapped.id)
        self._follower = threading.Thread(target=self._follow_log, name=f"gashammer-log-{name}", daemon=True)
        self._follower.start()

    def _follow_log(self) -> None:
        # The stream ends when the container stops; what it wrote until then is in the file.
        try:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.log_path, "wb") as out:
                for chunk in self._wrapped.logs(stdout=True, stderr=True, stream=True, follow=True):
                    out.write(chunk)
                    out.flush()
        except Exception as exc:  # logs are evidence, not a reason to fail a session
            logger.warning("could not follow the log of %s: %s", self.name, exc)

    def poll(self) -> int | None:
        """None while the container runs; its exit code once it has stopped (-1 when it is gone)."""
        if self._returncode is not None:
            return self._returncode
        try:
            self._wrapped.reload()
        except Exception:  # removed, or the daemon went away
            self._returncode = -1
            return self._returncode
        state = self._wrapped.attrs.get("State", {})
        if state.get("Running", False) is True:
            return None
        self._returncode = int(state.get("ExitCode", -1))
        self._follower.join(2.0)  # its stream ends with the container: the log is whole for the caller
        return self._returncode

    def kill(self, timeout: float = 5.0) -> None:
        """``SIGKILL`` the container's process (``docker kill``); the container stays until :meth:`stop`."""
        del timeout  # Docker's kill returns once the signal is sent; stop() removes the container
        with contextlib.suppress(Exception):
            self._wrapped.kill()

    def log_tail(self, limit: int = 2000) -> str:
        """The last ``limit`` characters of the container's output, as far as ``log_path`` holds it."""
        try:
            with open(self.log_path, "rb") as log:
                log.seek(max(0, log.seek(0, os.SEEK_END) - limit))
                return log.read().decode(errors="replace")
        except OSError:
            return ""

    def stop(self, timeout: float = 5.0) -> None:
        """Kill and remove the container, once its output is in ``log_path``. Idempotent."""
        container, self._container = self._container, None
        if container is None:
            return
        self.kill()
        self._follower.join(timeout)
        if self._returncode is None:
            self._returncode = -9
        _remove(container, self.name)
        _forget(self)

    def __repr__(self) -> str:
        return f"<ContainerProcess {self.name} {self.image} pid={self.pid}>"


# ----------------------------------------------------------------------------------------------
# several containers


def prepare(spec: ContainerSpec, client: Any | None = None) -> Any:
    """Connect to Docker, sweep leftovers of dead sessions, and make sure the image is here; the client."""
    from pytest_gashammer.devnet import images

    client = images.docker_client() if client is None else client
    ownership.sweep(client)
    _ensure_local(client, spec.image, builder=spec.builder, how_to_get=spec.how_to_get)
    return client


def prepare_image(reference: str, *, how_to_get: str) -> str:
    """The tag of ``reference``, ready on this machine's Docker: one of the plugin's own images by
    name (``ethereumjs``, ``anvil``: built when missing), or a local image by reference (never pulled:
    ``how_to_get`` says what to do when it is missing). Leftovers of dead sessions are swept first."""
    from pytest_gashammer.devnet import images

    builder = reference if reference in images.BUILDERS else None
    tag = images.TAGS[builder]() if builder is not None else reference
    client = images.docker_client()
    try:
        ownership.sweep(client)
        _ensure_local(client, tag, builder=builder, how_to_get=how_to_get)
    finally:
        with contextlib.suppress(Exception):
            client.close()
    return tag


def _ensure_local(client: Any, image: str, *, builder: str | None, how_to_get: str) -> None:
    """Build ``image`` when it is the plugin's own (``builder``); else fail unless it is here."""
    from pytest_gashammer.devnet import images

    if builder is not None and image == images.TAGS[builder]():
        images.BUILDERS[builder](client)
    elif images.image_labels(client, image) is None:
        raise DevnetError(f"image {image} is not on this machine's Docker; {how_to_get}")


class ContainerNodes:
    """``count`` containers of one spec, each on its own ports: for multi-node devnets.

    The nodes do not know of one another (peering is the caller's: pass a command that wires it);
    :meth:`close` saves each node's logs into ``log_dir`` and removes every container.
    """

    def __init__(
        self, spec: ContainerSpec, count: int, *, log_dir: Path | None = None, first_index: int = 0
    ) -> None:
        if count < 1:
            raise ValueError(f"count must be at least 1, got {count}")
        self.spec = spec
        self.count = count
        self.log_dir = log_dir
        self.first_index = first_index
        self.nodes: list[ContainerNode] = []

    def start(self, client: Any | None = None, *, prepared: bool = False) -> ContainerNodes:
        client = client if prepared else prepare(self.spec, client)
        try:
            for index in range(self.first_index, self.first_index + self.count):
                self.nodes.append(ContainerNode(self.spec, index=index).start())
        except BaseException:
            self.close()
            raise
        finally:
            if not prepared and client is not None:
                with contextlib.suppress(Exception):
                    client.close()
        return self

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        parts = []
        for node in self.nodes:
            tail = node.log_tail(lines).rstrip()
            if tail:
                parts.append(tail if len(self.nodes) == 1 else f"[{node.name}]\n{tail}")
        return "\n".join(parts)

    def close(self) -> list[Path]:
        """Save the logs (when ``log_dir`` is set) and remove every container; the log files written."""
        saved = []
        for node in self.nodes:
            if self.log_dir is not None:
                path = node.save_logs(self.log_dir)
                if path is not None:
                    saved.append(path)
            node.stop()
        return saved

    def __enter__(self) -> ContainerNodes:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()


# ----------------------------------------------------------------------------------------------
# the devnet


class ContainerDevnet(Devnet):
    """A devnet whose node runs in a container (:class:`ContainerSpec`); see the module docstring."""

    def __init__(
        self,
        spec: ContainerSpec,
        *,
        workdir: Path | None = None,
        log_dir: Path | None = None,
    ) -> None:
        super().__init__()
        self.spec = spec
        self.kind = spec.kind
        self.block_time = spec.block_time
        self._workdir = workdir
        self._log_dir = log_dir
        self._nodes: ContainerNodes | None = None
        self._extra: list[ContainerNodes] = []
        self._funder = _funder_of(spec.funder_key)
        self._relay: Any = None
        self._pool_watch: Any = None
        self._incident_log = IncidentLog()
        self._chain_id: int | None = None
        #: Where close() saved each container's whole log.
        self.saved_logs: list[Path] = []

    # -- identity -------------------------------------------------------------------------------
    @property
    def node(self) -> ContainerNode:
        """The devnet's own node (the first container)."""
        if self._nodes is None or not self._nodes.nodes:
            raise DevnetError(f"the {self.kind} devnet is not started; call start() first")
        return self._nodes.nodes[0]

    @property
    def nodes(self) -> list[ContainerNode]:
        """Every container of this devnet: its own node first, then those of :meth:`start_nodes`."""
        own = self._nodes.nodes if self._nodes is not None else []
        return [*own, *(node for group in self._extra for node in group.nodes)]

    @property
    def rpc_url(self) -> str:
        return self.node.rpc_url

    @property
    def ws_url(self) -> str | None:
        return self.node.ws_url

    @property
    def feed_url(self) -> str | None:
        if self._relay is not None:
            return str(self._relay.url)
        return self.node.feed_url

    @property
    def chain_id(self) -> int:
        if self._chain_id is None:
            raise DevnetError(f"the {self.kind} devnet is not started; call start() first")
        return self._chain_id

    @property
    def funder(self) -> Funder:
        return self._funder

    @property
    def log_dir(self) -> Path | None:
        """Where the containers' logs are saved at close."""
        return self._log_dir

    # -- lifecycle ------------------------------------------------------------------------------
    def start(self) -> ContainerDevnet:
        if self._log_dir is None:
            workdir = self._workdir or Path(tempfile.mkdtemp(prefix="gashammer-devnet-"))
            self._log_dir = workdir / "container-logs"
        nodes = ContainerNodes(self.spec, 1, log_dir=self._log_dir)
        self._nodes = nodes
        nodes.start()
        try:
            self._chain_id = nodes.nodes[0].chain_id
            if self.spec.fund:
                try:
                    call(self.rpc_url, "anvil_setBalance", [self._funder.address, hex(FUNDER_BALANCE_WEI)])
                except (RpcError, TransportError) as exc:
                    raise DevnetError(
                        f"the {self.spec.name} container refused to fund the funder: {exc}"
                    ) from None
            if self.spec.pool_watch:
                from pytest_gashammer.devnet.pool_watch import PoolWatch

                self._pool_watch = PoolWatch(self.rpc_url).start()
            if self.spec.relay_feed:
                from pytest_gashammer.feed.relay import FeedRelay, FeedRelayError

                try:
                    self._relay = FeedRelay(self.rpc_url, self.chain_id, start_block=0).start()
                except FeedRelayError as exc:
                    raise DevnetError(str(exc)) from None
        except BaseException:
            self.close()
            raise
        logger.info("%s devnet: %s on %s", self.kind, self.spec.image, self.rpc_url)
        return self

    def start_nodes(self, count: int) -> list[ContainerNode]:
        """``count`` more containers of this devnet's spec, each on its own ports, closed with the devnet."""
        group = ContainerNodes(self.spec, count, log_dir=self._log_dir, first_index=len(self.nodes))
        self._extra.append(group)
        group.start()
        return group.nodes

    def incidents(self) -> list[str]:
        return self._incident_log.read(
            pool=self._pool_watch.incidents if self._pool_watch is not None else [],
            relay=self._relay.incidents() if self._relay is not None else [],
        )

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        groups = [group for group in (self._nodes, *self._extra) if group is not None]
        return "\n".join(tail for group in groups if (tail := group.log_tail(lines)))

    def close(self) -> None:
        if self._pool_watch is not None:
            self._pool_watch.stop()
            self._pool_watch = None
        if self._relay is not None:
            self._relay.stop()
            self._relay = None
        for group in [*self._extra, *([self._nodes] if self._nodes is not None else [])]:
            self.saved_logs += group.close()
        self._extra = []
        self._nodes = None

    def __repr__(self) -> str:
        state = (
            f"rpc_url={self.rpc_url!r}" if self._nodes is not None and self._nodes.nodes else "not started"
        )
        return f"<ContainerDevnet {self.spec.name} {self.spec.image} {state}>"


def _funder_of(key: str) -> Funder:
    from pytest_gashammer.chain.signer import FastSigner

    try:
        address = FastSigner(key, 1).address
    except (ValueError, TypeError) as exc:
        raise DevnetError(f"the funder key is not a private key ({exc}); pass a 0x-hex 32-byte key") from None
    return Funder(address, key if key.startswith("0x") else "0x" + key)
