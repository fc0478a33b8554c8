"""Typed JSON-RPC errors: the kinds the edge reacts to, and transport failures."""

from __future__ import annotations

import socket
import time

import pytest

from pytest_gashammer._version import build_sha
from pytest_gashammer.chain.rpc import RpcError, TransportError, _result_of, call, classify_error


@pytest.mark.parametrize(
    ("code", "message", "kind"),
    [
        # geth / nitro
        (-32000, "nonce too low", "nonce_too_low"),
        (-32000, "nonce too low: address 0xabc, tx: 3 state: 7", "nonce_too_low"),
        (-32000, "nonce too high", "nonce_too_high"),
        (-32000, "already known", "already_known"),
        (-32000, "replacement transaction underpriced", "replacement_underpriced"),
        (-32000, "insufficient funds for gas * price + value", "insufficient_funds"),
        (
            -32000,
            "insufficient funds for gas * price + value: address 0xabc have 0 want 1",
            "insufficient_funds",
        ),
        (-32000, "txpool is full", "txpool_full"),
        (-32000, "intrinsic gas too low", "intrinsic_gas_too_low"),
        (-32000, "exceeds block gas limit", "gas_limit_exceeded"),
        (-32000, "transaction underpriced", "underpriced"),
        (
            -32000,
            "max fee per gas less than block base fee: address 0xabc, maxFeePerGas: 1, baseFee: 7",
            "fee_too_low",
        ),
        (-32000, "invalid chain id for signer", "wrong_chain_id"),
        (3, "execution reverted", "reverted"),
        # anvil and other wordings, any case
        (-32003, "Nonce too low", "nonce_too_low"),
        (-32003, "Transaction already imported", "already_known"),
        (-32000, "known transaction: 0xabc", "already_known"),
        (-32003, "Insufficient funds for gas * price + value", "insufficient_funds"),
        (-32603, "Replacement transaction underpriced", "replacement_underpriced"),
    ],
)
def test_classify_error_by_message(code: int, message: str, kind: str) -> None:
    assert classify_error(code, message) == kind


@pytest.mark.parametrize(
    ("code", "kind"),
    [(-32601, "method_not_found"), (-32602, "invalid_params"), (-32005, "limit_exceeded")],
)
def test_classify_error_by_code_when_the_message_says_nothing_known(code: int, kind: str) -> None:
    assert classify_error(code, "something odd") == kind


@pytest.mark.parametrize("code", [-32000, -32099, 42, 0])
def test_unknown_errors_are_keyed_by_code(code: int) -> None:
    assert classify_error(code, "the node is sad") == f"rpc_{code}"


def test_message_wins_over_code() -> None:
    assert classify_error(-32601, "nonce too low") == "nonce_too_low"


def test_rpc_error_carries_code_message_data_and_kind() -> None:
    error = RpcError(-32000, "already known", data={"hash": "0x01"})
    assert error.code == -32000
    assert error.message == "already known"
    assert error.data == {"hash": "0x01"}
    assert error.kind == "already_known"
    assert "-32000" in str(error) and "already known" in str(error)
    assert RpcError(-32601, "the method eth_foo does not exist").kind == "method_not_found"
    assert RpcError(-1, "weird").kind == "rpc_-1"


def test_transport_error_kind() -> None:
    assert TransportError("boom").kind == "transport"


# ----------------------------------------------------------------------------------------------
# answers


def test_result_of_returns_the_result_even_when_null() -> None:
    assert _result_of({"jsonrpc": "2.0", "id": 1, "result": "0x1"}, "eth_chainId") == "0x1"
    assert _result_of({"jsonrpc": "2.0", "id": 1, "result": None}, "eth_getTransactionReceipt") is None


def test_result_of_raises_the_nodes_error() -> None:
    answer = {"jsonrpc": "2.0", "id": 1, "error": {"code": -32000, "message": "nonce too low", "data": "0x"}}
    with pytest.raises(RpcError) as info:
        _result_of(answer, "eth_sendRawTransaction")
    assert info.value.code == -32000
    assert info.value.kind == "nonce_too_low"
    assert info.value.data == "0x"


@pytest.mark.parametrize(
    "answer",
    [None, [], ["result"], "0x1", 7, {"jsonrpc": "2.0", "id": 1}, {"error": "boom"}, {"error": ["boom"]}],
)
def test_malformed_answers_are_transport_errors_naming_the_method(answer: object) -> None:
    with pytest.raises(TransportError, match="eth_blockNumber"):
        _result_of(answer, "eth_blockNumber")


@pytest.mark.parametrize("code", ["oops", None])
def test_malformed_error_code_is_a_transport_error(code: object) -> None:
    with pytest.raises(TransportError):
        _result_of(
            {"jsonrpc": "2.0", "id": 1, "error": {"code": code, "message": "x"}}, "eth_sendRawTransaction"
        )


# ----------------------------------------------------------------------------------------------
# the blocking client


@pytest.fixture
def closed_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def stamped_build(monkeypatch: pytest.MonkeyPatch):
    """A fixed build identity, so request headers do not ask git."""
    monkeypatch.setenv("GASHAMMER_BUILD_SHA", "0123456789ab")
    build_sha.cache_clear()
    yield
    build_sha.cache_clear()


@pytest.mark.usefixtures("stamped_build")
def test_call_to_an_unreachable_node_is_a_quick_transport_error(closed_port: int) -> None:
    url = f"http://127.0.0.1:{closed_port}"
    started = time.monotonic()
    with pytest.raises(TransportError) as info:
        call(url, "eth_chainId", timeout=3.0)
    assert time.monotonic() - started < 3.0
    message = str(info.value)
    assert url in message
    assert "eth_chainId" in message
    assert info.value.kind == "transport"
