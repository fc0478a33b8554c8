"""Telemetry on disk: a session-level Parquet writer that survives being cut short, and the reader.

Layout of a telemetry directory (every table is a directory of Parquet files, partitioned by run)::

    <dir>/runs/run=<run_id>/runs.parquet            one row per run (rewritten atomically as it progresses)
    <dir>/verdicts/run=<run_id>/verdicts.parquet    one row per verdict
    <dir>/edges/run=<run_id>/edges.parquet          one row per edge
    <dir>/faults/run=<run_id>/faults.parquet        one row per fault of the run's timeline (runs with faults)
    <dir>/batches/run=<run_id>/batches.parquet      one row per sequencer batch seen on the L1 (runs with an L1)
    <dir>/assertions/run=<run_id>/assertions.parquet  one row per assertion seen on the rollup (runs with an L1)
    <dir>/transactions/run=<run_id>/part-00000.parquet, part-00001.parquet, ...
    <dir>/blocks/run=<run_id>/part-*.parquet
    <dir>/events/run=<run_id>/part-*.parquet

DuckDB reads it as ``read_parquet('<dir>/transactions/*/*.parquet')``, pandas and pyarrow as a
dataset directory.

Why parts: a Parquet file is readable only once its footer is written, which happens when the
writer closes it. The writer therefore buffers at most ``row_group_rows`` rows per table and run,
writes them as a row group into a part file named ``*.parquet.inprogress``, and *publishes* the part
(writes the footer, renames it to ``*.parquet``) when the part holds ``part_rows`` rows, when its
oldest row is ``part_seconds`` old (checked on every write and on :meth:`ParquetRunWriter.tick`), at
the end of the run and on close. So:

- memory stays bounded whatever the run length (the buffer, plus one open row group's encoder);
- every ``*.parquet`` file is complete and readable at any moment, even while a run is going;
- an interrupted process (Ctrl-C / ``KeyboardInterrupt``, an exception, a normal exit) publishes what
  it holds: :meth:`ParquetRunWriter.close` runs from ``with``/``finally`` and from an ``atexit``
  hook, and marks runs that never ended as ``interrupted``;
- a process killed outright (SIGKILL, the OOM killer, a power cut; SIGTERM too unless someone turned
  it into an exception) loses only the unpublished tail, at most about ``part_seconds`` of data per
  table: every part published before is intact, the run's row stays ``running``, and the dead
  writer's ``*.parquet.inprogress`` files are ignored by readers (:func:`load` lists them).
"""

from __future__ import annotations

import atexit
import contextlib
import json
import math
import os
import queue
import re
import socket
import subprocess
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, is_dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from pytest_gashammer.errors import GashammerError
from pytest_gashammer.results import (
    LATENCY_STATS,
    RUN_FIGURES,
    EngineBlockRow,
    EngineCallRow,
    FaultImpact,
    Figure,
    L1Assertion,
    L1Batch,
    NetworkEvent,
)
from pytest_gashammer.telemetry.schema import (
    SCHEMA_VERSION,
    SCHEMAS,
    STREAMED_TABLES,
    SchemaVersionError,
    conform,
    empty_table,
)
from pytest_gashammer.telemetry.stream import (
    ClockMap,
    TelemetryEvent,
    events_batch,
    from_ipc,
    json_detail,
    plan_phase_events,
)

__all__ = [
    "BackgroundWriter",
    "ParquetRunWriter",
    "RunInfo",
    "TelemetryDirectoryError",
    "TelemetryTables",
    "assertion_rows",
    "batch_rows",
    "fault_impacts",
    "fault_rows",
    "git_commit",
    "l1_assertions",
    "l1_batches",
    "load",
    "network_event_rows",
    "new_run_id",
]

_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_SMALL_TABLES = ("runs", "verdicts", "edges", "faults", "batches", "assertions")


class TelemetryDirectoryError(GashammerError):
    """A telemetry directory is missing, holds no telemetry, or holds unreadable files."""


def new_run_id(now_unix_ns: int | None = None) -> str:
    """A unique, sortable, path-safe run id: UTC time to the second plus 8 random hex digits."""
    seconds = (time.time_ns() if now_unix_ns is None else now_unix_ns) // 1_000_000_000
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(seconds))
    return f"{stamp}-{uuid.uuid4().hex[:8]}"


