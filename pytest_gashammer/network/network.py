"""A network of execution-client nodes on loopback: one genesis, one builder, devp2p links.

Shape (a FastEVM-style cluster, with the devp2p simulation's controls): ``node0`` is the
builder. The plugin's :class:`~pytest_gashammer.devnet.consensus.ConsensusDriver` builds a block
on it every ``block_interval`` seconds, and the network imports each payload into every other
node the builder can reach (``newPayload`` + ``forkchoiceUpdated``), as each node's own consensus
client would. Reach follows the links: a node cut off from ``node0`` by a partition, a
disconnect or a stopped neighbour gets no block until it is reachable again, and then gets the
ones it missed in order (the way a consensus client that rejoins feeds its execution client).
Transactions travel over real devp2p between the nodes, through one cuttable relay per link
(:mod:`pytest_gashammer.network.link`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from pytest_gashammer.chain.engine import ZERO_HASH, EngineError
from pytest_gashammer.chain.rpc import RpcError, TransportError
from pytest_gashammer.devnet.base import NITRO_DEV_ADDRESS, NITRO_DEV_KEY, Funder
from pytest_gashammer.devnet.consensus import DEFAULT_INTERVAL, ConsensusDriver, synthetic_withdrawals
from pytest_gashammer.devnet.control import NetworkControl
from pytest_gashammer.devnet.ethereumjs import (
    DEFAULT_FORK,
    ETHEREUMJS_CHAIN_ID,
    FORKS,
    find_node,
    genesis,
    install_managed,
)
from pytest_gashammer.errors import ConfigError, DevnetError
from pytest_gashammer.network.events import CONTROL, LIVE, EventLog, Subscription
from pytest_gashammer.network.link import LinkRelay
from pytest_gashammer.network.node import NetworkNode
from pytest_gashammer.options import DEFAULT_NETWORK_NODES as DEFAULT_NODES
from pytest_gashammer.options import NETWORK_TOPOLOGIES as TOPOLOGIES
from pytest_gashammer.results import NetworkEvent

MAX_NODES = 16
#: Blocks kept for catch-up and snapshots: hours of chain at one block a second.
MAX_PAYLOADS = 20_000
SNAPSHOT_FORMAT = 1
#: How often the watcher reads each node's head (live ``head`` events), and its peers.
HEAD_POLL_SECONDS = 0.5
PEER_POLL_SECONDS = 1.0

#: What to do when a network's image is not on this machine (the plugin never pulls).
IMAGE_HOW_TO_GET = (
    "use image='ethereumjs' (the plugin builds gashammer/ethereumjs from the pinned client), or `docker load` "
    "an image whose entry point is the @ethereumjs/client CLI"
)

Edge = tuple[str, str]
logger = logging.getLogger(__name__)


def node_name(index: int) -> str:
    return f"node{index}"


def topology_edges(names: Sequence[str], topology: str | Iterable[Sequence[str]]) -> list[Edge]:
    """The links of a topology over ``names`` (the builder first): ``"mesh"`` (every pair),
    ``"ring"``, ``"star"`` (every node linked to the builder), ``"line"``, or the edges given."""
    if isinstance(topology, str):
        if topology == "mesh":
            return [(a, b) for i, a in enumerate(names) for b in names[i + 1 :]]
        if topology == "star":
            return [(names[0], b) for b in names[1:]]
        if topology == "line":
            return list(zip(names, names[1:], strict=False))
        if topology == "ring":
            edges = list(zip(names, names[1:], strict=False))
            if len(names) > 2:
                edges.append((names[-1], names[0]))
            return edges
        raise ConfigError(
            f"topology {topology!r} is not one of {', '.join(TOPOLOGIES)}, or a list of [a, b] edges"
        )
    given: list[Edge] = []
    for edge in topology:
        if len(edge) != 2 or edge[0] not in names or edge[1] not in names or edge[0] == edge[1]:
            raise ConfigError(
                f"topology edge {list(edge)!r} must name two different nodes of {', '.join(names)}"
            )
        a, b = sorted(edge, key=list(names).index)
        if (a, b) not in given:
            given.append((a, b))
    return given


class _Link:
    """One topology edge: ``dialer`` dials ``listener`` through the relay."""

    def __init__(self, dialer: str, listener: str) -> None:
        self.dialer, self.listener = dialer, listener
        self.relay: LinkRelay | None = None
        self.dialled = False

    @property
    def key(self) -> frozenset[str]:
        return frozenset((self.dialer, self.listener))


class Network(NetworkControl):
    """N ``@ethereumjs/client`` nodes on loopback; see the module docstring.

    ``network.nodes`` (each with ``.name``, ``.rpc_url``, ``.web3``), :meth:`node`, control
    (:meth:`add_node`, :meth:`start`, :meth:`stop`, :meth:`connect`, :meth:`disconnect`,
    :meth:`partition`, :meth:`heal`), events (:meth:`events`, :meth:`history`), snapshots
    (:meth:`snapshot`, :meth:`load`) and steps (:meth:`run`).
    """

    def __init__(
        self,
        nodes: int = DEFAULT_NODES,
        *,
        topology: str | Iterable[Sequence[str]] = "mesh",
        block_interval: float = DEFAULT_INTERVAL,
        fork: str = DEFAULT_FORK,
        workdir: Path | None = None,
        startup_timeout: float = 90.0,
        image: str | None = None,
    ) -> None:
        if isinstance(nodes, bool) or not isinstance(nodes, int) or not 1 <= nodes <= MAX_NODES:
            raise ConfigError(f"a network has 1 to {MAX_NODES} nodes, got {nodes!r}")
        if fork not in FORKS:
            raise ConfigError(f"the network's fork is one of {', '.join(FORKS)}, got {fork!r}")
        if not isinstance(block_interval, int | float) or not 0 < block_interval < float("inf"):
            raise ConfigError(
                f"the block interval must be a positive number of seconds, got {block_interval!r}"
            )
        if image is not None and (not isinstance(image, str) or not image.strip()):
            raise ConfigError(
                f"the network's image is 'ethereumjs' (the plugin builds it) or a local image reference, got {image!r}"
            )
        #: What the nodes run from: None for this machine's Node.js, else a container image (as asked).
        self.image = image.strip() if image is not None else None
        #: The image's local tag once started (``ethereumjs`` resolves to the plugin's own build).
        self.image_tag: str | None = None
        self.fork = fork
        self.engine_version = FORKS.index(fork) + 1
        self.block_interval = float(block_interval)
        self.genesis: dict[str, Any] = genesis(fork=fork)
        self._names = [node_name(index) for index in range(nodes)]
        self._edges = topology_edges(self._names, topology)
        self.topology = topology if isinstance(topology, str) else "custom"
        self._workdir = workdir
        self._startup_timeout = startup_timeout
        self.funder = Funder(NITRO_DEV_ADDRESS, NITRO_DEV_KEY)
        self.chain_id = ETHEREUMJS_CHAIN_ID
        self._nodes: dict[str, NetworkNode] = {}
        self._links: dict[frozenset[str], _Link] = {}
        self._cut: set[frozenset[str]] = set()
        self._detached: set[str] = set()
        self._stopped: set[str] = set()
        self._payloads: list[tuple[dict[str, Any], list[str]]] = []  # block n is at index n - 1
        self._payloads_dropped = 0
        self._fed: dict[str, int] = {}  # the highest block number imported into each node
        self._feed_lock = threading.RLock()
        self._control_lock = threading.RLock()
        self._log = EventLog()
        self._incidents: list[str] = []
        self._driver: ConsensusDriver | None = None
        self._state_dir: Path | None = None
        self._log_dir: Path | None = None
        self._jwt_secret = b""
        self._jwt_path: Path | None = None
        self._genesis_path: Path | None = None
        self._binaries: tuple[Path | None, Path | None] | None = None
        self._watcher: threading.Thread | None = None
        self._closing = threading.Event()
        self._started = False
        self._heads: dict[str, tuple[int, str]] = {}  # the watcher's last reading of each node's head
        self._forwarders: list[Subscription] = []

    # -- identity -------------------------------------------------------------------------------
    @property
    def nodes(self) -> list[NetworkNode]:
        return list(self._nodes.values())

    def node(self, name: str) -> NetworkNode:
        try:
            return self._nodes[name]
        except KeyError:
            raise DevnetError(f"no node named {name!r}; the network has {', '.join(self._nodes)}") from None

    @property
    def builder(self) -> NetworkNode:
        return self._nodes[self._names[0]]

    @property
    def rpc_url(self) -> str:
        return self.builder.rpc_url

    @property
    def consensus(self) -> ConsensusDriver:
        if self._driver is None:
            raise DevnetError("the network is not started; call start() first")
        return self._driver

    def node_names(self) -> list[str]:
        return list(self._names)

    def edges(self) -> list[Edge]:
        """The topology's links (cut ones included)."""
        return list(self._edges)

    def cut_links(self) -> list[Edge]:
        return [edge for edge in self._edges if frozenset(edge) in self._cut]

    # -- lifecycle ------------------------------------------------------------------------------
    def start(self, name: str | None = None) -> Network:  # type: ignore[override]
        """Start the network (all nodes, links and the builder's driver), or, given a ``name``, one
        stopped node again."""
        if name is not None:
            self._start_node(name)
            return self
        if self._started:
            return self
        self._started = True
        try:
            self._prepare_files()
            self._launch(self._names)
            for dialer, listener in self._edges:
                self._add_link(dialer, listener)
            if self._payloads:  # a loaded snapshot's chain, set before start()
                self._replay_loaded_chain()
            self._start_driver()
            self._watcher = threading.Thread(target=self._watch, name="gashammer-network-watch", daemon=True)
            self._watcher.start()
        except BaseException:
            self.close()
            raise
        return self

    def _prepare_files(self) -> None:
        if self.image is None:
            self._binaries = (find_node(), install_managed())
        else:
            from pytest_gashammer.devnet.container import prepare_image

            self.image_tag = prepare_image(self.image, how_to_get=IMAGE_HOW_TO_GET)
            self._binaries = (None, None)
        workdir = self._workdir or Path(tempfile.mkdtemp(prefix="gashammer-network-"))
        workdir.mkdir(parents=True, exist_ok=True)
        self._log_dir = workdir
        self._state_dir = Path(tempfile.mkdtemp(prefix="network-", dir=workdir))
        self._genesis_path = self._state_dir / "genesis.json"
        self._genesis_path.write_text(json.dumps(self.genesis, indent=1))
        self._jwt_secret = os.urandom(32)
        self._jwt_path = self._state_dir / "jwt.hex"
        self._jwt_path.touch(mode=0o600)
        self._jwt_path.write_text(self._jwt_secret.hex())

    def _new_node(self, name: str) -> NetworkNode:
        assert self._binaries and self._genesis_path and self._jwt_path and self._state_dir and self._log_dir
        node_binary, cli = self._binaries
        node = NetworkNode(
            name, node_binary=node_binary, cli=cli, genesis_path=self._genesis_path, jwt_path=self._jwt_path,
            jwt_secret=self._jwt_secret, engine_version=self.engine_version, state_dir=self._state_dir,
            log_dir=self._log_dir, startup_timeout=self._startup_timeout, image=self.image_tag,
        )  # fmt: skip
        node.network = self
        return node

    def _launch(self, names: Sequence[str]) -> None:
        fresh = [self._new_node(name) for name in names]
        for node in fresh:
            self._nodes[node.name] = node
            self._log.emit(CONTROL, "node_created", node.name)
        # The nodes boot in parallel: each spends most of its 1-2 s start in its own process.
        with ThreadPoolExecutor(max_workers=len(fresh)) as pool:
            failures = [f.exception() for f in [pool.submit(node.start) for node in fresh]]
        problems = [str(exc) for exc in failures if exc is not None]
        if problems:
            raise DevnetError(f"the network's nodes did not start: {problems[0]}")
        for node in fresh:
            self._fed[node.name] = 0
            self._log.emit(CONTROL, "node_started", node.name, detail=node.rpc_url)

    def _start_driver(self) -> None:
        driver = ConsensusDriver(
            self.builder.engine(timeout=120.0), self.builder.rpc_url, interval=self.block_interval
        )
        driver.on_block = self._on_block
        try:
            self._driver = driver.start()
        except (RpcError, TransportError) as exc:
            raise DevnetError(f"the builder's head could not be read: {exc}") from None

    def close(self) -> None:
        """Stop the driver, the watcher, every relay and every node; remove their data. Idempotent."""
        self._closing.set()
        driver, self._driver = self._driver, None
        if driver is not None and not driver.stop(timeout=5.0):
            for node in self._nodes.values():
                node.stop()  # a block still in progress ends with the nodes
            driver.stop(timeout=5.0)
        watcher, self._watcher = self._watcher, None
        if watcher is not None:
            watcher.join(5.0)
        for subscription in self._forwarders:
            subscription.close()
        for link in self._links.values():
            if link.relay is not None:
                link.relay.stop()
        for node in self._nodes.values():
            node.stop()
        if self._state_dir is not None:
            shutil.rmtree(self._state_dir, ignore_errors=True)
            self._state_dir = None

    def __enter__(self) -> Network:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- links ----------------------------------------------------------------------------------
    def _add_link(self, a: str, b: str) -> _Link:
        dialer, listener = sorted((a, b), key=self._index)
        link = _Link(dialer, listener)
        relay = LinkRelay(self.node(listener).p2p_port or 0, name=f"link {dialer}-{listener}")
        link.relay = relay.start()
        self._links[link.key] = link
        if link.key in self._cut:
            relay.cut()
        self._dial(link)
        return link

    def _index(self, name: str) -> int:
        return self._names.index(name)

    def _dial(self, link: _Link) -> None:
        """Have the dialer peer with the listener through the relay (once per link: the client
        never dials a peer again, and a cut holds the connection rather than closing it)."""
        dialer = self.node(link.dialer)
        if link.dialled or link.relay is None or not dialer.running or not self.node(link.listener).running:
            return
        port = link.relay.port
        try:
            dialer.rpc(
                "admin_addPeer", {"address": "127.0.0.1", "udpPort": port, "tcpPort": port}, timeout=15
            )
            link.dialled = True
        except (RpcError, TransportError) as exc:
            self._incident(f"{link.dialer} could not dial {link.listener}: {exc}")

    def connect(self, a: str, b: str) -> None:
        """Link ``a`` and ``b``: restore their cut link, or add one the topology did not have."""
        with self._control_lock:
            self.node(a), self.node(b)
            key = frozenset((a, b))
            self._log.emit(CONTROL, "connect", a, peer=b)
            self._cut.discard(key)
            link = self._links.get(key)
            if link is None:
                self._edges.append((a, b))
                link = self._add_link(a, b)
            elif link.relay is not None:
                link.relay.restore()
                self._dial(link)
        self._feed_reachable()

    def disconnect(self, a: str, b: str) -> None:
        """Cut the link between ``a`` and ``b``: nothing crosses it, devp2p or blocks."""
        with self._control_lock:
            key = frozenset((a, b))
            link = self._links.get(key)
            if link is None:
                raise DevnetError(f"{a} and {b} have no link to cut; the links are {self._describe_edges()}")
            self._log.emit(CONTROL, "disconnect", a, peer=b)
            self._cut.add(key)
            if link.relay is not None:
                link.relay.cut()

    def partition(self, *groups: Sequence[str]) -> None:
        """Cut every link between nodes of different groups (a node in no group is alone)."""
        with self._control_lock:
            group_of: dict[str, int] = {}
            for index, group in enumerate(groups):
                for name in group:
                    self.node(name)
                    if name in group_of:
                        raise DevnetError(f"{name} is in two groups of the partition")
                    group_of[name] = index
            for name in self._names:
                group_of.setdefault(name, len(groups) + self._index(name))
            self._log.emit(CONTROL, "partition", "", detail=" | ".join(",".join(group) for group in groups))
            for key, link in self._links.items():
                if group_of[link.dialer] != group_of[link.listener] and key not in self._cut:
                    self._cut.add(key)
                    if link.relay is not None:
                        link.relay.cut()

    def heal(self) -> None:
        """Restore every cut link; the nodes that missed blocks get them, in order."""
        with self._control_lock:
            self._log.emit(CONTROL, "heal", "")
            for key in list(self._cut):
                link = self._links.get(key)
                if link is not None and link.relay is not None:
                    link.relay.restore()
                    self._dial(link)
            self._cut.clear()
        self._feed_reachable()

    def _describe_edges(self) -> str:
        return ", ".join(f"{a}-{b}" for a, b in self._edges) or "none"

    # -- nodes ----------------------------------------------------------------------------------
    def add_node(self, *, links: Iterable[str] | None = None) -> NetworkNode:
        """Start one more node, linked to ``links`` (default: the builder), fed the chain so far."""
        with self._control_lock:
            if not self._started:
                raise DevnetError("the network is not started; call start() first")
            name = node_name(len(self._names))
            self._names.append(name)
            self._launch([name])
            for peer in links if links is not None else [self._names[0]]:
                self.node(peer)
                self._edges.append((peer, name))
                self._add_link(peer, name)
        self._feed_reachable()
        return self.node(name)

    def stop(self, name: str) -> None:
        """Stop one node (its chain data is kept); the builder cannot be stopped."""
        with self._control_lock:
            node = self.node(name)
            if name == self._names[0]:
                raise DevnetError(
                    f"{name} builds the network's blocks and cannot be stopped; stop another node, or partition it"
                )
            self._log.emit(CONTROL, "node_stopped", name)
            with self._feed_lock:
                self._stopped.add(name)
                node.stop()

    def _start_node(self, name: str) -> None:
        with self._control_lock:
            node = self.node(name)
            if node.running:
                return
            node.start()
            with self._feed_lock:
                self._stopped.discard(name)
                self._fed[name] = self._imported_height(node)
            self._log.emit(CONTROL, "node_started", name, detail=node.rpc_url)
            for link in self._links.values():
                if name in (link.dialer, link.listener):
                    # The client forgot its peers with its process: this one dials afresh.
                    link.dialled = False
                    self._dial(link)
        self._feed_reachable()

    def _imported_height(self, node: NetworkNode) -> int:
        """How far ``node``'s chain agrees with the builder's payloads (after a restart)."""
        try:
            head = node.head()
        except (RpcError, TransportError):
            return 0
        number = int(head["number"], 16)
        with self._feed_lock:
            index = number - 1 - self._payloads_dropped
            if 0 <= index < len(self._payloads) and self._payloads[index][0]["blockHash"] == head["hash"]:
                return number
        # Not the builder's block at that height (or none kept): replay from the start; a block the
        # node already holds imports as VALID at once.
        return 0

    # -- blocks ---------------------------------------------------------------------------------
    def reachable(self) -> set[str]:
        """The running nodes the builder reaches over links that are not cut."""
        up = {name for name, node in self._nodes.items() if node.running and name not in self._stopped}
        seen = {self._names[0]} & up
        frontier = list(seen)
        while frontier:
            current = frontier.pop()
            for link in self._links.values():
                if current in (link.dialer, link.listener) and link.key not in self._cut:
                    other = link.listener if current == link.dialer else link.dialer
                    if other in up and other not in seen:
                        seen.add(other)
                        frontier.append(other)
        return seen

    def _on_block(self, payload: dict[str, Any], requests: list[str]) -> None:
        with self._feed_lock:
            number = int(payload["blockNumber"], 16)
            if number != len(self._payloads) + self._payloads_dropped + 1:
                self._incident(
                    f"the builder made block {number} after {len(self._payloads)}: the chain reorganised"
                )
            if len(self._payloads) >= MAX_PAYLOADS:
                self._payloads.pop(0)
                self._payloads_dropped += 1
            self._payloads.append((payload, list(requests)))
            self._fed[self._names[0]] = number
            self._feed_reachable_locked()

    def _feed_reachable(self) -> None:
        """Feed the nodes that became reachable the blocks they missed, in the background: the caller
        (a heal, a fault's undo) returns at once, as a network that comes back does not wait for
        its nodes to catch up; the driver's next block feeds them too."""
        threading.Thread(target=self._feed_now, name="gashammer-network-catch-up", daemon=True).start()

    def _feed_now(self) -> None:
        with self._feed_lock:
            if not self._closing.is_set():
                self._feed_reachable_locked()

    def _feed_reachable_locked(self) -> None:
        if not self._payloads:
            return
        top = len(self._payloads) + self._payloads_dropped
        for name in sorted(self.reachable() - self._detached - {self._names[0]}, key=self._index):
            if self._fed.get(name, 0) < top:
                self._catch_up(name, top)

    def _catch_up(self, name: str, top: int) -> None:
        node = self.node(name)
        engine = node.engine(timeout=60.0)
        first = self._fed.get(name, 0) + 1
        if first <= self._payloads_dropped:
            self._incident(f"{name} is {top - first + 1} blocks behind, more than the {MAX_PAYLOADS} kept")
            return
        last_hash = ""
        try:
            for number in range(first, top + 1):
                payload, requests = self._payloads[number - 1 - self._payloads_dropped]
                engine.new_payload(payload, [], ZERO_HASH, requests)
                last_hash = payload["blockHash"]
                # Each block made the head in turn: EthereumJS indexes a block's transactions when
                # it becomes canonical, and skips those of blocks passed over by one forkchoice jump
                # (their receipts are then never found by hash).
                engine.forkchoice_updated(last_hash)
                self._fed[name] = number
        except (EngineError, KeyError) as exc:
            self._log.emit(
                LIVE, "import_failed", name, number=self._fed.get(name, 0) + 1, detail=str(exc)[:200]
            )
            self._incident(f"{name} did not import block {self._fed.get(name, 0) + 1}: {str(exc)[:160]}")
            if last_hash:
                with contextlib.suppress(EngineError):
                    engine.forkchoice_updated(last_hash)
            return
        if top - first >= 1:
            self._log.emit(LIVE, "caught_up", name, number=top, detail=f"{top - first + 1} blocks imported")

    def feed_conflicting_block(self, name: str) -> str:
        """Build a block on ``name``'s own head that conflicts with the builder's (another state:
        it carries a withdrawal the builder's chain has not), make it ``name``'s head, and stop
        feeding ``name`` the builder's blocks: it has diverged. The conflicting block's hash."""
        with self._control_lock, self._feed_lock:
            if name == self._names[0]:
                raise DevnetError(
                    "the builder's chain is the network's; feed a conflicting block to another node"
                )
            node = self.node(name)
            engine = node.engine(timeout=60.0)
            head = node.head()
            from pytest_gashammer.chain.engine import payload_attributes

            attributes = payload_attributes(
                self.engine_version, timestamp=int(head["timestamp"], 16) + 1,
                prev_randao="0x" + "11" * 32, fee_recipient="0x" + "22" * 20,
                withdrawals=synthetic_withdrawals(10**9, 1), parent_beacon_block_root=ZERO_HASH,
            )  # fmt: skip
            try:
                choice = engine.forkchoice_updated(head["hash"], attributes)
                assert choice.payload_id is not None
                envelope = engine.get_payload(choice.payload_id)
                payload = envelope["executionPayload"]
                engine.new_payload(payload, [], ZERO_HASH, list(envelope.get("executionRequests") or []))
                engine.forkchoice_updated(payload["blockHash"])
            except EngineError as exc:
                raise DevnetError(f"{name} did not take a conflicting block: {exc}") from None
            self._detached.add(name)
            number = int(payload["blockNumber"], 16)
            self._log.emit(
                CONTROL,
                "conflicting_block",
                name,
                number=number,
                detail=f"{payload['blockHash']} (stateRoot {payload['stateRoot']})",
            )
            return str(payload["blockHash"])

    # -- events ---------------------------------------------------------------------------------
    def events(self) -> Subscription:
        """A subscription to the events from now on: ``for event in network.events(): ...``
        (close it, or use ``with``); ``.get(timeout)`` reads one."""
        return self._log.subscribe()

    def history(self, since: float = 0.0) -> list[NetworkEvent]:
        """Every event so far (from ``since``, unix seconds), oldest first."""
        return self._log.between(since, float("inf"))

    def events_between(self, start_unix: float, end_unix: float) -> list[NetworkEvent]:
        return self._log.between(start_unix, end_unix)

    def describe(self) -> dict[str, Any]:
        """Plain data for a dashboard: the nodes (ports, running, last head seen), the links (cut or
        not), the builder and the block interval."""
        nodes = []
        for name, node in list(self._nodes.items()):
            number, block_hash = self._heads.get(name, (None, None))
            nodes.append(
                {
                    "name": name,
                    "rpc_url": node.rpc_url if node.rpc_port is not None else None,
                    "p2p_port": node.p2p_port,
                    "pid": node.pid,
                    "container_id": node.container_id,
                    "running": node.running,
                    "head": number,
                    "head_hash": block_hash,
                    "fed_to": self._fed.get(name),
                    "diverged": name in self._detached,
                }
            )
        links = [{"a": a, "b": b, "cut": frozenset((a, b)) in self._cut} for a, b in self._edges]
        return {
            "builder": self._names[0] if self._names else None,
            "topology": self.topology,
            "image": self.image_tag,
            "block_interval": self.block_interval,
            "blocks_built": len(self._payloads) + self._payloads_dropped,
            "nodes": nodes,
            "links": links,
        }

    def forward_events(self, publish: Callable[[str, dict[str, Any]], Any]) -> None:
        """Call ``publish("network.<kind>", event)`` for every event from now on, from a daemon
        thread, until the network closes (the live API serves them)."""
        subscription = self._log.subscribe()
        self._forwarders.append(subscription)

        def forward() -> None:
            for event in subscription:
                try:
                    publish(f"network.{event.kind}", event.as_dict())
                except Exception:  # a listener that fails must not stop the network's watcher
                    logger.exception("network: forwarding event %s failed", event.kind)

        threading.Thread(target=forward, name="gashammer-network-events", daemon=True).start()

    def incidents(self) -> list[str]:
        """What the network had to do or could not (a dial that failed, a block a node did not
        import) and the driver's failed builds, oldest first, for runs to report as notes."""
        driver = self._driver
        return list(driver.incidents if driver is not None else []) + list(self._incidents)

    def _incident(self, message: str) -> None:
        if len(self._incidents) < 200:
            self._incidents.append(f"network: {message}")

    def _watch(self) -> None:
        heads: dict[str, str] = {}
        peers: dict[frozenset[str], bool] = {}
        syncing: dict[str, bool] = {}
        running: dict[str, bool] = {}
        next_peer_poll = 0.0
        while not self._closing.wait(HEAD_POLL_SECONDS):
            for name, node in list(self._nodes.items()):
                alive = node.running
                if running.get(name, True) and not alive and name not in self._stopped:
                    last_lines = node.log_tail(200).strip().splitlines()
                    self._log.emit(LIVE, "node_exited", name, detail=last_lines[-1] if last_lines else "")
                running[name] = alive
                if not alive:
                    continue
                try:
                    head = node.head()
                except (RpcError, TransportError):
                    continue
                if heads.get(name) != head["hash"]:
                    heads[name] = str(head["hash"])
                    self._heads[name] = (int(head["number"], 16), str(head["hash"]))
                    self._log.emit(
                        LIVE, "head", name, number=int(head["number"], 16), detail=str(head["hash"])
                    )
            if time.monotonic() < next_peer_poll:
                continue
            next_peer_poll = time.monotonic() + PEER_POLL_SECONDS
            self._poll_peers(peers, syncing)

    def _poll_peers(self, peers: dict[frozenset[str], bool], syncing: dict[str, bool]) -> None:
        by_id = {node.node_id: name for name, node in self._nodes.items() if node.node_id}
        seen: dict[str, set[str]] = {}
        for name, node in list(self._nodes.items()):
            if not node.running:
                seen[name] = set()
                continue
            try:
                answer = node.rpc("admin_peers", timeout=5)
                state = node.rpc("eth_syncing", timeout=5)
            except (RpcError, TransportError):
                continue
            seen[name] = {
                by_id.get(str(peer.get("id", "")), "") for peer in answer or [] if isinstance(peer, dict)
            }
            is_syncing = bool(state)
            if syncing.get(name, False) != is_syncing:
                syncing[name] = is_syncing
                self._log.emit(LIVE, "syncing" if is_syncing else "synced", name)
        for link in list(self._links.values()):
            # The listener's view: the dialer's keeps a stale entry for a peer it once dialled.
            if link.listener not in seen:
                continue
            connected = link.dialer in seen[link.listener]
            if peers.get(link.key, False) != connected:
                peers[link.key] = connected
                self._log.emit(
                    LIVE, "peer_connected" if connected else "peer_dropped", link.listener, peer=link.dialer
                )

    # -- snapshots ------------------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        """Plain data: genesis, nodes, topology and every block built so far (the payloads)."""
        with self._feed_lock:
            if self._payloads_dropped:
                raise DevnetError(
                    f"the network's first {self._payloads_dropped} blocks are no longer kept (only the last "
                    f"{MAX_PAYLOADS}); snapshot a shorter chain"
                )
            payloads: list[dict[str, Any]] = [
                {"payload": payload, "requests": requests} for payload, requests in self._payloads
            ]
        return {
            "format": SNAPSHOT_FORMAT,
            "fork": self.fork,
            "chain_id": self.chain_id,
            "genesis": self.genesis,
            "nodes": list(self._names),
            "edges": [list(edge) for edge in self._edges],
            "block_interval": self.block_interval,
            "payloads": payloads,
            "head": payloads[-1]["payload"]["blockHash"] if payloads else None,
        }

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write :meth:`snapshot` to ``path`` as JSON."""
        target = Path(path)
        target.write_text(json.dumps(self.snapshot()))
        return target

    @classmethod
    def load(
        cls,
        snapshot: dict[str, Any] | str | os.PathLike[str],
        *,
        workdir: Path | None = None,
        image: str | None = None,
    ) -> Network:
        """A fresh network with the snapshot's nodes and topology, its chain replayed into every
        node, and the driver building on from its head. Raises when the head hashes differ. The
        nodes run on this machine, or from ``image`` (as for a new :class:`Network`)."""
        data = _read_snapshot(snapshot)
        network = cls(
            len(data["nodes"]), topology=[tuple(edge) for edge in data["edges"]],
            block_interval=float(data["block_interval"]), fork=str(data["fork"]), workdir=workdir, image=image,
        )  # fmt: skip
        network.genesis = data["genesis"]
        network._payloads = [
            (entry["payload"], list(entry.get("requests") or [])) for entry in data["payloads"]
        ]
        network.start()
        return network

    def _replay_loaded_chain(self) -> None:
        """Import the loaded chain into every node before the driver builds on it."""
        top = len(self._payloads)
        with self._feed_lock:
            for name in self._names:
                self._fed[name] = 0
                self._catch_up(name, top)
            expected = self._payloads[-1][0]["blockHash"]
            for node in self.nodes:
                got = node.head()["hash"]
                if got != expected:
                    raise DevnetError(
                        f"{node.name} is at {got} after the snapshot's replay, not its head {expected}"
                    )

    # -- steps ----------------------------------------------------------------------------------
    def run(self, step: Any, *, check: bool = True) -> Any:
        """Run a :class:`~pytest_gashammer.network.steps.Step`; its
        :class:`~pytest_gashammer.network.steps.StepResult`. A failed step raises
        :class:`~pytest_gashammer.network.steps.StepFailed` (an AssertionError with the per-node
        table) unless ``check=False``."""
        from pytest_gashammer.network.steps import run_step

        return run_step(self, step, check=check)

    def __repr__(self) -> str:
        return f"<Network {len(self._names)} nodes {self.topology} every {self.block_interval:g} s>"


def _read_snapshot(snapshot: dict[str, Any] | str | os.PathLike[str]) -> dict[str, Any]:
    if isinstance(snapshot, dict):
        data = snapshot
    else:
        path = Path(snapshot)
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise ConfigError(
                f"{path}: not a network snapshot ({exc}); write one with network.save(path)"
            ) from None
    if not isinstance(data, dict) or data.get("format") != SNAPSHOT_FORMAT:
        raise ConfigError(
            f"not a network snapshot of format {SNAPSHOT_FORMAT}; write one with network.save(path)"
        )
    missing = [
        key for key in ("genesis", "nodes", "edges", "payloads", "fork", "block_interval") if key not in data
    ]
    if missing:
        raise ConfigError(
            f"the network snapshot lacks {', '.join(missing)}; write one with network.save(path)"
        )
    return data
