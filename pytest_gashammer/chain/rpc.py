"""JSON-RPC clients: an asyncio one for the hot path (keep-alive, batching, several connections)
and a small blocking one for setup and health checks.

Errors are typed: :class:`RpcError` carries the JSON-RPC ``code`` and ``message`` and a stable
``kind`` used in telemetry; :class:`TransportError` covers everything below JSON-RPC (refused
connections, timeouts, HTTP errors, malformed answers) and says why (``reason``) and whether the
request may have reached the node (``delivered``).

The asyncio client asks again, under a :class:`~pytest_gashammer.chain.retry.RetryPolicy` (bounded,
jittered), what a node's bad moment explains: a transport failure that may be passing (refused,
reset, timed out, HTTP 5xx or 429) and a JSON-RPC error that is not the node's judgement of the
request (-32603, -32005, an unknown code; :func:`~pytest_gashammer.chain.node_errors.retry_reason`).
A refusal is never asked again: it is the node's answer, and retrying it would hide it. Every retry
is counted in the client's :class:`~pytest_gashammer.chain.retry.RetryStats`. ``post_batch`` (the
submitter's path) is asked once: the submitter retries transactions itself, row by row.

A transaction sent again after a failure that may have reached the node can be refused for its own
nonce ("nonce too low" once the first copy was mined): :meth:`AsyncRpcClient.call` and
:meth:`AsyncRpcClient.batch` then ask the node for it by hash, and answer its hash when the node
has it, as the first answer would have.
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from typing import Any

from pytest_gashammer._version import request_headers
from pytest_gashammer.chain.keccak import keccak256
from pytest_gashammer.chain.node_errors import NONCE_TAKEN_KINDS, classify_error
from pytest_gashammer.chain.retry import (
    DEFAULT_POLICY,
    RETRY_HTTP_STATUSES,
    RETRY_TRANSPORT_REASONS,
    RetryPolicy,
    RetryStats,
    transient_reason,
)

__all__ = [
    "AsyncRpcClient",
    "RpcError",
    "TransportError",
    "batch_results",
    "call",
    "call_batch",
    "classify_error",
    "results_for_ids",
]


class TransportError(Exception):
    """The request did not get a JSON-RPC answer (connection, timeout, HTTP status, bad JSON).

    ``reason`` says what happened, in one word: ``refused`` (nothing listened: the request never
    left), ``reset`` (the connection broke under it), ``timeout``, ``http_<status>``, ``bad_answer``
    (not JSON-RPC), ``missing`` (a batch answer left the request out), or ``transport``
    (anything else). ``delivered`` is False when the request cannot have reached the node, None when
    nobody knows: a transaction sent that way may be in the node's pool.
    """

    kind = "transport"

    def __init__(
        self,
        message: str,
        *,
        reason: str = "transport",
        status: int | None = None,
        delivered: bool | None = None,
    ) -> None:
        super().__init__(message)
        self.reason = reason
        self.status = status
        self.delivered = delivered

    @property
    def retryable(self) -> bool:
        """Whether asking again may help: a passing failure, not a broken request."""
        if self.status is not None:
            return self.status >= 500 or self.status in RETRY_HTTP_STATUSES
        return self.reason in RETRY_TRANSPORT_REASONS


class RpcError(Exception):
    """The node answered with a JSON-RPC error object."""

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(f"JSON-RPC error {code}: {message}")
        self.code = code
        self.message = message
        self.data = data

    @property
    def kind(self) -> str:
        """What the edge makes of the refusal (``chain/node_errors.py``)."""
        return classify_error(self.code, self.message)


def _result_of(answer: Any, method: str) -> Any:
    if not isinstance(answer, dict):
        raise TransportError(
            f"{method}: the answer is not a JSON-RPC object: {str(answer)[:120]}", reason="bad_answer"
        )
    error = answer.get("error")
    if error is not None:
        code = error.get("code") if isinstance(error, dict) else None
        if not isinstance(code, int) or isinstance(code, bool):
            raise TransportError(
                f"{method}: malformed JSON-RPC error: {str(error)[:120]}", reason="bad_answer"
            )
        raise RpcError(code, str(error.get("message", "")), error.get("data"))
    if "result" not in answer:
        raise TransportError(f"{method}: JSON-RPC answer has neither result nor error", reason="bad_answer")
    return answer["result"]


# ----------------------------------------------------------------------------------------------
# blocking client


def _request(request_id: int, method: str, params: Sequence[Any]) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": request_id, "method": method, "params": list(params)}


def _batch_body(calls: Sequence[tuple[str, Sequence[Any]]], first_id: int) -> bytes:
    """A JSON-RPC batch of ``calls`` with ids ``first_id ..`` (what :func:`batch_results` reads back)."""
    return json.dumps(
        [_request(first_id + offset, method, params) for offset, (method, params) in enumerate(calls)]
    ).encode()


def _post_blocking(url: str, body: bytes, what: str, timeout: float) -> Any:
    headers = {"Content-Type": "application/json", **request_headers()}
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            payload = response.read()
    except urllib.error.HTTPError as exc:
        raise TransportError(
            f"{what}: HTTP {exc.code} from {url}", reason=f"http_{exc.code}", status=exc.code
        ) from None
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        reason = getattr(exc, "reason", exc)
        refused = isinstance(reason, ConnectionRefusedError)
        raise TransportError(
            f"{what}: cannot reach {url} ({reason})",
            reason="refused" if refused else "timeout" if isinstance(reason, TimeoutError) else "reset",
            delivered=False if refused else None,
        ) from None
    try:
        return json.loads(payload)
    except ValueError:
        raise TransportError(
            f"{what}: {url} did not answer with JSON: {payload[:80]!r}", reason="bad_answer"
        ) from None


def call(url: str, method: str, params: Sequence[Any] = (), *, timeout: float = 10.0) -> Any:
    """One blocking JSON-RPC call. Raises :class:`RpcError` or :class:`TransportError`."""
    body = json.dumps(_request(1, method, params)).encode()
    return _result_of(_post_blocking(url, body, method, timeout), method)


def call_batch(url: str, calls: Sequence[tuple[str, Sequence[Any]]], *, timeout: float = 10.0) -> list[Any]:
    """One blocking JSON-RPC batch: a result or an :class:`RpcError` per call, in order.

    A transport failure of the whole batch raises :class:`TransportError`.
    """
    if not calls:
        return []
    answer = _post_blocking(url, _batch_body(calls, 0), f"batch of {calls[0][0]}", timeout)
    return batch_results(answer, 0, [method for method, _ in calls])


# ----------------------------------------------------------------------------------------------
# asyncio client


class AsyncRpcClient:
    """Keep-alive HTTP JSON-RPC over ``connections`` sockets, with batching.

    Each connection carries one request at a time (nodes such as anvil serve a connection
    serially), so throughput comes from batching and from several connections in parallel.
    ``retry`` (default :data:`~pytest_gashammer.chain.retry.DEFAULT_POLICY`; ``retries=n`` is
    the same with ``n + 1`` tries) bounds how :meth:`call` and :meth:`batch` ask again; ``stats``
    counts it (share one between the clients of a run).
    """

    def __init__(
        self,
        url: str,
        *,
        connections: int = 4,
        timeout: float = 30.0,
        retries: int | None = None,
        retry: RetryPolicy | None = None,
        stats: RetryStats | None = None,
    ) -> None:
        self.url = url
        self.connections = connections
        self.timeout = timeout
        if retry is None:
            retry = DEFAULT_POLICY if retries is None else RetryPolicy(attempts=retries + 1)
        self.retry = retry
        self.stats = stats if stats is not None else RetryStats()
        #: Failed tries at the transport level (each one, retried or not): a rise tells an observer
        #: that the node went through a bad moment (paused, restarted, unreachable).
        self.transport_failures = 0
        self._next_id = 1
        self._session: Any = None
        self._slots: asyncio.Semaphore | None = None

    async def __aenter__(self) -> AsyncRpcClient:
        await self.open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def open(self) -> None:
        import aiohttp

        connector = aiohttp.TCPConnector(limit=self.connections, keepalive_timeout=60, force_close=False)
        self._session = aiohttp.ClientSession(
            connector=connector,
            headers={"Content-Type": "application/json", **request_headers()},
            timeout=aiohttp.ClientTimeout(total=self.timeout),
            json_serialize=json.dumps,
        )
        self._slots = asyncio.Semaphore(self.connections)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _post_once(self, body: bytes, what: str) -> Any:
        """One POST of ``body``; the parsed answer. Raises :class:`TransportError` (with its reason)."""
        import aiohttp

        assert self._session is not None and self._slots is not None, "open() the client first"
        try:
            async with self._slots, self._session.post(self.url, data=body) as response:
                if response.status != 200:
                    text = (await response.text())[:120]
                    raise TransportError(
                        f"{what}: HTTP {response.status} from {self.url}: {text}",
                        reason=f"http_{response.status}",
                        status=response.status,
                    )
                payload = await response.read()
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            raise _transport_error(exc, what, self.url) from None
        try:
            return json.loads(payload)
        except ValueError:
            raise TransportError(
                f"{what}: {self.url} did not answer with JSON: {payload[:80]!r}", reason="bad_answer"
            ) from None

    async def _post(self, body: bytes, what: str, policy: RetryPolicy | None = None) -> Any:
        """POST ``body``, asking again after a passing transport failure as ``policy`` allows."""
        answer, _ = await self._post_counted(body, what, policy)
        return answer

    async def _post_counted(
        self, body: bytes, what: str, policy: RetryPolicy | None = None
    ) -> tuple[Any, bool]:
        """Like :meth:`_post`; also whether the body was sent more than once after a failure that
        may have reached the node (a transaction in it may be there already)."""
        policy = policy or self.retry
        started = time.monotonic()
        tries = 0
        resent = False
        while True:
            tries += 1
            try:
                return await self._post_once(body, what), resent
            except TransportError as exc:
                resent = resent or exc.delivered is not False
                self.transport_failures += 1
                wait = policy.next_delay(tries, time.monotonic() - started) if exc.retryable else None
                if wait is None:
                    if exc.retryable and policy.attempts > 1:
                        self.stats.give_up(what, exc.reason)
                    raise
                self.stats.retry(what, exc.reason)
                await asyncio.sleep(wait)

    def _take_ids(self, count: int) -> int:
        first = self._next_id
        self._next_id += count
        return first

    async def call(self, method: str, *params: Any) -> Any:
        """One call; a transient error answer (``retry_reason``) is asked again within the policy."""
        started = time.monotonic()
        tries = 0
        resent = False
        while True:
            tries += 1
            request_id = self._take_ids(1)
            body = json.dumps(_request(request_id, method, params)).encode()
            # Transport failures are asked again in there.
            answer, again = await self._post_counted(body, method)
            resent = resent or again
            try:
                return _result_of(answer, method)
            except (RpcError, TransportError) as exc:
                reason = transient_reason(exc)
                wait = None if reason is None else self.retry.next_delay(tries, time.monotonic() - started)
                if wait is None:
                    if reason is not None and self.retry.attempts > 1:
                        self.stats.give_up(method, reason)
                    if resent and _refused_for_its_nonce(method, exc):
                        (own,) = await self._own_sends([(method, list(params))], [exc])
                        if isinstance(own, str):
                            return own
                    raise
                self.stats.retry(method, reason)  # type: ignore[arg-type]
                resent = True
                await asyncio.sleep(wait)

    async def _own_sends(self, calls: Sequence[tuple[str, Sequence[Any]]], results: list[Any]) -> list[Any]:
        """``results`` of ``eth_sendRawTransaction`` calls sent more than once: a nonce refusal
        whose transaction the node has by hash becomes that hash (it is ours, sent earlier)."""
        out = list(results)
        asked = [(index, _hash_of_raw(params)) for index, (_, params) in enumerate(calls)]
        asked = [(index, tx_hash) for index, tx_hash in asked if tx_hash is not None]
        if not asked:
            return out
        try:
            found = await self._batch_once([("eth_getTransactionByHash", [tx_hash]) for _, tx_hash in asked])
        except TransportError:
            return out
        for (index, tx_hash), answer in zip(asked, found, strict=True):
            if isinstance(answer, dict):
                out[index] = tx_hash
                self.stats.resolved["accepted: the node had it"] += 1
        return out

    async def _batch_once(
        self, calls: Sequence[tuple[str, Sequence[Any]]], resent: list[bool] | None = None
    ) -> list[Any]:
        first_id = self._take_ids(len(calls))
        answer, again = await self._post_counted(_batch_body(calls, first_id), calls[0][0])
        if again and resent is not None:
            resent.append(True)
        return batch_results(answer, first_id, [method for method, _ in calls])

    async def batch(self, calls: Sequence[tuple[str, Sequence[Any]]]) -> list[Any]:
        """Send ``calls`` as one JSON-RPC batch; each entry of the answer is a result or an :class:`RpcError`.

        The calls whose answer is transient (an internal error, a limit, a call the answer left out)
        are asked again, as a smaller batch, within the policy; a refusal or a result stays as it
        came. A transport failure of the whole batch (after its own retries) raises
        :class:`TransportError`; one while asking again leaves those calls with their last answer.
        """
        if not calls:
            return []
        whole: list[bool] = []  # set when the whole body went again after a transport failure
        results = await self._batch_once(calls, whole)
        started = time.monotonic()
        tries = 1
        resent: set[int] = set(range(len(calls))) if whole else set()
        pending = [index for index, result in enumerate(results) if _transient(result)]
        while pending:
            resent.update(pending)
            wait = self.retry.next_delay(tries, time.monotonic() - started)
            if wait is None:
                for index in pending:
                    self.stats.give_up(calls[index][0], transient_reason(results[index]) or "transport")
                break
            for index in pending:
                self.stats.retry(calls[index][0], transient_reason(results[index]) or "transport")
            await asyncio.sleep(wait)
            tries += 1
            try:
                again = await self._batch_once([calls[index] for index in pending], whole)
            except TransportError:
                # The node went away meanwhile (counted where it was given up): what was answered
                # stands, the rest keeps its last answer.
                break
            for index, result in zip(pending, again, strict=True):
                results[index] = result
            pending = [index for index in pending if _transient(results[index])]
        own = [index for index in sorted(resent) if _refused_for_its_nonce(calls[index][0], results[index])]
        if own:
            found = await self._own_sends([calls[index] for index in own], [results[index] for index in own])
            for index, result in zip(own, found, strict=True):
                results[index] = result
        return results

    async def post_batch(self, body: bytes, what: str) -> Any:
        """POST a JSON-RPC batch the caller encoded itself, once; the parsed answer, unchecked.

        The hot path renders each ``eth_sendRawTransaction`` request once, when it signs the
        transaction, and joins them here; :func:`batch_results` interprets the answer. The caller
        retries (row by row: a batch's answer can accept some and fail others).
        """
        try:
            return await self._post_once(body, what)
        except TransportError:
            self.transport_failures += 1
            raise


def _transient(result: Any) -> bool:
    return isinstance(result, Exception) and transient_reason(result) is not None


def _hash_of_raw(params: Sequence[Any]) -> str | None:
    """The hash a node answers for the signed transaction in ``params``, None if it is not one."""
    try:
        return "0x" + keccak256(bytes.fromhex(str(params[0])[2:])).hex()
    except (IndexError, ValueError):
        return None


def _refused_for_its_nonce(method: str, result: Any) -> bool:
    return (
        method == "eth_sendRawTransaction"
        and isinstance(result, RpcError)
        and result.kind in NONCE_TAKEN_KINDS
    )


def _transport_error(exc: BaseException, what: str, url: str) -> TransportError:
    """The :class:`TransportError` an aiohttp or socket failure stands for (reason, delivered)."""
    import aiohttp

    text = f"{what}: {type(exc).__name__}: {exc} ({url})"
    if isinstance(exc, aiohttp.ConnectionTimeoutError):  # before the request was written
        return TransportError(text, reason="timeout", delivered=False)
    if isinstance(exc, (aiohttp.ClientConnectorError, ConnectionRefusedError)):
        return TransportError(text, reason="refused", delivered=False)
    if isinstance(exc, TimeoutError):  # aiohttp's read timeouts are TimeoutErrors too
        return TransportError(text, reason="timeout")
    if isinstance(exc, (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError, OSError)):
        return TransportError(text, reason="reset")
    return TransportError(text)


def batch_results(answer: Any, first_id: int, methods: Sequence[str]) -> list[Any]:
    """The answer to a batch whose requests had ids ``first_id ..``: a result or an exception each.

    A node that refuses the batch as a whole answers with one error object, which then stands for
    every request. A request missing from the answer is a :class:`TransportError` (``missing``).
    """
    return results_for_ids(answer, range(first_id, first_id + len(methods)), methods)


def results_for_ids(answer: Any, ids: Sequence[int], methods: Sequence[str]) -> list[Any]:
    """Like :func:`batch_results`, for requests with any ``ids`` (one per method, in order)."""
    if not methods:
        return []
    if isinstance(answer, dict) and "error" in answer:
        try:
            _result_of(answer, methods[0])
        except (RpcError, TransportError) as exc:
            return [exc] * len(methods)
    if not isinstance(answer, list):
        raise TransportError(
            f"batch of {methods[0]}: expected a JSON array, got {str(answer)[:80]}", reason="bad_answer"
        )
    by_id = {item.get("id"): item for item in answer if isinstance(item, dict)}
    results: list[Any] = []
    for request_id, method in zip(ids, methods, strict=True):
        item = by_id.get(request_id)
        if item is None:
            results.append(TransportError(f"{method}: missing from the batch answer", reason="missing"))
            continue
        try:
            results.append(_result_of(item, method))
        except (RpcError, TransportError) as exc:
            results.append(exc)
    return results
