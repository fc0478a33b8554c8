"""The hive's side of a run's faults: the proxies in front of the devnet, the schedule, the verdict.

Both hives use it the same way: :meth:`FaultRig.open` before the edges get their assignments (it
refuses faults the devnet cannot take, starts a loopback RPC proxy only when the plan has RPC
faults and a feed proxy only when it has feed faults, and says which endpoints the edges use; when it
has Engine API faults, starts an Engine API proxy in front of the execution client and has the
devnet's consensus driver build through it; network faults act on the devnet's
``network_control()``), :meth:`FaultRig.start` at the run's t=0,
:meth:`FaultRig.close` in a ``finally`` (every fault undone, the driver back on its own client, the
proxies stopped), then :func:`faults_verdict` judges whether the faults happened as planned.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

from pytest_gashammer.chain.engine import EngineClient
from pytest_gashammer.devnet.base import MAINNET_CHAIN_IDS, Devnet
from pytest_gashammer.devnet.consensus import ConsensusDriver
from pytest_gashammer.errors import ConfigError, GashammerError
from pytest_gashammer.fault.timeline import FAULT_KINDS, FaultRecord, FaultSchedule, FaultTargets
from pytest_gashammer.results import FaultImpact, Verdict
from pytest_gashammer.scenario.faults import check_fault_target
from pytest_gashammer.scenario.spec import ScenarioPlan

logger = logging.getLogger(__name__)

#: The verdict a run with faults gets from the hive: did every fault begin and end as planned?
FAULTS_VERDICT = "faults"
#: How late a fault may begin or end (the schedule's thread, a node restart) before it is a failure.
ON_TIME_S = 1.0


class FaultRig:
    """The faults of one run, on the hive's side (see the module docstring)."""

    def __init__(self, plan: ScenarioPlan, targets: FaultTargets, mechanisms: dict[int, Any]) -> None:
        self.plan = plan
        self.targets = targets
        self.schedule = FaultSchedule(plan.faults, targets, mechanisms)
        self.records: list[FaultRecord] = []
        self._closed = False
        #: The driver switched to the Engine API proxy, and the client it is switched back to at close.
        self._engine_restore: tuple[ConsensusDriver, EngineClient] | None = None

    @classmethod
    def open(cls, plan: ScenarioPlan, devnet: Devnet) -> FaultRig | None:
        """The rig for ``plan`` on ``devnet``, proxies started; None when the plan has no faults.

        Raises :class:`ConfigError` (one line, naming the fault) when the devnet cannot take them.
        """
        if not plan.faults:
            return None
        chain_id = devnet.chain_id
        if chain_id in MAINNET_CHAIN_IDS:
            raise ConfigError(
                f"faults are refused against chain id {chain_id} ({MAINNET_CHAIN_IDS[chain_id]}), whatever "
                "other flag is given; run them on a devnet"
            )
        node_control = getattr(devnet, "node_control", None)
        node = node_control() if callable(node_control) else None
        driver = consensus_driver(devnet)
        network_control = getattr(devnet, "network_control", None)
        network = network_control() if callable(network_control) else None
        check_fault_target(
            plan.faults,
            where=f"the {devnet.kind} devnet",
            node_supports=None if node is None else frozenset(node.supports),
            has_feed=devnet.feed_url is not None,
            has_engine=driver is not None,
            network_nodes=[] if network is None else network.node_names(),
        )
        mechanisms: dict[int, Any] = {}
        for step in plan.faults:
            kind = FAULT_KINDS[step["kind"]]
            if kind.mechanism is not None:
                mechanisms[int(step["index"])] = kind.mechanism(
                    step["params"], plan.seed + int(step["index"])
                )
        targets = FaultTargets(node=node, network=network)
        rig = cls(plan, targets, mechanisms)
        try:
            rpc_faults = [m for i, m in mechanisms.items() if FAULT_KINDS[_kind_of(plan, i)].path == "rpc"]
            feed_faults = [m for i, m in mechanisms.items() if FAULT_KINDS[_kind_of(plan, i)].path == "feed"]
            engine_faults = [
                m for i, m in mechanisms.items() if FAULT_KINDS[_kind_of(plan, i)].path == "engine"
            ]
            if rpc_faults:
                from pytest_gashammer.fault.rpc_proxy import RpcProxy

                targets.rpc_proxy = RpcProxy(devnet.rpc_url, faults=rpc_faults).start()
            if feed_faults and devnet.feed_url is not None:
                from pytest_gashammer.fault.feed_proxy import FeedProxy

                targets.feed_proxy = FeedProxy(devnet.feed_url, faults=feed_faults).start()
            if engine_faults and driver is not None:
                rig._route_engine(driver, engine_faults)
        except BaseException:
            rig.close()
            raise
        return rig

    def _route_engine(self, driver: ConsensusDriver, faults: list[Any]) -> None:
        """The driver builds through a new Engine API proxy: the same secret and version, another URL."""
        from pytest_gashammer.fault.engine_proxy import EngineProxy, client_through

        current = driver.engine
        proxy = EngineProxy(current.url, faults=faults).start()
        self.targets.engine_proxy = proxy
        self._engine_restore = (driver, driver.use_engine(client_through(current, proxy.url)))

    def _restore_engine(self) -> None:
        """The driver back on the client it had, before the proxy it builds through stops."""
        restore, self._engine_restore = self._engine_restore, None
        if restore is None:
            return
        driver, previous = restore
        # Under the driver's build lock: a block in progress through the proxy finishes first.
        driver.use_engine(previous)

    def endpoints(self, devnet: Devnet) -> dict[str, Any]:
        """Where the edges send and listen: through the proxies where the plan has faults on that path.

        Behind the RPC proxy the edges poll for blocks over HTTP (no WebSocket): the proxy faults
        every request they make.
        """
        rpc = self.targets.rpc_proxy
        feed = self.targets.feed_proxy
        return {
            "rpc_url": rpc.url if rpc is not None else devnet.rpc_url,
            "ws_url": None if rpc is not None else devnet.ws_url,
            "feed_url": feed.url if feed is not None else devnet.feed_url,
        }

    def start(self, origin_monotonic: float | None = None, origin_unix_ns: int | None = None) -> None:
        """The run's t=0: the schedule's clock starts."""
        self.schedule.start(
            time.monotonic() if origin_monotonic is None else origin_monotonic,
            time.time_ns() if origin_unix_ns is None else origin_unix_ns,
        )

    def close(self) -> list[FaultRecord]:
        """Undo every fault, stop the proxies; the records. Safe more than once, on every exit path."""
        if self._closed:
            return self.records
        self._closed = True
        try:
            self.records = self.schedule.close()
        finally:
            try:
                self._restore_engine()
            finally:
                self._stop_proxies()
        return self.records

    def _stop_proxies(self) -> None:
        for proxy in (self.targets.rpc_proxy, self.targets.feed_proxy, self.targets.engine_proxy):
            if proxy is not None:
                try:
                    proxy.stop()
                except Exception as exc:  # a proxy that will not stop must not hide the run's result
                    logger.warning("faults: %r did not stop cleanly: %s", proxy, exc)


