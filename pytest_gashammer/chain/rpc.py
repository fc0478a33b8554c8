"""JSON-RPC clients: an asyncio one for the hot path (keep-alive, batching, several connections)
and a small blocking one for setup and health checks.

Errors are typed: :class:`RpcError` carries the JSON-RPC ``code`` and ``message`` and a stable
``kind`` used in telemetry; :class:`TransportError` covers everything below JSON-RPC (refused
connections, timeouts, malformed answers). Only transport errors are retried: a JSON-RPC error is
the node's answer and retrying it would hide it.
"""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
from collections.abc import Sequence
from typing import Any

from pytest_gashammer._version import request_headers
from pytest_gashammer.chain.node_errors import classify_error

__all__ = [
    "AsyncRpcClient",
    "RpcError",
    "TransportError",
    "batch_results",
    "call",
    "call_batch",
    "classify_error",
]


class TransportError(Exception):
    """The request did not get a JSON-RPC answer (connection, timeout, HTTP status, bad JSON)."""

    kind = "transport"


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
        raise TransportError(f"{method}: the answer is not a JSON-RPC object: {str(answer)[:120]}")
    error = answer.get("error")
    if error is not None:
        code = error.get("code") if isinstance(error, dict) else None
        if not isinstance(code, int) or isinstance(code, bool):
            raise TransportError(f"{method}: malformed JSON-RPC error: {str(error)[:120]}")
        raise RpcError(code, str(error.get("message", "")), error.get("data"))
    if "result" not in answer:
        raise TransportError(f"{method}: JSON-RPC answer has neither result nor error")
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
        raise TransportError(f"{what}: HTTP {exc.code} from {url}") from None
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        reason = getattr(exc, "reason", exc)
        raise TransportError(f"{what}: cannot reach {url} ({reason})") from None
    try:
        return json.loads(payload)
    except ValueError:
        raise TransportError(f"{what}: {url} did not answer with JSON: {payload[:80]!r}") from None


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
    """

    def __init__(
        self,
        url: str,
        *,
        connections: int = 4,
        timeout: float = 30.0,
        retries: int = 2,
    ) -> None:
        self.url = url
        self.connections = connections
        self.timeout = timeout
        self.retries = retries
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

    async def _post(self, body: bytes, what: str) -> Any:
        import aiohttp

        assert self._session is not None and self._slots is not None, "open() the client first"
        last_error: Exception | None = None
        for attempt in range(self.retries + 1):
            try:
                async with self._slots, self._session.post(self.url, data=body) as response:
                    if response.status != 200:
                        text = (await response.text())[:120]
                        raise TransportError(f"{what}: HTTP {response.status} from {self.url}: {text}")
                    payload = await response.read()
                try:
                    return json.loads(payload)
                except ValueError:
                    raise TransportError(
                        f"{what}: {self.url} did not answer with JSON: {payload[:80]!r}"
                    ) from None
            except (TimeoutError, aiohttp.ClientError, OSError) as exc:
                last_error = TransportError(f"{what}: {type(exc).__name__}: {exc} ({self.url})")
                if attempt < self.retries:
                    await asyncio.sleep(0.05 * (2**attempt))
        assert last_error is not None
        raise last_error

    def _take_ids(self, count: int) -> int:
        first = self._next_id
        self._next_id += count
        return first

    async def call(self, method: str, *params: Any) -> Any:
        request_id = self._take_ids(1)
        body = json.dumps(_request(request_id, method, params)).encode()
        return _result_of(await self._post(body, method), method)

    async def batch(self, calls: Sequence[tuple[str, Sequence[Any]]]) -> list[Any]:
        """Send ``calls`` as one JSON-RPC batch; each entry of the answer is a result or an :class:`RpcError`.

        A transport failure of the whole batch raises :class:`TransportError`.
        """
        if not calls:
            return []
        first_id = self._take_ids(len(calls))
        answer = await self._post(_batch_body(calls, first_id), calls[0][0])
        return batch_results(answer, first_id, [method for method, _ in calls])

    async def post_batch(self, body: bytes, what: str) -> Any:
        """POST a JSON-RPC batch the caller encoded itself; the parsed answer, unchecked.

        The hot path renders each ``eth_sendRawTransaction`` request once, when it signs the
        transaction, and joins them here; :func:`batch_results` interprets the answer.
        """
        return await self._post(body, what)


def batch_results(answer: Any, first_id: int, methods: Sequence[str]) -> list[Any]:
    """The answer to a batch whose requests had ids ``first_id ..``: a result or an exception each.

    A node that refuses the batch as a whole answers with one error object, which then stands for
    every request. A request missing from the answer is a :class:`TransportError`.
    """
    if not methods:
        return []
    if isinstance(answer, dict) and "error" in answer:
        try:
            _result_of(answer, methods[0])
        except (RpcError, TransportError) as exc:
            return [exc] * len(methods)
    if not isinstance(answer, list):
        raise TransportError(f"batch of {methods[0]}: expected a JSON array, got {str(answer)[:80]}")
    by_id = {item.get("id"): item for item in answer if isinstance(item, dict)}
    results: list[Any] = []
    for offset, method in enumerate(methods):
        item = by_id.get(first_id + offset)
        if item is None:
            results.append(TransportError(f"{method}: missing from the batch answer"))
            continue
        try:
            results.append(_result_of(item, method))
        except (RpcError, TransportError) as exc:
            results.append(exc)
    return results
