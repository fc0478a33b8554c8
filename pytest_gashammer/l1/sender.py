"""Transactions from one key on an L1: nonces, fees, gas, signing and receipts.

Signed with the package's own signer (``chain/signer.py``) and sent with its blocking JSON-RPC client
(``chain/rpc.py``): the L1 side sends a handful of transactions a second at most, so there is no
need for the edge's asyncio machinery, nor for web3. One :class:`L1Account` belongs to one thread.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

from pytest_gashammer.chain.keccak import keccak256
from pytest_gashammer.chain.rlp import encode_bytes, encode_int, encode_list
from pytest_gashammer.chain.rpc import RpcError, TransportError, call
from pytest_gashammer.chain.signer import FastSigner
from pytest_gashammer.errors import DevnetError
from pytest_gashammer.l1.abi import address_bytes, revert_message

#: Priority fee offered on the L1 (1 gwei); the fee cap is twice the base fee plus this.
PRIORITY_FEE_WEI = 10**9


class L1Error(DevnetError):
    """The L1 refused or failed a transaction or call; the message names the step and the reason."""


def create_address(sender: str, nonce: int) -> str:
    """The address a ``CREATE`` from ``sender`` at ``nonce`` deploys to (lowercase 0x-hex)."""
    payload = encode_bytes(address_bytes(sender)) + encode_int(nonce)
    return "0x" + keccak256(encode_list(payload))[12:].hex()


def _refusal(error: RpcError, errors: Mapping[bytes, str]) -> str:
    """A node's refusal in one line: the decoded revert when there is revert data, else its message."""
    data = _revert_data(error)
    if data:
        return revert_message(data, errors)
    # Some nodes put the raw revert bytes into the message text: keep what prints.
    text = "".join(char for char in error.message if char.isprintable())
    return f"{text[:200]} (JSON-RPC error {error.code})"


def _revert_data(error: RpcError) -> bytes:
    """The revert data a node put in an error answer (anvil and geth: ``data`` as 0x-hex)."""
    data = error.data
    if isinstance(data, dict):  # some nodes nest it
        data = data.get("data")
    if isinstance(data, str) and data.startswith("0x"):
        try:
            return bytes.fromhex(data[2:])
        except ValueError:
            return b""
    return b""


