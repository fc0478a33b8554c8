"""Bulk funding of sender accounts from the funder, at setup, before the clock starts."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

from pytest_gashammer.chain.rpc import AsyncRpcClient, RpcError, TransportError
from pytest_gashammer.edge.accounts import Sender, nonce_address
from pytest_gashammer.errors import DevnetError, FundingError

FUNDING_BATCH = 200


async def balances(rpc: AsyncRpcClient, addresses: Sequence[str]) -> list[int]:
    answers = await rpc.batch([("eth_getBalance", [address, "latest"]) for address in addresses])
    values = []
    for address, answer in zip(addresses, answers, strict=True):
        if isinstance(answer, Exception):
            raise DevnetError(f"eth_getBalance({address}) failed: {answer}")
        values.append(int(answer, 16))
    return values


async def fund_senders(
    rpc: AsyncRpcClient,
    *,
    chain_id: int,
    funder_key: str,
    senders: Sequence[Sender],
    amount_wei: int,
    max_fee_per_gas: int,
    max_priority_fee_per_gas: int,
    timeout: float = 60.0,
) -> int:
    """Top every sender up to ``amount_wei``. Returns how many transfers it made.

    Senders that already hold enough (a second run with the same seed) are left alone. The
    funder's balance is checked first so that an empty funder is one clear error, not a run of
    rejected transactions.
    """
    from eth_account import Account

    funder = Account.from_key(funder_key)
    current = await balances(rpc, [sender.address for sender in senders])
    needy = [
        (sender, amount_wei - have)
        for sender, have in zip(senders, current, strict=True)
        if have < amount_wei
    ]
    if not needy:
        return 0
    gas_cost = 21_000 * max_fee_per_gas
    required = sum(top_up + gas_cost for _, top_up in needy)
    (funder_balance,) = await balances(rpc, [funder.address])
    if funder_balance < required:
        raise FundingError(
            f"funder {funder.address} holds {funder_balance / 1e18:.6f} ETH but the run needs {required / 1e18:.6f} ETH "
            "to fund its senders; fund that account or lower gas_per_sec/duration"
        )
    nonce = int(await rpc.call("eth_getTransactionCount", nonce_address(funder.address), "pending"), 16)
    last_nonce = nonce + len(needy) - 1
    for start in range(0, len(needy), FUNDING_BATCH):
        chunk = needy[start : start + FUNDING_BATCH]
        raws = []
        for offset, (sender, top_up) in enumerate(chunk):
            signed = funder.sign_transaction(
                {
                    "type": 2,
                    "chainId": chain_id,
                    "nonce": nonce + start + offset,
                    "to": sender.address,
                    "value": top_up,
                    "gas": 21_000,
                    "maxFeePerGas": max_fee_per_gas,
                    "maxPriorityFeePerGas": max_priority_fee_per_gas,
                }
            )
            raws.append(("eth_sendRawTransaction", ["0x" + bytes(signed.raw_transaction).hex()]))
        for answer in await rpc.batch(raws):
            if isinstance(answer, RpcError) and answer.kind != "already_known":
                raise FundingError(
                    f"funding transfer rejected by the node: {answer.message}; check the funder and fees"
                )
            if isinstance(answer, TransportError):
                raise DevnetError(f"funding transfer failed: {answer}")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        mined = int(await rpc.call("eth_getTransactionCount", funder.address, "latest"), 16)
        if mined > last_nonce:
            return len(needy)
        await asyncio.sleep(0.1)
    raise DevnetError(
        f"funding transfers were not mined within {timeout:.0f} s; is the node producing blocks?"
    )
