"""What execution clients say when they refuse a transaction, and the kind the edge makes of it.

Nodes word the same refusal differently (geth's "replacement transaction underpriced" is
EthereumJS's "replacement gas too low" and Besu's "Replacement transaction underpriced"), and the
JSON-RPC codes differ too (-32602 for all of EthereumJS's pool refusals, -32000 or -32003 elsewhere),
so the message decides. Each :class:`Phrase` records where its wording comes from; the kinds are
what the edge reacts to (``edge/submitter.py``: nonce kinds resync the sender, ``already_known``
counts as accepted, the rest give the nonce back) and what summaries count.

Matching is a case-insensitive substring search in table order, so a longer, more specific phrase
comes before a shorter one it contains ("replacement transaction underpriced" before "underpriced").
``tests/unit/test_node_errors.py`` holds one example message per phrase.

Not every JSON-RPC error is a refusal. An internal error (-32603), a limit (-32005), or any code a
proxy or provider puts in front of the node whose message names no refusal means "ask again": the
node did not judge the request. :func:`retry_reason` draws that line, for the edge's retries
(``chain/retry.py``): a refusal phrase is always final; so are the codes that judge the request
itself (:data:`FINAL_CODES`); every other error is worth asking again, a bounded number of times.
"""

from __future__ import annotations

from typing import NamedTuple

__all__ = [
    "FINAL_CODES",
    "KINDS",
    "NONCE_TAKEN_KINDS",
    "PHRASES",
    "TRANSIENT_PHRASES",
    "Phrase",
    "classify_error",
    "kind_of_message",
    "retry_reason",
]


class Phrase(NamedTuple):
    """A piece of a node's refusal message and the kind it means."""

    #: Lowercase; found anywhere in the lowercased message.
    needle: str
    kind: str
    #: Where the wording comes from: client, then file (or documentation page).
    source: str
    #: A message the client really sends that contains the needle (the unit test classifies it).
    example: str


_GETH_POOL = "geth core/txpool/errors.go (also reth rpc-eth-types error/mod.rs RpcPoolError, Nethermind TxPoolErrorMessages)"
_GETH_CORE = "geth core/error.go (also reth rpc-eth-types error/mod.rs RpcInvalidTransactionError)"
_EJS_POOL = "EthereumJS client 0.10.5 dist/esm/src/service/txpool.js"
_EJS_RPC = "EthereumJS client 0.10.5 dist/esm/src/rpc/modules/eth.js sendRawTransaction"
_BESU = "Besu ethereum/api .../jsonrpc/internal/response/RpcErrorType.java"
_NETHERMIND_OLD = "Nethermind < 1.36 Nethermind.TxPool/AcceptTxResult.cs (Code, then Message)"
_NETHERMIND = "Nethermind Nethermind.TxPool/TxPoolErrorMessages.cs"
_ERIGON = "Erigon txnprovider/txpool/txpoolcfg/txpoolcfg.go DiscardReason.String (after an ImportResult name)"
_RETH = "reth crates/rpc/rpc-eth-types/src/error/mod.rs"
_ANVIL = "anvil (foundry crates/anvil/src/eth/error.rs)"

