"""pytest glue: options, the ``gashammer`` marker, fixtures and hooks. Nothing heavy is imported here.

The parts live in their own subpackages (scenario, devnet, edge, workload, hive, oracle,
telemetry, report); this module wires them to pytest and imports them lazily, so that a test
session that never touches a chain pays nothing for having the plugin installed.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Generator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from pytest_gashammer import options
from pytest_gashammer.errors import ConfigError, GashammerError, did_you_mean
from pytest_gashammer.scenario.files import FileScenario, is_scenario_file
from pytest_gashammer.scenario.spec import (
    ACCEPTED,
    MARKER,
    ScenarioSpec,
    default_seed,
    parse_spec,
    planned_seconds,
)

if TYPE_CHECKING:
    from pytest_gashammer.devnet.base import Devnet
    from pytest_gashammer.hive.base import Hive, ProgressSink
    from pytest_gashammer.hive.hammer import Hammer

SPEC_KEY = pytest.StashKey[ScenarioSpec | None]()
SPEC_ERROR_KEY = pytest.StashKey[str]()
RUNS_KEY = pytest.StashKey["list[dict[str, Any]]"]()
SESSION_KEY = pytest.StashKey[Any]()
NETWORK_MARKER = options.NETWORK_MARKER
#: The regression gate's failures of a test's runs (criterion-like tables), for its report.
GATE_KEY = pytest.StashKey["list[str]"]()


# ----------------------------------------------------------------------------------------------
# options


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a number; use e.g. 0.1 to run 10x shorter"
        ) from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be greater than zero, e.g. 0.1")
    return value


def _non_negative_int(text: str) -> int:
    try:
        value = int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be zero or more")
    return value


def _devnet_backend(text: str) -> str:
    kind = options.backend_kind(text)
    if kind not in options.DEVNET_BACKENDS or text == "container" or text.rstrip() == "container:":
        choices = ["container:IMAGE" if name == "container" else name for name in options.DEVNET_BACKENDS]
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a devnet backend; use {', '.join(choices[:-1])} or {choices[-1]}"
        )
    return text


def _network_nodes(text: str) -> int:
    value = _positive_int(text)
    if not 2 <= value <= 16:
        raise argparse.ArgumentTypeError(f"{text!r}: a network has 2 to 16 nodes")
    return value


def _node_history(text: str) -> str:
    if text not in options.NODE_HISTORY_MODES:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a history mode; use {', '.join(options.NODE_HISTORY_MODES)}"
        )
    return text


def _l1_url(text: str) -> str:
    from pytest_gashammer.l1.endpoint import l1_url_problem

    problem = l1_url_problem(text)
    if problem is not None:
        raise argparse.ArgumentTypeError(problem)
    return text.strip()


def _address(text: str) -> str:
    from pytest_gashammer.l1.endpoint import address_problem

    problem = address_problem(text)
    if problem is not None:
        raise argparse.ArgumentTypeError(problem)
    return text.strip()


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds, e.g. 0.5") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} must be a positive number of seconds, e.g. 0.5")
    return value


def _positive_int(text: str) -> int:
    value = _non_negative_int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be 1 or more, e.g. 3")
    return value


def _baseline_name(text: str) -> str:
    from pytest_gashammer.compare.thresholds import baseline_name_problem

    problem = baseline_name_problem(text)
    if problem is not None:
        raise argparse.ArgumentTypeError(problem)
    return text


def _thresholds(text: str) -> Any:
    from pytest_gashammer.compare.thresholds import parse_thresholds

    try:
        return parse_thresholds(text)
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _serve_bind(text: str) -> str:
    from pytest_gashammer.serve.bind import parse_bind

    try:
        parse_bind(text)
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("gashammer", "gas-rate load tests for EVM rollups")
    group.addoption(
        options.SEED,
        type=_non_negative_int,
        default=None,
        metavar="INT",
        help="seed for every scenario without seed=... (default: derived from each test's id)",
    )
    group.addoption(
        options.DURATION_SCALE,
        type=_positive_float,
        default=1.0,
        metavar="FACTOR",
        help="multiply every phase duration, e.g. 0.1 for quick PR runs (default 1)",
    )
    group.addoption(
        options.RPC_URL,
        default=os.environ.get("GASHAMMER_RPC_URL"),
        metavar="URL",
        help="load this JSON-RPC endpoint instead of the embedded devnet (env GASHAMMER_RPC_URL)",
    )
    group.addoption(
        options.WS_URL,
        default=os.environ.get("GASHAMMER_WS_URL"),
        metavar="URL",
        help="WebSocket endpoint of the external node for newHeads (env GASHAMMER_WS_URL)",
    )
    group.addoption(
        options.FEED_URL,
        default=os.environ.get("GASHAMMER_FEED_URL"),
        metavar="URL",
        help="sequencer feed of the external node, e.g. ws://host:9642 (env GASHAMMER_FEED_URL)",
    )
    group.addoption(
        options.ENGINE_URL,
        default=os.environ.get("GASHAMMER_ENGINE_URL"),
        metavar="URL",
        help=f"the Engine API (authenticated port) of the node of {options.RPC_URL}: the plugin builds its "
        f"blocks, one a second, at the highest version it serves for its fork; needs {options.JWT_SECRET} "
        "(env GASHAMMER_ENGINE_URL)",
    )
    group.addoption(
        options.JWT_SECRET,
        default=os.environ.get("GASHAMMER_JWT_SECRET"),
        metavar="FILE",
        help=f"the JWT secret file of the node of {options.ENGINE_URL}: 32 bytes as 64 hex digits, 0x "
        "optional (env GASHAMMER_JWT_SECRET)",
    )
    group.addoption(
        options.FUNDER_KEY,
        default=os.environ.get("GASHAMMER_FUNDER_KEY"),
        metavar="KEY",
        help="private key that funds the senders on an external endpoint (env GASHAMMER_FUNDER_KEY)",
    )
    group.addoption(
        options.CHAIN_ID,
        type=_non_negative_int,
        default=None,
        metavar="ID",
        help="fail unless the target reports this chain id",
    )
    group.addoption(
        options.ALLOW_CHAIN_ID,
        type=_non_negative_int,
        action="append",
        default=[],
        metavar="ID",
        help="allow loading this public mainnet chain id (refused by default); repeatable",
    )
    group.addoption(
        options.ANVIL,
        default=os.environ.get("GASHAMMER_ANVIL"),
        metavar="PATH",
        help="anvil binary for the embedded devnet (env GASHAMMER_ANVIL; default: PATH, then a managed install)",
    )
    group.addoption(
        options.DEVNET,
        type=_devnet_backend,
        default=os.environ.get("GASHAMMER_DEVNET", options.DEVNET_BACKENDS[0]),
        metavar="BACKEND",
        help="the devnet the plugin starts: embedded (anvil shaped like nitro --dev, the default), "
        "ethereumjs (the EthereumJS execution client, blocks built every second over the Engine API), "
        "network (several EthereumJS nodes linked by devp2p, --gashammer-network-nodes), "
        "nitro (the pinned offchainlabs/nitro-node image in --dev mode, in Docker) or container:IMAGE "
        "(a preset such as container:anvil, or any local image with --gashammer-container-command); "
        "env GASHAMMER_DEVNET",
    )
    group.addoption(
        options.NETWORK_NODES,
        type=_network_nodes,
        default=options.DEFAULT_NETWORK_NODES,
        metavar="N",
        help=f"nodes of the network fixture and of --gashammer-devnet network (default {options.DEFAULT_NETWORK_NODES})",
    )
    group.addoption(
        options.NETWORK_TOPOLOGY,
        choices=options.NETWORK_TOPOLOGIES,
        default=options.NETWORK_TOPOLOGIES[0],
        help="the devp2p links of the network fixture and of --gashammer-devnet network (default mesh)",
    )
    group.addoption(
        options.NETWORK_IMAGE,
        default=os.environ.get("GASHAMMER_NETWORK_IMAGE") or None,
        metavar="IMAGE",
        help="run the network's nodes in containers of IMAGE (host networking, loopback ports): 'ethereumjs' "
        "builds the plugin's own image of the pinned client, or a local image whose entry point is the "
        "@ethereumjs/client CLI; default: on this machine's Node.js; env GASHAMMER_NETWORK_IMAGE",
    )
    group.addoption(
        options.CONTAINER_COMMAND,
        default=os.environ.get("GASHAMMER_CONTAINER_COMMAND"),
        metavar="ARGS",
        help="the command of a container:IMAGE devnet, with {rpc_port} where the RPC port goes (also "
        "{ws_port}, {feed_port}, {auth_port}: each gets a free loopback port); the container uses the host's "
        "network; env GASHAMMER_CONTAINER_COMMAND",
    )
    group.addoption(
        options.CONTAINER_READY,
        choices=options.CONTAINER_READY_MODES,
        default=os.environ.get("GASHAMMER_CONTAINER_READY"),
        help="when a container devnet is ready: block (eth_chainId answers and a block is produced; the "
        "default for images without a preset), tx (a self-transfer from the funder is in a block: for "
        "sequencers that make no empty block) or rpc (eth_chainId answers); env GASHAMMER_CONTAINER_READY",
    )
    group.addoption(
        options.NODE_HISTORY,
        type=_node_history,
        default=os.environ.get("GASHAMMER_NODE_HISTORY", options.NODE_HISTORY_MODES[0]),
        metavar="MODE",
        help="history the embedded anvil devnet keeps: auto (pruned when the longest planned run sends "
        f"for over {options.PRUNE_AFTER_SECONDS:g} s, the default), full (every block, transaction and "
        "state) or pruned (the last minute of transactions, no past state: far less memory on long "
        "runs); env GASHAMMER_NODE_HISTORY",
    )
    group.addoption(
        options.NO_L1,
        action="store_true",
        default=False,
        help="start the embedded devnet without its L1 (an anvil with the Nitro SequencerInbox, fed by a "
        "batch poster; on by default)",
    )
    group.addoption(
        options.L1_URL,
        type=_l1_url,
        default=os.environ.get("GASHAMMER_L1_URL"),
        metavar="URL",
        help=f"the rollup's L1, which the plugin does not start (any devnet; needs {options.SEQUENCER_INBOX}); "
        "env GASHAMMER_L1_URL",
    )
    group.addoption(
        options.SEQUENCER_INBOX,
        type=_address,
        default=os.environ.get("GASHAMMER_SEQUENCER_INBOX"),
        metavar="ADDR",
        help=f"the rollup's SequencerInbox on {options.L1_URL}; env GASHAMMER_SEQUENCER_INBOX",
    )
    group.addoption(
        options.ROLLUP,
        type=_address,
        default=os.environ.get("GASHAMMER_ROLLUP"),
        metavar="ADDR",
        help=f"the rollup contract on {options.L1_URL} (default: the inbox's rollup()); env GASHAMMER_ROLLUP",
    )
    group.addoption(
        options.BATCH_INTERVAL,
        type=_seconds,
        default=None,
        metavar="SECONDS",
        help="how often the embedded devnet's batch poster posts the new L2 blocks to its L1 (default 1)",
    )
    group.addoption(
        options.EDGES,
        action="append",
        default=[],
        metavar="SPEC",
        help="more edges on execnet gateways: 4*popen, ssh=host//python=python3, socket=host:port (repeatable)",
    )
    group.addoption(
        options.PARQUET,
        default=None,
        metavar="DIR",
        help="store every run's telemetry as Parquet in DIR (tables: runs, transactions, blocks, events, ...)",
    )
    group.addoption(
        options.REPORT,
        default=None,
        metavar="PATH.html",
        help="write a self-contained HTML report of the session's runs (telemetry goes to a temporary "
        "directory unless --gashammer-parquet is given)",
    )
    group.addoption(
        options.SAVE,
        type=_baseline_name,
        default=None,
        metavar="NAME",
        help=f"store the session's runs as baseline NAME in the {options.PARQUET} store (replaces an older NAME)",
    )
    group.addoption(
        options.COMPARE,
        type=_baseline_name,
        default=None,
        metavar="NAME",
        help="compare every run with the run of the same test in baseline NAME of the "
        f"{options.PARQUET} store: change and 95 %% bootstrap interval per metric, in the summary and report",
    )
    group.addoption(
        options.COMPARE_FAIL,
        type=_thresholds,
        default=None,
        metavar="THRESHOLDS",
        help="fail a test whose run is worse than its baseline beyond a threshold, the whole 95 %% interval "
        f"past it, e.g. included_gas_per_sec:-5%%,inclusion_p99:+10%% (needs {options.COMPARE})",
    )
    group.addoption(
        options.REPEAT,
        type=_positive_int,
        default=1,
        metavar="N",
        help="run every hammer.run() N times back to back (each run stored and checked); a comparison pools "
        "the repeats' per-second samples, for narrower intervals (default 1)",
    )
    group.addoption(
        options.SERVE,
        type=_serve_bind,
        default=None,
        metavar="[HOST:]PORT",
        help="serve the live API for the session: JSON, an event stream, Prometheus /metrics and a live page "
        "(loopback unless HOST is given; PORT 0 picks a free one and prints the URL; docs/live-api.md)",
    )
    group.addoption(
        options.SERVE_TOKEN,
        default=None,
        metavar="TOKEN",
        help=f"the token a POST that stops a run must carry (Authorization: Bearer TOKEN); without it, "
        f"{options.SERVE} on a non-loopback host refuses every stop",
    )
    group.addoption(
        options.PROGRESS,
        choices=("auto", "on", "off"),
        default="auto",
        help="live progress line during runs (default auto: on unless -q)",
    )


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    from pytest_gashammer import hookspecs

    pluginmanager.add_hookspecs(hookspecs)


def pytest_configure(config: pytest.Config) -> None:
    from pytest_gashammer.devnet.factory import engine_options_problem

    problem = engine_options_problem(
        config.getoption(options.ENGINE_URL),
        config.getoption(options.JWT_SECRET),
        config.getoption(options.RPC_URL),
    )
    if problem is not None:
        raise pytest.UsageError(problem)
    problem = _gate_options_problem(config)
    if problem is not None:
        raise pytest.UsageError(problem)
    arguments = ", ".join(f"{name}=..." for name in ACCEPTED)
    config.addinivalue_line(
        "markers",
        f"{MARKER}({arguments}): a gas-rate load scenario run by the hammer fixture; see docs/user-guide.md",
    )
    config.addinivalue_line(
        "markers",
        f"{NETWORK_MARKER}(nodes=4, topology='mesh', block_interval=1.0): the network fixture starts a "
        "network for this test alone; see docs/network.md",
    )
    from pytest_gashammer.hive.session import HiveSession
    from pytest_gashammer.report.terminal import RunSummaries

    session = HiveSession(config)
    config.stash[SESSION_KEY] = session
    config.pluginmanager.register(session, "gashammer-hive")
    # Registered last so that its summary prints first (pluggy calls the latest registration first),
    # before the session's lines about stored telemetry and the report.
    config.pluginmanager.register(RunSummaries(config), "gashammer-run-summaries")


def _gate_options_problem(config: pytest.Config) -> str | None:
    """Save and compare need the store the baselines live in; compare needs its baseline there."""
    store = config.getoption(options.PARQUET)
    save, compare = config.getoption(options.SAVE), config.getoption(options.COMPARE)
    if config.getoption(options.COMPARE_FAIL) is not None and compare is None:
        return f"{options.COMPARE_FAIL} needs {options.COMPARE} NAME: the baseline to compare with"
    for option, value in ((options.SAVE, save), (options.COMPARE, compare)):
        if value is not None and not store:
            return f"{option} {value} needs {options.PARQUET} DIR: the store the baselines live in"
    if compare is not None:
        from pytest_gashammer.compare.baseline import read_baseline

        try:
            read_baseline(store, compare)
        except ConfigError as exc:
            return f"{options.COMPARE}: {exc}"
    return None


def pytest_unconfigure(config: pytest.Config) -> None:
    session = config.stash.get(SESSION_KEY, None)
    if session is not None:
        session.close()


# ----------------------------------------------------------------------------------------------
# marker validation at collection


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    """A ``gashammer_*.yaml`` scenario file: its scenarios are tests (docs/scenario-files.md)."""
    if not is_scenario_file(file_path):
        return None
    from pytest_gashammer.scenario.collect import ScenarioFile

    return ScenarioFile.from_parent(parent, path=file_path)


def pytest_itemcollected(item: pytest.Item) -> None:
    scenario = getattr(item, "scenario", None)
    locate: Callable[[ConfigError, str], str]
    if isinstance(scenario, FileScenario):
        # A scenario file's test: validated when its file was read, errors at the file's lines.
        spec, error, locate = scenario.spec, scenario.error, scenario.locate
    else:
        marker = item.get_closest_marker(MARKER)
        if marker is None:
            item.stash[SPEC_KEY] = None
            return

        def on_marker(exc: ConfigError, argument: str) -> str:
            return f"@pytest.mark.{MARKER} on {item.nodeid}: {exc}"

        locate = on_marker
        spec, error = None, None
        try:
            if marker.args:
                raise ConfigError(
                    f"takes keyword arguments only, e.g. @pytest.mark.{MARKER}(gas_per_sec=2_000_000)"
                )
            spec = parse_spec(marker.kwargs)
        except ConfigError as exc:
            error = locate(exc, "")
    if spec is not None and spec.faults:
        try:
            _check_fault_target(item.config, spec.faults)
        except ConfigError as exc:
            spec, error = None, locate(exc, "faults")
    item.stash[SPEC_KEY] = spec
    if error is not None:
        item.stash[SPEC_ERROR_KEY] = error


def _check_fault_target(config: pytest.Config, faults: Any) -> None:
    """Faults the session's devnet cannot take fail at collection (the hive checks again at the run)."""
    from pytest_gashammer.scenario.faults import check_fault_target

    external = bool(config.getoption(options.RPC_URL))
    backend = config.getoption(options.DEVNET)
    node_supports: frozenset[str] | None = None
    # Engine faults need the plugin's consensus driver: the EthereumJS devnet's, or the one driving a
    # client by URL.
    has_engine = bool(config.getoption(options.ENGINE_URL)) or (
        not external and options.backend_kind(backend) == "ethereumjs"
    )
    if external:
        where = f"{options.RPC_URL} (an external node)"
        has_feed: bool | None = bool(config.getoption(options.FEED_URL))
    elif options.backend_kind(backend) in options.CONTAINER_BACKENDS:
        # The plugin runs the container but offers no node controls on it; whether it has a feed
        # depends on the image (the hive checks again once it runs).
        where = f"the {backend} devnet"
        node_supports = frozenset()
        has_feed = True if backend == "nitro" else None
    else:
        where = f"the {backend} devnet"
        has_feed = backend == "embedded"
    # Network faults need a devnet of several nodes; their names are known once it runs.
    network = not external and options.backend_kind(backend) == "network"
    check_fault_target(
        faults,
        where=where,
        controlled=not external,
        node_supports=node_supports,
        has_feed=has_feed,
        has_engine=has_engine,
        network_nodes=None if network else [],
    )


