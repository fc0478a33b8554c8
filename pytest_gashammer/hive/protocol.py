"""What travels between the hive and its edges: named messages of plain data, in frames well under a megabyte.

A message is ``(name, fields)``: a name declared below and a dict of numbers, strings, bytes, lists
and dicts, the types an execnet channel carries on every gateway type. Each side handles a message
in a method ``on_<name>(**fields)`` (:func:`dispatch`); a name the side does not handle, or fields
that do not match the declaration, raise :class:`ProtocolError`.

Large reports are split: every ``bytes`` value over :data:`CHUNK_BYTES` is replaced by a reference
and sent as separate ``blob`` chunks, so no frame blocks the channel (which xdist's own events
share) for long.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterator, Mapping
from typing import Any

from pytest_gashammer.errors import GashammerError
from pytest_gashammer.results import RunResult
from pytest_gashammer.telemetry.digest import RunDigest
from pytest_gashammer.telemetry.records import BlockRecord, EdgeReport

CHUNK_BYTES = 512 * 1024

# hive -> edge
ARM = "arm"
GO = "go"
STOP = "stop"
SHUTDOWN = "shutdown"
DEVNET = "devnet"
RUN_RESULT = "run_result"

# edge -> hive
HELLO = "hello"
HEARTBEAT = "heartbeat"
ARMED = "armed"
STARTED = "started"
FAILED = "failed"
BLOB = "blob"
REPORT = "report"
TELEMETRY = "telemetry"
RUN_REQUEST = "run_request"
DEVNET_REQUEST = "devnet_request"

#: What the hive sends an edge, and the fields of each message.
HIVE_TO_EDGE: Mapping[str, tuple[str, ...]] = {
    ARM: ("run_id", "assignment"),  # an EdgeAssignment as a dict
    GO: ("run_id", "origin_ns"),  # the run's t=0 on the hive's wall clock
    STOP: ("run_id", "reason", "kind"),  # kind: a telemetry.records.StopKind
    SHUTDOWN: (),
    DEVNET: ("request_id", "endpoints", "error"),  # endpoints dict or None, error text or None
    RUN_RESULT: ("request_id", "result", "error"),  # a RunResult as a dict or None, error text or None
}

#: What an edge (and the worker's tests) send the hive, and the fields of each message.
EDGE_TO_HIVE: Mapping[str, tuple[str, ...]] = {
    HELLO: ("info",),  # edge_id, host, pid, cores, signing_tx_per_sec, version
    HEARTBEAT: ("progress",),  # the edge's Progress as a dict, empty between runs
    ARMED: ("run_id",),
    STARTED: ("run_id", "wall_ns"),
    FAILED: ("run_id", "message"),
    BLOB: ("run_id", "blob_id", "index", "count", "data"),  # one chunk of a large report value
    REPORT: ("run_id", "report"),  # the EdgeReport as a dict, large values replaced by blob references
    TELEMETRY: ("run_id", "table", "frame"),  # an Arrow IPC frame of one telemetry table
    # a ScenarioPlan as a dict; options: {"longest_run": seconds or None}, as in DEVNET_REQUEST
    RUN_REQUEST: ("request_id", "plan", "options"),
    # longest_run: the longest planned run (s) the worker collected, or None; it decides the history
    # the devnet keeps, and the worker's request may be what starts the devnet
    DEVNET_REQUEST: ("request_id", "longest_run"),
}

Message = tuple[str, dict[str, Any]]

_BLOB_KEY = "__gashammer_blob__"


class ProtocolError(GashammerError):
    """A message that is not what the protocol declares: an unknown name or the wrong fields."""


def message(name: str, **fields: Any) -> Message:
    """A message ready for ``channel.send``, checked against its declaration."""
    _check(name, fields, {**HIVE_TO_EDGE, **EDGE_TO_HIVE})
    return (name, fields)


def decode(raw: Any, accepted: Mapping[str, tuple[str, ...]]) -> Message:
    """``raw`` as received, checked to be one of the ``accepted`` messages."""
    if not (isinstance(raw, tuple | list) and len(raw) == 2 and isinstance(raw[1], dict)):
        raise ProtocolError(f"not a (name, fields) message: {short(raw)}")
    name, fields = raw
    _check(name, fields, accepted)
    return (name, fields)


def dispatch(handler: object, message: Message, *args: Any) -> None:
    """Call ``handler.on_<name>(*args, **fields)`` for the message."""
    name, fields = message
    method = getattr(handler, f"on_{name}", None)
    if method is None:
        raise ProtocolError(f"{type(handler).__name__} has no handler for message {name!r}")
    method(*args, **fields)


def trace(logger: logging.Logger, verb: str, edge_id: str, message: Message) -> None:
    """One DEBUG line per message: what, which run or request, which edge."""
    if not logger.isEnabledFor(logging.DEBUG):
        return
    name, fields = message
    detail = ""
    if "run_id" in fields:
        detail = f" run={fields['run_id']}"
    elif "request_id" in fields:
        detail = f" request={fields['request_id']}"
    if name == BLOB:
        detail += f" blob={fields['blob_id']} chunk={fields['index'] + 1}/{fields['count']}"
    elif name == STOP:
        detail += f" kind={fields['kind']} reason={fields['reason']!r}"
    elif fields.get("error"):
        detail += f" error={fields['error']!r}"
    logger.debug("%s %s edge=%s%s", verb, name, edge_id, detail, stacklevel=2)


def _check(name: Any, fields: Mapping[str, Any], accepted: Mapping[str, tuple[str, ...]]) -> None:
    declared = accepted.get(name) if isinstance(name, str) else None
    if declared is None:
        raise ProtocolError(f"unknown message {short(name)}; expected one of {', '.join(accepted)}")
    if set(fields) != set(declared):
        raise ProtocolError(
            f"message {name!r} carries fields {sorted(fields)}, the protocol declares {sorted(declared)}"
        )


def short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def report_to_dict(report: EdgeReport) -> dict[str, Any]:
    data = {field.name: getattr(report, field.name) for field in dataclasses.fields(report)}
    data["digest"] = report.digest.to_data()
    data["blocks"] = [dataclasses.asdict(block) for block in report.blocks]
    return data


def report_from_dict(data: dict[str, Any]) -> EdgeReport:
    fields = dict(data)
    fields["digest"] = RunDigest.from_data(fields["digest"])
    fields["blocks"] = [BlockRecord(**block) for block in fields["blocks"]]
    fields["feed_events"] = [tuple(event) for event in fields.get("feed_events") or []]
    return EdgeReport(**fields)


def split_blobs(value: Any, blobs: list[bytes]) -> Any:
    """``value`` with every large ``bytes`` moved into ``blobs`` and replaced by a reference."""
    if isinstance(value, bytes | bytearray) and len(value) > CHUNK_BYTES:
        blobs.append(bytes(value))
        return {_BLOB_KEY: len(blobs) - 1}
    if isinstance(value, dict):
        return {key: split_blobs(item, blobs) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [split_blobs(item, blobs) for item in value]
    return value


def join_blobs(value: Any, blobs: dict[int, bytes]) -> Any:
    if isinstance(value, dict):
        if set(value) == {_BLOB_KEY}:
            return blobs[value[_BLOB_KEY]]
        return {key: join_blobs(item, blobs) for key, item in value.items()}
    if isinstance(value, list):
        return [join_blobs(item, blobs) for item in value]
    return value


def report_frames(run_id: str, report: EdgeReport) -> Iterator[Message]:
    """The frames that carry ``report``: blob chunks first, then the report itself."""
    blobs: list[bytes] = []
    skeleton = split_blobs(report_to_dict(report), blobs)
    for blob_id, blob in enumerate(blobs):
        count = (len(blob) + CHUNK_BYTES - 1) // CHUNK_BYTES
        for index in range(count):
            chunk = blob[index * CHUNK_BYTES : (index + 1) * CHUNK_BYTES]
            yield message(BLOB, run_id=run_id, blob_id=blob_id, index=index, count=count, data=chunk)
    yield message(REPORT, run_id=run_id, report=skeleton)


class ReportAssembler:
    """Collects one edge's frames for one run and rebuilds the report."""

    def __init__(self) -> None:
        self._chunks: dict[int, dict[int, bytes]] = {}
        self._counts: dict[int, int] = {}

    def add_chunk(self, blob_id: int, index: int, count: int, data: bytes) -> None:
        self._chunks.setdefault(blob_id, {})[index] = data
        self._counts[blob_id] = count

    def finish(self, skeleton: dict[str, Any]) -> EdgeReport:
        blobs = {}
        for blob_id, count in self._counts.items():
            parts = self._chunks[blob_id]
            if len(parts) != count:
                raise ValueError(f"report blob {blob_id}: {len(parts)} of {count} chunks arrived")
            blobs[blob_id] = b"".join(parts[index] for index in range(count))
        return report_from_dict(join_blobs(skeleton, blobs))


def result_to_dict(result: RunResult) -> dict[str, Any]:
    return result.to_dict()


def result_from_dict(data: dict[str, Any]) -> RunResult:
    return RunResult.from_dict(data)
