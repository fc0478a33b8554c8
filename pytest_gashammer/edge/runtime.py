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
import bisect
import contextlib
import dataclasses
import math
import random
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any, NamedTuple

from pytest_gashammer.edge.accounts import NonceBook, Sender, derive_senders
from pytest_gashammer.edge.funding import fund_senders
from pytest_gashammer.edge.rpc import AsyncRpcClient, RpcError, TransportError, batch_results
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
    BlockRecord,
    EdgeReport,
    StopKind,
    TxLog,
)
from pytest_gashammer.workload.base import Template, TemplateContext
from pytest_gashammer.workload.rate import ArrivalSchedule
from pytest_gashammer.workload.registry import resolve_template

MAX_BATCH = 256
#: How far ahead of its intended send time a transaction may be signed, and how many may wait
#: signed: enough that signing never makes a due send late, bounded so a stop wastes little.
SIGN_AHEAD_SECONDS = 0.05
SIGN_AHEAD_LIMIT = 1024
#: Transactions signed between two checks for due sends (~1.5 ms of signing).
SIGN_CHUNK = 32
#: Transactions due within this window go out in one JSON-RPC batch. Per-request overhead (client
#: and node) dominates below saturation otherwise; the wait counts as latency, never hidden.
COALESCE_SECONDS = 0.004
#: Accepted-but-never-included transactions the edge asks the node about after the drain.
LOST_PROBE_LIMIT = 20
#: Template index recorded for the self-transfers that fill a nonce hole left by a rejection.
GAP_FILLER = -1
NONCE_RESYNC_KINDS = frozenset({"nonce_too_low", "replacement_underpriced"})
# One eth_sendRawTransaction request, rendered when the transaction is signed; its id is the row.
_SEND_RAW_REQUEST = '{"jsonrpc":"2.0","id":%d,"method":"eth_sendRawTransaction","params":["0x%s"]}'