PHRASES: tuple[Phrase, ...] = (
    # -- the transaction is already in the pool: ours, so it counts as accepted
    Phrase("already known", "already_known", _GETH_POOL, "already known"),
    Phrase("already in the txpool", "already_known", _EJS_POOL,
           "0x5e7b..91aa: this transaction is already in the TxPool"),
    Phrase("known transaction", "already_known", _BESU, "Known transaction"),
    Phrase("alreadyknown", "already_known", _NETHERMIND_OLD, "AlreadyKnown"),
    Phrase("existing txn with same hash", "already_known", _ERIGON,
           "INTERNAL_ERROR: existing txn with same hash"),
    Phrase("existing tx with same hash", "already_known", _ERIGON + " (before v3)",
           "INTERNAL_ERROR: existing tx with same hash"),
    Phrase("already imported", "already_known", _ANVIL, "transaction already imported"),
    # -- the nonce is taken by another transaction in the pool: resync the sender
    Phrase("replacement transaction underpriced", "replacement_underpriced", _GETH_POOL + "; " + _BESU,
           "replacement transaction underpriced"),
    Phrase("replacement gas too low", "replacement_underpriced", _EJS_POOL,
           "replacement gas too low, got tip 0, min: 0, got fee 202, min: 374"),
    Phrase("replacementnotallowed", "replacement_underpriced", _NETHERMIND_OLD, "ReplacementNotAllowed"),
    Phrase("ownnoncealreadyused", "replacement_underpriced", _NETHERMIND_OLD, "OwnNonceAlreadyUsed"),
    Phrase("could not replace existing tx", "replacement_underpriced", _ERIGON,
           "INTERNAL_ERROR: could not replace existing tx"),
    Phrase("replacement underpriced", "replacement_underpriced", "generic wording (tx relays, L2 sequencers)",
           "replacement underpriced"),
    # -- the nonce is used on chain: resync the sender
    Phrase("tx nonce too low", "nonce_too_low", _EJS_POOL,
           "0x6a3c..e1 tries to send a tx with nonce 1, but account has nonce 3 (tx nonce too low)"),
    Phrase("nonce too low", "nonce_too_low", _GETH_CORE + "; " + _ERIGON + "; " + _BESU,
           "nonce too low: next nonce 7, tx nonce 3"),
    Phrase("oldnonce", "nonce_too_low", _NETHERMIND_OLD, "OldNonce, Current nonce: 5, nonce of rejected tx: 3"),
    # -- the sender holds as many transactions as the pool allows one account
    Phrase("max amount of txs for this account", "account_limit", _EJS_POOL,
           "Cannot add tx for 0x6a3c..e1: already have max amount of txs for this account"),
    Phrase("account limit exceeded", "account_limit", "geth core/txpool/errors.go ErrAccountLimitExceeded",
           "account limit exceeded"),
    Phrase("nonce too far in future", "account_limit", _NETHERMIND, "nonce too far in future"),
    Phrase("noncetoofarinfuture", "account_limit", _NETHERMIND_OLD, "NonceTooFarInFuture"),
    Phrase("too distant from current sender nonce", "account_limit", _BESU,
           "Transaction nonce is too distant from current sender nonce"),
    Phrase("spammer", "account_limit", _ERIGON, "INTERNAL_ERROR: spammer"),
    # -- a nonce above the next one
    Phrase("nonce too high", "nonce_too_high", _GETH_CORE + "; " + _BESU + "; " + _NETHERMIND, "nonce too high"),
    Phrase("noncegap", "nonce_too_high", _NETHERMIND_OLD, "NonceGap, Future nonce. Expected nonce: 10"),
    # -- the sender cannot pay
    Phrase("insufficient funds", "insufficient_funds", _GETH_CORE + "; " + _ERIGON,
           "insufficient funds for gas * price + value: have 0 want 21000000000000"),
    Phrase("insufficient balance", "insufficient_funds", _EJS_POOL,
           "0x6a3c..e1 does not have enough balance to cover transaction costs, need 1000, but have 0 "
           "(insufficient balance)"),
    Phrase("upfront cost exceeds account balance", "insufficient_funds", _BESU,
           "Upfront cost exceeds account balance"),
    Phrase("insufficientfunds", "insufficient_funds", _NETHERMIND_OLD,
           "InsufficientFunds, Account balance: 0, cumulative cost: 21000"),
    # -- fees below what the node takes
    Phrase("max fee per gas less than block base fee", "fee_too_low", _GETH_CORE,
           "max fee per gas less than block base fee: address 0x6a3c..e1, maxFeePerGas: 7, baseFee: 8"),
    Phrase("fee cap less than block base fee", "fee_too_low", "geth core/error.go (before 1.10.18)",
           "fee cap less than block base fee"),
    Phrase("cannot pay basefee", "fee_too_low", _EJS_POOL,
           "Tx cannot pay basefee of 1000, have 400 (not within 50% range of current basefee)"),
    Phrase("gas price below current base fee", "fee_too_low", _BESU, "Gas price below current base fee"),
    Phrase("feetoolowtocompete", "underpriced", _NETHERMIND_OLD, "FeeTooLowToCompete"),
    Phrase("feetoolow", "fee_too_low", _NETHERMIND_OLD, "FeeTooLow, MaxFeePerGas too low."),
    Phrase("fee too low", "fee_too_low", _ERIGON, "FEE_TOO_LOW: fee too low"),
    Phrase("does not pay the minimum gas price", "underpriced", _EJS_POOL,
           "Tx does not pay the minimum gas price of 100000000"),
    Phrase("gas price below configured minimum gas price", "underpriced", _BESU,
           "Gas price below configured minimum gas price"),
    Phrase("priority fee below minimum", "underpriced", _RETH,
           "transaction priority fee below minimum required priority fee 1000"),
    Phrase("underpriced", "underpriced", _GETH_POOL + "; " + _ERIGON, "transaction underpriced"),
    Phrase("fee cap exceeded", "fee_cap_exceeded", _BESU, "Transaction fee cap exceeded"),
    Phrase("exceeds the configured cap", "fee_cap_exceeded", "geth internal/ethapi/api.go checkTxFee; " + _RETH,
           "tx fee (1.20 ether) exceeds the configured cap (1.00 ether)"),
    # -- the pool is full
    Phrase("txpool is full", "txpool_full", _GETH_POOL + "; " + _RETH, "txpool is full"),
    Phrase("sub-pool is full", "txpool_full", _ERIGON, "INTERNAL_ERROR: pending sub-pool is full"),
    Phrase("pool is full", "txpool_full", _EJS_POOL, "Cannot add tx: pool is full"),
    Phrase("queue full", "txpool_full", "generic wording (tx relays, L2 sequencers)", "queue full"),
    # -- gas
    Phrase("intrinsic gas too low", "intrinsic_gas_too_low", _GETH_CORE + "; " + _NETHERMIND, "intrinsic gas too low"),
    Phrase("intrinsic gas exceeds gas limit", "intrinsic_gas_too_low", _BESU, "Intrinsic gas exceeds gas limit"),
    Phrase("intrinsicgas", "intrinsic_gas_too_low", _ERIGON, "INVALID: IntrinsicGas"),
    Phrase("exceeds block gas limit", "gas_limit_exceeded", _GETH_POOL + "; " + _EJS_POOL + "; " + _BESU,
           "Tx gaslimit of 40000000 exceeds block gas limit of 30000000 (exceeds last block gas limit)"),
    Phrase("exceeds max transaction gas limit", "gas_limit_exceeded", _RETH, "exceeds max transaction gas limit"),
    Phrase("gas limit cap exceeded", "gas_limit_exceeded", _BESU, "Transaction gas limit cap exceeded"),
    Phrase("gas limit reached", "gas_limit_exceeded", _NETHERMIND, "gas limit reached"),
    Phrase("gaslimitexceeded", "gas_limit_exceeded", _NETHERMIND_OLD, "GasLimitExceeded"),
    Phrase("gas limit is too high", "gas_limit_exceeded", _ERIGON, "INVALID: gas limit is too high"),
    # -- size
    Phrase("tx is too large", "tx_too_large", _EJS_POOL,
           "Tx is too large (140000 bytes) and exceeds the max data size of 131072 bytes"),
    Phrase("transaction too large", "tx_too_large", _NETHERMIND, "transaction too large"),
    Phrase("maxtxsizeexceeded", "tx_too_large", _NETHERMIND_OLD, "MaxTxSizeExceeded"),
    Phrase("oversized data", "tx_too_large", _GETH_POOL + "; " + _ERIGON, "oversized data"),
    Phrase("rlptoolong", "tx_too_large", _ERIGON, "INVALID: RLPTooLong"),
    # -- the wrong chain
    Phrase("invalid chain id", "wrong_chain_id", "Erigon turbo/jsonrpc/send_transaction.go; " + _RETH,
           "invalid chain id, expected: 412346 got: 1"),
    Phrase("incorrect chain id", "wrong_chain_id", "generic wording", "incorrect chain id"),
    Phrase("wrong chainid", "wrong_chain_id", _BESU, "Wrong chainId"),
    Phrase("invalidtxchainid", "wrong_chain_id", "Nethermind Nethermind.Core/Messages/TxErrorMessages.cs",
           "InvalidTxChainId: Expected 412346, got 1."),
    # -- the node cannot take transactions now
    Phrase("not aware of the current chain height", "node_not_ready", _EJS_RPC,
           "client is not aware of the current chain height yet (give sync some more time)"),
    Phrase("no peer connection available", "node_not_ready", _EJS_RPC, "no peer connection available"),
    Phrase("transaction pool not enabled", "node_not_ready", _BESU,
           "Transaction pool not enabled. (Either txpool explicitly disabled, or node not yet in sync)."),
    Phrase("initial sync is still in progress", "node_not_ready", _BESU, "Initial sync is still in progress"),
    Phrase("node is syncing", "node_not_ready", _NETHERMIND, "node is syncing"),
    # -- the transaction itself is malformed
    Phrase("could not be parsed", "invalid_transaction", _EJS_RPC,
           "serialized tx data could not be parsed (invalid RLP)"),
    Phrase("tx needs to be signed", "invalid_transaction", _EJS_RPC, "tx needs to be signed"),
    Phrase("invalid sender", "invalid_transaction", _GETH_POOL + "; " + _ERIGON, "invalid sender"),
    Phrase("invalid signature", "invalid_transaction", _BESU, "Invalid signature"),
    Phrase("execution reverted", "reverted", "geth internal/ethapi (eth_call, eth_estimateGas)", "execution reverted"),
)  # fmt: skip