class L1Account:
    """Sends and calls from the key ``private_key`` on the L1 at ``rpc_url``.

    ``errors`` maps custom-error selectors to signatures (``abi.error_table``), so a revert reads
    ``NotBatchPoster()`` rather than hex. Every failure raises :class:`L1Error` naming ``what``.
    """

    def __init__(
        self,
        rpc_url: str,
        private_key: str,
        *,
        errors: Mapping[bytes, str] | None = None,
        rpc_timeout: float = 10.0,
        receipt_timeout: float = 30.0,
    ) -> None:
        self.rpc_url = rpc_url
        self.errors = dict(errors or {})
        self.rpc_timeout = rpc_timeout
        self.receipt_timeout = receipt_timeout
        self.chain_id = int(self.rpc("eth_chainId", []), 16)
        self._signer = FastSigner(private_key, self.chain_id)
        self.address: str = self._signer.address
        self._nonce: int | None = None

    def __repr__(self) -> str:
        return f"L1Account({self.address} on chain {self.chain_id})"

    # -- reads -------------------------------------------------------------------------------------
    def rpc(self, method: str, params: Sequence[Any]) -> Any:
        try:
            return call(self.rpc_url, method, params, timeout=self.rpc_timeout)
        except (RpcError, TransportError) as exc:
            raise L1Error(f"L1 {method} failed: {exc}") from None

    def call(self, to: str, data: bytes, *, what: str, block: str = "latest") -> bytes:
        """``eth_call`` from this account; the return data."""
        try:
            answer = call(
                self.rpc_url,
                "eth_call",
                [{"from": self.address, "to": to, "data": "0x" + data.hex()}, block],
                timeout=self.rpc_timeout,
            )
        except RpcError as exc:
            raise L1Error(f"{what}: {_refusal(exc, self.errors)}") from None
        except TransportError as exc:
            raise L1Error(f"{what}: {exc}") from None
        return bytes.fromhex(str(answer).removeprefix("0x"))

    def block_number(self) -> int:
        return int(self.rpc("eth_blockNumber", []), 16)

    def next_nonce(self) -> int:
        """The nonce the next transaction takes (asked once, then counted here)."""
        if self._nonce is None:
            self._nonce = int(self.rpc("eth_getTransactionCount", [self.address, "pending"]), 16)
        return self._nonce

    def forget_nonce(self) -> None:
        """Ask the node for the next nonce again (after a failure left it unsure)."""
        self._nonce = None

    # -- writes ------------------------------------------------------------------------------------
    def _fees(self) -> dict[str, int]:
        latest = self.rpc("eth_getBlockByNumber", ["latest", False])
        base = latest.get("baseFeePerGas") if isinstance(latest, dict) else None
        if base is None:  # a pre-London L1: a legacy price
            return {"gasPrice": 2 * int(self.rpc("eth_gasPrice", []), 16)}
        return {
            "maxFeePerGas": 2 * int(base, 16) + PRIORITY_FEE_WEI,
            "maxPriorityFeePerGas": PRIORITY_FEE_WEI,
        }

    def estimate_gas(self, to: str | None, data: bytes, *, what: str) -> int:
        """``eth_estimateGas``; a revert raises :class:`L1Error` with the decoded reason."""
        request: dict[str, Any] = {"from": self.address, "data": "0x" + data.hex()}
        if to is not None:
            request["to"] = to
        try:
            return int(call(self.rpc_url, "eth_estimateGas", [request], timeout=self.rpc_timeout), 16)
        except RpcError as exc:
            raise L1Error(f"{what}: {_refusal(exc, self.errors)}") from None
        except TransportError as exc:
            raise L1Error(f"{what}: {exc}") from None

    def send(
        self, to: str | None, data: bytes, *, gas: int, what: str, fees: Mapping[str, int] | None = None
    ) -> str:
        """Sign and send one transaction at the next nonce; its hash. ``to=None`` deploys ``data``."""
        nonce = self.next_nonce()
        tx: dict[str, Any] = {
            "nonce": nonce,
            "gas": gas,
            "to": to,
            "value": 0,
            "data": data,
            "chainId": self.chain_id,
        }
        tx.update(fees if fees is not None else self._fees())
        signed = self._signer.sign(tx)
        try:
            answer = call(self.rpc_url, "eth_sendRawTransaction", [signed.raw_hex], timeout=self.rpc_timeout)
        except (RpcError, TransportError) as exc:
            self._nonce = None  # ask the node again: it may or may not hold this one
            raise L1Error(f"{what}: the L1 refused the transaction: {exc}") from None
        self._nonce = nonce + 1
        return str(answer)

    def send_many(self, steps: Sequence[tuple[str | None, bytes, int, str]]) -> list[str]:
        """Send ``(to, data, gas, what)`` transactions at consecutive nonces without waiting between them.

        They are signed with one fee quote, so an L1 that mines by interval takes them all in one block.
        """
        fees = self._fees()
        return [self.send(to, data, gas=gas, what=what, fees=fees) for to, data, gas, what in steps]

    def wait(self, tx_hash: str, *, what: str) -> dict[str, Any]:
        """The receipt of ``tx_hash`` once mined; a failed transaction raises :class:`L1Error` with its reason."""
        deadline = time.monotonic() + self.receipt_timeout
        pause = 0.005
        while True:
            receipt = self.rpc("eth_getTransactionReceipt", [tx_hash])
            if receipt is not None:
                break
            if time.monotonic() > deadline:
                raise L1Error(f"{what}: transaction {tx_hash} not mined within {self.receipt_timeout:g} s")
            time.sleep(pause)
            pause = min(pause * 2, 0.05)
        if int(receipt["status"], 16) != 1:
            raise L1Error(f"{what}: transaction {tx_hash} failed: {self._why_failed(tx_hash, receipt)}")
        result: dict[str, Any] = receipt
        return result

    def transact(self, to: str | None, data: bytes, *, what: str, gas: int | None = None) -> dict[str, Any]:
        """Estimate (a revert is reported before anything is sent), send and wait; the receipt."""
        if gas is None:
            gas = self.estimate_gas(to, data, what=what) * 6 // 5 + 10_000
        return self.wait(self.send(to, data, gas=gas, what=what), what=what)

    def _why_failed(self, tx_hash: str, receipt: Mapping[str, Any]) -> str:
        """Replays a failed transaction as a call on the block before it, for its revert reason."""
        tx = self.rpc("eth_getTransactionByHash", [tx_hash])
        if not isinstance(tx, dict):
            return "reverted"
        request = {"from": tx["from"], "data": tx["input"], "gas": tx["gas"]}
        if tx.get("to"):
            request["to"] = tx["to"]
        before = hex(max(int(receipt["blockNumber"], 16) - 1, 0))
        try:
            call(self.rpc_url, "eth_call", [request, before], timeout=self.rpc_timeout)
        except RpcError as exc:
            return revert_message(_revert_data(exc), self.errors)
        except TransportError:
            pass
        gas_used = int(receipt.get("gasUsed", "0x0"), 16)
        if gas_used >= int(tx["gas"], 16):
            return f"out of gas ({gas_used} of {int(tx['gas'], 16)})"
        return "reverted (the replay on the previous block succeeds: it depended on an earlier transaction)"
