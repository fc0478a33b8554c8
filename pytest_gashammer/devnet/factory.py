"""Choosing and opening the devnet backend from the session's options."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from pytest_gashammer.devnet.base import Devnet
from pytest_gashammer.errors import DevnetError
from pytest_gashammer.options import (
    BATCH_INTERVAL,
    CONTAINER_BACKENDS,
    CONTAINER_COMMAND,
    CONTAINER_READY,
    DEVNET,
    DEVNET_BACKENDS,
    ENGINE_URL,
    FUNDER_KEY,
    JWT_SECRET,
    L1_URL,
    NO_L1,
    NODE_HISTORY,
    NODE_HISTORY_MODES,
    ROLLUP,
    RPC_URL,
    SEQUENCER_INBOX,
    backend_kind,
)

if TYPE_CHECKING:
    from pytest_gashammer.devnet.embedded import EmbeddedDevnet
    from pytest_gashammer.devnet.ethereumjs import EthereumJSDevnet
    from pytest_gashammer.l1.endpoint import L1Endpoint


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
    #: The embedded devnet starts its own L1 (``--gashammer-no-l1`` clears it).
    l1: bool = True
    #: ``--gashammer-l1-url`` / ``--gashammer-sequencer-inbox`` / ``--gashammer-rollup``: an L1 the
    #: plugin does not start, for any backend.
    l1_url: str | None = None
    sequencer_inbox: str | None = None
    rollup: str | None = None
    #: ``--gashammer-batch-interval``: seconds between the embedded batch poster's batches (None: its default).
    batch_interval: float | None = None
    #: ``--gashammer-engine-url`` / ``--gashammer-jwt-secret``: the Engine API of the node of ``rpc_url``,
    #: whose blocks the plugin's consensus driver then builds.
    engine_url: str | None = None
    jwt_secret: str | None = None


def backend_choices() -> str:
    """The ``--gashammer-devnet`` values, for messages: ``container`` is written ``container:IMAGE``."""
    return ", ".join("container:IMAGE" if name == "container" else name for name in DEVNET_BACKENDS)


def open_devnet(options: DevnetOptions) -> Devnet:
    """An external endpoint when ``rpc_url`` is set, else a started devnet of ``options.backend``."""
    kind = backend_kind(options.backend)
    if kind == "network":
        raise DevnetError(
            "a network devnet is opened by pytest_gashammer.network.NetworkDevnet.open (the hive does it for "
            "--gashammer-devnet network)"
        )
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
    check_l1_options(options)
    problem = engine_options_problem(options.engine_url, options.jwt_secret, options.rpc_url)
    if problem is not None:
        raise DevnetError(problem)
    if options.rpc_url and not options.funder_key:
        raise DevnetError(
            "--gashammer-rpc-url needs a funded account: pass --gashammer-funder-key KEY or set GASHAMMER_FUNDER_KEY"
        )
    if options.feed_url and not options.rpc_url:
        raise DevnetError(
            f"--gashammer-feed-url is for an external node's feed; the {options.backend} devnet does not take one. "
            "Pass --gashammer-rpc-url too, or drop the option"
        )
    named = _read_named_l1(options)
    if options.engine_url:
        return _open_engine_target(options, named)
    if options.rpc_url:
        from pytest_gashammer.devnet.external import ExternalDevnet

        assert options.funder_key is not None  # checked above
        external = ExternalDevnet(
            options.rpc_url,
            options.funder_key,
            ws_url=options.ws_url,
            feed_url=options.feed_url,
            expected_chain_id=options.expected_chain_id,
            allowed_chain_ids=set(options.allowed_chain_ids),
        )
        external.use_l1(named)
        return external
    if kind in CONTAINER_BACKENDS:
        container = _open_container_devnet(options)
        container.use_l1(named)
        return container
    devnet: EmbeddedDevnet | EthereumJSDevnet
    if options.backend == "ethereumjs":
        from pytest_gashammer.devnet.ethereumjs import EthereumJSDevnet

        devnet = EthereumJSDevnet(workdir=options.workdir)
    else:
        from pytest_gashammer.devnet.anvil import choose_history
        from pytest_gashammer.devnet.embedded import EmbeddedDevnet
        from pytest_gashammer.devnet.l1_chain import DEFAULT_BATCH_INTERVAL

        history = choose_history(options.node_history, options.longest_run)
        devnet = EmbeddedDevnet(
            anvil_path=options.anvil,
            workdir=options.workdir,
            history=history,
            l1=options.l1 and named is None,
            batch_interval=options.batch_interval or DEFAULT_BATCH_INTERVAL,
        )
    if options.expected_chain_id is not None and options.expected_chain_id != devnet.chain_id:
        raise DevnetError(
            f"--gashammer-chain-id {options.expected_chain_id} does not match the {devnet.kind} devnet's "
            f"{devnet.chain_id}; drop the option or point --gashammer-rpc-url at that chain"
        )
    devnet.use_l1(named)
    return devnet.start()


def engine_options_problem(engine_url: str | None, jwt_secret: str | None, rpc_url: str | None) -> str | None:
    """What is wrong with the Engine API options together (one line), None when nothing is."""
    if jwt_secret and not engine_url:
        return f"{JWT_SECRET} is the secret of the node of {ENGINE_URL}; pass {ENGINE_URL} too, or drop {JWT_SECRET}"
    if not engine_url:
        return None
    missing = [name for name, value in ((RPC_URL, rpc_url), (JWT_SECRET, jwt_secret)) if not value]
    if missing:
        return (
            f"{ENGINE_URL} needs {' and '.join(missing)}: the plugin builds the blocks of the node whose "
            f"JSON-RPC is {RPC_URL}, with the JWT secret file in {JWT_SECRET} (and funds senders with {FUNDER_KEY})"
        )
    return None


def _open_engine_target(options: DevnetOptions, named: L1Endpoint | None) -> Devnet:
    from pytest_gashammer.devnet.engine_target import EngineTargetDevnet, read_jwt_secret

    assert options.engine_url and options.jwt_secret and options.rpc_url and options.funder_key  # checked
    if options.feed_url:
        raise DevnetError(
            f"--gashammer-feed-url is a Nitro node's feed; {ENGINE_URL} names an execution client. Drop one of them"
        )
    target = EngineTargetDevnet(
        options.rpc_url,
        options.engine_url,
        read_jwt_secret(options.jwt_secret),
        options.funder_key,
        ws_url=options.ws_url,
        expected_chain_id=options.expected_chain_id,
        allowed_chain_ids=set(options.allowed_chain_ids),
    )
    target.use_l1(named)
    return target.start()


def check_l1_options(options: DevnetOptions) -> None:
    """The L1 options fit together and the backend (reads nothing); a one-line DevnetError otherwise."""
    embedded = options.backend == DEVNET_BACKENDS[0] and not options.rpc_url
    target = RPC_URL if options.rpc_url else f"{DEVNET} {options.backend}"
    if not options.l1_url:
        given = SEQUENCER_INBOX if options.sequencer_inbox else ROLLUP if options.rollup else None
        if given is not None:
            raise DevnetError(
                f"{given} names a contract on the L1 of {L1_URL}; pass {L1_URL} too, or drop {given}"
            )
    elif not options.sequencer_inbox:
        raise DevnetError(f"{L1_URL} needs {SEQUENCER_INBOX} ADDR, the rollup's SequencerInbox on that L1")
    elif not options.l1:
        raise DevnetError(f"{NO_L1} and {L1_URL} both say where the L1 is; drop one of them")
    if not options.l1 and not embedded:
        raise DevnetError(
            f"{NO_L1} turns off the embedded devnet's own L1; {target} starts none. Drop {NO_L1}"
        )
    if options.batch_interval is not None:
        runs_none = (
            target if not embedded else NO_L1 if not options.l1 else L1_URL if options.l1_url else None
        )
        if runs_none is not None:
            raise DevnetError(
                f"{BATCH_INTERVAL} paces the embedded devnet's batch poster; with {runs_none} none runs. "
                f"Drop {BATCH_INTERVAL}"
            )
        if not options.batch_interval > 0:
            raise DevnetError(
                f"{BATCH_INTERVAL} {options.batch_interval!r} must be a positive number of seconds"
            )


def _read_named_l1(options: DevnetOptions) -> L1Endpoint | None:
    if not options.l1_url or not options.sequencer_inbox:
        return None
    from pytest_gashammer.devnet.l1_chain import named_l1

    return named_l1(options.l1_url, options.sequencer_inbox, options.rollup)


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
