"""Faults on a run's timeline: the registry of kinds, and the schedule that applies and undoes them.

The other half of ``fault/``: where :mod:`.faults` and :mod:`.feed_faults` make a target *lie*,
the kinds here are what a *healthy* chain must survive (Toxiproxy's toxics, Jepsen's nemeses),
placed on the run clock by the marker's ``faults=[{"kind": "node.pause", "at": "5s", "duration":
"2s"}]``.

- :data:`FAULT_KINDS` is the registry: a :class:`FaultKind` declares its name, the path it acts on
  (``rpc``: a loopback proxy between the edges and the node; ``feed``: a loopback proxy in front
  of the sequencer feed; ``node``: the node process of a devnet the plugin started; ``engine``: a
  loopback proxy between the devnet's consensus driver and its execution client's Engine API;
  ``network``: the links and nodes of a multi-node devnet, through its ``network_control()``), its
  parameters (declared, parsed by the scenario layer with the other marker arguments) and how it
  begins and ends. :func:`register_fault_kind` adds one (a container backend's pause, a partition
  between the nodes of a network).
- :class:`FaultSchedule` runs a plan's faults in a thread of the hive: each begins and ends at its
  run-clock time; whatever is active is undone by :meth:`FaultSchedule.close`, which the hive calls
  on every exit path, and by an ``atexit`` hook for exits that skip it. Node processes also die
  with the process that started them (``devnet/process.py``), so a killed pytest leaves no node
  stopped.
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal, Protocol

from pytest_gashammer.vocabulary import (
    BLOCK_PRODUCTION,
    ENGINE_HEAD,
    ENGINE_PAYLOAD_IDS,
    ENGINE_PAYLOAD_VALID,
    NETWORK_CONVERGED,
    NODE_MINING_STOP,
    NODE_PAUSE,
    NODE_RESTART,
    NODE_SLOW_BLOCKS,
)

logger = logging.getLogger(__name__)

__all__ = [
    "FAULT_KINDS",
    "MAX_FAULTS",
    "MAX_FAULT_SECONDS",
    "FaultKind",
    "FaultParam",
    "FaultRecord",
    "FaultSchedule",
    "FaultTargets",
    "NetworkOperations",
    "NodeOperations",
    "network_fault_nodes",
    "register_fault_kind",
]

FaultPath = Literal["rpc", "feed", "node", "engine", "network"]
#: ``choice``: one of the parameter's ``choices`` (a word, not a number); ``node``: a node's name
#: (``"node2"``); ``groups``: a list of lists of node names (a partition).
ParamUnit = Literal["ms", "seconds", "fraction", "integer", "bytes_per_sec", "choice", "node", "groups"]
#: The paths whose faults a loopback proxy applies: their kinds need a ``mechanism``.
PROXY_PATHS: tuple[FaultPath, ...] = ("rpc", "feed", "engine")

#: Faults one run may hold, and the total seconds they may be active (summed): chaos stays bounded.
MAX_FAULTS = 32
MAX_FAULT_SECONDS = 600.0
#: How long undoing one fault may take (a node restart included) before the schedule gives up on it.
UNDO_TIMEOUT = 60.0


class NodeOperations(Protocol):
    """What a node fault needs of the devnet's node (``Devnet.node_control()``)."""

    supports: frozenset[str]

    def pause(self) -> None: ...

    def resume(self) -> None: ...

    def restart(self, downtime: float = 0.0) -> None: ...

    def stop_mining(self) -> None: ...

    def set_block_interval(self, seconds: float) -> None: ...

    def restore_mining(self) -> None: ...

    def undo_all(self) -> None: ...


class NetworkOperations(Protocol):
    """What a network fault needs of a multi-node devnet (``Devnet.network_control()``)."""

    def node_names(self) -> list[str]: ...

    def partition(self, *groups: list[str]) -> None: ...

    def heal(self) -> None: ...

    def disconnect(self, a: str, b: str) -> None: ...

    def connect(self, a: str, b: str) -> None: ...

    def stop(self, name: str) -> None: ...

    def start(self, name: str) -> None: ...


