"""Re-admit transactions that anvil strands in its queued pool.

anvil decides what a new transaction waits for (the pool marker of ``nonce - 1``) from the sender's
on-chain nonce when it validates the transaction, and adds it to the pool a moment later. When the
block holding ``nonce - 1`` is committed and its markers pruned in between, the transaction waits
in the queued pool for a marker that is already gone: it never becomes ready, and neither does any
later nonce of that sender. Under load on a busy machine this happens about once in tens of
thousands of transactions, and the run would report them lost although the chain did nothing
wrong. (A Nitro sequencer has no such pool; this is a property of the stand-in node.)

The signature is unambiguous: a queued transaction whose nonce equals its sender's on-chain nonce.
:class:`PoolWatch` polls ``txpool_status`` and looks for that signature in ``txpool_content``, and
when the same transaction shows it twice in a row it re-admits the sender's pooled transactions
unchanged (same bytes, rebuilt from the pool's JSON by :mod:`pytest_gashammer.chain.tx`, the encoder the
feed relay uses too, and checked against their hashes): one JSON-RPC batch reads the pool and removes
the sender's transactions (``anvil_removePoolTransactions``), the next sends them again in nonce order. Every re-admission is
recorded in :attr:`PoolWatch.incidents`, which runs report as ``devnet:`` notes.

``txpool_content`` lists every ready transaction too, thousands under heavy load, and at high rates
something is briefly queued at most polls (several connections reorder a sender's nonces for a
moment). So the pool is read only when nothing is ready (the read is small), when something has
stayed queued at every poll for :data:`SUSTAINED_POLLS` polls (at most every
:data:`FULL_READ_INTERVAL` seconds), or to confirm a suspect on the next poll.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from pytest_gashammer.chain.rpc import RpcError, TransportError, call, call_batch

POLL_INTERVAL = 0.5
SUSTAINED_POLLS = 6
FULL_READ_INTERVAL = 5.0
MAX_INCIDENTS = 100


def _by_sender(bucket: Any) -> dict[str, dict[int, dict[str, Any]]]:
    """``{sender: {nonce: entry}}`` from one ``txpool_content`` bucket, senders lower-cased."""
    pooled: dict[str, dict[int, dict[str, Any]]] = {}
    if not isinstance(bucket, dict):
        return pooled
    for sender, entries in bucket.items():
        if not isinstance(entries, dict):
            continue
        for nonce, entry in entries.items():
            if isinstance(entry, dict):
                pooled.setdefault(str(sender).lower(), {})[int(nonce)] = entry
    return pooled


class PoolWatch:
    """Watches an anvil node's pool on a thread and re-admits transactions it stranded."""

    def __init__(self, rpc_url: str, *, interval: float = POLL_INTERVAL, timeout: float = 10.0) -> None:
        self.rpc_url = rpc_url
        self.interval = interval
        self.timeout = timeout
        self.incidents: list[str] = []
        self.errors = 0
        self._suspects: dict[str, str] = {}
        self._queued_streak = 0
        self._last_full_read = -FULL_READ_INTERVAL
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> PoolWatch:
        self._thread = threading.Thread(target=self._run, name="gashammer-pool-watch", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            # A poll blocked on a paused or dying node ends with the node; never hold up close().
            self._thread.join(2.0)
            self._thread = None

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.check()
            except (RpcError, TransportError, ValueError, TypeError, KeyError):
                # The node is busy, stopping or answered oddly: try again on the next poll.
                self.errors += 1

    def check(self) -> list[str]:
        """One poll: returns the senders re-admitted (a stranded transaction must show twice)."""
        status = call(self.rpc_url, "txpool_status", timeout=self.timeout)
        if not isinstance(status, dict) or not int(str(status.get("queued", "0x0")), 16):
            self._suspects.clear()
            self._queued_streak = 0
            return []
        self._queued_streak += 1
        now = time.monotonic()
        if int(str(status.get("pending", "0x0")), 16):
            due = self._queued_streak >= SUSTAINED_POLLS and now - self._last_full_read >= FULL_READ_INTERVAL
            if not (due or self._suspects):  # a suspect is confirmed on the very next poll
                return []
            self._last_full_read = now
        content = call(self.rpc_url, "txpool_content", timeout=self.timeout)
        queued = _by_sender(content.get("queued") if isinstance(content, dict) else None)
        stranded = self._stranded(queued)
        confirmed = [sender for sender, tx_hash in stranded.items() if self._suspects.get(sender) == tx_hash]
        self._suspects = {sender: h for sender, h in stranded.items() if sender not in confirmed}
        for sender in confirmed:
            self._readmit(sender)
        return confirmed

    def _stranded(self, queued: dict[str, dict[int, dict[str, Any]]]) -> dict[str, str]:
        """Senders whose lowest queued nonce is their on-chain nonce, with that transaction's hash."""
        senders = sorted(queued)
        counts = call_batch(
            self.rpc_url,
            [("eth_getTransactionCount", [sender, "latest"]) for sender in senders],
            timeout=self.timeout,
        )
        stranded: dict[str, str] = {}
        for sender, count in zip(senders, counts, strict=True):
            if not isinstance(count, str):
                continue
            lowest = min(queued[sender])
            if lowest == int(count, 16):
                stranded[sender] = str(queued[sender][lowest].get("hash", ""))
        return stranded

    def _readmit(self, sender: str) -> None:
        from pytest_gashammer.chain.tx import rebuilt_raw_transaction

        # Reading and removing in one batch: anvil runs a batch's calls back to back, so nothing the
        # sender submits in between can be removed without being read.
        content, removed = call_batch(
            self.rpc_url,
            [("txpool_content", []), ("anvil_removePoolTransactions", [sender])],
            timeout=self.timeout,
        )
        if isinstance(removed, Exception) or not isinstance(content, dict):
            self._note(f"could not re-admit the stranded transactions of {sender}: {removed or content}")
            return
        pooled: dict[int, dict[str, Any]] = {}
        for bucket in ("pending", "queued"):
            pooled.update(_by_sender(content.get(bucket)).get(sender, {}))
        raws: list[bytes] = []
        unreadable: list[str] = []
        for nonce in sorted(pooled):
            entry = pooled[nonce]
            try:
                raw = rebuilt_raw_transaction(entry)
            except (KeyError, TypeError, ValueError) as exc:
                unreadable.append(f"{entry.get('hash')} ({type(exc).__name__}: {exc})")
                continue
            if raw is None:
                unreadable.append(f"{entry.get('hash')} (its pool entry does not rebuild to its hash)")
            else:
                raws.append(raw)
        answers = call_batch(
            self.rpc_url,
            [("eth_sendRawTransaction", ["0x" + raw.hex()]) for raw in raws],
            timeout=self.timeout,
        )
        failures = unreadable + [str(answer) for answer in answers if isinstance(answer, Exception)]
        message = (
            f"anvil stranded {len(pooled)} transaction(s) of {sender} from nonce {min(pooled, default='?')} "
            f"in its queued pool (a known anvil pool race); re-admitted {len(pooled) - len(failures)} unchanged"
        )
        if failures:
            message += f"; could not re-admit {len(failures)}: " + "; ".join(failures[:3])
        self._note(message)

    def _note(self, message: str) -> None:
        if len(self.incidents) < MAX_INCIDENTS:
            self.incidents.append(message)
