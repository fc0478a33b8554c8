"""A network as a load test's devnet: the builder's endpoint, every node's URL, network faults."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pytest_gashammer.devnet.base import Devnet, Funder
from pytest_gashammer.devnet.control import NetworkControl
from pytest_gashammer.network.network import Network
from pytest_gashammer.results import NetworkEvent


class NetworkDevnet(Devnet):
    """Loads go to the builder (``rpc_url``) or to the nodes of :meth:`node_urls`; the network's
    controls are the fault layer's :meth:`network_control`."""

    kind = "network"

    def __init__(self, network: Network) -> None:
        super().__init__()
        self.network = network

    @classmethod
    def open(
        cls,
        *,
        nodes: int,
        topology: Any = "mesh",
        block_interval: float = 1.0,
        workdir: Path | None = None,
        image: str | None = None,
    ) -> NetworkDevnet:
        network = Network(
            nodes, topology=topology, block_interval=block_interval, workdir=workdir, image=image
        )
        return cls(network.start())

    @property
    def rpc_url(self) -> str:
        return self.network.rpc_url

    @property
    def ws_url(self) -> None:
        return None  # the client's WebSocket server ignores its address option: never enabled

    @property
    def chain_id(self) -> int:
        return self.network.chain_id

    @property
    def funder(self) -> Funder:
        return self.network.funder

    @property
    def node_version(self) -> str:
        return self.network.builder.client_version or super().node_version

    @property
    def consensus(self) -> Any:
        return self.network.consensus

    def node_urls(self) -> dict[str, str]:
        return {node.name: node.rpc_url for node in self.network.nodes}

    def network_control(self) -> NetworkControl:
        return self.network

    def network_events_between(self, start_unix: float, end_unix: float) -> list[NetworkEvent]:
        return self.network.events_between(start_unix, end_unix)

    def incidents(self) -> list[str]:
        return self.network.incidents()

    def log_tail(self, lines: int = 60) -> str:
        parts = []
        for node in self.network.nodes:
            tail = node.log_tail().strip().splitlines()[-max(1, lines // max(1, len(self.network.nodes))) :]
            parts.append(f"--- {node.name} ---\n" + "\n".join(tail))
        return "\n".join(parts)

    def close(self) -> None:
        self.network.close()

    def __repr__(self) -> str:
        return f"<NetworkDevnet {self.network!r}>"
