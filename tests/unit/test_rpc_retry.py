"""Asking again: which failures are transient, the retry policy's bounds, and the asyncio client's
retries against a scripted loopback server (no node)."""

from __future__ import annotations

import asyncio
import http.server
import json
import random
import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from pytest_gashammer.chain.keccak import keccak256
from pytest_gashammer.chain.node_errors import FINAL_CODES, PHRASES, TRANSIENT_PHRASES, Phrase, retry_reason
from pytest_gashammer.chain.retry import NO_RETRY, RetryPolicy, RetryStats, transient_reason
from pytest_gashammer.chain.rpc import AsyncRpcClient, RpcError, TransportError

FAST = RetryPolicy(attempts=4, first_delay=0.01, max_delay=0.02, budget=5.0)

# ----------------------------------------------------------------------------------------------
# what is transient


@pytest.mark.parametrize("phrase", PHRASES, ids=[phrase.needle for phrase in PHRASES])
def test_a_refusal_is_never_asked_again_whatever_its_code(phrase: Phrase) -> None:
    for code in (-32000, -32603, -32005, -32099, 3):
        assert retry_reason(code, phrase.example) is None


@pytest.mark.parametrize(
    ("code", "message", "reason"),
    [
        (-32603, "internal error", "rpc_-32603"),
        (-32005, "limit exceeded", "limit_exceeded"),
        (-32099, "injected by a proxy", "rpc_-32099"),
        (-32001, "resource not found", "rpc_-32001"),
        (-32000, "rate limit exceeded", "rate_limited"),
        (-32000, "server busy, try again later", "try_again"),
        (-32002, "request timed out", "timeout"),
        (-32601, "Too Many Requests", "rate_limited"),
    ],
)
def test_errors_that_are_not_a_judgement_of_the_request_are_asked_again(
    code: int, message: str, reason: str
) -> None:
    assert retry_reason(code, message) == reason


@pytest.mark.parametrize("code", sorted(FINAL_CODES))
def test_codes_that_judge_the_request_are_final(code: int) -> None:
    assert retry_reason(code, "something the table does not know") is None


def test_a_refusal_wins_over_a_transient_wording() -> None:
    assert retry_reason(-32603, "txpool is full, try again later") is None
    assert retry_reason(-32005, "nonce too low: rate limit") is None


@pytest.mark.parametrize("phrase", TRANSIENT_PHRASES, ids=[phrase.needle for phrase in TRANSIENT_PHRASES])
def test_each_transient_phrase_says_where_it_comes_from(phrase: Phrase) -> None:
    assert phrase.needle == phrase.needle.lower() and phrase.source
    assert retry_reason(-32000, phrase.example) == phrase.kind


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (TransportError("x", reason="refused", delivered=False), "refused"),
        (TransportError("x", reason="reset"), "reset"),
        (TransportError("x", reason="timeout"), "timeout"),
        (TransportError("x", reason="bad_answer"), "bad_answer"),
        (TransportError("x", reason="missing"), "missing"),
        (TransportError("x", reason="http_502", status=502), "http_502"),
        (TransportError("x", reason="http_429", status=429), "http_429"),
        (TransportError("x", reason="http_404", status=404), None),
        (TransportError("x", reason="http_400", status=400), None),
        (TransportError("x"), None),  # an unknown failure is not guessed at
        (RpcError(-32603, "internal error"), "rpc_-32603"),
        (RpcError(-32000, "nonce too low"), None),
        (ValueError("not a chain error"), None),
    ],
)
def test_transient_reason_of_each_error(error: BaseException, reason: str | None) -> None:
    assert transient_reason(error) == reason


# ----------------------------------------------------------------------------------------------
# the policy


def test_each_wait_is_half_to_all_of_its_doubling_step_up_to_the_cap() -> None:
    policy = RetryPolicy(attempts=10, first_delay=0.1, max_delay=0.5, budget=100)
    rng = random.Random(3)
    for retry, step in [(1, 0.1), (2, 0.2), (3, 0.4), (4, 0.5), (9, 0.5)]:
        waits = [policy.delay(retry, rng) for _ in range(200)]
        assert all(step / 2 <= wait <= step for wait in waits), (retry, min(waits), max(waits))
        assert max(waits) - min(waits) > step / 4  # jittered, not a constant


