"""Which hive a pytest process talks to, decided once per process.

- **local**: no xdist and no ``--gashammer-edges``: the test's own process is the only edge, and
  the devnet lives here (:class:`~pytest_gashammer.hive.local.Hive`).
- **controller**: the xdist controller, or a plain run with ``--gashammer-edges``: the hive lives
  here (:class:`~pytest_gashammer.hive.controller.HiveController`), owns the shared devnet, and the
  edges are the xdist workers and the extra gateways.
- **worker**: an xdist worker: it hosts an edge for the hive and sends its tests' runs to it
  (:class:`~pytest_gashammer.edge.host.HiveClient`).

``isolated=True`` scenarios always run in the calling process against a devnet of its own.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import pytest

from pytest_gashammer.errors import GashammerError


def devnet_options(config: pytest.Config, workdir: Path | None) -> Any:
    from pytest_gashammer.devnet.factory import DevnetOptions

    return DevnetOptions(
        rpc_url=config.getoption("--gashammer-rpc-url"),
        ws_url=config.getoption("--gashammer-ws-url"),
        feed_url=config.getoption("--gashammer-feed-url"),
        funder_key=config.getoption("--gashammer-funder-key"),
        expected_chain_id=config.getoption("--gashammer-chain-id"),
        allowed_chain_ids=frozenset(config.getoption("--gashammer-allow-chain-id")),
        anvil=config.getoption("--gashammer-anvil"),
        workdir=workdir,
    )


class HiveSession:
    """Per-process access to the devnet and the hive; also the xdist hook implementations."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.controller: Any = None
        self.client: Any = None
        self._devnet: Any = None
        self._hive: Any = None
        self._isolated_devnet: Any = None
        self._isolated_hive: Any = None
        self.telemetry: Any = None
        self._report_path: str | None = config.getoption("--gashammer-report")
        workerinput = getattr(config, "workerinput", None)
        edge_specs = config.getoption("--gashammer-edges") or []
        if workerinput is not None and "gashammer_channel" in workerinput:
            self.mode = "worker"
            from pytest_gashammer.edge.host import EdgeHost, HiveClient

            host = EdgeHost(workerinput["gashammer_channel"], workerinput["gashammer_edge_id"]).start()
            self.client = HiveClient(host)
        elif workerinput is None and (config.getoption("dist", "no") != "no" or edge_specs):
            self.mode = "controller"
            from pytest_gashammer.hive.controller import HiveController

            self.controller = HiveController(
                self._open_shared_devnet,
                progress_factory=self._controller_progress,
                telemetry=self._recorder(),
            )
            if edge_specs:
                try:
                    self.controller.add_gateway_edges(edge_specs)
                except GashammerError as exc:
                    self.controller.close()
                    raise pytest.UsageError(str(exc)) from None
        else:
            self.mode = "local"

    def _recorder(self) -> Any:
        """The session's telemetry store, when --gashammer-parquet or --gashammer-report asks for one."""
        if self.telemetry is not None:
            return self.telemetry
        directory = self.config.getoption("--gashammer-parquet")
        if directory is None and self._report_path is None:
            return None
        from pytest_gashammer.telemetry.recorder import TelemetryRecorder

        path = Path(directory) if directory else Path(tempfile.mkdtemp(prefix="gashammer-telemetry-"))
        self.telemetry = TelemetryRecorder(path, git_root=self.config.rootpath)
        return self.telemetry

    def _controller_progress(self) -> Any:
        """Progress lines for runs that xdist workers requested, written by the controller."""
        if self.config.getoption("--gashammer-progress") == "off" or self.config.get_verbosity() < 0:
            return None
        terminal = self.config.pluginmanager.get_plugin("terminalreporter")
        capture = self.config.pluginmanager.get_plugin("capturemanager")
        if terminal is None or capture is None:
            return None
        from pytest_gashammer.report.terminal import LiveProgress

        # Whole lines only: xdist's own output shares the terminal, a redrawn line would garble it.
        return LiveProgress(terminal, capture, interactive=False)

    def _open_shared_devnet(self) -> Any:
        from pytest_gashammer.devnet.factory import open_devnet

        return open_devnet(devnet_options(self.config, Path(tempfile.mkdtemp(prefix="gashammer-devnet-"))))

    # -- what the fixtures hand out ---------------------------------------------------------------
    def devnet(self) -> Any:
        if self.mode == "worker":
            return self.client.devnet()
        if self.mode == "controller":
            return self.controller.ensure_devnet()
        if self._devnet is None:
            self._devnet = self._open_shared_devnet()
        return self._devnet

    def hive(self) -> Any:
        if self.mode == "worker":
            return self.client
        if self.mode == "controller":
            if self.controller.wait_for_edges(1, 60.0) == 0:
                raise GashammerError("no edge registered with the hive within 60 s; check --gashammer-edges")
            return self.controller
        if self._hive is None:
            from pytest_gashammer.hive.local import Hive

            self._hive = Hive(self.devnet(), telemetry=self._recorder())
        return self._hive

    def isolated_hive(self) -> Any:
        """A hive with a devnet of this process's own, for ``isolated=True`` scenarios."""
        if self._isolated_hive is None:
            from pytest_gashammer.devnet.embedded import EmbeddedDevnet
            from pytest_gashammer.hive.local import Hive

            if self.config.getoption("--gashammer-rpc-url"):
                raise GashammerError(
                    "isolated=True needs the embedded devnet; drop --gashammer-rpc-url or isolated"
                )
            self._isolated_devnet = EmbeddedDevnet(
                anvil_path=self.config.getoption("--gashammer-anvil")
            ).start()
            self._isolated_hive = Hive(self._isolated_devnet)
        return self._isolated_hive

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
        if self._report_path:
            from pytest_gashammer.report.html import render_report
            from pytest_gashammer.telemetry.parquet import TelemetryDirectoryError

            hook = self.config.hook.pytest_gashammer_report_sections
            sections = [
                section
                for answer in hook(config=self.config, directory=self.telemetry.directory)
                for section in answer
            ]
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
        for devnet in (self._devnet, self._isolated_devnet):
            if devnet is not None:
                devnet.close()
        self._devnet = self._isolated_devnet = None
