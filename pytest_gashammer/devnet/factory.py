"""Choosing and opening the devnet backend from the session's options."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from pytest_gashammer.devnet.base import Devnet
from pytest_gashammer.errors import DevnetError
from pytest_gashammer.options import DEVNET, DEVNET_BACKENDS, NODE_HISTORY, NODE_HISTORY_MODES, RPC_URL

if TYPE_CHECKING:
    from pytest_gashammer.devnet.embedded import EmbeddedDevnet
    from pytest_gashammer.devnet.ethereumjs import EthereumJSDevnet


@dataclass(frozen=True)
class DevnetOptions:
    rpc_url: str | None = None
    ws_url: str | None = None
    feed_url: str | None = None
    funder_key: str | None = None
    expected_chain_id: int | None = None
    allowed_chain_ids: frozenset[int] = field(default_factory=frozenset)
    anvil: str | None = None
    workdir: Path | None = None
    backend: str = DEVNET_BACKENDS[0]
    #: ``--gashammer-node-history``: auto, full or pruned (the embedded devnet only).
    node_history: str = NODE_HISTORY_MODES[0]
    #: The longest sending time (s) among the session's planned runs; None when none was planned.
    longest_run: float | None = None


def open_devnet(options: DevnetOptions) -> Devnet:
    """An external endpoint when ``rpc_url`` is set, else a started devnet of ``options.backend``."""
    if options.backend not in DEVNET_BACKENDS:
        raise DevnetError(
            f"{DEVNET} {options.backend!r} is not a devnet backend; use one of {', '.join(DEVNET_BACKENDS)}"
        )
    if options.rpc_url and options.backend != DEVNET_BACKENDS[0]:
        raise DevnetError(
            f"{DEVNET} {options.backend} starts a local node, {RPC_URL} names another; drop one of them"
        )
    if options.node_history != NODE_HISTORY_MODES[0] and (options.rpc_url or options.backend != "embedded"):
        target = RPC_URL if options.rpc_url else f"{DEVNET} {options.backend}"
        raise DevnetError(
            f"{NODE_HISTORY} {options.node_history} sets the history of the embedded anvil devnet; "
            f"{target} is another node. Drop one of them"
        )
    if options.rpc_url:
        if not options.funder_key:
            raise DevnetError(
                "--gashammer-rpc-url needs a funded account: pass --gashammer-funder-key KEY or set GASHAMMER_FUNDER_KEY"
            )
        from pytest_gashammer.devnet.external import ExternalDevnet

        return ExternalDevnet(
            options.rpc_url,
            options.funder_key,
            ws_url=options.ws_url,
            feed_url=options.feed_url,
            expected_chain_id=options.expected_chain_id,
            allowed_chain_ids=set(options.allowed_chain_ids),
        )
    if options.feed_url:
        raise DevnetError(
            f"--gashammer-feed-url is for an external node's feed; the {options.backend} devnet does not take one. "
            "Pass --gashammer-rpc-url too, or drop the option"
        )
    devnet: EmbeddedDevnet | EthereumJSDevnet
    if options.backend == "ethereumjs":
        from pytest_gashammer.devnet.ethereumjs import EthereumJSDevnet

        devnet = EthereumJSDevnet(workdir=options.workdir)
    else:
        from pytest_gashammer.devnet.anvil import choose_history
        from pytest_gashammer.devnet.embedded import EmbeddedDevnet

        history = choose_history(options.node_history, options.longest_run)
        devnet = EmbeddedDevnet(anvil_path=options.anvil, workdir=options.workdir, history=history)
    if options.expected_chain_id is not None and options.expected_chain_id != devnet.chain_id:
        raise DevnetError(
            f"--gashammer-chain-id {options.expected_chain_id} does not match the {devnet.kind} devnet's "
            f"{devnet.chain_id}; drop the option or point --gashammer-rpc-url at that chain"
        )
    return devnet.start()
