"""The edge runtime: one load generator running its share of a plan against a chain.

An edge receives an :class:`EdgeAssignment` (plain data: the compiled plan, endpoints, its sender
range and gas share), runs in a daemon thread with its own asyncio loop, and hands back an
:class:`~pytest_gashammer.telemetry.records.EdgeReport`. It does not know whether it lives in the
test's own process or in a pytest-xdist worker; whoever hosts it only calls :meth:`start`,
:meth:`snapshot`, :meth:`stop` and :meth:`join`.

Hot path per transaction: pick template and sender, build, take a nonce, sign, append a row to
the columnar log, and send in JSON-RPC batches spread over a few keep-alive connections.
Inclusion is tracked by following blocks (see :mod:`~pytest_gashammer.edge.tracker`).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import math
import random
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from pytest_gashammer.edge.accounts import NonceBook, Sender, derive_senders
from pytest_gashammer.edge.funding import fund_senders
from pytest_gashammer.edge.rpc import AsyncRpcClient, RpcError, TransportError
from pytest_gashammer.edge.setup import EdgeSetupContext
from pytest_gashammer.edge.signer import FastSigner
from pytest_gashammer.edge.tracker import BlockFollower
from pytest_gashammer.errors import GashammerError
from pytest_gashammer.scenario.spec import ScenarioPlan
from pytest_gashammer.telemetry.records import (
    NOT_YET,
    STATUS_ACCEPTED,
    STATUS_INCLUDED,
    STATUS_REJECTED,
    STATUS_SENT,
    BlockRecord,
    EdgeReport,
    TxLog,
)
from pytest_gashammer.workload.base import Template, TemplateContext
from pytest_gashammer.workload.rate import ArrivalSchedule
from pytest_gashammer.workload.registry import resolve_template

MAX_BATCH = 256
#: Transactions due within this window go out in one JSON-RPC batch. Per-request overhead (client
#: and node) dominates below saturation otherwise; the wait counts as latency, never hidden.
COALESCE_SECONDS = 0.004
#: Template index recorded for the self-transfers that fill a nonce hole left by a rejection.
GAP_FILLER = -1
NONCE_RESYNC_KINDS = frozenset({"nonce_too_low", "replacement_underpriced"})


@dataclasses.dataclass
class EdgeAssignment:
    """What the hive tells one edge to do. Plain data, so it can cross a process boundary."""

    edge_id: str
    plan: dict[str, Any]
    rpc_url: str
    ws_url: str | None
    chain_id: int
    funder_key: str
    sender_start: int = 0
    sender_count: int = 0
    gas_share: float = 1.0
    connections: int = 4
    feed_url: str | None = None
    #: Run-level setup already done by the hive for every edge (fees, funding, template setup,
    #: calibrated gas model); see :meth:`EdgeRuntime.prepare`. None: this edge does it itself.
    preparation: dict[str, Any] | None = None
    #: Set when the hive stores telemetry: the run id frames are tagged with, and how far the
    #: hive's wall clock is ahead of this edge's (0 on the same machine).
    telemetry_run_id: str | None = None
    clock_offset_ns: int = 0

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EdgeAssignment:
        return cls(**data)


@dataclasses.dataclass
class Progress:
    """A consistent-enough view of a running edge, read by the host for progress lines."""

    phase: str = "setup"
    elapsed: float = 0.0
    sent: int = 0
    accepted: int = 0
    rejected: int = 0
    included: int = 0
    included_gas: int = 0
    errors: int = 0
    recent_inclusion_p99: float | None = None
    queued: int = 0  # runs waiting behind this one at the hive
    edges: int = 1


class EdgeRuntime:
    """Runs one :class:`EdgeAssignment` in a daemon thread with its own event loop."""

    def __init__(
        self,
        assignment: EdgeAssignment,
        *,
        start_gate: Callable[[], None] | None = None,
        raw_tx_sink: Callable[[bytes, bytes], None] | None = None,
        telemetry_sink: Callable[[str, bytes], None] | None = None,
    ) -> None:
        """``raw_tx_sink(tx_hash, raw)`` sees every signed transaction (a feed relay in the same
        process uses it to spare the node a raw-bytes lookup per transaction)."""
        self.assignment = assignment
        self.plan = ScenarioPlan.from_dict(assignment.plan)
        self._start_gate = start_gate
        self.raw_tx_sink = raw_tx_sink
        #: ``telemetry_sink(table, arrow_ipc_frame)`` receives the run's telemetry as it happens.
        self.telemetry_sink = telemetry_sink
        #: The run's t=0 on the hive's wall clock, when the hive sets one (all edges share it).
        self.run_origin_unix_ns: int | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop_requested: str | None = None
        self._stop_event: asyncio.Event | None = None
        self._report: EdgeReport | None = None
        self._failure: BaseException | None = None
        self._done = threading.Event()
        self.progress = Progress()
        self._recent_latencies: deque[float] = deque(maxlen=2000)

    # -- host-facing API ------------------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._thread_main, name=f"gashammer-edge-{self.assignment.edge_id}", daemon=True
        )
        self._thread.start()

    def stop(self, reason: str = "stopped") -> None:
        """Ask the edge to stop sending and wrap up with what it has. Safe from any thread."""
        self._stop_requested = self._stop_requested or reason
        loop, event = self._loop, self._stop_event
        if loop is not None and event is not None:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(event.set)

    def join(self, timeout: float | None = None) -> bool:
        return self._done.wait(timeout)

    @property
    def done(self) -> bool:
        return self._done.is_set()

    def result(self) -> EdgeReport:
        """The report, or the error that ended the edge (re-raised here, in the host's thread)."""
        if not self._done.is_set():
            raise RuntimeError("the edge is still running; join() it first")
        if self._failure is not None:
            raise self._failure
        assert self._report is not None
        return self._report

    def snapshot(self) -> Progress:
        progress = dataclasses.replace(self.progress)
        if self._recent_latencies:
            ordered = sorted(self._recent_latencies)
            progress.recent_inclusion_p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
        return progress

    def run_blocking(self) -> EdgeReport:
        self.start()
        self.join()
        return self.result()

    # -- thread ---------------------------------------------------------------------------------
    def _thread_main(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            self._report = loop.run_until_complete(self._main())
        except BaseException as exc:  # handed to the host thread through result()
            self._failure = exc
        finally:
            with contextlib.suppress(Exception):
                loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()
            self._done.set()

    async def _main(self) -> EdgeReport:
        self._stop_event = asyncio.Event()
        if self._stop_requested:
            self._stop_event.set()
        async with AsyncRpcClient(self.assignment.rpc_url, connections=self.assignment.connections) as rpc:
            session = _EdgeSession(self, rpc)
            await session.setup()
            if self._start_gate is not None:
                await asyncio.get_running_loop().run_in_executor(None, self._start_gate)
            return await session.run()


class _EdgeSession:
    """State of one run on one edge. Lives on the edge's event loop thread only."""

    def __init__(self, runtime: EdgeRuntime, rpc: AsyncRpcClient) -> None:
        self.runtime = runtime
        self.assignment = runtime.assignment
        self.plan = runtime.plan
        self.rpc = rpc
        self.log = TxLog()
        self.blocks: list[BlockRecord] = []
        self.errors: dict[str, int] = {}
        self.notes: list[str] = []
        self.by_hash: dict[bytes, int] = {}
        self.duplicates: list[str] = []
        self.pending_receipts: deque[int] = deque()
        self.receipts_checked = 0
        self.receipts_skipped = 0
        self.accepted_outstanding = 0
        self.tasks: set[asyncio.Task[Any]] = set()
        self.origin_ns = 0
        self.wall_origin_ns = 0
        self.sending_finished_ns = NOT_YET
        self.resyncing: set[int] = set()
        self.submit_slots = asyncio.Semaphore(runtime.assignment.connections * 2)
        self.correlator: Any = None
        self.feed_client: Any = None
        self.feed_task: asyncio.Task[None] | None = None
        self.feed_stop = asyncio.Event()
        self.feed_findings: dict[str, Any] | None = None
        self.chain_blocks: list[tuple[int, str, list[str]]] = []
        self.balance_check = False
        self.balance_facts: dict[str, int] | None = None

    # -- setup ----------------------------------------------------------------------------------
    async def setup(self) -> None:
        plan, assignment = self.plan, self.assignment
        try:
            chain_id = int(await self.rpc.call("eth_chainId"), 16)
        except TransportError as exc:
            raise GashammerError(
                f"edge {assignment.edge_id}: cannot reach {assignment.rpc_url} ({exc})"
            ) from None
        if chain_id != assignment.chain_id:
            raise GashammerError(
                f"edge {assignment.edge_id}: node reports chain id {chain_id}, plan expects {assignment.chain_id}"
            )

        count = assignment.sender_count or plan.senders
        self.senders: list[Sender] = derive_senders(plan.seed, assignment.sender_start, count)
        context = TemplateContext(
            chain_id=chain_id, seed=plan.seed, sender_addresses=[s.address for s in self.senders]
        )
        self.template_classes = [resolve_template(name) for name, _, _ in plan.workload]
        self.templates: list[Template] = [
            cls(context, params)
            for cls, (_, _, params) in zip(self.template_classes, plan.workload, strict=True)
        ]
        self.shares = [share for _, share, _ in plan.workload]

        self.gas_model = [template.nominal_gas_for(template.options) for template in self.templates]
        self.gas_model_version = 0
        self.gas_observed: list[list[float]] = [[0.0, 0.0] for _ in self.templates]  # sum, count
        self.schedule = ArrivalSchedule(
            plan.phases,
            self.shares,
            lambda index: self.gas_model[index],
            arrival=plan.arrival,
            seed=plan.seed + assignment.sender_start,
            gas_scale=assignment.gas_share,
            gas_version=lambda: self.gas_model_version,
        )
        # Receipts are fetched for an evenly spread sample (every receipt with receipts="all"): each
        # one costs the node about as much as accepting the transaction did.
        wanted = plan.receipts
        expected_rows = max(self.schedule.expected_transactions(), 1.0)
        self.receipt_stride = 1 if wanted is None else (math.ceil(expected_rows / wanted) if wanted else 0)
        if assignment.preparation is not None:
            self._adopt(assignment.preparation)
        else:
            await self.prepare(chain_id)

        # The model as calibrated before the clock starts: what the gas invariant holds receipts to.
        self.gas_estimate = list(self.gas_model)
        counts = await self.rpc.batch(
            [("eth_getTransactionCount", [s.address, "pending"]) for s in self.senders]
        )
        if any(isinstance(answer, Exception) for answer in counts):
            raise GashammerError(
                f"edge {assignment.edge_id}: eth_getTransactionCount failed for a sender: {counts}"
            )
        self.start_nonces = [int(answer, 16) for answer in counts]
        self.nonces = NonceBook(list(self.start_nonces))
        self.rng = random.Random(plan.seed * 1_000_003 + assignment.sender_start)
        self.start_block = int(await self.rpc.call("eth_blockNumber"), 16)
        # Value conservation needs every fee paid (all receipts) and a known value per transaction.
        self.balance_check = plan.receipts is None and all(name == "transfer" for name, _, _ in plan.workload)
        self.fees_paid = 0
        if self.balance_check:
            self.balances_before = await self._balances_at(self.start_block)
        if assignment.feed_url and self.plan.feed:
            await self._start_feed(chain_id)
        self.signers = [FastSigner(sender.key, assignment.chain_id) for sender in self.senders]
        self.prepared: dict[tuple[int, int], Any] = {}

    def _adopt(self, preparation: dict[str, Any]) -> None:
        """Take over the hive's run-level setup instead of repeating it on every edge."""
        self.max_fee = int(preparation["max_fee_per_gas"])
        self.max_priority_fee = int(preparation["max_priority_fee_per_gas"])
        for template, data in zip(self.templates, preparation["template_setup"], strict=True):
            template.use_setup(data)
        self.gas_model = [float(gas) for gas in preparation["gas_model"]]
        self.gas_model_version += 1

    def preparation(self) -> dict[str, Any]:
        """What :meth:`prepare` established, as plain data for other edges' assignments."""
        return {
            "max_fee_per_gas": self.max_fee,
            "max_priority_fee_per_gas": self.max_priority_fee,
            "template_setup": [dict(template.context.setup) for template in self.templates],
            "gas_model": list(self.gas_model),
        }

    async def prepare(self, chain_id: int) -> None:
        """Run-level setup: fees, funding of this edge's senders, template setup, gas calibration."""
        plan, assignment = self.plan, self.assignment
        tip = plan.max_priority_fee_per_gas
        if tip is None:
            try:
                tip = int(await self.rpc.call("eth_maxPriorityFeePerGas"), 16)
            except (RpcError, TransportError):
                tip = 0
        self.max_priority_fee = tip
        if plan.max_fee_per_gas is not None:
            self.max_fee = plan.max_fee_per_gas
        else:
            latest = await self.rpc.call("eth_getBlockByNumber", "latest", False)
            base_fee = int(latest.get("baseFeePerGas") or "0x0", 16)
            self.max_fee = max(2 * base_fee + tip, 1)
        # Fund from the nominal model first: setup and calibration need senders with ETH.
        await self._fund_senders()
        setup_context = EdgeSetupContext(
            self.rpc,
            chain_id=chain_id,
            funder_key=assignment.funder_key,
            senders=self.senders,
            max_fee_per_gas=self.max_fee,
            max_priority_fee_per_gas=self.max_priority_fee,
        )
        for template in self.templates:
            template.use_setup(await template.setup(setup_context))
        for index, template in enumerate(self.templates):
            if not template.calibrate:
                continue
            try:
                request = template.estimate_request(self.senders[0].address)
                self.gas_model[index] = float(int(await self.rpc.call("eth_estimateGas", request), 16))
                self.gas_model_version += 1
            except (RpcError, TransportError) as exc:
                self.notes.append(
                    f"eth_estimateGas for {plan.workload[index][0]} failed ({exc}); using its nominal gas"
                )
        # Calibration may have raised the cost per transaction: top the senders up to match.
        await self._fund_senders()

    def _start_telemetry(self) -> bool:
        sink, run_id = self.runtime.telemetry_sink, self.assignment.telemetry_run_id
        if sink is None or run_id is None:
            return False
        from pytest_gashammer.telemetry.stream import ClockMap, EdgeTelemetry

        clock = ClockMap(
            self.origin_ns,
            self.wall_origin_ns,
            run_origin_unix_ns=self.runtime.run_origin_unix_ns or self.wall_origin_ns,
            edge_offset_ns=self.assignment.clock_offset_ns,
        )
        self.telemetry = EdgeTelemetry(
            self.log,
            run_id=run_id,
            edge_id=self.assignment.edge_id,
            clock=clock,
            blocks=self.blocks,
            feed_events=self.feed_client.events if self.feed_client is not None else None,
            duplicates=self.duplicates,
            templates=[name for name, _, _ in self.plan.workload],
            sender_addresses=[sender.address for sender in self.senders],
            sender_offset=self.assignment.sender_start,
            receipt_stride=self.receipt_stride,
            feed=self.correlator,
            phases=self.plan.phases,
        )
        return True

    async def _telemetry_loop(self, stop: asyncio.Event) -> None:
        """Ship what became final about once a second, so a cut-short run leaves what it saw."""
        while not stop.is_set():
            await asyncio.sleep(1.0)
            self._ship_telemetry(final=False)

    def _ship_telemetry(self, *, final: bool) -> None:
        sink = self.runtime.telemetry_sink
        assert sink is not None
        try:
            for table, frame in self.telemetry.frames(final=final):
                sink(table, frame)
        except Exception as exc:  # telemetry must never end a run; the loss is counted and noted
            self.errors["telemetry"] = self.errors.get("telemetry", 0) + 1
            if len(self.notes) < 50:
                self.notes.append(f"telemetry: {type(exc).__name__}: {exc}")

    async def _balances_at(self, block: int) -> list[int]:
        answers = await self.track_rpc.batch(
            [("eth_getBalance", [sender.address, hex(block)]) for sender in self.senders]
        ) if hasattr(self, "track_rpc") else await self.rpc.batch(
            [("eth_getBalance", [sender.address, hex(block)]) for sender in self.senders]
        )  # fmt: skip
        if any(isinstance(answer, Exception) for answer in answers):
            raise TransportError(f"eth_getBalance at block {block} failed for a sender")
        return [int(answer, 16) for answer in answers]

    async def _check_balances(self, last_block: int) -> None:
        """What the senders lost must equal the value they moved plus the fees they paid."""
        if not self.balance_check or self.runtime._stop_requested or self.pending_receipts:
            return
        log = self.log
        included = [row for row in range(len(log)) if log.included_ns[row] != NOT_YET]
        if any(log.gas_used[row] == NOT_YET for row in included):
            return  # a receipt is missing: the fees are not all known
        try:
            after = await self._balances_at(last_block)
        except (RpcError, TransportError) as exc:
            self.notes.append(f"balance check skipped: {exc}")
            return
        moved = sum(1 for row in included if log.template[row] >= 0)  # a transfer moves 1 wei; fillers 0
        self.balance_facts = {
            "block_before": self.start_block,
            "block_after": last_block,
            "senders_lost": sum(self.balances_before) - sum(after),
            "value_moved": moved,
            "fees_paid": self.fees_paid,
        }

    async def _start_feed(self, chain_id: int) -> None:
        """Follow the sequencer feed from the next block on, correlating what this edge sends."""
        from pytest_gashammer.feed.client import FeedClient
        from pytest_gashammer.feed.correlator import Correlator

        assert self.assignment.feed_url is not None
        self.correlator = Correlator()
        self.feed_client = FeedClient(
            self.assignment.feed_url,
            expected_chain_id=chain_id,
            start_sequence=self.start_block + 1,
            on_message=self.correlator.on_message,
        )
        self.feed_task = asyncio.create_task(self.feed_client.run(self.feed_stop))
        deadline = time.monotonic() + 5.0
        while not self.feed_client.connected and not self.feed_task.done() and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        if self.feed_task.done():
            self.feed_task.result()  # a fatal handshake problem (wrong chain id) ends the run here
        if not self.feed_client.connected:
            self.notes.append(
                f"feed {self.assignment.feed_url} not connected after 5 s; still trying during the run"
            )

    async def _stop_feed(self) -> None:
        if self.feed_task is None:
            return
        included = sum(1 for state in self.log.state if state == STATUS_INCLUDED)
        deadline = time.monotonic() + 3.0
        while self.correlator.matched < included and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        self.feed_stop.set()
        try:
            await asyncio.wait_for(self.feed_task, 5.0)
        except GashammerError as exc:
            self.errors["feed_fatal"] = self.errors.get("feed_fatal", 0) + 1
            self.notes.append(str(exc))
        except (TimeoutError, asyncio.CancelledError):
            self.feed_task.cancel()
        self.feed_findings = self.correlator.check_against_chain(self.chain_blocks).as_dict()

    async def _fund_senders(self) -> None:
        expected = self.schedule.expected_transactions()
        per_sender = expected / max(len(self.senders), 1) * 1.5 + 10
        gas_limits = [
            template.gas_limit(gas) for template, gas in zip(self.templates, self.gas_model, strict=True)
        ]
        worst_tx_cost = max(gas_limits) * self.max_fee + 10**12
        await fund_senders(
            self.rpc,
            chain_id=self.assignment.chain_id,
            funder_key=self.assignment.funder_key,
            senders=self.senders,
            amount_wei=int(per_sender * worst_tx_cost),
            max_fee_per_gas=self.max_fee,
            max_priority_fee_per_gas=self.max_priority_fee,
        )

    # -- run ------------------------------------------------------------------------------------
    async def run(self) -> EdgeReport:
        # Tracking gets connections of its own so that a burst of submissions never delays
        # seeing a block (which would inflate inclusion latency and bunch up per-second figures).
        async with AsyncRpcClient(self.assignment.rpc_url, connections=2) as track_rpc:
            self.track_rpc = track_rpc
            return await self._run()

    async def _run(self) -> EdgeReport:
        runtime = self.runtime
        stop = runtime._stop_event
        assert stop is not None
        follower = BlockFollower(
            self.track_rpc, self._on_block, ws_url=self.assignment.ws_url, start_block=self.start_block
        )
        tracker_stop = asyncio.Event()
        tracker = asyncio.create_task(follower.run(tracker_stop))
        receipts = asyncio.create_task(self._receipt_loop(tracker_stop))
        self.origin_ns = time.monotonic_ns()
        self.wall_origin_ns = time.time_ns()
        telemetry = (
            asyncio.create_task(self._telemetry_loop(tracker_stop)) if self._start_telemetry() else None
        )
        runtime.progress.phase = "sending"
        try:
            await self._send_loop(stop)
            await self._wait_for_inclusion(stop, follower)
        finally:
            await follower.catch_up()
            await self._stop_feed()
            tracker_stop.set()
            await asyncio.gather(tracker, return_exceptions=True)
            await self._drain_receipts(stop)
            await self._check_balances(follower.last_block)
            receipts.cancel()
            await asyncio.gather(receipts, return_exceptions=True)
            if telemetry is not None:
                telemetry.cancel()
                await asyncio.gather(telemetry, return_exceptions=True)
                self._ship_telemetry(final=True)
            for kind, count in follower.errors.items():
                self.errors[f"tracker_{kind}"] = self.errors.get(f"tracker_{kind}", 0) + count
        runtime.progress.phase = "done"
        return self._report(stop)

    def _report(self, stop: asyncio.Event) -> EdgeReport:
        for index, (total, count) in enumerate(self.gas_observed):
            if count:
                self.gas_model[index] = total / count
        return EdgeReport(
            edge_id=self.assignment.edge_id,
            host=socket.gethostname(),
            clock_origin_ns=self.origin_ns,
            wall_origin_ns=self.wall_origin_ns,
            txs=self.log,
            blocks=self.blocks,
            templates=[name for name, _, _ in self.plan.workload],
            template_expected_status=[cls.expected_status for cls in self.template_classes],
            template_gas_model=list(self.gas_model),
            template_gas_estimate=list(self.gas_estimate),
            template_gas_tolerance=[cls.gas_tolerance for cls in self.template_classes],
            sender_addresses=[s.address for s in self.senders],
            sender_start_nonces=list(self.start_nonces),
            sender_foreign_nonces=[sorted(nonces) for nonces in self.nonces.foreign],
            errors=dict(self.errors),
            receipts_checked=self.receipts_checked,
            receipts_skipped=self.receipts_skipped,
            duplicates=self.duplicates,
            sending_finished_ns=self.sending_finished_ns,
            stopped_early=self.runtime._stop_requested,
            notes=self.notes,
            feed_columns=self.correlator.to_columns() if self.correlator is not None else None,
            feed_stats=self.feed_client.stats.as_dict() if self.feed_client is not None else None,
            feed_events=[(e.kind, e.ns, e.detail, e.sequence) for e in self.feed_client.events]
            if self.feed_client is not None
            else [],
            feed_findings=self.feed_findings,
            balance_check=self.balance_facts,
        )

    def _now(self) -> float:
        return (time.monotonic_ns() - self.origin_ns) / 1e9

    async def _send_loop(self, stop: asyncio.Event) -> None:
        progress = self.runtime.progress
        sender_count = len(self.senders)
        next_arrival = self.schedule.next()
        cap = self.plan.max_in_flight
        turn = 0
        while next_arrival is not None and not stop.is_set():
            now = self._now()
            progress.elapsed = now
            progress.phase = self._phase_at(now)
            if cap is not None and self.accepted_outstanding >= cap:
                await asyncio.sleep(0.005)
                continue
            batch: list[tuple[int, bytes]] = []
            while next_arrival is not None and next_arrival[0] <= now and len(batch) < MAX_BATCH:
                t, template_index = next_arrival
                sender = turn % sender_count
                turn += 1
                batch.append(self._build(template_index, sender, self.origin_ns + int(t * 1e9)))
                next_arrival = self.schedule.next()
            if batch:
                # Bounded submissions in flight: past that, sending waits (and latency shows it).
                await self.submit_slots.acquire()
                self._spawn(self._submit(batch))
                if len(batch) == MAX_BATCH:
                    await asyncio.sleep(0)
                    continue
            if next_arrival is not None:
                wait = min(max(next_arrival[0] - self._now(), 0.0), 0.02)
                await asyncio.sleep(max(wait, COALESCE_SECONDS) if batch else wait)
        self.sending_finished_ns = time.monotonic_ns()
        if self.tasks:
            await asyncio.gather(*list(self.tasks), return_exceptions=True)
        await self._fill_holes()

    def _phase_at(self, t: float) -> str:
        for phase in self.plan.phases:
            if phase.start <= t < phase.end:
                return phase.name
        return "draining"

    def _build(self, template_index: int, sender: int, intended_ns: int) -> tuple[int, bytes]:
        template = self.templates[template_index]
        fields = template.build(sender, self.rng)
        nonce = self.nonces.take(sender)
        gas_limit = template.gas_limit(self.gas_model[template_index])
        raw, tx_hash = self._sign(sender, nonce, gas_limit, fields)
        row = self.log.append(
            template_index, sender, nonce, int(self.gas_model[template_index]), intended_ns, tx_hash
        )
        self._register(tx_hash, row, intended_ns, raw)
        return row, raw

    def _sign(self, sender: int, nonce: int, gas_limit: int, fields: dict[str, Any]) -> tuple[bytes, bytes]:
        # Fees and gas limit are fixed per (sender, gas limit): pre-encode them once, then only the
        # nonce, recipient, value and calldata are encoded per transaction.
        key = (sender, gas_limit)
        prepared = self.prepared.get(key)
        if prepared is None:
            prepared = self.prepared[key] = self.signers[sender].prepare(
                {
                    "type": 2,
                    "gas": gas_limit,
                    "maxFeePerGas": self.max_fee,
                    "maxPriorityFeePerGas": self.max_priority_fee,
                    "to": None,
                    "value": 0,
                    "data": b"",
                }
            )
        signed = prepared.sign_fields(
            nonce,
            to=fields.get("to") or None,
            value=int(fields.get("value", 0)),
            data=fields.get("data") or b"",
        )
        return signed.raw, signed.hash

    def _register(self, tx_hash: bytes, row: int, intended_ns: int, raw: bytes) -> None:
        self.by_hash[tx_hash] = row
        if self.correlator is not None:
            self.correlator.register(tx_hash, row, intended_ns)
        if self.runtime.raw_tx_sink is not None:
            self.runtime.raw_tx_sink(tx_hash, raw)

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.create_task(coroutine)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _submit(self, batch: list[tuple[int, bytes]]) -> None:
        try:
            await self._submit_batch(batch)
        finally:
            self.submit_slots.release()

    async def _submit_batch(self, batch: list[tuple[int, bytes]]) -> None:
        log, progress = self.log, self.runtime.progress
        sent_ns = time.monotonic_ns()
        for row, _ in batch:
            log.sent_ns[row] = sent_ns
            log.state[row] = STATUS_SENT
        progress.sent += len(batch)
        calls = [("eth_sendRawTransaction", ["0x" + raw.hex()]) for _, raw in batch]
        try:
            answers: list[Any] = await self.rpc.batch(calls)
        except TransportError as exc:
            answers = [exc] * len(batch)
        answered_ns = time.monotonic_ns()
        for (row, _), answer in zip(batch, answers, strict=True):
            if isinstance(answer, str):
                self._accept(row, answered_ns)
                continue
            kind = getattr(answer, "kind", "transport")
            if kind == "already_known":
                self._accept(row, answered_ns)
                continue
            self._reject(row, kind)

    def _accept(self, row: int, answered_ns: int) -> None:
        log = self.log
        if log.accepted_ns[row] != NOT_YET:
            return
        log.accepted_ns[row] = answered_ns
        if log.state[row] != STATUS_INCLUDED:
            log.state[row] = STATUS_ACCEPTED
            self.accepted_outstanding += 1
        self.runtime.progress.accepted += 1

    def _reject(self, row: int, kind: str) -> None:
        log = self.log
        log.state[row] = STATUS_REJECTED
        log.error[row] = log.error_code(kind)
        self.errors[kind] = self.errors.get(kind, 0) + 1
        self.runtime.progress.rejected += 1
        self.runtime.progress.errors += 1
        sender = log.sender[row]
        if kind in NONCE_RESYNC_KINDS:
            self.nonces.mark_foreign(sender, log.nonce[row])
            if sender not in self.resyncing:
                self.resyncing.add(sender)
                self._spawn(self._resync(sender))
        else:
            self.nonces.release(sender, log.nonce[row])

    async def _resync(self, sender: int) -> None:
        try:
            pending = int(
                await self.rpc.call("eth_getTransactionCount", self.senders[sender].address, "pending"), 16
            )
            self.nonces.resync(sender, pending)
        except (RpcError, TransportError) as exc:
            self.errors["nonce_resync"] = self.errors.get("nonce_resync", 0) + 1
            self.notes.append(f"nonce resync for sender {sender} failed: {exc}")
        finally:
            self.resyncing.discard(sender)

    async def _fill_holes(self) -> None:
        """Send a self-transfer into every nonce a rejection left unused, so no later nonce is stranded."""
        for _attempt in range(3):
            batch = []
            for sender in range(len(self.senders)):
                for nonce in self.nonces.holes(sender):
                    if nonce >= self.nonces.next_nonce(sender):
                        continue
                    taken = self.nonces.take(sender)
                    raw, tx_hash = self._sign(
                        sender, taken, 21_000, {"to": self.senders[sender].address, "value": 0}
                    )
                    intended_ns = time.monotonic_ns()
                    row = self.log.append(GAP_FILLER, sender, taken, 21_000, intended_ns, tx_hash)
                    self._register(tx_hash, row, intended_ns, raw)
                    batch.append((row, raw))
            if not batch:
                return
            self.notes.append(f"filled {len(batch)} nonce hole(s) left by rejected transactions")
            await self._submit_batch(batch)

    async def _wait_for_inclusion(self, stop: asyncio.Event, follower: BlockFollower) -> None:
        self.runtime.progress.phase = "draining"
        deadline = time.monotonic() + self.plan.inclusion_timeout
        while self.accepted_outstanding > 0 and time.monotonic() < deadline and not stop.is_set():
            self.runtime.progress.elapsed = self._now()
            await asyncio.sleep(0.05)

    # -- inclusion and receipts -----------------------------------------------------------------
    def _on_block(self, record: BlockRecord, tx_hashes: list[str]) -> None:
        self.blocks.append(record)
        if self.correlator is not None:
            self.chain_blocks.append((record.number, record.hash, tx_hashes))
        log, progress = self.log, self.runtime.progress
        latencies = self.runtime._recent_latencies
        for text in tx_hashes:
            tx_hash = bytes.fromhex(text[2:])
            row = self.by_hash.get(tx_hash)
            if row is None:
                continue
            log.inclusions[row] = min(log.inclusions[row] + 1, 100)
            if log.inclusions[row] > 1:
                self.duplicates.append(text)
                if self.plan.fail_fast:
                    self.runtime.stop(f"fail-fast: no_duplicate_inclusion broke on {text}")
                continue
            if log.state[row] == STATUS_ACCEPTED:
                self.accepted_outstanding -= 1
            log.included_ns[row] = record.observed_ns
            log.block_number[row] = record.number
            log.state[row] = STATUS_INCLUDED
            progress.included += 1
            progress.included_gas += log.gas_planned[row]
            latencies.append((record.observed_ns - log.intended_ns[row]) / 1e9)
            if self.receipt_stride and row % self.receipt_stride == 0:
                self.pending_receipts.append(row)
            else:
                self.receipts_skipped += 1

    async def _receipt_loop(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            if len(self.pending_receipts) >= 64:
                await self._fetch_receipts(200)
            else:
                await asyncio.sleep(0.2)

    async def _drain_receipts(self, stop: asyncio.Event) -> None:
        deadline = time.monotonic() + max(30.0, self.plan.inclusion_timeout)
        while self.pending_receipts and time.monotonic() < deadline:
            if stop.is_set() and self.runtime._stop_requested:
                self.receipts_skipped += len(self.pending_receipts)
                self.pending_receipts.clear()
                return
            await self._fetch_receipts(500)

    async def _fetch_receipts(self, limit: int) -> None:
        rows = [self.pending_receipts.popleft() for _ in range(min(limit, len(self.pending_receipts)))]
        if not rows:
            return
        log = self.log
        try:
            answers = await self.track_rpc.batch(
                [("eth_getTransactionReceipt", [log.tx_hash(row)]) for row in rows]
            )
        except TransportError as exc:
            self.errors["receipt_fetch"] = self.errors.get("receipt_fetch", 0) + 1
            self.notes.append(f"receipt fetch failed: {exc}")
            self.pending_receipts.extendleft(reversed(rows))
            await asyncio.sleep(0.2)
            return
        for row, receipt in zip(rows, answers, strict=True):
            if not isinstance(receipt, dict):
                self.errors["receipt_missing"] = self.errors.get("receipt_missing", 0) + 1
                continue
            log.receipt_status[row] = int(receipt.get("status", "0x0"), 16)
            if self.plan.fail_fast:
                template = log.template[row]
                expected = self.template_classes[template].expected_status if template >= 0 else 1
                if log.receipt_status[row] != expected:
                    self.runtime.stop(f"fail-fast: receipt_status broke on {log.tx_hash(row)}")
            gas_used = int(receipt.get("gasUsed", "0x0"), 16)
            self.fees_paid += gas_used * int(receipt.get("effectiveGasPrice", "0x0"), 16)
            log.gas_used[row] = gas_used
            template = log.template[row]
            if template >= 0:
                observed = self.gas_observed[template]
                observed[0] += gas_used
                observed[1] += 1
                # Correct the model from receipts so the gas rate tracks what the chain really charges.
                self.gas_model[template] = observed[0] / observed[1]
                self.gas_model_version += 1
            self.receipts_checked += 1


def prepare_run(assignment: EdgeAssignment) -> dict[str, Any]:
    """Do a run's one-time setup for every sender in ``assignment`` and return it as plain data.

    The hive calls this once per multi-edge run (with the whole sender range), then hands the
    result to every edge in :attr:`EdgeAssignment.preparation`, so the funder's nonces are used by
    one process only and contracts are deployed once.
    """
    no_feed = dataclasses.replace(assignment, feed_url=None, preparation=None)

    async def main() -> dict[str, Any]:
        async with AsyncRpcClient(no_feed.rpc_url, connections=no_feed.connections) as rpc:
            session = _EdgeSession(EdgeRuntime(no_feed), rpc)
            await session.setup()
            return session.preparation()

    return asyncio.run(main())