#: Every kind a refusal can be classified as by its message (besides the code-based fallbacks).
KINDS: frozenset[str] = frozenset(phrase.kind for phrase in PHRASES)
#: Refusals that say the nonce is taken: by another transaction, or by the same one sent earlier (a
#: resend after an answer was lost is refused so once the first got in), which only a lookup by
#: hash tells apart.
NONCE_TAKEN_KINDS: frozenset[str] = frozenset({"nonce_too_low", "replacement_underpriced"})


def kind_of_message(message: str) -> str | None:
    """The kind the first matching phrase gives ``message``, or None when no phrase matches."""
    lowered = message.lower()
    for phrase in PHRASES:
        if phrase.needle in lowered:
            return phrase.kind
    return None


def classify_error(code: int, message: str) -> str:
    """A stable kind for a JSON-RPC error: by its message when a phrase matches, else by its code."""
    kind = kind_of_message(message)
    if kind is not None:
        return kind
    if code == -32601:
        return "method_not_found"
    if code == -32602:
        return "invalid_params"
    if code == -32005:
        return "limit_exceeded"
    return f"rpc_{code}"


#: Codes that are the node's judgement of the request itself, never "try again": the JSON-RPC spec's
#: parse error, invalid request, method not found and invalid params; EIP-1474's invalid input
#: (-32000, under which geth and most clients put every transaction refusal, so an unknown wording
#: under it is taken as a refusal too), transaction rejected (-32003), method not supported
#: (-32004) and version not supported (-32006); and 3, a revert with data.
FINAL_CODES: frozenset[int] = frozenset({-32700, -32600, -32601, -32602, -32000, -32003, -32004, -32006, 3})

