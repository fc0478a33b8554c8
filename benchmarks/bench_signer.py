"""Throughput of the fast signer against eth-account, for an EIP-1559 native transfer.

Run with ``python benchmarks/bench_signer.py [--seconds N]``. Each variant signs back-to-back for
about ``N`` seconds (default 2) on one core and reports tx/s, µs/tx and the speedup over
``eth_account.Account.sign_transaction`` measured in the same run, so the ratios are comparable even
on a noisy machine. Before timing, each fast variant's output is checked byte-for-byte against
eth-account, so a regression cannot show up as a speedup.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from eth_account import Account  # noqa: E402

from pytest_gashammer.chain.keccak import KECCAK_BACKEND  # noqa: E402
from pytest_gashammer.chain.signer import FastSigner, SignedTx  # noqa: E402

CHAIN_ID = 412346
RECIPIENT_POOL = 1024


def measure(sign_one: Callable[[int], object], seconds: float) -> tuple[int, float]:
    """Call ``sign_one(nonce)`` with increasing nonces for ~``seconds``; return (count, elapsed)."""
    for nonce in range(50):  # warm caches and the keccak backend
        sign_one(nonce)
    count = 0
    batch = 200
    start = time.perf_counter()
    deadline = start + seconds
    now = start
    while now < deadline:
        for nonce in range(count, count + batch):
            sign_one(nonce)
        count += batch
        now = time.perf_counter()
    return count, now - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="measuring time per variant")
    args = parser.parse_args()

    key = os.urandom(32)
    signer = FastSigner(key, CHAIN_ID)
    recipients = [Account.create().address for _ in range(RECIPIENT_POOL)]
    recipients_raw = [bytes.fromhex(address[2:]) for address in recipients]
    template = {
        "type": 2,
        "chainId": CHAIN_ID,
        "gas": 21_000,
        "maxFeePerGas": 2_000_000_000,
        "maxPriorityFeePerGas": 1_000_000,
        "to": recipients[0],
        "value": 1,
        "data": b"",
    }
    prepared = signer.prepare(template)
    mask = RECIPIENT_POOL - 1

    def eth_account_sign(nonce: int) -> object:
        return Account.sign_transaction({**template, "nonce": nonce}, key)

    def fast_sign(nonce: int) -> object:
        return signer.sign({**template, "nonce": nonce})

    def prepared_sign(nonce: int) -> object:
        return prepared.sign(nonce)

    def prepared_fresh_recipient(nonce: int) -> object:
        return prepared.sign_fields(nonce, to=recipients[nonce & mask], value=nonce)

    def prepared_fresh_recipient_raw(nonce: int) -> object:
        return prepared.sign_fields(nonce, to=recipients_raw[nonce & mask], value=nonce)

    for nonce in (0, 1, 127, 128, 1_000_003):
        expected = Account.sign_transaction({**template, "nonce": nonce}, key)
        fresh = Account.sign_transaction(
            {**template, "nonce": nonce, "to": recipients[nonce & mask], "value": nonce}, key
        )
        checks: list[tuple[str, SignedTx, Any]] = [
            ("FastSigner.sign", signer.sign({**template, "nonce": nonce}), expected),
            ("PreparedTx.sign", prepared.sign(nonce), expected),
            (
                "sign_fields(str)",
                prepared.sign_fields(nonce, to=recipients[nonce & mask], value=nonce),
                fresh,
            ),
            (
                "sign_fields(bytes)",
                prepared.sign_fields(nonce, to=recipients_raw[nonce & mask], value=nonce),
                fresh,
            ),
        ]
        for label, got, want in checks:
            if got.raw != bytes(want.raw_transaction) or got.hash != bytes(want.hash):
                raise SystemExit(f"{label}: output differs from eth-account at nonce {nonce}")

    variants: list[tuple[str, Callable[[int], object]]] = [
        ("eth-account sign_transaction", eth_account_sign),
        ("FastSigner.sign(dict)", fast_sign),
        ("PreparedTx.sign(nonce)", prepared_sign),
        ("PreparedTx.sign_fields(to=str, value)", prepared_fresh_recipient),
        ("PreparedTx.sign_fields(to=bytes, value)", prepared_fresh_recipient_raw),
    ]
    print(f"EIP-1559 transfer, chain {CHAIN_ID}, keccak backend: {KECCAK_BACKEND}, ~{args.seconds:g} s each")
    print(f"{'variant':42} {'tx/s':>10} {'µs/tx':>9} {'vs eth-account':>15}")
    baseline: float | None = None
    for label, sign_one in variants:
        count, elapsed = measure(sign_one, args.seconds)
        rate = count / elapsed
        baseline = baseline or rate
        print(f"{label:42} {rate:10,.0f} {elapsed / count * 1e6:9.2f} {rate / baseline:14.1f}x")


if __name__ == "__main__":
    main()