def test_the_policy_is_bounded_in_tries_and_in_time() -> None:
    policy = RetryPolicy(attempts=3, first_delay=0.1, max_delay=1.0, budget=2.0)
    assert policy.next_delay(1, 0.0) is not None
    assert policy.next_delay(2, 0.0) is not None
    assert policy.next_delay(3, 0.0) is None  # three tries made
    assert policy.next_delay(1, 1.95) is None  # the wait would end past the budget
    assert NO_RETRY.next_delay(1, 0.0) is None


@pytest.mark.parametrize(
    "kwargs",
    [{"attempts": 0}, {"first_delay": -1}, {"first_delay": 2, "max_delay": 1}, {"budget": -1}],
)
def test_a_policy_that_makes_no_sense_is_refused(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="RetryPolicy"):
        RetryPolicy(**kwargs)


def test_the_record_says_what_was_asked_again_and_why() -> None:
    stats = RetryStats()
    assert stats.note() is None and stats.total == 0
    stats.retry("eth_sendRawTransaction", "rpc_-32603", 3)
    stats.retry("eth_sendRawTransaction", "timeout")
    stats.retry("eth_blockNumber", "refused", 2)
    stats.give_up("eth_blockNumber", "refused")
    stats.resolved["accepted: the node had it"] += 1
    assert stats.total == 6
    assert stats.as_dict() == {
        "retried": {
            "eth_blockNumber: refused": 2,
            "eth_sendRawTransaction: rpc_-32603": 3,
            "eth_sendRawTransaction: timeout": 1,
        },
        "gave_up": {"eth_blockNumber: refused": 1},
        "resolved": {"accepted: the node had it": 1},
    }
    note = stats.note()
    assert note is not None
    assert note.startswith(
        "6 JSON-RPC call(s) asked again: eth_sendRawTransaction 4 (rpc_-32603 3, timeout 1)"
    )
    assert "eth_blockNumber 2 (refused 2)" in note
    assert "given up after the retry bound: eth_blockNumber: refused 1" in note
    assert "accepted: the node had it 1" in note


# ----------------------------------------------------------------------------------------------
# the client against a scripted server


Script = Callable[[Any], tuple[int, bytes | None]]


class Scripted(http.server.BaseHTTPRequestHandler):
    """Answers each POST with the next entry of ``script`` (a function of the parsed body giving
    ``(status, body)``; a body of None closes the connection without an answer)."""

    script: list[Script] = []
    seen: list[Any] = []
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:  # noqa: N802 - the http.server API
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        Scripted.seen.append(body)
        status, payload = (Scripted.script.pop(0) if Scripted.script else ok)(body)
        if payload is None:
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args: Any) -> None:
        pass


def ok(body: Any) -> tuple[int, bytes]:
    items = body if isinstance(body, list) else [body]
    answers = [{"jsonrpc": "2.0", "id": item["id"], "result": item["method"]} for item in items]
    return 200, json.dumps(answers if isinstance(body, list) else answers[0]).encode()


def error(code: int, message: str, only: str | None = None) -> Script:
    """Every call (or only those of method ``only``) answered with a JSON-RPC error; the rest ok."""

    def answer(body: Any) -> tuple[int, bytes]:
        items = body if isinstance(body, list) else [body]
        answers = [
            {"jsonrpc": "2.0", "id": item["id"], "error": {"code": code, "message": message}}
            if only is None or item["method"] == only
            else {"jsonrpc": "2.0", "id": item["id"], "result": item["method"]}
            for item in items
        ]
        return 200, json.dumps(answers if isinstance(body, list) else answers[0]).encode()

    return answer


def status(code: int) -> Script:
    return lambda body: (code, b"not now")


def hang_up(body: Any) -> tuple[int, None]:
    return 200, None


def garbage(body: Any) -> tuple[int, bytes]:
    return 200, b"<html>oops</html>"


@pytest.fixture
def server() -> Iterator[str]:
    Scripted.script, Scripted.seen = [], []
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Scripted)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


def ask(url: str, work: Callable[[AsyncRpcClient], Any], **options: Any) -> tuple[Any, AsyncRpcClient]:
    async def main() -> tuple[Any, AsyncRpcClient]:
        async with AsyncRpcClient(url, connections=2, **{"retry": FAST, **options}) as client:
            try:
                return await work(client), client
            except Exception as exc:  # handed back for the test to look at
                return exc, client

    return asyncio.run(main())