#: Wordings that mean "ask again later" whatever the code (providers and proxies put them under
#: -32000 as often as under -32005), looked for only when no refusal phrase matched.
TRANSIENT_PHRASES: tuple[Phrase, ...] = (
    Phrase("rate limit", "rate_limited", "generic wording (RPC providers, proxies)", "rate limit exceeded"),
    Phrase("too many requests", "rate_limited", "generic wording (RPC providers, proxies)",
           "Too Many Requests, try again in 1 s"),
    Phrase("try again", "try_again", "generic wording (RPC providers, proxies)", "server busy, try again later"),
    Phrase("temporarily unavailable", "unavailable", "generic wording (RPC providers, proxies)",
           "service temporarily unavailable"),
    Phrase("service unavailable", "unavailable", "generic wording (RPC providers, proxies)",
           "503 Service Unavailable"),
    Phrase("request timed out", "timeout", "generic wording (a server that timed the request out)", "request timed out"),
)  # fmt: skip


def retry_reason(code: int, message: str) -> str | None:
    """Why an error answer is worth asking again (a short stable word), or None when it is final.

    Final: any refusal phrase (``nonce too low``, ``already known``, ``txpool is full``, ...), then
    the :data:`FINAL_CODES` unless a transient wording says otherwise. Everything else (-32603
    internal error, -32005 limit exceeded, an unknown code a proxy injects) is asked again.
    """
    if kind_of_message(message) is not None:
        return None
    lowered = message.lower()
    for phrase in TRANSIENT_PHRASES:
        if phrase.needle in lowered:
            return phrase.kind
    if code in FINAL_CODES:
        return None
    return classify_error(code, message)
