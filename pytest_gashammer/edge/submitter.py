"""Submission: sign ahead of the schedule, send in JSON-RPC batches, and keep nonces gap-free.

The :class:`Submitter` owns the edge's :class:`~pytest_gashammer.telemetry.records.TxLog` rows up
to acceptance and its :class:`~pytest_gashammer.edge.accounts.NonceBook`: it builds, signs and logs
each transaction ahead of its intended time, sends due rows as one batch per free connection,
records what the node accepted or rejected (nonce errors resync the sender, refused nonces are
given back), drops what a stop left unsent, and fills every nonce hole a rejection left.

This is the hot path: every line here runs per transaction or per batch. What follows runs only
when something failed, so it costs nothing while the node answers:

- **Retries.** A row whose answer is a passing failure (no answer: refused, reset, timed out, HTTP
  5xx; or a JSON-RPC error that is not a refusal: -32603, -32005, ...) is sent again, the same
  signed bytes, under :data:`SUBMIT_POLICY` (bounded, jittered), in its own task: the schedule never
  waits for it, and its latency still counts from its intended time. The slot (a connection) is
  given back during each wait.
- **Unknown outcomes.** A failure after which the node may have the transaction marks the row
  *maybe delivered*. Sending it again is harmless: "already known" counts as accepted, and "nonce
  too low" (or "replacement underpriced") for such a row is checked by hash: ours in the pool or in
  a block counts as accepted, anything else is a real refusal. A row still unanswered when the
  policy runs out is asked about by hash; one the node cannot be asked about yet keeps its nonce
  (*doubtful*) and is asked about again until the node answers: giving its nonce to another
  transaction could use it twice, keeping it for ever could strand the sender.
- **A node that forgot.** After a bad moment (the JSON-RPC clients saw transport failures: a pause,
  a restart), :meth:`Submitter.watch_loop` compares each sender's pending count with the
  transactions the node accepted and no block showed. Those it no longer has (a restarted node
  forgets its pool) are lost, named with why, and their nonces are given back, so later
  transactions fill them and the sender goes on.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import random
import time
from collections import Counter
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

from pytest_gashammer.chain.node_errors import NONCE_TAKEN_KINDS
from pytest_gashammer.chain.retry import RetryPolicy, RetryStats, transient_reason
from pytest_gashammer.chain.rpc import AsyncRpcClient, RpcError, TransportError, results_for_ids
from pytest_gashammer.chain.signer import FastSigner
from pytest_gashammer.edge.accounts import NonceBook, Sender, SentNonces, nonce_address
from pytest_gashammer.edge.gas_model import GasModel
from pytest_gashammer.edge.preparation import next_fee_cap
from pytest_gashammer.scenario.spec import ScenarioPlan
from pytest_gashammer.telemetry.records import (
    NOT_YET,
    STATUS_ACCEPTED,
    STATUS_INCLUDED,
    STATUS_REJECTED,
    STATUS_SENT,
    RejectionSample,
    TxLog,
)
from pytest_gashammer.workload.base import Template
from pytest_gashammer.workload.rate import ArrivalSchedule

if TYPE_CHECKING:
    from pytest_gashammer.telemetry.records import Progress

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
#: Template index recorded for the self-transfers that fill a nonce hole left by a rejection.
GAP_FILLER = -1
NONCE_RESYNC_KINDS = NONCE_TAKEN_KINDS
#: How a transaction is sent again after a passing failure: up to ten tries within 15 s, waits from
#: 50 ms doubling to 2 s (jittered). Long enough to ride out a paused or restarted node; a node
#: gone for longer gets the rest counted as unanswered, not waited for.
SUBMIT_POLICY = RetryPolicy(attempts=10, first_delay=0.05, max_delay=2.0, budget=15.0)
#: How often the watch looks for doubtful rows to settle and for a node that forgot.
WATCH_INTERVAL = 0.5
#: Accepted transactions asked about by hash in one look at a node that forgot.
WATCH_PROBE_LIMIT = 4096
#: How long after a transaction first looks forgotten it is asked about again, before it counts.
WATCH_CONFIRM_SECONDS = 0.25
#: The error kind a forgotten transaction's row carries (its state stays "accepted, never included").
FORGOTTEN = "forgotten_by_node"
_SEND = "eth_sendRawTransaction"
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


class _Retry(NamedTuple):
    """Rows to send again (each with its rendered request and why), and when the first try went."""

    rows: list[int]
    requests: list[str]
    reasons: list[str]
    started: float


class Submitter:
    """Signs, logs and submits one edge's transactions on its event loop."""

    def __init__(
        self,
        rpc: AsyncRpcClient,
        *,
        log: TxLog,
        senders: Sequence[Sender],
        start_nonces: Sequence[int],
        chain_id: int,
        templates: Sequence[Template],
        gas_model: GasModel,
        schedule: ArrivalSchedule,
        rng: random.Random,
        plan: ScenarioPlan,
        connections: int,
        max_fee_per_gas: int,
        max_priority_fee_per_gas: int,
        progress: Progress,
        errors: Counter[str],
        notes: list[str],
        correlator: Any = None,
        raw_tx_sink: Callable[[bytes, bytes], None] | None = None,
        sent_nonces: SentNonces | None = None,
        chain_key: str = "",
        fee_ceiling: int | None = None,
        retry: RetryPolicy = SUBMIT_POLICY,
        retry_stats: RetryStats | None = None,
        send_rpcs: Sequence[AsyncRpcClient] = (),
    ) -> None:
        """``sent_nonces`` (under ``chain_key``) learns, once sending ends, how far each sender got.
        ``fee_ceiling`` above ``max_fee_per_gas``: the cap follows the base fee up to it
        (:meth:`follow_base_fee`); None or equal: the cap is fixed. ``retry`` bounds how a
        transaction is sent again; ``retry_stats`` (default: the client's) counts it. ``send_rpcs``
        (the nodes of a network): each sender's transactions go to one of them, the senders spread
        round-robin, so that every node's pool sees each sender's nonces in order; empty: ``rpc``."""
        self.rpc = rpc
        self.send_rpcs: list[AsyncRpcClient] = list(send_rpcs) or [rpc]
        self.log = log
        self.senders = list(senders)
        self.nonces = NonceBook(list(start_nonces))
        self.signers = [FastSigner(sender.key, chain_id) for sender in self.senders]
        self.templates = list(templates)
        self.gas_model = gas_model
        self.schedule = schedule
        self.rng = rng
        self.plan = plan
        self.max_fee = max_fee_per_gas
        self.max_priority_fee = max_priority_fee_per_gas
        self.fee_ceiling = max(fee_ceiling or max_fee_per_gas, max_fee_per_gas)
        self.fee_caps: dict[str, Any] = {
            "first": max_fee_per_gas,
            "low": max_fee_per_gas,
            "high": max_fee_per_gas,
            "changes": 0,
            "ceiling": self.fee_ceiling,
            "follows_base_fee": self.fee_ceiling > max_fee_per_gas,
        }
        #: The runtime's :class:`Progress`, moved as rows are sent, accepted and rejected.
        self.progress = progress
        self.errors = errors
        #: The node's own words for what it refused (the first distinct messages per kind).
        self.rejections = RejectionSample()
        self.notes = notes
        self.correlator = correlator
        self.raw_tx_sink = raw_tx_sink
        self.sent_nonces = sent_nonces
        self.chain_key = chain_key
        self.start_nonces = list(start_nonces)
        #: Row of each signed transaction, by hash (the inclusion tracker reads it).
        self.by_hash: dict[bytes, int] = {}
        #: Per sender, the highest nonce accepted among rows already digested, so possibly forgotten
        #: (the run's digest keeps it: ``RunDigest.highest_taken``, shared when the clock starts).
        self.digested_highest: dict[int, int] = {}
        #: Accepted transactions no block has shown yet.
        self.accepted_outstanding = 0
        self.origin_ns = 0
        self.sending_finished_ns = NOT_YET
        self.tasks: set[asyncio.Task[Any]] = set()
        self.resyncing: set[int] = set()
        self.submit_slots = asyncio.Semaphore(connections)
        self.slot_waiter: asyncio.Future[None] | None = None
        self.prepared: dict[tuple[int, int], Any] = {}
        self.turn = 0
        self.next_arrival: tuple[float, int] | None = None
        self.unsent_from = 0
        self.unsent_requests: list[str] = []
        self.unsent_raws: list[bytes] | None = [] if raw_tx_sink is not None else None
        self.retry = retry
        self.retry_stats: RetryStats = (
            retry_stats if retry_stats is not None else getattr(rpc, "stats", None) or RetryStats()
        )
        # Jitter only: drawn apart from the plan's generator, so a seeded run builds the same transactions.
        self.retry_rng = random.Random()
        #: Rows whose earlier try may have reached the node (their fate was unknown for a while).
        self.maybe_delivered: set[int] = set()
        #: Rows whose fate is unknown after the retries ran out and whom the node could not be asked
        #: about yet: their nonces stay theirs until it answers (:meth:`_settle_doubtful`).
        self.doubtful: dict[int, str] = {}
        #: Accepted transactions the node forgot (no block, gone from its pool): tx hash -> why.
        self.forgotten: dict[str, str] = {}
        self.stopping = False
        self.filling = asyncio.Lock()

    def follow_base_fee(self, base_fee: int | None) -> None:
        """A block showed ``base_fee``: move the fee cap when it has moved far enough from it.

        Signing is prepared per (sender, gas limit) with the fees in it, so a new cap drops the
        prepared signers: the cost is per change, never per transaction.
        """
        caps = self.fee_caps
        if base_fee is None:
            return
        if base_fee > caps.get("base_fee_high", -1):
            caps["base_fee_high"] = base_fee
        if not caps["follows_base_fee"]:
            return
        cap = next_fee_cap(self.max_fee, base_fee, self.max_priority_fee, self.fee_ceiling)
        if cap is None:
            return
        self.max_fee = cap
        self.prepared.clear()
        caps["changes"] += 1
        caps["low"] = min(caps["low"], cap)
        caps["high"] = max(caps["high"], cap)

    def settle(self, included: int) -> None:
        """``included`` accepted transactions were seen in a block."""
        self.accepted_outstanding -= included

    async def send_loop(self, stop: asyncio.Event, origin_ns: int) -> None:
        """Send every transaction at its intended time (``origin_ns`` is t=0), signed ahead of it.

        Signing runs up to :data:`SIGN_AHEAD_SECONDS` (and :data:`SIGN_AHEAD_LIMIT` transactions)
        ahead of the schedule, in chunks, so a due send waits for at most one chunk of signing.
        Signed rows are already in the log (state "scheduled"); rows ``unsent_from ..`` are the
        buffer, and their ``eth_sendRawTransaction`` requests are rendered as JSON text once, when
        signed. Due rows go out in one batch; after a send the loop lets at least
        :data:`COALESCE_SECONDS` pass, so that below saturation requests carry several transactions.
        """
        self.origin_ns = origin_ns
        progress = self.progress
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
                and intended[self.unsent_from - log.base] <= now_ns
                and (now_ns - last_send_ns >= coalesce_ns or buffered >= MAX_BATCH)
                and not self.submit_slots.locked()
            ):
                # One request per connection at most: while every connection is busy, due rows
                # wait here and the next request carries all of them (the node gains from bigger
                # batches exactly when it is the bottleneck). The wait shows in the send lag.
                base = log.base
                due_end = base + bisect.bisect_right(intended, now_ns, self.unsent_from - base, log.held)
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
            if buffered and intended[self.unsent_from - log.base] <= now_ns and self.submit_slots.locked():
                await self._slot_freed(0.02)
                continue
            if buffered:
                wake_ns = max(intended[self.unsent_from - log.base], last_send_ns + coalesce_ns)
            elif arrival is not None:
                wake_ns = self.origin_ns + int(arrival[0] * 1e9) - ahead_ns
            else:
                wake_ns = now_ns
            await asyncio.sleep(min(max(wake_ns - time.monotonic_ns(), 0) / 1e9, 0.02))
        self.stopping = stop.is_set()
        self._drop_unsent()
        self.sending_finished_ns = time.monotonic_ns()
        if self.tasks:
            await asyncio.gather(*list(self.tasks), return_exceptions=True)
        await self._fill_holes()
        self.remember_sent()

    def remember_sent(self) -> None:
        """Tell the session's memory how far each sender got: a rerun must not start on these nonces.

        Vectorised: it runs on the edge's loop while blocks still arrive, and a pure-Python pass over
        a million rows would hold their timestamps back by a fraction of a second.
        """
        if self.sent_nonces is None or not len(self.log):
            return
        import numpy as np

        log = self.log
        accepted = np.frombuffer(log.accepted_ns, dtype=np.int64) != NOT_YET
        included = np.frombuffer(log.included_ns, dtype=np.int64) != NOT_YET
        taken = accepted | included
        senders = np.frombuffer(log.sender, dtype=np.dtype(f"i{log.sender.itemsize}"))[taken]
        nonces = np.frombuffer(log.nonce, dtype=np.int64)[taken]
        highest = np.full(len(self.senders), -1, dtype=np.int64)
        for sender, nonce in self.digested_highest.items():  # rows perhaps forgotten
            highest[sender] = nonce
        if len(senders):
            np.maximum.at(highest, senders, nonces)
        if not (highest >= 0).any():
            return
        unconfirmed: dict[int, dict[int, str]] = {}
        for index in np.flatnonzero(accepted & ~included).tolist():
            unconfirmed.setdefault(log.sender[index], {})[log.nonce[index]] = log.tx_hash(log.base + index)
        for sender in np.flatnonzero(highest >= 0).tolist():
            self.sent_nonces.record(
                self.chain_key,
                self.senders[sender].address,
                self.start_nonces[sender],
                int(highest[sender]) + 1,
                unconfirmed.get(sender, {}),
            )

    async def wait_for_inclusion(self, stop: asyncio.Event, timeout: float) -> None:
        """Wait until every accepted transaction is in a block, ``timeout`` passes or a stop."""
        progress = self.progress
        progress.phase = "draining"
        deadline = time.monotonic() + timeout
        while self.accepted_outstanding > 0 and time.monotonic() < deadline and not stop.is_set():
            progress.elapsed = (time.monotonic_ns() - self.origin_ns) / 1e9
            await asyncio.sleep(0.05)

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
        templates, gas_model, rng, take = self.templates, self.gas_model.values, self.rng, self.nonces.take
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
            self.nonces.unwind(log.sender[row - log.base], log.nonce[row - log.base])
            self.by_hash.pop(log.hash_bytes(row), None)
        log.truncate(first)
        self.unsent_requests.clear()
        if self.unsent_raws is not None:
            self.unsent_raws.clear()

    def forget_before(self, row: int) -> bytes:
        """Forget the log's rows below ``row`` (final and digested); the hashes of the included ones,
        concatenated, for the inclusion tracker's memory of forgotten transactions."""
        import numpy as np

        log = self.log
        count = min(row, len(log)) - log.base
        if count <= 0:
            return b""
        hashes = bytes(log.hashes[: count * 32])
        included = np.frombuffer(log.included_ns, dtype=np.int64)[:count] != NOT_YET
        by_hash = self.by_hash
        for offset in range(0, count * 32, 32):
            by_hash.pop(hashes[offset : offset + 32], None)
        log.forget_before(row)
        return np.frombuffer(hashes, dtype=np.uint8).reshape(-1, 32)[included].tobytes()

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.create_task(coroutine)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _submit(self, batch: _Batch) -> None:
        retry: _Retry | None = None
        try:
            retry = await self._submit_batch(batch)
        finally:
            self._free_slot()
        if retry is not None:
            await self._send_again(retry)

    def _free_slot(self) -> None:
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

    async def _submit_batch(self, batch: _Batch) -> _Retry | None:
        """Send ``batch`` once and take the node's answers; the rows to send again, if any."""
        log, progress = self.log, self.progress
        first, count = batch.first, batch.size
        correlator, sink = self.correlator, self.raw_tx_sink
        if correlator is not None or sink is not None:
            intended = log.intended_ns
            base = log.base
            for offset in range(count):
                row = first + offset
                tx_hash = log.hash_bytes(row)
                if correlator is not None:
                    correlator.register(tx_hash, row, intended[row - base])
                if sink is not None and batch.raws is not None:
                    sink(tx_hash, batch.raws[offset])
        log.mark_sent(first, count, time.monotonic_ns())
        progress.sent += count
        started = time.monotonic()
        if len(self.send_rpcs) > 1:
            return await self._send_spread(list(range(first, first + count)), batch.requests, started)
        body = ("[" + ",".join(batch.requests) + "]").encode()
        try:
            answer: Any = await self.rpc.post_batch(body, _SEND)
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
            return None
        rows = list(range(first, first + count))
        return await self._take_answers(rows, batch.requests, answer, answered_ns, started)

    async def _send_spread(self, rows: list[int], requests: list[str], started: float) -> _Retry | None:
        """Send each of ``rows`` to its sender's node (one request per node) and take the answers;
        the rows to send again, if any, over every node."""
        log, clients = self.log, self.send_rpcs
        groups: dict[int, tuple[list[int], list[str]]] = {}
        for row, request in zip(rows, requests, strict=True):
            group = groups.setdefault(log.sender[log.at(row)] % len(clients), ([], []))
            group[0].append(row)
            group[1].append(request)
        posts = [
            clients[node].post_batch(("[" + ",".join(group_requests) + "]").encode(), _SEND)
            for node, (_, group_requests) in groups.items()
        ]
        answers = await asyncio.gather(*posts, return_exceptions=True)
        answered_ns = time.monotonic_ns()
        again = _Retry([], [], [], started)
        for (group_rows, group_requests), answer in zip(groups.values(), answers, strict=True):
            if isinstance(answer, BaseException) and not isinstance(answer, TransportError):
                raise answer
            left = await self._take_answers(group_rows, group_requests, answer, answered_ns, started)
            if left is not None:
                again.rows.extend(left.rows)
                again.requests.extend(left.requests)
                again.reasons.extend(left.reasons)
        return again if again.rows else None

    async def _take_answers(
        self, rows: list[int], requests: list[str], answer: Any, answered_ns: int, started: float
    ) -> _Retry | None:
        """Accept, refuse or set aside for another try each of ``rows`` (sent as ``requests``)."""
        if isinstance(answer, TransportError):
            answers: list[Any] = [answer] * len(rows)
        else:
            try:
                answers = results_for_ids(answer, rows, [_SEND] * len(rows))
            except TransportError as exc:
                answers = [exc] * len(rows)
        again: list[int] = []
        again_requests: list[str] = []
        reasons: list[str] = []
        check: list[tuple[int, Any]] = []
        for row, request, result in zip(rows, requests, answers, strict=True):
            if isinstance(result, str):
                self._accept(row, answered_ns)
                continue
            kind = getattr(result, "kind", "transport")
            if kind == "already_known":
                self._accept(row, answered_ns)
                continue
            reason = transient_reason(result) if isinstance(result, Exception) else None
            if reason is not None:
                if getattr(result, "delivered", None) is not False:
                    self.maybe_delivered.add(row)
                again.append(row)
                again_requests.append(request)
                reasons.append(reason)
                continue
            if kind in NONCE_RESYNC_KINDS and row in self.maybe_delivered:
                check.append((row, result))  # perhaps our own earlier try took the nonce
                continue
            self._reject(row, kind, result)
        if check:
            await self._check_own(check, answered_ns)
        return _Retry(again, again_requests, reasons, started) if again else None

    async def _check_own(self, rows: list[tuple[int, Any]], answered_ns: int) -> None:
        """Rows refused for their nonce after a try that may have got through: ours by hash (in the
        pool or a block) is accepted; anything else is the refusal it looked like."""
        log = self.log
        try:
            found = await self.rpc.batch(
                [("eth_getTransactionByHash", [log.tx_hash(row)]) for row, _ in rows]
            )
        except TransportError as exc:
            found = [exc] * len(rows)
        for (row, refusal), answer in zip(rows, found, strict=True):
            if isinstance(answer, dict):
                self.retry_stats.resolved["accepted: the node had it"] += 1
                self._accept(row, answered_ns)
            elif answer is None:
                self._reject(row, getattr(refusal, "kind", "transport"), refusal)
            else:
                self.doubtful[row] = (
                    f"refused for its nonce ({refusal}), and the node could not be asked by hash"
                )

    async def _send_again(self, retry: _Retry) -> None:
        """Send the rows of ``retry`` again, the same signed bytes, until answered or the policy
        runs out. Waits with the slot given back; the schedule goes on meanwhile."""
        tries = 1
        rows, requests, reasons = retry.rows, retry.requests, retry.reasons
        while rows:
            elapsed = time.monotonic() - retry.started
            wait = None if self.stopping else self.retry.next_delay(tries, elapsed, self.retry_rng)
            if wait is None:
                break
            for reason in reasons:
                self.retry_stats.retry(_SEND, reason)
            await asyncio.sleep(wait)
            tries += 1
            await self.submit_slots.acquire()
            if len(self.send_rpcs) > 1:
                try:
                    left = await self._send_spread(rows, requests, retry.started)
                finally:
                    self._free_slot()
                rows, requests, reasons = (left.rows, left.requests, left.reasons) if left else ([], [], [])
                continue
            try:
                body = ("[" + ",".join(requests) + "]").encode()
                try:
                    answer: Any = await self.rpc.post_batch(body, _SEND)
                except TransportError as exc:
                    answer = exc
            finally:
                self._free_slot()
            left = await self._take_answers(rows, requests, answer, time.monotonic_ns(), retry.started)
            rows, requests, reasons = (left.rows, left.requests, left.reasons) if left else ([], [], [])
        if rows:
            await self._give_up(rows, reasons)

    async def _give_up(self, rows: list[int], reasons: list[str]) -> None:
        """The policy ran out for ``rows``. Never got through: refused as ``transport``, nonce given
        back. Perhaps got through: asked by hash (ours: accepted; unknown to the node: refused,
        nonce given back); a node that cannot be asked yet leaves them doubtful."""
        for reason in reasons:
            self.retry_stats.give_up(_SEND, reason)
        for row, reason in zip(rows, reasons, strict=True):
            if row in self.maybe_delivered:
                self.doubtful[row] = f"no answer after retries ({reason})"
            else:
                self._reject(row, "transport", TransportError(f"{_SEND}: no answer after retries ({reason})"))
        await self._settle_doubtful()

    async def _settle_doubtful(self) -> None:
        """Ask the node by hash about the doubtful rows: the ones it has are accepted, the ones it
        does not are refused (``transport``) and give their nonces back; if it cannot be asked,
        they stay doubtful for the next look."""
        if not self.doubtful:
            return
        log = self.log
        rows = [row for row in self.doubtful if row >= log.base]
        for row in [row for row in self.doubtful if row < log.base]:
            del self.doubtful[row]
        pending = [row for row in rows if log.state[log.at(row)] != STATUS_INCLUDED]
        for row in rows:
            if row not in pending:
                del self.doubtful[row]
                self.retry_stats.resolved["accepted: a block had it"] += 1
        if not pending:
            return
        try:
            found = await self.rpc.batch(
                [("eth_getTransactionByHash", [log.tx_hash(row)]) for row in pending]
            )
        except TransportError:
            return
        now_ns = time.monotonic_ns()
        for row, answer in zip(pending, found, strict=True):
            if row not in self.doubtful or isinstance(answer, Exception):
                continue
            why = self.doubtful.pop(row)
            if log.state[log.at(row)] == STATUS_INCLUDED:
                self.retry_stats.resolved["accepted: a block had it"] += 1
            elif isinstance(answer, dict):
                self.retry_stats.resolved["accepted: the node had it"] += 1
                self._accept(row, now_ns)
            else:
                self.retry_stats.resolved["refused: the node did not have it"] += 1
                self._reject(row, "transport", TransportError(f"{_SEND}: {why}; the node does not have it"))

    def _accept(self, row: int, answered_ns: int) -> None:
        if self.log.accepted_ns[self.log.at(row)] != NOT_YET:
            return
        self.accepted_outstanding += self.log.mark_accepted(row, 1, answered_ns)
        self.progress.accepted += 1
        self.maybe_delivered.discard(row)

    def _reject(self, row: int, kind: str, error: object) -> None:
        log = self.log
        index = log.at(row)
        self.maybe_delivered.discard(row)
        log.state[index] = STATUS_REJECTED
        log.error[index] = log.error_code(kind)
        self.errors[kind] += 1
        self.progress.rejected += 1
        self.progress.errors += 1
        sender = log.sender[index]
        nonce = log.nonce[index]
        code, message = (error.code, error.message) if isinstance(error, RpcError) else (None, str(error))
        self.rejections.add(kind, code, message, log.tx_hash(row), self.senders[sender].address, nonce)
        if kind in NONCE_RESYNC_KINDS:
            self.nonces.mark_foreign(sender, nonce)
            if sender not in self.resyncing:
                self.resyncing.add(sender)
                self._spawn(self._resync(sender))
        else:
            self.nonces.release(sender, nonce)

    async def _resync(self, sender: int) -> None:
        # The book only ever moves a sender forward: a node whose pending count misses part of its
        # pool (or this session's earlier runs) cannot send the sender back onto taken nonces.
        try:
            pending = int(
                await self.rpc.call(
                    "eth_getTransactionCount", nonce_address(self.senders[sender].address), "pending"
                ),
                16,
            )
            self.nonces.resync(sender, pending)
        except (RpcError, TransportError) as exc:
            self.errors["nonce_resync"] += 1
            self.notes.append(f"nonce resync for sender {sender} failed: {exc}")
        finally:
            self.resyncing.discard(sender)

    async def _fill_holes(self) -> None:
        """Send a self-transfer into every nonce a rejection (or a node that forgot) left unused, so
        no later nonce is stranded. Doubtful rows are settled first: their nonces may be free."""
        async with self.filling:
            await self._settle_doubtful()
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
                left_by = "rejected or forgotten" if self.forgotten else "rejected"
                self.notes.append(f"filled {count} nonce hole(s) left by {left_by} transactions")
                retry = await self._submit_batch(self._take_unsent(count))
                if retry is not None:
                    await self._send_again(retry)

    # -- the watch: doubtful rows, and a node that forgot what it accepted ---------------------------
    async def watch_loop(self, stop: asyncio.Event, rpc: AsyncRpcClient | None = None) -> None:
        """Until ``stop``: every :data:`WATCH_INTERVAL`, settle doubtful rows, and after any transport
        failure of the clients (the node paused, restarted or was cut off) look for accepted
        transactions the node no longer has (:meth:`find_forgotten`, asking ``rpc``).

        Costs nothing while nothing fails: two counters are compared.
        """
        rpc = rpc or self.rpc
        clients = (self.rpc,) if rpc is self.rpc else (self.rpc, rpc)
        seen = _failures(clients)
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), WATCH_INTERVAL)
            if self.doubtful:
                await self._settle_doubtful()
            trouble = _failures(clients)
            if trouble != seen and await self.find_forgotten(rpc):
                seen = trouble

    async def find_forgotten(self, rpc: AsyncRpcClient) -> bool:
        """Ask the node about every accepted transaction no block has shown whose nonce its senders
        have not mined yet; the ones it no longer has (not by hash, not in its pool) are forgotten:
        lost, said why, their nonces given back so that later transactions fill them (or, once
        sending is over, self-transfers). False when the node could not be asked (try later)."""
        import numpy as np

        log = self.log
        accepted = np.flatnonzero(np.frombuffer(log.state, dtype=np.int8) == STATUS_ACCEPTED)
        if not accepted.size:
            return True
        senders = np.frombuffer(log.sender, dtype=np.dtype(f"i{log.sender.itemsize}"))[accepted]
        nonces = np.frombuffer(log.nonce, dtype=np.int64)[accepted]
        asked = sorted(set(senders.tolist()))
        try:
            counts = await rpc.batch(
                [
                    ("eth_getTransactionCount", [nonce_address(self.senders[sender].address), "latest"])
                    for sender in asked
                ]
            )
        except TransportError:
            return False
        mined = {
            sender: int(count, 16)
            for sender, count in zip(asked, counts, strict=True)
            if isinstance(count, str)
        }
        if len(mined) < len(asked):
            return False
        floor = np.array([mined[sender] for sender in senders.tolist()], dtype=np.int64)
        open_rows = (accepted[nonces >= floor] + log.base)[:WATCH_PROBE_LIMIT].tolist()
        if not open_rows:
            return True
        try:
            found = await rpc.batch([("eth_getTransactionByHash", [log.tx_hash(row)]) for row in open_rows])
        except TransportError:
            return False
        gone = [row for row, answer in zip(open_rows, found, strict=True) if answer is None]
        if gone:
            gone = await self._not_in_pool(rpc, gone)
        if gone:
            # A node may answer for a transaction a moment before its pool shows it (anvil does):
            # only what is still missing a moment later is forgotten.
            await asyncio.sleep(WATCH_CONFIRM_SECONDS)
            try:
                again = await rpc.batch([("eth_getTransactionByHash", [log.tx_hash(row)]) for row in gone])
            except TransportError:
                return False
            gone = [row for row, answer in zip(gone, again, strict=True) if answer is None]
            gone = await self._not_in_pool(rpc, gone)
        # Settled meanwhile (a block showed it): not forgotten.
        gone = [row for row in gone if log.state[log.at(row)] == STATUS_ACCEPTED]
        if gone:
            self._forget(gone, mined)
            if self.sending_finished_ns != NOT_YET:
                # Sending is over: no later transaction will take the nonces; self-transfers do.
                await self._fill_holes()
                self.remember_sent()
        return True

    async def _not_in_pool(self, rpc: AsyncRpcClient, rows: list[int]) -> list[int]:
        """``rows`` less those the node's pool shows (some clients never return a pooled transaction
        by hash); all of them when the node has no ``txpool_content``."""
        from pytest_gashammer.edge.evidence import pool_index

        try:
            pool = pool_index(await rpc.call("txpool_content"))
        except (RpcError, TransportError, TypeError, ValueError, AttributeError):
            return rows
        log = self.log
        return [
            row
            for row in rows
            if log.tx_hash(row) not in pool["hashes"]
            and pool["slots"].get(
                (self.senders[log.sender[log.at(row)]].address.lower(), log.nonce[log.at(row)])
            )
            != log.tx_hash(row)
        ]

    def _forget(self, rows: list[int], mined: dict[int, int]) -> None:
        log = self.log
        for row in rows:
            index = log.at(row)
            sender, nonce = log.sender[index], log.nonce[index]
            # Still accepted and never included (so counted lost), but no longer waited for.
            log.state[index] = STATUS_SENT
            log.error[index] = log.error_code(FORGOTTEN)
            self.accepted_outstanding -= 1
            self.nonces.release(sender, nonce)
            address = self.senders[sender].address
            self.forgotten[log.tx_hash(row)] = (
                f"sender {address} nonce {nonce}: accepted, then forgotten by the node: after it was "
                f"unreachable (paused, restarted?) it had it neither by hash nor in its pool, and the "
                f"sender's mined nonce was {mined[sender]}; the nonce went to a later transaction"
            )
        self.errors[FORGOTTEN] += len(rows)
        self.notes.append(
            f"the node forgot {len(rows)} accepted transaction(s) after a bad moment (a restart drops "
            f"its pool): counted lost; their nonces were filled by later transactions"
        )


def _failures(clients: Sequence[Any]) -> int:
    """Transport failures the clients saw so far (a rise: the node went through a bad moment)."""
    return sum(getattr(client, "transport_failures", 0) for client in clients)