@dataclasses.dataclass
class FaultTargets:
    """What the faults of one run act on: the proxies the hive put in front of the devnet, its node."""

    rpc_proxy: Any = None
    feed_proxy: Any = None
    node: NodeOperations | None = None
    #: The Engine API proxy the devnet's consensus driver builds through while the run lasts.
    engine_proxy: Any = None
    #: The links and nodes of a multi-node devnet.
    network: NetworkOperations | None = None


@dataclasses.dataclass(frozen=True)
class FaultParam:
    """One parameter of a fault kind, declared: the scenario layer parses it like a marker argument."""

    name: str
    unit: ParamUnit
    help: str
    #: ``None``: required.
    default: Any = None
    low: float = 0.0
    high: float = float("inf")
    #: For ``unit="choice"``: the words accepted (the default is one of them).
    choices: tuple[str, ...] = ()


#: ``begin(targets, params, mechanism) -> undo``: applies the fault; ``undo()`` ends it.
Begin = Callable[[FaultTargets, Mapping[str, Any], Any], Callable[[], None]]


@dataclasses.dataclass(frozen=True)
class FaultKind:
    """One kind of timeline fault (see the module docstring)."""

    name: str
    path: FaultPath
    help: str
    begin: Begin
    params: tuple[FaultParam, ...] = ()
    #: Whether ``duration`` may be zero (a restart's downtime), and the default when it is not given.
    instant: bool = False
    #: For ``rpc``, ``feed`` and ``engine`` kinds: builds the proxy's fault object (disarmed) from the parameters,
    #: installed when the proxy starts, armed at the begin and disarmed at the end.
    mechanism: Callable[[Mapping[str, Any], int], Any] | None = None
    #: For ``node`` kinds: the node operation the devnet must support (``NodeOperations.supports``).
    node_operation: str | None = None

    def param(self, name: str) -> FaultParam | None:
        return next((param for param in self.params if param.name == name), None)


FAULT_KINDS: dict[str, FaultKind] = {}


def register_fault_kind(kind: FaultKind) -> FaultKind:
    """Add ``kind`` to the registry (a backend's own faults); a name is registered once."""
    if kind.name in FAULT_KINDS and FAULT_KINDS[kind.name] is not kind:
        raise ValueError(f"fault kind {kind.name!r} is already registered")
    if kind.path in PROXY_PATHS and kind.mechanism is None:
        raise ValueError(f"fault kind {kind.name!r} acts through a proxy and needs a mechanism")
    if kind.path == "node" and kind.node_operation is None:
        raise ValueError(f"fault kind {kind.name!r} acts on the node and needs a node_operation")
    FAULT_KINDS[kind.name] = kind
    return kind


# ------------------------------------------------------------------------------------ the kinds


def _proxy_fault(targets: FaultTargets, params: Mapping[str, Any], mechanism: Any) -> Callable[[], None]:
    mechanism.arm()
    return mechanism.disarm


def _node(targets: FaultTargets) -> NodeOperations:
    if targets.node is None:  # the hive checks before the run starts; this is the last guard
        raise RuntimeError("no node control: the devnet was not started by the plugin")
    return targets.node


def _pause(targets: FaultTargets, params: Mapping[str, Any], mechanism: Any) -> Callable[[], None]:
    node = _node(targets)
    node.pause()
    return node.resume


def _restart(targets: FaultTargets, params: Mapping[str, Any], mechanism: Any) -> Callable[[], None]:
    node = _node(targets)
    node.restart(downtime=float(params["_duration"]))
    return lambda: None


def _mining_stop(targets: FaultTargets, params: Mapping[str, Any], mechanism: Any) -> Callable[[], None]:
    node = _node(targets)
    node.stop_mining()
    return node.restore_mining


