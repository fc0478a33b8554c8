"""A small Engine API client: the calls a consensus layer makes to an execution client.

Only what driving a post-merge chain needs: ``forkchoice_updated`` (with or without payload
attributes), ``get_payload``, ``new_payload`` and ``exchange_capabilities``, in the shape of one
Engine API version, 1 to 4 (``execution-apis`` ``src/engine/{paris,shanghai,cancun,prague}.md``):

======= ===================== ============================== ===============================
version forkchoiceUpdated     getPayload answers             newPayload params
======= ===================== ============================== ===============================
1       V1: timestamp,        the ExecutionPayloadV1 itself  [payload]
        prevRandao,
        suggestedFeeRecipient
2       V2: + withdrawals     {executionPayload, blockValue} [payload]
3       V3: +                 + blobsBundle,                 [payload, versionedHashes,
        parentBeaconBlockRoot shouldOverrideBuilder          parentBeaconBlockRoot]
4       V3 (there is no V4)   + executionRequests            + executionRequests
======= ===================== ============================== ===============================

A node refuses a version outside its chain's fork at the block's timestamp (``-38005 Unsupported
fork``): V1 builds Paris blocks, V2 Shanghai, V3 Cancun, V4 Prague. :func:`fork_version` reads the
version a block's header belongs to; :func:`negotiate_version` the highest one a node serves.

Every call carries a fresh HS256 JWT with an ``iat`` claim (execution clients reject tokens
issued more than about 60 s away from their clock, so a token is never reused). Every payload
status is checked: a status outside the ones the caller accepts (``VALID`` by default) raises
:class:`EngineStatusError`, one line naming the call, the status and the client's
``validationError``. Callers that want to see an ``INVALID`` verdict (negative Engine API
workloads) pass ``expect=("INVALID",)``. Every call, answered or not, is handed to the client's
``observer`` as one :class:`EngineCall`.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from pytest_gashammer._version import request_headers
from pytest_gashammer.chain.rpc import RpcError, TransportError

__all__ = [
    "ENGINE_VERSIONS",
    "ZERO_HASH",
    "BlockBuild",
    "EngineCall",
    "EngineCallError",
    "EngineClient",
    "EngineError",
    "EngineStatusError",
    "EngineVersionError",
    "ForkchoiceResult",
    "PayloadStatus",
    "fork_version",
    "jwt_token",
    "negotiate_version",
    "payload_attributes",
    "served_versions",
]

logger = logging.getLogger(__name__)

ZERO_HASH = "0x" + "00" * 32
JWT_SECRET_BYTES = 32
#: The Engine API versions the client speaks (Paris, Shanghai, Cancun, Prague).
ENGINE_VERSIONS = (1, 2, 3, 4)
#: The fork each version builds, for messages.
FORK_OF_VERSION = {1: "Paris", 2: "Shanghai", 3: "Cancun", 4: "Prague"}
#: forkchoiceUpdated stops at V3: Prague changed only getPayload and newPayload.
LAST_FORKCHOICE_VERSION = 3


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

    @property
    def unauthorized(self) -> bool:
        """The node refused the token (HTTP 401): a wrong secret, or a clock far off."""
        return isinstance(self.cause, TransportError) and "HTTP 401" in str(self.cause)


class EngineStatusError(EngineError):
    """The node answered with a payload status the caller did not accept."""

    def __init__(self, method: str, status: PayloadStatus, expected: Collection[str]) -> None:
        reason = (status.validation_error or "no validationError given").splitlines()[0]
        super().__init__(
            f"{method} returned status {status.status} (expected {'/'.join(sorted(expected))}): {reason}"
        )
        self.method = method
        self.status = status


class EngineVersionError(EngineError):
    """The node does not serve the Engine API version asked for, or none this client speaks."""


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

    A payload status the caller did not accept (``EngineStatusError``) keeps the node's status, with
    ``error`` set to the message the caller got. ``withdrawals`` counts the payload's withdrawals
    (``getPayload``, ``newPayload``) or the attributes' (``forkchoiceUpdated`` with attributes), None
    where there are none to count (version 1, or no payload).
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
    withdrawals: int | None = None


@dataclasses.dataclass(frozen=True)
class BlockBuild:
    """One block the consensus driver built: ``build`` is forkchoiceUpdated-with-attributes plus
    getPayload (the client assembling the block), ``import`` is newPayload plus the forkchoiceUpdated
    that makes it the head (the client executing and selecting it). ``head_after`` is the head the
    node's JSON-RPC named right after (None when it was not read).

    ``driver_cpu_s`` is the CPU time the driver's own thread spent on the block (attributes, JWTs,
    JSON, the records): waiting for the client's answers costs it none, so ``build_s + import_s``
    against ``driver_cpu_s`` says whose time a slow block is. ``version`` is the Engine API version
    it was built with, ``withdrawals`` how many it carries."""

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
    driver_cpu_s: float = 0.0
    version: int | None = None
    withdrawals: int = 0


# ----------------------------------------------------------------------------------------------
# versions


def _method_version(name: str) -> tuple[str, int] | None:
    """``engine_getPayloadV3`` → ``("getPayload", 3)``; None for a name of another form."""
    if not name.startswith("engine_"):
        return None
    base, sep, digits = name[len("engine_") :].rpartition("V")
    if not sep or not base or not digits.isdigit():
        return None
    return base, int(digits)


def _needed(version: int) -> tuple[str, str, str]:
    forkchoice = min(version, LAST_FORKCHOICE_VERSION)
    return (
        f"engine_forkchoiceUpdatedV{forkchoice}",
        f"engine_getPayloadV{version}",
        f"engine_newPayloadV{version}",
    )


def served_versions(capabilities: Sequence[str]) -> list[int]:
    """The versions (1-4) whose three methods the capabilities list names, lowest first."""
    named = set(capabilities)
    return [version for version in ENGINE_VERSIONS if set(_needed(version)) <= named]


def negotiate_version(capabilities: Sequence[str]) -> int:
    """The highest version for which the node serves getPayload, newPayload and forkchoiceUpdated
    (V3 for version 4); :class:`EngineVersionError` when it serves none."""
    served = served_versions(capabilities)
    if not served:
        listed = sorted(name for name in capabilities if _method_version(name) is not None)
        shown = ", ".join(listed[:8]) + (", ..." if len(listed) > 8 else "") if listed else "nothing"
        raise EngineVersionError(
            "the node serves no Engine API version this client speaks (forkchoiceUpdated, getPayload "
            f"and newPayload of one version, V1-V4); engine_exchangeCapabilities lists {shown}"
        )
    return served[-1]


def check_version(version: int) -> int:
    if isinstance(version, bool) or not isinstance(version, int) or version not in ENGINE_VERSIONS:
        raise ValueError(f"the Engine API version is one of 1, 2, 3, 4, got {version!r}")
    return version


def fork_version(block: Mapping[str, Any]) -> int:
    """The Engine API version a block's header belongs to (from ``eth_getBlockByNumber``):
    ``requestsHash`` → 4 (Prague), ``parentBeaconBlockRoot`` → 3 (Cancun), ``withdrawalsRoot`` → 2
    (Shanghai), else 1 (Paris)."""
    if block.get("requestsHash") is not None:
        return 4
    if block.get("parentBeaconBlockRoot") is not None:
        return 3
    if block.get("withdrawalsRoot") is not None:
        return 2
    return 1


def payload_attributes(
    version: int,
    *,
    timestamp: int,
    prev_randao: str,
    fee_recipient: str,
    withdrawals: Sequence[Mapping[str, Any]] = (),
    parent_beacon_block_root: str = ZERO_HASH,
) -> dict[str, Any]:
    """The payload attributes of ``version``: V1 has no withdrawals (any given is an error), V2
    adds them, V3 and V4 the parent beacon block root too."""
    check_version(version)
    attributes: dict[str, Any] = {
        "timestamp": hex(timestamp),
        "prevRandao": prev_randao,
        "suggestedFeeRecipient": fee_recipient,
    }
    if version == 1:
        if withdrawals:
            raise ValueError("Engine API V1 (Paris) payload attributes carry no withdrawals")
        return attributes
    attributes["withdrawals"] = [dict(item) for item in withdrawals]
    if version >= 3:
        attributes["parentBeaconBlockRoot"] = parent_beacon_block_root
    return attributes


# ----------------------------------------------------------------------------------------------
# the client


def _quantity(value: Any) -> int | None:
    try:
        return int(value, 16) if isinstance(value, str) else None
    except ValueError:
        return None


def _payload_fields(payload: Any) -> dict[str, Any]:
    """What an :class:`EngineCall` says of a payload; tolerant of a malformed one (it is recorded
    even when it is what the call failed on)."""
    if not isinstance(payload, dict):
        return {}
    transactions = payload.get("transactions")
    withdrawals = payload.get("withdrawals")
    return {
        "block_number": _quantity(payload.get("blockNumber")),
        "block_hash": payload.get("blockHash") if isinstance(payload.get("blockHash"), str) else None,
        "parent_hash": payload.get("parentHash") if isinstance(payload.get("parentHash"), str) else None,
        "transactions": len(transactions) if isinstance(transactions, list) else None,
        "gas_used": _quantity(payload.get("gasUsed")),
        "withdrawals": len(withdrawals) if isinstance(withdrawals, list) else None,
    }


class _Record:
    """The fields of one call's record, filled in as the call goes."""

    def __init__(self, **fields: Any) -> None:
        self.fields = fields


