"""The edge runtime: one load generator running its share of a plan against a chain.

An edge receives an :class:`EdgeAssignment` (plain data: the compiled plan, endpoints, its sender
range and gas share), runs in a daemon thread with its own asyncio loop, and hands back an
:class:`~pytest_gashammer.telemetry.records.EdgeReport`. It does not know whether it lives in the
test's own process or in a pytest-xdist worker; whoever hosts it only calls :meth:`start`,
:meth:`snapshot`, :meth:`stop` and :meth:`join`.

The run itself is split by role; :class:`_EdgeSession` only puts the parts together:
:mod:`~pytest_gashammer.edge.preparation` (fees, funding, template setup, calibration),
:mod:`~pytest_gashammer.edge.submitter` (sign ahead, batch submission, nonces),
:mod:`~pytest_gashammer.edge.inclusion` (blocks, receipts, gas-model correction),
:mod:`~pytest_gashammer.edge.evidence` (the lost-transaction probe, value conservation) and
:mod:`~pytest_gashammer.edge.feed_link` (the sequencer feed).
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
from collections import Counter, deque
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from pytest_gashammer.chain.retry import RetryStats
from pytest_gashammer.chain.rpc import AsyncRpcClient, RpcError, TransportError
from pytest_gashammer.edge.accounts import SESSION_NONCES, Sender, derive_senders, resolve_start_nonces
from pytest_gashammer.edge.evidence import BalanceCheck, probe_lost
from pytest_gashammer.edge.feed_link import FeedLink
from pytest_gashammer.edge.gas_model import GasModel
from pytest_gashammer.edge.inclusion import InclusionTracker, ReceiptCoverage
from pytest_gashammer.edge.preparation import (
    RunPreparation,
    check_chain_id,
    make_schedule,
    make_templates,
    prepare,
)
from pytest_gashammer.edge.submitter import Submitter
from pytest_gashammer.edge.tracker import BlockFollower, stalled_at_end
from pytest_gashammer.errors import GashammerError
from pytest_gashammer.results import DEVNET_NOTE, FALLBACK_NOTE, FEES_NOTE, RETRY_NOTE
from pytest_gashammer.scenario.spec import ScenarioPlan
from pytest_gashammer.telemetry.digest import RunDigest
from pytest_gashammer.telemetry.records import (
    BlockRecord,
    EdgeReport,
    Progress,
    StopKind,
    TxLog,
)
from pytest_gashammer.workload.base import Template

if TYPE_CHECKING:
    from pytest_gashammer.telemetry.stream import EdgeTelemetry, TransactionCursor


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
    #: calibrated gas model); see :func:`~pytest_gashammer.edge.preparation.prepare_run`. None:
    #: this edge does it itself. A dict (its :meth:`~RunPreparation.to_dict`) is taken as well.
    preparation: RunPreparation | None = None
    #: Set when the hive stores telemetry: the run id frames are tagged with, and how far the
    #: hive's wall clock is ahead of this edge's (0 on the same machine).
    telemetry_run_id: str | None = None
    clock_offset_ns: int = 0
    #: On a devnet of several nodes, the nodes the senders' transactions are spread over (one node
    #: per sender, round-robin); empty: every transaction to ``rpc_url``. Tracking and receipts
    #: stay on ``rpc_url``.
    send_urls: list[str] = dataclasses.field(default_factory=list)

    def __post_init__(self) -> None:
        preparation: Any = self.preparation
        if isinstance(preparation, dict):
            self.preparation = RunPreparation.from_dict(preparation)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EdgeAssignment:
        return cls(**data)


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
        #: Set by every stop; a ``drain`` stop sets only this one, so the edge still drains.
        self._sending_stop: asyncio.Event | None = None
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
        """Ask the edge to stop sending and wrap up with what it has. Safe from any thread.

        A ``drain`` stop ends only the sending: the edge then waits for what the node accepted, as
        at the plan's end; any other kind also cuts the drain short.
        """
        if not self._stop_requested:
            self._stop_requested, self._stop_kind = reason, kind
        loop = self._loop
        events = [self._sending_stop] + ([self._stop_event] if kind != "drain" else [])
        for event in events:
            if loop is not None and event is not None:
                with contextlib.suppress(RuntimeError):
                    loop.call_soon_threadsafe(event.set)

    @property
    def stop_reason(self) -> str | None:
        """Why the edge was asked to stop, or None while nobody has."""
        return self._stop_requested

    @property
    def stop_kind(self) -> StopKind | None:
        """What kind of stop was asked for (a fail-fast, a time budget, ...), or None."""
        return self._stop_kind

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
        stop = self._stop_event = asyncio.Event()
        sending_stop = self._sending_stop = asyncio.Event()
        if self._stop_requested:
            sending_stop.set()
            if self._stop_kind != "drain":
                stop.set()
        url = self.assignment.rpc_url
        # Tracking gets connections of its own so that a burst of submissions never delays seeing a
        # block (which would inflate inclusion latency and bunch up per-second figures). Both count
        # what they ask again in one record, which the report carries.
        retries = RetryStats()
        async with (
            AsyncRpcClient(url, connections=self.assignment.connections, stats=retries) as rpc,
            AsyncRpcClient(url, connections=2, stats=retries) as track_rpc,
            contextlib.AsyncExitStack() as others,
        ):
            send_rpcs = [
                rpc
                if send_url == url
                else await others.enter_async_context(
                    AsyncRpcClient(send_url, connections=self.assignment.connections, stats=retries)
                )
                for send_url in self.assignment.send_urls
            ]
            session = await _EdgeSession.open(self, stop, self._recent_latencies, rpc, track_rpc, send_rpcs)
            session.sending_stop = sending_stop
            if self._start_gate is not None:
                await asyncio.get_running_loop().run_in_executor(None, self._start_gate)
            return await session.run()


#: How long an edge waits, before its clock starts, for the nodes it sends to to reach the builder's head.
SEND_NODES_WAIT_S = 30.0


async def wait_for_height(clients: Sequence[AsyncRpcClient], height: int, notes: list[str]) -> None:
    """Until every node of ``clients`` has block ``height`` (bounded by :data:`SEND_NODES_WAIT_S`); a
    node still short of it then is noted, and the run goes on."""
    deadline = time.monotonic() + SEND_NODES_WAIT_S
    waiting = list(clients)
    while waiting:
        behind = []
        for client in waiting:
            try:
                if int(await client.call("eth_blockNumber"), 16) >= height:
                    continue
            except (RpcError, TransportError, ValueError):
                pass
            behind.append(client)
        waiting = behind
        if not waiting:
            return
        if time.monotonic() >= deadline:
            urls = ", ".join(client.url for client in waiting)
            notes.append(
                f"{DEVNET_NOTE}network: {urls} had not reached the builder's block #{height} (the run's setup) after "
                f"{SEND_NODES_WAIT_S:g} s; sending to it anyway"
            )
            return
        await asyncio.sleep(0.1)


class _EdgeSession:
    """One run on one edge, set up before the clock starts. Lives on the edge's event loop only.

    Built by :meth:`open`, which does the setup that needs the node; the roles it wires together
    each own their state.
    """

    def __init__(
        self,
        runtime: EdgeRuntime,
        stop: asyncio.Event,
        track_rpc: AsyncRpcClient,
        *,
        senders: list[Sender],
        template_classes: list[type[Template]],
        gas_model: GasModel,
        gas_estimate: list[float],
        receipt_stride: int,
        start_nonces: list[int],
        start_block: int,
        submitter: Submitter,
        inclusion: InclusionTracker,
        balance_check: BalanceCheck | None,
        feed: FeedLink | None,
        errors: Counter[str],
        notes: list[str],
    ) -> None:
        self.runtime = runtime
        self.stop = stop
        #: What ends the sending: every stop, a drain stop too (``EdgeRuntime.stop``).
        self.sending_stop = stop
        self.track_rpc = track_rpc
        self.assignment = runtime.assignment
        self.plan = runtime.plan
        self.senders = senders
        self.template_classes = template_classes
        self.gas_model = gas_model
        #: The model as calibrated before the clock starts: what the gas invariant holds receipts to.
        self.gas_estimate = gas_estimate
        self.receipt_stride = receipt_stride
        self.start_nonces = start_nonces
        self.start_block = start_block
        self.submitter = submitter
        self.inclusion = inclusion
        self.balance_check = balance_check
        self.feed = feed
        self.errors = errors
        self.notes = notes
        self.log: TxLog = submitter.log
        self.origin_ns = 0
        self.wall_origin_ns = 0
        self.lost_probe: dict[str, str] = {}
        #: Rows become final (``cursor``), are digested (``digest``), streamed and forgotten: set
        #: when the clock starts (:meth:`_start_retention`).
        self.digest: RunDigest | None = None
        self.cursor: TransactionCursor | None = None
        self.telemetry: EdgeTelemetry | None = None
        self.balance_facts: dict[str, int] | None = None
        self.balance_skipped: str | None = None
        self.chain_stall: dict[str, Any] | None = None

    @classmethod
    async def open(
        cls,
        runtime: EdgeRuntime,
        stop: asyncio.Event,
        latencies: deque[float],
        rpc: AsyncRpcClient,
        track_rpc: AsyncRpcClient,
        send_rpcs: Sequence[AsyncRpcClient] = (),
    ) -> _EdgeSession:
        """Everything before the clock: chain check, senders, templates, preparation, nonces, feed."""
        plan, assignment = runtime.plan, runtime.assignment
        chain_id = await check_chain_id(rpc, assignment)
        senders = derive_senders(plan.seed, assignment.sender_start, assignment.sender_count or plan.senders)
        template_classes, templates = make_templates(plan, chain_id, senders)
        gas_model = GasModel.nominal(templates)
        schedule = make_schedule(plan, assignment, gas_model)
        # Receipts are fetched for an evenly spread sample (every receipt with receipts="all"): each
        # one costs the node about as much as accepting the transaction did.
        wanted = plan.receipts
        expected_rows = max(schedule.expected_transactions(), 1.0)
        receipt_stride = 1 if wanted is None else (math.ceil(expected_rows / wanted) if wanted else 0)
        errors: Counter[str] = Counter()
        notes: list[str] = []
        preparation = assignment.preparation
        if preparation is not None:
            # Take over the hive's run-level setup instead of repeating it on every edge.
            for template, data in zip(templates, preparation.template_setup, strict=True):
                template.use_setup(data)
            gas_model.replace(preparation.gas_model)
            notes.extend(preparation.notes)
        else:
            preparation = await prepare(
                rpc,
                plan=plan,
                chain_id=chain_id,
                funder_key=assignment.funder_key,
                senders=senders,
                templates=templates,
                gas_model=gas_model,
                schedule=schedule,
                notes=notes,
            )
        gas_estimate = list(gas_model.values)
        try:
            start_nonces, chain_key = await resolve_start_nonces(
                rpc, chain_id, [s.address for s in senders], notes, memory=SESSION_NONCES
            )
        except GashammerError as exc:
            raise GashammerError(f"edge {assignment.edge_id}: {exc}") from None
        rng = random.Random(plan.seed * 1_000_003 + assignment.sender_start)
        # On the tracking client: its connection is then open before the clock starts.
        start_block = int(await track_rpc.call("eth_blockNumber"), 16)
        # The setup (funding) is on the builder; a node the senders send to learns it by importing
        # the builder's blocks, and until then refuses their transactions for want of funds.
        others = [client for client in send_rpcs if client is not rpc]
        await wait_for_height(others, start_block, notes)
        if others and preparation.max_priority_fee_per_gas == 0:
            notes.append(
                f"{FEES_NOTE}tip 0 wei while sending to nodes other than the builder: a client may drop "
                "gossiped transactions below its minimum tip (EthereumJS does), so they never reach the "
                "builder; set max_priority_fee_per_gas="
            )
        balance_check = None
        # Value conservation needs every fee paid (all receipts) and a known value per transaction.
        if plan.receipts is None and all(name == "transfer" for name, _, _ in plan.workload):
            balance_check = BalanceCheck(track_rpc, [s.address for s in senders], start_block, start_nonces)
            await balance_check.record_before()
        feed = None
        if assignment.feed_url and plan.feed:
            # Follow the sequencer feed from the next block on, correlating what this edge sends.
            feed = FeedLink(assignment.feed_url, chain_id=chain_id, start_sequence=start_block + 1)
            await feed.open(notes)
        submitter = Submitter(
            rpc,
            log=TxLog(),
            senders=senders,
            start_nonces=start_nonces,
            chain_id=assignment.chain_id,
            templates=templates,
            gas_model=gas_model,
            schedule=schedule,
            rng=rng,
            plan=plan,
            connections=assignment.connections,
            max_fee_per_gas=preparation.max_fee_per_gas,
            max_priority_fee_per_gas=preparation.max_priority_fee_per_gas,
            progress=runtime.progress,
            errors=errors,
            notes=notes,
            correlator=feed.correlator if feed is not None else None,
            raw_tx_sink=runtime.raw_tx_sink,
            sent_nonces=SESSION_NONCES,
            chain_key=chain_key,
            fee_ceiling=preparation.fee_ceiling,
            send_rpcs=send_rpcs,
        )
        inclusion = InclusionTracker(
            track_rpc,
            log=submitter.log,
            by_hash=submitter.by_hash,
            gas_model=gas_model,
            expected_status=[template_class.expected_status for template_class in template_classes],
            receipt_stride=receipt_stride,
            fail_fast=plan.fail_fast,
            follow_chain=feed is not None,
            progress=runtime.progress,
            latencies=latencies,
            errors=errors,
            notes=notes,
            on_included=submitter.settle,
            stop_run=runtime.stop,
            tip=submitter.max_priority_fee,
        )
        return cls(
            runtime,
            stop,
            track_rpc,
            senders=senders,
            template_classes=template_classes,
            gas_model=gas_model,
            gas_estimate=gas_estimate,
            receipt_stride=receipt_stride,
            start_nonces=start_nonces,
            start_block=start_block,
            submitter=submitter,
            inclusion=inclusion,
            balance_check=balance_check,
            feed=feed,
            errors=errors,
            notes=notes,
        )

    async def run(self) -> EdgeReport:
        runtime, stop, submitter, inclusion = self.runtime, self.stop, self.submitter, self.inclusion

        def on_block(record: BlockRecord, tx_hashes: list[str]) -> None:
            inclusion.on_block(record, tx_hashes)
            submitter.follow_base_fee(record.base_fee)

        follower = BlockFollower(
            self.track_rpc,
            on_block,
            ws_url=self.assignment.ws_url,
            start_block=self.start_block,
            busy=lambda: submitter.accepted_outstanding > 0,
        )
        tracker_stop = asyncio.Event()
        tracker = asyncio.create_task(follower.run(tracker_stop))
        receipts = asyncio.create_task(inclusion.receipt_loop(tracker_stop))
        # Through the drain too: a node that restarts while transactions wait forgets them then.
        watch = asyncio.create_task(submitter.watch_loop(tracker_stop, self.track_rpc))
        self.origin_ns = time.monotonic_ns()
        self.wall_origin_ns = time.time_ns()
        self._start_retention()
        retention = asyncio.create_task(self._retention_loop(tracker_stop))
        runtime.progress.phase = "sending"
        try:
            await submitter.send_loop(self.sending_stop, self.origin_ns)
            await submitter.wait_for_inclusion(stop, self.plan.inclusion_timeout)
        finally:
            await follower.catch_up()
            self.chain_stall = follower.stall_facts(self.plan.max_block_gap)
            if submitter.accepted_outstanding > 0 and not runtime.stop_reason:
                self.lost_probe = await probe_lost(
                    self.track_rpc,
                    self.log,
                    [s.address for s in self.senders],
                    self.notes,
                    stall=stalled_at_end(self.chain_stall, self.plan.inclusion_timeout),
                )
            # What the watch found forgotten is said as found (the probe no longer asks about it).
            self.lost_probe.update(submitter.forgotten)
            if self.feed is not None:
                included = runtime.progress.included
                await self.feed.close(included, inclusion.chain_blocks, self.errors, self.notes)
            tracker_stop.set()
            await asyncio.gather(tracker, watch, return_exceptions=True)
            if self.balance_check is not None and not runtime.stop_reason:
                # Now, before the receipt drain (see record_after).
                await self.balance_check.record_after(
                    follower.last_block, settled=submitter.accepted_outstanding == 0
                )
            # The receipt loop returns between batches once tracker_stop is set; the drain awaits its
            # batch in flight (never cancels it under way), then owns the queue alone.
            coverage = await inclusion.drain_receipts(
                max(30.0, self.plan.inclusion_timeout),
                lambda: stop.is_set() and bool(runtime.stop_reason),
                loop=receipts,
            )
            retention.cancel()
            await asyncio.gather(retention, return_exceptions=True)
            digest = self._settle_rows(final=True)
            if (
                self.balance_check is not None
                and not runtime.stop_reason
                and coverage.checked == coverage.expected
            ):
                self.balance_facts = await self.balance_check.facts(
                    digest, follower.last_block, inclusion.fees_paid, self.notes
                )
                if self.balance_facts is not None and inclusion.receipts_below_base_fee:
                    self.balance_facts["receipts_below_base_fee"] = inclusion.receipts_below_base_fee
                    self.balance_facts["fees_at_base_fee"] = inclusion.fees_at_base_fee
            self.balance_skipped = balance_check_skipped(
                self.plan,
                runtime.stop_reason,
                coverage,
                checked=self.balance_facts is not None,
                pending_before=self.balance_check.skipped if self.balance_check is not None else None,
            )
            self.errors.update({f"tracker_{kind}": count for kind, count in follower.errors.items()})
            polling = follower.degradation_note()
            if polling is not None:
                self.notes.append(FALLBACK_NOTE + polling)
            retried = submitter.retry_stats.note()
            if retried is not None:
                self.notes.append(RETRY_NOTE + retried)
        runtime.progress.phase = "done"
        return self._report()

    def _start_retention(self) -> None:
        """The run's final-row machinery, from the clock's start: the cursor that says which rows are
        final, the digest that keeps what the verdicts and the result need of them, and the
        telemetry stream when the host gave a sink and the hive a run id."""
        from pytest_gashammer.telemetry.stream import ClockMap, EdgeTelemetry, TransactionCursor

        plan, assignment = self.plan, self.assignment
        sustain = plan.sustain
        self.digest = RunDigest(
            origin_ns=self.origin_ns,
            sustain=(sustain.start, sustain.end),
            inclusion_timeout=plan.inclusion_timeout,
            templates=[name for name, _, _ in plan.workload],
            expected_status=[cls.expected_status for cls in self.template_classes],
            gas_estimate=list(self.gas_estimate),
            gas_tolerance=[cls.gas_tolerance for cls in self.template_classes],
            fault_windows=[(fault["start"], fault["end"]) for fault in plan.faults],
        )
        self.submitter.digested_highest = self.digest.highest_taken
        clock = ClockMap(
            self.origin_ns,
            self.wall_origin_ns,
            run_origin_unix_ns=self.runtime.run_origin_unix_ns or self.wall_origin_ns,
            edge_offset_ns=assignment.clock_offset_ns,
        )
        cursor_options: dict[str, Any] = {
            "templates": [name for name, _, _ in plan.workload],
            "sender_addresses": [sender.address for sender in self.senders],
            "sender_offset": assignment.sender_start,
            "receipt_stride": self.receipt_stride,
            "feed": self.feed.correlator if self.feed is not None else None,
            "phases": plan.phases,
        }
        sink, run_id = self.runtime.telemetry_sink, assignment.telemetry_run_id
        if sink is not None and run_id is not None:
            self.telemetry = EdgeTelemetry(
                self.log,
                run_id=run_id,
                edge_id=assignment.edge_id,
                clock=clock,
                blocks=self.inclusion.blocks,
                feed_events=self.feed.client.events if self.feed is not None else None,
                duplicates=self.inclusion.duplicates,
                **cursor_options,
            )
            self.cursor = self.telemetry.transactions
        else:
            self.cursor = TransactionCursor(
                self.log, run_id=run_id or "", edge_id=assignment.edge_id, clock=clock, **cursor_options
            )

    async def _retention_loop(self, stop: asyncio.Event) -> None:
        """About once a second: digest, stream and forget what became final, so the edge's memory is
        what is in flight, and a run cut short leaves what it saw in the hive's store."""
        while not stop.is_set():
            await asyncio.sleep(1.0)
            self._settle_rows(final=False)

    def _settle_rows(self, *, final: bool) -> RunDigest:
        """Digest the rows that became final (every remaining one when ``final``), stream them, and
        forget every row below the first still open."""
        digest, cursor = self.digest, self.cursor
        assert digest is not None and cursor is not None
        now_ns = time.monotonic_ns()
        log = self.log
        rows = cursor.poll_rows(now_ns=now_ns, final=final)
        digest.add(log, rows, self._feed_arrivals(rows))
        if self.telemetry is not None:
            self._ship_telemetry(self.telemetry, now_ns=now_ns, final=final, rows=rows)
        keep_from = len(log) if final else cursor.first_open()
        digest.absorb_order(log, keep_from)
        self.inclusion.forgotten.add(self.submitter.forget_before(keep_from))
        feed = self.feed
        if feed is not None and not final:
            # The feed check runs block by block as blocks become due; a correlator row goes only
            # once its block was checked (and its arrival is in the digest, read above).
            chain_blocks = self.inclusion.chain_blocks
            feed.settle_due(chain_blocks, now_ns, cursor.grace_ns)
            unsettled = feed.first_unsettled_row(chain_blocks)
            feed.correlator.forget_before(keep_from if unsettled is None else min(keep_from, unsettled))
        if final:
            digest.close_order()
        return digest

    def _feed_arrivals(self, rows: Any) -> Any:
        """Each row's feed arrival (edge monotonic ns, ``NOT_YET`` if none), or None without a feed."""
        if self.feed is None:
            return None
        import numpy as np

        from pytest_gashammer.telemetry.records import NOT_YET

        correlator = self.feed.correlator
        arrivals = np.frombuffer(correlator.arrival_ns, dtype=np.int64)
        held = rows - getattr(correlator, "base", 0)
        known = (held >= 0) & (held < arrivals.size)
        found = np.full(rows.size, NOT_YET, dtype=np.int64)
        found[known] = arrivals[held[known]]
        return found

    def _ship_telemetry(self, telemetry: EdgeTelemetry, *, now_ns: int, final: bool, rows: Any) -> None:
        sink = self.runtime.telemetry_sink
        assert sink is not None
        try:
            for table, frame in telemetry.frames(now_ns=now_ns, final=final, rows=rows):
                sink(table, frame)
        except Exception as exc:  # telemetry must never end a run; the loss is counted and noted
            self.errors["telemetry"] += 1
            if len(self.notes) < 50:
                self.notes.append(f"telemetry: {type(exc).__name__}: {exc}")

    def _settled_digest(self) -> RunDigest:
        """The run's digest, every row in it (settling the last ones if the end did not)."""
        assert self.digest is not None and self.cursor is not None, "the clock never started"
        if not self.cursor.closed:
            self._settle_rows(final=True)
        return self.digest

    def _report(self) -> EdgeReport:
        submitter, inclusion, feed = self.submitter, self.inclusion, self.feed
        return EdgeReport(
            edge_id=self.assignment.edge_id,
            host=socket.gethostname(),
            clock_origin_ns=self.origin_ns,
            wall_origin_ns=self.wall_origin_ns,
            digest=self._settled_digest(),
            blocks=inclusion.blocks,
            templates=[name for name, _, _ in self.plan.workload],
            template_expected_status=[cls.expected_status for cls in self.template_classes],
            template_gas_model=self.gas_model.settle(),
            template_gas_estimate=list(self.gas_estimate),
            template_gas_tolerance=[cls.gas_tolerance for cls in self.template_classes],
            sender_addresses=[s.address for s in self.senders],
            sender_start_nonces=list(self.start_nonces),
            sender_foreign_nonces=[sorted(nonces) for nonces in submitter.nonces.foreign],
            errors=dict(self.errors),
            receipts_checked=inclusion.receipts_checked,
            receipts_skipped=inclusion.receipts_skipped,
            receipts_expected=inclusion.receipts_expected,
            receipts_missing=inclusion.receipts_missing,
            receipts_abandoned=inclusion.receipts_abandoned,
            receipts_via=inclusion.methods_used if inclusion.receipts_expected else "",
            duplicates=inclusion.duplicates,
            receipt_block_mismatches=inclusion.receipt_block_mismatches,
            receipt_block_items=list(inclusion.receipt_block_items),
            sending_finished_ns=submitter.sending_finished_ns,
            stopped_early=self.runtime.stop_reason,
            stop_kind=self.runtime.stop_kind,
            notes=self.notes,
            feed_stats=feed.client.stats.as_dict() if feed is not None else None,
            feed_events=[(e.kind, e.ns, e.detail, e.sequence) for e in feed.client.events]
            if feed is not None
            else [],
            feed_findings=feed.findings if feed is not None else None,
            balance_check=self.balance_facts,
            balance_check_skipped=self.balance_skipped,
            lost_probe=self.lost_probe,
            rejections=submitter.rejections.to_list(),
            chain_stall=self.chain_stall,
            fee_caps=dict(submitter.fee_caps),
            rpc_retries=submitter.retry_stats.as_dict() if submitter.retry_stats.note() else {},
        )


def balance_check_skipped(
    plan: ScenarioPlan,
    stop_reason: str | None,
    coverage: ReceiptCoverage,
    *,
    checked: bool,
    pending_before: str | None = None,
) -> str | None:
    """Why the run has no value-conservation facts (None when it has them), as the verdict says it."""
    if checked:
        return None
    if pending_before is not None:
        return pending_before
    names = sorted({name for name, _, _ in plan.workload})
    if names != ["transfer"]:
        return f"needs a transfer-only workload; this run's: {', '.join(names)}"
    if plan.receipts is not None:
        took = f"sampled receipts={plan.receipts}" if plan.receipts else "checked none (receipts=0)"
        return f"needs every receipt (receipts='all') for the fees paid; this run {took}"
    if stop_reason:
        return f"the run stopped early ({stop_reason})"
    if coverage.checked < coverage.expected:
        return (
            f"only {coverage.checked} of {coverage.expected} receipts were checked "
            f"({coverage.missing} missing, {coverage.abandoned} abandoned), so the fees paid are not all known"
        )
    return "the node could not be asked for the senders' balances (see the notes)"
