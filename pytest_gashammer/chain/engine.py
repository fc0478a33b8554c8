"""A small Engine API client: the calls a consensus layer makes to an execution client.

Only what driving a post-merge chain needs, in the Cancun (V3) shape: ``forkchoice_updated``
(with or without payload attributes), ``get_payload``, ``new_payload`` and
``exchange_capabilities``. Every call carries a fresh HS256 JWT with an ``iat`` claim (execution
clients reject tokens issued more than about 60 s away from their clock, so a token is never
reused). Every payload status is checked: a status outside the ones the caller accepts (``VALID``
by default) raises :class:`EngineStatusError`, one line naming the call, the status and the
client's ``validationError``. Callers that want to see an ``INVALID`` verdict (negative Engine API
workloads) pass ``expect=("INVALID",)``.
"""

from __future__ import annotations

import dataclasses
import json
import time
import urllib.error
import urllib.request
from collections.abc import Collection, Sequence
from typing import Any

from pytest_gashammer._version import request_headers
from pytest_gashammer.chain.rpc import RpcError, TransportError

__all__ = [
    "ZERO_HASH",
    "BlockBuild",
    "EngineCall",
    "EngineCallError",
    "EngineClient",
    "EngineError",
    "EngineStatusError",
    "ForkchoiceResult",
    "PayloadStatus",
    "jwt_token",
]

ZERO_HASH = "0x" + "00" * 32
JWT_SECRET_BYTES = 32


def jwt_token(secret: bytes, *, issued_at: float | None = None) -> str:
    """The bearer token for one Engine API request: HS256 over ``{"iat": now}``."""
    import jwt

    if len(secret) != JWT_SECRET_BYTES:
        raise ValueError(f"an Engine API JWT secret is {JWT_SECRET_BYTES} bytes, got {len(secret)}")
    issued = int(time.time() if issued_at is None else issued_at)
    return str(jwt.encode({"iat": issued}, secret, algorithm="HS256"))


class EngineError(Exception):
    """An Engine API call did not do what the caller needed. ``str(err)`` is one line."""


class EngineCallError(EngineError):
    """The call itself failed: a JSON-RPC error, or no answer (``cause`` says which)."""

    def __init__(self, method: str, cause: RpcError | TransportError) -> None:
        if isinstance(cause, TransportError) and "HTTP 401" in str(cause):
            detail = f"{cause} (the JWT was refused: the secret differs from the node's --jwtSecret)"
        else:
            detail = str(cause)
        super().__init__(f"{method}: {detail}")
        self.method = method
        self.cause = cause


class EngineStatusError(EngineError):
    """The node answered with a payload status the caller did not accept."""

    def __init__(self, method: str, status: PayloadStatus, expected: Collection[str]) -> None:
        reason = status.validation_error or "no validationError given"
        super().__init__(
            f"{method} returned status {status.status} (expected {'/'.join(sorted(expected))}): {reason}"
        )
        self.method = method
        self.status = status


@dataclasses.dataclass(frozen=True)
class PayloadStatus:
    """``PayloadStatusV1``: ``VALID``, ``INVALID``, ``SYNCING``, ``ACCEPTED`` or ``INVALID_BLOCK_HASH``."""

    status: str
    latest_valid_hash: str | None = None
    validation_error: str | None = None

    @classmethod
    def from_json(cls, value: Any) -> PayloadStatus:
        if not isinstance(value, dict) or not isinstance(value.get("status"), str):
            raise ValueError(f"not a payload status: {str(value)[:120]}")
        return cls(value["status"], value.get("latestValidHash"), value.get("validationError"))


@dataclasses.dataclass(frozen=True)
class ForkchoiceResult:
    payload_status: PayloadStatus
    payload_id: str | None


@dataclasses.dataclass(frozen=True)
class EngineCall:
    """One Engine API call as the consensus side made it: what a run's engine figures, invariants and
    the ``engine_calls`` telemetry table are made of.

    ``method`` is the name without prefix or version (``forkchoiceUpdated``, ``getPayload``,
    ``newPayload``, ``exchangeCapabilities``). ``status`` is the payload status the node gave
    (``VALID``, ``INVALID``, ``SYNCING``, ``ACCEPTED``, ``INVALID_BLOCK_HASH``), ``OK`` for an answer
    without one (``getPayload``), or ``ERROR`` when the call failed (``error`` says how).
    ``block_hash`` is the payload's (``getPayload``, ``newPayload``) or the head asked for
    (``forkchoiceUpdated``); ``with_attributes`` marks a ``forkchoiceUpdated`` that asked for a build.
    """

    method: str
    version: int
    started_at: float  # unix seconds
    latency: float  # seconds
    status: str
    block_number: int | None = None
    block_hash: str | None = None
    parent_hash: str | None = None
    transactions: int | None = None
    gas_used: int | None = None
    payload_id: str | None = None
    latest_valid_hash: str | None = None
    with_attributes: bool = False
    error: str | None = None


