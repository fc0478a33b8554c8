"""Which hive a pytest process talks to, decided once per process.

- **local**: no xdist and no ``--gashammer-edges``: the test's own process is the only edge, and
  the devnet lives here (:class:`~pytest_gashammer.hive.local.LocalHive`).
- **controller**: the xdist controller, or a plain run with ``--gashammer-edges``: the hive lives
  here (:class:`~pytest_gashammer.hive.controller.HiveController`), owns the shared devnet, and the
  edges are the xdist workers and the extra gateways.
- **worker**: an xdist worker: it hosts an edge for the hive and sends its tests' runs to it
  (:class:`~pytest_gashammer.hive.worker.HiveClient`).

``isolated=True`` scenarios always run in the calling process against a devnet of its own.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from pytest_gashammer import options
from pytest_gashammer.errors import GashammerError
from pytest_gashammer.hive.base import Hive, ProgressSink

if TYPE_CHECKING:
    from pytest_gashammer.hive.controller import HiveController
    from pytest_gashammer.hive.local import LocalHive
    from pytest_gashammer.hive.worker import HiveClient

logger = logging.getLogger(__name__)

#: The directory beside the telemetry (``--gashammer-parquet DIR``) where container logs are saved.
DEVNET_LOGS = "devnet-logs"
#: Lines of the devnet's log attached to a failing test's report.
REPORT_LOG_LINES = 60


def devnet_options(config: pytest.Config, workdir: Path | None, longest_run: float | None = None) -> Any:
    """The devnet the options ask for; ``longest_run`` (s) is the session's longest planned run."""
    from pytest_gashammer.devnet.factory import DevnetOptions

    parquet = config.getoption(options.PARQUET)
    return DevnetOptions(
        rpc_url=config.getoption(options.RPC_URL),
        ws_url=config.getoption(options.WS_URL),
        feed_url=config.getoption(options.FEED_URL),
        funder_key=config.getoption(options.FUNDER_KEY),
        expected_chain_id=config.getoption(options.CHAIN_ID),
        allowed_chain_ids=frozenset(config.getoption(options.ALLOW_CHAIN_ID)),
        anvil=config.getoption(options.ANVIL),
        workdir=workdir,
        backend=config.getoption(options.DEVNET),
        node_history=config.getoption(options.NODE_HISTORY),
        longest_run=longest_run,
        container_command=config.getoption(options.CONTAINER_COMMAND),
        container_ready=config.getoption(options.CONTAINER_READY),
        l1=not config.getoption(options.NO_L1),
        l1_url=config.getoption(options.L1_URL),
        sequencer_inbox=config.getoption(options.SEQUENCER_INBOX),
        rollup=config.getoption(options.ROLLUP),
        batch_interval=config.getoption(options.BATCH_INTERVAL),
        engine_url=config.getoption(options.ENGINE_URL),
        jwt_secret=config.getoption(options.JWT_SECRET),
        # Container logs go beside the telemetry when it is kept; else into the devnet's workdir.
        log_dir=Path(parquet) / DEVNET_LOGS if parquet else None,
    )


def live_progress(config: pytest.Config, *, interactive: bool | None = None) -> ProgressSink | None:
    """The live progress line for a run, or None where there is none to draw.

    None with ``--gashammer-progress off``, with ``auto`` under ``-q``, and in xdist workers (they
    cannot write to the terminal; the controller draws their runs). ``interactive=None`` redraws
    one line on a terminal; ``False`` writes whole lines only (the controller's, which shares the
    terminal with xdist's own output, where a redrawn line would garble).
    """
    mode = config.getoption(options.PROGRESS)
    if mode == "off" or (mode == "auto" and config.get_verbosity() < 0) or hasattr(config, "workerinput"):
        return None
    terminal = config.pluginmanager.get_plugin("terminalreporter")
    capture = config.pluginmanager.get_plugin("capturemanager")
    if terminal is None or capture is None:
        return None
    from pytest_gashammer.report.terminal import LiveProgress

    return LiveProgress(
        terminal, capture, interactive=bool(terminal.isatty()) if interactive is None else interactive
    )


