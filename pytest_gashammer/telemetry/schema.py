"""The versioned Arrow schema of stored telemetry: twelve tables, one row per thing that happened.

Why a fixed schema: telemetry outlives the process that produced it. Edges stream it to the hive as
Arrow IPC, the hive stores it as Parquet, and people query it later with DuckDB or pandas, or
re-render reports from it. All of those agree only if the column names, types and meanings are
written down once and versioned. ``docs/telemetry.md`` documents every column.

Conventions:

- Every time column ending in ``_ns`` is nanoseconds on the **run clock**: 0 is the run's t=0 (the
  moment the plan's timeline starts, as the hive sees it); edges convert their monotonic clocks onto
  it (see :class:`pytest_gashammer.telemetry.stream.ClockMap`). ``runs.origin_unix_ns`` maps the run
  clock onto Unix time. Wall-clock columns are Arrow timestamps in UTC and end in ``_at``.
- Columns with a small set of values (templates, states, kinds, ids) are dictionary-encoded strings:
  compact in memory, in IPC frames and in Parquet, and read back as strings by every tool.
- ``null`` means "did not happen" or "not known", never 0.
- Hashes are 32 raw bytes (``fixed_size_binary(32)``); in DuckDB ``'0x' || hex(tx_hash)`` prints them.

Version policy (``SCHEMA_VERSION = "MAJOR.MINOR"``): a new column, table or dictionary value (such as
a new event kind) bumps MINOR and old files stay readable (missing columns read as nulls). Renaming
or removing a column, changing its type or its meaning bumps MAJOR; readers refuse another MAJOR. The
version is stored in every file's schema metadata and in ``runs.schema_version``.

Importing this module imports pyarrow: keep it out of the plugin's import path.
"""

from __future__ import annotations

import pyarrow as pa

from pytest_gashammer.results import FIGURES, LATENCY_STATS, RUN_FIGURES, Figure
from pytest_gashammer.telemetry.records import TxLog

__all__ = [
    "ASSERTIONS",
    "BATCHES",
    "BLOCKS",
    "EDGES",
    "ENGINE_BLOCKS",
    "ENGINE_CALLS",
    "EVENTS",
    "EVENT_KINDS",
    "FAULTS",
    "NETWORK_EVENTS",
    "RUNS",
    "SCHEMAS",
    "SCHEMA_VERSION",
    "STATES",
    "STREAMED_TABLES",
    "TRANSACTIONS",
    "VERDICTS",
    "SchemaVersionError",
    "conform",
    "empty_table",
    "major_of",
    "schema_version_of",
]

SCHEMA_VERSION = "1.6"
"""``MAJOR.MINOR`` of the tables below; see the module docstring for the policy."""

_METADATA_KEY = b"gashammer.schema_version"

#: Values of ``transactions.state``, in the order of their dictionary codes.
STATES = ("included", "rejected", "lost", "pending")

#: Event kinds known to this version. ``events.kind`` is an open set: later features add kinds (faults,
#: L1 observations) without a MAJOR bump, so readers must tolerate kinds they do not know.
EVENT_KINDS = (
    "phase_change",
    "edge_joined",
    "edge_lost",
    "run_started",
    "run_finished",
    "feed_connect",
    "feed_connect_failed",
    "feed_disconnect",
    "feed_reconnect",
    "feed_gap",
    "feed_gap_recovered",
    "feed_duplicate",
    "feed_late",
    "feed_decode_error",
    "feed_fatal",
    "duplicate_inclusion",
    "error",
    "verdict",
    "note",
)

_DICT = pa.dictionary(pa.int32(), pa.string())
_HASH = pa.binary(32)
_UTC = pa.timestamp("us", tz="UTC")


def _schema(table: str, fields: list[pa.Field]) -> pa.Schema:
    return pa.schema(
        fields, metadata={_METADATA_KEY: SCHEMA_VERSION.encode(), b"gashammer.table": table.encode()}
    )


_STORED_TYPES: dict[str, pa.DataType] = {
    "int64": pa.int64(),
    "int32": pa.int32(),
    "int8": pa.int8(),
    "bool": pa.bool_(),
    "dict": _DICT,
}

