"""The hive's side of a target's L1: the monitor that watches a run's batches, and the L1 verdicts.

Both hives use it as they use the fault rig: :meth:`L1Watch.open` when a run starts (``None`` when
the devnet has no L1: ``devnet.l1`` is ``None`` or absent), :meth:`L1Watch.close` in a ``finally``,
and ``finish_run`` calls :meth:`L1Watch.finish` once the edges are done. The run's L2 blocks are
those after the L2 head at :meth:`~L1Watch.open` up to the head at :meth:`~L1Watch.finish` (setup
blocks included: they are posted like any other); ``finish`` waits for the last of them to be
posted (``timeouts.l1_post_wait``), stops the monitor and judges what it saw.

The monitor reads the L1 and the L2 directly, never through a fault proxy, and never sends: it is
as safe against a real deployment as against the embedded devnet's own L1.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

from pytest_gashammer.chain.rpc import call
from pytest_gashammer.hive import timeouts
from pytest_gashammer.results import L1Figures, Verdict
from pytest_gashammer.scenario.spec import ScenarioPlan
from pytest_gashammer.vocabulary import L1_INVARIANT_NAMES

logger = logging.getLogger(__name__)

#: The L2's JSON-RPC timeout for the two head reads that bound the run's blocks.
_HEAD_TIMEOUT = 10.0


def _wall_clock() -> Callable[[], float]:
    """Seconds on the wall clock's scale that never step back (the run's t=0 is a wall time)."""
    wall, steady = time.time(), time.monotonic()
    return lambda: wall + (time.monotonic() - steady)


class L1Watch:
    """The L1 monitor of one run (see the module docstring)."""

    def __init__(
        self,
        plan: ScenarioPlan,
        l2_rpc_url: str,
        monitor: Any,
        first_l2_block: int,
        *,
        error: str | None = None,
        started_at: float = 0.0,
    ) -> None:
        self.plan = plan
        self.l2_rpc_url = l2_rpc_url
        self.monitor = monitor
        self.first_l2_block = first_l2_block
        self.error = error
        self.started_at = started_at

    @classmethod
    def open(cls, plan: ScenarioPlan, devnet: Any) -> L1Watch | None:
        """The watch of ``devnet``'s L1, its monitor started; None when the devnet has no L1.

        A monitor that cannot start does not stop the run: its L1 verdicts are inconclusive, saying why.
        """
        endpoint = getattr(devnet, "l1", None)
        if endpoint is None:
            return None
        from pytest_gashammer.l1.monitor import L1Monitor

        clock = _wall_clock()
        started_at = clock()
        first = 0
        try:
            first = int(call(devnet.rpc_url, "eth_blockNumber", timeout=_HEAD_TIMEOUT), 16) + 1
            monitor = L1Monitor(
                endpoint.rpc_url,
                endpoint.sequencer_inbox,
                l2_rpc_url=devnet.rpc_url,
                rollup=getattr(endpoint, "rollup", None),
                clock=clock,
                from_l2_block=first,
                full_l2_transactions=getattr(endpoint, "l2_internal_transactions", True),
            ).start()
        except Exception as exc:  # an L1 that cannot be read is the verdicts' business, not the run's
            error = f"the L1 monitor could not start: {exc}"
            logger.warning("run %r: %s", plan.name, error)
            return cls(plan, devnet.rpc_url, None, first, error=error, started_at=started_at)
        logger.debug("run %r: L1 monitor started at L2 block %d", plan.name, first)
        return cls(plan, devnet.rpc_url, monitor, first, started_at=started_at)

    def finish(self, origin_unix_ns: int | None) -> tuple[L1Figures | None, list[Verdict]]:
        """Waits for the run's last L2 block to be posted, stops the monitor; the figures and verdicts.

        ``origin_unix_ns`` is the run's t=0 (the figures' times count from it; from the monitor's
        start without it).
        """
        from pytest_gashammer.oracle.l1 import l1_figures, l1_unavailable, l1_verdicts

        only, skip = self.plan.invariants, self.plan.skip_invariants
        if self.monitor is None:
            return None, l1_unavailable(self.error or "the L1 monitor did not run", only=only, skip=skip)
        wait = timeouts.l1_post_wait(self.plan.slo)
        try:
            last = int(call(self.l2_rpc_url, "eth_blockNumber", timeout=_HEAD_TIMEOUT), 16)
        except Exception as exc:  # the last block the monitor saw is the best bound left
            seen = self.monitor.observation().l2_blocks
            last = seen[-1].number if seen else self.first_l2_block - 1
            logger.warning(
                "run %r: the L2 head could not be read after the run (%s); using %d",
                self.plan.name,
                exc,
                last,
            )
        began = time.monotonic()
        posted = self.monitor.wait_posted(last, wait) if last >= self.first_l2_block else True
        self.monitor.stop()
        logger.debug(
            "run %r: L2 blocks %d..%d %s after %.1f s",
            self.plan.name,
            self.first_l2_block,
            last,
            "posted" if posted else "not all posted",
            time.monotonic() - began,
        )
        observation = self.monitor.observation()
        run_blocks = range(self.first_l2_block, last + 1)
        origin = origin_unix_ns / 1e9 if origin_unix_ns is not None else self.started_at
        figures = l1_figures(observation, run_blocks, time_origin=origin)
        verdicts = l1_verdicts(observation, run_blocks, waited_s=wait, only=only, skip=skip)
        return figures, verdicts

    def close(self) -> None:
        """Stops the monitor (safe more than once, on every exit path)."""
        if self.monitor is not None:
            self.monitor.stop()


def l1_asked_without_l1(plan: ScenarioPlan, devnet_kind: str) -> list[Verdict]:
    """The L1 invariants the plan names explicitly, inconclusive: the target has no L1 to watch."""
    named: Sequence[str] = [name for name in plan.invariants or () if name in L1_INVARIANT_NAMES]
    if not named:
        return []
    from pytest_gashammer.oracle.l1 import l1_unavailable

    return l1_unavailable(
        f"the {devnet_kind} devnet has no L1 to watch", only=named, skip=plan.skip_invariants
    )
