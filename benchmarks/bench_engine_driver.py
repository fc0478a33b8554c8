"""Whose time is a slow block: the execution client's or the consensus driver's?

Run with ``python benchmarks/bench_engine_driver.py [--blocks 10] [--transfers 0,10,50]
[--fork cancun]``. It starts one EthereumJS devnet without its own driver, and for each K in
``--transfers`` builds ``--blocks`` blocks of K native transfers with a
:class:`~pytest_gashammer.devnet.consensus.ConsensusDriver`: before each block the K transfers,
signed beforehand, go to the node's pool in one JSON-RPC batch (not timed), then
``build_block()`` runs forkchoiceUpdated with attributes, getPayload, newPayload and the head's
forkchoiceUpdated.

One line per K from the driver's own records (:class:`~pytest_gashammer.chain.engine.BlockBuild`):
the client's build time (forkchoiceUpdated-with-attributes + getPayload: the client assembling the
block) and import time (newPayload + forkchoiceUpdated: executing and selecting it), each as mean
and p99 over the blocks, against the CPU time the driver's thread spent per block
(``time.thread_time``: attributes, JWTs, JSON, records; waiting for the client costs it none), and
the driver's share of the block's wall time. The script reports and never gates: its exit code is 0.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from eth_account import Account  # noqa: E402

from pytest_gashammer.chain.engine import BlockBuild  # noqa: E402
from pytest_gashammer.chain.rpc import call  # noqa: E402
from pytest_gashammer.devnet.consensus import ConsensusDriver  # noqa: E402
from pytest_gashammer.devnet.ethereumjs import ETHEREUMJS_CHAIN_ID, FORKS, EthereumJSDevnet  # noqa: E402

RECIPIENT = "0x7e7e7e7E7e7E7e7e7e7E7e7e7e7E7e7e7e7e7e7E"  # checksummed: eth_account asks for it


def p99(values: list[float]) -> float:
    """Nearest rank, as the project's latency figures are."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.99 * len(ordered)) - 1)]


def send_batch(url: str, raw: list[str]) -> None:
    if not raw:
        return
    body = json.dumps(
        [
            {"jsonrpc": "2.0", "id": i, "method": "eth_sendRawTransaction", "params": [tx]}
            for i, tx in enumerate(raw)
        ]
    ).encode()
    request = urllib.request.Request(
        url, data=body, headers={"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        answers = json.loads(response.read())
    errors = [answer["error"] for answer in answers if "error" in answer]
    if errors:
        raise RuntimeError(f"{len(errors)} transfers refused, the first: {errors[0]}")


def signed_transfers(key: str, first_nonce: int, count: int) -> list[str]:
    account = Account.from_key(key)
    raw = []
    for nonce in range(first_nonce, first_nonce + count):
        signed = account.sign_transaction(
            {
                "chainId": ETHEREUMJS_CHAIN_ID,
                "nonce": nonce,
                "to": RECIPIENT,
                "value": 1,
                "gas": 21000,
                "maxFeePerGas": 50 * 10**9,
                "maxPriorityFeePerGas": 10**9,
                "type": 2,
            }  # fmt: skip
        )
        raw.append("0x" + signed.raw_transaction.hex())
    return raw


def line(transfers: int, builds: list[BlockBuild]) -> str:
    ms = 1000.0
    build = [b.build_s * ms for b in builds]
    imported = [b.import_s * ms for b in builds]
    cpu = [b.driver_cpu_s * ms for b in builds]
    wall = sum(b.build_s + b.import_s for b in builds) * ms
    included = statistics.fmean(b.transactions for b in builds)
    return (
        f"K={transfers:<4} blocks={len(builds):<3} txs/block={included:6.1f}  "
        f"client build ms mean {statistics.fmean(build):8.1f} p99 {p99(build):8.1f}  "
        f"import ms mean {statistics.fmean(imported):8.1f} p99 {p99(imported):8.1f}  |  "
        f"driver CPU ms mean {statistics.fmean(cpu):6.2f} p99 {p99(cpu):6.2f}  "
        f"({100 * sum(cpu) / wall:.2f}% of the block's wall time)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--blocks", type=int, default=10, help="blocks per K (default 10)")
    parser.add_argument("--transfers", default="0,10,50", help="K values, comma-separated (default 0,10,50)")
    parser.add_argument("--fork", choices=FORKS, default="cancun", help="the genesis fork (default cancun)")
    args = parser.parse_args()
    counts = [int(value) for value in args.transfers.split(",")]
    devnet = EthereumJSDevnet(
        workdir=Path(tempfile.mkdtemp(prefix="bench-engine-")), fork=args.fork, drive=False
    )
    devnet.start()
    try:
        driver = ConsensusDriver(devnet.engine(), devnet.rpc_url)
        print(f"EthereumJS {devnet.node_version}, fork {args.fork}, Engine API V{driver.engine.version}")
        driver.build_block()  # the first block after start pays one-off costs: not measured
        nonce = int(call(devnet.rpc_url, "eth_getTransactionCount", [devnet.funder.address, "latest"]), 16)
        for transfers in counts:
            started = time.time()
            for _ in range(args.blocks):
                send_batch(devnet.rpc_url, signed_transfers(devnet.funder.key, nonce, transfers))
                nonce += transfers
                driver.build_block()
            builds = driver.builds_between(started, time.time())
            print(line(transfers, builds), flush=True)
            short = [b.number for b in builds if b.transactions != transfers]
            if short:
                print(f"  note: {len(short)} block(s) held fewer than {transfers} transfers: {short[:5]}")
    finally:
        devnet.close()


if __name__ == "__main__":
    main()