TRANSACTIONS = _schema(
    "transactions",
    [
        pa.field("run_id", _DICT, nullable=False),
        pa.field("edge_id", _DICT, nullable=False),
        pa.field("row", pa.int64(), nullable=False),
        pa.field("tx_hash", _HASH, nullable=False),
        # What the edge's TxLog columns become, in the order TxLog.COLUMNS declares them.
        *(
            pa.field(stored.column, _STORED_TYPES[stored.type], nullable=not stored.required)
            for column in TxLog.COLUMNS
            for stored in column.stored
        ),
        pa.field("feed_arrival_ns", pa.int64()),
        pa.field("feed_sequence", pa.int64()),
        pa.field("feed_position", pa.int32()),
        pa.field("feed_appearances", pa.int8()),
    ],
)

BLOCKS = _schema(
    "blocks",
    [
        pa.field("run_id", _DICT, nullable=False),
        pa.field("edge_id", _DICT, nullable=False),
        pa.field("block_number", pa.int64(), nullable=False),
        pa.field("block_hash", _HASH),
        pa.field("parent_hash", _HASH),
        pa.field("timestamp", pa.int64(), nullable=False),
        pa.field("gas_used", pa.int64(), nullable=False),
        pa.field("gas_limit", pa.int64(), nullable=False),
        pa.field("tx_count", pa.int32(), nullable=False),
        pa.field("base_fee", pa.int64()),
        pa.field("observed_ns", pa.int64(), nullable=False),
    ],
)

EVENTS = _schema(
    "events",
    [
        pa.field("run_id", _DICT, nullable=False),
        pa.field("t_ns", pa.int64(), nullable=False),
        pa.field("kind", _DICT, nullable=False),
        pa.field("edge_id", _DICT),
        pa.field("sequence", pa.int64()),
        pa.field("block_number", pa.int64()),
        pa.field("tx_hash", _HASH),
        pa.field("value", pa.float64()),
        pa.field("detail", pa.string()),
    ],
)

_FIGURE_TYPES: dict[str, pa.DataType] = {
    "int": pa.int64(),
    "float": pa.float64(),
    "str": pa.string(),
    "bool": pa.bool_(),
    "json": pa.string(),
}


def _figure_fields(figure: Figure) -> list[pa.Field]:
    """The ``runs`` columns of one run figure (see :data:`pytest_gashammer.results.RUN_FIGURES`)."""
    if figure.kind == "latency":
        return [
            pa.field(column, pa.int64() if stat == "count" else pa.float64())
            for column, stat in zip(figure.columns, LATENCY_STATS, strict=True)
        ]
    return [pa.field(figure.stored_as, _FIGURE_TYPES[figure.kind], nullable=not figure.required)]


def _figures(*names: str) -> list[pa.Field]:
    return [field for name in names for field in _figure_fields(FIGURES[name])]


# The figures known at a run's start sit among the run's facts; every other figure follows them in
# declaration order, so a figure added to ``RUN_FIGURES`` lands at the end (a MINOR bump).
RUNS = _schema(
    "runs",
    [
        pa.field("run_id", pa.string(), nullable=False),
        pa.field("schema_version", pa.string(), nullable=False),
        pa.field("status", pa.string(), nullable=False),
        pa.field("test_nodeid", pa.string()),
        *_figures("name", "seed", "target_gas_per_sec"),
        pa.field("plan_json", pa.string(), nullable=False),
        *_figures("chain_id", "devnet_kind", "node_version"),
        pa.field("plugin_version", pa.string(), nullable=False),
        pa.field("build_sha", pa.string()),
        pa.field("git_commit", pa.string()),
        pa.field("host", pa.string()),
        pa.field("started_at", _UTC, nullable=False),
        pa.field("ended_at", _UTC),
        pa.field("origin_unix_ns", pa.int64()),
        # A step of a capacity search: the search's run id (its own row holds ``capacity_json``) and
        # the step's index, 0 first. Null on every other run.
        pa.field("capacity_search", pa.string()),
        pa.field("capacity_step", pa.int32()),
        *_figures(*(figure.name for figure in RUN_FIGURES if not figure.at_start)),
    ],
)

VERDICTS = _schema(
    "verdicts",
    [
        pa.field("run_id", pa.string(), nullable=False),
        pa.field("name", pa.string(), nullable=False),
        pa.field("status", pa.string(), nullable=False),
        pa.field("summary", pa.string(), nullable=False),
        pa.field("evidence_json", pa.string(), nullable=False),
    ],
)

EDGES = _schema(
    "edges",
    [
        pa.field("run_id", pa.string(), nullable=False),
        pa.field("edge_id", pa.string(), nullable=False),
        pa.field("host", pa.string()),
        pa.field("sent", pa.int64()),
        pa.field("included", pa.int64()),
        pa.field("target_share", pa.float64()),
        pa.field("start_skew_s", pa.float64()),
        pa.field("wall_origin_unix_ns", pa.int64()),
        pa.field("clock_offset_ns", pa.int64()),
    ],
)

