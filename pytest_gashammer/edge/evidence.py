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
from pytest_gashammer.telemetry.records import NOT_YET, STATUS_ACCEPTED, TxLog

__all__ = ["LOST_PROBE_LIMIT", "BalanceCheck", "balances_at", "diagnose_lost", "probe_lost"]

#: Accepted-but-never-included transactions the edge asks the node about after the drain.
LOST_PROBE_LIMIT = 20


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


async def probe_lost(
    rpc: AsyncRpcClient, log: TxLog, sender_addresses: Sequence[str], notes: list[str]
) -> dict[str, str]:
    """Ask the node about the first accepted rows no block has shown: a diagnosis by transaction hash."""
    rows = [row for row in range(len(log)) if log.state[row] == STATUS_ACCEPTED][:LOST_PROBE_LIMIT]
    senders = sorted({log.sender[row] for row in rows})
    calls = [("eth_getTransactionByHash", [log.tx_hash(row)]) for row in rows]
    calls += [("eth_getTransactionCount", [sender_addresses[sender], "latest"]) for sender in senders]
    try:
        answers = await rpc.batch(calls)
    except TransportError as exc:
        notes.append(f"could not ask the node about transactions never seen in a block: {exc}")
        return {}
    on_chain = dict(zip(senders, answers[len(rows) :], strict=True))
    probe: dict[str, str] = {}
    for row, found in zip(rows, answers[: len(rows)], strict=True):
        count = on_chain[log.sender[row]]
        try:
            diagnosis = diagnose_lost(
                found, log.nonce[row], int(count, 16) if isinstance(count, str) else None
            )
        except (ValueError, TypeError, AttributeError) as exc:
            diagnosis = f"the node's answer could not be read ({exc})"
        probe[log.tx_hash(row)] = (
            f"sender {sender_addresses[log.sender[row]]} nonce {log.nonce[row]}: {diagnosis}"
        )
    return probe


async def balances_at(rpc: AsyncRpcClient, addresses: Sequence[str], block: int) -> list[int]:
    answers = await rpc.batch([("eth_getBalance", [address, hex(block)]) for address in addresses])
    if any(isinstance(answer, Exception) for answer in answers):
        raise TransportError(f"eth_getBalance at block {block} failed for a sender")
    return [int(answer, 16) for answer in answers]


class BalanceCheck:
    """The senders' balances before and after a run, against the value moved and the fees paid."""

    def __init__(self, rpc: AsyncRpcClient, addresses: Sequence[str], start_block: int) -> None:
        self.rpc = rpc
        self.addresses = list(addresses)
        self.start_block = start_block
        self.before: list[int] = []

    async def record_before(self) -> None:
        self.before = await balances_at(self.rpc, self.addresses, self.start_block)

    async def facts(
        self, log: TxLog, last_block: int, fees_paid: int, notes: list[str]
    ) -> dict[str, int] | None:
        """The balance facts at ``last_block``; None when a receipt (so a fee) is missing or the
        node could not be asked (said in ``notes``)."""
        included = [row for row in range(len(log)) if log.included_ns[row] != NOT_YET]
        if any(log.gas_used[row] == NOT_YET for row in included):
            return None  # a receipt is missing: the fees are not all known
        try:
            after = await balances_at(self.rpc, self.addresses, last_block)
        except (RpcError, TransportError) as exc:
            notes.append(f"balance check skipped: {exc}")
            return None
        moved = sum(1 for row in included if log.template[row] >= 0)  # a transfer moves 1 wei; fillers 0
        return {
            "block_before": self.start_block,
            "block_after": last_block,
            "senders_lost": sum(self.before) - sum(after),
            "value_moved": moved,
            "fees_paid": fees_paid,
        }
