"""The devnet interface every backend implements (embedded anvil, external endpoint, containers)."""

from __future__ import annotations

import abc
import dataclasses
import socket
from typing import TYPE_CHECKING, Any

from pytest_gashammer.l1.endpoint import L1Endpoint

if TYPE_CHECKING:
    from pytest_gashammer.devnet.control import NetworkControl, NodeControl
    from pytest_gashammer.l1.poster import BatchPoster
    from pytest_gashammer.results import NetworkEvent

#: Chain id of Nitro's ``--dev`` chain (``arb-dev-test``); the embedded devnet uses it too.
NITRO_DEV_CHAIN_ID = 412346

#: The account ``nitro --dev`` funds at genesis. Public knowledge, a devnet key only.
NITRO_DEV_ADDRESS = "0x3f1Eae7D46d88F08fc2F8ed27FCb2AB183EB2d0E"
NITRO_DEV_KEY = "0xb6b15c8cb491557369f3c7d2c287b053eb229daa9c22138887752191c9520659"
#: What the funder holds on the devnets the plugin starts (anvil sets it, EthereumJS's genesis has it).
FUNDER_BALANCE_WEI = 10**6 * 10**18

#: Public mainnets. A run against one of these needs ``--gashammer-allow-chain-id``.
MAINNET_CHAIN_IDS: dict[int, str] = {
    1: "Ethereum",
    10: "OP Mainnet",
    25: "Cronos",
    56: "BNB Smart Chain",
    100: "Gnosis",
    137: "Polygon PoS",
    250: "Fantom",
    252: "Fraxtal",
    324: "zkSync Era",
    1101: "Polygon zkEVM",
    5000: "Mantle",
    8453: "Base",
    34443: "Mode",
    42161: "Arbitrum One",
    42170: "Arbitrum Nova",
    42220: "Celo",
    43114: "Avalanche C-Chain",
    59144: "Linea",
    81457: "Blast",
    534352: "Scroll",
    660279: "Xai",
    7777777: "Zora",
}


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free on ``host`` right now (a backend retries when another process takes it first)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


@dataclasses.dataclass(frozen=True)
class Funder:
    """The account that pays for a run: ``address`` and ``key`` as 0x-hex strings."""

    address: str
    key: str

    def __repr__(self) -> str:  # keep keys out of logs and tracebacks
        return f"Funder(address={self.address!r}, key='0x…')"


class IncidentLog:
    """The incidents of a devnet's parts in the order the devnet first read them: append-only, so a run
    takes what came after its own start by count (each part's list only grows)."""

    def __init__(self) -> None:
        self._lines: list[str] = []
        self._taken: dict[str, int] = {}

    def read(self, **parts: list[str]) -> list[str]:
        """Take in what each named part added since the last read; all lines so far, oldest first."""
        for name, lines in parts.items():
            taken = self._taken.get(name, 0)
            if len(lines) < taken:  # the part was replaced (a restarted node's new watch): all new
                taken = 0
            self._lines.extend(lines[taken:])
            self._taken[name] = len(lines)
        return list(self._lines)