def _slow_blocks(targets: FaultTargets, params: Mapping[str, Any], mechanism: Any) -> Callable[[], None]:
    node = _node(targets)
    node.set_block_interval(float(params["interval"]))
    return node.restore_mining


def _network(targets: FaultTargets) -> NetworkOperations:
    if targets.network is None:  # the hive checks before the run starts; this is the last guard
        raise RuntimeError("no network control: the devnet has a single node")
    return targets.network


def _partition(targets: FaultTargets, params: Mapping[str, Any], mechanism: Any) -> Callable[[], None]:
    network = _network(targets)
    network.partition(*(list(group) for group in params["groups"]))
    return network.heal


def _disconnect(targets: FaultTargets, params: Mapping[str, Any], mechanism: Any) -> Callable[[], None]:
    network = _network(targets)
    a, b = str(params["a"]), str(params["b"])
    network.disconnect(a, b)
    return lambda: network.connect(a, b)


def _stop(targets: FaultTargets, params: Mapping[str, Any], mechanism: Any) -> Callable[[], None]:
    network = _network(targets)
    name = str(params["name"])
    network.stop(name)
    return lambda: network.start(name)


def network_fault_nodes(kind: str, params: Mapping[str, Any]) -> list[str]:
    """The node names a network fault's parameters mention, in order (checked against the devnet)."""
    names: list[str] = []
    for param in FAULT_KINDS[kind].params:
        value = params.get(param.name)
        if param.unit == "node" and isinstance(value, str):
            names.append(value)
        elif param.unit == "groups" and value is not None:
            names.extend(str(name) for group in value for name in group)
    return names


def _rpc_latency(params: Mapping[str, Any], seed: int) -> Any:
    from pytest_gashammer.fault.rpc_timeline import RpcLatency

    return RpcLatency(ms=params["ms"], jitter_ms=params["jitter_ms"], seed=seed, armed=False)


def _rpc_error(params: Mapping[str, Any], seed: int) -> Any:
    from pytest_gashammer.fault.rpc_timeline import RpcError

    return RpcError(rate=params["rate"], code=int(params["code"]), armed=False)


def _rpc_reset(params: Mapping[str, Any], seed: int) -> Any:
    from pytest_gashammer.fault.rpc_timeline import RpcReset

    return RpcReset(armed=False)


def _rpc_blackhole(params: Mapping[str, Any], seed: int) -> Any:
    from pytest_gashammer.fault.rpc_timeline import RpcBlackhole

    return RpcBlackhole(armed=False)


def _rpc_bandwidth(params: Mapping[str, Any], seed: int) -> Any:
    from pytest_gashammer.fault.rpc_timeline import RpcBandwidth

    return RpcBandwidth(bytes_per_sec=int(params["bytes_per_sec"]), armed=False)


def _engine_syncing(params: Mapping[str, Any], seed: int) -> Any:
    from pytest_gashammer.fault.engine_proxy import EngineSyncing

    return EngineSyncing(rate=params["rate"], armed=False)


def _engine_invalid(params: Mapping[str, Any], seed: int) -> Any:
    from pytest_gashammer.fault.engine_proxy import EngineInvalid

    return EngineInvalid(rate=params["rate"], armed=False)


def _engine_withhold_payload(params: Mapping[str, Any], seed: int) -> Any:
    from pytest_gashammer.fault.engine_proxy import EngineWithholdPayload

    return EngineWithholdPayload(how=str(params["how"]), rate=params["rate"], armed=False)


def _engine_rate() -> FaultParam:
    return FaultParam(
        "rate",
        "fraction",
        "the share of the calls it could act on that it does (a counter: exactly floor(n * rate) of n)",
        default=1.0,
        low=0,
        high=1,
    )


def _feed_disconnect(params: Mapping[str, Any], seed: int) -> Any:
    from pytest_gashammer.fault.feed_timeline import FeedDisconnect

    return FeedDisconnect(armed=False)


def _feed_stall(params: Mapping[str, Any], seed: int) -> Any:
    from pytest_gashammer.fault.feed_timeline import FeedStall

    return FeedStall(armed=False)


