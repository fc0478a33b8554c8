"""Inclusion: which block holds each transaction, its receipt, and the gas model's correction.

The :class:`InclusionTracker` receives every block from the
:class:`~pytest_gashammer.edge.tracker.BlockFollower`, matches its transaction hashes to the
edge's rows (included time, block, state), queues an evenly spread sample for receipts, and
fetches those in batches: status, gas used, fees paid, and the corrected gas per template that
feeds back into the arrival rate.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter, deque
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from pytest_gashammer.chain.rpc import AsyncRpcClient, TransportError
from pytest_gashammer.edge.gas_model import GasModel
from pytest_gashammer.telemetry.records import STATUS_ACCEPTED, STATUS_INCLUDED, BlockRecord, StopKind, TxLog

if TYPE_CHECKING:
    from pytest_gashammer.edge.runtime import Progress

#: Receipts waiting before the run's receipt loop fetches a batch of them.
RECEIPT_BATCH_THRESHOLD = 64


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
        #: (number, hash, transaction hashes) of every block seen, when the feed is followed.
        self.chain_blocks: list[tuple[int, str, list[str]]] = []
        self.pending_receipts: deque[int] = deque()
        self.receipts_checked = 0
        self.receipts_skipped = 0
        self.fees_paid = 0

    def on_block(self, record: BlockRecord, tx_hashes: list[str]) -> None:
        self.blocks.append(record)
        if self.follow_chain:
            self.chain_blocks.append((record.number, record.hash, tx_hashes))
        log, progress, latencies, by_hash = self.log, self.progress, self.latencies, self.by_hash
        settled = 0
        for text in tx_hashes:
            tx_hash = bytes.fromhex(text[2:])
            row = by_hash.get(tx_hash)
            if row is None:
                continue
            log.inclusions[row] = min(log.inclusions[row] + 1, 100)
            if log.inclusions[row] > 1:
                self.duplicates.append(text)
                if self.fail_fast:
                    self.stop_run(f"fail-fast: no_duplicate_inclusion broke on {text}", "fail-fast")
                continue
            if log.state[row] == STATUS_ACCEPTED:
                settled += 1
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
        if settled:
            self.on_included(settled)

    async def receipt_loop(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            if len(self.pending_receipts) >= RECEIPT_BATCH_THRESHOLD:
                await self.fetch_receipts(200)
            else:
                await asyncio.sleep(0.2)

    async def drain_receipts(self, timeout: float, abandon: Callable[[], bool]) -> None:
        """Fetch every queued receipt within ``timeout``; when ``abandon()`` says so, skip the rest."""
        deadline = time.monotonic() + timeout
        while self.pending_receipts and time.monotonic() < deadline:
            if abandon():
                self.receipts_skipped += len(self.pending_receipts)
                self.pending_receipts.clear()
                return
            await self.fetch_receipts(500)

    async def fetch_receipts(self, limit: int) -> None:
        rows = [self.pending_receipts.popleft() for _ in range(min(limit, len(self.pending_receipts)))]
        if not rows:
            return
        log = self.log
        try:
            answers = await self.rpc.batch(
                [("eth_getTransactionReceipt", [log.tx_hash(row)]) for row in rows]
            )
        except TransportError as exc:
            self.errors["receipt_fetch"] += 1
            self.notes.append(f"receipt fetch failed: {exc}")
            self.pending_receipts.extendleft(reversed(rows))
            await asyncio.sleep(0.2)
            return
        model = self.gas_model
        for row, receipt in zip(rows, answers, strict=True):
            if not isinstance(receipt, dict):
                self.errors["receipt_missing"] += 1
                continue
            log.receipt_status[row] = int(receipt.get("status", "0x0"), 16)
            if self.fail_fast:
                template = log.template[row]
                expected = self.expected_status[template] if template >= 0 else 1
                if log.receipt_status[row] != expected:
                    self.stop_run(f"fail-fast: receipt_status broke on {log.tx_hash(row)}", "fail-fast")
            gas_used = int(receipt.get("gasUsed", "0x0"), 16)
            self.fees_paid += gas_used * int(receipt.get("effectiveGasPrice", "0x0"), 16)
            log.gas_used[row] = gas_used
            template = log.template[row]
            if template >= 0:
                observed = model.observed[template]
                observed[0] += gas_used
                observed[1] += 1
                # Correct the model from receipts so the gas rate tracks what the chain really charges.
                model.values[template] = observed[0] / observed[1]
                model.version += 1
            self.receipts_checked += 1
