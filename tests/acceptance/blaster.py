"""A raw submitter: transfers signed with the package's signer and sent in batches, tracked by nobody.

What a user's own load (or another tool) does to the devnet beside the hammer. Standard library and
the signer and the gas rules only.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from typing import Any

from pytest_gashammer.chain.signer import FastSigner
from pytest_gashammer.workload.gas import transaction_gas

BLASTER_KEY = bytes([0x42]) * 32


def call(url: str, body: Any) -> Any:
    request = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=120) as response:
        return json.loads(response.read())


def rpc(url: str, method: str, *params: Any) -> Any:
    return call(url, {"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)})["result"]


def blast(
    devnet: Any, count: int, key: bytes = BLASTER_KEY, batch: int = 500, data: bytes = b""
) -> threading.Thread:
    """Fund an account of its own, then send ``count`` transfers from it in a thread, ``batch`` per
    JSON-RPC batch, each carrying ``data``; returns the thread (joined: everything was handed to the
    node)."""
    url = devnet.rpc_url
    funder = FastSigner(devnet.funder.key, devnet.chain_id)
    blaster = FastSigner(key, devnet.chain_id)
    fees = {"maxFeePerGas": 10**11, "maxPriorityFeePerGas": 1, "chainId": devnet.chain_id, "type": 2}
    nonce = int(rpc(url, "eth_getTransactionCount", funder.address, "pending"), 16)
    funding = funder.sign({"to": blaster.address, "value": 10**21, "gas": 21000, "nonce": nonce, **fees})
    rpc(url, "eth_sendRawTransaction", funding.raw_hex)
    deadline = time.monotonic() + 30
    while int(rpc(url, "eth_getBalance", blaster.address, "latest"), 16) == 0:
        assert time.monotonic() < deadline, "the blaster's funding was never included"
        time.sleep(0.05)
    gas = transaction_gas(data)  # with Prague's calldata floor: below it anvil never mines them
    transfer = blaster.prepare({"to": "0x" + "11" * 20, "value": 1, "gas": gas, "data": data, **fees})
    calls = [
        {"jsonrpc": "2.0", "id": n, "method": "eth_sendRawTransaction", "params": [transfer.sign(n).raw_hex]}
        for n in range(count)
    ]

    def send() -> None:
        for start in range(0, count, batch):
            call(url, calls[start : start + batch])

    thread = threading.Thread(target=send, name="blaster", daemon=True)
    thread.start()
    return thread


def wait_included(devnet: Any, count: int, key: bytes = BLASTER_KEY, timeout: float = 60.0) -> None:
    """Wait until the chain included the first ``count`` transfers of the account of ``key``."""
    address = FastSigner(key, devnet.chain_id).address
    deadline = time.monotonic() + timeout
    while int(rpc(devnet.rpc_url, "eth_getTransactionCount", address, "latest"), 16) < count:
        assert time.monotonic() < deadline, (
            f"the blaster's {count} transfers were not included in {timeout:g} s"
        )
        time.sleep(0.1)