def pytest_collection_finish(session: pytest.Session) -> None:
    """Tell the hive session how long the longest planned run sends: it decides the devnet's history.

    Runs only where tests are collected (not in an xdist controller: its workers pass the figure on).
    A valid marker counts with ``--gashammer-duration-scale`` applied; overrides passed to
    ``hammer.run()`` are not known before the test runs.
    """
    hive_session = session.config.stash.get(SESSION_KEY, None)
    if hive_session is None:
        return
    scale = session.config.getoption(options.DURATION_SCALE)
    lengths = [
        planned_seconds(spec, scale)
        for item in session.items
        if (spec := item.stash.get(SPEC_KEY, None)) is not None
    ]
    hive_session.plan_longest_run(max(lengths) if lengths else None)


def pytest_runtest_setup(item: pytest.Item) -> None:
    error = item.stash.get(SPEC_ERROR_KEY, None)
    if error is not None:
        pytest.fail(error, pytrace=False)


# ----------------------------------------------------------------------------------------------
# fixtures


@pytest.fixture(scope="session")
def devnet(request: pytest.FixtureRequest) -> Devnet:
    """The chain under test: the embedded anvil devnet, or the endpoint of ``--gashammer-rpc-url``.

    Under pytest-xdist every worker gets the one devnet the hive started for the session.
    """
    try:
        return request.config.stash[SESSION_KEY].devnet()
    except GashammerError as exc:
        error = str(exc)
    # Failed outside the except block: inside it, pytest prints the error twice, chained with
    # "During handling of the above exception".
    pytest.fail(error, pytrace=False)