@dataclasses.dataclass(frozen=True)
class BlockBuild:
    """One block the consensus driver built: ``build`` is forkchoiceUpdated-with-attributes plus
    getPayload (the client assembling the block), ``import`` is newPayload plus the forkchoiceUpdated
    that makes it the head (the client executing and selecting it). ``head_after`` is the head the
    node's JSON-RPC named right after (None when it was not read)."""

    number: int
    block_hash: str
    parent_hash: str
    timestamp: int
    transactions: int
    gas_used: int
    started_at: float  # unix seconds
    build_s: float
    import_s: float
    payload_id: str
    head_after: str | None = None


class EngineClient:
    """Blocking Engine API calls to ``url`` (the node's authenticated port), Cancun (V3) methods.

    Thread-safe: it keeps no connection or counter state between calls.
    """

    version = 3

    def __init__(self, url: str, jwt_secret: bytes, *, timeout: float = 120.0) -> None:
        if len(jwt_secret) != JWT_SECRET_BYTES:
            raise ValueError(f"an Engine API JWT secret is {JWT_SECRET_BYTES} bytes, got {len(jwt_secret)}")
        self.url = url
        self.timeout = timeout
        self._secret = jwt_secret

    def __repr__(self) -> str:  # keep the secret out of logs
        return f"<EngineClient {self.url} V{self.version}>"

    def call(self, method: str, *params: Any) -> Any:
        """One authenticated JSON-RPC call; failures become :class:`EngineCallError`."""
        body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)}).encode()
        headers = {
            "Content-Type": "application/json",
            "Authorization": f"Bearer {jwt_token(self._secret)}",
            **request_headers(),
        }
        request = urllib.request.Request(self.url, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                payload = response.read()
        except urllib.error.HTTPError as exc:
            raise EngineCallError(method, TransportError(f"HTTP {exc.code} from {self.url}")) from None
        except (urllib.error.URLError, OSError, TimeoutError) as exc:
            reason = getattr(exc, "reason", exc)
            raise EngineCallError(method, TransportError(f"cannot reach {self.url} ({reason})")) from None
        try:
            answer = json.loads(payload)
        except ValueError:
            raise EngineCallError(
                method, TransportError(f"{self.url} did not answer with JSON: {payload[:80]!r}")
            ) from None
        if not isinstance(answer, dict):
            raise EngineCallError(method, TransportError(f"not a JSON-RPC object: {str(answer)[:120]}"))
        error = answer.get("error")
        if error is not None:
            code = error.get("code") if isinstance(error, dict) else None
            if not isinstance(code, int) or isinstance(code, bool):
                raise EngineCallError(method, TransportError(f"malformed JSON-RPC error: {str(error)[:120]}"))
            raise EngineCallError(method, RpcError(code, str(error.get("message", "")), error.get("data")))
        if "result" not in answer:
            raise EngineCallError(method, TransportError("JSON-RPC answer has neither result nor error"))
        return answer["result"]

    def exchange_capabilities(self, methods: Sequence[str] = ()) -> list[str]:
        """The Engine API methods the node serves (``engine_exchangeCapabilities``)."""
        return list(self.call("engine_exchangeCapabilities", list(methods)))

    def forkchoice_updated(
        self,
        head: str,
        attributes: dict[str, Any] | None = None,
        *,
        safe: str | None = None,
        finalized: str | None = None,
        expect: Collection[str] = ("VALID",),
    ) -> ForkchoiceResult:
        """Move the head (safe and finalized default to it); with ``attributes``, start building on it.

        With attributes, a result without a ``payloadId`` is an error too.
        """
        method = f"engine_forkchoiceUpdatedV{self.version}"
        state = {
            "headBlockHash": head,
            "safeBlockHash": safe or head,
            "finalizedBlockHash": finalized or head,
        }
        answer = self.call(method, state, attributes)
        try:
            status = PayloadStatus.from_json(
                answer.get("payloadStatus") if isinstance(answer, dict) else None
            )
        except ValueError as exc:
            raise EngineCallError(method, TransportError(str(exc))) from None
        if status.status not in expect:
            raise EngineStatusError(method, status, expect)
        payload_id = answer.get("payloadId")
        if attributes is not None and status.status == "VALID" and not payload_id:
            raise EngineCallError(method, TransportError("VALID with payload attributes but no payloadId"))
        return ForkchoiceResult(status, payload_id)

    def get_payload(self, payload_id: str) -> dict[str, Any]:
        """The built payload's envelope: ``executionPayload``, ``blockValue``, ``blobsBundle``, ..."""
        method = f"engine_getPayloadV{self.version}"
        envelope = self.call(method, payload_id)
        if not isinstance(envelope, dict) or not isinstance(envelope.get("executionPayload"), dict):
            raise EngineCallError(method, TransportError(f"no executionPayload in {str(envelope)[:120]}"))
        return envelope

    def new_payload(
        self,
        payload: dict[str, Any],
        versioned_hashes: Sequence[str] = (),
        parent_beacon_block_root: str = ZERO_HASH,
        *,
        expect: Collection[str] = ("VALID",),
    ) -> PayloadStatus:
        """Hand the node a payload to validate and import."""
        method = f"engine_newPayloadV{self.version}"
        answer = self.call(method, payload, list(versioned_hashes), parent_beacon_block_root)
        try:
            status = PayloadStatus.from_json(answer)
        except ValueError as exc:
            raise EngineCallError(method, TransportError(str(exc))) from None
        if status.status not in expect:
            raise EngineStatusError(method, status, expect)
        return status
