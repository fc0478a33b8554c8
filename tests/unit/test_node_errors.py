"""The refusal phrases of each execution client, one test per phrase, and the kinds the edge reacts to."""

from __future__ import annotations

import pytest

from pytest_gashammer.chain.node_errors import KINDS, PHRASES, Phrase, classify_error, kind_of_message
from pytest_gashammer.edge.submitter import NONCE_RESYNC_KINDS


@pytest.mark.parametrize("phrase", PHRASES, ids=[phrase.needle for phrase in PHRASES])
def test_each_phrase_classifies_its_clients_message(phrase: Phrase) -> None:
    assert phrase.needle == phrase.needle.lower()
    assert phrase.source, "every phrase says where its wording comes from"
    assert phrase.needle in phrase.example.lower()
    # The phrase itself is the first to match its example: no earlier, shorter phrase shadows it.
    first = next(candidate for candidate in PHRASES if candidate.needle in phrase.example.lower())
    assert first == phrase
    assert classify_error(-32000, phrase.example) == phrase.kind
    assert classify_error(-32602, phrase.example) == phrase.kind  # EthereumJS answers every refusal -32602


@pytest.mark.parametrize(
    ("message", "kind"),
    [
        # The issue's EthereumJS answers, verbatim.
        ("replacement gas too low, got tip 0, min: 0, got fee 202, min: 374", "replacement_underpriced"),
        ("0x5e7bd2f1: this transaction is already in the TxPool", "already_known"),
        ("0xab tries to send a tx with nonce 0, but account has nonce 2 (tx nonce too low)", "nonce_too_low"),
        ("0xab does not have enough balance to cover transaction costs, need 5, but have 0 (insufficient balance)",
         "insufficient_funds"),
        ("Cannot add tx for 0xAb: already have max amount of txs for this account", "account_limit"),
        ("Tx is too large (200000 bytes) and exceeds the max data size of 131072 bytes", "tx_too_large"),
        ("Cannot add tx: pool is full", "txpool_full"),
        # Erigon prefixes the pool's reason with the import result's name.
        ("ALREADY_EXISTS: already known", "already_known"),
        ("FEE_TOO_LOW: replacement transaction underpriced", "replacement_underpriced"),
        ("INVALID: nonce too low", "nonce_too_low"),
        # Besu and Nethermind (old codes and new phrases).
        ("Nonce too low", "nonce_too_low"),
        ("Replacement transaction underpriced", "replacement_underpriced"),
        ("OldNonce, Current nonce: 5, nonce of rejected tx: 3", "nonce_too_low"),
        ("ReplacementNotAllowed", "replacement_underpriced"),
    ],
)  # fmt: skip
def test_the_wordings_of_the_issue_and_of_other_clients(message: str, kind: str) -> None:
    assert kind_of_message(message) == kind


def test_nonce_refusals_of_every_client_resync_the_sender() -> None:
    """A taken nonce must move the sender on, whatever the client calls it; a full pool must not."""
    for phrase in PHRASES:
        if phrase.kind in {"nonce_too_low", "replacement_underpriced"}:
            assert phrase.kind in NONCE_RESYNC_KINDS
    assert "account_limit" not in NONCE_RESYNC_KINDS and "txpool_full" not in NONCE_RESYNC_KINDS


def test_unknown_wording_falls_back_to_the_code() -> None:
    assert kind_of_message("the node is grumpy") is None
    assert classify_error(-32602, "the node is grumpy") == "invalid_params"
    assert classify_error(-32003, "the node is grumpy") == "rpc_-32003"
    assert "invalid_params" not in KINDS
