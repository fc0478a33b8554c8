"""The hive's side of the Engine API: the consensus driver's settings for a run, and its engine verdicts.

Both hives use it as they use the L1 watch: :meth:`EngineWatch.open` when a run starts (``None``
when the plugin does not build the target's blocks: the devnet has no ``consensus`` driver), which
applies the marker's ``engine={...}`` to the driver; ``finish_run`` calls :meth:`EngineWatch.finish`
once the edges are done, which waits for the client's pool to drain (the driver keeps building),
reads the driver's log of the run's calls and blocks, and judges them; :meth:`EngineWatch.close`
(in a ``finally``) gives the driver its settings back.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from pytest_gashammer.chain.rpc import RpcError, TransportError, call
from pytest_gashammer.errors import GashammerError
from pytest_gashammer.results import EngineFigures, Verdict
from pytest_gashammer.scenario.spec import ScenarioPlan
from pytest_gashammer.vocabulary import ENGINE_INVARIANT_NAMES

logger = logging.getLogger(__name__)

#: How long the drain may take past the blocks it needs: the driver builds at its interval, and a
#: transaction still pooled after two blocks and this margin is one the client will not build.
DRAIN_MARGIN_SECONDS = 3.0
_POOL_POLL_SECONDS = 0.25
_POOL_TIMEOUT = 10.0
_ENGINE_KEY_TO_SETTING = {
    "block_interval": "interval",
    "version": "version",
    "withdrawals": "withdrawals_per_block",
    "fee_recipient": "fee_recipient",
}


def consensus_driver(devnet: Any) -> Any:
    """The devnet's consensus driver, or None when the plugin does not build its blocks."""
    try:
        return getattr(devnet, "consensus", None)
    except Exception:  # a devnet that has none raises rather than answering None
        return None


class EngineWatch:
    """The engine side of one run (see the module docstring)."""

    def __init__(self, plan: ScenarioPlan, devnet: Any, driver: Any, previous: Any) -> None:
        self.plan = plan
        self.devnet = devnet
        self.driver = driver
        self.previous = previous
        self.started_at = time.time()

    @classmethod
    def open(cls, plan: ScenarioPlan, devnet: Any) -> EngineWatch | None:
        """The watch of ``devnet``'s consensus driver with the plan's settings applied; None without one.

        ``engine={...}`` on a devnet whose blocks the plugin does not build is a one-line error.
        """
        driver = consensus_driver(devnet)
        if driver is None:
            if plan.engine:
                raise GashammerError(
                    f"engine={dict(plan.engine)!r} needs a target whose blocks the plugin builds over the Engine "
                    f"API (--gashammer-devnet ethereumjs, or --gashammer-engine-url); the {devnet.kind} devnet "
                    "builds its own"
                )
            return None
        settings = {_ENGINE_KEY_TO_SETTING[key]: value for key, value in plan.engine}
        try:
            previous = driver.configure(**settings) if settings else None
        except (ValueError, GashammerError) as exc:
            raise GashammerError(f"engine={dict(plan.engine)!r}: {exc}") from None
        return cls(plan, devnet, driver, previous)

    def finish(self, origin_unix_ns: int | None) -> tuple[EngineFigures, list[Verdict]]:
        """Waits for the pool to drain, then the run's engine figures and verdicts."""
        from pytest_gashammer.oracle.engine import EngineRun, engine_figures, engine_verdicts

        pool = self._drain()
        ended_at = time.time()
        calls = list(self.driver.calls_between(self.started_at, ended_at))
        builds = list(self.driver.builds_between(self.started_at, ended_at))
        dropped = sum(self.driver.dropped()) if hasattr(self.driver, "dropped") else 0
        run = EngineRun(calls, builds, int(self.driver.engine.version), pool=pool, dropped=dropped)
        origin = origin_unix_ns / 1e9 if origin_unix_ns is not None else self.started_at
        figures = engine_figures(run, time_origin=origin)
        verdicts = engine_verdicts(run, only=self.plan.invariants, skip=self.plan.skip_invariants)
        return figures, verdicts

    def close(self) -> None:
        """Gives the driver back the settings it had before the run (safe more than once)."""
        previous, self.previous = self.previous, None
        if previous is not None:
            self.driver.restore(previous)

    # -- the drain ----------------------------------------------------------------------------------
    def _drain(self) -> Any:
        from pytest_gashammer.oracle.engine import PoolAfterDrain

        budget = 2 * float(self.driver.interval) + DRAIN_MARGIN_SECONDS
        began = time.monotonic()
        while True:
            try:
                pending, queued, examples = read_pool(self.devnet.rpc_url)
            except (RpcError, TransportError, ValueError) as exc:
                return PoolAfterDrain(
                    None, problem=str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                )
            waited = time.monotonic() - began
            if pending + queued == 0 or waited >= budget:
                return PoolAfterDrain(pending, queued, waited, tuple(examples))
            time.sleep(_POOL_POLL_SECONDS)


def read_pool(rpc_url: str) -> tuple[int, int, list[str]]:
    """``(pending, queued, example hashes)`` of the node's transaction pool.

    ``txpool_status`` where the client serves it, else ``txpool_content`` (EthereumJS serves only
    that one, pending only). Raises what the node answered when it serves neither.
    """
    try:
        status = call(rpc_url, "txpool_status", [], timeout=_POOL_TIMEOUT)
    except RpcError:
        status = None
    if isinstance(status, dict) and "pending" in status:
        pending, queued = _count(status.get("pending")), _count(status.get("queued"))
        if not pending + queued:
            return 0, 0, []
    content = call(rpc_url, "txpool_content", [], timeout=_POOL_TIMEOUT)
    if not isinstance(content, dict):
        raise ValueError(f"txpool_content answered {str(content)[:80]}")
    counts: list[int] = []
    examples: list[str] = []
    for part in ("pending", "queued"):
        by_sender = content.get(part) or {}
        if not isinstance(by_sender, dict):
            raise ValueError(f"txpool_content's {part} is not an object: {str(by_sender)[:80]}")
        count = 0
        for by_nonce in by_sender.values():
            transactions = by_nonce.values() if isinstance(by_nonce, dict) else by_nonce
            for tx in transactions:
                count += 1
                if len(examples) < 10 and isinstance(tx, dict) and tx.get("hash"):
                    examples.append(str(tx["hash"]))
        counts.append(count)
    return counts[0], counts[1], examples


def _count(value: Any) -> int:
    if isinstance(value, str):
        return int(value, 16) if value.startswith("0x") else int(value)
    return int(value or 0)


def engine_asked_without_driver(plan: ScenarioPlan, devnet_kind: str) -> list[Verdict]:
    """The engine invariants the plan names explicitly, inconclusive: the plugin builds no block here."""
    named = [name for name in plan.invariants or () if name in ENGINE_INVARIANT_NAMES]
    if not named:
        return []
    from pytest_gashammer.oracle.engine import engine_unavailable

    return engine_unavailable(
        f"the {devnet_kind} devnet builds its own blocks: no Engine API calls to judge",
        only=named,
        skip=plan.skip_invariants,
    )
