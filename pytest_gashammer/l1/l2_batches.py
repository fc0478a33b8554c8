"""The batch poster's ``encode`` for an L2 node: its blocks, as JSON-RPC returns them, → a Nitro batch.

Each L2 block becomes a :class:`~pytest_gashammer.l1.batch.BatchBlock`: the block's timestamp, the
L1 head when the batch is made (what a Nitro sequencer stamps its messages with; 0 without an L1 URL),
and the signed bytes of its transactions in block order. The bytes are rebuilt from the full
transaction objects the poster already has (:func:`~pytest_gashammer.chain.tx.rebuilt_raw_transaction`,
kept only when their keccak is the transaction's hash); the few it cannot rebuild are asked of the
node in one batched ``eth_getRawTransactionByHash`` and checked the same way. A transaction whose
bytes do not hash to its hash fails the batch: a batch must carry exactly the chain's transactions.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pytest_gashammer.chain.keccak import keccak256
from pytest_gashammer.chain.rpc import call, call_batch
from pytest_gashammer.chain.tx import rebuilt_raw_transaction
from pytest_gashammer.l1.batch import NITRO_COMPRESSION_LEVEL, BatchBlock, encode_batch
from pytest_gashammer.l1.sender import L1Error


class L2BlockEncoder:
    """``encode`` for :class:`~pytest_gashammer.l1.poster.BatchPoster`: L2 blocks → batch data.

    ``rebuilt`` and ``fetched`` count the transactions whose bytes came from the objects and from
    the node. The bytes of the latest call's blocks are kept by block hash, so the poster's halving
    of a batch too large for the inbox does not rebuild them again.
    """

    def __init__(
        self,
        l2_rpc_url: str,
        *,
        l1_rpc_url: str | None = None,
        quality: int = NITRO_COMPRESSION_LEVEL,
        rpc_timeout: float = 10.0,
    ) -> None:
        self.l2_rpc_url = l2_rpc_url
        self.l1_rpc_url = l1_rpc_url
        self.quality = quality
        self.rpc_timeout = rpc_timeout
        self.rebuilt = 0
        self.fetched = 0
        self._known: dict[str, tuple[bytes, ...]] = {}

    def __call__(self, blocks: list[dict[str, Any]]) -> bytes:
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
        """The signed bytes of ``block``'s transactions (full objects), in block order, each checked
        against its hash."""
        transactions: Sequence[Any] = block.get("transactions") or ()
        if any(not isinstance(tx, dict) for tx in transactions):
            raise L1Error(
                f"L2 block {int(block['number'], 16)} came with transaction hashes only; "
                "the encoder needs full transaction objects"
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