def _resolve(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


class _Batch(NamedTuple):
    """Consecutive rows sent in one request, with their rendered requests (and raw bytes if needed)."""

    first: int
    size: int
    requests: list[str]
    raws: list[bytes] | None


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
        self._stop_kind: StopKind | None = None
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

    def stop(self, reason: str = "stopped", kind: StopKind = "requested") -> None:
        """Ask the edge to stop sending and wrap up with what it has. Safe from any thread."""
        if not self._stop_requested:
            self._stop_requested, self._stop_kind = reason, kind
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
        url = self.assignment.rpc_url
        # Tracking gets connections of its own so that a burst of submissions never delays seeing a
        # block (which would inflate inclusion latency and bunch up per-second figures).
        async with (
            AsyncRpcClient(url, connections=self.assignment.connections) as rpc,
            AsyncRpcClient(url, connections=2) as track_rpc,
        ):
            session = _EdgeSession(self, rpc, track_rpc)
            await session.setup()
            if self._start_gate is not None:
                await asyncio.get_running_loop().run_in_executor(None, self._start_gate)
            return await session.run()


class _EdgeSession:
    """State of one run on one edge. Lives on the edge's event loop thread only."""

    def __init__(self, runtime: EdgeRuntime, rpc: AsyncRpcClient, track_rpc: AsyncRpcClient) -> None:
        self.runtime = runtime
        self.assignment = runtime.assignment
        self.plan = runtime.plan
        self.rpc = rpc
        self.track_rpc = track_rpc
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
        self.submit_slots = asyncio.Semaphore(runtime.assignment.connections)
        self.correlator: Any = None
        self.feed_client: Any = None
        self.feed_task: asyncio.Task[None] | None = None
        self.feed_stop = asyncio.Event()
        self.feed_findings: dict[str, Any] | None = None
        self.lost_probe: dict[str, str] = {}
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
        # On the tracking client: its connection is then open before the clock starts.
        self.start_block = int(await self.track_rpc.call("eth_blockNumber"), 16)
        # Value conservation needs every fee paid (all receipts) and a known value per transaction.
        self.balance_check = plan.receipts is None and all(name == "transfer" for name, _, _ in plan.workload)
        self.fees_paid = 0
        if self.balance_check:
            self.balances_before = await self._balances_at(self.start_block)
        if assignment.feed_url and self.plan.feed:
            await self._start_feed(chain_id)
        self.signers = [FastSigner(sender.key, assignment.chain_id) for sender in self.senders]
        self.prepared: dict[tuple[int, int], Any] = {}
        self.turn = 0
        self.slot_waiter: asyncio.Future[None] | None = None
        self.next_arrival: tuple[float, int] | None = None
        self.unsent_from = 0
        self.unsent_requests: list[str] = []
        self.unsent_raws: list[bytes] | None = [] if self.runtime.raw_tx_sink is not None else None

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
        )
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

    async def _probe_lost(self) -> None:
        """Ask the node about the first accepted transactions no block has shown, for the evidence."""
        if self.accepted_outstanding <= 0 or self.runtime._stop_requested:
            return
        log = self.log
        rows = [row for row in range(len(log)) if log.state[row] == STATUS_ACCEPTED][:LOST_PROBE_LIMIT]
        senders = sorted({log.sender[row] for row in rows})
        calls = [("eth_getTransactionByHash", [log.tx_hash(row)]) for row in rows]
        calls += [("eth_getTransactionCount", [self.senders[sender].address, "latest"]) for sender in senders]
        try:
            answers = await self.track_rpc.batch(calls)
        except TransportError as exc:
            self.notes.append(f"could not ask the node about transactions never seen in a block: {exc}")
            return
        on_chain = dict(zip(senders, answers[len(rows) :], strict=True))
        for row, found in zip(rows, answers[: len(rows)], strict=True):
            count = on_chain[log.sender[row]]
            try:
                diagnosis = diagnose_lost(
                    found, log.nonce[row], int(count, 16) if isinstance(count, str) else None
                )
            except (ValueError, TypeError, AttributeError) as exc:
                diagnosis = f"the node's answer could not be read ({exc})"
            self.lost_probe[log.tx_hash(row)] = (
                f"sender {self.senders[log.sender[row]].address} nonce {log.nonce[row]}: {diagnosis}"
            )

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
            await self._probe_lost()
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
            stop_kind=self.runtime._stop_kind,
            notes=self.notes,
            feed_columns=self.correlator.to_columns() if self.correlator is not None else None,
            feed_stats=self.feed_client.stats.as_dict() if self.feed_client is not None else None,
            feed_events=[(e.kind, e.ns, e.detail, e.sequence) for e in self.feed_client.events]
            if self.feed_client is not None
            else [],
            feed_findings=self.feed_findings,
            balance_check=self.balance_facts,
            lost_probe=self.lost_probe,
        )

    def _now(self) -> float:
        return (time.monotonic_ns() - self.origin_ns) / 1e9

    async def _send_loop(self, stop: asyncio.Event) -> None:
        """Send every transaction at its intended time, signed ahead of it.

        Signing runs up to :data:`SIGN_AHEAD_SECONDS` (and :data:`SIGN_AHEAD_LIMIT` transactions)
        ahead of the schedule, in chunks, so a due send waits for at most one chunk of signing.
        Signed rows are already in the log (state "scheduled"); rows ``unsent_from ..`` are the
        buffer, and their ``eth_sendRawTransaction`` requests are rendered as JSON text once, when
        signed. Due rows go out in one batch; after a send the loop lets at least
        :data:`COALESCE_SECONDS` pass, so that below saturation requests carry several transactions.
        """
        progress = self.runtime.progress
        log = self.log
        intended = log.intended_ns
        cap = self.plan.max_in_flight
        coalesce_ns = int(COALESCE_SECONDS * 1e9)
        ahead_ns = int(SIGN_AHEAD_SECONDS * 1e9)
        self.next_arrival = self.schedule.next()
        self.unsent_from = len(log)
        last_send_ns = 0
        while not stop.is_set():
            now_ns = time.monotonic_ns()
            progress.elapsed = (now_ns - self.origin_ns) / 1e9
            progress.phase = self._phase_at(progress.elapsed)
            buffered = len(log) - self.unsent_from
            if not buffered and self.next_arrival is None:
                break
            if cap is not None and self.accepted_outstanding >= cap:
                await asyncio.sleep(0.005)
                continue
            if (
                buffered
                and intended[self.unsent_from] <= now_ns
                and (now_ns - last_send_ns >= coalesce_ns or buffered >= MAX_BATCH)
                and not self.submit_slots.locked()
            ):
                # One request per connection at most: while every connection is busy, due rows
                # wait here and the next request carries all of them (the node gains from bigger
                # batches exactly when it is the bottleneck). The wait shows in the send lag.
                due_end = bisect.bisect_right(intended, now_ns, self.unsent_from, len(log))
                while self.unsent_from < due_end and not self.submit_slots.locked():
                    count = min(due_end - self.unsent_from, MAX_BATCH)
                    await self.submit_slots.acquire()
                    self._spawn(self._submit(self._take_unsent(count)))
                last_send_ns = now_ns
                buffered = len(log) - self.unsent_from
            arrival = self.next_arrival
            if (
                arrival is not None
                and buffered < SIGN_AHEAD_LIMIT
                and self.origin_ns + arrival[0] * 1e9 <= now_ns + ahead_ns
            ):
                self._sign_ahead(now_ns + ahead_ns, min(SIGN_CHUNK, SIGN_AHEAD_LIMIT - buffered))
                await asyncio.sleep(0)  # let answers, blocks and submissions in between chunks
                continue
            if buffered and intended[self.unsent_from] <= now_ns and self.submit_slots.locked():
                await self._slot_freed(0.02)
                continue
            if buffered:
                wake_ns = max(intended[self.unsent_from], last_send_ns + coalesce_ns)
            elif arrival is not None:
                wake_ns = self.origin_ns + int(arrival[0] * 1e9) - ahead_ns
            else:
                wake_ns = now_ns
            await asyncio.sleep(min(max(wake_ns - time.monotonic_ns(), 0) / 1e9, 0.02))
        self._drop_unsent()
        self.sending_finished_ns = time.monotonic_ns()
        if self.tasks:
            await asyncio.gather(*list(self.tasks), return_exceptions=True)
        await self._fill_holes()

    def _phase_at(self, t: float) -> str:
        for phase in self.plan.phases:
            if phase.start <= t < phase.end:
                return phase.name
        return "draining"

    def _sign_ahead(self, horizon_ns: int, limit: int) -> None:
        """Build, sign and log up to ``limit`` scheduled transactions meant before ``horizon_ns``."""
        origin_ns = self.origin_ns
        horizon = (horizon_ns - origin_ns) / 1e9
        next_arrival = self.schedule.next
        templates, gas_model, rng, take = self.templates, self.gas_model, self.rng, self.nonces.take
        sender_count, prepared_for = len(self.senders), self._prepared_for
        gas_limits = [template.gas_limit(gas) for template, gas in zip(templates, gas_model, strict=True)]
        gas_planned = [int(gas) for gas in gas_model]
        template_column: list[int] = []
        senders: list[int] = []
        nonces: list[int] = []
        gas_column: list[int] = []
        intended: list[int] = []
        raws: list[bytes] = []
        hashes: list[bytes] = []
        turn = self.turn
        arrival = self.next_arrival
        while arrival is not None and arrival[0] <= horizon and len(senders) < limit:
            t, index = arrival
            sender = turn % sender_count
            turn += 1
            fields = templates[index].build(sender, rng)
            nonce = take(sender)
            raw, tx_hash = prepared_for(sender, gas_limits[index]).sign_fields(
                nonce,
                to=fields.get("to") or None,
                value=int(fields.get("value", 0)),
                data=fields.get("data") or b"",
            )
            template_column.append(index)
            senders.append(sender)
            nonces.append(nonce)
            gas_column.append(gas_planned[index])
            intended.append(origin_ns + int(t * 1e9))
            raws.append(raw)
            hashes.append(tx_hash)
            arrival = next_arrival()
        self.next_arrival = arrival
        self.turn = turn
        if senders:
            self._buffer(template_column, senders, nonces, gas_column, intended, raws, hashes)

    def _buffer(
        self,
        templates: list[int],
        senders: list[int],
        nonces: list[int],
        gas_planned: list[int],
        intended_ns: list[int],
        raws: list[bytes],
        hashes: list[bytes],
    ) -> None:
        """Log signed transactions as scheduled rows and queue their requests to be sent in order."""
        row = len(self.log)
        by_hash, requests = self.by_hash, self.unsent_requests
        for raw, tx_hash in zip(raws, hashes, strict=True):
            by_hash[tx_hash] = row
            requests.append(_SEND_RAW_REQUEST % (row, raw.hex()))
            row += 1
        if self.unsent_raws is not None:
            self.unsent_raws.extend(raws)
        self.log.extend(templates, senders, nonces, gas_planned, intended_ns, b"".join(hashes))

    def _prepared_for(self, sender: int, gas_limit: int) -> Any:
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
        return prepared

    def _take_unsent(self, count: int) -> _Batch:
        first = self.unsent_from
        self.unsent_from += count
        requests = self.unsent_requests[:count]
        del self.unsent_requests[:count]
        raws: list[bytes] | None = None
        if self.unsent_raws is not None:
            raws = self.unsent_raws[:count]
            del self.unsent_raws[:count]
        return _Batch(first, count, requests, raws)

    def _drop_unsent(self) -> None:
        """Forget transactions signed ahead but never sent (the run stopped first); give their nonces back."""
        log, first = self.log, self.unsent_from
        for row in range(len(log) - 1, first - 1, -1):
            self.nonces.unwind(log.sender[row], log.nonce[row])
            self.by_hash.pop(log.hash_bytes(row), None)
        log.truncate(first)
        self.unsent_requests.clear()
        if self.unsent_raws is not None:
            self.unsent_raws.clear()

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.create_task(coroutine)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _submit(self, batch: _Batch) -> None:
        try:
            await self._submit_batch(batch)
        finally:
            self.submit_slots.release()
            if self.slot_waiter is not None:
                _resolve(self.slot_waiter)

    async def _slot_freed(self, timeout: float) -> None:
        """Sleep until a submission finishes (or ``timeout``): the moment the next batch can go."""
        loop = asyncio.get_running_loop()
        waiter = self.slot_waiter = loop.create_future()
        timer = loop.call_later(timeout, _resolve, waiter)
        try:
            await waiter
        finally:
            timer.cancel()
            self.slot_waiter = None

    async def _submit_batch(self, batch: _Batch) -> None:
        log, progress = self.log, self.runtime.progress
        first, count = batch.first, batch.size
        correlator, sink = self.correlator, self.runtime.raw_tx_sink
        if correlator is not None or sink is not None:
            intended = log.intended_ns
            for offset in range(count):
                row = first + offset
                tx_hash = log.hash_bytes(row)
                if correlator is not None:
                    correlator.register(tx_hash, row, intended[row])
                if sink is not None and batch.raws is not None:
                    sink(tx_hash, batch.raws[offset])
        log.mark_sent(first, count, time.monotonic_ns())
        progress.sent += count
        body = ("[" + ",".join(batch.requests) + "]").encode()
        try:
            answer: Any = await self.rpc.post_batch(body, "eth_sendRawTransaction")
        except TransportError as exc:
            answer = exc
        answered_ns = time.monotonic_ns()
        if (
            type(answer) is list
            and len(answer) == count
            and all(type(item) is dict and "result" in item and "error" not in item for item in answer)
        ):
            # Every request accepted (the answer's order does not matter then).
            waiting = log.mark_accepted(first, count, answered_ns)
            self.accepted_outstanding += waiting
            progress.accepted += count
            return
        if isinstance(answer, TransportError):
            answers: list[Any] = [answer] * count
        else:
            try:
                answers = batch_results(answer, first, ["eth_sendRawTransaction"] * count)
            except TransportError as exc:
                answers = [exc] * count
        for offset, result in enumerate(answers):
            row = first + offset
            if isinstance(result, str):
                self._accept(row, answered_ns)
                continue
            kind = getattr(result, "kind", "transport")
            if kind == "already_known":
                self._accept(row, answered_ns)
                continue
            self._reject(row, kind)

    def _accept(self, row: int, answered_ns: int) -> None:
        if self.log.accepted_ns[row] != NOT_YET:
            return
        self.accepted_outstanding += self.log.mark_accepted(row, 1, answered_ns)
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
            senders: list[int] = []
            nonces: list[int] = []
            raws: list[bytes] = []
            hashes: list[bytes] = []
            for sender in range(len(self.senders)):
                for nonce in self.nonces.holes(sender):
                    if nonce >= self.nonces.next_nonce(sender):
                        continue
                    taken = self.nonces.take(sender)
                    raw, tx_hash = self._prepared_for(sender, 21_000).sign_fields(
                        taken, to=self.senders[sender].address, value=0, data=b""
                    )
                    senders.append(sender)
                    nonces.append(taken)
                    raws.append(raw)
                    hashes.append(tx_hash)
            if not hashes:
                return
            count = len(hashes)
            now_ns = time.monotonic_ns()
            self._buffer(
                [GAP_FILLER] * count, senders, nonces, [21_000] * count, [now_ns] * count, raws, hashes
            )
            self.notes.append(f"filled {count} nonce hole(s) left by rejected transactions")
            await self._submit_batch(self._take_unsent(count))

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
                    self.runtime.stop(f"fail-fast: no_duplicate_inclusion broke on {text}", "fail-fast")
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
                    self.runtime.stop(f"fail-fast: receipt_status broke on {log.tx_hash(row)}", "fail-fast")
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