def consensus_driver(devnet: Devnet) -> ConsensusDriver | None:
    """The devnet's consensus driver (the plugin builds its blocks over the Engine API), or None."""
    try:
        driver = getattr(devnet, "consensus", None)
    except GashammerError:  # a devnet with a driver that is not started: none to route
        return None
    return driver if isinstance(driver, ConsensusDriver) else None


def _kind_of(plan: ScenarioPlan, index: int) -> str:
    return next(str(step["kind"]) for step in plan.faults if int(step["index"]) == index)


def faults_verdict(impacts: Sequence[FaultImpact]) -> Verdict:
    """Passed when every fault began and ended on time and without an error; the evidence lists them."""
    problems = []
    for impact in impacts:
        if impact.error:
            problems.append(f"{impact.label}: {impact.error}")
        elif impact.started_at is None or impact.ended_at is None:
            problems.append(f"{impact.label}: never applied")
        elif impact.started_at - impact.planned_at > ON_TIME_S:
            problems.append(
                f"{impact.label}: began at {impact.started_at:.2f} s, planned {impact.planned_at:.2f} s"
            )
    evidence = {
        impact.label: {
            "started_at": impact.started_at,
            "ended_at": impact.ended_at,
            "effect": impact.effect,
            "error": impact.error,
        }
        for impact in impacts
    }
    if problems:
        return Verdict(FAULTS_VERDICT, "failed", "; ".join(problems), evidence)
    return Verdict(
        FAULTS_VERDICT, "passed", f"all {len(impacts)} fault(s) applied and undone on time", evidence
    )
