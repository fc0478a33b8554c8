"""Sender accounts derived from the run seed, and the nonce book that keeps their nonces honest."""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pytest_gashammer.chain.keccak import keccak256
from pytest_gashammer.errors import GashammerError

if TYPE_CHECKING:
    from pytest_gashammer.chain.rpc import AsyncRpcClient

_SECP256K1_ORDER = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


@dataclass(frozen=True)
class Sender:
    index: int
    key: str
    address: str


def sender_key(seed: int, index: int) -> bytes:
    """The private key of sender ``index`` for ``seed``: the same on every edge and every run."""
    counter = 0
    while True:
        digest = keccak256(
            b"gashammer/sender" + seed.to_bytes(32, "big") + index.to_bytes(8, "big") + bytes([counter])
        )
        value = int.from_bytes(digest, "big")
        if 0 < value < _SECP256K1_ORDER:
            return digest
        counter += 1


def derive_senders(seed: int, start: int, count: int) -> list[Sender]:
    """Senders ``start .. start+count-1``; edges get disjoint ranges of the same sequence."""
    from eth_account import Account

    senders = []
    for index in range(start, start + count):
        key = sender_key(seed, index)
        senders.append(Sender(index, "0x" + key.hex(), Account.from_key(key).address))
    return senders


class NonceBook:
    """Hands out nonces per sender so that none is skipped and none is used twice.

    A nonce handed out but not consumed by the node (the transaction was rejected, the node
    answered after a transport failure that it does not have it, or a restarted node forgot it
    from its pool) is given back with :meth:`release` and is the next one handed out for that
    sender, so a later transaction fills the hole instead of leaving a gap
    that would strand every higher nonce in the pool. When the node says a nonce is already
    taken ("nonce too low", "already known", "replacement underpriced"), :meth:`resync` moves
    the sender to the node's pending count.
    """

    def __init__(self, starting_nonces: list[int]) -> None:
        self._start = list(starting_nonces)
        self._next = list(starting_nonces)
        self._released: list[list[int]] = [[] for _ in starting_nonces]
        #: Nonces consumed by transactions that are not ours (found out through the node's answers).
        self.foreign: list[set[int]] = [set() for _ in starting_nonces]

    def take(self, sender: int) -> int:
        released = self._released[sender]
        if released:
            return released.pop(0)
        nonce = self._next[sender]
        self._next[sender] = nonce + 1
        return nonce

    def release(self, sender: int, nonce: int) -> None:
        """Give back a nonce this book handed out that the node did not consume."""
        released = self._released[sender]
        handed_out = self._start[sender] <= nonce < self._next[sender]
        if handed_out and nonce not in released and nonce not in self.foreign[sender]:
            bisect.insort(released, nonce)

    def resync(self, sender: int, pending_count: int) -> None:
        """The node's pending nonce is ``pending_count``: everything below it is consumed."""
        self.foreign[sender].update(nonce for nonce in self._released[sender] if nonce < pending_count)
        self._released[sender] = [nonce for nonce in self._released[sender] if nonce >= pending_count]
        if pending_count > self._next[sender]:
            self.foreign[sender].update(range(self._next[sender], pending_count))
            self._next[sender] = pending_count

    def unwind(self, sender: int, nonce: int) -> None:
        """Take back a nonce handed out to a transaction that was never sent.

        Unwinding the latest nonces first (newest transaction first) leaves the book as if they had
        never been taken: the next nonce moves back, and a nonce that came from the released ones
        is released again.
        """
        released = self._released[sender]
        if nonce == self._next[sender] - 1:
            self._next[sender] = nonce
            while released and released[-1] == self._next[sender] - 1:
                self._next[sender] = released.pop()
        else:
            self.release(sender, nonce)

    def mark_foreign(self, sender: int, nonce: int) -> None:
        """The node holds another transaction at ``nonce`` for this sender (ours was refused for it)."""
        self.foreign[sender].add(nonce)

    def next_nonce(self, sender: int) -> int:
        return self._next[sender]

    def holes(self, sender: int) -> list[int]:
        return list(self._released[sender])


def nonce_address(address: str) -> str:
    """``address`` as nonces are asked for: lowercase hex.

    EthereumJS (0.10.5) counts pooled transactions in ``eth_getTransactionCount(addr, "pending")``
    only for a lowercase address: it looks its pool up by the lowercase hex, so a checksummed
    address gets the on-chain nonce alone and a rerun would reuse nonces still in its pool. Every
    client accepts lowercase.
    """
    return address.lower()


#: Unconfirmed transactions remembered per sender (their hashes are what the next run probes).
REMEMBERED_PER_SENDER = 4096
#: Remembered transactions asked about per sender when a node's count disagrees with the memory.
PROBED_PER_SENDER = 64


@dataclass
class Remembered:
    """What earlier runs of this session sent from one sender on one chain."""

    #: One past the highest nonce a node accepted from this sender.
    next_nonce: int
    #: Accepted transactions not seen in a block when their run ended: nonce -> hash (0x hex).
    unconfirmed: dict[int, str]