class EngineClient:
    """Blocking Engine API calls to ``url`` (the node's authenticated port) in the shape of
    ``version`` (1-4; see the module's table).

    ``observer`` is called with one :class:`EngineCall` per call, answered or not, in the calling
    thread; an observer that raises is logged and never breaks the call. Thread-safe: it keeps no
    connection or counter state between calls.
    """

    def __init__(
        self,
        url: str,
        jwt_secret: bytes,
        *,
        timeout: float = 120.0,
        version: int = 3,
        observer: Callable[[EngineCall], None] | None = None,
    ) -> None:
        if len(jwt_secret) != JWT_SECRET_BYTES:
            raise ValueError(f"an Engine API JWT secret is {JWT_SECRET_BYTES} bytes, got {len(jwt_secret)}")
        self.url = url
        self.timeout = timeout
        self.version = check_version(version)
        self.observer = observer
        self._secret = jwt_secret
        self._observer_failures = 0

    @classmethod
    def connect(
        cls,
        url: str,
        jwt_secret: bytes,
        *,
        version: int | None = None,
        timeout: float = 120.0,
        observer: Callable[[EngineCall], None] | None = None,
    ) -> EngineClient:
        """A client at the version the node serves: ``version`` if given (checked), else the
        highest (:func:`negotiate_version` over ``engine_exchangeCapabilities``).

        Raises :class:`EngineCallError` (no answer, a refused JWT: ``.unauthorized``) or
        :class:`EngineVersionError` (the version is not served; none is).
        """
        if version is not None:
            check_version(version)
        client = cls(url, jwt_secret, timeout=timeout, version=version or 3, observer=observer)
        capabilities = client.exchange_capabilities(
            [name for number in ENGINE_VERSIONS for name in _needed(number)]
        )
        served = served_versions(capabilities)
        if version is None:
            client.version = negotiate_version(capabilities)
        elif version not in served:
            offered = ", ".join(f"V{number}" for number in served) or "none of V1-V4"
            raise EngineVersionError(
                f"{url} does not serve Engine API V{version} ({', '.join(_needed(version))}); "
                f"it serves {offered}"
            )
        return client

    def with_version(self, version: int) -> EngineClient:
        """The same node, secret, timeout and observer, in the shape of another version."""
        return EngineClient(
            self.url, self._secret, timeout=self.timeout, version=version, observer=self.observer
        )

    def __repr__(self) -> str:  # keep the secret out of logs
        return f"<EngineClient {self.url} V{self.version}>"

    # -- transport --------------------------------------------------------------------------------
    def _rpc(self, method: str, params: Sequence[Any]) -> Any:
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
            message = str(error.get("message", "")).splitlines()[0] if error.get("message") else ""
            raise EngineCallError(method, RpcError(code, message, error.get("data")))
        if "result" not in answer:
            raise EngineCallError(method, TransportError("JSON-RPC answer has neither result nor error"))
        return answer["result"]

    @contextmanager
    def _observed(self, method: str, version: int, **fields: Any) -> Iterator[_Record]:
        """Times the call in the block and hands its record to the observer, also when it raises."""
        record = _Record(**fields)
        started_at = time.time()
        started = time.perf_counter()
        try:
            yield record
        except EngineStatusError as exc:
            record.fields.update(
                status=exc.status.status, latest_valid_hash=exc.status.latest_valid_hash, error=str(exc)
            )
            raise
        except BaseException as exc:
            # A status the node gave stays (a VALID build request without a payload id is the node's
            # answer, wrong); only a call without one is ERROR.
            record.fields.setdefault("status", "ERROR")
            record.fields["error"] = str(exc).splitlines()[0] if str(exc) else repr(exc)
            raise
        finally:
            latency = time.perf_counter() - started
            self._notify(method, version, started_at, latency, record.fields)

    def _notify(
        self, method: str, version: int, started_at: float, latency: float, fields: dict[str, Any]
    ) -> None:
        observer = self.observer
        if observer is None:
            return
        try:
            fields.setdefault("status", "OK")
            observer(
                EngineCall(method=method, version=version, started_at=started_at, latency=latency, **fields)
            )
        except Exception:
            # A broken observer must not turn a good call into a failed one (nor a failed one into
            # another error); it is said once, not per call.
            self._observer_failures += 1
            if self._observer_failures == 1:
                logger.exception("engine: the call observer raised; its records are incomplete")

    # -- calls ----------------------------------------------------------------------------------
    def call(self, method: str, *params: Any) -> Any:
        """One authenticated JSON-RPC call; failures become :class:`EngineCallError`. Recorded
        with ``OK`` or ``ERROR`` only: the typed calls below record what the answer says."""
        parsed = _method_version(method)
        name, version = parsed if parsed is not None else (method.removeprefix("engine_"), self.version)
        with self._observed(name, version):
            return self._rpc(method, params)

    def exchange_capabilities(self, methods: Sequence[str] = ()) -> list[str]:
        """The Engine API methods the node serves (``engine_exchangeCapabilities``)."""
        method = "engine_exchangeCapabilities"
        with self._observed("exchangeCapabilities", 1):
            answer = self._rpc(method, [list(methods)])
            if not isinstance(answer, list):
                raise EngineCallError(method, TransportError(f"not a list of methods: {str(answer)[:120]}"))
            return [str(name) for name in answer]

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

        The method is ``forkchoiceUpdatedV{min(version, 3)}``; ``attributes`` go as given (build
        them with :func:`payload_attributes`). With attributes, a ``VALID`` result without a
        ``payloadId`` is an error too.
        """
        version = min(self.version, LAST_FORKCHOICE_VERSION)
        method = f"engine_forkchoiceUpdatedV{version}"
        withdrawals = attributes.get("withdrawals") if attributes is not None else None
        with self._observed(
            "forkchoiceUpdated",
            version,
            block_hash=head,
            with_attributes=attributes is not None,
            withdrawals=len(withdrawals) if isinstance(withdrawals, list) else None,
        ) as record:
            state = {
                "headBlockHash": head,
                "safeBlockHash": safe or head,
                "finalizedBlockHash": finalized or head,
            }
            answer = self._rpc(method, [state, attributes])
            try:
                status = PayloadStatus.from_json(
                    answer.get("payloadStatus") if isinstance(answer, dict) else None
                )
            except ValueError as exc:
                raise EngineCallError(method, TransportError(str(exc))) from None
            payload_id = answer.get("payloadId")
            record.fields.update(
                status=status.status,
                latest_valid_hash=status.latest_valid_hash,
                payload_id=payload_id if isinstance(payload_id, str) else None,
            )
            if status.status not in expect:
                raise EngineStatusError(method, status, expect)
            if attributes is not None and status.status == "VALID" and not payload_id:
                raise EngineCallError(
                    method, TransportError("VALID with payload attributes but no payloadId")
                )
            return ForkchoiceResult(status, payload_id)

    def get_payload(self, payload_id: str) -> dict[str, Any]:
        """The built payload's envelope: ``executionPayload``, ``blockValue``, ``blobsBundle``,
        ``executionRequests`` (V4), ... V1 answers the payload alone: it is returned as
        ``{"executionPayload": payload}``, so every version reads the same."""
        method = f"engine_getPayloadV{self.version}"
        with self._observed("getPayload", self.version, payload_id=payload_id) as record:
            answer = self._rpc(method, [payload_id])
            envelope = {"executionPayload": answer} if self.version == 1 else answer
            if not isinstance(envelope, dict) or not isinstance(envelope.get("executionPayload"), dict):
                raise EngineCallError(method, TransportError(f"no executionPayload in {str(answer)[:120]}"))
            record.fields.update(_payload_fields(envelope["executionPayload"]))
            if self.version >= 4 and not isinstance(envelope.get("executionRequests"), list):
                raise EngineCallError(method, TransportError(f"no executionRequests in {str(answer)[:120]}"))
            return envelope

    def new_payload(
        self,
        payload: dict[str, Any],
        versioned_hashes: Sequence[str] = (),
        parent_beacon_block_root: str = ZERO_HASH,
        execution_requests: Sequence[str] = (),
        *,
        expect: Collection[str] = ("VALID",),
    ) -> PayloadStatus:
        """Hand the node a payload to validate and import: ``[payload]`` for V1 and V2, with the
        blob versioned hashes and the parent beacon block root for V3, and the execution requests
        for V4 (arguments a version does not take are not sent)."""
        method = f"engine_newPayloadV{self.version}"
        params: list[Any] = [payload]
        if self.version >= 3:
            params += [list(versioned_hashes), parent_beacon_block_root]
        if self.version >= 4:
            params.append(list(execution_requests))
        with self._observed("newPayload", self.version, **_payload_fields(payload)) as record:
            answer = self._rpc(method, params)
            try:
                status = PayloadStatus.from_json(answer)
            except ValueError as exc:
                raise EngineCallError(method, TransportError(str(exc))) from None
            record.fields.update(status=status.status, latest_valid_hash=status.latest_valid_hash)
            if status.status not in expect:
                raise EngineStatusError(method, status, expect)
            return status
