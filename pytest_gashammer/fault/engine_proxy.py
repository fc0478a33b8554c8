"""A loopback proxy in front of an execution client's Engine API, and the faults it applies.

Why it exists: the consensus side of a devnet (the plugin's :class:`~pytest_gashammer.devnet.consensus.ConsensusDriver`)
trusts what the execution client answers on its authenticated port. To show that the engine
invariants catch an execution client that stops cooperating, a test needs a client that answers
``SYNCING`` when it should import, calls a valid block ``INVALID``, or builds a payload and never
hands it over, on demand and for a while. Real clients do none of that on request, so
:class:`EngineProxy` sits between the driver and the client and lets these faults answer for it:

- :class:`EngineSyncing` answers ``engine_newPayloadV*`` and ``engine_forkchoiceUpdatedV*`` with a
  ``SYNCING`` status without forwarding them (the client never sees them);
- :class:`EngineInvalid` answers ``engine_newPayloadV*`` with ``INVALID`` (``latestValidHash``: the
  payload's parent) without forwarding it;
- :class:`EngineWithholdPayload` forwards a build request (``engine_forkchoiceUpdatedV*`` with payload
  attributes) and blanks the ``payloadId`` of its answer (``how="null"``), or answers
  ``engine_getPayloadV*`` with the JSON-RPC error -38001 "Unknown payload" (``how="unknown"``).

The proxy is an :class:`~pytest_gashammer.fault.rpc_proxy.RpcProxy`: the Engine API is JSON-RPC over
HTTP, so calls, batches, id rewriting and failures behave exactly as there. The client's
``Authorization`` header (its JWT) is forwarded untouched: the proxy holds no secret, and a token
the node refuses is refused through the proxy too (HTTP 401 passed through). Each fault is a
timeline fault (:mod:`.switched`): armed and disarmed from any thread, it acts only while armed and
counts what it did; ``rate`` limits it to that share of the calls it could act on, chosen by a
counter as :class:`~pytest_gashammer.fault.rpc_timeline.RpcError` chooses, so a run is repeatable.

Methods are matched by name with any version (``V1`` to ``V4``), so the faults follow whatever
version the driver speaks.
"""

from __future__ import annotations

import copy
import math
import re
from collections.abc import Sequence
from typing import Any, ClassVar, Literal

from pytest_gashammer.chain.engine import EngineClient
from pytest_gashammer.fault.faults import RpcCall, RpcFault
from pytest_gashammer.fault.rpc_proxy import RpcProxy
from pytest_gashammer.fault.rpc_timeline import RpcTimelineFault
from pytest_gashammer.vocabulary import (
    ENGINE_HEAD,
    ENGINE_PAYLOAD_IDS,
    ENGINE_PAYLOAD_VALID,
)

__all__ = [
    "UNKNOWN_PAYLOAD",
    "WITHHOLD_HOW",
    "EngineFault",
    "EngineInvalid",
    "EngineProxy",
    "EngineSyncing",
    "EngineWithholdPayload",
    "client_through",
    "engine_method",
]

#: The Engine API's error code for a payload id the client does not know (execution-apis, engine/common).
UNKNOWN_PAYLOAD = -38001
#: How long the proxy waits for the client: building or importing a full block on a slow client
#: (EthereumJS: about a minute for 500 transactions) must not look like a dead upstream.
DEFAULT_TIMEOUT = 120.0

_ENGINE_METHOD = re.compile(r"^engine_([A-Za-z]+)V(\d+)$")


def engine_method(method: str) -> tuple[str, int] | None:
    """``("newPayload", 3)`` for ``engine_newPayloadV3``; ``None`` for anything not versioned Engine API."""
    match = _ENGINE_METHOD.match(method)
    return (match.group(1), int(match.group(2))) if match else None


def client_through(engine: EngineClient, url: str) -> EngineClient:
    """A copy of ``engine`` that calls ``url`` instead: the same JWT secret, version and timeout.

    A copy rather than a new client so that whatever else the client carries (its version, an
    observer of its calls) goes through the proxy with it.
    """
    clone = copy.copy(engine)
    clone.url = url
    return clone