class SentNonces:
    """Per (chain, sender address): the nonces this process had accepted in earlier runs of the session.

    The same seed gives the same senders, so a rerun while the earlier run's transactions are still
    pooled must not start on their nonces, whatever the node's pending count says. The memory
    lives as long as the process (an edge's process: the test process, an xdist worker, a gateway).
    """

    def __init__(self) -> None:
        self._by_sender: dict[tuple[str, str], Remembered] = {}

    def recall(self, chain: str, address: str) -> Remembered | None:
        return self._by_sender.get((chain, nonce_address(address)))

    def record(
        self, chain: str, address: str, first_nonce: int, next_nonce: int, unconfirmed: dict[int, str]
    ) -> None:
        """A run that started this sender at ``first_nonce`` had nonces up to ``next_nonce - 1`` accepted.

        What an earlier run left unconfirmed below ``first_nonce`` stays remembered (it may still be
        pooled); anything the earlier run remembered from ``first_nonce`` on is replaced, since this
        run started there because the node no longer had it.
        """
        key = (chain, nonce_address(address))
        earlier = self._by_sender.get(key)
        kept = {n: h for n, h in (earlier.unconfirmed.items() if earlier else ()) if n < first_nonce}
        kept.update(unconfirmed)
        if len(kept) > REMEMBERED_PER_SENDER:
            kept = dict(sorted(kept.items())[-REMEMBERED_PER_SENDER:])
        self._by_sender[key] = Remembered(next_nonce, kept)

    def clear(self) -> None:
        self._by_sender.clear()


#: This process's memory, shared by every run of the session.
SESSION_NONCES = SentNonces()


def start_nonce(node_pending: int, remembered: Remembered | None, known: dict[int, bool]) -> int:
    """Where a sender starts, from the node's pending count and this session's memory.

    The node wins when it counts at least as far as the memory (it may know of transactions this
    process never sent). When it counts less, its count misses something: either transactions it
    still holds but leaves out of the count (a pool some clients do not count, see
    :func:`nonce_address`), or transactions it dropped (evicted, restarted). ``known`` says, for
    the remembered transactions from ``node_pending`` on, whether the node still has each one. The
    sender starts after the longest run of still-known transactions from ``node_pending``: reusing
    a nonce the node holds gets every transaction refused as an underpriced replacement, and
    starting above a nonce the node dropped leaves a gap that strands every later transaction, so
    only what the node confirms it holds is skipped. A remembered range longer than what was asked
    about is trusted when everything asked about was known.
    """
    if remembered is None or node_pending >= remembered.next_nonce:
        return node_pending
    nonce = node_pending
    while nonce < remembered.next_nonce:
        if nonce not in known:
            if known and all(known.values()) and nonce > max(known):
                return remembered.next_nonce  # everything asked about is held: trust the rest
            return nonce
        if not known[nonce]:
            return nonce
        nonce += 1
    return nonce


async def resolve_start_nonces(
    rpc: AsyncRpcClient,
    chain_id: int,
    addresses: Sequence[str],
    notes: list[str],
    *,
    memory: SentNonces = SESSION_NONCES,
) -> tuple[list[int], str]:
    """Each sender's first nonce for this run, and the chain's key in ``memory``.

    The node's pending count (asked with :func:`nonce_address`) against what this process sent
    earlier in the session, as :func:`start_nonce` decides; a note says where they disagreed. The
    chain is keyed by its id and genesis hash, so a fresh devnet with the same chain id starts clean.
    """
    calls: list[tuple[str, list[Any]]] = [
        ("eth_getTransactionCount", [nonce_address(address), "pending"]) for address in addresses
    ]
    answers = await rpc.batch([*calls, ("eth_getBlockByNumber", ["0x0", False])])
    counts, genesis = answers[:-1], answers[-1]
    failed = [answer for answer in counts if isinstance(answer, Exception)]
    if failed:
        raise GashammerError(f"eth_getTransactionCount failed for {len(failed)} sender(s): {failed[0]}")
    pending = [int(answer, 16) for answer in counts]
    genesis_hash = genesis.get("hash") if isinstance(genesis, dict) else None
    chain = f"{chain_id}:{genesis_hash or 'unknown genesis'}"
    probes: list[tuple[int, int, str]] = []  # (sender, nonce, hash)
    recalled = [memory.recall(chain, address) for address in addresses]
    for sender, (count, remembered) in enumerate(zip(pending, recalled, strict=True)):
        if remembered is None or count >= remembered.next_nonce:
            continue
        for nonce in range(count, min(remembered.next_nonce, count + PROBED_PER_SENDER)):
            tx_hash = remembered.unconfirmed.get(nonce)
            if tx_hash is None:
                break
            probes.append((sender, nonce, tx_hash))
    known: list[dict[int, bool]] = [{} for _ in addresses]
    if probes:
        found = await rpc.batch([("eth_getTransactionByHash", [tx_hash]) for _, _, tx_hash in probes])
        for (sender, nonce, _), answer in zip(probes, found, strict=True):
            # An error is no proof the node holds it: then the node's count wins.
            known[sender][nonce] = isinstance(answer, dict)
    starts = [
        start_nonce(count, remembered, held)
        for count, remembered, held in zip(pending, recalled, known, strict=True)
    ]
    ahead = [s for s in range(len(addresses)) if starts[s] > pending[s]]
    dropped = [s for s, r in enumerate(recalled) if r is not None and starts[s] < r.next_nonce]
    if ahead:
        s = ahead[0]
        notes.append(
            f"nonces: the node's pending count leaves out transactions it still holds for {len(ahead)} "
            f"sender(s) (e.g. {addresses[s]}: counts {pending[s]}, holds this session's up to nonce "
            f"{starts[s] - 1}); they start after what the node still holds"
        )
    if dropped:
        s = dropped[0]
        notes.append(
            f"nonces: the node no longer knows this session's earlier transactions of {len(dropped)} "
            f"sender(s) (e.g. {addresses[s]}: from nonce {starts[s]} on, sent up to "
            f"{recalled[s].next_nonce - 1}; dropped from its pool); they start at the node's count"  # type: ignore[union-attr]
        )
    return starts, chain