@pytest.fixture
def network(request: pytest.FixtureRequest) -> Generator[Any, None, None]:
    """A network of EthereumJS nodes (``node0`` builds): the session's one, or, for a test marked
    ``@pytest.mark.gashammer_network(nodes=..., topology=..., image=...)``, a fresh one for that test
    alone (its nodes from ``--gashammer-network-image`` unless the marker names an ``image``).

    See docs/network.md: ``network.nodes``, ``network.run(Step(...))``, ``partition``/``heal``.
    """
    marker = request.node.get_closest_marker(NETWORK_MARKER)
    try:
        if marker is None:
            yield request.config.stash[SESSION_KEY].network()
            return
        from pytest_gashammer.network import Network

        arguments = {"image": request.config.getoption(options.NETWORK_IMAGE)}
        own = Network(**(arguments | _network_marker_arguments(marker))).start()
    except GashammerError as exc:
        error = str(exc)
    else:
        try:
            yield own
        finally:
            own.close()
        return
    pytest.fail(error, pytrace=False)


def _network_marker_arguments(marker: pytest.Mark) -> dict[str, Any]:
    accepted = ("nodes", "topology", "block_interval", "image")
    unknown = sorted(set(marker.kwargs) - set(accepted))
    if marker.args or unknown:
        given = ", ".join(map(repr, marker.args)) or ", ".join(
            f"{name}{did_you_mean(name, accepted)}" for name in unknown
        )
        raise ConfigError(
            f"@pytest.mark.{NETWORK_MARKER} takes keyword arguments {', '.join(accepted)}; got {given}"
        )
    return dict(marker.kwargs)