def _feed_drop(params: Mapping[str, Any], seed: int) -> Any:
    from pytest_gashammer.fault.feed_timeline import FeedDrop

    return FeedDrop(armed=False)


for _kind in (
    FaultKind(
        "rpc.latency",
        "rpc",
        "every JSON-RPC request from the edges held back `ms` ± `jitter_ms`",
        _proxy_fault,
        params=(
            FaultParam("ms", "ms", "added latency per request, in milliseconds", low=1, high=60_000),
            FaultParam(
                "jitter_ms", "ms", "uniform jitter around it, in milliseconds", default=0, high=60_000
            ),
        ),
        mechanism=_rpc_latency,
    ),
    FaultKind(
        "rpc.error",
        "rpc",
        "that share (`rate`) of the edges' JSON-RPC calls answered with error `code`, never forwarded",
        _proxy_fault,
        params=(
            FaultParam("rate", "fraction", "the share of calls answered with the error", low=0, high=1),
            FaultParam("code", "integer", "the JSON-RPC error code", default=-32603, low=-32768, high=-32000),
        ),
        mechanism=_rpc_error,
    ),
    FaultKind(
        "rpc.reset",
        "rpc",
        "the edges' connections to the node reset: open ones closed, new requests refused with a reset",
        _proxy_fault,
        mechanism=_rpc_reset,
    ),
    FaultKind(
        "rpc.blackhole",
        "rpc",
        "the edges' requests accepted and never answered (the client times out)",
        _proxy_fault,
        mechanism=_rpc_blackhole,
    ),
    FaultKind(
        "rpc.bandwidth",
        "rpc",
        "the JSON-RPC path throttled to `bytes_per_sec`, both directions",
        _proxy_fault,
        params=(FaultParam("bytes_per_sec", "bytes_per_sec", "bytes per second", low=100, high=1e10),),
        mechanism=_rpc_bandwidth,
    ),
    FaultKind(
        "feed.disconnect",
        "feed",
        "feed connections closed and new ones refused; clients reconnect and resume after it",
        _proxy_fault,
        mechanism=_feed_disconnect,
    ),
    FaultKind(
        "feed.stall",
        "feed",
        "feed connections stay open and nothing is sent; what was held arrives after it, late",
        _proxy_fault,
        mechanism=_feed_stall,
    ),
    FaultKind(
        "feed.drop",
        "feed",
        "feed messages lost in transit; the client notices the gap and recovers it on reconnect",
        _proxy_fault,
        mechanism=_feed_drop,
    ),
    FaultKind(
        "engine.syncing",
        "engine",
        "the execution client's Engine API answers engine_newPayloadV* and engine_forkchoiceUpdatedV* "
        "SYNCING (payloadId null) without forwarding them: no block is imported or selected; caught by "
        f"{ENGINE_HEAD} and {ENGINE_PAYLOAD_VALID} (a stall longer than max_block_gap also by "
        f"{BLOCK_PRODUCTION})",
        _proxy_fault,
        params=(_engine_rate(),),
        mechanism=_engine_syncing,
    ),
    FaultKind(
        "engine.invalid",
        "engine",
        "the execution client's Engine API answers engine_newPayloadV* INVALID (latestValidHash: the "
        "parent; a validationError saying the proxy made it up) without forwarding it, although the "
        f"client built the block itself; caught by {ENGINE_PAYLOAD_VALID}",
        _proxy_fault,
        params=(_engine_rate(),),
        mechanism=_engine_invalid,
    ),
    FaultKind(
        "engine.withhold_payload",
        "engine",
        "a build is asked for and its payload never handed over: engine_forkchoiceUpdatedV* with payload "
        "attributes forwarded and its payloadId answered null (`how='null'`), or engine_getPayloadV* "
        f"answered -38001 Unknown payload (`how='unknown'`); caught by {ENGINE_PAYLOAD_IDS}",
        _proxy_fault,
        params=(
            FaultParam(
                "how",
                "choice",
                "'null': the payloadId withheld; 'unknown': getPayload answered -38001 Unknown payload",
                default="null",
                choices=("null", "unknown"),
            ),
            _engine_rate(),
        ),
        mechanism=_engine_withhold_payload,
    ),
    FaultKind(
        "node.pause",
        "node",
        "the node process stopped (SIGSTOP), then continued (SIGCONT)",
        _pause,
        node_operation=NODE_PAUSE,
    ),
    FaultKind(
        "node.restart",
        "node",
        "the node killed and started again on the same ports with its chain state kept; "
        "`duration` is how long it stays down (default 0 s)",
        _restart,
        instant=True,
        node_operation=NODE_RESTART,
    ),
    FaultKind(
        "node.mining_stop",
        "node",
        "block production stopped, then restored",
        _mining_stop,
        node_operation=NODE_MINING_STOP,
    ),
    FaultKind(
        "node.slow_blocks",
        "node",
        "blocks every `interval` instead of the devnet's block time, then restored",
        _slow_blocks,
        params=(FaultParam("interval", "seconds", "the slower block interval", low=0.001, high=60),),
        node_operation=NODE_SLOW_BLOCKS,
    ),
    FaultKind(
        "net.partition",
        "network",
        "the network split into `groups` (lists of node names; a node in none is a group of its own): "
        "every link between groups cut, devp2p and the builder's payloads alike, then healed; caught by "
        f"{NETWORK_CONVERGED} if the nodes cut off do not catch up after it",
        _partition,
        params=(
            FaultParam(
                "groups", "groups", "the sides of the split, e.g. [['node0', 'node1', 'node2'], ['node3']]"
            ),
        ),
    ),
    FaultKind(
        "net.disconnect",
        "network",
        "the link between nodes `a` and `b` cut, then connected again",
        _disconnect,
        params=(
            FaultParam("a", "node", "one end of the link, e.g. 'node0'"),
            FaultParam("b", "node", "the other end, e.g. 'node3'"),
        ),
    ),
    FaultKind(
        "node.stop",
        "network",
        "one node of a network (`name`) stopped, its chain data kept, then started again on its ports",
        _stop,
        params=(FaultParam("name", "node", "the node to stop, e.g. 'node3'"),),
    ),
):
    register_fault_kind(_kind)


