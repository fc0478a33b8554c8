"""The L1 of the L1 tests: anvils on free loopback ports, the real Nitro contracts deployed on one, and
the helpers that read the L1 back the way the L1 monitor does."""

from __future__ import annotations

import contextlib
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pytest_gashammer.chain.rpc import call
from pytest_gashammer.chain.signer import FastSigner
from pytest_gashammer.chain.tx import rebuilt_raw_transaction
from pytest_gashammer.devnet.anvil import find_anvil
from pytest_gashammer.devnet.base import free_port
from pytest_gashammer.devnet.nitro_contracts import managed_package
from pytest_gashammer.devnet.process import ManagedProcess
from pytest_gashammer.l1.abi import call_data, decode, selector, signature_types
from pytest_gashammer.l1.batch import BatchBlock, encode_batch
from pytest_gashammer.l1.contracts import ADD_BATCH, L1Deployment, deploy_l1

L1_CHAIN_ID = 1337
L2_CHAIN_ID = 412346
DEPLOYER_KEY = "0x" + "a1" * 32
POSTER_KEY = "0x" + "b2" * 32
STRANGER_KEY = "0x" + "c3" * 32
BATCH_DELIVERED_TOPIC0 = "0x7394f4a19a13c7b92b5bb71033245305946ef78452f7b4986ac1390b5df4ebd7"
ZERO_HASH = "0x" + "00" * 32
#: Header flag 0x00 (brotli) and the brotli stream of no bytes: a batch the inbox accepts, carrying nothing.
EMPTY_BROTLI_BATCH = b"\x00\x3b"

#: For the modules that deploy the L1.
needs_nitro_contracts = pytest.mark.skipif(
    shutil.which("npm") is None and not managed_package().is_dir(),
    reason="npm is needed once to install @arbitrum/nitro-contracts",
)


def address_of(key: str) -> str:
    return FastSigner(key, L1_CHAIN_ID).address.lower()


@contextlib.contextmanager
def anvil(tmp_path: Path, chain_id: int, *extra: str) -> Iterator[str]:
    """An anvil on a free loopback port, started as the package starts its nodes; its RPC URL."""
    port = free_port()
    argv = [str(find_anvil()), "--host", "127.0.0.1", "--port", str(port), "--chain-id", str(chain_id)]
    argv += ["--accounts", "0", "--quiet", *extra]
    process = ManagedProcess(argv, log_path=tmp_path / f"anvil-{chain_id}-{port}.log")
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                call(url, "eth_chainId", timeout=1)
                break
            except Exception:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"anvil did not start: {process.log_tail()}") from None
                time.sleep(0.02)
        yield url
    finally:
        process.stop()


def fund(url: str, *keys: str) -> None:
    for key in keys:
        call(url, "anvil_setBalance", [address_of(key), hex(10**21)])


def read(url: str, to: str, signature: str, returns: str, *arguments: Any) -> Any:
    answer = call(
        url, "eth_call", [{"to": to, "data": "0x" + call_data(signature, *arguments).hex()}, "latest"]
    )
    return decode([returns], bytes.fromhex(answer[2:]))[0]


def logs(url: str, address: str, topic0: str, from_block: int = 0) -> list[dict[str, Any]]:
    return call(
        url,
        "eth_getLogs",
        [{"address": address, "fromBlock": hex(from_block), "toBlock": "latest", "topics": [topic0]}],
    )


def deploy(l1: str, nitro_package: Path, **options: Any) -> L1Deployment:
    return deploy_l1(
        l1,
        deployer_key=DEPLOYER_KEY,
        batch_poster=address_of(POSTER_KEY),
        package_dir=nitro_package,
        **options,
    )


def raw_transactions(block: dict[str, Any]) -> tuple[bytes, ...]:
    """The signed bytes of an L2 block's transactions (full objects), in block order."""
    raws = tuple(rebuilt_raw_transaction(tx) for tx in block["transactions"])
    assert all(raw is not None for raw in raws), f"a transaction of block {block['number']} was not rebuilt"
    return tuple(raw for raw in raws if raw is not None)


def encode_l2_blocks(blocks: list[dict[str, Any]]) -> bytes:
    """The batch poster's ``encode`` for an anvil L2: each block's timestamp and transactions."""
    return encode_batch(
        [BatchBlock(int(block["timestamp"], 16), 0, raw_transactions(block)) for block in blocks]
    )


def posted_batch(l1: str, tx_hash: str) -> tuple[int, bytes, int, int]:
    """What a posting transaction's calldata says: sequence number, data, prevMessageCount and
    newMessageCount of its 6-argument ``addSequencerL2BatchFromOrigin``."""
    calldata = bytes.fromhex(call(l1, "eth_getTransactionByHash", [tx_hash])["input"][2:])
    assert calldata[:4] == selector(ADD_BATCH), "not an addSequencerL2BatchFromOrigin call"
    sequence, data, delayed, refunder, prev_count, new_count = decode(
        signature_types(ADD_BATCH), calldata[4:]
    )
    assert (delayed, refunder) == (0, "0x" + "00" * 20), "no delayed messages read, no gas refunder"
    return sequence, data, prev_count, new_count