class HiveSession:
    """Per-process access to the devnet and the hive; also the xdist hook implementations."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.controller: HiveController | None = None
        self._network: Any = None  # the network fixture's, when this process starts one
        self.client: HiveClient | None = None
        self._devnet: Any = None
        self._hive: LocalHive | None = None
        self._isolated_devnet: Any = None
        self._isolated_hive: LocalHive | None = None
        self.telemetry: Any = None
        self._report_path: str | None = config.getoption(options.REPORT)
        #: The longest sending time (s) among this process's collected runs (plan_longest_run).
        self.longest_run: float | None = None
        workerinput = getattr(config, "workerinput", None)
        edge_specs = config.getoption(options.EDGES) or []
        #: The live API (--gashammer-serve): its board, which the hive feeds, and its server. It runs
        #: where the hive is: never in an xdist worker.
        self.live: Any = None
        self.live_server: Any = None
        serve = config.getoption(options.SERVE)
        if serve is not None and workerinput is None:
            from pytest_gashammer.serve import start_server

            try:
                self.live, self.live_server = start_server(serve, config.getoption(options.SERVE_TOKEN))
            except GashammerError as exc:
                raise pytest.UsageError(str(exc)) from None
        if workerinput is not None and "gashammer_channel" in workerinput:
            self.mode = "worker"
            from pytest_gashammer.hive.worker import EdgeHost, HiveClient

            host = EdgeHost(workerinput["gashammer_channel"], workerinput["gashammer_edge_id"]).start()
            self.client = HiveClient(host)
        elif workerinput is None and (config.getoption("dist", "no") != "no" or edge_specs):
            self.mode = "controller"
            from pytest_gashammer.hive.controller import HiveController

            self.controller = HiveController(
                self._open_shared_devnet,
                progress_factory=lambda: live_progress(config, interactive=False),
                telemetry=self._recorder(),
                live=self.live,
            )
            if edge_specs:
                try:
                    self.controller.add_gateway_edges(edge_specs)
                except GashammerError as exc:
                    self.close()
                    raise pytest.UsageError(str(exc)) from None
        else:
            self.mode = "local"
        logger.debug("hive: this process is in %s mode (gateway edges: %s)", self.mode, edge_specs)

    def _recorder(self) -> Any:
        """The session's telemetry store, when --gashammer-parquet or --gashammer-report asks for one."""
        if self.telemetry is not None:
            return self.telemetry
        directory = self.config.getoption(options.PARQUET)
        if directory is None and self._report_path is None:
            return None
        from pytest_gashammer.telemetry.recorder import TelemetryRecorder

        path = Path(directory) if directory else Path(tempfile.mkdtemp(prefix="gashammer-telemetry-"))
        self.telemetry = TelemetryRecorder(path, git_root=self.config.rootpath)
        return self.telemetry

    def plan_longest_run(self, seconds: float | None) -> None:
        """What collection found: the longest planned run (s), None without one. A worker passes it
        on with its requests: the controller, which starts the devnet, collects nothing itself."""
        self.longest_run = seconds
        if self.client is not None:
            self.client.longest_run = seconds

    def _session_longest_run(self) -> float | None:
        known = [self.longest_run]
        if self.controller is not None:
            known.append(self.controller.longest_run)
        lengths = [seconds for seconds in known if seconds is not None]
        return max(lengths) if lengths else None

    def _open_shared_devnet(self) -> Any:
        workdir = Path(tempfile.mkdtemp(prefix="gashammer-devnet-"))
        return self._open_devnet(workdir)

    def _open_devnet(self, workdir: Path | None) -> Any:
        from pytest_gashammer.devnet.factory import open_devnet

        chosen = devnet_options(self.config, workdir, self._session_longest_run())
        if chosen.backend != "network":
            return open_devnet(chosen)
        from pytest_gashammer.network import NetworkDevnet

        devnet = NetworkDevnet.open(
            nodes=self.config.getoption(options.NETWORK_NODES),
            topology=self.config.getoption(options.NETWORK_TOPOLOGY),
            image=self.config.getoption(options.NETWORK_IMAGE),
            workdir=workdir,
        )
        self._serve_network(devnet.network)
        return devnet

    def _serve_network(self, network: Any) -> None:
        """Put the network on the live API (``/api/v1/network``, ``network.*`` events), where one runs;
        the first network of the session only."""
        if self.live is None or self.live.endpoint("network") is not None:
            return
        self.live.add_endpoint("network", network.describe)
        network.forward_events(self.live.publish)

    def network(self) -> Any:
        """The network of the ``network`` fixture: the devnet's own with ``--gashammer-devnet network``
        where this process runs it, else one this process starts for the session."""
        if self.mode == "local" and self.config.getoption(options.DEVNET) == "network":
            return self.devnet().network
        if self._network is None:
            from pytest_gashammer.network import Network

            self._network = Network(
                self.config.getoption(options.NETWORK_NODES),
                topology=self.config.getoption(options.NETWORK_TOPOLOGY),
                image=self.config.getoption(options.NETWORK_IMAGE),
            ).start()
            self._serve_network(self._network)
        return self._network

    # -- what the fixtures hand out ---------------------------------------------------------------
    def devnet(self) -> Any:
        if self.client is not None:
            return self.client.devnet()
        if self.controller is not None:
            return self.controller.ensure_devnet()
        if self._devnet is None:
            self._devnet = self._open_shared_devnet()
        return self._devnet

    def hive(self) -> Hive:
        if self.client is not None:
            return self.client
        if self.controller is not None:
            if self.controller.wait_for_edges(1, 60.0) == 0:
                raise GashammerError("no edge registered with the hive within 60 s; check --gashammer-edges")
            return self.controller
        if self._hive is None:
            from pytest_gashammer.hive.local import LocalHive

            self._hive = LocalHive(self.devnet(), telemetry=self._recorder(), live=self.live)
        return self._hive

    def isolated_hive(self) -> Hive:
        """A hive with a devnet of this process's own, for ``isolated=True`` scenarios."""
        if self._isolated_hive is None:
            from pytest_gashammer.hive.local import LocalHive

            if self.config.getoption(options.RPC_URL):
                raise GashammerError(
                    "isolated=True needs a devnet the plugin starts; drop --gashammer-rpc-url or isolated"
                )
            self._isolated_devnet = self._open_devnet(None)
            self._isolated_hive = LocalHive(self._isolated_devnet, live=self.live)
        return self._isolated_hive

    def _own_devnets(self) -> list[Any]:
        """The devnets this process started (the controller's shared one, the local and isolated ones)."""
        owned = [self._devnet, self._isolated_devnet]
        if self.controller is not None:
            owned.append(self.controller.devnet)
        return [devnet for devnet in owned if devnet is not None]

    # -- session hooks --------------------------------------------------------------------------
    def pytest_sessionstart(self, session: pytest.Session) -> None:
        """Say where the live API listens; remove containers an earlier pytest left when it was
        killed (a record says so; cheap otherwise)."""
        if self.mode == "worker":
            return  # the controller owns the session's containers and sweeps for it
        terminal = self.config.pluginmanager.get_plugin("terminalreporter")
        if self.live_server is not None and terminal is not None:
            terminal.write_line(f"gashammer live API: {self.live_server.url}")
        from pytest_gashammer.devnet.ownership import sweep_if_recorded

        removed = sweep_if_recorded()
        if removed:
            logger.warning("removed containers left by a pytest that was killed: %s", ", ".join(removed))

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        """A failing test's report gets the last lines of the devnet's log, where this process owns it.

        Runs where the devnet lives: in a plain session for its own tests, in the xdist controller
        for the reports its workers send (before the terminal and junitxml read them).
        """
        if not report.failed or self.mode == "worker":
            return
        for devnet in self._own_devnets():
            try:
                tail = devnet.log_tail(REPORT_LOG_LINES)
            except Exception as exc:  # a report must not fail on the log's way
                tail = f"(the devnet's log could not be read: {exc})"
            if tail:
                report.sections.append((f"gashammer devnet log ({devnet.kind}, last lines)", tail))

    # -- xdist hooks (the controller side) ------------------------------------------------------
    @pytest.hookimpl(optionalhook=True)
    def pytest_configure_node(self, node: Any) -> None:
        if self.controller is None:
            return
        edge_id = str(node.gateway.id)
        channel = node.gateway.newchannel()
        self.controller.add_edge(edge_id, channel)
        node.workerinput["gashammer_channel"] = channel
        node.workerinput["gashammer_edge_id"] = edge_id

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node: Any, error: Any) -> None:
        if self.controller is not None and error:
            self.controller.edge_lost(
                str(node.gateway.id), f"its worker crashed ({error})".replace("\n", " ")
            )

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        """Close the telemetry store and render the report: every run is over by now."""
        if self.telemetry is None:
            return
        self.telemetry.close()
        terminalreporter.write_line(f"gashammer telemetry: {self.telemetry.directory}")
        save = self.config.getoption(options.SAVE)
        if save:
            from pytest_gashammer.compare.baseline import save_baseline

            path, saved = save_baseline(self.telemetry.directory, save, self.telemetry.run_ids)
            terminalreporter.write_line(f"gashammer baseline {save!r}: {saved} finished run(s) in {path}")
        if self._report_path:
            from pytest_gashammer.report.html import render_report
            from pytest_gashammer.telemetry.parquet import TelemetryDirectoryError

            hook = self.config.hook.pytest_gashammer_report_sections
            sections = [
                section
                for answer in hook(config=self.config, directory=self.telemetry.directory)
                for section in answer
            ]
            compare = self.config.getoption(options.COMPARE)
            if compare and self.telemetry.run_ids:
                from pytest_gashammer.report.comparison import comparison_section

                sections.insert(
                    0,
                    comparison_section(
                        self.telemetry.directory,
                        compare,
                        self.telemetry.run_ids,
                        thresholds=self.config.getoption(options.COMPARE_FAIL) or (),
                    ),
                )
            try:
                path = render_report(self.telemetry.directory, self._report_path, extra_sections=sections)
            except TelemetryDirectoryError as exc:
                terminalreporter.write_line(f"gashammer report not written: {exc}", red=True)
            else:
                terminalreporter.write_line(f"gashammer report: {path}")

    def close(self) -> None:
        if self.telemetry is not None:
            self.telemetry.close()
        if self.controller is not None:
            self.controller.close()
        if self.live_server is not None:
            self.live_server.stop()
            self.live_server = None
        for devnet in (self._devnet, self._isolated_devnet, self._network):
            if devnet is not None:
                devnet.close()
        self._devnet = self._isolated_devnet = self._network = None
