"""Inclusion: which block holds each transaction, its receipt, and the gas model's correction.

The :class:`InclusionTracker` receives every block from the
:class:`~pytest_gashammer.edge.tracker.BlockFollower`, matches its transaction hashes to the
edge's rows (included time, block, state), queues an evenly spread sample for receipts, and
fetches those: status, gas used, fees paid, and the corrected gas per template that feeds back
into the arrival rate.

Receipts are fetched per block with ``eth_getBlockReceipts`` (one call serves every sampled row of
a block), or per transaction with ``eth_getTransactionReceipt``: for a sparse sample of a big block,
for a block whose receipts keep coming back empty, and for all once a node refuses the method. A
node may answer ``null`` (or an empty list) for a block it has just announced: EthereumJS indexes
receipts after the block appears. Such rows are asked again with backoff until the drain's
deadline, and only then count as missing. One task owns the queue: the run's receipt loop, which
stops between batches, then the drain; rows in flight are put back if a fetch is cancelled, so
every wanted receipt ends up checked, missing or abandoned (:meth:`InclusionTracker.coverage`).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections import Counter, deque
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from pytest_gashammer.chain.rpc import AsyncRpcClient, RpcError, TransportError
from pytest_gashammer.edge.gas_model import GasModel
from pytest_gashammer.results import FEES_NOTE
from pytest_gashammer.telemetry.digest import EVIDENCE_LIMIT
from pytest_gashammer.telemetry.records import STATUS_ACCEPTED, STATUS_INCLUDED, BlockRecord, StopKind, TxLog

if TYPE_CHECKING:
    from pytest_gashammer.telemetry.records import Progress

#: Receipts waiting before the run's receipt loop fetches a batch of them.
RECEIPT_BATCH_THRESHOLD = 64
#: ... or how long the oldest waits before it is fetched anyway (seconds), so that a slow run or a
#: sparse sample does not leave every receipt to the drain.
RECEIPT_MAX_WAIT = 2.0
#: Receipts per batch while the run goes, and during the drain.
RUN_BATCH_ROWS = 200
DRAIN_BATCH_ROWS = 500
#: ``eth_getBlockReceipts`` calls per batch: EthereumJS re-executes the block for each, about 0.4 s.
BLOCKS_PER_BATCH = 8
#: A block's receipts are fetched whole when it holds at most this many transactions per wanted
#: receipt, or at most ``SMALL_BLOCK`` transactions: a sparse sample of a big block (other edges'
#: transactions, receipts=N at a high rate) is fetched per transaction, so the edge never parses
#: thousands of receipts on its event loop to use a few.
WHOLE_BLOCK_FACTOR = 4
SMALL_BLOCK = 64
#: A receipt the node did not have yet is asked again after this long, doubling up to the cap.
RETRY_FIRST = 0.25
RETRY_CAP = 4.0
#: A block whose receipts came back empty this many times (about 8 s) is asked per transaction
#: from then on: a node that answers ``[]`` for a block hash it does not look up must not cost the
#: run its receipts.
WHOLE_BLOCK_ASKS = 5

BLOCK_RECEIPTS = "eth_getBlockReceipts"
TX_RECEIPT = "eth_getTransactionReceipt"


@dataclasses.dataclass
class ReceiptCoverage:
    """What became of the receipts an edge wanted: ``checked + missing + abandoned == expected``."""

    #: Rows included and on the receipt sample.
    expected: int = 0
    checked: int = 0
    #: Still unanswered (``null``, an error) when the drain's deadline passed.
    missing: int = 0
    #: Not asked for any more because the run was stopped.
    abandoned: int = 0


@dataclasses.dataclass
class _Wanted:
    """Rows of one block whose receipts are still wanted, and when to ask for them next."""

    number: int
    block_hash: str
    rows: list[int]
    since: float
    #: Fetched with ``eth_getBlockReceipts`` (else per transaction), while the node serves it.
    whole: bool = True
    asks: int = 0
    not_before: float = 0.0


def parse_block_receipts(answer: Any) -> dict[str, dict[str, Any]] | None:
    """``eth_getBlockReceipts``'s answer as receipts by lowercase transaction hash.

    ``null`` or ``[]`` (the node does not have the block's receipts yet) give an empty dict; an
    answer of another shape gives ``None``, which makes the caller fall back to per-transaction
    receipts rather than guess.
    """
    if answer is None:
        return {}
    if not isinstance(answer, list):
        return None
    found: dict[str, dict[str, Any]] = {}
    for receipt in answer:
        tx_hash = receipt.get("transactionHash") if isinstance(receipt, dict) else None
        if not isinstance(tx_hash, str):
            return None
        found[tx_hash.lower()] = receipt
    return found


def retry_delay(asks: int) -> float:
    """How long to wait before asking again for a receipt the node did not have after ``asks`` asks."""
    return min(RETRY_FIRST * 2 ** max(asks - 1, 0), RETRY_CAP)


class ForgottenHashes:
    """Fingerprints (the first 8 bytes) of the included transactions an edge has forgotten.

    8 bytes a transaction instead of its row: what lets an edge drop final rows and still catch a
    chain that includes one of them again. Sorted runs merged as they pile up, so a lookup is a
    few binary searches. A fingerprint can collide (about one in 10^19 per pair); the evidence
    names the hash, so a person can tell.
    """

    MERGE_AT = 8

    def __init__(self) -> None:
        self._runs: list[Any] = []
        self.count = 0

    def __bool__(self) -> bool:
        return self.count > 0

    def add(self, hashes: bytes) -> None:
        """Remember ``hashes`` (32 bytes each, concatenated)."""
        import numpy as np

        if not hashes:
            return
        prints = np.sort(np.frombuffer(hashes, dtype=">u8").reshape(-1, 4)[:, 0].astype(np.uint64))
        self._runs.append(prints)
        self.count += int(prints.size)
        if len(self._runs) >= self.MERGE_AT:
            self._runs = [np.sort(np.concatenate(self._runs))]

    def find(self, hashes: Sequence[bytes]) -> list[bytes]:
        """The ``hashes`` (32 bytes each) that were remembered."""
        import numpy as np

        prints = np.frombuffer(b"".join(hashes), dtype=">u8").reshape(-1, 4)[:, 0].astype(np.uint64)
        found = np.zeros(prints.size, dtype=bool)
        for run in self._runs:
            at = np.searchsorted(run, prints)
            inside = at < run.size
            found[inside] |= run[at[inside]] == prints[inside]
        return [hashes[index] for index in np.flatnonzero(found).tolist()]


class InclusionTracker:
    """Matches blocks to the edge's rows and checks receipts, on the edge's event loop."""

    def __init__(
        self,
        rpc: AsyncRpcClient,
        *,
        log: TxLog,
        by_hash: dict[bytes, int],
        gas_model: GasModel,
        expected_status: Sequence[int],
        receipt_stride: int,
        fail_fast: bool,
        follow_chain: bool,
        progress: Progress,
        latencies: deque[float],
        errors: Counter[str],
        notes: list[str],
        on_included: Callable[[int], None],
        stop_run: Callable[[str, StopKind], None],
        tip: int = 0,
    ) -> None:
        """``on_included(count)`` hears how many accepted rows a block settled; ``stop_run(reason, kind)``
        stops the edge (fail-fast); ``follow_chain`` keeps every block's hashes for the feed check."""
        self.rpc = rpc
        self.log = log
        self.by_hash = by_hash
        self.gas_model = gas_model
        self.expected_status = list(expected_status)
        self.receipt_stride = receipt_stride
        self.fail_fast = fail_fast
        self.follow_chain = follow_chain
        self.progress = progress
        self.latencies = latencies
        self.errors = errors
        self.notes = notes
        self.on_included = on_included
        self.stop_run = stop_run
        self.blocks: list[BlockRecord] = []
        self.duplicates: list[str] = []
        #: The included transactions the edge has forgotten (final rows): a block that lists one
        #: again is a duplicate inclusion, however long after.
        self.forgotten = ForgottenHashes()
        #: ``(observed_ns, (number, hash, transaction hashes))`` of the blocks seen and not yet
        #: checked against the feed (when the feed is followed; the feed link takes them as due).
        self.chain_blocks: deque[tuple[int, tuple[int, str, list[str]]]] = deque()
        #: Rows whose receipt is wanted, by block, oldest first; owned by one task at a time (the
        #: receipt loop, then the drain).
        self.wanted: deque[_Wanted] = deque()
        self.receipts_expected = 0
        self.receipts_checked = 0
        self.receipts_missing = 0
        self.receipts_abandoned = 0
        #: Included rows not on the receipt sample.
        self.receipts_skipped = 0
        #: ``null`` (or an error) answers that were asked again.
        self.receipts_retried = 0
        self.fees_paid = 0
        #: The run's priority fee, to price a receipt that under-reports its fee (see ``_record``).
        self.tip = tip
        #: Base fee of every block seen, by number (blocks without one are absent).
        self.base_fees: dict[int, int] = {}
        #: Receipts whose ``effectiveGasPrice`` is below their block's base fee, which EIP-1559
        #: makes the floor of every price; and the fees those rows paid priced at base fee + tip.
        self.receipts_below_base_fee = 0
        self.fees_at_base_fee = 0
        #: How whole blocks' receipts are fetched: per block until the node refuses it.
        self.receipts_via = BLOCK_RECEIPTS
        #: Receipts served by each method.
        self.served: Counter[str] = Counter()
        #: Checked receipts naming another block than the one the transaction was seen in, and the
        #: first of them in words (the evidence of ``receipt_block``).
        self.receipt_block_mismatches = 0
        self.receipt_block_items: list[str] = []

    def on_block(self, record: BlockRecord, tx_hashes: list[str]) -> None:
        self.blocks.append(record)
        if record.base_fee is not None:
            self.base_fees[record.number] = record.base_fee
        if self.follow_chain:
            self.chain_blocks.append((record.observed_ns, (record.number, record.hash, tx_hashes)))
        log, progress, latencies, by_hash = self.log, self.progress, self.latencies, self.by_hash
        base = log.base
        settled = 0
        sampled: list[int] = []
        unknown: list[bytes] = []
        for text in tx_hashes:
            tx_hash = bytes.fromhex(text[2:])
            row = by_hash.get(tx_hash)
            if row is None:
                unknown.append(tx_hash)
                continue
            index = row - base
            log.inclusions[index] = min(log.inclusions[index] + 1, 100)
            if log.inclusions[index] > 1:
                self._duplicate(text)
                continue
            if log.state[index] == STATUS_ACCEPTED:
                settled += 1
            log.included_ns[index] = record.observed_ns
            log.block_number[index] = record.number
            log.state[index] = STATUS_INCLUDED
            progress.included += 1
            progress.included_gas += log.gas_planned[index]
            latencies.append((record.observed_ns - log.intended_ns[index]) / 1e9)
            if self.receipt_stride and row % self.receipt_stride == 0:
                sampled.append(row)
            else:
                self.receipts_skipped += 1
        if unknown and self.forgotten:
            for tx_hash in self.forgotten.find(unknown):
                self._duplicate("0x" + tx_hash.hex())
        if sampled:
            self.receipts_expected += len(sampled)
            whole = record.tx_count <= max(SMALL_BLOCK, WHOLE_BLOCK_FACTOR * len(sampled))
            self.wanted.append(_Wanted(record.number, record.hash, sampled, time.monotonic(), whole))
        if settled:
            self.on_included(settled)

    def _duplicate(self, tx_hash: str) -> None:
        self.duplicates.append(tx_hash)
        if self.fail_fast:
            self.stop_run(f"fail-fast: no_duplicate_inclusion broke on {tx_hash}", "fail-fast")

    # -- receipts ------------------------------------------------------------------------------
    @property
    def receipts_outstanding(self) -> int:
        """Receipts wanted and not obtained (yet)."""
        return sum(len(entry.rows) for entry in self.wanted)

    def coverage(self) -> ReceiptCoverage:
        return ReceiptCoverage(
            expected=self.receipts_expected,
            checked=self.receipts_checked,
            missing=self.receipts_missing,
            abandoned=self.receipts_abandoned,
        )

    async def receipt_loop(self, stop: asyncio.Event) -> None:
        """While the run goes, fetch due receipts in batches.

        Returns once ``stop`` is set, between batches, never with one in flight: the drain that
        follows (:meth:`drain_receipts`, given this task) then owns the queue alone.
        """
        while not stop.is_set():
            if self._should_fetch(time.monotonic()):
                await self.fetch_receipts(RUN_BATCH_ROWS)
            else:
                await asyncio.sleep(0.2)

    def _should_fetch(self, now: float) -> bool:
        due = 0
        for entry in self.wanted:
            if entry.not_before > now:
                continue
            if now - entry.since >= RECEIPT_MAX_WAIT:
                return True
            due += len(entry.rows)
            if due >= RECEIPT_BATCH_THRESHOLD:
                return True
        return False

    async def drain_receipts(
        self, timeout: float, abandon: Callable[[], bool], *, loop: asyncio.Task[None] | None = None
    ) -> ReceiptCoverage:
        """Fetch every wanted receipt within ``timeout``; what the node never served counts as missing.

        ``loop`` is the run's :meth:`receipt_loop` task, whose stop event is already set: its batch in
        flight is awaited (within the same ``timeout``), not cancelled, so no row is lost between
        the two. ``null`` answers are asked again with backoff (:func:`retry_delay`) until the
        deadline. When ``abandon()`` says so (the run was stopped), the rest is abandoned.
        """
        deadline = time.monotonic() + timeout
        if loop is not None:
            try:
                await asyncio.wait_for(asyncio.shield(loop), timeout)
            except TimeoutError:
                loop.cancel()  # its rows in flight go back to the queue (fetch_receipts)
                await asyncio.gather(loop, return_exceptions=True)
            except Exception as exc:  # a bug in the loop: its rows are back in the queue; say so
                self.notes.append(f"receipt loop failed: {type(exc).__name__}: {exc}")
        while self.wanted:
            if abandon():
                self.receipts_abandoned += self.receipts_outstanding
                self.wanted.clear()
                break
            now = time.monotonic()
            if now >= deadline:
                break
            next_due = min(entry.not_before for entry in self.wanted)
            if next_due > now:
                await asyncio.sleep(min(next_due, deadline) - now)
                continue
            with contextlib.suppress(TimeoutError):
                # The deadline is hard: a fetch still out when it passes is cancelled, its rows kept.
                await asyncio.wait_for(self.fetch_receipts(DRAIN_BATCH_ROWS), deadline - now)
        missing = self.receipts_outstanding
        if missing:
            self.receipts_missing += missing
            self.errors["receipt_missing"] += missing
            self.wanted.clear()
            self.notes.append(
                f"receipts: {missing} never obtained within the drain's {timeout:g} s (answered null or "
                "an error each time, or not answered in time)"
            )
        if self.receipts_retried:
            self.notes.append(
                f"receipts: {self.receipts_retried} asked again after a null answer or an error "
                "(a node may index receipts after announcing the block)"
            )
        if self.receipts_expected:
            self.notes.append(
                f"receipts: checked {self.receipts_checked} of {self.receipts_expected} expected, "
                f"with {self.methods_used}"
            )
        return self.coverage()

    async def fetch_receipts(self, limit: int) -> int:
        """Ask for the due receipts, up to ``limit`` rows (whole blocks when fetching per block).

        Returns how many rows were asked for. Rows the node did not serve are asked again later;
        if the fetch fails or is cancelled, every row of it stays wanted.
        """
        batch = self._take(limit, time.monotonic())
        if not batch:
            return 0
        try:
            unserved = await self._fetch(batch)
        except TransportError as exc:
            self.errors["receipt_fetch"] += 1
            if self.errors["receipt_fetch"] <= 3:  # the count says how often; the first few say why
                self.notes.append(f"receipt fetch failed: {exc}")
            self._put_back(batch)
            await asyncio.sleep(0.2)
            return sum(len(entry.rows) for entry in batch)
        except BaseException:
            # Cancelled (or broken) before any answer was used: the rows stay wanted.
            self._put_back(batch)
            raise
        now = time.monotonic()
        for entry in unserved:
            entry.asks += 1
            entry.not_before = now + retry_delay(entry.asks)
            if entry.asks >= WHOLE_BLOCK_ASKS:
                entry.whole = False
            self.receipts_retried += len(entry.rows)
            self.wanted.append(entry)
        return sum(len(entry.rows) for entry in batch)

    @property
    def methods_used(self) -> str:
        """The methods that served receipts, joined with `` + `` (the current one if none served)."""
        used = [method for method in (BLOCK_RECEIPTS, TX_RECEIPT) if self.served[method]]
        return " + ".join(used) if used else self.receipts_via

    def _take(self, limit: int, now: float) -> list[_Wanted]:
        """Remove and return the due entries for one batch, oldest first."""
        per_block = self.receipts_via == BLOCK_RECEIPTS
        taken: list[_Wanted] = []
        kept: deque[_Wanted] = deque()
        budget, blocks = limit, 0
        for entry in self.wanted:
            whole = per_block and entry.whole
            if budget <= 0 or entry.not_before > now or (whole and blocks >= BLOCKS_PER_BATCH):
                kept.append(entry)
            elif not whole and len(entry.rows) > budget:
                taken.append(dataclasses.replace(entry, rows=entry.rows[:budget]))
                kept.append(dataclasses.replace(entry, rows=entry.rows[budget:]))
                budget = 0
            else:
                taken.append(entry)
                budget -= len(entry.rows)
                blocks += whole
        self.wanted = kept
        return taken

    def _put_back(self, entries: list[_Wanted]) -> None:
        self.wanted.extendleft(reversed(entries))

    async def _fetch(self, batch: list[_Wanted]) -> list[_Wanted]:
        """One JSON-RPC batch for ``batch``: whole blocks and single transactions; the rows left unserved."""
        log = self.log
        per_block = self.receipts_via == BLOCK_RECEIPTS
        calls: list[tuple[str, list[Any]]] = []
        for entry in batch:
            if per_block and entry.whole:
                calls.append((BLOCK_RECEIPTS, [entry.block_hash]))
            else:
                calls.extend((TX_RECEIPT, [log.tx_hash(row)]) for row in entry.rows)
        answers = await self.rpc.batch(calls)
        for (method, _), answer in zip(calls, answers, strict=True):
            if method != BLOCK_RECEIPTS or isinstance(answer, TransportError):
                continue
            if isinstance(answer, RpcError) or parse_block_receipts(answer) is None:
                # Any refusal (-32601 method not found, or a node that takes no block hash) or an
                # answer of an unknown shape: per-transaction receipts are slower, every node has them.
                why = (
                    f"refused ({answer})" if isinstance(answer, RpcError) else f"answered {str(answer)[:80]}"
                )
                self.receipts_via = TX_RECEIPT
                self.notes.append(
                    f"receipts: {BLOCK_RECEIPTS} {why}; fetched per transaction with {TX_RECEIPT}"
                )
                self._put_back(batch)  # nothing of this batch was used yet
                return []
        given = iter(answers)
        unserved: list[_Wanted] = []
        for entry in batch:
            if per_block and entry.whole:
                answer = next(given)
                found = {} if isinstance(answer, Exception) else parse_block_receipts(answer) or {}
                left = [
                    row
                    for row in entry.rows
                    if not self._record(row, found.get(log.tx_hash(row)), BLOCK_RECEIPTS, entry)
                ]
            else:
                left = [row for row in entry.rows if not self._record(row, next(given), TX_RECEIPT, entry)]
            if left:
                unserved.append(dataclasses.replace(entry, rows=left))
        return unserved

    def _below_base_fee(self, row: int, price: int, base_fee: int, gas_used: int) -> None:
        self.receipts_below_base_fee += 1
        self.fees_at_base_fee += gas_used * (base_fee + self.tip)
        if self.receipts_below_base_fee == 1:
            self.notes.append(
                f"{FEES_NOTE}the node's receipts under-report fees: {self.log.tx_hash(row)} in block "
                f"#{self.log.block_number[self.log.at(row)]} reports "
                f"effectiveGasPrice {price:,} wei, below that block's base fee {base_fee:,} wei (EIP-1559 "
                "charges base fee + min(tip, fee cap - base fee))"
            )

    def _check_block(self, row: int, receipt: dict[str, Any], seen: _Wanted) -> None:
        """The receipt must name the block ``row`` was seen in; a field it leaves out is not judged."""
        number_text, hash_text = receipt.get("blockNumber"), receipt.get("blockHash")
        try:
            number: int | None = None if number_text is None else int(number_text, 16)
        except (TypeError, ValueError):
            number = -1  # unreadable: not the block seen either
        if (number is None or number == seen.number) and (
            hash_text is None or str(hash_text).lower() == seen.block_hash.lower()
        ):
            return
        tx_hash = self.log.tx_hash(row)
        self.receipt_block_mismatches += 1
        if len(self.receipt_block_items) < EVIDENCE_LIMIT:
            self.receipt_block_items.append(
                f"{tx_hash} receipt: block {number_text} {hash_text}; seen in: block "
                f"{hex(seen.number)} {seen.block_hash}"
            )
        if self.fail_fast:
            self.stop_run(f"fail-fast: receipt_block broke on {tx_hash}", "fail-fast")

    def _record(self, row: int, receipt: Any, method: str, seen: _Wanted) -> bool:
        """Take ``receipt`` for ``row``, seen in the block of ``seen``; False when it is none (``null``,
        an error, a broken object)."""
        if not isinstance(receipt, dict):
            return False
        try:
            status = int(receipt["status"], 16)
            gas_used = int(receipt["gasUsed"], 16)
            price = int(receipt.get("effectiveGasPrice", "0x0"), 16)
        except (KeyError, TypeError, ValueError):
            self.errors["receipt_malformed"] += 1
            return False
        log = self.log
        index = row - log.base
        self._check_block(row, receipt, seen)
        log.receipt_status[index] = status
        template = log.template[index]
        if self.fail_fast:
            expected = self.expected_status[template] if template >= 0 else 1
            if status != expected:
                self.stop_run(f"fail-fast: receipt_status broke on {log.tx_hash(row)}", "fail-fast")
        self.fees_paid += gas_used * price
        base_fee = self.base_fees.get(log.block_number[index])
        if base_fee is not None and price < base_fee:
            self._below_base_fee(row, price, base_fee, gas_used)
        else:
            self.fees_at_base_fee += gas_used * price
        log.gas_used[index] = gas_used
        if template >= 0:
            model = self.gas_model
            observed = model.observed[template]
            observed[0] += gas_used
            observed[1] += 1
            # Correct the model from receipts so the gas rate tracks what the chain really charges.
            model.values[template] = observed[0] / observed[1]
            model.version += 1
        self.receipts_checked += 1
        self.served[method] += 1
        return True
