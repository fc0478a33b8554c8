"""What travels between the hive and its edges: plain data only, in frames well under a megabyte.

Messages are tuples ``(kind, *fields)`` of numbers, strings, bytes, lists and dicts, the types an
execnet channel carries on every gateway type. Large reports are split: every ``bytes`` value over
:data:`CHUNK_BYTES` is replaced by a reference and sent as separate chunks, so no frame blocks the
channel (which xdist's own events share) for long.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

from pytest_gashammer.results import RunResult
from pytest_gashammer.telemetry.records import BlockRecord, EdgeReport, TxLog

CHUNK_BYTES = 512 * 1024

# hive -> edge
ARM = "arm"  # (ARM, run_id, assignment_dict)
GO = "go"  # (GO, run_id, run_origin_unix_ns)
STOP = "stop"  # (STOP, run_id, reason)
SHUTDOWN = "shutdown"  # (SHUTDOWN,)
DEVNET = "devnet"  # (DEVNET, request_id, endpoints_dict | None, error | None)
RUN_RESULT = "run_result"  # (RUN_RESULT, request_id, result_dict | None, error | None)

# edge -> hive
HELLO = "hello"  # (HELLO, info_dict)
HEARTBEAT = "heartbeat"  # (HEARTBEAT, progress_dict)
ARMED = "armed"  # (ARMED, run_id)
STARTED = "started"  # (STARTED, run_id, wall_ns)
FAILED = "failed"  # (FAILED, run_id, message)
BLOB = "blob"  # (BLOB, run_id, blob_id, index, count, data)
REPORT = "report"  # (REPORT, run_id, report_dict_with_blob_refs)
TELEMETRY = "telemetry"  # (TELEMETRY, run_id, table, arrow_ipc_frame)
RUN_REQUEST = "run_request"  # (RUN_REQUEST, request_id, plan_dict, options_dict)
DEVNET_REQUEST = "devnet_request"  # (DEVNET_REQUEST, request_id)

_BLOB_KEY = "__gashammer_blob__"


def report_to_dict(report: EdgeReport) -> dict[str, Any]:
    data = {field.name: getattr(report, field.name) for field in dataclasses.fields(report)}
    data["txs"] = report.txs.to_columns()
    data["blocks"] = [dataclasses.asdict(block) for block in report.blocks]
    return data


def report_from_dict(data: dict[str, Any]) -> EdgeReport:
    fields = dict(data)
    fields["txs"] = TxLog.from_columns(fields["txs"])
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


def report_frames(run_id: str, report: EdgeReport) -> Iterator[tuple[Any, ...]]:
    """The frames that carry ``report``: blob chunks first, then the report itself."""
    blobs: list[bytes] = []
    skeleton = split_blobs(report_to_dict(report), blobs)
    for blob_id, blob in enumerate(blobs):
        count = (len(blob) + CHUNK_BYTES - 1) // CHUNK_BYTES
        for index in range(count):
            yield (BLOB, run_id, blob_id, index, count, blob[index * CHUNK_BYTES : (index + 1) * CHUNK_BYTES])
    yield (REPORT, run_id, skeleton)


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
