"""Evidence an edge gathers after its drain, for the oracle's verdicts.

- The lost-transaction probe: for the first accepted transactions no block has shown, what the
  node says about each (:func:`probe_lost`, read by :func:`diagnose_lost`).
- Value conservation (:class:`BalanceCheck`): what the senders lost must equal the value they
  moved plus the fees they paid.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pytest_gashammer.chain.rpc import AsyncRpcClient, RpcError, TransportError
from pytest_gashammer.telemetry.digest import RunDigest
from pytest_gashammer.telemetry.records import STATUS_ACCEPTED, TxLog

__all__ = ["LOST_PROBE_LIMIT", "BalanceCheck", "balances_at", "diagnose_lost", "pool_index", "probe_lost"]

#: Accepted-but-never-included transactions the edge asks the node about after the drain.
LOST_PROBE_LIMIT = 20


def pool_index(content: Any) -> dict[str, Any]:
    """The hashes and (sender, nonce) slots a ``txpool_content`` answer shows, by section.

    The answer is geth-shaped: ``{"pending": {address: {nonce: tx}}, "queued": {...}}``. Clients
    differ in the address case (geth checksums, EthereumJS lowercases and serves ``pending`` only)
    and write the nonce as a decimal string, so both are normalised here.
    """
    hashes: dict[str, str] = {}
    slots: dict[tuple[str, int], str] = {}
    if not isinstance(content, dict):
        raise TypeError(f"txpool_content answered {type(content).__name__}, not an object")
    for section in ("pending", "queued"):
        for address, by_nonce in (content.get(section) or {}).items():
            for nonce, tx in (by_nonce or {}).items():
                tx_hash = str(tx.get("hash", "")).lower() if isinstance(tx, dict) else ""
                if tx_hash:
                    hashes[tx_hash] = section
                slots[(str(address).lower(), int(nonce, 0) if isinstance(nonce, str) else int(nonce))] = (
                    tx_hash or section
                )
    return {"hashes": hashes, "slots": slots}


def _pool_slots_from_inspect(inspect: Any) -> dict[tuple[str, int], str]:
    """(sender, nonce) slots of a ``txpool_inspect`` answer (summaries only, no hashes)."""
    if not isinstance(inspect, dict):
        raise TypeError(f"txpool_inspect answered {type(inspect).__name__}, not an object")
    return {
        (str(address).lower(), int(nonce, 0) if isinstance(nonce, str) else int(nonce)): section
        for section in ("pending", "queued")
        for address, by_nonce in (inspect.get(section) or {}).items()
        for nonce in by_nonce or {}
    }


def diagnose_lost(
    found: Any,
    nonce: int,
    on_chain_nonce: int | None,
    *,
    tx_hash: str = "",
    sender: str = "",
    pool: dict[str, Any] | None = None,
    pool_unavailable: str | None = None,
    stall: str | None = None,
) -> str:
    """What the node's answers say about an accepted transaction no block has shown.

    ``found`` is the node's ``eth_getTransactionByHash`` answer (a transaction, None, or an error)
    and ``on_chain_nonce`` the sender's ``latest`` transaction count (None if unknown). ``pool`` is
    :func:`pool_index` of the node's pool (or ``{"slots": ...}`` from ``txpool_inspect``); None with
    ``pool_unavailable`` saying why it is unknown. Some clients (EthereumJS) never return a pooled
    transaction by hash, so only the pool itself can tell a pooled transaction from a dropped one.
    ``stall`` says the chain stopped producing blocks while this transaction waited.
    """
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
    why = f"the chain stopped producing blocks ({stall}); " if stall else ""
    in_pool: str | None = None
    holder: str | None = None
    if pool is not None:
        in_pool = pool.get("hashes", {}).get(tx_hash.lower())
        holder = pool.get("slots", {}).get((sender.lower(), nonce))
        if in_pool is None and holder is not None and "hashes" not in pool:
            in_pool = holder  # txpool_inspect shows the slot, not the hash
            holder = None
    if in_pool is not None:
        return f"{why}in the node's pool ({in_pool}), never included; {where}"
    if isinstance(found, dict):
        return f"{why}still in the node's pool (eth_getTransactionByHash), never included; {where}"
    asked = (
        f"the node could not be asked ({found})"
        if isinstance(found, Exception)
        else "not found by eth_getTransactionByHash"
    )
    if pool is None:
        return f"{why}{asked}; the node has no txpool_content to confirm a drop ({pool_unavailable}); {where}"
    if holder is not None and holder.startswith("0x") and holder != tx_hash.lower():
        return f"{why}{asked} and replaced in the node's pool by {holder} at the same nonce; {where}"
    if stall:
        return f"{why}{asked} and not in the node's pool (txpool_content); {where}"
    return f"dropped: {asked} and not in the node's pool (txpool_content); {where}"


async def _pool(rpc: AsyncRpcClient) -> tuple[dict[str, Any] | None, str | None]:
    """The node's pool as :func:`pool_index` (``txpool_content``, else ``txpool_inspect``), or why not."""
    reasons: list[str] = []
    for method in ("txpool_content", "txpool_inspect"):
        try:
            answer = await rpc.call(method)
            if method == "txpool_content":
                return pool_index(answer), None
            return {"slots": _pool_slots_from_inspect(answer)}, None
        except (RpcError, TransportError, TypeError, ValueError, AttributeError) as exc:
            reasons.append(f"{method}: {exc}")
    return None, "; ".join(reasons)