def diagnose_lost(found: Any, nonce: int, on_chain_nonce: int | None) -> str:
    """What the node's answers say about an accepted transaction no block has shown.

    ``found`` is the node's ``eth_getTransactionByHash`` answer (a transaction, None, or an error)
    and ``on_chain_nonce`` the sender's ``latest`` transaction count (None if unknown).
    """
    if isinstance(found, Exception):
        return f"the node could not be asked ({found})"
    if isinstance(found, dict) and found.get("blockNumber"):
        return f"the node has it in block {int(found['blockNumber'], 16)}, which the tracker never saw"
    if on_chain_nonce is None:
        where = "the sender's on-chain nonce is unknown"
    elif nonce == on_chain_nonce:
        where = "it is the sender's next nonce, so nothing on the sender's side holds it back"
    elif nonce > on_chain_nonce:
        where = f"the sender's on-chain nonce is {on_chain_nonce}, so it waits for nonce(s) {on_chain_nonce}..{nonce - 1}"
    else:
        where = (
            f"the sender's on-chain nonce is already {on_chain_nonce}: another transaction took nonce {nonce}"
        )
    if isinstance(found, dict):
        return f"still in the node's pool, never included; {where}"
    return f"unknown to the node (dropped from its pool); {where}"


def prepare_run(assignment: EdgeAssignment) -> dict[str, Any]:
    """Do a run's one-time setup for every sender in ``assignment`` and return it as plain data.

    The hive calls this once per multi-edge run (with the whole sender range), then hands the
    result to every edge in :attr:`EdgeAssignment.preparation`, so the funder's nonces are used by
    one process only and contracts are deployed once.
    """
    no_feed = dataclasses.replace(assignment, feed_url=None, preparation=None)

    async def main() -> dict[str, Any]:
        async with (
            AsyncRpcClient(no_feed.rpc_url, connections=no_feed.connections) as rpc,
            AsyncRpcClient(no_feed.rpc_url, connections=1) as track_rpc,
        ):
            session = _EdgeSession(EdgeRuntime(no_feed), rpc, track_rpc)
            await session.setup()
            return session.preparation()

    return asyncio.run(main())