class EngineProxy(RpcProxy):
    """Forwards Engine API JSON-RPC to ``upstream_url`` (the node's authenticated port), applying ``faults``.

    ``EngineProxy(devnet.engine_url, faults=[EngineSyncing(armed=False)]).start()`` listens on a free
    port of 127.0.0.1 (:attr:`url`); give the consensus side ``client_through(engine, proxy.url)``.
    Any :class:`~pytest_gashammer.fault.faults.RpcFault` applies (latency on the engine path too);
    ``timeout`` defaults to 120 s, the engine client's own.
    """

    kind = "engine proxy"

    def __init__(
        self,
        upstream_url: str,
        *,
        faults: Sequence[RpcFault] = (),
        port: int = 0,
        timeout: float = DEFAULT_TIMEOUT,
        startup_timeout: float = 10.0,
    ) -> None:
        super().__init__(
            upstream_url, faults=faults, port=port, timeout=timeout, startup_timeout=startup_timeout
        )


# ------------------------------------------------------------------------------------- the faults


def _status(status: str, latest_valid_hash: str | None, validation_error: str | None) -> dict[str, Any]:
    return {"status": status, "latestValidHash": latest_valid_hash, "validationError": validation_error}


def _field(params: list[Any], index: int, name: str) -> Any:
    """``params[index][name]`` when the call has it, else ``None`` (a malformed call is not ours to judge)."""
    if len(params) > index and isinstance(params[index], dict):
        return params[index].get(name)
    return None


def _has_attributes(call: RpcCall) -> bool:
    """A forkchoiceUpdated that asks for a build: its second parameter is payload attributes."""
    return len(call.params) > 1 and isinstance(call.params[1], dict)


class EngineFault(RpcTimelineFault):
    """Base of the Engine API faults: acts on ``rate`` of the calls it could act on, counted per method.

    The choice is a counter, not a coin: of the first n candidate calls seen while armed, exactly
    ``floor(n * rate)`` are taken (``rate=0.5``: the 2nd, 4th, ...). :attr:`stats` counts ``calls``
    (every call the fault answered or rewrote) and each method by name (``forkchoiceUpdated``,
    ``newPayload``, ``getPayload``); :attr:`affected` lists the block hashes or payload ids touched,
    once each.
    """

    touch_key = "calls"
    #: The methods (names without prefix and version) whose calls are candidates.
    default_methods: ClassVar[frozenset[str]] = frozenset()

    def __init__(
        self, *, rate: float = 1.0, methods: frozenset[str] | None = None, armed: bool = True
    ) -> None:
        if isinstance(rate, bool) or not isinstance(rate, int | float) or not 0 < rate <= 1:
            raise ValueError(f"{type(self).__name__}: rate={rate!r} must be a share in (0, 1], e.g. rate=0.5")
        self.rate = float(rate)
        self.methods = self.default_methods if methods is None else methods
        self._seen = 0
        super().__init__(armed=armed)

    def _candidate(self, call: RpcCall) -> tuple[str, int] | None:
        """The call's (method, version) if this fault may act on it now (armed, one of its methods)."""
        if not self._armed or call.is_notification:
            return None
        parsed = engine_method(call.method)
        if parsed is None or parsed[0] not in self.methods:
            return None
        return parsed

    def _take(self) -> bool:
        with self._lock:
            self._seen += 1
            return math.floor(self._seen * self.rate) > math.floor((self._seen - 1) * self.rate)

    def _acted(self, method: str, key: Any, **detail: Any) -> None:
        self._count("calls")
        self._count(method)
        if key is not None:
            self._record(key, method=method, **detail)

    def _per_method(self) -> str:
        stats = self.stats
        parts = [f"{int(stats[name])} {name}" for name in sorted(self.methods) if stats.get(name)]
        return ", ".join(parts) or "none"

    def _share(self) -> str:
        return "" if self.rate == 1 else f" (rate {self.rate:g})"


class EngineSyncing(EngineFault):
    """Answers ``engine_newPayloadV*`` and ``engine_forkchoiceUpdatedV*`` with ``SYNCING``, unforwarded.

    newPayload gets ``{"status": "SYNCING", "latestValidHash": null, "validationError": null}``;
    forkchoiceUpdated gets that as its ``payloadStatus`` with ``payloadId: null``: the client never
    hears of the block or of the head, as a client still syncing would not act on them.
    :attr:`affected`: the block hashes (newPayload) and heads (forkchoiceUpdated) answered so.
    """

    kind = "engine.syncing"
    default_methods = frozenset({"newPayload", "forkchoiceUpdated"})
    breaks = "an execution client at the head imports and selects the blocks it is given"
    caught_by = (ENGINE_HEAD, ENGINE_PAYLOAD_VALID)

    def on_request(self, call: RpcCall) -> None:
        parsed = self._candidate(call)
        if parsed is None or not self._take():
            return
        method, version = parsed
        syncing = _status("SYNCING", None, None)
        if method == "newPayload":
            call.reply(syncing, by=self.kind)
            self._acted(method, _field(call.params, 0, "blockHash"), version=version)
        else:
            call.reply({"payloadStatus": syncing, "payloadId": None}, by=self.kind)
            self._acted(
                method,
                _field(call.params, 0, "headBlockHash"),
                version=version,
                with_attributes=_has_attributes(call),
            )

    def summary(self) -> str:
        return (
            f"{self.kind} answered {self.touched} calls SYNCING{self._share()} ({self._per_method()}), "
            "none forwarded"
        )


