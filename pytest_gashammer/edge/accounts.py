"""Sender accounts derived from the run seed, and the nonce book that keeps their nonces honest."""

from __future__ import annotations

import bisect
from dataclasses import dataclass

from pytest_gashammer.chain.keccak import keccak256

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

    A nonce handed out but not consumed by the node (the transaction was rejected, or its fate
    is unknown after a transport failure) is given back with :meth:`release` and is the next one
    handed out for that sender, so a later transaction fills the hole instead of leaving a gap
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