@pytest.fixture(scope="session")
def hive(request: pytest.FixtureRequest) -> Hive:
    """The control plane that runs scenarios (in this process, or the xdist controller's)."""
    try:
        return request.config.stash[SESSION_KEY].hive()
    except GashammerError as exc:
        error = str(exc)
    pytest.fail(error, pytrace=False)


@pytest.fixture
def hammer(request: pytest.FixtureRequest, hive: Hive) -> Hammer:
    """Runs the test's ``@pytest.mark.gashammer`` scenario: ``result = hammer.run()``."""
    from pytest_gashammer.hive.hammer import Hammer

    item = request.node
    config = request.config
    seed = config.getoption(options.SEED)
    runs: list[dict[str, Any]] = item.stash.setdefault(RUNS_KEY, [])

    def on_result(result: Any) -> None:
        runs.append(result.summary_dict())
        item.user_properties.append(
            (f"gashammer.{result.name}.included_gas_per_sec", round(result.included_gas_per_sec, 1))
        )
        item.user_properties.append((f"gashammer.{result.name}.inclusion_p99", result.latency.inclusion.p99))
        item.user_properties.append((f"gashammer.{result.name}.lost", result.lost))
        if result.capacity is not None:  # a capacity search: what it found
            item.user_properties.append(
                (f"gashammer.{result.name}.capacity_max_gas_per_sec", result.capacity.max_gas_per_sec)
            )
            item.user_properties.append(
                (f"gashammer.{result.name}.capacity_knee_gas_per_sec", result.capacity.knee_gas_per_sec)
            )
        for verdict in result.verdicts:
            item.user_properties.append((f"gashammer.{result.name}.verdict.{verdict.name}", verdict.status))
        config.hook.pytest_gashammer_run_finished(item=item, result=result)

    def on_runs(results: list[Any]) -> None:
        comparison = _gate(item, results)
        if comparison is not None:
            # The summary of the call's last run shows the gate's verdict and table.
            runs[-1] = {**results[-1].summary_dict(), "comparison": comparison.lines()}

    return Hammer(
        name=item.name,
        nodeid=item.nodeid,
        spec=item.stash.get(SPEC_KEY, None),
        hive=hive,
        seed=seed if seed is not None else default_seed(item.nodeid),
        duration_scale=config.getoption(options.DURATION_SCALE),
        progress_factory=lambda: _progress(config),
        on_result=on_result,
        isolated_hive=config.stash[SESSION_KEY].isolated_hive,
        repeat=config.getoption(options.REPEAT),
        on_runs=on_runs,
    )