class EngineInvalid(EngineFault):
    """Answers ``engine_newPayloadV*`` with ``INVALID`` without asking the client, whatever the payload.

    ``latestValidHash`` is the payload's ``parentHash`` (the answer a client gives for a bad block on
    a good parent) and ``validationError`` says the proxy made the verdict up. The client never sees
    the payload, so its head stays where it was. :attr:`affected`: the block hashes refused.
    """

    kind = "engine.invalid"
    default_methods = frozenset({"newPayload"})
    breaks = "a block the execution client built itself is VALID when imported"
    caught_by = (ENGINE_PAYLOAD_VALID,)

    def on_request(self, call: RpcCall) -> None:
        parsed = self._candidate(call)
        if parsed is None:
            return
        parent = _field(call.params, 0, "parentHash")
        block = _field(call.params, 0, "blockHash")
        if not isinstance(parent, str) or not self._take():
            return  # not a payload: nothing a made-up verdict could be about
        message = (
            f"made up by the gashammer {self.kind} fault: the proxy answered INVALID for block {block} "
            "without asking the execution client"
        )
        call.reply(_status("INVALID", parent, message), by=self.kind)
        self._acted(parsed[0], block, version=parsed[1], parent_hash=parent)

    def summary(self) -> str:
        return f"{self.kind} answered {self.touched} newPayload calls INVALID{self._share()}, none forwarded"


WithholdHow = Literal["null", "unknown"]
WITHHOLD_HOW: tuple[WithholdHow, ...] = ("null", "unknown")


class EngineWithholdPayload(EngineFault):
    """A build is asked for and the payload never handed over.

    ``how="null"``: ``engine_forkchoiceUpdatedV*`` with payload attributes is forwarded (the client
    starts building) and the ``payloadId`` of its answer is replaced by ``null``; :attr:`affected`
    holds the ids withheld. ``how="unknown"``: ``engine_getPayloadV*`` is answered with the JSON-RPC
    error -38001 "Unknown payload" without forwarding it; :attr:`affected` holds the ids refused.
    """

    kind = "engine.withhold_payload"
    breaks = "every payload the execution client is asked to build is given an id and served"
    caught_by = (ENGINE_PAYLOAD_IDS,)

    def __init__(self, how: str = "null", *, rate: float = 1.0, armed: bool = True) -> None:
        if how not in WITHHOLD_HOW:
            raise ValueError(
                f"EngineWithholdPayload: how={how!r} must be 'null' (payloadId withheld) or 'unknown' "
                "(getPayload answered -38001)"
            )
        self.how = how
        method = "forkchoiceUpdated" if how == "null" else "getPayload"
        super().__init__(rate=rate, methods=frozenset({method}), armed=armed)

    def on_request(self, call: RpcCall) -> None:
        if self.how != "unknown":
            return
        parsed = self._candidate(call)
        if parsed is None or not self._take():
            return
        call.reply_error(UNKNOWN_PAYLOAD, "Unknown payload", by=self.kind)
        payload_id = call.params[0] if call.params else None
        self._acted(parsed[0], payload_id if isinstance(payload_id, str) else None, version=parsed[1])

    def on_answer(self, call: RpcCall) -> None:
        if self.how != "null" or not _has_attributes(call):
            return
        parsed = self._candidate(call)
        result = call.result
        if parsed is None or call.answer is None or not isinstance(result, dict):
            return
        payload_id = result.get("payloadId")
        if not payload_id or not self._take():
            return  # no id given (the client was syncing, or refused): nothing to withhold
        call.answer = {**call.answer, "result": {**result, "payloadId": None}}
        self._acted(parsed[0], payload_id, version=parsed[1])

    def summary(self) -> str:
        if self.how == "unknown":
            return (
                f"{self.kind} answered {self.touched} getPayload calls {UNKNOWN_PAYLOAD} Unknown payload"
                f"{self._share()}, none forwarded"
            )
        return (
            f"{self.kind} withheld {self.touched} payload ids{self._share()} (forkchoiceUpdated with "
            "payload attributes forwarded, its payloadId answered null)"
        )