class Devnet(abc.ABC):
    """A chain the plugin can load: endpoints, identity and a funded account.

    Backends: :class:`~pytest_gashammer.devnet.embedded.EmbeddedDevnet` (anvil, default),
    :class:`~pytest_gashammer.devnet.ethereumjs.EthereumJSDevnet` (a real execution client),
    :class:`~pytest_gashammer.devnet.container.ContainerDevnet` (a node in a container: Nitro, any
    image) and :class:`~pytest_gashammer.devnet.external.ExternalDevnet` (any endpoint).
    """

    kind: str = "abstract"

    def __init__(self) -> None:
        self._web3: Any = None
        self._named_l1: L1Endpoint | None = None

    @property
    @abc.abstractmethod
    def rpc_url(self) -> str: ...

    @property
    @abc.abstractmethod
    def ws_url(self) -> str | None: ...

    @property
    @abc.abstractmethod
    def chain_id(self) -> int: ...

    @property
    @abc.abstractmethod
    def funder(self) -> Funder: ...

    @property
    def feed_url(self) -> str | None:
        return None

    @property
    def l1(self) -> L1Endpoint | None:
        """The rollup's L1: where its batches land (:class:`~pytest_gashammer.l1.endpoint.L1Endpoint`),
        or None where the devnet has none.

        None by default; an L1 the options name (``--gashammer-l1-url``) for any backend
        (:meth:`use_l1`, ``owned=False``); the embedded devnet's own L1 (``owned=True``).
        """
        return self._named_l1

    def use_l1(self, endpoint: L1Endpoint | None) -> None:
        """Name an L1 the plugin did not start as this devnet's :attr:`l1`."""
        self._named_l1 = endpoint

    @property
    def batch_poster(self) -> BatchPoster | None:
        """The batch poster feeding :attr:`l1`, where this process runs one (the embedded devnet's)."""
        return None

    @property
    def node_version(self) -> str:
        from pytest_gashammer.chain.rpc import RpcError, TransportError, call

        try:
            return str(call(self.rpc_url, "web3_clientVersion", timeout=5))
        except (RpcError, TransportError):
            return "unknown"

    @property
    def web3(self) -> Any:
        """A web3.py ``Web3`` on :attr:`rpc_url`, for the test's own assertions."""
        if self._web3 is None:
            from web3 import Web3

            from pytest_gashammer._version import request_headers

            headers = {"Content-Type": "application/json", **request_headers()}
            provider = Web3.HTTPProvider(self.rpc_url, request_kwargs={"headers": headers, "timeout": 30})
            self._web3 = Web3(provider)
        return self._web3

    def endpoints(self) -> dict[str, Any]:
        """Plain-data description another process needs to use this devnet (funder included)."""
        return {
            "kind": self.kind,
            "rpc_url": self.rpc_url,
            "ws_url": self.ws_url,
            "feed_url": self.feed_url,
            "chain_id": self.chain_id,
            "funder_address": self.funder.address,
            "funder_key": self.funder.key,
            "node_version": self.node_version,
            "l1": self.l1.as_dict() if self.l1 is not None else None,
            "node_urls": self.node_urls(),
        }

    def incidents(self) -> list[str]:
        """What the backend itself had to do during runs, oldest first, for runs to report as notes.

        The embedded devnet records each time it re-admitted transactions anvil stranded in its
        pool, the EthereumJS devnet each block its consensus driver failed to build; a run's result
        carries the incidents that happened while it ran.
        """
        return []

    def notes(self) -> list[str]:
        """What holds for every run on this devnet and changes what it can answer, for each run's notes.

        The embedded devnet says when it prunes its history (long sessions): the node then forgets
        old blocks' transactions and states, which a test's own queries may run into.
        """
        return []

    def log_tail(self, lines: int = 60) -> str:
        """The last ``lines`` lines of the node's own log, for a failing test's report; '' when the
        backend keeps none worth showing (container devnets return the containers' output)."""
        return ""

    def node_control(self) -> NodeControl | None:
        """Pause, restart and mining controls of the node, for node faults; ``None`` when the
        plugin does not run the node (an external endpoint, a worker's view of the hive's devnet).

        See :mod:`pytest_gashammer.devnet.control`; each backend's control says what it supports.
        """
        return None

    def network_control(self) -> NetworkControl | None:
        """Partition, link and node controls of a multi-node devnet, for network faults; ``None``
        for a single node (:class:`~pytest_gashammer.devnet.control.NetworkControl`)."""
        return None

    def node_urls(self) -> dict[str, str]:
        """Each node's JSON-RPC URL by name (``node0``...) when the devnet has several nodes; an
        empty mapping for a single node. The first is the node the devnet's :attr:`rpc_url` names."""
        return {}

    def network_events_between(self, start_unix: float, end_unix: float) -> list[NetworkEvent]:
        """The network's events in ``[start_unix, end_unix]``, oldest first (none for a single node)."""
        return []

    def close(self) -> None:  # noqa: B027 - backends that start nothing have nothing to release
        """Release what the backend started. Safe to call more than once."""

    def __enter__(self) -> Devnet:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class SharedDevnet(Devnet):
    """A devnet another process owns (the hive), described by its :meth:`Devnet.endpoints`."""

    def __init__(self, endpoints: dict[str, Any]) -> None:
        super().__init__()
        self._endpoints = dict(endpoints)
        self.kind = str(endpoints["kind"])
        self._funder = Funder(str(endpoints["funder_address"]), str(endpoints["funder_key"]))
        l1 = endpoints.get("l1")
        self.use_l1(L1Endpoint.from_dict(l1) if l1 else None)

    @property
    def rpc_url(self) -> str:
        return str(self._endpoints["rpc_url"])

    @property
    def ws_url(self) -> str | None:
        return self._endpoints.get("ws_url")

    @property
    def feed_url(self) -> str | None:
        return self._endpoints.get("feed_url")

    @property
    def chain_id(self) -> int:
        return int(self._endpoints["chain_id"])

    @property
    def funder(self) -> Funder:
        return self._funder

    @property
    def node_version(self) -> str:
        return str(self._endpoints.get("node_version") or "unknown")

    def node_urls(self) -> dict[str, str]:
        return dict(self._endpoints.get("node_urls") or {})

    def __repr__(self) -> str:
        return f"<SharedDevnet {self.kind} rpc_url={self.rpc_url!r} chain_id={self.chain_id}>"