async def probe_lost(
    rpc: AsyncRpcClient,
    log: TxLog,
    sender_addresses: Sequence[str],
    notes: list[str],
    *,
    stall: str | None = None,
) -> dict[str, str]:
    """Ask the node about the first accepted rows no block has shown: a diagnosis by transaction hash.

    ``stall`` (e.g. "no new block for 12.0 s, head stuck at #41") is said in every diagnosis: with
    the chain stopped, a transaction left out of blocks is not the pool's fault.
    """
    # Rows still accepted are open, so the log still holds them: only final rows are forgotten.
    base = log.base
    rows = [base + index for index, state in enumerate(log.state) if state == STATUS_ACCEPTED][
        :LOST_PROBE_LIMIT
    ]
    senders = sorted({log.sender[row - base] for row in rows})
    calls = [("eth_getTransactionByHash", [log.tx_hash(row)]) for row in rows]
    calls += [("eth_getTransactionCount", [sender_addresses[sender], "latest"]) for sender in senders]
    try:
        answers = await rpc.batch(calls)
    except TransportError as exc:
        notes.append(f"could not ask the node about transactions never seen in a block: {exc}")
        return {}
    pool, pool_unavailable = await _pool(rpc)
    on_chain = dict(zip(senders, answers[len(rows) :], strict=True))
    probe: dict[str, str] = {}
    for row, found in zip(rows, answers[: len(rows)], strict=True):
        index = row - base
        count = on_chain[log.sender[index]]
        address = sender_addresses[log.sender[index]]
        try:
            diagnosis = diagnose_lost(
                found,
                log.nonce[index],
                int(count, 16) if isinstance(count, str) else None,
                tx_hash=log.tx_hash(row),
                sender=address,
                pool=pool,
                pool_unavailable=pool_unavailable,
                stall=stall,
            )
        except (ValueError, TypeError, AttributeError) as exc:
            diagnosis = f"the node's answer could not be read ({exc})"
        probe[log.tx_hash(row)] = f"sender {address} nonce {log.nonce[index]}: {diagnosis}"
    return probe


async def balances_at(rpc: AsyncRpcClient, addresses: Sequence[str], block: int) -> list[int]:
    answers = await rpc.batch([("eth_getBalance", [address, hex(block)]) for address in addresses])
    if any(isinstance(answer, Exception) for answer in answers):
        raise TransportError(f"eth_getBalance at block {block} failed for a sender")
    return [int(answer, 16) for answer in answers]


#: Tries at reading the senders at the head block, for a node that keeps no past state (the embedded
#: devnet on long runs): a new block may land between asking for the head and reading at it, and the
#: node then refuses the read; at 250 ms blocks and a read of milliseconds, a second try almost
#: always does.
HEAD_READ_ATTEMPTS = 20


