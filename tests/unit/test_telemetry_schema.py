"""The stored schema: versioned, documented, and stable through IPC and Parquet round trips."""

from __future__ import annotations

import re
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pytest_gashammer.feed.client import EVENT_KINDS as FEED_EVENT_KINDS
from pytest_gashammer.telemetry.schema import (
    EVENT_KINDS,
    SCHEMA_VERSION,
    SCHEMAS,
    STATES,
    SchemaVersionError,
    conform,
    empty_table,
    major_of,
    schema_version_of,
)
from pytest_gashammer.telemetry.stream import ClockMap, TransactionCursor, from_ipc, to_ipc
from tests.unit.test_telemetry_synthetic import synthetic_report

DOC = Path(__file__).resolve().parents[2] / "docs" / "telemetry.md"


def transactions_batch(rows: int = 2_000) -> pa.RecordBatch:
    run = synthetic_report(rows)
    report = run.report
    batch = TransactionCursor(
        run.txs,
        run_id="run-a",
        edge_id=report.edge_id,
        clock=ClockMap.local(report.clock_origin_ns, report.wall_origin_ns),
        templates=report.templates,
        sender_addresses=report.sender_addresses,
        receipt_stride=run.receipt_stride,
        feed=run.feed_columns,
        phases=run.plan.phases,
    ).poll(final=True)
    assert batch is not None
    return batch


def test_the_version_is_major_minor_and_every_table_carries_it() -> None:
    assert re.fullmatch(r"\d+\.\d+", SCHEMA_VERSION)
    assert set(SCHEMAS) == {
        "transactions",
        "blocks",
        "events",
        "runs",
        "verdicts",
        "edges",
        "faults",
        "batches",
        "assertions",
        "engine_calls",
        "engine_blocks",
        "network_events",
    }
    for name, schema in SCHEMAS.items():
        assert schema_version_of(schema) == SCHEMA_VERSION
        assert schema.metadata[b"gashammer.table"] == name.encode()
        assert empty_table(name).schema.equals(schema)


def test_every_column_of_every_table_is_documented() -> None:
    text = DOC.read_text()
    for name, schema in SCHEMAS.items():
        section = text.split(f"### `{name}`", 1)[1].split("\n### ", 1)[0]
        for field in schema:
            assert f"| `{field.name}` |" in section, (
                f"docs/telemetry.md: {name}.{field.name} is not documented"
            )


def test_feed_client_event_kinds_are_known_event_kinds() -> None:
    assert {f"feed_{kind}" for kind in FEED_EVENT_KINDS} <= set(EVENT_KINDS)
    assert STATES == ("included", "rejected", "lost", "pending")


def test_a_transactions_batch_survives_ipc_and_parquet_unchanged(tmp_path: Path) -> None:
    batch = transactions_batch()
    assert batch.schema.equals(SCHEMAS["transactions"], check_metadata=True)
    assert from_ipc(to_ipc(batch)).equals(batch)
    path = tmp_path / "t.parquet"
    pq.write_table(pa.Table.from_batches([batch]), path)
    back = pq.read_table(path)
    assert back.schema.equals(SCHEMAS["transactions"], check_metadata=True)
    assert back.equals(pa.Table.from_batches([batch]))
    assert schema_version_of(back.schema) == SCHEMA_VERSION


def test_conform_reads_older_and_newer_minor_versions_and_refuses_another_major() -> None:
    table = pa.Table.from_batches([transactions_batch(300)])
    older = table.drop_columns(["feed_position", "feed_appearances"]).replace_schema_metadata(
        {b"gashammer.schema_version": f"{major_of(SCHEMA_VERSION)}.0".encode()}
    )
    conformed = conform(older, "transactions")
    assert conformed.schema.equals(SCHEMAS["transactions"])
    assert conformed.column("feed_position").null_count == 300
    newer = table.append_column("from_the_future", pa.array([1] * 300)).replace_schema_metadata(
        {b"gashammer.schema_version": f"{major_of(SCHEMA_VERSION)}.99".encode()}
    )
    assert conform(newer, "transactions").equals(table)
    other = table.replace_schema_metadata({b"gashammer.schema_version": b"999.0"})
    with pytest.raises(SchemaVersionError, match="999.0"):
        conform(other, "transactions")