@pytest.mark.parametrize(
    ("failure", "reason"),
    [
        (status(503), "http_503"),
        (status(429), "http_429"),
        (hang_up, "reset"),
        (garbage, "bad_answer"),
        (error(-32603, "internal error"), "rpc_-32603"),
        (error(-32005, "limit exceeded"), "limit_exceeded"),
    ],
)
def test_a_passing_failure_is_asked_again_and_counted(server: str, failure: Script, reason: str) -> None:
    Scripted.script = [failure, failure]
    result, client = ask(server, lambda c: c.call("eth_blockNumber"))
    assert result == "eth_blockNumber"
    assert len(Scripted.seen) == 3
    assert client.stats.retried == {("eth_blockNumber", reason): 2}
    assert not client.stats.gave_up


@pytest.mark.parametrize(
    ("failure", "expected"),
    [
        (status(404), TransportError),
        (error(-32000, "nonce too low"), RpcError),
        (error(-32601, "nope"), RpcError),
    ],
)
def test_a_final_answer_is_not_asked_again(server: str, failure: Script, expected: type) -> None:
    Scripted.script = [failure]
    result, client = ask(server, lambda c: c.call("eth_sendRawTransaction", "0x01"))
    assert isinstance(result, expected)
    assert len(Scripted.seen) == 1 and client.stats.total == 0


def test_the_retries_are_bounded_and_the_last_failure_is_raised(server: str) -> None:
    Scripted.script = [status(502)] * 10
    result, client = ask(server, lambda c: c.call("eth_chainId"))
    assert isinstance(result, TransportError) and result.reason == "http_502" and result.status == 502
    assert len(Scripted.seen) == FAST.attempts
    assert client.stats.retried == {("eth_chainId", "http_502"): FAST.attempts - 1}
    assert client.stats.gave_up == {("eth_chainId", "http_502"): 1}
    assert client.transport_failures == FAST.attempts


def test_a_node_that_is_not_there_is_refused_never_delivered(closed_port: int) -> None:
    result, client = ask(f"http://127.0.0.1:{closed_port}", lambda c: c.call("eth_chainId"))
    assert isinstance(result, TransportError)
    assert result.reason == "refused" and result.delivered is False and result.retryable
    assert client.stats.retried == {("eth_chainId", "refused"): FAST.attempts - 1}


def test_retries_zero_means_one_try(closed_port: int) -> None:
    result, client = ask(
        f"http://127.0.0.1:{closed_port}", lambda c: c.call("eth_chainId"), retry=None, retries=0
    )
    assert isinstance(result, TransportError) and client.stats.total == 0 and client.transport_failures == 1


def test_a_batch_asks_again_only_its_transient_calls(server: str) -> None:
    Scripted.script = [error(-32603, "internal error", only="eth_getBlockByNumber")]
    calls = [("eth_getBlockByNumber", ["0x1", False]), ("eth_chainId", []), ("eth_foo", [])]
    Scripted.script.append(ok)
    result, client = ask(server, lambda c: c.batch(calls))
    assert result == ["eth_getBlockByNumber", "eth_chainId", "eth_foo"]
    assert [item["method"] for item in Scripted.seen[1]] == ["eth_getBlockByNumber"]  # only that one again
    assert client.stats.retried == {("eth_getBlockByNumber", "rpc_-32603"): 1}


def test_a_batch_keeps_refusals_and_gives_up_on_what_stays_transient(server: str) -> None:
    def mixed(body: Any) -> tuple[int, bytes]:
        answers = [
            {"jsonrpc": "2.0", "id": body[0]["id"], "error": {"code": -32000, "message": "nonce too low"}},
            {"jsonrpc": "2.0", "id": body[-1]["id"], "error": {"code": -32603, "message": "boom"}},
        ]
        return 200, json.dumps(answers[: len(body)] if len(body) > 1 else answers[1:]).encode()

    Scripted.script = [mixed] * 10
    calls = [("eth_sendRawTransaction", ["0x01"]), ("eth_getTransactionReceipt", ["0x02"])]
    result, client = ask(server, lambda c: c.batch(calls))
    assert isinstance(result[0], RpcError) and result[0].kind == "nonce_too_low"
    assert isinstance(result[1], RpcError) and result[1].code == -32603
    assert len(Scripted.seen) == FAST.attempts  # the refusal is never sent again
    assert all(len(body) == 1 for body in Scripted.seen[1:])
    assert client.stats.gave_up == {("eth_getTransactionReceipt", "rpc_-32603"): 1}