# ----------------------------------------------------------------------------------- the schedule


@dataclasses.dataclass
class FaultRecord:
    """One fault as the schedule applied it: planned and actual times, what it did, what went wrong."""

    index: int
    kind: str
    params: dict[str, Any]
    start: float
    end: float
    started_at: float | None = None
    ended_at: float | None = None
    started_unix_ns: int | None = None
    ended_unix_ns: int | None = None
    effect: dict[str, Any] = dataclasses.field(default_factory=dict)
    error: str | None = None


def effect_of(mechanism: Any) -> dict[str, Any]:
    """What a proxy fault reports it did: its counters and its one-line summary."""
    if mechanism is None:
        return {}
    effect: dict[str, Any] = {}
    with contextlib.suppress(Exception):
        effect.update(mechanism.stats)
        effect["summary"] = mechanism.summary()
    return effect


_open_schedules: set[FaultSchedule] = set()
_open_lock = threading.Lock()


class FaultSchedule:
    """The faults of one run (the plan's ``faults``), begun and undone on the run clock.

    ``steps`` are the plan's plain-data faults (``index``, ``kind``, ``start``, ``end``,
    ``params``); ``mechanisms`` the proxy fault objects the hive installed, by index. Call
    :meth:`start` at the run's t=0 and :meth:`close` at its end, whatever the end.
    """

    def __init__(
        self,
        steps: Sequence[Mapping[str, Any]],
        targets: FaultTargets,
        mechanisms: Mapping[int, Any] | None = None,
    ) -> None:
        self.targets = targets
        self.mechanisms = dict(mechanisms or {})
        self.records = [
            FaultRecord(
                index=int(step["index"]),
                kind=str(step["kind"]),
                params=dict(step["params"]),
                start=float(step["start"]),
                end=float(step["end"]),
            )
            for step in steps
        ]
        self._undo: dict[int, Callable[[], None]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._origin = 0.0
        self._origin_unix_ns = 0
        self._closed = False

    def start(self, origin_monotonic: float | None = None, origin_unix_ns: int | None = None) -> None:
        """Begin the run clock now (or at the given origin) and apply each fault on time."""
        self._origin = time.monotonic() if origin_monotonic is None else origin_monotonic
        self._origin_unix_ns = time.time_ns() if origin_unix_ns is None else origin_unix_ns
        with _open_lock:
            _open_schedules.add(self)
        self._thread = threading.Thread(target=self._run, name="gashammer-faults", daemon=True)
        self._thread.start()

    def now(self) -> float:
        return time.monotonic() - self._origin

    def _wall_ns(self, clock: float) -> int:
        return self._origin_unix_ns + round(clock * 1e9)

    def _run(self) -> None:
        events = sorted(
            [(record.start, 1, record) for record in self.records]
            + [(record.end, 0, record) for record in self.records],
            key=lambda event: (event[0], event[1], event[2].index),
        )
        for at, is_begin, record in events:
            if self._stop.wait(max(0.0, at - self.now())):
                return
            if is_begin:
                self._begin(record)
            else:
                self._end(record)

    def _begin(self, record: FaultRecord) -> None:
        kind = FAULT_KINDS[record.kind]
        params = {**record.params, "_duration": record.end - record.start}
        clock = self.now()
        with self._lock:
            if self._closed:
                return
            record.started_at, record.started_unix_ns = clock, self._wall_ns(clock)
            try:
                self._undo[record.index] = kind.begin(self.targets, params, self.mechanisms.get(record.index))
            except Exception as exc:  # a fault that cannot be applied is reported, never raised in the hive
                record.error = f"{record.kind} could not begin: {type(exc).__name__}: {exc}"
                logger.warning("fault %s #%d: %s", record.kind, record.index, record.error)
        if kind.instant:
            # An instant fault (a restart) is over once begin returned: the node is back.
            self._end(record)

    def _end(self, record: FaultRecord) -> None:
        with self._lock:
            undo = self._undo.pop(record.index, None)
            if undo is None and record.ended_at is not None:
                return
            if record.started_at is None:
                return
            try:
                if undo is not None:
                    undo()
            except Exception as exc:
                record.error = f"{record.kind} could not be undone: {type(exc).__name__}: {exc}"
                logger.warning("fault %s #%d: %s", record.kind, record.index, record.error)
            if record.ended_at is None:
                clock = self.now()
                record.ended_at, record.ended_unix_ns = clock, self._wall_ns(clock)
            record.effect = effect_of(self.mechanisms.get(record.index))

    def close(self) -> list[FaultRecord]:
        """Stop the schedule and undo every fault still active; the records, in the marker's order.

        Safe from any thread and more than once; bounded by :data:`UNDO_TIMEOUT` per fault.
        """
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(UNDO_TIMEOUT)
        for record in self.records:
            if record.index in self._undo:
                self._end(record)
        with self._lock:
            self._closed = True
            # Read once the run is over: what a disarm set going on the proxy's loop (held feed
            # frames delivered late, held requests dropped) has happened by now.
            for record in self.records:
                if record.started_at is not None:
                    record.effect = effect_of(self.mechanisms.get(record.index))
        node = self.targets.node
        if node is not None:
            try:
                node.undo_all()
            except Exception as exc:
                logger.warning("faults: the node could not be brought back to health: %s", exc)
        with _open_lock:
            _open_schedules.discard(self)
        return list(self.records)


@atexit.register
def _undo_open_schedules() -> None:
    with _open_lock:
        schedules = list(_open_schedules)
    for schedule in schedules:
        with contextlib.suppress(Exception):
            schedule.close()