class BalanceCheck:
    """The senders' balances before and after a run, against the value moved and the fees paid.

    Holds only when the run's transactions are the senders' only ones in its blocks: a sender with
    transactions still pooled from before the run (its pending nonce ahead of its mined one) would
    spend in the window too, so the check is then skipped, and says why (``skipped``).

    Each side is read at one block number: before the run at ``start_block``, after it at the run's
    last block. A node that keeps no past state (the embedded devnet prunes its history on long
    runs) refuses a block that is no longer the head; each side is then read at the head block
    instead, which shows the same balances: before the run none of its transactions is sent yet,
    and after it, once every accepted transaction is seen in a block (``settled``), nothing of the
    run changes them. A run that ends with transactions unaccounted for is read at its last block
    only, and a refusal is said in the notes.
    """

    def __init__(
        self, rpc: AsyncRpcClient, addresses: Sequence[str], start_block: int, start_nonces: Sequence[int]
    ) -> None:
        self.rpc = rpc
        self.addresses = list(addresses)
        self.start_block = start_block
        self.start_nonces = list(start_nonces)
        self.before: list[int] = []
        self.before_block = start_block
        self.skipped: str | None = None
        #: Balances at ``after_block`` (record_after), or why the node could not give them.
        self.after: list[int] | None = None
        self.after_block: int | None = None
        self.after_error: str | None = None

    async def _read_at_head(self, least: int, *, nonces: bool) -> tuple[int, list[Any]]:
        """(block, answers): the senders' balances (and nonces) at the head block, at least ``least``."""
        error = ""
        for _ in range(HEAD_READ_ATTEMPTS):
            block = max(int(await self.rpc.call("eth_blockNumber"), 16), least)
            calls = [("eth_getBalance", [address, hex(block)]) for address in self.addresses]
            if nonces:
                calls += [("eth_getTransactionCount", [address, hex(block)]) for address in self.addresses]
            answers = await self.rpc.batch(calls)
            failed = [answer for answer in answers if isinstance(answer, Exception)]
            if not failed:
                return block, answers
            error = str(failed[0])
        raise TransportError(
            f"reading the senders at the head block failed {HEAD_READ_ATTEMPTS} times (last: {error})"
        )

    async def _read(self, block: int, *, nonces: bool, settled: bool) -> tuple[int, list[Any]]:
        """(block, answers) at ``block``, or at the head block when the node refuses that one and
        the head shows the same (``settled``)."""
        calls = [("eth_getBalance", [address, hex(block)]) for address in self.addresses]
        if nonces:
            calls += [("eth_getTransactionCount", [address, hex(block)]) for address in self.addresses]
        answers = await self.rpc.batch(calls)
        if not any(isinstance(answer, Exception) for answer in answers):
            return block, answers
        if not settled:
            raise TransportError(f"eth_getBalance at block {block} failed for a sender")
        return await self._read_at_head(block, nonces=nonces)

    async def record_before(self) -> None:
        self.before_block, answers = await self._read(self.start_block, nonces=True, settled=True)
        count = len(self.addresses)
        self.before = [int(answer, 16) for answer in answers[:count]]
        mined = [int(answer, 16) for answer in answers[count:]]
        pooled = sum(start - nonce for start, nonce in zip(self.start_nonces, mined, strict=True))
        if pooled:
            self.skipped = (
                f"the senders had {pooled} transaction(s) from before the run still pending at block "
                f"{self.before_block}; what those spend would count against the run"
            )

    async def record_after(self, last_block: int, *, settled: bool) -> None:
        """Read the balances after the run, at ``last_block`` (or the head when ``settled``: no
        accepted transaction is still unseen in a block).

        Done as soon as the run's blocks are followed, not at :meth:`facts` time: the receipt drain
        comes in between and can take 30 s and more, and a node that prunes its history may hold
        the last block's state only while it is the head.
        """
        if self.skipped is not None:
            return
        self.after_block, self.after, self.after_error = last_block, None, None
        try:
            self.after_block, answers = await self._read(last_block, nonces=False, settled=settled)
            self.after = [int(answer, 16) for answer in answers]
        except (RpcError, TransportError) as exc:
            self.after_error = str(exc)

    async def facts(
        self, digest: RunDigest, last_block: int, fees_paid: int, notes: list[str]
    ) -> dict[str, int] | None:
        """The balance facts after the run, from the run's ``digest`` (every row final); None when a
        receipt (so a fee) is missing, the senders had older transactions pending (``skipped``) or
        the node could not be asked (said in ``notes``). Uses what :meth:`record_after` read, else
        reads at ``last_block`` now."""
        if self.skipped is not None:
            return None
        if digest.included_without_receipt:
            return None  # a receipt is missing: the fees are not all known
        if self.after_block is None:
            await self.record_after(last_block, settled=False)
        if self.after is None or self.after_block is None:
            notes.append(f"balance check skipped: {self.after_error}")
            return None
        moved = digest.included_moving_value  # a transfer moves 1 wei; fillers 0
        return {
            "block_before": self.before_block,
            "block_after": self.after_block,
            "senders_lost": sum(self.before) - sum(self.after),
            "value_moved": moved,
            "fees_paid": fees_paid,
        }
