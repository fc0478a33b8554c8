"""The chain actions a template's setup may take, done by the edge before the clock starts."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from typing import Any

from pytest_gashammer.chain.rpc import AsyncRpcClient, RpcError
from pytest_gashammer.chain.signer import FastSigner
from pytest_gashammer.edge.accounts import Sender, nonce_address
from pytest_gashammer.errors import GashammerError

SETUP_BATCH = 200


class EdgeSetupContext:
    """Implements :class:`pytest_gashammer.workload.base.SetupContext` over an edge's JSON-RPC client."""

    def __init__(
        self,
        rpc: AsyncRpcClient,
        *,
        chain_id: int,
        funder_key: str,
        senders: Sequence[Sender],
        max_fee_per_gas: int,
        max_priority_fee_per_gas: int,
        timeout: float = 60.0,
    ) -> None:
        self.rpc = rpc
        self.chain_id = chain_id
        self.senders = list(senders)
        self.sender_addresses = [sender.address for sender in senders]
        self._funder = FastSigner(funder_key, chain_id)
        self._sender_signers: dict[int, FastSigner] = {}
        self._max_fee = max_fee_per_gas
        self._tip = max_priority_fee_per_gas
        self._timeout = timeout
        self._next_nonce: dict[str, int] = {}

    async def _nonce(self, signer: FastSigner) -> int:
        if signer.address not in self._next_nonce:
            answer = await self.rpc.call("eth_getTransactionCount", nonce_address(signer.address), "pending")
            self._next_nonce[signer.address] = int(answer, 16)
        nonce = self._next_nonce[signer.address]
        self._next_nonce[signer.address] = nonce + 1
        return nonce

    async def _gas_for(self, signer: FastSigner, call: Mapping[str, Any]) -> int:
        if call.get("gas"):
            return int(call["gas"])
        request: dict[str, Any] = {"from": signer.address, "value": hex(int(call.get("value", 0)))}
        if call.get("to"):
            request["to"] = call["to"]
        if call.get("data"):
            request["data"] = "0x" + bytes(call["data"]).hex()
        try:
            estimate = int(await self.rpc.call("eth_estimateGas", request), 16)
        except RpcError as exc:
            raise GashammerError(
                f"template setup: eth_estimateGas failed ({exc.message}); check the template's setup calls"
            ) from None
        return estimate * 5 // 4 + 10_000

    async def _send(
        self, signed_calls: Sequence[tuple[FastSigner, Mapping[str, Any]]]
    ) -> list[dict[str, Any]]:
        raws: list[str] = []
        hashes: list[str] = []
        for signer, call in signed_calls:
            to = call.get("to")
            tx = {
                "type": 2,
                "nonce": await self._nonce(signer),
                "gas": await self._gas_for(signer, call),
                "maxFeePerGas": self._max_fee,
                "maxPriorityFeePerGas": self._tip,
                "value": int(call.get("value", 0)),
                "data": bytes(call.get("data") or b""),
                "to": (bytes.fromhex(to[2:]) if isinstance(to, str) else bytes(to)) if to else None,
            }
            signed = signer.sign(tx)
            raws.append(signed.raw_hex)
            hashes.append(signed.hash_hex)
        for start in range(0, len(raws), SETUP_BATCH):
            answers = await self.rpc.batch(
                [("eth_sendRawTransaction", [raw]) for raw in raws[start : start + SETUP_BATCH]]
            )
            for answer in answers:
                if isinstance(answer, Exception) and getattr(answer, "kind", "") != "already_known":
                    raise GashammerError(f"template setup: a setup transaction was refused ({answer})")
        return await self._receipts(hashes)

    async def _receipts(self, hashes: Sequence[str]) -> list[dict[str, Any]]:
        receipts: dict[str, dict[str, Any]] = {}
        deadline = time.monotonic() + self._timeout
        while len(receipts) < len(hashes):
            missing = [tx_hash for tx_hash in hashes if tx_hash not in receipts]
            answers = await self.rpc.batch(
                [("eth_getTransactionReceipt", [tx_hash]) for tx_hash in missing[:SETUP_BATCH]]
            )
            for tx_hash, answer in zip(missing, answers, strict=False):
                if isinstance(answer, dict):
                    receipts[tx_hash] = answer
            if len(receipts) < len(hashes):
                if time.monotonic() > deadline:
                    raise GashammerError(
                        f"template setup: {len(hashes) - len(receipts)} transaction(s) not mined within {self._timeout:.0f} s"
                    )
                await asyncio.sleep(0.1)
        ordered = [receipts[tx_hash] for tx_hash in hashes]
        for tx_hash, receipt in zip(hashes, ordered, strict=True):
            if int(receipt.get("status", "0x0"), 16) != 1:
                raise GashammerError(
                    f"template setup: transaction {tx_hash} reverted; the template's setup is broken"
                )
        return ordered

    async def deploy(self, init_code: bytes, *, gas: int | None = None) -> str:
        (receipt,) = await self.send_from_funder([{"to": None, "data": init_code, "gas": gas}])
        address = receipt.get("contractAddress")
        if not address:
            raise GashammerError("template setup: deployment receipt has no contractAddress")
        return str(address)

    async def send_from_funder(self, calls: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        return await self._send([(self._funder, call) for call in calls])

    async def send_from_senders(self, calls: Sequence[tuple[int, Mapping[str, Any]]]) -> list[dict[str, Any]]:
        signed_calls = []
        for index, call in calls:
            signer = self._sender_signers.get(index)
            if signer is None:
                signer = self._sender_signers[index] = FastSigner(self.senders[index].key, self.chain_id)
            signed_calls.append((signer, call))
        return await self._send(signed_calls)

    async def call(self, to: str, data: bytes) -> bytes:
        answer = await self.rpc.call("eth_call", {"to": to, "data": "0x" + data.hex()}, "latest")
        return bytes.fromhex(str(answer)[2:])