# One row per fault of a run's timeline (``RunResult.faults``), written when the run ends. The
# ``runs`` row carries the same facts as one JSON column; this table lets a query join, filter and
# aggregate them (recovery times over a night of runs) without parsing JSON. ``nan`` is stored as null.
FAULTS = _schema(
    "faults",
    [
        pa.field("run_id", pa.string(), nullable=False),
        # Not ``index``: pandas and SQL both give that word another meaning.
        pa.field("fault_index", pa.int32(), nullable=False),
        pa.field("kind", pa.string(), nullable=False),
        pa.field("params_json", pa.string(), nullable=False),
        pa.field("planned_at", pa.float64(), nullable=False),
        pa.field("planned_duration", pa.float64(), nullable=False),
        pa.field("started_at_s", pa.float64()),
        pa.field("ended_at_s", pa.float64()),
        pa.field("started_unix_ns", pa.int64()),
        pa.field("ended_unix_ns", pa.int64()),
        pa.field("included_gas_per_sec_before", pa.float64()),
        pa.field("included_gas_per_sec_during", pa.float64()),
        pa.field("included_gas_per_sec_after", pa.float64()),
        pa.field("inclusion_p99_before", pa.float64()),
        pa.field("inclusion_p99_during", pa.float64()),
        pa.field("inclusion_p99_after", pa.float64()),
        pa.field("recovered_after_s", pa.float64()),
        pa.field("delayed", pa.int64(), nullable=False),
        pa.field("lost", pa.int64(), nullable=False),
        pa.field("lost_examples_json", pa.string(), nullable=False),
        pa.field("effect_json", pa.string(), nullable=False),
        pa.field("error", pa.string()),
    ],
)

# One row per sequencer batch the L1 monitor saw while it watched a run (``RunResult.l1.batch_rows``,
# each an ``L1Batch``), written when a run with an L1 ends. The ``runs`` row's ``l1_json`` holds the
# same rows inside the whole ``L1Figures``; this table is for queries across batches and runs.
# Times are run-clock seconds; ``nan`` is stored as null.
BATCHES = _schema(
    "batches",
    [
        pa.field("run_id", pa.string(), nullable=False),
        pa.field("sequence_number", pa.int64(), nullable=False),
        pa.field("l1_block", pa.int64(), nullable=False),
        pa.field("l1_tx", _HASH, nullable=False),
        pa.field("before_acc", _HASH, nullable=False),
        pa.field("after_acc", _HASH, nullable=False),
        pa.field("delayed_messages_read", pa.int64(), nullable=False),
        pa.field("data_bytes", pa.int64(), nullable=False),
        pa.field("l1_gas", pa.int64(), nullable=False),
        pa.field("first_l2_block", pa.int64()),
        pa.field("last_l2_block", pa.int64()),
        pa.field("l2_transactions", pa.int64(), nullable=False),
        pa.field("seen_at_s", pa.float64(), nullable=False),
        pa.field("lag_max_s", pa.float64()),
        pa.field("decode_error", pa.string()),
    ],
)

# One row per assertion on the rollup the L1 monitor saw while it watched a run
# (``RunResult.l1.assertion_rows``, each an ``L1Assertion``), written with ``batches``.
ASSERTIONS = _schema(
    "assertions",
    [
        pa.field("run_id", pa.string(), nullable=False),
        pa.field("assertion_hash", _HASH, nullable=False),
        pa.field("parent_hash", _HASH, nullable=False),
        pa.field("inbox_position", pa.int64(), nullable=False),
        pa.field("l2_block_hash", _HASH, nullable=False),
        pa.field("created_l1_block", pa.int64(), nullable=False),
        pa.field("created_at_s", pa.float64(), nullable=False),
        pa.field("confirmed_l1_block", pa.int64()),
        pa.field("confirmed_at_s", pa.float64()),
    ],
)

