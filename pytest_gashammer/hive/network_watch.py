"""The hive's side of a multi-node devnet: where the edges send, and the network verdicts after the run.

Both hives use it as they use the L1 and engine watches: :meth:`NetworkWatch.open` when a run starts
(``None`` when the devnet has a single node: ``devnet.node_urls()`` names fewer than two), which
notes the builder's head and refuses a ``network={"send_to": ...}`` naming no node of the devnet;
:meth:`NetworkWatch.send_urls` says which nodes the edges send to; ``finish_run`` calls
:meth:`NetworkWatch.finish` once the edges are done (and the engine watch has drained the pool).

``finish`` waits, up to the plan's bound, for every node to hold the builder's head of the load's
end and to stop syncing, then reads the run's blocks by height from every node (up to
:data:`~pytest_gashammer.oracle.network.MAX_HEIGHTS`, an even sample beyond) and asks every node for
the receipts of a sample of their transactions; the oracle judges what it read. It only reads, over
the nodes' own JSON-RPC, never through a fault proxy.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

from pytest_gashammer.chain.rpc import RpcError, TransportError, call, call_batch
from pytest_gashammer.errors import ConfigError
from pytest_gashammer.results import NetworkEvent, NetworkFigures, NetworkNode, Verdict
from pytest_gashammer.scenario.spec import ScenarioPlan
from pytest_gashammer.vocabulary import NETWORK_INVARIANT_NAMES, SEND_TO_BUILDER, SEND_TO_SPREAD

logger = logging.getLogger(__name__)

#: How long after the load every node must hold the builder's head, and stop syncing, by default.
CONVERGE_SECONDS = 30.0
#: The network's events a result holds at most (the latest); the report shows fewer.
MAX_EVENTS = 5000
_POLL_SECONDS = 0.25
_READ_TIMEOUT = 10.0
#: Requests per JSON-RPC batch when reading blocks and receipts.
_BATCH = 100


def _first_line(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else ""
    return text or type(exc).__name__


def node_block(answer: Any) -> Any:
    """The :class:`~pytest_gashammer.oracle.network.NodeBlock` of an ``eth_getBlockByNumber`` answer,
    None for null or anything that is not a block."""
    from pytest_gashammer.oracle.network import NodeBlock

    if not isinstance(answer, dict) or not answer.get("hash") or answer.get("number") is None:
        return None
    return NodeBlock(int(str(answer["number"]), 16), str(answer["hash"]), str(answer.get("stateRoot") or ""))


class NetworkWatch:
    """The network side of one run (see the module docstring)."""

    def __init__(self, plan: ScenarioPlan, devnet: Any, urls: dict[str, str], first_block: int) -> None:
        self.plan = plan
        self.devnet = devnet
        self.urls = urls
        self.first_block = first_block
        self.started_at = time.time()
        settings = dict(plan.network)
        self.send_to = str(settings.get("send_to", SEND_TO_BUILDER))
        self.bound = float(settings.get("converge_within", CONVERGE_SECONDS))

    @classmethod
    def open(cls, plan: ScenarioPlan, devnet: Any) -> NetworkWatch | None:
        """The watch of ``devnet``'s nodes; None for a single node.

        ``network={"send_to": "node7"}`` naming no node of the devnet, or any ``send_to`` but the
        builder on a single node, is a one-line error.
        """
        node_urls = getattr(devnet, "node_urls", None)
        urls = dict(node_urls()) if callable(node_urls) else {}
        send_to = str(dict(plan.network).get("send_to", SEND_TO_BUILDER))
        if len(urls) < 2:
            if send_to != SEND_TO_BUILDER:
                raise ConfigError(
                    f"network={{'send_to': {send_to!r}}} needs a devnet of several nodes (--gashammer-devnet "
                    f"network); the {devnet.kind} devnet has one: drop it or send to 'builder'"
                )
            return None
        if send_to not in (SEND_TO_BUILDER, SEND_TO_SPREAD) and send_to not in urls:
            raise ConfigError(
                f"network={{'send_to': {send_to!r}}} names no node of the devnet; its nodes: {', '.join(urls)}"
            )
        builder = next(iter(urls.values()))
        first = 0
        try:
            first = int(call(builder, "eth_blockNumber", timeout=_READ_TIMEOUT), 16) + 1
        except (RpcError, TransportError, ValueError) as exc:  # the verdicts say what could not be read
            logger.warning("run %r: the builder's head could not be read: %s", plan.name, _first_line(exc))
        return cls(plan, devnet, urls, first)

    def send_urls(self, rpc_url: str) -> list[str]:
        """Where the edges send: empty for the builder alone (the edges' ``rpc_url``); else one URL
        per node the senders are spread over, the builder's replaced by ``rpc_url`` (its fault
        proxy, if any)."""
        builder = next(iter(self.urls))
        if self.send_to == SEND_TO_BUILDER:
            return []
        names = list(self.urls) if self.send_to == SEND_TO_SPREAD else [self.send_to]
        return [rpc_url if name == builder else self.urls[name] for name in names]

    # -- after the run -------------------------------------------------------------------------
    def finish(self, origin_unix_ns: int | None) -> tuple[NetworkFigures, list[Verdict]]:
        """Waits for the nodes to agree (bounded), reads them; the figures and the network verdicts."""
        from pytest_gashammer.oracle.network import (
            MAX_HEIGHTS,
            MAX_RECEIPTS,
            NetworkObservation,
            network_verdicts,
            sample_evenly,
        )

        names = list(self.urls)
        problems: dict[str, str] = {}
        target, converged_after = self._converge(problems)
        syncing = self._syncing(problems)
        heads = {name: self._read_head(name, problems) for name in names}
        last = target.number if target is not None else self.first_block - 1
        run_heights = list(range(self.first_block, last + 1))
        heights = tuple(sample_evenly(run_heights, MAX_HEIGHTS))
        blocks: dict[str, dict[int, Any]] = {}
        transactions: list[str] = []
        for name in names:
            served, hashes = self._read_blocks(name, heights, problems, want_transactions=not transactions)
            blocks[name] = served
            transactions = transactions or hashes
        sample = tuple(sample_evenly(transactions, MAX_RECEIPTS))
        missing: dict[str, list[str]] = {}
        for name in names:
            absent = self._missing_receipts(name, sample, problems)
            if absent is not None:
                missing[name] = absent
        observation = NetworkObservation(
            nodes=tuple(names),
            target=target,
            converge_bound_s=self.bound,
            converged_after=converged_after,
            heads=heads,
            heights=heights,
            run_heights=len(run_heights),
            blocks=blocks,
            receipts_sampled=sample,
            transactions=len(transactions),
            receipts_missing=missing,
            syncing=syncing,
            syncing_bound_s=self.bound,
            problems=problems,
        )
        verdicts = network_verdicts(observation, only=self.plan.invariants, skip=self.plan.skip_invariants)
        events = self._events()
        figures = NetworkFigures(
            nodes=[
                NetworkNode(
                    name=name,
                    rpc_url=self.urls[name],
                    head_number=None if heads[name] is None else heads[name].number,
                    head_hash=None if heads[name] is None else heads[name].hash,
                    converged_after_s=converged_after.get(name),
                    syncing=None if name not in syncing else syncing[name] is not False,
                    error=problems.get(name),
                )
                for name in names
            ],
            first_block=self.first_block,
            last_block=last,
            heights_checked=len(heights),
            receipts_checked=len(sample),
            converge_bound_s=self.bound,
            time_origin=origin_unix_ns / 1e9 if origin_unix_ns is not None else self.started_at,
            events=events[-MAX_EVENTS:],
            events_dropped=max(0, len(events) - MAX_EVENTS),
        )
        return figures, verdicts

    def close(self) -> None:
        """Nothing to release: the watch only reads (kept for the hives' symmetry with the other watches)."""

    def _deadline(self) -> Callable[[], bool]:
        ends = time.monotonic() + self.bound
        return lambda: time.monotonic() >= ends

    def _converge(self, problems: dict[str, str]) -> tuple[Any, dict[str, float | None]]:
        """The builder's head when the load ended, and per node how long it took to hold it."""
        names = list(self.urls)
        began = time.monotonic()
        target = self._read_head(names[0], problems)
        converged: dict[str, float | None] = dict.fromkeys(names)
        if target is None:
            return None, converged
        converged[names[0]] = 0.0
        past = self._deadline()
        while True:
            for name in names:
                if converged[name] is not None:
                    continue
                try:
                    block = node_block(
                        call(
                            self.urls[name], "eth_getBlockByNumber", [hex(target.number), False], timeout=2.0
                        )
                    )
                except (RpcError, TransportError, ValueError) as exc:
                    problems[name] = _first_line(exc)
                    continue
                if block is not None and block.hash == target.hash:
                    converged[name] = round(time.monotonic() - began, 3)
                    problems.pop(name, None)
            if all(seconds is not None for seconds in converged.values()) or past():
                return target, converged
            time.sleep(_POLL_SECONDS)

    def _syncing(self, problems: dict[str, str]) -> dict[str, Any]:
        """Each node's last ``eth_syncing`` answer, asked again until false or the bound has passed."""
        answers: dict[str, Any] = {}
        past = self._deadline()
        waiting = list(self.urls)
        while waiting:
            for name in list(waiting):
                try:
                    answers[name] = call(self.urls[name], "eth_syncing", [], timeout=2.0)
                except (RpcError, TransportError) as exc:
                    problems.setdefault(name, _first_line(exc))
                    continue
                if answers[name] is False:
                    waiting.remove(name)
            if not waiting or past():
                break
            time.sleep(_POLL_SECONDS)
        return answers

    def _read_head(self, name: str, problems: dict[str, str]) -> Any:
        try:
            return node_block(
                call(self.urls[name], "eth_getBlockByNumber", ["latest", False], timeout=_READ_TIMEOUT)
            )
        except (RpcError, TransportError, ValueError) as exc:
            problems.setdefault(name, _first_line(exc))
            return None

    def _read_blocks(
        self, name: str, heights: Sequence[int], problems: dict[str, str], *, want_transactions: bool
    ) -> tuple[dict[int, Any], list[str]]:
        """The blocks ``name`` serves at ``heights``, and (when asked) their transactions' hashes in order."""
        served: dict[int, Any] = {}
        hashes: list[str] = []
        for offset in range(0, len(heights), _BATCH):
            chunk = heights[offset : offset + _BATCH]
            try:
                answers = call_batch(
                    self.urls[name],
                    [("eth_getBlockByNumber", [hex(height), False]) for height in chunk],
                    timeout=_READ_TIMEOUT,
                )
            except TransportError as exc:
                problems.setdefault(name, f"blocks not read: {_first_line(exc)}")
                break
            for height, answer in zip(chunk, answers, strict=True):
                block = node_block(answer)
                if block is None:
                    continue
                served[height] = block
                if want_transactions:
                    hashes.extend(str(tx) for tx in answer.get("transactions") or () if isinstance(tx, str))
        return served, hashes

    def _missing_receipts(
        self, name: str, sample: Sequence[str], problems: dict[str, str]
    ) -> list[str] | None:
        """The transactions of ``sample`` ``name`` has no receipt for; None when it could not be asked."""
        missing: list[str] = []
        for offset in range(0, len(sample), _BATCH):
            chunk = sample[offset : offset + _BATCH]
            try:
                answers = call_batch(
                    self.urls[name],
                    [("eth_getTransactionReceipt", [tx]) for tx in chunk],
                    timeout=_READ_TIMEOUT,
                )
            except TransportError as exc:
                problems.setdefault(name, f"receipts not read: {_first_line(exc)}")
                return None
            for tx, answer in zip(chunk, answers, strict=True):
                if isinstance(answer, Exception):
                    problems.setdefault(name, f"receipts not read: {_first_line(answer)}")
                    return None
                if not isinstance(answer, dict):
                    missing.append(tx)
        return missing

    def _events(self) -> list[NetworkEvent]:
        try:
            return list(self.devnet.network_events_between(self.started_at, time.time()))
        except Exception as exc:  # events are for the report: their absence is no reason to fail the run
            logger.warning("run %r: the network's events could not be read: %s", self.plan.name, exc)
            return []


def network_asked_without_network(plan: ScenarioPlan, devnet_kind: str) -> list[Verdict]:
    """The network invariants the plan names explicitly, inconclusive: the devnet has a single node."""
    named = [name for name in plan.invariants or () if name in NETWORK_INVARIANT_NAMES]
    if not named:
        return []
    from pytest_gashammer.oracle.network import network_unavailable

    return network_unavailable(
        f"the {devnet_kind} devnet has a single node: no network to check",
        only=named,
        skip=plan.skip_invariants,
    )
