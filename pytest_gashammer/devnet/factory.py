"""Choosing and opening the devnet backend from the session's options."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from pytest_gashammer.devnet.base import Devnet
from pytest_gashammer.errors import DevnetError
from pytest_gashammer.options import (
    CONTAINER_BACKENDS,
    CONTAINER_COMMAND,
    CONTAINER_READY,
    DEVNET,
    DEVNET_BACKENDS,
    NODE_HISTORY,
    NODE_HISTORY_MODES,
    RPC_URL,
    backend_kind,
)

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
    #: ``--gashammer-container-command`` / ``--gashammer-container-ready`` (container backends only).
    container_command: str | None = None
    container_ready: str | None = None
    #: Where a container devnet saves its containers' logs at close (None: in its work directory).
    log_dir: Path | None = None


def backend_choices() -> str:
    """The ``--gashammer-devnet`` values, for messages: ``container`` is written ``container:IMAGE``."""
    return ", ".join("container:IMAGE" if name == "container" else name for name in DEVNET_BACKENDS)


def open_devnet(options: DevnetOptions) -> Devnet:
    """An external endpoint when ``rpc_url`` is set, else a started devnet of ``options.backend``."""
    kind = backend_kind(options.backend)
    if kind not in DEVNET_BACKENDS or options.backend == "container":
        raise DevnetError(
            f"{DEVNET} {options.backend!r} is not a devnet backend; use one of {backend_choices()}"
        )
    if (options.container_command or options.container_ready) and kind not in CONTAINER_BACKENDS:
        given = CONTAINER_COMMAND if options.container_command else CONTAINER_READY
        raise DevnetError(
            f"{given} is for a devnet in a container; pass {DEVNET} container:IMAGE (or nitro), or drop it"
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
    if kind in CONTAINER_BACKENDS:
        return _open_container_devnet(options)
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


def _open_container_devnet(options: DevnetOptions) -> Devnet:
    from pytest_gashammer.devnet.container import ContainerDevnet, resolve_spec

    spec = resolve_spec(
        options.backend,
        command=options.container_command,
        ready=options.container_ready,
        funder_key=options.funder_key,
    )
    devnet = ContainerDevnet(spec, workdir=options.workdir, log_dir=options.log_dir).start()
    if options.expected_chain_id is not None and options.expected_chain_id != devnet.chain_id:
        devnet.close()
        raise DevnetError(
            f"--gashammer-chain-id {options.expected_chain_id} does not match the {devnet.kind} devnet's "
            f"{devnet.chain_id} ({spec.image}); drop the option or run another image"
        )
    return devnet