# One row per Engine API call the plugin's consensus driver made during a run
# (``RunResult.engine.call_rows``, each an ``EngineCallRow``), written when a run whose blocks the plugin
# built ends. ``t_s`` is run-clock seconds; ``method`` has no prefix or version (``newPayload``).
ENGINE_CALLS = _schema(
    "engine_calls",
    [
        pa.field("run_id", pa.string(), nullable=False),
        pa.field("t_s", pa.float64(), nullable=False),
        pa.field("method", _DICT, nullable=False),
        pa.field("version", pa.int8(), nullable=False),
        pa.field("latency_s", pa.float64(), nullable=False),
        pa.field("status", _DICT, nullable=False),
        pa.field("block_number", pa.int64()),
        pa.field("block_hash", _HASH),
        pa.field("transactions", pa.int64()),
        pa.field("payload_id", pa.string()),
        pa.field("latest_valid_hash", _HASH),
        pa.field("with_attributes", pa.bool_(), nullable=False),
        pa.field("error", pa.string()),
    ],
)

# One row per block the consensus driver built during a run (``RunResult.engine.block_rows``, each an
# ``EngineBlockRow``), written with ``engine_calls``: build and import time against the block's size.
ENGINE_BLOCKS = _schema(
    "engine_blocks",
    [
        pa.field("run_id", pa.string(), nullable=False),
        pa.field("t_s", pa.float64(), nullable=False),
        pa.field("number", pa.int64(), nullable=False),
        pa.field("block_hash", _HASH, nullable=False),
        pa.field("transactions", pa.int64(), nullable=False),
        pa.field("gas_used", pa.int64(), nullable=False),
        pa.field("build_s", pa.float64(), nullable=False),
        pa.field("import_s", pa.float64(), nullable=False),
        pa.field("driver_cpu_s", pa.float64()),
        pa.field("head_after", _HASH),
    ],
)

# One row per event of a multi-node devnet's network while a run lasted (``RunResult.network.events``,
# each a ``NetworkEvent``), written when a run on several nodes ends: what was asked of it (``control``:
# partitions, heals, nodes stopped) and what it did (``live``: peers connected and dropped, heads).
NETWORK_EVENTS = _schema(
    "network_events",
    [
        pa.field("run_id", pa.string(), nullable=False),
        pa.field("t_s", pa.float64(), nullable=False),
        pa.field("source", _DICT, nullable=False),
        pa.field("kind", _DICT, nullable=False),
        pa.field("node", _DICT, nullable=False),
        pa.field("peer", _DICT),
        pa.field("number", pa.int64()),
        pa.field("detail", pa.string()),
    ],
)

SCHEMAS: dict[str, pa.Schema] = {
    "transactions": TRANSACTIONS,
    "blocks": BLOCKS,
    "events": EVENTS,
    "runs": RUNS,
    "verdicts": VERDICTS,
    "edges": EDGES,
    "faults": FAULTS,
    "batches": BATCHES,
    "assertions": ASSERTIONS,
    "engine_calls": ENGINE_CALLS,
    "engine_blocks": ENGINE_BLOCKS,
    "network_events": NETWORK_EVENTS,
}

#: Tables that grow during a run and are written in parts; the others have a few rows per run.
STREAMED_TABLES = ("transactions", "blocks", "events")


class SchemaVersionError(ValueError):
    """Data written under another MAJOR schema version than this code reads."""


def major_of(version: str) -> int:
    return int(version.split(".", 1)[0])


def schema_version_of(schema: pa.Schema) -> str | None:
    """The ``SCHEMA_VERSION`` a table or file was written with, ``None`` if it carries none."""
    metadata = schema.metadata or {}
    value = metadata.get(_METADATA_KEY)
    return value.decode() if value is not None else None


def empty_table(name: str) -> pa.Table:
    return SCHEMAS[name].empty_table()


def conform(table: pa.Table, name: str) -> pa.Table:
    """``table`` in the current schema of ``name``: columns in order, missing ones as nulls.

    Why: files written by an older MINOR version lack the columns added since; files written by a
    newer MINOR version carry columns this code does not know (dropped here). A different MAJOR is
    refused, since its columns may mean something else.
    """
    schema = SCHEMAS[name]
    version = schema_version_of(table.schema)
    if version is not None and major_of(version) != major_of(SCHEMA_VERSION):
        raise SchemaVersionError(
            f"{name} data has schema version {version}; this pytest-gashammer reads {SCHEMA_VERSION} "
            f"(major {major_of(SCHEMA_VERSION)}): use the version that wrote it"
        )
    columns = []
    for field in schema:
        index = table.schema.get_field_index(field.name)
        if index < 0:
            columns.append(pa.nulls(table.num_rows, field.type))
            continue
        column = table.column(index)
        if column.type != field.type:
            column = column.cast(field.type)
        columns.append(column)
    return pa.Table.from_arrays(columns, schema=schema)
