"""The batch poster's ``encode`` for an L2 node: its blocks, as JSON-RPC returns them, → a Nitro batch.

Each L2 block becomes a :class:`~pytest_gashammer.l1.batch.BatchBlock`: the block's timestamp, the
L1 head when the batch is made (what a Nitro sequencer stamps its messages with; 0 without an L1 URL),
and the signed bytes of its transactions in block order. Where the blocks come with transaction
hashes only, the bytes come first from ``known_raw`` (the devnet's feed relay keeps those of the blocks
it relayed: asking a loaded anvil again for them costs it about as much as mining them did), else
from the block fetched whole by hash. From full transaction objects the bytes are rebuilt
(:func:`~pytest_gashammer.chain.tx.rebuilt_raw_transaction`, kept only when their keccak is the
transaction's hash); the few that cannot be rebuilt are asked of the node in one batched
``eth_getRawTransactionByHash`` and checked the same way. A transaction whose bytes do not hash to its
hash fails the batch: a batch must carry exactly the chain's transactions.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from pytest_gashammer.chain.keccak import keccak256
from pytest_gashammer.chain.rpc import call, call_batch
from pytest_gashammer.chain.tx import rebuilt_raw_transaction
from pytest_gashammer.l1.batch import NITRO_COMPRESSION_LEVEL, BatchBlock, encode_batch
from pytest_gashammer.l1.sender import L1Error

#: How long one encoding waits, in all, for ``known_raw`` to have the blocks it has not yet.
KNOWN_WAIT_SECONDS = 3.0


class L2BlockEncoder:
    """``encode`` for :class:`~pytest_gashammer.l1.poster.BatchPoster`: L2 blocks → batch data.

    ``rebuilt``, ``fetched`` and ``known`` count the transactions whose bytes came from the objects,
    from the node and from ``known_raw``. The bytes of the latest call's blocks are kept by block hash,
    so the poster's halving of a batch too large for the inbox does not rebuild them again.
    """

    def __init__(
        self,
        l2_rpc_url: str,
        *,
        l1_rpc_url: str | None = None,
        quality: int = NITRO_COMPRESSION_LEVEL,
        rpc_timeout: float = 10.0,
        known_raw: Callable[[str], Sequence[bytes] | None] | None = None,
    ) -> None:
        self.l2_rpc_url = l2_rpc_url
        self.known_raw = known_raw
        self.known_wait = KNOWN_WAIT_SECONDS
        self.known = 0
        self._known_deadline = 0.0
        self.l1_rpc_url = l1_rpc_url
        self.quality = quality
        self.rpc_timeout = rpc_timeout
        self.rebuilt = 0
        self.fetched = 0
        self._known: dict[str, tuple[bytes, ...]] = {}

    def __call__(self, blocks: list[dict[str, Any]]) -> bytes:
        self._known_deadline = time.monotonic() + self.known_wait
        l1_block = 0
        if self.l1_rpc_url is not None:
            l1_block = int(call(self.l1_rpc_url, "eth_blockNumber", timeout=self.rpc_timeout), 16)
        known = {
            block["hash"]: self._known[block["hash"]] for block in blocks if block["hash"] in self._known
        }
        for block in blocks:
            if block["hash"] not in known:
                known[block["hash"]] = self.raw_transactions(block)
        self._known = known
        return encode_batch(
            [BatchBlock(int(block["timestamp"], 16), l1_block, known[block["hash"]]) for block in blocks],
            quality=self.quality,
        )

    def raw_transactions(self, block: dict[str, Any]) -> tuple[bytes, ...]:
        """The signed bytes of ``block``'s transactions (full objects, or hashes), in block order, each
        checked against its hash."""
        transactions: Sequence[Any] = block.get("transactions") or ()
        if transactions and all(isinstance(tx, str) for tx in transactions):
            return self._by_hashes(block, [str(tx).lower() for tx in transactions])
        if any(not isinstance(tx, dict) for tx in transactions):
            raise L1Error(
                f"L2 block {int(block['number'], 16)} lists transactions that are neither objects nor hashes"
            )
        raws: list[bytes | None] = []
        for tx in transactions:
            try:
                raws.append(rebuilt_raw_transaction(tx))
            except (KeyError, TypeError, ValueError):
                raws.append(None)
        missing = [index for index, raw in enumerate(raws) if raw is None]
        self.rebuilt += len(raws) - len(missing)
        if missing:
            answers = call_batch(
                self.l2_rpc_url,
                [("eth_getRawTransactionByHash", [transactions[index]["hash"]]) for index in missing],
                timeout=self.rpc_timeout,
            )
            for index, answer in zip(missing, answers, strict=True):
                tx_hash = str(transactions[index]["hash"]).lower()
                if isinstance(answer, str) and answer.startswith("0x"):
                    raw = bytes.fromhex(answer[2:])
                    if "0x" + keccak256(raw).hex() == tx_hash:
                        raws[index] = raw
                        self.fetched += 1
                        continue
                raise L1Error(
                    f"L2 transaction {tx_hash} of block {int(block['number'], 16)}: the node gave no "
                    f"bytes that hash to it ({str(answer)[:80]})"
                )
        return tuple(raw for raw in raws if raw is not None)

    def _by_hashes(self, block: dict[str, Any], hashes: list[str]) -> tuple[bytes, ...]:
        known = self._wait_known(str(block["hash"]))
        if (
            known is not None
            and len(known) == len(hashes)
            and all(
                "0x" + keccak256(raw).hex() == tx_hash for raw, tx_hash in zip(known, hashes, strict=True)
            )
        ):
            self.known += len(hashes)
            return tuple(known)
        full = call(self.l2_rpc_url, "eth_getBlockByHash", [block["hash"], True], timeout=self.rpc_timeout)
        if (
            not isinstance(full, dict)
            or [str(tx.get("hash", "")).lower() for tx in full.get("transactions") or ()] != hashes
        ):
            raise L1Error(
                f"L2 block {int(block['number'], 16)} ({block['hash']}): the node did not give it back "
                "whole by its hash (reorganised?)"
            )
        return self.raw_transactions(full)

    def _wait_known(self, block_hash: str) -> Sequence[bytes] | None:
        """``known_raw``'s bytes of the block, waiting for them until this call's deadline: the relay
        follows the head a moment behind, and fetching a block again is what it spares the node."""
        if self.known_raw is None:
            return None
        while True:
            known = self.known_raw(block_hash)
            if known is not None or time.monotonic() >= self._known_deadline:
                return known
            time.sleep(0.05)