def git_commit(path: str | os.PathLike[str] = ".") -> str | None:
    """The commit checked out at ``path`` (the project under test), ``None`` outside a git checkout."""
    try:
        completed = subprocess.run(
            ["git", "-C", os.fspath(path), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    commit = completed.stdout.strip()
    return commit if completed.returncode == 0 and commit else None


@dataclass
class RunInfo:
    """What the hive knows about a run when it starts it: the ``runs`` row before the results.

    ``plan`` is ``ScenarioPlan.to_dict()``. ``origin_unix_ns`` is the run clock's t=0 on the hive's
    wall clock, if already known (else set it later with :meth:`ParquetRunWriter.set_run_origin`).
    """

    run_id: str
    scenario: str
    seed: int
    target_gas_per_sec: float
    plan: Mapping[str, Any]
    test_nodeid: str | None = None
    chain_id: int | None = None
    devnet_kind: str | None = None
    node_version: str | None = None
    plugin_version: str | None = None
    build_sha: str | None = None
    git_commit: str | None = None
    host: str | None = None
    started_unix_ns: int = field(default_factory=time.time_ns)
    origin_unix_ns: int | None = None

    @classmethod
    def for_plan(cls, plan: Any, *, run_id: str | None = None, **facts: Any) -> RunInfo:
        """From a ``ScenarioPlan`` (or its dict); ``facts`` fill the other fields by name."""
        data = plan.to_dict() if hasattr(plan, "to_dict") else dict(plan)
        return cls(
            run_id=run_id or new_run_id(),
            scenario=str(data["name"]),
            seed=int(data["seed"]),
            target_gas_per_sec=float(data["target_gas_per_sec"]),
            plan=data,
            **facts,
        )


@dataclass
class _Part:
    """One table of one run: buffered batches and the part file being written."""

    directory: Path
    schema: pa.Schema
    next_index: int
    buffer: list[pa.RecordBatch] = field(default_factory=list)
    buffered_rows: int = 0
    writer: pq.ParquetWriter | None = None
    path: Path | None = None
    rows_in_part: int = 0
    unpublished_since: float | None = None


@dataclass
class _Run:
    info: RunInfo
    status: str = "running"
    ended_unix_ns: int | None = None
    result: Any = None
    early_events: list[tuple[int, TelemetryEvent]] = field(default_factory=list)
    edges: dict[str, dict[str, Any]] = field(default_factory=dict)


class ParquetRunWriter:
    """Writes the telemetry of one pytest session (any number of runs) into ``directory``.

    Call :meth:`begin_run` when a run starts, :meth:`write` (or :meth:`write_frame` for IPC bytes from
    an edge) for every batch as it arrives, :meth:`tick` now and then (about once a second) so quiet
    tables are still published on time, :meth:`end_run` with the ``RunResult``, and :meth:`close` at
    the end of the session (or use it as a context manager). Thread-safe: every method takes a lock,
    so batches may come from a receiver thread while the hive's thread ends runs.
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        row_group_rows: int = 65_536,
        part_rows: int = 1_048_576,
        part_seconds: float = 10.0,
        compression: str = "zstd",
        close_at_exit: bool = True,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if row_group_rows < 1 or part_rows < 1 or not part_seconds > 0:
            raise ValueError("row_group_rows and part_rows must be >= 1 and part_seconds > 0")
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.row_group_rows = row_group_rows
        self.part_rows = part_rows
        self.part_seconds = part_seconds
        self.compression = compression
        self._clock = clock
        self._lock = threading.RLock()
        self._runs: dict[str, _Run] = {}
        self._parts: dict[tuple[str, str], _Part] = {}
        self._closed = False
        self.rows_written: dict[str, int] = dict.fromkeys(STREAMED_TABLES, 0)
        self._atexit: Callable[[], None] | None = None
        if close_at_exit:
            reference = weakref.ref(self)

            def close_at_exit_hook() -> None:
                writer = reference()
                if writer is not None:
                    writer.close()

            self._atexit = close_at_exit_hook
            atexit.register(close_at_exit_hook)

    # -- context manager ------------------------------------------------------------------------
    def __enter__(self) -> ParquetRunWriter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- runs -----------------------------------------------------------------------------------
    def begin_run(self, info: RunInfo) -> None:
        """Record a run as started: its ``runs`` row (status ``running``) and its planned phases."""
        if not _RUN_ID.match(info.run_id):
            raise ValueError(f"run id {info.run_id!r} must be 1-128 letters, digits, '.', '_' or '-'")
        with self._lock:
            self._check_open()
            run = self._runs[info.run_id] = _Run(info)
            self._write_runs_row(run)
            self._emit(run, TelemetryEvent(0, "run_started", detail=info.test_nodeid), info.started_unix_ns)
            self._write_events(info.run_id, plan_phase_events(info.plan))

    def set_run_origin(self, run_id: str, origin_unix_ns: int) -> None:
        """Fix the run clock's t=0 (hive wall clock); events stamped in Unix time before now are placed."""
        with self._lock:
            run = self._run(run_id)
            run.info.origin_unix_ns = origin_unix_ns
            self._place_early_events(run)
            self._write_runs_row(run)

    def register_edge(
        self,
        run_id: str,
        edge_id: str,
        *,
        host: str | None = None,
        clock: ClockMap | None = None,
        target_share: float | None = None,
        joined_unix_ns: int | None = None,
    ) -> None:
        """Note an edge taking part (an ``edge_joined`` event, and its clock facts for ``edges``)."""
        with self._lock:
            run = self._run(run_id)
            facts = run.edges.setdefault(edge_id, {})
            facts.update({"host": host, "target_share": target_share})
            if clock is not None:
                facts.update(
                    wall_origin_unix_ns=clock.wall_origin_ns,
                    clock_offset_ns=clock.edge_offset_ns,
                    start_skew_s=clock.start_skew_ns / 1e9,
                )
            self._emit(run, TelemetryEvent(0, "edge_joined", edge_id, detail=host), joined_unix_ns)

    def add_event(self, run_id: str, kind: str, *, unix_ns: int | None = None, **fields: Any) -> None:
        """One hive-side event (``edge_lost``, ``error``, ``note``, a fault...), stamped now unless
        ``unix_ns`` or ``t_ns`` (run clock) is given; ``fields`` are :class:`TelemetryEvent` fields."""
        with self._lock:
            run = self._run(run_id)
            t_ns = fields.pop("t_ns", None)
            event = TelemetryEvent(0 if t_ns is None else int(t_ns), kind, **fields)
            if t_ns is not None:
                self._write_events(run_id, [event])
            else:
                self._emit(run, event, unix_ns)

    def end_run(
        self,
        run_id: str,
        *,
        result: Any = None,
        status: str | None = None,
        ended_unix_ns: int | None = None,
    ) -> None:
        """Finish a run: publish its parts and write its ``runs``, ``verdicts`` and ``edges`` rows, its
        ``faults`` rows when the result holds faults, and its ``batches`` and ``assertions`` rows when it
        has what an L1 monitor saw.

        ``result`` is the ``RunResult`` (or ``None`` if the run produced none; a run cut short may
        still have one, and then keeps its faults and L1 rows). ``status`` defaults to
        ``finished`` with a result and ``failed`` without one; use ``interrupted`` for Ctrl-C.
        """
        with self._lock:
            run = self._run(run_id)
            run.ended_unix_ns = ended_unix_ns or time.time_ns()
            run.result = result
            run.status = status or ("finished" if result is not None else "failed")
            if run.info.origin_unix_ns is None:
                run.info.origin_unix_ns = run.info.started_unix_ns
            self._place_early_events(run)
            verdicts = list(getattr(result, "verdicts", None) or [])
            end_t = run.ended_unix_ns - run.info.origin_unix_ns
            self._write_events(
                run_id,
                [
                    *(
                        TelemetryEvent(end_t, "verdict", value=None, detail=json_detail([v.name, v.status]))
                        for v in verdicts
                    ),
                    *(
                        TelemetryEvent(end_t, "error", value=float(count), detail=str(kind))
                        for kind, count in (getattr(result, "errors", None) or {}).items()
                    ),
                    TelemetryEvent(end_t, "run_finished", detail=run.status),
                ],
            )
            for table in STREAMED_TABLES:
                part = self._parts.pop((table, run_id), None)
                if part is not None:
                    self._publish(part)
            self._write_runs_row(run)
            self._write_small("verdicts", run_id, [_verdict_row(run_id, v) for v in verdicts])
            self._write_small("edges", run_id, _edge_rows(run_id, run.edges, result))
            faults = list(getattr(result, "faults", None) or [])
            if faults:  # a run without faults leaves no empty file behind
                self._write_small("faults", run_id, fault_rows(run_id, faults))
            l1 = getattr(result, "l1", None)
            # A run without an L1 (or whose monitor saw nothing of a kind) leaves no empty file behind.
            if l1 is not None and l1.batch_rows:
                self._write_small("batches", run_id, batch_rows(run_id, l1.batch_rows))
            if l1 is not None and l1.assertion_rows:
                self._write_small("assertions", run_id, assertion_rows(run_id, l1.assertion_rows))
            engine = getattr(result, "engine", None)
            # Only runs whose blocks the plugin built have engine rows.
            if engine is not None and engine.call_rows:
                self._write_small("engine_calls", run_id, engine_call_rows(run_id, engine.call_rows))
            if engine is not None and engine.block_rows:
                self._write_small("engine_blocks", run_id, engine_block_rows(run_id, engine.block_rows))
            network = getattr(result, "network", None)
            # Only runs on several nodes have network events.
            if network is not None and network.events:
                rows = network_event_rows(run_id, network.events, network.time_origin)
                self._write_small("network_events", run_id, rows)
            del self._runs[run_id]

    # -- streamed tables ------------------------------------------------------------------------
    def write(self, table: str, batch: pa.RecordBatch | pa.Table) -> None:
        """Append rows to ``transactions``, ``blocks`` or ``events``; rows go to their own run's part."""
        if table not in STREAMED_TABLES:
            raise ValueError(f"{table!r} is not a streamed table; use one of {STREAMED_TABLES}")
        if batch.num_rows == 0:
            return
        with self._lock:
            self._check_open()
            for run_id, rows in _split_by_run(batch):
                part = self._part(table, run_id)
                for piece in _batches(rows, part.schema):
                    part.buffer.append(piece)
                    part.buffered_rows += piece.num_rows
                    if part.unpublished_since is None:
                        part.unpublished_since = self._clock()
                    if part.buffered_rows >= self.row_group_rows:
                        self._write_row_group(part)
                    if part.rows_in_part >= self.part_rows:
                        self._publish(part)
                self.rows_written[table] += rows.num_rows
            self._rotate_due()

    def write_frame(self, table: str, frame: bytes) -> None:
        """:meth:`write` for an IPC frame from :func:`~pytest_gashammer.telemetry.stream.to_ipc`."""
        self.write(table, from_ipc(frame))

    def tick(self) -> None:
        """Publish parts whose oldest row waited ``part_seconds``. Call it about once a second."""
        with self._lock:
            if not self._closed:
                self._rotate_due()

    def flush(self) -> None:
        """Publish everything buffered now (a checkpoint: all data so far becomes readable)."""
        with self._lock:
            for part in list(self._parts.values()):
                self._publish(part)

    def close(self) -> None:
        """Publish everything and mark runs that never ended as ``interrupted``. Idempotent."""
        with self._lock:
            if self._closed:
                return
            try:
                for run_id in list(self._runs):
                    with contextlib.suppress(Exception):
                        self.end_run(run_id, result=self._runs[run_id].result, status="interrupted")
                for part in list(self._parts.values()):
                    with contextlib.suppress(Exception):
                        self._publish(part)
            finally:
                self._closed = True
                if self._atexit is not None:
                    atexit.unregister(self._atexit)
                    self._atexit = None

    @property
    def closed(self) -> bool:
        return self._closed

    # -- internals ------------------------------------------------------------------------------
    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError(f"the telemetry writer for {self.directory} is closed")

    def _run(self, run_id: str) -> _Run:
        run = self._runs.get(run_id)
        if run is None:
            raise KeyError(f"run {run_id!r} was not begun (or has ended) in this writer")
        return run

    def _emit(self, run: _Run, event: TelemetryEvent, unix_ns: int | None) -> None:
        stamp = time.time_ns() if unix_ns is None else unix_ns
        if run.info.origin_unix_ns is None:
            run.early_events.append((stamp, event))
            return
        self._write_events(run.info.run_id, [event._replace(t_ns=stamp - run.info.origin_unix_ns)])

    def _place_early_events(self, run: _Run) -> None:
        origin = run.info.origin_unix_ns
        if origin is None or not run.early_events:
            return
        placed = [event._replace(t_ns=stamp - origin) for stamp, event in run.early_events]
        run.early_events.clear()
        self._write_events(run.info.run_id, placed)

    def _write_events(self, run_id: str, events: Sequence[TelemetryEvent]) -> None:
        if events:
            self.write("events", events_batch(run_id, events))

    def _part(self, table: str, run_id: str) -> _Part:
        key = (table, run_id)
        part = self._parts.get(key)
        if part is None:
            directory = self.directory / table / f"run={_safe_run_id(run_id)}"
            directory.mkdir(parents=True, exist_ok=True)
            existing = [
                int(m.group(1)) for p in directory.iterdir() if (m := re.match(r"part-(\d+)\.", p.name))
            ]
            part = self._parts[key] = _Part(directory, SCHEMAS[table], max(existing, default=-1) + 1)
        return part

    def _write_row_group(self, part: _Part) -> None:
        if not part.buffer:
            return
        table = pa.Table.from_batches(part.buffer, schema=part.schema)
        if part.writer is None:
            part.path = part.directory / f"part-{part.next_index:05d}.parquet.inprogress"
            part.next_index += 1
            part.writer = pq.ParquetWriter(part.path, part.schema, compression=self.compression)
        part.writer.write_table(table, row_group_size=max(table.num_rows, 1))
        part.rows_in_part += table.num_rows
        part.buffer = []
        part.buffered_rows = 0

    def _publish(self, part: _Part) -> None:
        self._write_row_group(part)
        if part.writer is not None and part.path is not None:
            part.writer.close()
            os.replace(part.path, part.path.with_name(part.path.name.removesuffix(".inprogress")))
        part.writer = None
        part.path = None
        part.rows_in_part = 0
        part.unpublished_since = None

    def _rotate_due(self) -> None:
        now = self._clock()
        for part in list(self._parts.values()):
            if part.unpublished_since is not None and now - part.unpublished_since >= self.part_seconds:
                self._publish(part)

    def _write_runs_row(self, run: _Run) -> None:
        self._write_small("runs", run.info.run_id, [_run_row(run)])

    def _write_small(self, table: str, run_id: str, rows: list[dict[str, Any]]) -> None:
        """Write (or atomically replace) a small per-run table file."""
        directory = self.directory / table / f"run={_safe_run_id(run_id)}"
        directory.mkdir(parents=True, exist_ok=True)
        final = directory / f"{table}.parquet"
        temporary = directory / f".{table}.parquet.{os.getpid()}.tmp"
        pq.write_table(
            pa.Table.from_pylist(rows, schema=SCHEMAS[table]), temporary, compression=self.compression
        )
        os.replace(temporary, final)


class BackgroundWriter:
    """Feeds a :class:`ParquetRunWriter` from its own thread, so whoever receives frames (an execnet
    callback, which must never block) only enqueues them.

    :meth:`submit` takes IPC frames or batches; the queue holds at most ``max_pending`` of them (at
    256 KiB a frame, 64 MiB), after which :meth:`submit` waits: back-pressure instead of unbounded
    memory. The thread also calls :meth:`ParquetRunWriter.tick` about once a second. Call
    :meth:`drain` before ``end_run`` so the run's last frames are written first, and :meth:`close` at
    the end (it drains; closing the writer stays the owner's job).
    """

    _STOP = object()

    def __init__(
        self, writer: ParquetRunWriter, *, max_pending: int = 256, tick_seconds: float = 1.0
    ) -> None:
        self.writer = writer
        self.tick_seconds = tick_seconds
        self.failures: list[str] = []
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=max_pending)
        self._thread = threading.Thread(target=self._work, name="gashammer-telemetry-writer", daemon=True)
        self._thread.start()

    def submit(self, table: str, payload: bytes | pa.RecordBatch | pa.Table) -> None:
        self._queue.put((table, payload))

    def drain(self, timeout: float = 30.0) -> bool:
        """Wait until everything submitted so far is written; False if ``timeout`` ran out first."""
        done = threading.Event()
        try:
            self._queue.put(done, timeout=timeout)
        except queue.Full:
            return False
        return done.wait(timeout)

    def close(self, timeout: float = 30.0) -> None:
        if self._thread.is_alive():
            self.drain(timeout)
            with contextlib.suppress(queue.Full):
                self._queue.put(self._STOP, timeout=timeout)
            self._thread.join(timeout)

    def _work(self) -> None:
        while True:
            try:
                item = self._queue.get(timeout=self.tick_seconds)
            except queue.Empty:
                with contextlib.suppress(Exception):
                    self.writer.tick()
                continue
            if item is self._STOP:
                return
            if isinstance(item, threading.Event):
                item.set()
                continue
            table, payload = item
            try:
                if isinstance(payload, bytes | bytearray | memoryview):
                    self.writer.write_frame(table, bytes(payload))
                else:
                    self.writer.write(table, payload)
            except Exception as exc:  # one bad frame must not stop the telemetry of the session
                if len(self.failures) < 100:
                    self.failures.append(f"{table}: {type(exc).__name__}: {exc}")


def _safe_run_id(run_id: str) -> str:
    if not _RUN_ID.match(run_id):
        raise ValueError(f"run id {run_id!r} must be 1-128 letters, digits, '.', '_' or '-'")
    return run_id


def _split_by_run(batch: pa.RecordBatch | pa.Table) -> Iterable[tuple[str, pa.RecordBatch | pa.Table]]:
    column = batch.column("run_id")
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
    if isinstance(column, pa.DictionaryArray) and len(column.dictionary) == 1 and column.null_count == 0:
        return [(column.dictionary[0].as_py(), batch)]
    plain = column.cast(pa.string()) if isinstance(column, pa.DictionaryArray) else column
    if plain.null_count:
        raise ValueError("rows without a run_id cannot be stored")
    return [(value.as_py(), batch.filter(pc.equal(plain, value))) for value in pc.unique(plain)]


def _batches(rows: pa.RecordBatch | pa.Table, schema: pa.Schema) -> list[pa.RecordBatch]:
    """``rows`` as record batches in exactly ``schema`` (older or foreign column orders conformed)."""
    if isinstance(rows, pa.RecordBatch) and rows.schema.equals(schema, check_metadata=False):
        return [pa.RecordBatch.from_arrays(rows.columns, schema=schema)]
    table = rows if isinstance(rows, pa.Table) else pa.Table.from_batches([rows])
    name = (schema.metadata or {}).get(b"gashammer.table", b"").decode()
    return conform(table, name).to_batches()


def _finite(value: Any) -> float | None:
    if value is None:
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _run_row(run: _Run) -> dict[str, Any]:
    """The ``runs`` row: the run's facts, plus the ``RunResult`` key figures once it has them."""
    info, result = run.info, run.result
    from pytest_gashammer._version import __version__, build_sha

    row: dict[str, Any] = {
        "run_id": info.run_id,
        "schema_version": SCHEMA_VERSION,
        "status": run.status,
        "test_nodeid": info.test_nodeid,
        "scenario": info.scenario,
        "seed": info.seed,
        "target_gas_per_sec": info.target_gas_per_sec,
        "plan_json": json_detail(dict(info.plan)),
        "chain_id": info.chain_id,
        "devnet_kind": info.devnet_kind,
        "node_version": info.node_version,
        "plugin_version": info.plugin_version or __version__,
        "build_sha": info.build_sha or build_sha(),
        "git_commit": info.git_commit,
        "host": info.host or socket.gethostname(),
        "started_at": info.started_unix_ns // 1000,
        "ended_at": None if run.ended_unix_ns is None else run.ended_unix_ns // 1000,
        "origin_unix_ns": info.origin_unix_ns,
        "capacity_search": info.plan.get("capacity_search"),
        "capacity_step": info.plan.get("capacity_step"),
    }
    if result is None:
        return row
    for figure in RUN_FIGURES:
        if figure.at_start and any(row[column] not in (None, "") for column in figure.columns):
            continue  # the run's own facts win over what the result says
        row.update(figure_columns(figure, figure.value(result)))
    return row


def figure_columns(figure: Figure, value: Any) -> dict[str, Any]:
    """The ``runs`` columns of one run figure holding ``value`` (non-finite floats stored as null)."""
    if figure.kind == "latency":
        return {
            column: value.count if stat == "count" else _finite(getattr(value, stat))
            for column, stat in zip(figure.columns, LATENCY_STATS, strict=True)
        }
    if value is None:
        return {figure.stored_as: None}
    if figure.kind == "json":
        return {figure.stored_as: json_detail(_json_safe(figure.plain(value)))}
    if figure.kind == "float":
        return {figure.stored_as: _finite(value)}
    if figure.kind == "bool":
        return {figure.stored_as: bool(value)}
    return {figure.stored_as: value}


def _json_safe(value: Any) -> Any:
    """``value`` as standard JSON can hold it: dataclasses as dicts, ``nan`` and infinities as null
    (``json.dumps`` would write ``NaN``, which DuckDB's and most other JSON parsers refuse)."""
    if is_dataclass(value) and not isinstance(value, type):
        value = asdict(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {key: _json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(item) for item in value]
    return value


def fault_rows(run_id: str, faults: Iterable[FaultImpact]) -> list[dict[str, Any]]:
    """The ``faults`` rows of a run: one per :class:`~pytest_gashammer.results.FaultImpact`."""
    return [
        {
            "run_id": run_id,
            "fault_index": impact.index,
            "kind": impact.kind,
            "params_json": json_detail(_json_safe(impact.params)),
            "planned_at": float(impact.planned_at),
            "planned_duration": float(impact.planned_duration),
            "started_at_s": _finite(impact.started_at),
            "ended_at_s": _finite(impact.ended_at),
            "started_unix_ns": impact.started_unix_ns,
            "ended_unix_ns": impact.ended_unix_ns,
            **{name: _finite(getattr(impact, name)) for name in _FAULT_MEASURES},
            "recovered_after_s": _finite(impact.recovered_after_s),
            "delayed": int(impact.delayed),
            "lost": int(impact.lost),
            "lost_examples_json": json_detail(list(impact.lost_examples)),
            "effect_json": json_detail(_json_safe(impact.effect)),
            "error": impact.error,
        }
        for impact in faults
    ]


#: The before / during / after figures of a fault: float columns named like its fields, ``nan`` ↔ null.
_FAULT_MEASURES = tuple(
    f"{figure}_{window}"
    for figure in ("included_gas_per_sec", "inclusion_p99")
    for window in ("before", "during", "after")
)


def fault_impacts(table: pa.Table) -> list[FaultImpact]:
    """The :class:`~pytest_gashammer.results.FaultImpact` of each ``faults`` row, by run then index.

    The inverse of :func:`fault_rows`: a stored run's faults as the live run had them (null rates
    and latencies come back as ``nan``, as the result holds a window the run did not cover).
    """
    rows = sorted(table.to_pylist(), key=lambda row: (row["run_id"], row["fault_index"]))
    impacts = []
    for row in rows:
        impacts.append(
            FaultImpact(
                index=int(row["fault_index"]),
                kind=row["kind"],
                params=json_or(row["params_json"], {}),
                planned_at=float(row["planned_at"]),
                planned_duration=float(row["planned_duration"]),
                started_at=row["started_at_s"],
                ended_at=row["ended_at_s"],
                started_unix_ns=row["started_unix_ns"],
                ended_unix_ns=row["ended_unix_ns"],
                **{name: math.nan if row[name] is None else float(row[name]) for name in _FAULT_MEASURES},
                recovered_after_s=row["recovered_after_s"],
                delayed=int(row["delayed"] or 0),
                lost=int(row["lost"] or 0),
                lost_examples=json_or(row["lost_examples_json"], []),
                effect=json_or(row["effect_json"], {}),
                error=row["error"],
            )
        )
    return impacts


#: What :func:`int_column` puts where a column is null ("did not happen"): no time or count is negative.
NULL_INT = -1


def int_column(table: pa.Table, name: str) -> Any:
    """An int64 column as a numpy array, nulls as :data:`NULL_INT` (for the report's and the comparison's
    vectorised reads of stored runs)."""
    import numpy as np

    column = table.column(name)
    if column.null_count:
        column = pc.fill_null(column, NULL_INT)
    return np.asarray(column.to_numpy(), dtype=np.int64)


def label_column(table: pa.Table, name: str) -> Any:
    """A dictionary or string column as a numpy object array (nulls as None), decoded per chunk."""
    import numpy as np

    column = table.column(name)
    if pa.types.is_dictionary(column.type):
        column = column.cast(pa.string())
    return np.asarray(column.to_numpy(zero_copy_only=False), dtype=object)


def _optional_hash(text: str | None) -> bytes | None:
    return None if not text else _hash_bytes(text)


def engine_call_rows(run_id: str, calls: Iterable[EngineCallRow]) -> list[dict[str, Any]]:
    """The ``engine_calls`` rows of a run: one per :class:`~pytest_gashammer.results.EngineCallRow`."""
    return [
        {
            "run_id": run_id,
            "t_s": float(call.t),
            "method": call.method,
            "version": call.version,
            "latency_s": float(call.latency),
            "status": call.status,
            "block_number": call.block_number,
            "block_hash": _optional_hash(call.block_hash),
            "transactions": call.transactions,
            "payload_id": call.payload_id,
            "latest_valid_hash": _optional_hash(call.latest_valid_hash),
            "with_attributes": bool(call.with_attributes),
            "error": call.error,
        }
        for call in calls
    ]


def engine_block_rows(run_id: str, blocks: Iterable[EngineBlockRow]) -> list[dict[str, Any]]:
    """The ``engine_blocks`` rows of a run: one per :class:`~pytest_gashammer.results.EngineBlockRow`."""
    return [
        {
            "run_id": run_id,
            "t_s": float(block.t),
            "number": block.number,
            "block_hash": _hash_bytes(block.block_hash),
            "transactions": block.transactions,
            "gas_used": block.gas_used,
            "build_s": float(block.build_s),
            "import_s": float(block.import_s),
            "driver_cpu_s": _finite(block.driver_cpu_s),
            "head_after": _optional_hash(block.head_after),
        }
        for block in blocks
    ]


def network_event_rows(run_id: str, events: Iterable[NetworkEvent], origin_s: float) -> list[dict[str, Any]]:
    """The ``network_events`` rows of a run: one per :class:`~pytest_gashammer.results.NetworkEvent`,
    its time on the run clock (``origin_s``: the run's t=0 in Unix seconds)."""
    return [
        {
            "run_id": run_id,
            "t_s": float(event.at) - origin_s,
            "source": event.source,
            "kind": event.kind,
            "node": event.node,
            "peer": event.peer or None,
            "number": event.number,
            "detail": event.detail or None,
        }
        for event in events
    ]


def batch_rows(run_id: str, batches: Iterable[L1Batch]) -> list[dict[str, Any]]:
    """The ``batches`` rows of a run: one per :class:`~pytest_gashammer.results.L1Batch`."""
    return [
        {
            "run_id": run_id,
            "sequence_number": batch.sequence_number,
            "l1_block": batch.l1_block,
            "l1_tx": _hash_bytes(batch.l1_tx),
            "before_acc": _hash_bytes(batch.before_acc),
            "after_acc": _hash_bytes(batch.after_acc),
            "delayed_messages_read": batch.delayed_messages_read,
            "data_bytes": batch.data_bytes,
            "l1_gas": batch.l1_gas,
            "first_l2_block": batch.first_l2_block,
            "last_l2_block": batch.last_l2_block,
            "l2_transactions": batch.l2_transactions,
            "seen_at_s": float(batch.seen_at),
            "lag_max_s": _finite(batch.lag_max_s),
            "decode_error": batch.decode_error,
        }
        for batch in batches
    ]


def l1_batches(table: pa.Table) -> list[L1Batch]:
    """The :class:`~pytest_gashammer.results.L1Batch` of each ``batches`` row, by run then sequence
    number; the inverse of :func:`batch_rows` (a null lag comes back as ``nan``)."""
    rows = sorted(table.to_pylist(), key=lambda row: (row["run_id"], row["sequence_number"]))
    return [
        L1Batch(
            sequence_number=int(row["sequence_number"]),
            l1_block=int(row["l1_block"]),
            l1_tx=_hash_text(row["l1_tx"]),
            before_acc=_hash_text(row["before_acc"]),
            after_acc=_hash_text(row["after_acc"]),
            delayed_messages_read=int(row["delayed_messages_read"] or 0),
            data_bytes=int(row["data_bytes"] or 0),
            l1_gas=int(row["l1_gas"] or 0),
            first_l2_block=row["first_l2_block"],
            last_l2_block=row["last_l2_block"],
            l2_transactions=int(row["l2_transactions"] or 0),
            seen_at=float(row["seen_at_s"]),
            lag_max_s=math.nan if row["lag_max_s"] is None else float(row["lag_max_s"]),
            decode_error=row["decode_error"],
        )
        for row in rows
    ]


def assertion_rows(run_id: str, assertions: Iterable[L1Assertion]) -> list[dict[str, Any]]:
    """The ``assertions`` rows of a run: one per :class:`~pytest_gashammer.results.L1Assertion`."""
    return [
        {
            "run_id": run_id,
            "assertion_hash": _hash_bytes(assertion.assertion_hash),
            "parent_hash": _hash_bytes(assertion.parent_hash),
            "inbox_position": assertion.inbox_position,
            "l2_block_hash": _hash_bytes(assertion.l2_block_hash),
            "created_l1_block": assertion.created_l1_block,
            "created_at_s": float(assertion.created_at),
            "confirmed_l1_block": assertion.confirmed_l1_block,
            "confirmed_at_s": None if assertion.confirmed_at is None else float(assertion.confirmed_at),
        }
        for assertion in assertions
    ]


def l1_assertions(table: pa.Table) -> list[L1Assertion]:
    """The :class:`~pytest_gashammer.results.L1Assertion` of each ``assertions`` row, by run then
    creation; the inverse of :func:`assertion_rows`."""
    rows = sorted(
        table.to_pylist(), key=lambda row: (row["run_id"], row["created_at_s"], row["inbox_position"])
    )
    return [
        L1Assertion(
            assertion_hash=_hash_text(row["assertion_hash"]),
            parent_hash=_hash_text(row["parent_hash"]),
            inbox_position=int(row["inbox_position"]),
            l2_block_hash=_hash_text(row["l2_block_hash"]),
            created_l1_block=int(row["created_l1_block"]),
            created_at=float(row["created_at_s"]),
            confirmed_l1_block=row["confirmed_l1_block"],
            confirmed_at=row["confirmed_at_s"],
        )
        for row in rows
    ]


def _hash_bytes(text: str) -> bytes:
    """A ``0x`` hash as the 32 raw bytes a hash column stores."""
    return bytes.fromhex(text.removeprefix("0x"))


def _hash_text(value: bytes | None) -> str:
    return "" if value is None else "0x" + value.hex()


def json_or(text: str | None, default: Any) -> Any:
    """``text`` parsed as JSON, or ``default`` when it is empty or not JSON (a stored column)."""
    if not text:
        return default
    try:
        return json.loads(text)
    except ValueError:
        return default


def _verdict_row(run_id: str, verdict: Any) -> dict[str, Any]:
    return {
        "run_id": run_id,
        "name": verdict.name,
        "status": verdict.status,
        "summary": verdict.summary,
        "evidence_json": json_detail(verdict.evidence),
    }


def _edge_rows(run_id: str, registered: Mapping[str, Mapping[str, Any]], result: Any) -> list[dict[str, Any]]:
    rows: dict[str, dict[str, Any]] = {}
    for edge_id, facts in registered.items():
        rows[edge_id] = {
            "run_id": run_id,
            "edge_id": edge_id,
            **{k: v for k, v in facts.items() if v is not None},
        }
    for edge in getattr(result, "edges", None) or []:
        row = rows.setdefault(edge.edge_id, {"run_id": run_id, "edge_id": edge.edge_id})
        row.update(
            host=edge.host,
            sent=edge.sent,
            included=edge.included,
            target_share=edge.target_share,
        )
        row.setdefault("start_skew_s", edge.start_skew)
    return list(rows.values())


# ---------------------------------------------------------------------------------------------
# reading


@dataclass
class TelemetryTables:
    """The twelve tables of a telemetry directory (or of some of its runs), as pyarrow Tables."""

    runs: pa.Table
    verdicts: pa.Table
    edges: pa.Table
    transactions: pa.Table
    blocks: pa.Table
    events: pa.Table
    #: Empty for directories written before schema 1.2, and for runs without faults.
    faults: pa.Table
    #: Empty for directories written before schema 1.3, and for runs without an L1.
    batches: pa.Table
    assertions: pa.Table
    #: Empty for directories written before schema 1.4, and for runs whose blocks the plugin did not build.
    engine_calls: pa.Table
    engine_blocks: pa.Table
    #: Empty for directories written before schema 1.6, and for runs on a single node.
    network_events: pa.Table
    directory: Path | None = None
    incomplete_files: list[Path] = field(default_factory=list)

    def table(self, name: str) -> pa.Table:
        return getattr(self, name)

    def run_ids(self) -> list[str]:
        """Run ids in the order the runs started."""
        if self.runs.num_rows == 0:
            return []
        order = pc.sort_indices(self.runs, sort_keys=[("started_at", "ascending"), ("run_id", "ascending")])
        return [str(value) for value in self.runs.column("run_id").take(order).to_pylist()]

    def for_run(self, run_id: str) -> TelemetryTables:
        """The rows of one run only."""
        picked = {}
        for name in SCHEMAS:
            table = self.table(name)
            column = table.column("run_id")
            if pa.types.is_dictionary(column.type):
                column = column.cast(pa.string())
            picked[name] = table.filter(pc.equal(column, run_id))
        return TelemetryTables(**picked, directory=self.directory, incomplete_files=self.incomplete_files)


def load(
    directory: str | os.PathLike[str],
    *,
    run_ids: Iterable[str] | None = None,
    tables: Iterable[str] | None = None,
    columns: Mapping[str, Sequence[str]] | None = None,
) -> TelemetryTables:
    """Read a telemetry directory written by :class:`ParquetRunWriter` (published files only).

    ``run_ids`` limits reading to those runs' partitions, ``tables`` to those tables (the others come
    back empty), ``columns`` to some columns of a table (the others come back as nulls), which is how
    the report reads a million-row run quickly. Files of another MAJOR schema version raise
    :class:`TelemetryDirectoryError`, as do a missing directory and a directory without telemetry.
    """
    root = Path(directory)
    if not root.exists():
        raise TelemetryDirectoryError(f"telemetry directory {root} does not exist")
    if not root.is_dir():
        raise TelemetryDirectoryError(f"{root} is not a directory (expected a gashammer telemetry directory)")
    if not any((root / name).is_dir() for name in SCHEMAS):
        raise TelemetryDirectoryError(
            f"{root} holds no gashammer telemetry (no runs/ or transactions/ inside); "
            "write some with --gashammer-parquet DIR"
        )
    wanted_runs = None if run_ids is None else {_safe_run_id(r) for r in run_ids}
    wanted_tables = set(SCHEMAS) if tables is None else set(tables)
    incomplete: list[Path] = []
    loaded: dict[str, pa.Table] = {}
    for name in SCHEMAS:
        if name not in wanted_tables:
            loaded[name] = empty_table(name)
            continue
        files: list[Path] = []
        table_dir = root / name
        if table_dir.is_dir():
            for run_dir in sorted(table_dir.iterdir()):
                if not run_dir.is_dir() or not run_dir.name.startswith("run="):
                    continue
                if wanted_runs is not None and run_dir.name[4:] not in wanted_runs:
                    continue
                for path in sorted(run_dir.iterdir()):
                    if path.name.endswith(".parquet") and not path.name.startswith("."):
                        files.append(path)
                    elif path.name.endswith(".inprogress"):
                        incomplete.append(path)
        loaded[name] = _read_files(name, files, (columns or {}).get(name))
    return TelemetryTables(**loaded, directory=root, incomplete_files=incomplete)


def _read_files(name: str, files: Sequence[Path], columns: Sequence[str] | None) -> pa.Table:
    if not files:
        return empty_table(name)
    schema = SCHEMAS[name]
    pieces = []
    for path in files:
        try:
            handle = pq.ParquetFile(path)
            present = set(handle.schema_arrow.names)
            wanted = None if columns is None else [c for c in columns if c in present]
            table = handle.read(columns=wanted)
            if columns is not None:
                table = table.replace_schema_metadata(handle.schema_arrow.metadata)
            pieces.append(conform(table, name))
        except SchemaVersionError as exc:
            raise TelemetryDirectoryError(f"{path}: {exc}") from None
        except (OSError, pa.ArrowException) as exc:
            raise TelemetryDirectoryError(f"{path} is not a readable Parquet file ({exc})") from None
    return pa.concat_tables(pieces).replace_schema_metadata(schema.metadata)