def test_post_batch_is_asked_once_the_submitter_retries(server: str) -> None:
    Scripted.script = [status(503)]
    body = json.dumps([{"jsonrpc": "2.0", "id": 1, "method": "eth_sendRawTransaction", "params": ["0x01"]}])
    result, client = ask(server, lambda c: c.post_batch(body.encode(), "eth_sendRawTransaction"))
    assert isinstance(result, TransportError) and result.reason == "http_503"
    assert len(Scripted.seen) == 1 and client.stats.total == 0 and client.transport_failures == 1


@pytest.fixture
def closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_the_retry_note_reaches_the_run_summary() -> None:
    from pytest_gashammer.results import RETRY_NOTE, run_notes

    stats = RetryStats()
    stats.retry("eth_getBlockByNumber", "http_502")
    notes = ["devnet: something", RETRY_NOTE + str(stats.note()), "receipts: checked 1 of 1"]
    assert run_notes(notes) == [
        "retries: 1 JSON-RPC call(s) asked again: eth_getBlockByNumber 1 (http_502 1)"
    ]


def test_a_batch_whose_node_goes_away_while_asking_again_keeps_what_it_has(server: str) -> None:
    Scripted.script = [error(-32603, "internal error", only="eth_getBlockByNumber")] + [hang_up] * 10
    calls = [("eth_getBlockByNumber", ["0x1", False]), ("eth_chainId", [])]
    result, client = ask(server, lambda c: c.batch(calls))
    assert isinstance(result[0], RpcError) and result[0].code == -32603
    assert result[1] == "eth_chainId"
    assert client.stats.gave_up[("eth_getBlockByNumber", "reset")] == 1


RAW = "0x02f86a"  # any bytes: the client only hashes them
RAW_HASH = "0x" + keccak256(bytes.fromhex(RAW[2:])).hex()


def found(has: bool) -> Script:
    def answer(body: Any) -> tuple[int, bytes]:
        items = body if isinstance(body, list) else [body]
        assert [item["method"] for item in items] == ["eth_getTransactionByHash"]
        assert items[0]["params"] == [RAW_HASH]
        result = {"hash": RAW_HASH, "blockNumber": "0x5"} if has else None
        out = [{"jsonrpc": "2.0", "id": item["id"], "result": result} for item in items]
        return 200, json.dumps(out if isinstance(body, list) else out[0]).encode()

    return answer


@pytest.mark.parametrize("how", ["call", "batch"])
def test_a_resent_transaction_refused_for_its_nonce_is_ours_when_the_node_has_it(
    server: str, how: str
) -> None:
    """The first answer was an internal error after the node took the transaction and mined it: the
    resend is 'nonce too low', and the node has it by hash, so the answer is its hash."""
    Scripted.script = [error(-32603, "internal error"), error(-32000, "nonce too low"), found(True)]
    work = (
        (lambda c: c.call("eth_sendRawTransaction", RAW))
        if how == "call"
        else (lambda c: c.batch([("eth_sendRawTransaction", [RAW])]))
    )
    result, client = ask(server, work)
    assert result == (RAW_HASH if how == "call" else [RAW_HASH])
    assert client.stats.resolved == {"accepted: the node had it": 1}


def test_a_resent_transaction_the_node_does_not_have_stays_refused(server: str) -> None:
    Scripted.script = [status(502), error(-32000, "nonce too low"), found(False)]
    result, client = ask(server, lambda c: c.call("eth_sendRawTransaction", RAW))
    assert isinstance(result, RpcError) and result.kind == "nonce_too_low"
    assert len(Scripted.seen) == 3 and not client.stats.resolved


def test_a_nonce_refusal_on_the_first_try_is_never_looked_up(server: str) -> None:
    Scripted.script = [error(-32000, "nonce too low")]
    result, client = ask(server, lambda c: c.batch([("eth_sendRawTransaction", [RAW])]))
    assert isinstance(result[0], RpcError) and len(Scripted.seen) == 1