def _gate(item: pytest.Item, results: list[Any]) -> Any:
    """With ``--gashammer-compare``: compare one ``hammer.run()``'s runs (its repeats) with their
    baseline runs, add the ``regression`` verdict to the last and the figures to the test's JUnit
    properties; returns the comparison."""
    config = item.config
    baseline = config.getoption(options.COMPARE)
    if baseline is None:
        return None
    from pytest_gashammer.compare.compare import regression_verdict
    from pytest_gashammer.compare.gate import gate_runs

    comparison = gate_runs(
        config.getoption(options.PARQUET),
        baseline,
        run_ids=[result.run_id for result in results],
        nodeid=item.nodeid,
        thresholds=config.getoption(options.COMPARE_FAIL) or (),
    )
    result = results[-1]
    verdict = regression_verdict(comparison)
    result.verdicts.append(verdict)
    item.user_properties.append((f"gashammer.{result.name}.verdict.{verdict.name}", verdict.status))
    prefix = f"gashammer.{result.name}.compare"
    item.user_properties.append((f"{prefix}.baseline", baseline))
    if not comparison.comparable:
        item.user_properties.append((f"{prefix}.not_comparable", comparison.difference))
    for change in comparison.changes:
        for field in ("baseline", "now", "change", "low", "high"):
            item.user_properties.append((f"{prefix}.{change.metric}.{field}", getattr(change, field)))
        item.user_properties.append((f"{prefix}.{change.metric}.verdict", change.verdict))
    if verdict.status == "failed":
        item.stash.setdefault(GATE_KEY, []).append("\n".join([verdict.summary, *comparison.lines()]))
    return comparison


def _progress(config: pytest.Config) -> ProgressSink | None:
    from pytest_gashammer.hive.session import live_progress

    return live_progress(config)


def pytest_assertrepr_compare(config: pytest.Config, op: str, left: Any, right: Any) -> list[str] | None:
    """``assert verdict == "passed"``: explain with the verdict and its evidence, not a dataclass diff."""
    if op not in ("==", "!=") or type(left).__name__ != "Verdict" or not isinstance(right, str):
        return None
    if type(left).__module__ != "pytest_gashammer.results":
        return None
    return [f"verdict {left.name!r} is {left.status!r}, not {right!r}", *left.describe().splitlines()]


# ----------------------------------------------------------------------------------------------
# results travel on the test report, so the controller sees them with or without xdist


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if call.when == "call":
        runs = item.stash.get(RUNS_KEY, None)
        if runs:
            report.gashammer_runs = list(runs)  # type: ignore[attr-defined]  # travels with the report
        gate = item.stash.get(GATE_KEY, None)
        if gate and report.passed:
            # The gate fails the test even where it checked its result itself (check=False): a CI
            # gate the test body could switch off would not be one.
            report.outcome = "failed"
            report.longrepr = "gashammer regression gate:\n" + "\n\n".join(gate)
    return report
